#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmflow_fuzz::guest_values(data));
