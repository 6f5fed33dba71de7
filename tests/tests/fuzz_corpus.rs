#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a test failure"
)]

//! Runs every fuzz target over the committed corpus (`fuzz/corpus/<target>/`) and over
//! deterministic mutations of it (truncations, bit flips, byte stomps), so CI exercises the
//! targets without cargo-fuzz. `fuzz/make_corpus.py` regenerates the seeds.

use rill_segment::fuzz;
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let inputs: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(!inputs.is_empty(), "no corpus for {target}");
    inputs
}

/// The input and a bounded set of deterministic mutations of it.
fn mutations(input: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![input.to_vec()];
    let len = input.len();
    for cut in [0, 1, len / 3, len / 2, len.saturating_sub(1)] {
        out.push(input[..cut.min(len)].to_vec());
    }
    let step = (len / 97).max(1);
    for at in (0..len).step_by(step) {
        let mut flipped = input.to_vec();
        flipped[at] ^= 1 << (at % 8);
        out.push(flipped);
        let mut stomped = input.to_vec();
        stomped[at] = 0xff;
        out.push(stomped);
    }
    out
}

fn run(target: &str, f: fn(&[u8])) {
    let mut runs = 0;
    for input in corpus(target) {
        for mutated in mutations(&input) {
            f(&mutated);
            runs += 1;
        }
    }
    assert!(runs > 0);
}

#[test]
fn batch_validate() {
    run("batch_validate", rill_format::fuzz::batch_validate);
}

#[test]
fn record_decode() {
    run("record_decode", rill_format::fuzz::record_decode);
}

#[test]
fn index_load() {
    run("index_load", rill_format::fuzz::index_load);
}

#[test]
fn checkpoint_parse() {
    run("checkpoint_parse", rill_format::fuzz::checkpoint_parse);
}

#[test]
fn recovery() {
    run("recovery", |data| {
        let _ = fuzz::recovery(data);
    });
}

#[test]
fn recovery_seeds_keep_exactly_their_valid_batches() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/recovery");
    let whole = std::fs::read(dir.join("six_batches")).unwrap();
    assert_eq!(fuzz::recovery(&whole), Some(whole.len()));
    for tail in ["zero_tail", "garbage_tail"] {
        let seed = std::fs::read(dir.join(tail)).unwrap();
        assert_eq!(fuzz::recovery(&seed), Some(whole.len()), "{tail}");
    }
    let torn = std::fs::read(dir.join("torn_tail")).unwrap();
    let kept = fuzz::recovery(&torn).unwrap();
    assert!(kept < torn.len() && kept > 0);
}

#[test]
fn broker_request() {
    // The seeds are valid requests of every implemented API.
    for seed in corpus("broker_request") {
        let decoded = rill_broker::protocol::decode_request(&seed);
        assert!(decoded.is_ok(), "{decoded:?}");
    }
    run("broker_request", |data| {
        let _ = rill_broker::protocol::decode_request(data);
    });
}
