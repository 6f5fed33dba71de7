//! The child process of the SIGKILL crash test (`tests/tests/crash_sigkill.rs`).
//!
//! `crash_child <data_dir> <uring|syscall> <run>`: opens the log (recovering it), prints
//! `open <partition> <log_end>` for each partition, then appends durable batches to every
//! partition from one thread per partition, printing `ack <partition> <base> <last> <seed>`
//! for each acknowledged batch, until killed.

use anyhow::{Context, Result};
use rill::{Config, DriverChoice, Durability, Log};
use std::io::Write;

const PARTITIONS: u32 = 4;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().context("data dir")?;
    let driver = match args.next().as_deref() {
        Some("syscall") => DriverChoice::Syscall,
        _ => DriverChoice::Uring,
    };
    let run: u64 = args.next().context("run")?.parse()?;
    let mut config = Config::new(&dir);
    config.driver = driver;
    config.shards = 2;
    config.log = rill_tests::crash_config();
    let (log, _) = Log::open(config)?;
    if log.partitions("c").is_err() {
        log.create_topic("c", PARTITIONS)?;
    }
    let out = std::sync::Mutex::new(std::io::stdout());
    for p in log.partitions("c")? {
        let mut out = out.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        writeln!(out, "open {} {}", p.index(), p.offsets().log_end)?;
        out.flush()?;
    }
    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for p in log.partitions("c")? {
            let out = &out;
            handles.push(scope.spawn(move || -> Result<()> {
                let mut window = std::collections::VecDeque::new();
                for i in 0u64.. {
                    let seed = run << 40 | u64::from(p.index()) << 32 | i;
                    let (records, value_bytes) = rill_tests::crash_batch_shape(seed);
                    let batch = rill_tests::make_batch(records, value_bytes, i as i64, seed);
                    window.push_back((seed, p.append_with(batch, Durability::Durable)));
                    if window.len() >= 4
                        && let Some((seed, pending)) = window.pop_front()
                    {
                        let info = pending.wait()?;
                        let mut out = out.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                        writeln!(
                            out,
                            "ack {} {} {} {seed}",
                            p.index(),
                            info.base_offset,
                            info.last_offset
                        )?;
                        out.flush()?;
                    }
                }
                Ok(())
            }));
        }
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("panic"))??;
        }
        Ok(())
    })
}
