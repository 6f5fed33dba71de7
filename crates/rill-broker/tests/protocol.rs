//! The wire protocol against a real `rill-broker` process, byte by byte: bad input closes
//! only the offending connection; unknown APIs and versions get answers; per-partition error
//! codes; nothing invalid reaches the log; long-polling; fetch byte limits.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use bytes::{Buf, BufMut, BytesMut};
use common::Broker;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

const PRODUCE: i16 = 0;
const FETCH: i16 = 1;
const METADATA: i16 = 3;
const API_VERSIONS: i16 = 18;
const CREATE_TOPICS: i16 = 19;
const INIT_PRODUCER_ID: i16 = 22;

struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    fn connect(broker: &Broker) -> Self {
        let stream = TcpStream::connect(&broker.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_mins(1)))
            .unwrap();
        Self {
            stream,
            correlation: 0,
        }
    }

    /// Sends a request (header v1, client id "t") and returns the response body.
    fn call(&mut self, api_key: i16, version: i16, body: &[u8]) -> BytesMut {
        self.correlation += 1;
        let mut frame = BytesMut::new();
        frame.put_i16(api_key);
        frame.put_i16(version);
        frame.put_i32(self.correlation);
        put_str(&mut frame, "t");
        frame.put_slice(body);
        self.send_frame(&frame);
        let mut response = self.read_frame().expect("a response");
        assert_eq!(response.get_i32(), self.correlation, "correlation id");
        response
    }

    fn send_frame(&mut self, frame: &[u8]) {
        self.stream
            .write_all(&(frame.len() as i32).to_be_bytes())
            .unwrap();
        self.stream.write_all(frame).unwrap();
    }

    /// A response frame, or `None` if the broker closed the connection.
    fn read_frame(&mut self) -> Option<BytesMut> {
        let mut size = [0u8; 4];
        if self.stream.read_exact(&mut size).is_err() {
            return None;
        }
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(BytesMut::from(&body[..]))
    }

    /// Whether the broker closed the connection (EOF or reset) without answering.
    fn closed_without_answer(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }

    fn api_versions_work(&mut self) -> bool {
        let mut r = self.call(API_VERSIONS, 2, &[]);
        r.get_i16() == 0
    }
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn get_str(b: &mut BytesMut) -> String {
    let len = b.get_i16();
    if len < 0 {
        return String::new();
    }
    let s = String::from_utf8(b[..len as usize].to_vec()).unwrap();
    b.advance(len as usize);
    s
}

fn batch(values: &[&[u8]]) -> Vec<u8> {
    let mut builder = rill::BatchBuilder::new();
    for v in values {
        builder
            .append(1_700_000_000_000, Some(b"k"), Some(v), &[])
            .unwrap();
    }
    builder.finish().unwrap().to_vec()
}

/// CreateTopics v4: one topic.
fn create_topic(c: &mut Client, name: &str, partitions: i32) -> i16 {
    let mut b = BytesMut::new();
    b.put_i32(1);
    put_str(&mut b, name);
    b.put_i32(partitions);
    b.put_i16(1);
    b.put_i32(0); // assignments
    b.put_i32(0); // configs
    b.put_i32(5000);
    b.put_i8(0);
    let mut r = c.call(CREATE_TOPICS, 4, &b);
    r.get_i32();
    assert_eq!(r.get_i32(), 1);
    assert_eq!(get_str(&mut r), name);
    r.get_i16()
}

/// Produce at `version` (acks -1) of `records` per (topic, partition); returns the error and
/// base offset of each, in order.
fn produce(
    c: &mut Client,
    version: i16,
    acks: i16,
    parts: &[(&str, i32, &[u8])],
) -> Vec<(i16, i64)> {
    let mut b = BytesMut::new();
    b.put_i16(-1); // transactional id
    b.put_i16(acks);
    b.put_i32(10_000);
    b.put_i32(parts.len() as i32);
    for (topic, partition, records) in parts {
        put_str(&mut b, topic);
        b.put_i32(1);
        b.put_i32(*partition);
        b.put_i32(records.len() as i32);
        b.put_slice(records);
    }
    let mut r = c.call(PRODUCE, version, &b);
    let mut out = Vec::new();
    each_partition(&mut r, |r| {
        let error = r.get_i16();
        let base = r.get_i64();
        r.get_i64(); // log append time
        if version >= 5 {
            r.get_i64();
        }
        if version >= 8 {
            assert_eq!(r.get_i32(), 0);
            get_str(r);
        }
        out.push((error, base));
    });
    out
}

/// Walks a response's `[topic, [partition index, ...]]` nesting, calling `f` after each
/// partition index.
fn each_partition(r: &mut BytesMut, mut f: impl FnMut(&mut BytesMut)) {
    for _ in 0..r.get_i32() {
        get_str(r);
        for _ in 0..r.get_i32() {
            r.get_i32();
            f(r);
        }
    }
}

/// One partition of a fetch response.
#[derive(Debug)]
struct Fetched {
    error: i16,
    high_watermark: i64,
    records: Vec<u8>,
}

