//! Fetches: consumers over loopback TCP read partitions from offset 0 to the end through
//! `Partition::send`, one 1 MiB fetch in flight each, per strategy (splice, sendfile, copy),
//! on both executors; MB/s received, and CPU seconds per GiB for the whole process (shard
//! threads, io-wq workers, fetching and receiving threads) and for sending alone (the
//! process minus the receiving threads).
//!
//! The topic has 16 partitions; consumer `c` reads partition `c % 16`, from the start to the
//! end, again until the run has moved at least `fetch_run_bytes` in all. A last case reads a
//! topic of ~1 KB batches one batch a fetch, where a splice's fixed cost shows: the engine's
//! own choice of strategy (such a splice is copied) against an explicit splice.

use super::{BASELINE, RILL_ENGINES, URING, build_batch, cpu_per_gib, fill_rill, limits, mb_per_s};
use crate::harness::{Bench, Engine, Sample};
use crate::measure::{process_cpu_seconds, thread_cpu_seconds};
use crate::report::WorkloadResult;
use anyhow::{Result, anyhow};
use rill::{Partition, SendHeader, SendOptions, SendStrategy};
use std::collections::BTreeMap;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

const PARTITIONS: u32 = 16;
/// Bytes asked per fetch (Kafka's default `max.partition.fetch.bytes`).
const FETCH_MAX_BYTES: u64 = 1 << 20;
/// Threads issuing fetches (each drives its share of the consumers).
const FETCHERS: usize = 4;
const STRATEGIES: [(&str, SendStrategy); 3] = [
    ("splice", SendStrategy::Splice),
    ("sendfile", SendStrategy::Sendfile),
    ("copy", SendStrategy::Copy),
];
/// Record bytes of the small-fetch case's one-record batches.
const SMALL_RECORD_BYTES: usize = 1000;
/// A fixed 8-byte response header ahead of each fetch's batches.
const HEADER: &[u8] = b"FETCHRSP";

pub fn run(bench: &mut Bench) -> Result<WorkloadResult> {
    let scale = bench.scale;
    // 64 KiB batches of 64 records of 1000 B.
    let batch = build_batch(64, 1000)?;
    let mut logs = Vec::new();
    for (name, driver) in RILL_ENGINES {
        bench.status(format!("fetch: filling the {name} log"));
        let dir = bench.scratch_dir("fetch")?;
        let log = fill_rill(
            dir.path(),
            driver,
            "fetch",
            PARTITIONS,
            scale.fetch_partition_bytes,
            &batch,
            1 << 30,
        )?;
        let partitions = log.partitions("fetch")?;
        logs.push((name, dir, log, partitions));
    }
    let sendfile_limit = bench.limits.get(limits::SENDFILE_MB_S).copied();
    let consumer_counts: &[usize] = if bench.options.mode.is_smoke() {
        &[1, 4]
    } else {
        &[1, 16, 128]
    };
    let mut cases = Vec::new();
    for &consumers in consumer_counts {
        let mut engines = Vec::new();
        for (executor, _, _, partitions) in &logs {
            for (strategy_name, strategy) in STRATEGIES {
                engines.push(Engine::new(
                    format!("{executor} {strategy_name}"),
                    format!("Partition::send with SendStrategy::{strategy:?}"),
                    move || {
                        let mut sample = fetch_run(
                            partitions,
                            Some(strategy),
                            consumers,
                            scale.fetch_partition_bytes,
                            scale.fetch_run_bytes,
                            FETCH_MAX_BYTES,
                        )?;
                        if let (Some(limit), Some(mb)) = (sendfile_limit, sample.get("mb_per_s")) {
                            sample.insert("pct_sendfile_limit", 100.0 * mb / limit);
                        }
                        Ok(sample)
                    },
                ));
            }
        }
        let names: Vec<(String, String)> = STRATEGIES
            .iter()
            .map(|(s, _)| (format!("{URING} {s}"), format!("{BASELINE} {s}")))
            .chain([(format!("{URING} splice"), format!("{BASELINE} sendfile"))])
            .collect();
        let ratios = str_pairs(&names);
        let params = BTreeMap::from([
            ("consumers", consumers.into()),
            ("partitions", PARTITIONS.into()),
            ("partition_bytes", scale.fetch_partition_bytes.into()),
            ("run_bytes", scale.fetch_run_bytes.into()),
            ("fetch_max_bytes", FETCH_MAX_BYTES.into()),
            ("batch_bytes", batch.len().into()),
        ]);
        cases.push(bench.run_case(
            &format!("{consumers} consumer(s)"),
            params,
            engines,
            &ratios,
            "mb_per_s",
        ));
    }
    cases.push(small_fetch_case(bench, &logs)?);
    for (_, _dir, log, _) in logs {
        log.close()?;
    }
    Ok(WorkloadResult {
        name: "fetch".into(),
        description: "loopback consumers read partitions end to end through Partition::send".into(),
        primary_metric: "mb_per_s".into(),
        columns: [
            "mb_per_s",
            "fetches_per_s",
            "cpu_s_per_gib",
            "send_cpu_s_per_gib",
            "pct_sendfile_limit",
        ]
        .map(String::from)
        .to_vec(),
        cases,
        notes: vec![
            "page-cache resident partitions of 64 KiB batches; each consumer keeps one 1 MiB fetch in flight".into(),
            "cpu_s_per_gib: the whole process; send_cpu_s_per_gib: minus the receiving threads' own CPU (loopback receive work done in softirq context may still land on the sender)".into(),
            "pct_sendfile_limit: MB/s as a percentage of the machine's single-stream loopback sendfile".into(),
        ],
    })
}

