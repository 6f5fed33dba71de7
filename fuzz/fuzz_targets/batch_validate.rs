#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rill_format::fuzz::batch_validate(data));