/// Fetch v11 of (topic, partition, offset, partition_max_bytes).
fn fetch(
    c: &mut Client,
    max_wait_ms: i32,
    min_bytes: i32,
    max_bytes: i32,
    parts: &[(&str, i32, i64, i32)],
) -> Vec<Fetched> {
    let mut b = BytesMut::new();
    b.put_i32(-1);
    b.put_i32(max_wait_ms);
    b.put_i32(min_bytes);
    b.put_i32(max_bytes);
    b.put_i8(0);
    b.put_i32(0); // session id
    b.put_i32(-1); // session epoch
    b.put_i32(parts.len() as i32);
    for (topic, partition, offset, partition_max) in parts {
        put_str(&mut b, topic);
        b.put_i32(1);
        b.put_i32(*partition);
        b.put_i32(-1); // current leader epoch
        b.put_i64(*offset);
        b.put_i64(-1); // log start offset
        b.put_i32(*partition_max);
    }
    b.put_i32(0); // forgotten topics
    put_str(&mut b, "");
    let mut r = c.call(FETCH, 11, &b);
    r.get_i32(); // throttle
    assert_eq!(r.get_i16(), 0);
    r.get_i32(); // session
    let mut out = Vec::new();
    each_partition(&mut r, |r| {
        let error = r.get_i16();
        let high_watermark = r.get_i64();
        r.get_i64();
        r.get_i64();
        assert_eq!(r.get_i32(), 0, "aborted transactions");
        assert_eq!(r.get_i32(), -1, "preferred read replica");
        let len = r.get_i32().max(0) as usize;
        let records = r[..len].to_vec();
        r.advance(len);
        out.push(Fetched {
            error,
            high_watermark,
            records,
        });
    });
    assert!(r.is_empty(), "{} bytes after the response", r.len());
    out
}

#[test]
fn bad_input_closes_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--max-request-bytes", "1048576"]);
    let mut good = Client::connect(&broker);
    assert!(good.api_versions_work());

    let mut metadata_absurd = BytesMut::new();
    metadata_absurd.put_i16(METADATA);
    metadata_absurd.put_i16(1);
    metadata_absurd.put_i32(7);
    put_str(&mut metadata_absurd, "t");
    metadata_absurd.put_i32(1_000_000_000); // topics
    let mut produce_garbage = BytesMut::new();
    produce_garbage.put_i16(PRODUCE);
    produce_garbage.put_i16(8);
    produce_garbage.put_i32(8);
    produce_garbage.put_slice(&[0xff; 40]);
    let mut trailing = BytesMut::new();
    trailing.put_i16(API_VERSIONS);
    trailing.put_i16(2);
    trailing.put_i32(9);
    put_str(&mut trailing, "t");
    trailing.put_slice(b"extra");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("negative size", (-1i32).to_be_bytes().to_vec()),
        (
            "size above the limit",
            (2_000_000i32).to_be_bytes().to_vec(),
        ),
        ("size i32::MAX", i32::MAX.to_be_bytes().to_vec()),
        ("size below a header", [0, 0, 0, 4, 1, 2, 3, 4].to_vec()),
        ("absurd array count", framed(&metadata_absurd)),
        ("garbage body", framed(&produce_garbage)),
        ("bytes after the request", framed(&trailing)),
        ("truncated frame", {
            let mut f = 100i32.to_be_bytes().to_vec();
            f.extend_from_slice(&[0; 20]);
            f
        }),
    ];
    for (what, bytes) in cases {
        let mut bad = Client::connect(&broker);
        bad.stream.write_all(&bytes).unwrap();
        if what == "truncated frame" {
            bad.stream.shutdown(Shutdown::Write).unwrap();
        }
        assert!(bad.closed_without_answer(), "{what}: connection closed");
        assert!(good.api_versions_work(), "{what}: other clients unaffected");
        assert!(
            Client::connect(&broker).api_versions_work(),
            "{what}: new clients served"
        );
    }
}

