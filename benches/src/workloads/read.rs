//! Random reads: reader threads read one batch's worth at uniformly random offsets of a
//! page-cache resident log that spans several segments; reads/s, MB/s and latency. On rill
//! the io_uring executor reads into registered (fixed) buffers, the baseline uses `pread`.

use super::{BASELINE, RILL_ENGINES, Rng, URING, build_batch, fill_rill, mb_per_s};
use crate::harness::{Bench, Engine, Sample};
use crate::measure::{Latency, PERCENTILES};
use crate::peers::{Peer, PeerLog};
use crate::report::WorkloadResult;
use anyhow::{Result, anyhow, ensure};
use rill::Durability;
use rill::Partition;
use rill::batch::BatchHeader;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Reader threads, each with one read in flight.
const READERS: usize = 4;
/// Records per batch and bytes per record: a batch is about 16 KiB.
const BATCH_RECORDS: usize = 16;
const RECORD_BYTES: usize = 1000;
/// Bytes asked per read: one batch.
const READ_MAX_BYTES: u64 = 16 << 10;

pub fn run(bench: &mut Bench) -> Result<WorkloadResult> {
    let scale = bench.scale;
    let batch = build_batch(BATCH_RECORDS, RECORD_BYTES)?;
    let run_time = Duration::from_secs_f64(scale.run_seconds);
    let mut rill_logs = Vec::new();
    for (name, driver) in RILL_ENGINES {
        bench.status(format!("read: filling the {name} log"));
        let dir = bench.scratch_dir("read")?;
        let log = fill_rill(
            dir.path(),
            driver,
            "read",
            1,
            scale.read_log_bytes,
            &batch,
            scale.read_segment_bytes,
        )?;
        let partition = log.partition("read", 0)?;
        rill_logs.push((name, dir, log, partition));
    }
    let batches = scale.read_log_bytes.div_ceil(batch.len() as u64);
    let records = batches * BATCH_RECORDS as u64;
    let mut peer_logs = Vec::new();
    for peer in [Peer::Commitlog, Peer::Fjall] {
        bench.status(format!("read: filling the {} log", peer.name()));
        let dir = bench.scratch_dir(peer.name())?;
        let log = PeerLog::open(
            peer,
            dir.path(),
            1,
            BATCH_RECORDS * (RECORD_BYTES + 64),
            scale.read_segment_bytes,
        )?;
        let mut appender = log.appender(Durability::Written);
        let value = vec![0x5a_u8; RECORD_BYTES];
        for _ in 0..batches {
            appender.append(0, BATCH_RECORDS, &value)?;
        }
        drop(appender);
        peer_logs.push((peer, dir, log));
    }
    let bench_seed = 0x5eed;
    let mut engines = Vec::new();
    for (name, _, _, partition) in &rill_logs {
        let mut rep = 0u64;
        engines.push(Engine::new(
            *name,
            "Partition::read of one batch",
            move || {
                rep += 1;
                read_run(run_time, bench_seed + rep, records, |offset| {
                    rill_read(partition, offset)
                })
            },
        ));
    }
    for (peer, _, log) in &peer_logs {
        let mut rep = 0u64;
        let note = match peer {
            Peer::Commitlog => "CommitLog::read with ReadLimit::max_bytes(16 KiB)",
            Peer::Fjall => "range scan from partition++offset, 16 KiB of values",
            // Not in the read workload: it reads by consumer cursor, not at an offset.
            Peer::Walrus => continue,
        };
        engines.push(Engine::new(peer.name(), note, move || {
            rep += 1;
            read_run(run_time, bench_seed + rep, records, |offset| {
                let bytes = log.read(0, offset, READ_MAX_BYTES as usize)?;
                ensure!(bytes > 0, "{} read nothing at offset {offset}", peer.name());
                Ok(bytes)
            })
        }));
    }
    let params = BTreeMap::from([
        ("log_bytes", scale.read_log_bytes.into()),
        ("segment_bytes", scale.read_segment_bytes.into()),
        ("records", records.into()),
        ("readers", READERS.into()),
        ("read_max_bytes", READ_MAX_BYTES.into()),
        ("batch_records", BATCH_RECORDS.into()),
        ("record_bytes", RECORD_BYTES.into()),
    ]);
    let case = bench.run_case(
        &format!(
            "random 16 KiB reads, {} readers, {} MiB log in {} MiB segments",
            READERS,
            scale.read_log_bytes >> 20,
            scale.read_segment_bytes >> 20
        ),
        params,
        engines,
        &[(URING, BASELINE), (URING, "commitlog"), (URING, "fjall")],
        "reads_per_s",
    );
    for (_, _dir, log, _) in rill_logs {
        log.close()?;
    }
    drop(peer_logs);
    Ok(WorkloadResult {
        name: "read".into(),
        description: "random reads of one batch from a page-cache resident log".into(),
        primary_metric: "reads_per_s".into(),
        columns: ["reads_per_s", "mb_per_s", "p50_us", "p99_us", "p999_us"]
            .map(String::from)
            .to_vec(),
        cases: vec![case],
        notes: vec![
            "rill io_uring reads into registered buffers (READ_FIXED); the baseline preads".into(),
            "rill returns whole CRC-checked batches; the peers return records".into(),
        ],
    })
}

/// One rill read at `offset`: checks that the first batch returned holds it; returns bytes.
fn rill_read(partition: &Partition, offset: u64) -> Result<u64> {
    let read = partition.read(offset as i64, READ_MAX_BYTES).wait()?;
    let first = read
        .batches()
        .next()
        .ok_or_else(|| anyhow!("rill read nothing at offset {offset}"))?;
    let header = BatchHeader::parse(first)?;
    ensure!(
        header.base_offset <= offset as i64 && offset as i64 <= header.last_offset(),
        "the batch read at {offset} holds {}..={}",
        header.base_offset,
        header.last_offset()
    );
    Ok(read.bytes().len() as u64)
}

/// `READERS` threads read at random offsets below `records` for `run_time`.
fn read_run(
    run_time: Duration,
    seed: u64,
    records: u64,
    read: impl Fn(u64) -> Result<u64> + Sync,
) -> Result<Sample> {
    let start = Instant::now();
    let deadline = start + run_time;
    let outcomes: Vec<Result<(u64, u64, Latency)>> = std::thread::scope(|scope| {
        let read = &read;
        let handles: Vec<_> = (0..READERS as u64)
            .map(|reader| {
                scope.spawn(move || -> Result<(u64, u64, Latency)> {
                    let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(reader));
                    let mut latency = Latency::new();
                    let (mut reads, mut bytes) = (0u64, 0u64);
                    while Instant::now() < deadline {
                        let offset = rng.below(records);
                        let t = Instant::now();
                        bytes += read(offset)?;
                        latency.record(t.elapsed());
                        reads += 1;
                    }
                    Ok((reads, bytes, latency))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a reader panicked"))?)
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let (mut reads, mut bytes, mut latency) = (0u64, 0u64, Latency::new());
    for outcome in outcomes {
        let (r, b, l) = outcome?;
        reads += r;
        bytes += b;
        latency.merge(&l);
    }
    let mut sample = Sample::from([
        ("reads_per_s", reads as f64 / seconds),
        ("mb_per_s", mb_per_s(bytes, seconds)),
    ]);
    for (name, p) in PERCENTILES {
        sample.insert(name, latency.percentile_us(p));
    }
    Ok(sample)
}