/// Small fetches: a topic of ~1 KB batches, one batch a fetch, 16 consumers; the strategy
/// chosen by the engine (a splice this small is copied, `SendConfig::copy_below_bytes`)
/// against an explicit splice, on both executors.
fn small_fetch_case(
    bench: &Bench,
    logs: &[(&str, tempfile::TempDir, rill::Log, Vec<Partition>)],
) -> Result<crate::report::CaseResult> {
    let batch = build_batch(1, SMALL_RECORD_BYTES)?;
    let partition_bytes = (bench.scale.fetch_partition_bytes / 16).max(64 << 10);
    let batches = partition_bytes.div_ceil(batch.len() as u64);
    let mut smalls = Vec::new();
    for (executor, _, log, _) in logs {
        log.create_topic("small", PARTITIONS)?;
        let partitions = log.partitions("small")?;
        for partition in &partitions {
            super::append_copies(partition, &batch, batches)?;
        }
        smalls.push((*executor, partitions));
    }
    let consumers = 16;
    let mut engines = Vec::new();
    for (executor, partitions) in &smalls {
        for (name, strategy) in [
            ("engine's choice", None),
            ("splice", Some(SendStrategy::Splice)),
        ] {
            engines.push(Engine::new(
                format!("{executor} {name}"),
                format!("Partition::send of one ~1 KB batch, strategy {strategy:?}"),
                move || {
                    fetch_run(
                        partitions,
                        strategy,
                        consumers,
                        partition_bytes,
                        consumers as u64 * partition_bytes,
                        1,
                    )
                },
            ));
        }
    }
    let names = [
        (
            format!("{URING} engine's choice"),
            format!("{URING} splice"),
        ),
        (
            format!("{URING} engine's choice"),
            format!("{BASELINE} engine's choice"),
        ),
    ];
    let ratios = str_pairs(&names);
    let params = BTreeMap::from([
        ("consumers", consumers.into()),
        ("partitions", PARTITIONS.into()),
        ("partition_bytes", partition_bytes.into()),
        ("batch_bytes", batch.len().into()),
    ]);
    Ok(bench.run_case(
        &format!("{consumers} consumers, one ~1 KB batch a fetch"),
        params,
        engines,
        &ratios,
        "fetches_per_s",
    ))
}