fn framed(frame: &[u8]) -> Vec<u8> {
    let mut out = (frame.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(frame);
    out
}

#[test]
fn unknown_apis_and_versions_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let mut c = Client::connect(&broker);

    // ApiVersions v4 (not implemented): Kafka's v0-format UNSUPPORTED_VERSION answer, listing
    // exactly what is implemented.
    let mut r = c.call(API_VERSIONS, 4, &[0, 0]);
    assert_eq!(r.get_i16(), 35);
    let mut ranges = Vec::new();
    for _ in 0..r.get_i32() {
        ranges.push((r.get_i16(), r.get_i16(), r.get_i16()));
    }
    assert!(r.is_empty(), "v0 format has no throttle time");
    assert_eq!(
        ranges,
        [
            (0, 3, 10),
            (1, 4, 11),
            (2, 1, 5),
            (3, 0, 8),
            (8, 2, 8),
            (9, 1, 8),
            (10, 0, 4),
            (11, 0, 9),
            (12, 0, 4),
            (13, 0, 5),
            (14, 0, 5),
            (15, 0, 5),
            (16, 0, 4),
            (18, 0, 3),
            (19, 0, 7),
            (20, 0, 5),
            (21, 0, 2),
            (22, 0, 4),
            (32, 0, 4),
            (33, 0, 2),
            (37, 0, 3),
            (42, 0, 2),
            (44, 0, 1)
        ]
    );
    // ApiVersions v2 lists the same, with throttle time.
    let mut r = c.call(API_VERSIONS, 2, &[]);
    assert_eq!(r.get_i16(), 0);
    assert_eq!(r.get_i32(), 23);
    // v3 (flexible body, request header v2, response header v0): compact array, tagged fields.
    let mut r = c.call(API_VERSIONS, 3, &[0, 2, b'k', 2, b'1', 0]);
    assert_eq!(r.get_i16(), 0, "error");
    assert_eq!(r.get_u8(), 24, "23 APIs, compact length + 1");
    let mut listed = Vec::new();
    for _ in 0..23 {
        listed.push((r.get_i16(), r.get_i16(), r.get_i16()));
        assert_eq!(r.get_u8(), 0, "tagged fields");
    }
    assert_eq!(listed, ranges);
    assert_eq!(r.get_i32(), 0, "throttle");
    assert_eq!(r.get_u8(), 0, "tagged fields");
    assert!(r.is_empty());

    // An unknown key, a version below the range and one above: UNSUPPORTED_VERSION, and the
    // connection stays usable.
    for (key, version) in [
        (999, 0),
        (PRODUCE, 2),
        (FETCH, 12),
        (METADATA, 9),
        (PRODUCE, 11),
    ] {
        let mut r = c.call(key, version, &[1, 2, 3]);
        assert_eq!(r.get_i16(), 35, "api {key} v{version}");
    }
    // A flexible version (FindCoordinator v3): request header v2 (tagged fields after the
    // client id), compact strings; response header v1 (tagged fields after the correlation
    // id).
    let mut r = c.call(10, 3, &[0, 2, b'g', 0, 0]);
    assert_eq!(r.get_u8(), 0, "response header tagged fields");
    assert_eq!(r.get_i32(), 0, "throttle");
    assert_eq!(r.get_i16(), 0, "error");
    assert_eq!(r.get_u8(), 0, "null message");
    assert_eq!(r.get_i32(), 0, "node id");
    let host_len = usize::from(r.get_u8()) - 1;
    assert_eq!(&r[..host_len], b"127.0.0.1");
    r.advance(host_len);
    assert!(r.get_i32() > 0, "port");
    assert_eq!(r.get_u8(), 0, "tagged fields");
    assert!(r.is_empty());
    assert!(c.api_versions_work());
}

#[test]
fn produce_and_fetch_report_errors_per_partition_and_store_only_valid_batches() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &["--segment-bytes", "65536", "--no-auto-create-topics"],
    );
    let mut c = Client::connect(&broker);
    assert_eq!(create_topic(&mut c, "t", 2), 0);
    assert_eq!(create_topic(&mut c, "t", 2), 36, "TOPIC_ALREADY_EXISTS");
    assert_eq!(
        create_topic(&mut c, "bad/name", 1),
        17,
        "INVALID_TOPIC_EXCEPTION"
    );
    assert_eq!(create_topic(&mut c, "zero", 0), 37, "INVALID_PARTITIONS");

    let good = batch(&[b"one", b"two"]);
    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x55;
    // Right CRC, wrong inside: the header claims 3 records, the batch holds 2.
    let mut bad_count = good.clone();
    bad_count[57..61].copy_from_slice(&3i32.to_be_bytes());
    let crc = rill::batch::compute_crc(&bad_count);
    bad_count[17..21].copy_from_slice(&crc.to_be_bytes());
    let huge = batch(&[&vec![7u8; 100_000]]);

    let results = produce(
        &mut c,
        8,
        -1,
        &[
            ("t", 0, &good),
            ("t", 1, &bad_crc),
            ("t", 7, &good),
            ("nope", 0, &good),
        ],
    );
    assert_eq!(results, [(0, 0), (2, -1), (3, -1), (3, -1)]);
    assert_eq!(produce(&mut c, 8, -1, &[("t", 1, &bad_count)]), [(87, -1)]);
    assert_eq!(
        produce(&mut c, 7, -1, &[("t", 1, &bad_count)]),
        [(2, -1)],
        "CORRUPT_MESSAGE before v8"
    );
    assert_eq!(
        produce(&mut c, 8, -1, &[("t", 1, &huge)]),
        [(10, -1)],
        "MESSAGE_TOO_LARGE"
    );
    assert_eq!(
        produce(&mut c, 8, -1, &[("t", 1, &good[..30])]),
        [(2, -1)],
        "truncated batch"
    );
    assert_eq!(
        produce(&mut c, 8, 2, &[("t", 1, &good)]),
        [(21, -1)],
        "INVALID_REQUIRED_ACKS"
    );
    // Two batches where the second is bad: neither is stored.
    let two: Vec<u8> = [good.clone(), bad_crc.clone()].concat();
    assert_eq!(produce(&mut c, 8, 1, &[("t", 1, &two)]), [(2, -1)]);
    // Two good batches in one produce: both stored, offsets from the first.
    let two: Vec<u8> = [good.clone(), good.clone()].concat();
    assert_eq!(produce(&mut c, 3, -1, &[("t", 0, &two)]), [(0, 2)]);

    let fetched = fetch(
        &mut c,
        0,
        0,
        1 << 20,
        &[("t", 0, 0, 1 << 20), ("t", 1, 0, 1 << 20)],
    );
    assert_eq!(fetched[0].error, 0);
    assert_eq!(fetched[0].high_watermark, 6);
    assert_eq!(fetched[0].records.len(), 3 * good.len());
    let mut expected = good.clone();
    expected[..8].copy_from_slice(&0i64.to_be_bytes());
    assert_eq!(
        &fetched[0].records[..good.len()],
        &expected[..],
        "stored byte for byte"
    );
    assert_eq!(
        (fetched[1].error, fetched[1].high_watermark),
        (0, 0),
        "nothing invalid stored"
    );
    assert!(fetched[1].records.is_empty());
    let out = fetch(
        &mut c,
        0,
        0,
        1 << 20,
        &[("t", 0, 100, 1 << 20), ("x", 0, 0, 100)],
    );
    assert_eq!(
        (out[0].error, out[1].error),
        (1, 3),
        "OFFSET_OUT_OF_RANGE, UNKNOWN_TOPIC"
    );
}

