//! librdkafka, through kcat, against a real `rill-broker` process: produce with keys and
//! headers to several partitions, consume everything back and compare; consume from the
//! middle by offset and by timestamp; every compression codec asked for (librdkafka compresses
//! only zstd here: it takes a broker without FindCoordinator for one older than Kafka 0.8.2 and
//! sends gzip, snappy and lz4 batches uncompressed, so those codecs' decoding is tested with
//! kafka-python's batches in `tests/tests/compressed_fixtures.rs`); a SIGTERM shuts the broker
//! down cleanly.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use common::{Broker, kcat_available, run};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const LIMIT: Duration = Duration::from_mins(2);

fn kcat(broker: &Broker) -> Command {
    let mut c = Command::new("kcat");
    c.args(["-b", &broker.addr, "-q"]);
    c
}

/// Produces `lines` (`key:value` each) to `topic` with `extra` kcat flags; acks=all.
fn produce(broker: &Broker, topic: &str, lines: &[String], extra: &[&str]) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), lines.join("\n") + "\n").unwrap();
    run(
        kcat(broker)
            .args(["-P", "-t", topic, "-K:", "-X", "acks=all", "-l"])
            .arg(file.path())
            .args(extra),
        LIMIT,
    );
}

/// One consumed message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    partition: u32,
    offset: i64,
    key: String,
    value: String,
    headers: String,
}

/// Consumes until the end with `extra` flags (which pick partitions and offsets).
fn consume(broker: &Broker, topic: &str, extra: &[&str]) -> Vec<Message> {
    let out = run(
        kcat(broker)
            .args(["-C", "-t", topic, "-e", "-f", "%p|%o|%k|%s|%h\\n"])
            .args(extra),
        LIMIT,
    );
    out.lines()
        .map(|line| {
            let f: Vec<&str> = line.splitn(5, '|').collect();
            assert_eq!(f.len(), 5, "{line}");
            Message {
                partition: f[0].parse().unwrap(),
                offset: f[1].parse().unwrap(),
                key: f[2].to_owned(),
                value: f[3].to_owned(),
                headers: f[4].to_owned(),
            }
        })
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn kcat_round_trips_keys_headers_partitions_offsets_timestamps_and_codecs() {
    if !kcat_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), &["--default-partitions", "4"]);

    // 2000 keyed messages with headers; librdkafka spreads them over the 4 partitions by key.
    let count = 2000;
    let lines: Vec<String> = (0..count).map(|i| format!("key-{i}:value-{i}")).collect();
    produce(
        &broker,
        "orders",
        &lines,
        &["-H", "source=kcat", "-H", "n=42"],
    );
    let all = consume(&broker, "orders", &["-o", "beginning"]);
    assert_eq!(all.len(), count, "every message comes back once");
    let mut by_partition: BTreeMap<u32, Vec<&Message>> = BTreeMap::new();
    let mut key_partition = BTreeMap::new();
    for m in &all {
        let i: usize = m.key.strip_prefix("key-").unwrap().parse().unwrap();
        assert_eq!(m.value, format!("value-{i}"));
        assert_eq!(m.headers, "source=kcat,n=42");
        assert_eq!(
            *key_partition.entry(m.key.clone()).or_insert(m.partition),
            m.partition
        );
        by_partition.entry(m.partition).or_default().push(m);
    }
    assert_eq!(key_partition.len(), count, "no key repeated or lost");
    assert!(
        by_partition.len() >= 3,
        "keys spread over partitions: {:?}",
        by_partition.keys()
    );
    for (partition, messages) in &by_partition {
        let offsets: Vec<i64> = messages.iter().map(|m| m.offset).collect();
        let expected: Vec<i64> = (0..messages.len() as i64).collect();
        assert_eq!(
            offsets, expected,
            "partition {partition}: offsets 0.. without gaps"
        );
        // Within a partition, messages keep the order they were produced in.
        let produced: Vec<usize> = messages
            .iter()
            .map(|m| m.key[4..].parse().unwrap())
            .collect();
        assert!(
            produced.windows(2).all(|w| w[0] < w[1]),
            "partition {partition} order"
        );
    }

    // From the middle, by offset.
    let (&partition, messages) = by_partition.iter().max_by_key(|(_, m)| m.len()).unwrap();
    let middle = consume(
        &broker,
        "orders",
        &["-p", &partition.to_string(), "-o", "100", "-c", "7"],
    );
    let expected: Vec<Message> = messages[100..107].iter().map(|m| (*m).clone()).collect();
    assert_eq!(middle, expected);

    // By timestamp: only what was produced after the mark.
    produce(
        &broker,
        "timed",
        &["a:early-1".into(), "b:early-2".into()],
        &["-p", "0"],
    );
    std::thread::sleep(Duration::from_millis(20));
    let mark = now_ms();
    std::thread::sleep(Duration::from_millis(20));
    produce(
        &broker,
        "timed",
        &["c:late-1".into(), "d:late-2".into()],
        &["-p", "0"],
    );
    let late = consume(&broker, "timed", &["-p", "0", "-o", &format!("s@{mark}")]);
    let values: Vec<&str> = late.iter().map(|m| m.value.as_str()).collect();
    assert_eq!(values, ["late-1", "late-2"]);
    assert_eq!(late[0].offset, 2);

    // Compressed batches (zstd; librdkafka declines the others here, see above) are checked on
    // append, stored as sent and come back intact.
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        let lines: Vec<String> = (0..300)
            .map(|i| format!("k{i}:{codec} value {i} {}", "x".repeat(i % 50)))
            .collect();
        produce(&broker, &topic, &lines, &["-z", codec, "-p", "0"]);
        let back = consume(&broker, &topic, &["-o", "beginning"]);
        let got: Vec<String> = back
            .iter()
            .map(|m| format!("{}:{}", m.key, m.value))
            .collect();
        assert_eq!(got, lines, "{codec}");
    }

    // SIGTERM: a clean shutdown, so the next open loads without a recovery scan.
    assert!(broker.terminate(), "rill-broker exits 0 on SIGTERM");
    let (log, report) = rill::Log::open(rill::Config::new(dir.path())).unwrap();
    assert!(
        report.partitions.iter().all(|p| p.report.clean_load),
        "{report:?}"
    );
    assert_eq!(
        log.offsets("orders")
            .unwrap()
            .iter()
            .map(|o| o.log_end)
            .sum::<i64>(),
        count as i64
    );
    log.close().unwrap();
}

