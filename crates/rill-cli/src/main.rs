//! `rill`: the command-line tool around a rill log.
//!
//! - `rill dump <file> [--records]`: a segment's batches (offsets, timestamps, sizes, CRC
//!   valid or not, records) or an index's entries;
//! - `rill verify <dir>`: a read-only check of every batch CRC, offset continuity and index
//!   agreement; exits 1 on any problem, naming the file and byte range;
//! - `rill stat <dir>`: partitions, offsets, sizes, segments.
//!
//! `<dir>` is a log's data directory or one partition directory.

mod dump;
mod layout;
mod stat;
mod verify;
mod walk;

use anyhow::Result;
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
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rill: {e:#}");
            ExitCode::from(2)
        }
    }
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
    }
    Ok(ExitCode::SUCCESS)
}