#[test]
fn fetch_limits_and_long_polling() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let mut c = Client::connect(&broker);
    assert_eq!(create_topic(&mut c, "t", 2), 0);
    let value = vec![1u8; 1000];
    let one = batch(&[&value]);
    for _ in 0..3 {
        assert_eq!(
            produce(&mut c, 8, 1, &[("t", 0, &one), ("t", 1, &one)])[0].0,
            0
        );
    }
    // The response limit: the first partition gets its first batch whatever its size; others
    // only what still fits.
    let out = fetch(
        &mut c,
        0,
        0,
        1500,
        &[("t", 0, 0, 1 << 20), ("t", 1, 0, 1 << 20)],
    );
    assert_eq!((out[0].records.len(), out[1].records.len()), (one.len(), 0));
    let out = fetch(
        &mut c,
        0,
        0,
        10,
        &[("t", 0, 1, 1 << 20), ("t", 1, 0, 1 << 20)],
    );
    assert_eq!((out[0].records.len(), out[1].records.len()), (one.len(), 0));
    // The partition limit.
    let out = fetch(
        &mut c,
        0,
        0,
        1 << 20,
        &[("t", 0, 0, 2 * one.len() as i32), ("t", 1, 0, 1)],
    );
    assert_eq!(
        (out[0].records.len(), out[1].records.len()),
        (2 * one.len(), one.len())
    );

    // Nothing new within max_wait: an empty answer.
    let out = fetch(&mut c, 50, 1, 1 << 20, &[("t", 0, 3, 1 << 20)]);
    assert!(out[0].records.is_empty());
    // A long poll is answered by the next produce, not by its (long) timeout.
    let mut waiter = Client::connect(&broker);
    let poll =
        std::thread::spawn(move || fetch(&mut waiter, 60_000, 1, 1 << 20, &[("t", 1, 3, 1 << 20)]));
    // Likely waiting by now; if not, the fetch finds the data when it arrives, and the check
    // below still holds.
    std::thread::sleep(Duration::from_millis(100));
    let produced = std::time::Instant::now();
    assert_eq!(produce(&mut c, 8, 1, &[("t", 1, &one)])[0], (0, 3));
    let out = poll.join().unwrap();
    // A lost wake-up would still answer, with the data, at the 60 s timeout: the answer must
    // come long before it.
    assert!(
        produced.elapsed() < Duration::from_secs(30),
        "the long poll was answered by its timeout, not by the produce"
    );
    assert_eq!(out[0].records.len(), one.len());
    assert_eq!(out[0].high_watermark, 4);
}

/// Fetch v11 of `partitions` of `topic` from offset 0, as one topic entry: (index, records)
/// in the response's order.
fn fetch_one_topic(c: &mut Client, topic: &str, partitions: &[i32]) -> Vec<(i32, Vec<u8>)> {
    let mut b = BytesMut::new();
    b.put_i32(-1);
    b.put_i32(0); // max wait
    b.put_i32(1); // min bytes
    b.put_i32(1 << 24);
    b.put_i8(0);
    b.put_i32(0); // session id
    b.put_i32(-1); // session epoch
    b.put_i32(1);
    put_str(&mut b, topic);
    b.put_i32(partitions.len() as i32);
    for partition in partitions {
        b.put_i32(*partition);
        b.put_i32(-1); // current leader epoch
        b.put_i64(0);
        b.put_i64(-1); // log start offset
        b.put_i32(1 << 20);
    }
    b.put_i32(0); // forgotten topics
    put_str(&mut b, "");
    let mut r = c.call(FETCH, 11, &b);
    r.get_i32(); // throttle
    assert_eq!(r.get_i16(), 0);
    r.get_i32(); // session
    assert_eq!(r.get_i32(), 1, "one topic");
    assert_eq!(get_str(&mut r), topic);
    let mut out = Vec::new();
    for _ in 0..r.get_i32() {
        let index = r.get_i32();
        assert_eq!(r.get_i16(), 0, "partition {index}: error");
        r.get_i64(); // high watermark
        r.get_i64(); // last stable offset
        r.get_i64(); // log start offset
        assert_eq!(r.get_i32(), 0, "aborted transactions");
        assert_eq!(r.get_i32(), -1, "preferred read replica");
        let len = r.get_i32().max(0) as usize;
        out.push((index, r[..len].to_vec()));
        r.advance(len);
    }
    assert!(r.is_empty(), "{} bytes after the response", r.len());
    out
}

