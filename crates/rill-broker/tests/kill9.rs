//! Durability across a crash, with a real client: kafka-python produces with acks=all while
//! the broker is SIGKILLed at a random moment; after a restart on the same data directory,
//! every acknowledged message is found at the offset it was acknowledged with.
//! `RILL_BROKER_KILLS` sets how many crashes (default 3).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use common::{Broker, client_script, kafka_python_available, kcat_available, run};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PARTITIONS: u32 = 4;

#[test]
fn every_acknowledged_message_survives_sigkill() {
    if !kafka_python_available() || !kcat_available() {
        return;
    }
    let kills: usize = std::env::var("RILL_BROKER_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    // (partition, offset) -> key, over every round.
    let mut acked: BTreeMap<(u32, i64), String> = BTreeMap::new();
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    for round in 0..kills {
        let mut broker = Broker::start(
            dir.path(),
            &["--default-partitions", &PARTITIONS.to_string()],
        );
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let kill_after = 200 + (seed >> 8) as usize % 3000;
        let mut producer = Command::new("python3")
            .arg(client_script("produce_until_killed.py"))
            .args([&broker.addr, "crash", &PARTITIONS.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout = producer.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut this_round = 0;
        let mut killed = false;
        let deadline = Instant::now() + Duration::from_mins(2);
        // Bounded by the deadline and the producer's end (its stdout closes).
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    assert_eq!(f.len(), 4, "{line}");
                    let key = (f[1].parse().unwrap(), f[2].parse().unwrap());
                    let previous = acked.insert(key, f[3].to_owned());
                    assert!(previous.is_none(), "offset {key:?} acknowledged twice");
                    this_round += 1;
                    if this_round == kill_after && !killed {
                        broker.kill9();
                        killed = true;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            assert!(Instant::now() < deadline, "round {round} did not finish");
        }
        let _ = producer.kill();
        let _ = producer.wait();
        reader.join().unwrap();
        assert!(
            killed,
            "round {round}: only {this_round} acks before the producer stopped"
        );
        eprintln!(
            "round {round}: killed after {kill_after} acks; {} acked in all",
            acked.len()
        );
    }

    // Restart and read everything back.
    let broker = Broker::start(dir.path(), &[]);
    let out = run(
        Command::new("kcat").args([
            "-b",
            &broker.addr,
            "-q",
            "-C",
            "-t",
            "crash",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%p %o %k\\n",
        ]),
        Duration::from_mins(2),
    );
    let mut stored: BTreeMap<(u32, i64), String> = BTreeMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        stored.insert(
            (f[0].parse().unwrap(), f[1].parse().unwrap()),
            f[2].to_owned(),
        );
    }
    let missing: Vec<_> = acked
        .iter()
        .filter(|(at, key)| stored.get(at) != Some(key))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged messages lost or changed, e.g. {missing:?}",
        acked
            .iter()
            .filter(|(at, key)| stored.get(at) != Some(key))
            .count(),
        acked.len()
    );
    // Offsets stay dense: recovery truncates only unacknowledged tails.
    for p in 0..PARTITIONS {
        let offsets: Vec<i64> = stored
            .keys()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(
            offsets,
            (0..offsets.len() as i64).collect::<Vec<_>>(),
            "partition {p}"
        );
    }
}