/// Pairs of engine names as the `&str` pairs `Bench::run_case` takes.
fn str_pairs(names: &[(String, String)]) -> Vec<(&str, &str)> {
    names
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect()
}

/// One consumer's progress.
struct Consumer {
    socket: TcpStream,
    partition: usize,
    offset: i64,
    laps_left: u64,
}

fn fetch_run(
    partitions: &[Partition],
    strategy: Option<SendStrategy>,
    consumers: usize,
    partition_bytes: u64,
    run_bytes: u64,
    fetch_max_bytes: u64,
) -> Result<Sample> {
    let ends: Vec<i64> = partitions.iter().map(|p| p.offsets().log_end).collect();
    let laps = run_bytes
        .div_ceil(consumers as u64 * partition_bytes.max(1))
        .max(1);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut receivers = Vec::new();
    let fetchers = FETCHERS.min(consumers);
    let mut shares: Vec<Vec<Consumer>> = (0..fetchers).map(|_| Vec::new()).collect();
    for c in 0..consumers {
        let tx = TcpStream::connect(addr)?;
        let (mut rx, _) = listener.accept()?;
        tx.set_nonblocking(true)?;
        receivers.push(std::thread::spawn(move || -> (u64, f64) {
            let mut buf = vec![0u8; 256 << 10];
            let mut total = 0u64;
            while let Ok(n) = rx.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            (total, thread_cpu_seconds())
        }));
        shares[c % fetchers].push(Consumer {
            socket: tx,
            partition: c % partitions.len(),
            offset: 0,
            laps_left: laps,
        });
    }
    let cpu = process_cpu_seconds();
    let start = Instant::now();
    let options = SendOptions {
        strategy,
        ..SendOptions::default()
    };
    let fetches = std::sync::atomic::AtomicU64::new(0);
    let sent: Result<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|mut share| {
                let (ends, fetches) = (&ends, &fetches);
                scope.spawn(move || -> Result<u64> {
                    let mut sent = 0u64;
                    // Every consumer of this share has one fetch in flight; wait for them in
                    // turn, then ask again for those with laps left.
                    while share.iter().any(|c| c.laps_left > 0) {
                        let pending: Vec<_> = share
                            .iter()
                            .enumerate()
                            .filter(|(_, c)| c.laps_left > 0)
                            .map(|(i, c)| {
                                let header = SendHeader::Bytes(bytes::Bytes::from_static(HEADER));
                                let fetch = partitions[c.partition].send_with(
                                    c.offset,
                                    fetch_max_bytes,
                                    &c.socket,
                                    header,
                                    options,
                                );
                                (i, fetch)
                            })
                            .collect();
                        for (i, fetch) in pending {
                            let info = fetch.wait()?;
                            fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            sent += info.bytes_sent;
                            let consumer = &mut share[i];
                            consumer.offset = info.next_offset;
                            if consumer.offset >= ends[consumer.partition] {
                                consumer.offset = 0;
                                consumer.laps_left -= 1;
                            }
                        }
                    }
                    Ok(sent)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a fetcher panicked"))?)
            .sum()
    });
    // The fetchers' sockets closed with their shares: the receivers see the end.
    let mut received = 0u64;
    let mut receiver_cpu = 0.0;
    for receiver in receivers {
        let (bytes, cpu) = receiver
            .join()
            .map_err(|_| anyhow!("a receiver panicked"))?;
        received += bytes;
        receiver_cpu += cpu;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu;
    let sent = sent?;
    anyhow::ensure!(
        received == sent,
        "the executor reported {sent} bytes sent, the consumers received {received}"
    );
    let fetches = fetches.into_inner();
    Ok(Sample::from([
        ("mb_per_s", mb_per_s(received, seconds)),
        ("fetches_per_s", fetches as f64 / seconds),
        ("cpu_s_per_gib", cpu_per_gib(cpu, received)),
        (
            "send_cpu_s_per_gib",
            cpu_per_gib(cpu - receiver_cpu, received),
        ),
    ]))
}
