#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a test failure"
)]
//! A real crash test: a child process appends durably to several partitions and reports each
//! acknowledged batch; it is killed with SIGKILL at random moments, many times, alternating
//! the io_uring and syscall drivers. After each kill the log is reopened: every acknowledged
//! batch is there byte for byte at its offset, offsets are contiguous, and the next child
//! continues at the recovered end.
//!
//! `RILL_CRASH_ITERATIONS` (default 12) sets the number of kills.

use rill::{Config, Log};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Acked {
    base: i64,
    last: i64,
    seed: u64,
}

fn open(dir: &std::path::Path) -> (Log, rill::OpenReport) {
    let mut config = Config::new(dir);
    config.log = rill_tests::crash_config();
    Log::open(config).expect("the log recovers after SIGKILL")
}

#[test]
fn acknowledged_durable_appends_survive_sigkill() {
    let iterations: u64 = std::env::var("RILL_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acked: BTreeMap<u32, Vec<Acked>> = BTreeMap::new();
    let mut rng = 0x2545_f491_4f6c_dd1d_u64 ^ iterations;
    for run in 0..iterations {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let driver = if run % 2 == 0 { "uring" } else { "syscall" };
        let kill_after = Duration::from_millis(5 + rng % 200);
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash_child"))
            .arg(dir.path())
            .arg(driver)
            .arg((run + 1).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut first_ack = None;
        let mut acks_this_run = 0;
        // Bounded: the child appends forever, so lines keep coming until the kill, and the
        // kill comes `kill_after` past the first ack (or after 60 s without one: a hang).
        let start = Instant::now();
        while let Some(Ok(line)) = lines.next() {
            let fields: Vec<&str> = line.split(' ').collect();
            match fields.as_slice() {
                ["open", p, end] => {
                    let (p, end): (u32, i64) = (p.parse().unwrap(), end.parse().unwrap());
                    let want = acked
                        .get(&p)
                        .and_then(|v| v.last())
                        .map_or(0, |a| a.last + 1);
                    assert!(
                        end >= want,
                        "run {run}: partition {p} reopened at {end}, below acknowledged {want}"
                    );
                }
                ["ack", p, base, last, seed] => {
                    let p: u32 = p.parse().unwrap();
                    let a = Acked {
                        base: base.parse().unwrap(),
                        last: last.parse().unwrap(),
                        seed: seed.parse().unwrap(),
                    };
                    if let Some(prev) = acked.get(&p).and_then(|v| v.last()) {
                        assert!(a.base > prev.last, "run {run}: offsets went back");
                    }
                    acked.entry(p).or_default().push(a);
                    acks_this_run += 1;
                    first_ack.get_or_insert_with(Instant::now);
                }
                _ => panic!("unexpected line from child: {line}"),
            }
            let due = first_ack.is_some_and(|t| t.elapsed() >= kill_after);
            assert!(
                start.elapsed() < Duration::from_mins(1),
                "child made no progress"
            );
            if due {
                break;
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap child");
        assert!(
            acks_this_run > 0,
            "run {run}: no acknowledgement before the kill"
        );

        // Reopen in this process and check every acknowledged batch.
        let (log, report) = open(dir.path());
        assert!(
            report
                .partitions
                .iter()
                .all(|p| p.report.repaired.is_none())
        );
        for (p, batches) in &acked {
            let part = log.partition("c", *p).expect("partition");
            let end = part.offsets().log_end;
            let last = batches.last().map_or(0, |a| a.last + 1);
            assert!(
                end >= last,
                "run {run} ({driver}): partition {p} ends at {end}, acknowledged up to {last}"
            );
            for a in batches {
                let read = part
                    .read(a.base, 1)
                    .wait()
                    .expect("read acknowledged batch");
                let got = rill_tests::split_batches(read.bytes());
                let (base, bytes) = got.first().expect("a batch");
                assert_eq!(*base, a.base, "run {run}: partition {p}: batch moved");
                let (records, value_bytes) = rill_tests::crash_batch_shape(a.seed);
                let want = rill_tests::make_batch(
                    records,
                    value_bytes,
                    (a.seed & 0xffff_ffff) as i64,
                    a.seed,
                );
                assert_eq!(
                    &bytes[8..],
                    &want[8..],
                    "run {run}: partition {p} offset {}: bytes differ",
                    a.base
                );
                assert_eq!(a.last - a.base + 1, records as i64);
            }
        }
        log.close().expect("clean close");
    }
}
