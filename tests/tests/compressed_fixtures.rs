#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a test failure"
)]

//! Compressed batches from an independent implementation (kafka-python 2.0.2 with its codec
//! libraries; `tests/fixtures/compressed/gen_fixtures.py`), one per Kafka codec: gzip, snappy in
//! xerial framing, LZ4 frame, zstd. On append their records are decompressed and checked: each
//! fixture passes with the records' greatest timestamp, and the same batch with an understated
//! `maxTimestamp` is refused (issue #15). Through a `Log`, each is stored as sent.

use rill::batch::{self, BatchError, field};
use rill::{Config, Durability, Log};
use std::path::PathBuf;

const CODECS: [&str; 4] = ["gzip", "snappy", "lz4", "zstd"];
const BASE_MS: i64 = 1_700_000_000_000;

fn fixture(codec: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/compressed")
        .join(format!("{codec}.bin"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The generator's timestamps: `BASE_MS + (i * 7919) % 1000` for 20 records.
fn greatest_timestamp() -> i64 {
    (0..20).map(|i| BASE_MS + (i * 7919) % 1000).max().unwrap()
}

#[test]
fn every_codec_s_records_are_decoded_and_checked() {
    for codec in CODECS {
        let bytes = fixture(codec);
        let header =
            batch::validate_for_append(&bytes, 1 << 20).unwrap_or_else(|e| panic!("{codec}: {e}"));
        assert_eq!(header.records_count, 20, "{codec}");
        assert_eq!(header.max_timestamp, greatest_timestamp(), "{codec}");
        assert_ne!(
            header.attributes.compression(),
            Some(batch::Compression::None),
            "{codec}: the fixture is compressed"
        );
    }
}

#[test]
fn an_understated_max_timestamp_is_refused_in_every_codec() {
    let max = greatest_timestamp();
    for codec in CODECS {
        let mut bytes = fixture(codec);
        bytes[field::MAX_TIMESTAMP..field::MAX_TIMESTAMP + 8]
            .copy_from_slice(&(max - 1).to_be_bytes());
        let crc = batch::compute_crc(&bytes);
        bytes[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            batch::validate_for_append(&bytes, 1 << 20).map(|_| ()),
            Err(BatchError::MaxTimestampMismatch {
                declared: max - 1,
                computed: max
            }),
            "{codec}"
        );
    }
}

#[test]
fn compressed_batches_are_stored_as_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(Config::new(dir.path())).unwrap();
    log.create_topic("c", 1).unwrap();
    let p = log.partition("c", 0).unwrap();
    for codec in CODECS {
        let bytes = fixture(codec);
        let info = p
            .append_with(&bytes[..], Durability::Durable)
            .wait()
            .unwrap_or_else(|e| panic!("{codec}: {e}"));
        let read = p.read(info.base_offset, 1 << 20).wait().unwrap();
        let stored = read.batches().next().unwrap();
        // Identical but for the base offset the log assigned.
        assert_eq!(&stored[8..], &bytes[8..], "{codec}");
    }
    log.close().unwrap();
}
