//! kafka-python (an independent, pure-Python client) against a real `rill-broker` process:
//! the script `clients/roundtrip.py` creates a topic, produces with keys, binary values,
//! headers and timestamps at acks=all/1/0, consumes everything back and compares it, seeks by
//! offset and looks offsets up by time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use common::{Broker, client_script, kafka_python_available, run};
use std::process::Command;
use std::time::Duration;

#[test]
fn kafka_python_round_trip() {
    if !kafka_python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let out = run(
        Command::new("python3")
            .arg(client_script("roundtrip.py"))
            .arg(&broker.addr)
            .arg("3000"),
        Duration::from_mins(3),
    );
    assert!(out.contains("\"consumed\": 3000"), "{out}");
}

/// kafka-python's KafkaAdminClient (`clients/admin.py`): topics created with configs,
/// described, altered, a bad key refused by name, topics deleted.
#[test]
fn kafka_python_admin() {
    if !kafka_python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let out = run(
        Command::new("python3")
            .arg(client_script("admin.py"))
            .arg(&broker.addr),
        Duration::from_mins(2),
    );
    assert!(out.contains("\"ok\": true"), "{out}");
}

/// Committed offsets survive a broker killed with SIGKILL: kafka-python commits offset 40 of
/// a partition it assigned itself, the broker is killed and restarted, and a new consumer of
/// the group starts at 40 (`clients/offsets.py`).
#[test]
fn kafka_python_committed_offsets_survive_a_kill() {
    if !kafka_python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), &[]);
    let out = run(
        Command::new("python3")
            .arg(client_script("offsets.py"))
            .arg(&broker.addr)
            .arg("commit"),
        Duration::from_mins(2),
    );
    assert!(out.contains("\"committed\": 40"), "{out}");
    broker.kill9();
    let broker = Broker::start(dir.path(), &[]);
    let out = run(
        Command::new("python3")
            .arg(client_script("offsets.py"))
            .arg(&broker.addr)
            .arg("resume"),
        Duration::from_mins(2),
    );
    assert!(
        out.contains("\"committed\": 40") && out.contains("\"first\": 40"),
        "{out}"
    );
}
