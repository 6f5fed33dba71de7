#![no_main]
// The broker's request decoder on arbitrary frames: never panics, and allocates in
// proportion to the frame (array counts are checked against the bytes left before any
// `Vec` is reserved; run with -malloc_limit_mb to hold it to that).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = rill_broker::protocol::decode_request(data);
});
