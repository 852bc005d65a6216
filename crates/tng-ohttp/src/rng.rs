//! `hpke` 0.13 is written against `rand_core` 0.9 while the rest of the workspace uses `rand`
//! 0.8; this adapter lets any `rand` 0.8 CSPRNG drive HPKE without a second RNG stack.

use hpke::rand_core as rc09;

pub(crate) struct Rng08<'a, R>(pub &'a mut R);

impl<R: rand::RngCore> rc09::RngCore for Rng08<'_, R> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.0.fill_bytes(dst)
    }
}

impl<R: rand::RngCore + rand::CryptoRng> rc09::CryptoRng for Rng08<'_, R> {}
