#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rill_segment::fuzz::checkpoint_parse(data));
