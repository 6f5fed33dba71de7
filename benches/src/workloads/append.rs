//! Appends: producers append batches of records to the partitions of one topic for a fixed
//! time; records/s, MB/s, appends/s, latency p50/p99/p999, fdatasyncs/s, CPU s/GiB.
//!
//! Every producer is a thread that appends one batch and waits for its acknowledgement
//! before the next (a closed loop, one append in flight per producer), cycling over the
//! partitions it owns (producer `i` owns partitions `p` with `p % producers == i`; with more
//! producers than partitions, producers share them). Concurrency comes from the number of
//! producers, the same for every engine. A rill batch is a ready Kafka v2 batch, as a producer
//! sends it; copying it into the append's buffer is part of the timed work.

use super::{BASELINE, RILL_ENGINES, URING, build_batch, cpu_per_gib, limits, mb_per_s};
use crate::harness::{Bench, Engine, Mode, Sample};
use crate::measure::{Latency, PERCENTILES, device_written_bytes, process_cpu_seconds};
use crate::peers::{Peer, PeerLog};
use crate::report::WorkloadResult;
use anyhow::Result;
use bytes::BytesMut;
use rill::{Config, DriverChoice, Durability, Log};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One append case.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Bytes of each record's value.
    pub record_bytes: usize,
    /// Records per batch (per append).
    pub batch_records: usize,
    /// Partitions of the topic.
    pub partitions: u32,
    /// Producer threads.
    pub producers: usize,
    /// Written (page cache) or durable (fdatasync'd before the acknowledgement).
    pub durability: Durability,
    /// Whether the peers run this case too.
    pub peers: bool,
}

impl Case {
    const fn new(
        record_bytes: usize,
        batch_records: usize,
        partitions: u32,
        producers: usize,
        durability: Durability,
    ) -> Self {
        Self {
            record_bytes,
            batch_records,
            partitions,
            producers,
            durability,
            peers: false,
        }
    }

    const fn with_peers(mut self) -> Self {
        self.peers = true;
        self
    }

    fn name(&self) -> String {
        format!(
            "{} B x {} records, {} partition(s), {} producer(s), {}",
            self.record_bytes,
            self.batch_records,
            self.partitions,
            self.producers,
            durability_name(self.durability)
        )
    }

    fn record_bytes_total(&self, appends: u64) -> u64 {
        appends * (self.batch_records * self.record_bytes) as u64
    }
}

fn durability_name(durability: Durability) -> &'static str {
    if durability == Durability::Durable {
        "durable"
    } else {
        "written"
    }
}

const W: Durability = Durability::Written;
const D: Durability = Durability::Durable;

/// The cases of a quick run.
pub const QUICK: [Case; 9] = [
    Case::new(100, 1000, 1, 1, W).with_peers(),
    Case::new(100, 1000, 1, 1, D).with_peers(),
    // Latency: 1-record batches, one producer and sixteen.
    Case::new(100, 1, 1, 1, W).with_peers(),
    Case::new(100, 1, 1, 1, D).with_peers(),
    Case::new(100, 1, 16, 16, W),
    Case::new(100, 1, 16, 16, D),
    Case::new(100, 100, 16, 16, W),
    Case::new(100, 100, 16, 16, D),
    Case::new(1024, 100, 256, 64, D),
];

/// The cases of a full run.
pub const FULL: [Case; 21] = [
    // Against the peers: the prompt's workload (100 B records, batches of 1000).
    Case::new(100, 1000, 1, 1, W).with_peers(),
    Case::new(100, 1000, 1, 1, D).with_peers(),
    Case::new(100, 1000, 16, 16, W).with_peers(),
    Case::new(100, 1000, 16, 16, D).with_peers(),
    // Latency and batch size: 1-record batches, one producer and sixteen.
    Case::new(100, 1, 1, 1, W).with_peers(),
    Case::new(100, 1, 1, 1, D).with_peers(),
    Case::new(100, 1, 16, 16, W),
    Case::new(100, 1, 16, 16, D),
    Case::new(100, 10, 16, 16, W),
    Case::new(100, 10, 16, 16, D),
    Case::new(100, 100, 16, 16, W),
    Case::new(100, 100, 16, 16, D),
    // Partitions.
    Case::new(100, 100, 1, 1, D),
    Case::new(100, 100, 256, 64, D),
    // Producers.
    Case::new(100, 100, 16, 1, D),
    Case::new(100, 100, 16, 4, D),
    Case::new(100, 100, 16, 64, D),
    // 1 KiB records.
    Case::new(1024, 10, 16, 16, W),
    Case::new(1024, 10, 16, 16, D),
    Case::new(1024, 100, 256, 64, W),
    Case::new(1024, 100, 256, 64, D),
];

