//! Real clients consuming a compacted partition through `rill-broker` (issue #16): the log is
//! written and compacted by the library (batches holding fewer records than their offsets, and
//! empty batches over emptied runs), then served by the broker; kafka-python and librdkafka
//! (kcat) must read every remaining record at its offset and reach the end, skipping the gaps
//! as they do on Kafka's compacted topics.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use common::{Broker, kafka_python_available, kcat_available, run};
use rill::{CleanupPolicy, Config, Log, LogConfig, Record, TopicConfig};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// Writes topic `c` (one compacted partition), compacts it, and returns what it holds:
/// offset → (key, value), and the log end.
fn compacted_log(dir: &std::path::Path) -> (BTreeMap<i64, (String, String)>, i64) {
    let mut config = Config::new(dir);
    config.log = LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 512,
        max_batch_bytes: 4096,
        retention_ms: None,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(config).unwrap();
    let topic = TopicConfig {
        cleanup_policy: Some(CleanupPolicy::Compact),
        ..TopicConfig::default()
    };
    log.create_topic_with("c", 1, &topic).unwrap();
    let p = log.partition("c", 0).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for i in 0..300u32 {
        // Mostly a few hot keys (long emptied runs), with some keys written once.
        let key = if i % 10 == 0 {
            format!("cold{i}")
        } else {
            format!("hot{}", i % 3)
        };
        let value = format!("value-{i}");
        let record = Record {
            key: Some(key.as_bytes()),
            ..Record::value(now, value.as_bytes())
        };
        p.append_records(&[record]).wait().unwrap();
    }
    let report = p.compact_now().unwrap().unwrap();
    assert!(report.records_removed > 100, "{report:?}");
    let end = p.offsets().log_end;
    let mut held = BTreeMap::new();
    let mut at = 0;
    while at < end {
        let read = p.read(at, 1 << 20).wait().unwrap();
        for b in read.batches() {
            for r in rill::batch::records(b).unwrap() {
                let r = r.unwrap();
                held.insert(
                    r.offset,
                    (
                        String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                        String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                    ),
                );
            }
        }
        at = read.next_offset;
    }
    log.close().unwrap();
    (held, end)
}

#[test]
fn kafka_python_and_kcat_consume_a_compacted_partition() {
    let python = kafka_python_available();
    let kcat = kcat_available();
    if !python && !kcat {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (expected, end) = compacted_log(dir.path());
    let broker = Broker::start(dir.path(), &[]);
    if python {
        let script = r#"
import json, sys
from kafka import KafkaConsumer, TopicPartition
addr, end = sys.argv[1], int(sys.argv[2])
c = KafkaConsumer(bootstrap_servers=addr, enable_auto_commit=False, consumer_timeout_ms=20000)
tp = TopicPartition("c", 0)
c.assign([tp])
c.seek_to_beginning(tp)
out = []
for m in c:
    out.append([m.offset, m.key.decode(), m.value.decode()])
    if c.position(tp) >= end:
        break
print(json.dumps({"records": out, "position": c.position(tp)}))
"#;
        let out = run(
            Command::new("python3")
                .args(["-c", script])
                .arg(&broker.addr)
                .arg(end.to_string()),
            Duration::from_mins(2),
        );
        let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let got: BTreeMap<i64, (String, String)> = json["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r[0].as_i64().unwrap(),
                    (
                        r[1].as_str().unwrap().to_owned(),
                        r[2].as_str().unwrap().to_owned(),
                    ),
                )
            })
            .collect();
        assert_eq!(got, expected, "kafka-python");
        assert_eq!(
            json["position"].as_i64(),
            Some(end),
            "kafka-python stopped short"
        );
    }
    if kcat {
        let out = run(
            Command::new("kcat").args([
                "-b",
                &broker.addr,
                "-q",
                "-C",
                "-t",
                "c",
                "-p",
                "0",
                "-o",
                "beginning",
                "-e",
                "-f",
                "%o|%k|%s\\n",
            ]),
            Duration::from_mins(2),
        );
        let got: BTreeMap<i64, (String, String)> = out
            .lines()
            .map(|line| {
                let mut f = line.splitn(3, '|');
                let offset = f.next().unwrap().parse().unwrap();
                (
                    offset,
                    (f.next().unwrap().to_owned(), f.next().unwrap().to_owned()),
                )
            })
            .collect();
        assert_eq!(got, expected, "kcat (librdkafka)");
    }
}
