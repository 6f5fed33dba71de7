//! Consumer groups with real clients against a real `rill-broker` process: three consumers of
//! one group share a six-partition topic, one leaves and another joins mid-stream, and every
//! message is received with nothing redelivered beyond an uncommitted poll; with the broker
//! restarted (SIGTERM, and separately SIGKILL) under the running group, the group resumes
//! from its committed offsets; and with idempotent producers under the broker's produce-timeout
//! fault, nothing is stored twice and offsets stay dense (`clients/group.py`,
//! `clients/group.js`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use common::{Broker, client_script, free_port, kafkajs_dir, python_module_available};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Broker flags for group tests: topics auto-created with six partitions; a short first
/// rebalance delay (Kafka's 3 s would only slow the test).
const FLAGS: [&str; 4] = [
    "--default-partitions",
    "6",
    "--group-initial-rebalance-delay-ms",
    "300",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Restart {
    None,
    Terminate,
    Kill,
    /// No restart; idempotent producers, and the broker answers every third produce
    /// REQUEST_TIMED_OUT after storing it.
    ProduceTimeouts,
}

/// Runs a group client script against a broker on a fixed port, restarting the broker when
/// the script prints RESTART; returns the script's last line (its JSON summary).
fn run_group(mut command: Command, restart: Restart) -> String {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut flags = FLAGS.to_vec();
    if restart == Restart::ProduceTimeouts {
        flags.extend(["--fault-time-out-produces", "3"]);
    }
    let mut broker = Broker::start_on(&listen, dir.path(), &flags);
    command.arg(&broker.addr).arg(format!("group-{restart:?}"));
    match restart {
        Restart::None => {}
        Restart::ProduceTimeouts => {
            command.arg("--idempotent");
        }
        Restart::Terminate | Restart::Kill => {
            command.arg("--restart");
        }
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client");
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_mins(4);
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut last = String::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        if line == "RESTART" {
            match restart {
                Restart::Terminate => assert!(broker.terminate(), "clean shutdown"),
                Restart::Kill | Restart::None | Restart::ProduceTimeouts => broker.kill9(),
            }
            broker = Broker::start_on(&listen, dir.path(), &flags);
            writeln!(child.stdin.as_mut().unwrap(), "restarted").unwrap();
        } else {
            last = line;
        }
        assert!(Instant::now() < deadline, "the client ran past its limit");
    }
    let status = child.wait().unwrap();
    let errors = errors.join().unwrap();
    assert!(
        status.success() && last.contains("\"ok\": true"),
        "{status}: {last}\nstderr:\n{errors}"
    );
    eprintln!("{last}");
    drop(broker);
    last
}

fn python(lib: &str, restart: Restart) {
    let module = match lib {
        "confluent" => "confluent_kafka",
        "kafka-python" => "kafka",
        _ => "aiokafka",
    };
    if !python_module_available(module) {
        return;
    }
    let mut command = Command::new("python3");
    command.arg(client_script("group.py")).arg(lib);
    run_group(command, restart);
}

fn kafkajs(restart: Restart) {
    let Some(dir) = kafkajs_dir() else {
        return;
    };
    let mut command = Command::new("node");
    command
        .env("NODE_PATH", Path::new(&dir).join("node_modules"))
        .arg(client_script("group.js"));
    run_group(command, restart);
}

#[test]
fn confluent_kafka_group() {
    python("confluent", Restart::None);
}

#[test]
fn confluent_kafka_group_across_a_sigterm_restart() {
    python("confluent", Restart::Terminate);
}

#[test]
fn confluent_kafka_group_across_a_sigkill_restart() {
    python("confluent", Restart::Kill);
}

#[test]
fn kafka_python_group_across_a_sigkill_restart() {
    python("kafka-python", Restart::Kill);
}

#[test]
fn aiokafka_group_across_a_sigterm_restart() {
    python("aiokafka", Restart::Terminate);
}

#[test]
fn kafkajs_group_across_a_sigkill_restart() {
    kafkajs(Restart::Kill);
}

#[test]
fn confluent_kafka_group_with_idempotent_producers_under_produce_timeouts() {
    python("confluent", Restart::ProduceTimeouts);
}

#[test]
fn aiokafka_group_with_idempotent_producers_under_produce_timeouts() {
    python("aiokafka", Restart::ProduceTimeouts);
}

#[test]
fn kafkajs_group_with_idempotent_producers_under_produce_timeouts() {
    kafkajs(Restart::ProduceTimeouts);
}