pub fn run(bench: &mut Bench) -> Result<WorkloadResult> {
    let cases: &[Case] = match bench.options.mode {
        Mode::Full => &FULL,
        Mode::Quick => &QUICK,
        Mode::Smoke => &QUICK[..3],
    };
    let mut results = Vec::new();
    for case in cases {
        results.push(run_case(bench, case)?);
    }
    Ok(WorkloadResult {
        name: "append".into(),
        description: "producers append batches for a fixed time; one append in flight per producer"
            .into(),
        primary_metric: "records_per_s".into(),
        columns: [
            "records_per_s",
            "mb_per_s",
            "disk_mb_per_s",
            "p50_us",
            "p99_us",
            "p999_us",
            "fsyncs_per_s",
            "cpu_s_per_gib",
            "pct_write_limit",
        ]
        .map(String::from)
        .to_vec(),
        cases: results,
        notes: vec![
            format!("each run lasts {} s; MB/s counts record values only", bench.scale.run_seconds),
            "written: acknowledged once in the page cache; durable: once fdatasync'd".into(),
            "pct_write_limit: MB/s of durable runs as a percentage of the machine's sequential write + fdatasync bandwidth".into(),
            "fsyncs_per_s: fdatasyncs issued by the executor (rill only)".into(),
            "disk_mb_per_s: MB/s the data directory's block device wrote during the run, whoever wrote it (the engine's syncs, the kernel's writeback); a written run near 0 left its data in the page cache".into(),
        ],
    })
}

fn run_case(bench: &mut Bench, case: &Case) -> Result<crate::report::CaseResult> {
    let batch = build_batch(case.batch_records, case.record_bytes)?;
    let value = vec![0x5a_u8; case.record_bytes];
    let run_time = Duration::from_secs_f64(bench.scale.run_seconds);
    let write_limit = bench.limits.get(limits::WRITE_MB_S).copied();
    let bench_ref: &Bench = bench;
    let mut engines = Vec::new();
    for (name, driver) in RILL_ENGINES {
        let batch = &batch;
        engines.push(Engine::new(
            name,
            format!("rill, {driver:?} driver, Durability::{:?}", case.durability),
            move || {
                let mut sample = rill_run(bench_ref, case, driver, batch, run_time)?;
                add_limit_share(&mut sample, case, write_limit);
                Ok(sample)
            },
        ));
    }
    if case.peers {
        for peer in [Peer::Commitlog, Peer::Fjall, Peer::Walrus] {
            if !peer.supports(case.durability) {
                continue;
            }
            let value = &value;
            engines.push(Engine::new(
                peer.name(),
                peer.note(case.durability),
                move || {
                    let mut sample = peer_run(bench_ref, case, peer, value, run_time)?;
                    add_limit_share(&mut sample, case, write_limit);
                    Ok(sample)
                },
            ));
        }
    }
    let params = BTreeMap::from([
        ("record_bytes", case.record_bytes.into()),
        ("batch_records", case.batch_records.into()),
        ("partitions", case.partitions.into()),
        ("producers", case.producers.into()),
        ("durability", durability_name(case.durability).into()),
        ("in_flight_per_producer", 1.into()),
        ("run_seconds", bench.scale.run_seconds.into()),
    ]);
    let mut ratios = vec![(URING, BASELINE)];
    if case.peers {
        ratios.extend([
            (URING, "commitlog"),
            (URING, "fjall"),
            (URING, "walrus-rust"),
        ]);
    }
    Ok(bench.run_case(&case.name(), params, engines, &ratios, "records_per_s"))
}

fn add_limit_share(sample: &mut Sample, case: &Case, write_limit: Option<f64>) {
    if case.durability == Durability::Durable
        && let (Some(limit), Some(mb)) = (write_limit, sample.get("mb_per_s"))
    {
        sample.insert("pct_write_limit", 100.0 * mb / limit);
    }
}

/// The partitions producer `producer` appends to, in turn.
fn owned_partitions(case: &Case, producer: usize) -> Vec<usize> {
    let partitions = case.partitions as usize;
    if case.producers <= partitions {
        (producer..partitions).step_by(case.producers).collect()
    } else {
        vec![producer % partitions]
    }
}

/// What one producer did.
struct Produced {
    appends: u64,
    latency: Latency,
}