/// Creates `topic` with `partitions` partitions and produces one batch to each, whose single
/// value is its own (`partition + 1` repeated, `value_bytes + partition` long). Returns the
/// values and the batches as sent.
fn topic_of_distinct_batches(
    c: &mut Client,
    topic: &str,
    partitions: i32,
    value_bytes: usize,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    assert_eq!(create_topic(c, topic, partitions), 0);
    let values: Vec<Vec<u8>> = (0..partitions)
        .map(|p| vec![p as u8 + 1; value_bytes + p as usize])
        .collect();
    let batches: Vec<Vec<u8>> = values.iter().map(|v| batch(&[v])).collect();
    let parts: Vec<(&str, i32, &[u8])> = (0..partitions)
        .map(|p| (topic, p, batches[p as usize].as_slice()))
        .collect();
    for (error, base) in produce(c, 8, 1, &parts) {
        assert_eq!((error, base), (0, 0));
    }
    (values, batches)
}

/// Checks that `records`, fetched from partition `p` of a [`topic_of_distinct_batches`] topic,
/// are that partition's batch (its length, and its own value inside).
fn assert_own_batch(p: usize, records: &[u8], values: &[Vec<u8>], batches: &[Vec<u8>]) {
    assert_eq!(records.len(), batches[p].len(), "partition {p}");
    assert!(
        records
            .windows(values[p].len())
            .any(|w| w == values[p].as_slice()),
        "partition {p} carries its own records"
    );
}

/// A fetch of more partitions than the broker asks to send ahead (64), spread over the
/// shards: every partition's batches arrive whole, in the request's order, in one response.
#[test]
fn a_fetch_of_many_partitions_sends_each_in_order() {
    const PARTITIONS: i32 = 80;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let mut c = Client::connect(&broker);
    let (values, batches) = topic_of_distinct_batches(&mut c, "many", PARTITIONS, 200);
    let wanted: Vec<(&str, i32, i64, i32)> =
        (0..PARTITIONS).map(|p| ("many", p, 0, 1 << 20)).collect();
    let out = fetch(&mut c, 0, 1, 1 << 24, &wanted);
    assert_eq!(out.len(), PARTITIONS as usize);
    for (p, fetched) in out.iter().enumerate() {
        assert_eq!(fetched.error, 0, "partition {p}");
        assert_own_batch(p, &fetched.records, &values, &batches);
    }
    // The connection is still in step: a second fetch is answered too.
    let again = fetch(&mut c, 0, 1, 1 << 24, &wanted[..3]);
    assert_eq!(again.len(), 3);
}

/// Many partitions of one topic in one topic entry: the response lists each exactly once with
/// its own batches (grouped by shard, in whatever order), and the connection stays in step.
#[test]
fn a_topic_of_many_partitions_is_answered_once_per_partition() {
    const PARTITIONS: i32 = 70;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let mut c = Client::connect(&broker);
    let (values, batches) = topic_of_distinct_batches(&mut c, "grouped", PARTITIONS, 100);
    let wanted: Vec<i32> = (0..PARTITIONS).collect();
    for _ in 0..2 {
        let mut out = fetch_one_topic(&mut c, "grouped", &wanted);
        out.sort_by_key(|(index, _)| *index);
        let indexes: Vec<i32> = out.iter().map(|(index, _)| *index).collect();
        assert_eq!(indexes, wanted, "each partition once");
        for (index, records) in &out {
            assert_own_batch(*index as usize, records, &values, &batches);
        }
    }
}

