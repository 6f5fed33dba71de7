#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a test failure"
)]

//! Power loss under the real drivers (issue #15). The SIGKILL crash tests keep the page cache,
//! so they pass even with every fdatasync removed; here rill's io_uring and syscall drivers run,
//! with their own system calls, on a file system that really loses what was not synced: a FUSE
//! mount of a simulated disk (`rill_sim::fuse::SimFs`; writes go through to it, the kernel keeps
//! no dirty page of its own).
//!
//! Each cycle mounts the disk, opens the log (recovering it), checks that every batch ever
//! acknowledged durable is there byte for byte, appends from two threads (durable, and some only
//! written) until the power is cut after a random number of disk calls, closes what is left,
//! unmounts (dropping the kernel's cache), and lets the disk lose what a power cut loses.
//! Cycles accumulate on one disk per driver, so recovery runs after recovery.
//!
//! CI runs 4 cycles per driver; `RILL_POWER_CYCLES=200` runs more. Needs root and `/dev/fuse`
//! (skipped with a `SKIP` line elsewhere, a failure under CI).

use rill::{Config, DriverChoice, Durability, Log, LogConfig, Partition};
use rill_sim::fuse::SimFs;
use rill_sim::{CrashKind, SimDisk, SimRng};
use rill_tests::{as_stored, make_batch, skip_or_fail};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

const PARTITIONS: u32 = 4;
const APPENDS_PER_THREAD: u64 = 150;

fn cycles() -> u64 {
    std::env::var("RILL_POWER_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

fn config(mountpoint: &Path, driver: DriverChoice) -> Config {
    let mut config = Config::new(mountpoint.join("data"));
    config.driver = driver;
    config.shards = 2;
    config.log = LogConfig {
        segment_bytes: 64 * 1024,
        max_batch_bytes: 16 * 1024,
        checkpoint_interval_ms: 0,
        ..LogConfig::default()
    };
    config
}

/// Batches acknowledged durable: (partition, base offset) → bytes as stored.
type Acked = BTreeMap<(u32, i64), Vec<u8>>;

fn check(log: &Log, acked: &Acked) {
    for (&(partition, base), stored) in acked {
        let p = log.partition("events", partition).unwrap();
        let read = p
            .read(base, stored.len() as u64)
            .wait()
            .unwrap_or_else(|e| {
                panic!("partition {partition}: acknowledged batch at {base} unreadable: {e}")
            });
        let found = read.batches().next();
        assert!(
            found == Some(&stored[..]),
            "partition {partition}: acknowledged batch at {base} lost or changed after a power cut"
        );
    }
}

/// Appends until the power is cut (or the thread's share is done); records durable acks.
fn produce(disk: &SimDisk, partitions: &[Partition], acked: &Mutex<Acked>, seed: u64) {
    let mut rng = SimRng::new(seed);
    for i in 0..APPENDS_PER_THREAD {
        let p = &partitions[rng.below(partitions.len() as u64) as usize];
        let batch = make_batch(
            1 + rng.below(8) as usize,
            32 + rng.below(400) as usize,
            1_000 + i as i64,
            seed.wrapping_add(i),
        );
        let durable = rng.below(4) != 0;
        let durability = if durable {
            Durability::Durable
        } else {
            Durability::Written
        };
        match p.append_with(batch.clone(), durability).wait() {
            Ok(info) if durable => {
                let key = (p.index(), info.base_offset);
                let old = acked
                    .lock()
                    .unwrap()
                    .insert(key, as_stored(&batch, info.base_offset));
                assert!(old.is_none(), "offset {key:?} acknowledged twice");
            }
            Ok(_) => {}
            Err(e) => {
                assert!(disk.power_is_cut(), "append failed with the power on: {e}");
                return;
            }
        }
    }
}

fn run_driver(driver: DriverChoice, seed: u64) {
    let disk = Arc::new(SimDisk::new(seed));
    let mountpoint = tempfile::tempdir().unwrap();
    let mut rng = SimRng::new(seed);
    let mut acked = Acked::new();
    let mut cut_mid_run = 0;
    for cycle in 0..cycles() {
        let mount = match SimFs::mount(Arc::clone(&disk), mountpoint.path()) {
            Ok(mount) => mount,
            Err(e) => return skip_or_fail(&format!("cannot mount a FUSE file system: {e}")),
        };
        let config = config(mountpoint.path(), driver);
        let (log, report) = Log::open(config).unwrap_or_else(|e| {
            panic!("{driver:?} cycle {cycle}: the log does not open after a power cut: {e}")
        });
        assert_eq!(
            format!("{:?}", report.driver),
            format!("{driver:?}"),
            "ran on another driver"
        );
        if log.topics().is_empty() {
            log.create_topic("events", PARTITIONS).unwrap();
        }
        check(&log, &acked);

        let partitions = log.partitions("events").unwrap();
        disk.power_cut_after(20 + rng.below(600));
        let shared = Mutex::new(std::mem::take(&mut acked));
        std::thread::scope(|scope| {
            for thread in 0..2u64 {
                let (disk, partitions, shared) = (&disk, &partitions, &shared);
                let seed = seed ^ (cycle << 20) ^ (thread << 40);
                scope.spawn(move || produce(disk, partitions, shared, seed));
            }
        });
        acked = shared.into_inner().unwrap();
        if disk.power_is_cut() {
            cut_mid_run += 1;
        }
        let _ = log.close();
        drop(partitions);
        drop(log);
        // Every file is closed: the unmount must succeed, and takes the kernel's cache with it.
        mount.unmount().unwrap();
        disk.crash(CrashKind::Power);
    }
    // A last mount: everything acknowledged survives the last cut too.
    let mount = SimFs::mount(Arc::clone(&disk), mountpoint.path()).unwrap();
    let (log, _) = Log::open(config(mountpoint.path(), driver)).unwrap();
    check(&log, &acked);
    log.close().unwrap();
    drop(log);
    mount.unmount().unwrap();
    eprintln!(
        "{driver:?}: {} cycles ({cut_mid_run} cut while appending, the others at close), \
         {} batches acknowledged durable, all present",
        cycles(),
        acked.len()
    );
    assert!(cut_mid_run > 0, "no cycle cut the power while appending");
}

#[test]
fn io_uring_driver_keeps_acknowledged_batches_across_power_cuts() {
    run_driver(DriverChoice::Uring, 0x5eed_0001);
}

#[test]
fn syscall_driver_keeps_acknowledged_batches_across_power_cuts() {
    run_driver(DriverChoice::Syscall, 0x5eed_0002);
}