/// Runs `case.producers` threads until `run_time` has passed; each calls `append(partition)`
/// through its own appender made by `make`.
fn produce<A>(
    case: &Case,
    run_time: Duration,
    make: impl Fn() -> A + Sync,
) -> Result<(Produced, f64)>
where
    A: FnMut(usize) -> Result<()>,
{
    let start = Instant::now();
    let deadline = start + run_time;
    let results: Vec<Result<Produced>> = std::thread::scope(|scope| {
        let make = &make;
        let handles: Vec<_> = (0..case.producers)
            .map(|producer| {
                scope.spawn(move || -> Result<Produced> {
                    let owned = owned_partitions(case, producer);
                    let mut append = make();
                    let mut produced = Produced {
                        appends: 0,
                        latency: Latency::new(),
                    };
                    for &partition in owned.iter().cycle() {
                        let t = Instant::now();
                        if t >= deadline {
                            break;
                        }
                        append(partition)?;
                        produced.latency.record(t.elapsed());
                        produced.appends += 1;
                    }
                    Ok(produced)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a producer panicked"))?
            })
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let mut total = Produced {
        appends: 0,
        latency: Latency::new(),
    };
    for produced in results {
        let produced = produced?;
        total.appends += produced.appends;
        total.latency.merge(&produced.latency);
    }
    Ok((total, seconds))
}

fn sample(case: &Case, produced: &Produced, seconds: f64, cpu_seconds: f64) -> Sample {
    let bytes = case.record_bytes_total(produced.appends);
    let mut sample = Sample::from([
        ("appends_per_s", produced.appends as f64 / seconds),
        (
            "records_per_s",
            (produced.appends * case.batch_records as u64) as f64 / seconds,
        ),
        ("mb_per_s", mb_per_s(bytes, seconds)),
        ("cpu_s_per_gib", cpu_per_gib(cpu_seconds, bytes)),
    ]);
    for (name, p) in PERCENTILES {
        sample.insert(name, produced.latency.percentile_us(p));
    }
    sample
}

/// The data directory's device writes over a run.
struct DiskWrites<'a> {
    dir: &'a std::path::Path,
    at_start: Option<u64>,
}

impl<'a> DiskWrites<'a> {
    fn start(dir: &'a std::path::Path) -> Self {
        Self {
            dir,
            at_start: device_written_bytes(dir),
        }
    }

    /// Bytes written since the start, if the device's counters could be read.
    fn bytes(&self) -> Option<u64> {
        Some(device_written_bytes(self.dir)?.saturating_sub(self.at_start?))
    }
}

/// Adds `disk_mb_per_s` when the device writes were measured.
fn insert_disk_rate(sample: &mut Sample, bytes: Option<u64>, seconds: f64) {
    if let Some(bytes) = bytes {
        sample.insert("disk_mb_per_s", mb_per_s(bytes, seconds));
    }
}

fn rill_run(
    bench: &Bench,
    case: &Case,
    driver: DriverChoice,
    batch: &[u8],
    run_time: Duration,
) -> Result<Sample> {
    let dir = bench.scratch_dir("append")?;
    let mut config = Config::new(dir.path());
    config.driver = driver;
    let (log, _) = Log::open(config)?;
    log.create_topic("bench", case.partitions)?;
    let partitions = log.partitions("bench")?;
    let before = log.driver_stats();
    let disk = DiskWrites::start(dir.path());
    let cpu = process_cpu_seconds();
    let outcome = produce(case, run_time, || {
        |partition: usize| -> Result<()> {
            partitions[partition]
                .append_with(BytesMut::from(batch), case.durability)
                .wait()?;
            Ok(())
        }
    });
    let cpu = process_cpu_seconds() - cpu;
    let disk_written = disk.bytes();
    let after = log.driver_stats();
    log.close()?;
    let (produced, seconds) = outcome?;
    let mut sample = sample(case, &produced, seconds, cpu);
    insert_disk_rate(&mut sample, disk_written, seconds);
    sample.insert(
        "fsyncs_per_s",
        (after.syncs - before.syncs) as f64 / seconds,
    );
    Ok(sample)
}

fn peer_run(
    bench: &Bench,
    case: &Case,
    peer: Peer,
    value: &[u8],
    run_time: Duration,
) -> Result<Sample> {
    let dir = bench.scratch_dir(peer.name())?;
    let log = PeerLog::open(
        peer,
        dir.path(),
        case.partitions,
        case.batch_records * (case.record_bytes + 64),
        1 << 30,
    )?;
    let disk = DiskWrites::start(dir.path());
    let cpu = process_cpu_seconds();
    let outcome = produce(case, run_time, || {
        let mut appender = log.appender(case.durability);
        move |partition: usize| appender.append(partition as u32, case.batch_records, value)
    });
    let cpu = process_cpu_seconds() - cpu;
    let disk_written = disk.bytes();
    drop(log);
    let (produced, seconds) = outcome?;
    let mut sample = sample(case, &produced, seconds, cpu);
    insert_disk_rate(&mut sample, disk_written, seconds);
    Ok(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producers_cover_every_partition_once_or_share_them() {
        let case = Case::new(100, 1, 16, 4, W);
        let mut all: Vec<usize> = (0..4).flat_map(|p| owned_partitions(&case, p)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..16).collect::<Vec<_>>());
        let shared = Case::new(100, 1, 1, 4, W);
        assert!((0..4).all(|p| owned_partitions(&shared, p) == vec![0]));
    }
}
