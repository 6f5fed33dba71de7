//! Shared helpers for rill's cross-crate tests live in `tests/tests/*.rs`; this library is empty
//! on purpose so that the test files are the crate's content.
