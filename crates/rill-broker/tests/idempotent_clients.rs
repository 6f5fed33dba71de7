//! Idempotent producers of confluent-kafka, aiokafka and kafkajs against a real `rill-broker`
//! whose test-only fault answers every third produce request REQUEST_TIMED_OUT after storing
//! it: each client retries what was stored. Without idempotence the retries store duplicates
//! (the fault bites); with it, every message is stored exactly once, in order, at dense
//! offsets (`clients/idempotent.py`, `clients/idempotent.js`; kcat's run is in `kcat.rs`).

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

const COUNT: usize = 2000;

/// Runs the client in both modes against one faulty broker; checks what each stored.
fn check(mut client: impl FnMut(&str, &str) -> Command) {
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
    for mode in ["plain", "idempotent"] {
        let mut command = client(&broker.addr, mode);
        let out = run(&mut command, Duration::from_mins(3));
        let line = out.lines().last().unwrap_or_default();
        let summary: serde_json::Value = serde_json::from_str(line).unwrap();
        let stored = summary["stored"].as_u64().unwrap() as usize;
        assert_eq!(summary["dense"], true, "{line}");
        if mode == "plain" {
            assert!(
                stored > COUNT,
                "the fault made retries store duplicates: {line}"
            );
        } else {
            assert_eq!(stored, COUNT, "{line}");
            assert_eq!(summary["exactly_once_in_order"], true, "{line}");
        }
    }
}

fn python(lib: &str, module: &str) {
    if !python_module_available(module) || !python_module_available("kafka") {
        return;
    }
    check(|addr, mode| {
        let mut c = Command::new("python3");
        c.arg(client_script("idempotent.py")).args([
            lib,
            addr,
            &format!("{lib}-{mode}"),
            &COUNT.to_string(),
            mode,
        ]);
        c
    });
}

#[test]
fn confluent_kafka_idempotent_producer_stores_retries_once() {
    python("confluent", "confluent_kafka");
}

#[test]
fn aiokafka_idempotent_producer_stores_retries_once() {
    python("aiokafka", "aiokafka");
}

#[test]
fn kafkajs_idempotent_producer_stores_retries_once() {
    let Some(dir) = kafkajs_dir() else {
        return;
    };
    check(|addr, mode| {
        let mut c = Command::new("node");
        c.env("NODE_PATH", dir.join("node_modules"))
            .arg(client_script("idempotent.js"))
            .args([addr, &format!("kafkajs-{mode}"), &COUNT.to_string(), mode]);
        c
    });
}