/// Issue #15, item 7: a client cannot make the broker hold partitions without bound. Beyond
/// `max_partitions` (all topics) or `max_partitions_per_request` (one CreateTopics), creation
/// is refused with POLICY_VIOLATION, by CreateTopics and by auto-creation alike.
#[test]
fn topic_creation_stops_at_the_partition_limits() {
    const POLICY_VIOLATION: i16 = 44;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &[
            "--max-partitions",
            "6",
            "--max-partitions-per-request",
            "4",
            "--default-partitions",
            "2",
        ],
    );
    let mut c = Client::connect(&broker);
    assert_eq!(
        create_topic(&mut c, "big", 5),
        POLICY_VIOLATION,
        "per request"
    );
    assert_eq!(create_topic(&mut c, "a", 3), 0);
    assert_eq!(create_topic(&mut c, "b", 4), POLICY_VIOLATION, "3 + 4 > 6");
    assert_eq!(create_topic(&mut c, "c", 3), 0, "exactly at the limit");
    // Auto-creation (Metadata v8 allowing it) is refused too: 6 + 2 > 6.
    let mut b = BytesMut::new();
    b.put_i32(1);
    put_str(&mut b, "auto");
    b.put_i8(1); // allow auto topic creation
    b.put_i8(0); // cluster authorized operations
    b.put_i8(0); // topic authorized operations
    let mut r = c.call(METADATA, 8, &b);
    r.get_i32(); // throttle
    for _ in 0..r.get_i32() {
        r.get_i32(); // node id
        get_str(&mut r);
        r.get_i32(); // port
        r.get_i16(); // rack (null)
    }
    get_str(&mut r); // cluster id
    r.get_i32(); // controller
    assert_eq!(r.get_i32(), 1, "one topic");
    assert_eq!(r.get_i16(), POLICY_VIOLATION);
    assert_eq!(get_str(&mut r), "auto");
    // The refused topics were not created, on disk either.
    drop(c);
    assert!(!dir.path().join("b-0").exists() && !dir.path().join("auto-0").exists());
}

/// InitProducerId v0 (classic) and v4 (flexible: request header v2, response header v1).
fn init_producer_id(c: &mut Client, version: i16) -> (i16, i64, i16) {
    let mut b = BytesMut::new();
    if version >= 2 {
        b.put_u8(0); // request header: no tagged fields (after the client id)
        b.put_u8(0); // transactional id: compact null
        b.put_i32(60_000);
        b.put_i64(-1);
        b.put_i16(-1);
        b.put_u8(0); // no tagged fields
    } else {
        b.put_i16(-1);
        b.put_i32(60_000);
    }
    let mut r = c.call(INIT_PRODUCER_ID, version, &b);
    if version >= 2 {
        assert_eq!(r.get_u8(), 0, "response header tagged fields");
    }
    assert_eq!(r.get_i32(), 0, "throttle");
    let answer = (r.get_i16(), r.get_i64(), r.get_i16());
    if version >= 2 {
        assert_eq!(r.get_u8(), 0, "body tagged fields");
    }
    assert!(r.is_empty());
    answer
}

fn producer_batch(producer_id: i64, sequence: i32, values: &[&[u8]]) -> Vec<u8> {
    let mut builder = rill::BatchBuilder::new();
    builder.producer(producer_id, 0, sequence);
    for v in values {
        builder
            .append(1_700_000_000_000, Some(b"k"), Some(v), &[])
            .unwrap();
    }
    builder.finish().unwrap().to_vec()
}

#[test]
fn idempotent_producers_get_ids_and_retries_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), &[]);
    let mut c = Client::connect(&broker);
    assert_eq!(create_topic(&mut c, "idem", 1), 0);
    let (error, first, epoch) = init_producer_id(&mut c, 0);
    assert_eq!((error, epoch), (0, 0));
    let (error, second, _) = init_producer_id(&mut c, 4);
    assert_eq!(error, 0);
    assert!(second > first, "ids are never handed out twice");
    let batch0 = producer_batch(second, 0, &[b"a", b"b"]);
    let batch1 = producer_batch(second, 2, &[b"c"]);
    assert_eq!(produce(&mut c, 8, -1, &[("idem", 0, &batch0)]), [(0, 0)]);
    // A retry: success with the original offset, nothing stored twice.
    assert_eq!(produce(&mut c, 8, -1, &[("idem", 0, &batch0)]), [(0, 0)]);
    // A gap: OUT_OF_ORDER_SEQUENCE_NUMBER.
    let gap = producer_batch(second, 5, &[b"x"]);
    assert_eq!(produce(&mut c, 8, -1, &[("idem", 0, &gap)])[0].0, 45);
    assert_eq!(produce(&mut c, 8, -1, &[("idem", 0, &batch1)]), [(0, 2)]);
    // After a restart the producer's state is still known, and ids still never repeat.
    assert!(broker.terminate());
    let broker = Broker::start(dir.path(), &[]);
    let mut c = Client::connect(&broker);
    assert_eq!(produce(&mut c, 8, -1, &[("idem", 0, &batch1)]), [(0, 2)]);
    let (_, third, _) = init_producer_id(&mut c, 4);
    assert!(third > second);
    let fetched = fetch_one_topic(&mut c, "idem", &[0]);
    let records = &fetched[0].1;
    let mut offsets = Vec::new();
    let mut rest = &records[..];
    while !rest.is_empty() {
        let header = rill::batch::BatchHeader::parse(rest).unwrap();
        offsets.push(header.base_offset);
        rest = &rest[header.total_bytes() as usize..];
    }
    assert_eq!(offsets, [0, 2], "each batch stored once");
}

