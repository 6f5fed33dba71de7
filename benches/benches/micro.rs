//! Micro-benchmarks of the per-batch CPU work on the append and read paths: batch validation,
//! CRC-32C, record encoding and decoding, index lookups. Run with
//! `cargo bench -p rill-bench --bench micro`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    reason = "benchmark set-up"
)]

use divan::Bencher;
use divan::counter::BytesCount;
use rill_segment::batch::{self, BatchBuilder};
use rill_segment::index::{OffsetIndex, TimeIndex};

fn main() {
    divan::main();
}

/// Batch shapes: (records, value bytes).
const SHAPES: [(usize, usize); 3] = [(1, 100), (100, 100), (1000, 100)];

/// Appends `records` records with key `key` and `value` to `builder`.
fn fill(builder: &mut BatchBuilder, records: usize, value: &[u8]) {
    for i in 0..records {
        builder
            .append(1_700_000_000_000 + i as i64, Some(b"key"), Some(value), &[])
            .unwrap();
    }
}

fn batch_of(records: usize, value_bytes: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    fill(&mut builder, records, &vec![0x5a_u8; value_bytes]);
    builder.build().unwrap()
}

/// What a broker does to a producer's batch before storing it: shape, length, CRC, and every
/// record's framing.
#[divan::bench(args = SHAPES)]
fn validate_for_append(bencher: Bencher, (records, value_bytes): (usize, usize)) {
    let batch = batch_of(records, value_bytes);
    bencher
        .counter(BytesCount::of_slice(&batch))
        .bench(|| batch::validate_for_append(divan::black_box(&batch), 1 << 24).unwrap());
}

/// What a read checks per batch (shape, CRC, offset; records not decoded).
#[divan::bench(args = SHAPES)]
fn check_stored(bencher: Bencher, (records, value_bytes): (usize, usize)) {
    let batch = batch_of(records, value_bytes);
    bencher
        .counter(BytesCount::of_slice(&batch))
        .bench(|| batch::check_stored(divan::black_box(&batch), 0).unwrap());
}

/// CRC-32C over a batch's covered bytes.
#[divan::bench(args = [1 << 10, 64 << 10, 1 << 20])]
fn crc32c(bencher: Bencher, bytes: usize) {
    let data = vec![0xa5_u8; bytes];
    bencher
        .counter(BytesCount::new(bytes))
        .bench(|| batch::compute_crc(divan::black_box(&data)));
}

/// Encoding records into a batch with the builder (reused, so no allocation per batch).
#[divan::bench(args = SHAPES)]
fn encode_records(bencher: Bencher, (records, value_bytes): (usize, usize)) {
    let value = vec![0x5a_u8; value_bytes];
    let mut builder = BatchBuilder::with_capacity(records * (value_bytes + 32) + 64);
    bencher
        .counter(divan::counter::ItemsCount::new(records))
        .bench_local(|| {
            builder.clear();
            fill(&mut builder, records, &value);
            builder.finish().unwrap().len()
        });
}

/// Decoding every record of a batch (offsets, timestamps, key and value slices).
#[divan::bench(args = SHAPES)]
fn decode_records(bencher: Bencher, (records, value_bytes): (usize, usize)) {
    let batch = batch_of(records, value_bytes);
    bencher
        .counter(divan::counter::ItemsCount::new(records))
        .bench(|| {
            let mut bytes = 0usize;
            for record in batch::records(divan::black_box(&batch)).unwrap() {
                bytes += record.unwrap().value.map_or(0, <[u8]>::len);
            }
            bytes
        });
}

/// The `n`th probe of a lookup benchmark over `entries` entries: the entry it lands near
/// (entries visited in a scattered order, the same for both indexes) and a position inside the
/// gap after it, as a fraction of the gap in 1/8s.
fn probe(n: usize, entries: usize) -> (usize, i64) {
    ((n * 7919) % entries, (n % 8) as i64)
}

/// A lookup in a full sparse offset index (binary search), as every read does. Entries are
/// 100 offsets apart; probes are drawn as for the time index.
#[divan::bench(args = [1_000, 100_000], sample_size = 1000)]
fn offset_index_lookup(bencher: Bencher, entries: usize) {
    let mut index = OffsetIndex::new(0, entries);
    for i in 0..entries as i64 {
        assert!(index.append(i * 100 + 1, (i as u32 + 1) * 4096));
    }
    let mut n = 0usize;
    bencher.bench_local(|| {
        n += 1;
        let (entry, eighths) = probe(n, entries);
        index.lookup(divan::black_box(entry as i64 * 100 + 1 + eighths * 100 / 8))
    });
}

/// A lookup in a full time index, as a ListOffsets by timestamp does. Entries are 100 ms
/// apart; probes are drawn as for the offset index.
#[divan::bench(args = [1_000, 100_000], sample_size = 1000)]
fn time_index_lookup(bencher: Bencher, entries: usize) {
    let mut index = TimeIndex::new(0, entries);
    for i in 0..entries as i64 {
        assert!(index.maybe_append(1_700_000_000_000 + i * 100, i * 100, false));
    }
    let mut n = 0usize;
    bencher.bench_local(|| {
        n += 1;
        let (entry, eighths) = probe(n, entries);
        let timestamp = 1_700_000_000_000 + entry as i64 * 100 + eighths * 100 / 8;
        index.lookup(divan::black_box(timestamp))
    });
}
