#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tng_fuzz::connect_stream(data));
