#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tng_fuzz::ratstls_cert(data));