/// CreateTopics v4 of one topic with `configs`: its error code.
fn create_topic_with(c: &mut Client, name: &str, configs: &[(&str, &str)]) -> i16 {
    let mut b = BytesMut::new();
    b.put_i32(1);
    put_str(&mut b, name);
    b.put_i32(1);
    b.put_i16(1);
    b.put_i32(0); // assignments
    b.put_i32(configs.len() as i32);
    for (key, value) in configs {
        put_str(&mut b, key);
        put_str(&mut b, value);
    }
    b.put_i32(5000);
    b.put_i8(0);
    let mut r = c.call(CREATE_TOPICS, 4, &b);
    r.get_i32();
    assert_eq!(r.get_i32(), 1);
    assert_eq!(get_str(&mut r), name);
    r.get_i16()
}

#[test]
fn topics_are_created_with_their_configs_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--message-max-bytes", "100000"]);
    let mut c = Client::connect(&broker);
    let compacted = [("cleanup.policy", "compact"), ("retention.ms", "-1")];
    assert_eq!(create_topic_with(&mut c, "table", &compacted), 0);
    // Unknown keys and values out of range: INVALID_CONFIG, nothing created.
    assert_eq!(create_topic_with(&mut c, "bad1", &[("bogus.key", "1")]), 40);
    assert_eq!(
        create_topic_with(&mut c, "bad2", &[("segment.bytes", "10")]),
        40
    );
    assert_eq!(
        create_topic_with(&mut c, "bad2", &[("cleanup.policy", "x")]),
        40
    );
    // The compacted topic refuses a record without a key (INVALID_RECORD in v8).
    let mut builder = rill::BatchBuilder::new();
    builder
        .append(1_700_000_000_000, None, Some(b"v"), &[])
        .unwrap();
    let keyless = builder.finish().unwrap().to_vec();
    assert_eq!(produce(&mut c, 8, -1, &[("table", 0, &keyless)])[0].0, 87);
    assert_eq!(
        produce(&mut c, 8, -1, &[("table", 0, &batch(&[b"v"]))])[0].0,
        0
    );
    // message.max.bytes bounds a batch.
    let big = batch(&[&vec![7u8; 150_000]]);
    assert_eq!(produce(&mut c, 8, -1, &[("table", 0, &big)])[0].0, 10);
}

const DELETE_RECORDS: i16 = 21;
const DESCRIBE_CONFIGS: i16 = 32;
const INCREMENTAL_ALTER_CONFIGS: i16 = 44;

/// DeleteRecords v1 of one partition: (low watermark, error).
fn delete_records(c: &mut Client, topic: &str, partition: i32, offset: i64) -> (i64, i16) {
    let mut b = BytesMut::new();
    b.put_i32(1);
    put_str(&mut b, topic);
    b.put_i32(1);
    b.put_i32(partition);
    b.put_i64(offset);
    b.put_i32(5000);
    let mut r = c.call(DELETE_RECORDS, 1, &b);
    assert_eq!(r.get_i32(), 0);
    assert_eq!(r.get_i32(), 1);
    assert_eq!(get_str(&mut r), topic);
    assert_eq!(r.get_i32(), 1);
    assert_eq!(r.get_i32(), partition);
    (r.get_i64(), r.get_i16())
}

/// IncrementalAlterConfigs v0 of one topic: its error code.
fn incremental_alter(c: &mut Client, topic: &str, changes: &[(&str, i8, Option<&str>)]) -> i16 {
    let mut b = BytesMut::new();
    b.put_i32(1);
    b.put_i8(2);
    put_str(&mut b, topic);
    b.put_i32(changes.len() as i32);
    for (key, operation, value) in changes {
        put_str(&mut b, key);
        b.put_i8(*operation);
        match value {
            Some(v) => put_str(&mut b, v),
            None => b.put_i16(-1),
        }
    }
    b.put_i8(0);
    let mut r = c.call(INCREMENTAL_ALTER_CONFIGS, 0, &b);
    assert_eq!(r.get_i32(), 0);
    assert_eq!(r.get_i32(), 1);
    r.get_i16()
}

/// DescribeConfigs v1 of one topic key: (value, config source).
fn describe(c: &mut Client, topic: &str, key: &str) -> (String, i8) {
    let mut b = BytesMut::new();
    b.put_i32(1);
    b.put_i8(2);
    put_str(&mut b, topic);
    b.put_i32(1);
    put_str(&mut b, key);
    b.put_i8(0); // include_synonyms
    let mut r = c.call(DESCRIBE_CONFIGS, 1, &b);
    assert_eq!(r.get_i32(), 0);
    assert_eq!(r.get_i32(), 1);
    assert_eq!(r.get_i16(), 0, "describe error");
    get_str(&mut r); // message
    assert_eq!(r.get_i8(), 2);
    assert_eq!(get_str(&mut r), topic);
    assert_eq!(r.get_i32(), 1, "the one key asked for");
    assert_eq!(get_str(&mut r), key);
    let value = get_str(&mut r);
    r.get_i8(); // read_only
    let source = r.get_i8();
    (value, source)
}

