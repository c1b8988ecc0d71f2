#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tlsplex::fuzzing::config(data));
