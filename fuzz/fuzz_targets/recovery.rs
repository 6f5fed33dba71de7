#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = rill_segment::fuzz::recovery(data);
});
