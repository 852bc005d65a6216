//! Times one request's HPKE work, the sender's setup (ephemeral key, encapsulation, key
//! schedule, response-secret export) and the receiver's, with this crate's `rfc9180` on
//! AWS-LC and with the `hpke` crate, AES-128-GCM. Prints medians in microseconds.
//!
//! A measurement, not a test: `cargo run --release -p tng-ohttp --example hpke_setup [N]`.

use std::time::{Duration, Instant};

use hpke::{Deserializable as _, Kem as _, Serializable as _};
use tng_ohttp::rfc9180::{self, Aead, PrivateKey, ReceiverMode, SenderMode};

type HKem = hpke::kem::X25519HkdfSha256;
type HKdf = hpke::kdf::HkdfSha256;
type HAead = hpke::aead::AesGcm128;

const INFO: &[u8] = b"message/bhttp chunked request\0\x01\x00\x20\x00\x01\x00\x01";
const EXPORT_LABEL: &[u8] = b"message/bhttp chunked response";

struct OsRng09;

impl hpke::rand_core::RngCore for OsRng09 {
    fn next_u32(&mut self) -> u32 {
        rand::RngCore::next_u32(&mut rand::rngs::OsRng)
    }
    fn next_u64(&mut self) -> u64 {
        rand::RngCore::next_u64(&mut rand::rngs::OsRng)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, dst)
    }
}

impl hpke::rand_core::CryptoRng for OsRng09 {}

#[derive(Default)]
struct Samples {
    sender: Vec<Duration>,
    receiver: Vec<Duration>,
}

impl Samples {
    fn report(&mut self, name: &str) {
        let total: Vec<Duration> = self
            .sender
            .iter()
            .zip(&self.receiver)
            .map(|(s, r)| *s + *r)
            .collect();
        println!(
            "{name:<22} setup_sender {:>7.1} µs   setup_receiver {:>7.1} µs   both {:>7.1} µs",
            median(&mut self.sender),
            median(&mut self.receiver),
            median(&mut total.clone()),
        );
    }
}

fn median(samples: &mut [Duration]) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e6
}

fn ours(n: usize, auth: bool) -> Samples {
    let recipient = PrivateKey::generate().expect("recipient key");
    let sender_key = PrivateKey::generate().expect("sender key");
    let mut samples = Samples::default();
    for _ in 0..n {
        let t = Instant::now();
        let mut ikm = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut ikm);
        let ephemeral = PrivateKey::derive(&ikm).expect("ephemeral key");
        let mode = if auth {
            SenderMode::Auth(&sender_key)
        } else {
            SenderMode::Base
        };
        let (enc, ctx) = rfc9180::setup_sender(
            Aead::Aes128Gcm,
            recipient.public_key(),
            INFO,
            mode,
            &ephemeral,
        )
        .expect("setup_sender");
        let mut secret = [0u8; 16];
        ctx.export(EXPORT_LABEL, &mut secret).expect("export");
        samples.sender.push(t.elapsed());

        let t = Instant::now();
        let mode = if auth {
            ReceiverMode::Auth(sender_key.public_key())
        } else {
            ReceiverMode::Base
        };
        let ctx = rfc9180::setup_receiver(Aead::Aes128Gcm, &enc, &recipient, INFO, mode)
            .expect("setup_receiver");
        let mut again = [0u8; 16];
        ctx.export(EXPORT_LABEL, &mut again).expect("export");
        samples.receiver.push(t.elapsed());
        assert_eq!(secret, again);
    }
    samples
}

fn hpke_crate(n: usize, auth: bool) -> Samples {
    let (sk_r, pk_r) = HKem::gen_keypair(&mut OsRng09);
    let (sk_s, pk_s) = HKem::gen_keypair(&mut OsRng09);
    let mut samples = Samples::default();
    for _ in 0..n {
        let t = Instant::now();
        let mode = if auth {
            hpke::OpModeS::Auth((sk_s.clone(), pk_s.clone()))
        } else {
            hpke::OpModeS::Base
        };
        let (enc, ctx) =
            hpke::setup_sender::<HAead, HKdf, HKem, _>(&mode, &pk_r, INFO, &mut OsRng09)
                .expect("setup_sender");
        let mut secret = [0u8; 16];
        ctx.export(EXPORT_LABEL, &mut secret).expect("export");
        let enc = enc.to_bytes();
        samples.sender.push(t.elapsed());

        let t = Instant::now();
        let mode = if auth {
            hpke::OpModeR::Auth(pk_s.clone())
        } else {
            hpke::OpModeR::Base
        };
        let encapped = <HKem as hpke::Kem>::EncappedKey::from_bytes(&enc).expect("enc");
        let ctx = hpke::setup_receiver::<HAead, HKdf, HKem>(&mode, &sk_r, &encapped, INFO)
            .expect("setup_receiver");
        let mut again = [0u8; 16];
        ctx.export(EXPORT_LABEL, &mut again).expect("export");
        samples.receiver.push(t.elapsed());
        assert_eq!(secret, again);
    }
    samples
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("iteration count"))
        .unwrap_or(2000);
    println!("{n} iterations per row, AES-128-GCM, medians");
    // Alternating rounds, so that frequency scaling or a neighbour's load hits both alike.
    let (mut o, mut h, mut oa, mut ha) = (
        Samples::default(),
        Samples::default(),
        Samples::default(),
        Samples::default(),
    );
    let rounds = 4;
    for _ in 0..rounds {
        for (acc, s) in [
            (&mut o, ours(n / rounds, false)),
            (&mut h, hpke_crate(n / rounds, false)),
            (&mut oa, ours(n / rounds, true)),
            (&mut ha, hpke_crate(n / rounds, true)),
        ] {
            acc.sender.extend(s.sender);
            acc.receiver.extend(s.receiver);
        }
    }
    o.report("rfc9180 (AWS-LC) base");
    h.report("hpke crate base");
    oa.report("rfc9180 (AWS-LC) auth");
    ha.report("hpke crate auth");
}
