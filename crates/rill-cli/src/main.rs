//! `rill`: the command-line tool around a rill log.
//!
//! - `rill dump <file> [--records]`: a segment's batches (offsets, timestamps, sizes, CRC
//!   valid or not, records) or an index's entries;
//! - `rill verify <dir>`: a read-only check of every batch CRC, offset continuity and index
//!   agreement; exits 1 on any problem, naming the file and byte range;
//! - `rill stat <dir>`: partitions, offsets, sizes, segments;
//! - `rill bench [--quick] [--workload ...]`: the head-to-head benchmark (`rill-bench`).
//!
//! `<dir>` is a log's data directory or one partition directory.

mod dump;
mod layout;
mod stat;
mod verify;
mod walk;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "rill", version, about = "Tools for rill logs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Prints a segment's batches, or an index's entries.
    Dump {
        /// A `.log`, `.index` or `.timeindex` file.
        file: PathBuf,
        /// Also print each batch's records (key, value, offset, timestamp).
        #[arg(long)]
        records: bool,
    },
    /// Checks every batch CRC, offset continuity and index agreement (read-only).
    Verify {
        /// A data directory or a partition directory.
        dir: PathBuf,
    },
    /// Prints partitions, offsets, sizes and segments.
    Stat {
        /// A data directory or a partition directory.
        dir: PathBuf,
    },
    /// Runs the head-to-head benchmark: rill's io_uring executor against the epoll baseline
    /// and the peers (commitlog, fjall), interleaved, medians and ratios; writes
    /// results.json and one SVG per workload.
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct BenchArgs {
    /// A subset of the cases with short runs (about three and a half minutes).
    #[arg(long)]
    quick: bool,
    /// Toy sizes: checks the harness end to end, measures nothing worth reading.
    #[arg(long, hide = true, conflicts_with = "quick")]
    smoke: bool,
    /// Workloads to run (default all; `limits` always runs).
    #[arg(long = "workload", value_delimiter = ',', value_parser = ["limits", "append", "fetch", "read", "recovery", "scale", "compaction", "raft"])]
    workloads: Vec<String>,
    /// Repetitions of every engine in every case (at least 5 for results worth quoting).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    reps: u16,
    /// Where the logs are written (default: the system's temporary directory); its
    /// filesystem is the one measured.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where results.json and the SVG plots go.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Only the cases whose name contains this text (repeat for several), e.g. `--case
    /// "x 1000 records, 16 partition(s), 16 producer(s), durable" --reps 15`; `limits` always
    /// runs whole.
    #[arg(long = "case")]
    cases: Vec<String>,
}

fn main() -> ExitCode {
    // The recovery and scale workloads re-run this executable as a child process.
    if let Some(result) = rill_bench::child_main_if_requested() {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rill: benchmark child: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rill: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Where the `walrus-rust` peer keeps its files: it reads its root (and its quiet switch, without
/// which it prints a line per write) only from the environment.
const WALRUS_DATA_DIR: &str = "WALRUS_DATA_DIR";

/// Runs the benchmark in a child process of this executable with the peers' environment set
/// (changing one's own environment while threads run is unsafe); removes the peer's files after.
fn bench_in_child(args: &BenchArgs) -> Result<()> {
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let root = tempfile::Builder::new()
        .prefix("rill-bench-walrus-")
        .tempdir_in(&parent)
        .with_context(|| format!("making a directory for walrus-rust in {}", parent.display()))?;
    let exe = std::env::current_exe().context("finding this executable")?;
    let status = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(WALRUS_DATA_DIR, root.path())
        .env("WALRUS_QUIET", "1")
        .status()
        .context("running the benchmark process")?;
    drop(root);
    if !status.success() {
        anyhow::bail!("the benchmark process failed: {status}");
    }
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cli.command {
        Command::Dump { file, records } => {
            let summary = dump::dump(&file, records, &mut out)?;
            if let Some(s) = summary {
                writeln!(out, "{} batches, {} with a bad CRC", s.batches, s.bad_crc)?;
                if s.bad_crc > 0 || s.stopped_at.is_some() {
                    return Ok(ExitCode::from(1));
                }
            }
        }
        Command::Verify { dir } => {
            let (summary, problems) = verify::verify(&dir)?;
            for problem in &problems {
                writeln!(out, "PROBLEM {problem}")?;
            }
            writeln!(
                out,
                "{} partitions, {} segments, {} batches ({} bytes), {} index entries checked: {}",
                summary.partitions,
                summary.segments,
                summary.batches,
                summary.bytes,
                summary.index_entries,
                if problems.is_empty() {
                    "ok".to_string()
                } else {
                    format!("{} problems", problems.len())
                }
            )?;
            if !problems.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Stat { dir } => stat::print(&stat::stat(&dir)?, &mut out)?,
        Command::Bench(args) => {
            drop(out);
            bench(args)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bench(args: BenchArgs) -> Result<()> {
    if std::env::var_os(WALRUS_DATA_DIR).is_none() {
        return bench_in_child(&args);
    }
    let mode = if args.smoke {
        rill_bench::Mode::Smoke
    } else if args.quick {
        rill_bench::Mode::Quick
    } else {
        rill_bench::Mode::Full
    };
    let workloads = args
        .workloads
        .iter()
        .map(|name| {
            rill_bench::Workload::parse(name)
                .ok_or_else(|| anyhow::anyhow!("unknown workload {name}"))
        })
        .collect::<Result<_>>()?;
    rill_bench::run(rill_bench::Options {
        mode,
        workloads,
        reps: usize::from(args.reps),
        data_dir: args.dir,
        out_dir: args.out,
        progress: !args.no_progress,
        cases: args.cases,
    })?;
    Ok(())
}