#[test]
fn delete_records_and_incremental_configs() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let mut c = Client::connect(&broker);
    assert_eq!(create_topic(&mut c, "admin", 1), 0);
    for _ in 0..3 {
        produce(&mut c, 8, -1, &[("admin", 0, &batch(&[b"a", b"b"]))]);
    }
    assert_eq!(delete_records(&mut c, "admin", 0, 2), (2, 0));
    assert_eq!(
        delete_records(&mut c, "admin", 0, -1),
        (6, 0),
        "-1: the high watermark"
    );
    assert_eq!(
        delete_records(&mut c, "admin", 9, 0).1,
        3,
        "unknown partition"
    );
    assert_eq!(
        delete_records(&mut c, "admin", 0, 99).1,
        1,
        "beyond the end"
    );

    // SET, then DELETE back to the default; other operations refused.
    assert_eq!(
        incremental_alter(&mut c, "admin", &[("retention.ms", 0, Some("1000"))]),
        0
    );
    assert_eq!(
        describe(&mut c, "admin", "retention.ms"),
        ("1000".into(), 1)
    );
    assert_eq!(
        incremental_alter(&mut c, "admin", &[("retention.ms", 1, None)]),
        0
    );
    assert_eq!(
        describe(&mut c, "admin", "retention.ms").1,
        5,
        "the default again"
    );
    assert_eq!(
        incremental_alter(&mut c, "admin", &[("retention.ms", 2, Some("1"))]),
        40
    );
    assert_eq!(
        incremental_alter(&mut c, "missing", &[("retention.ms", 0, Some("1"))]),
        3
    );
}

/// A LogAppendTime topic: the produce response carries the append time the broker stamped,
/// and the stored batch carries it as its maxTimestamp with the log-append-time attribute.
#[test]
fn log_append_time_topics_answer_with_the_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let mut c = Client::connect(&broker);
    let configs = [("message.timestamp.type", "LogAppendTime")];
    assert_eq!(create_topic_with(&mut c, "stamped", &configs), 0);
    let records = batch(&[b"v"]);
    let mut b = BytesMut::new();
    b.put_i16(-1);
    b.put_i16(-1);
    b.put_i32(10_000);
    b.put_i32(1);
    put_str(&mut b, "stamped");
    b.put_i32(1);
    b.put_i32(0);
    b.put_i32(records.len() as i32);
    b.put_slice(&records);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut r = c.call(PRODUCE, 8, &b);
    let mut append_time = None;
    each_partition(&mut r, |r| {
        assert_eq!(r.get_i16(), 0);
        assert_eq!(r.get_i64(), 0);
        append_time = Some(r.get_i64());
        r.get_i64();
        assert_eq!(r.get_i32(), 0);
        get_str(r);
    });
    let append_time = append_time.unwrap();
    // The broker's coarse clock may lag a few milliseconds.
    assert!(append_time >= before - 1_000, "{append_time} vs {before}");
    let fetched = fetch_one_topic(&mut c, "stamped", &[0]);
    let header = rill::batch::BatchHeader::parse(&fetched[0].1).unwrap();
    assert!(header.attributes.is_log_append_time());
    assert_eq!(header.max_timestamp, append_time);
}

fn put_uvarint(b: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn put_compact_str(b: &mut BytesMut, s: &str) {
    put_uvarint(b, s.len() as u32 + 1);
    b.put_slice(s.as_bytes());
}

/// Produce v9, the first flexible version (request header v2, compact strings, arrays and
/// records, tagged fields): stored and answered in the flexible response format.
#[test]
fn a_flexible_produce_is_stored_and_answered() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let mut c = Client::connect(&broker);
    assert_eq!(create_topic(&mut c, "flex", 1), 0);
    let records = batch(&[b"a", b"b", b"c"]);
    let mut b = BytesMut::new();
    b.put_u8(0); // request header v2: no tagged fields
    b.put_u8(0); // transactional id: null
    b.put_i16(-1);
    b.put_i32(10_000);
    put_uvarint(&mut b, 2); // one topic
    put_compact_str(&mut b, "flex");
    put_uvarint(&mut b, 2); // one partition
    b.put_i32(0);
    put_uvarint(&mut b, records.len() as u32 + 1);
    b.put_slice(&records);
    b.put_slice(&[0, 0, 0]); // partition, topic and request tagged fields
    for round in 0..2 {
        let mut r = c.call(PRODUCE, 9, &b);
        assert_eq!(r.get_u8(), 0, "response header tagged fields");
        assert_eq!(r.get_u8(), 2, "one topic");
        assert_eq!(r.get_u8(), 5);
        assert_eq!(&r.split_to(4)[..], b"flex");
        assert_eq!(r.get_u8(), 2, "one partition");
        assert_eq!(r.get_i32(), 0);
        assert_eq!(r.get_i16(), 0, "error");
        assert_eq!(r.get_i64(), 3 * round, "base offset");
        assert_eq!(r.get_i64(), -1, "log append time");
        assert_eq!(r.get_i64(), 0, "log start offset");
        assert_eq!(r.get_u8(), 1, "no record errors");
        assert_eq!(r.get_u8(), 0, "null error message");
        assert_eq!(r.split_to(2)[..], [0, 0][..], "partition and topic tags");
        assert_eq!(r.get_i32(), 0, "throttle");
        assert_eq!(r.get_u8(), 0, "tagged fields");
        assert!(r.is_empty());
    }
}