/// librdkafka's idempotent producer (`enable.idempotence=true`: InitProducerId, then
/// sequenced batches) against the broker: every message stored once, offsets dense, and the
/// stored batches carry the producer id the broker handed out.
#[test]
fn kcat_produces_idempotently() {
    if !kcat_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), &["--default-partitions", "1"]);
    let lines: Vec<String> = (0..2000).map(|i| format!("k{}:v{i}", i % 10)).collect();
    produce(
        &broker,
        "idem",
        &lines,
        &["-X", "enable.idempotence=true", "-X", "linger.ms=5"],
    );
    let messages = consume(&broker, "idem", &["-o", "beginning"]);
    assert_eq!(messages.len(), lines.len(), "every message once");
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m.offset, i as i64, "dense offsets");
        assert_eq!(format!("{}:{}", m.key, m.value), lines[i]);
    }
    assert!(broker.terminate());
    // The batches name the producer: read them from the log itself.
    let (log, _) = rill::Log::open(rill::Config::new(dir.path())).unwrap();
    let p = log.partition("idem", 0).unwrap();
    let read = p.read(0, 1 << 20).wait().unwrap();
    let first = rill::batch::BatchHeader::parse(read.batches().next().unwrap()).unwrap();
    assert!(
        first.producer_id >= 0,
        "librdkafka sent an idempotent batch"
    );
    assert_eq!(first.base_sequence, 0);
    log.close().unwrap();
}

/// With the broker answering every third produce request REQUEST_TIMED_OUT after storing its
/// batches (a test-only fault), librdkafka retries what it cannot know was stored: without
/// idempotence that stores duplicates; with it, the engine recognises each retry and answers
/// with the original offsets, so every message is stored exactly once.
#[test]
fn produces_timed_out_after_storing_store_nothing_twice_with_idempotence() {
    if !kcat_available() {
        return;
    }
    let lines: Vec<String> = (0..3000).map(|i| format!("k{}:v{i}", i % 10)).collect();
    let mut stored = Vec::new();
    for idempotent in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(
            dir.path(),
            &[
                "--default-partitions",
                "1",
                "--fault-time-out-produces",
                "3",
            ],
        );
        let mut extra = vec!["-X", "linger.ms=2", "-X", "batch.num.messages=100"];
        if idempotent {
            extra.extend(["-X", "enable.idempotence=true"]);
        }
        produce(&broker, "faulty", &lines, &extra);
        let messages = consume(&broker, "faulty", &["-o", "beginning"]);
        for (i, m) in messages.iter().enumerate() {
            assert_eq!(m.offset, i as i64, "dense offsets");
        }
        stored.push(messages);
    }
    assert!(
        stored[0].len() > lines.len(),
        "the fault made a plain producer store duplicates ({} stored)",
        stored[0].len()
    );
    let values: Vec<String> = stored[1]
        .iter()
        .map(|m| format!("{}:{}", m.key, m.value))
        .collect();
    assert_eq!(
        values, lines,
        "idempotent: every message exactly once, in order"
    );
}

/// `kcat -G`, librdkafka's balanced consumer: it consumes a four-partition topic through a
/// group, commits (automatically, and at exit), and a second run of the same group gets only
/// what was produced since.
#[test]
fn kcat_consumes_through_a_group_and_resumes_from_its_commits() {
    if !kcat_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &[
            "--default-partitions",
            "4",
            "--group-initial-rebalance-delay-ms",
            "0",
        ],
    );
    let group_consume = |count: usize| -> Vec<String> {
        let out = run(
            kcat(&broker)
                .args(["-G", "kcat-group", "grouped", "-c", &count.to_string()])
                .args(["-X", "auto.offset.reset=earliest", "-f", "%s\\n"]),
            LIMIT,
        );
        let mut values: Vec<String> = out.lines().map(str::to_owned).collect();
        values.sort();
        values
    };
    let lines: Vec<String> = (0..40).map(|i| format!("k{i}:v{i:02}")).collect();
    produce(&broker, "grouped", &lines, &[]);
    let expected: Vec<String> = (0..40).map(|i| format!("v{i:02}")).collect();
    assert_eq!(group_consume(40), expected);
    let more: Vec<String> = (40..50).map(|i| format!("k{i}:v{i:02}")).collect();
    produce(&broker, "grouped", &more, &[]);
    let expected: Vec<String> = (40..50).map(|i| format!("v{i:02}")).collect();
    assert_eq!(group_consume(10), expected, "resumed from the commits");
}
