//! The admin APIs through confluent-kafka's AdminClient (librdkafka) and kafkajs's admin
//! client against a real `rill-broker` process: a topic created with configs, described,
//! altered (an unknown key refused by name), grown; a consumer group listed and described
//! with its lag (committed offsets against the high watermarks); the group and the topic
//! deleted (`clients/admin_confluent.py`, `clients/admin.js`; kafka-python's admin client
//! is in `kafka_python.rs`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use common::{Broker, client_script, kafkajs_dir, python_module_available, run};
use std::process::Command;
use std::time::Duration;

const FLAGS: [&str; 2] = ["--group-initial-rebalance-delay-ms", "0"];

#[test]
fn confluent_kafka_admin_client() {
    if !python_module_available("confluent_kafka") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &FLAGS);
    let out = run(
        Command::new("python3")
            .arg(client_script("admin_confluent.py"))
            .arg(&broker.addr),
        Duration::from_mins(2),
    );
    assert!(
        out.contains("\"lag\": 60") && out.contains("\"ok\": true"),
        "{out}"
    );
}

#[test]
fn kafkajs_admin_client() {
    let Some(dir) = kafkajs_dir() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let broker = Broker::start(data.path(), &FLAGS);
    let out = run(
        Command::new("node")
            .env("NODE_PATH", dir.join("node_modules"))
            .arg(client_script("admin.js"))
            .arg(&broker.addr),
        Duration::from_mins(2),
    );
    assert!(
        out.contains("\"lag\":60") && out.contains("\"ok\": true"),
        "{out}"
    );
}
