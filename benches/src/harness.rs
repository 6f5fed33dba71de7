//! The runner: options, scale, interleaved repetitions of engines within a case, and the
//! scratch directories the logs live in.

use crate::machine::Machine;
use crate::measure::Summary;
use crate::report::{CaseResult, EngineResult, RatioResult, Report, WorkloadResult};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A workload of the harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// The machine's physical limits (always measured first).
    Limits,
    /// Appends: throughput, latency, fdatasyncs, CPU.
    Append,
    /// Fetches through `send` to loopback consumers.
    Fetch,
    /// Random reads of a page-cache resident log.
    Read,
    /// Open after an unclean stop.
    Recovery,
    /// Open a log of many segments: time, memory, descriptors.
    Scale,
    /// A compacted partition's cleaning rate, and its cost to appends.
    Compaction,
    /// Appends replicated by three Raft nodes on loopback, against one node's durable ones.
    Raft,
}

impl Workload {
    /// Every workload, in the order they run.
    pub const ALL: [Self; 8] = [
        Self::Limits,
        Self::Append,
        Self::Fetch,
        Self::Read,
        Self::Recovery,
        Self::Scale,
        Self::Compaction,
        Self::Raft,
    ];

    /// The workload's name on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Limits => "limits",
            Self::Append => "append",
            Self::Fetch => "fetch",
            Self::Read => "read",
            Self::Recovery => "recovery",
            Self::Scale => "scale",
            Self::Compaction => "compaction",
            Self::Raft => "raft",
        }
    }

    /// Parses a name given by [`Workload::name`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == name)
    }
}

/// How much to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every case, 1 s runs, logs of up to 1 GiB, 200,000 segments for scale (about 22 minutes here).
    Full,
    /// A subset of the cases, short runs, small logs (under 4 minutes here).
    Quick,
    /// A few cases at toy sizes: checks that the harness works end to end, measures nothing
    /// worth reading (the tests use it).
    Smoke,
}

impl Mode {
    /// Whether this is [`Mode::Smoke`].
    pub fn is_smoke(self) -> bool {
        self == Self::Smoke
    }
}

/// What to run and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// How much to run.
    pub mode: Mode,
    /// Workloads to run; empty means all. `limits` always runs.
    pub workloads: Vec<Workload>,
    /// Repetitions of every engine in every case (at least 1; DESIGN §10 asks for 5 or more).
    pub reps: usize,
    /// Where the logs are written (a temporary directory inside it); by default the system's
    /// temporary directory. Put it on the filesystem you want measured.
    pub data_dir: Option<PathBuf>,
    /// Where `results.json` and the SVG plots are written.
    pub out_dir: PathBuf,
    /// Progress bars on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Only the cases whose name contains one of these (all when empty), for a closer look at
    /// a few cases with more repetitions. The `limits` workload always runs whole; a
    /// workload's setup (filling logs) runs even when none of its cases is chosen.
    pub cases: Vec<String>,
}

/// Sizes and durations derived from [`Options::quick`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scale {
    /// Seconds each timed append or read run lasts.
    pub run_seconds: f64,
    /// Bytes of the sequential write limit measurement.
    pub limit_write_bytes: u64,
    /// 4 KiB append + fdatasync iterations of the latency limit.
    pub limit_sync_iterations: usize,
    /// Bytes sent by the loopback sendfile limit.
    pub limit_send_bytes: u64,
    /// Bytes in each of the fetch workload's 16 partitions.
    pub fetch_partition_bytes: u64,
    /// Bytes each fetch run moves at least (consumers re-read their partition to reach it).
    pub fetch_run_bytes: u64,
    /// Bytes of the read workload's log.
    pub read_log_bytes: u64,
    /// Segment size of the read workload (the log spans several).
    pub read_segment_bytes: u64,
    /// Bytes replayed by the recovery workload.
    pub recovery_bytes: u64,
    /// Partitions of the scale workload's log.
    pub scale_partitions: u32,
    /// Segments in each of them.
    pub scale_segments_per_partition: u64,
    /// The two segment sizes it is built with (same count, different retained bytes).
    pub scale_segment_bytes: [u64; 2],
    /// Bytes one partition replays in its unclean case.
    pub scale_replay_bytes: u64,
    /// Bytes of the compaction workload's partition.
    pub compaction_bytes: u64,
}

impl Scale {
    /// The scale of a run in `mode`.
    pub fn new(mode: Mode) -> Self {
        match mode {
            Mode::Smoke => Self {
                run_seconds: 0.05,
                limit_write_bytes: 8 << 20,
                limit_sync_iterations: 20,
                limit_send_bytes: 16 << 20,
                fetch_partition_bytes: 1 << 20,
                fetch_run_bytes: 8 << 20,
                read_log_bytes: 4 << 20,
                read_segment_bytes: 1 << 20,
                recovery_bytes: 16 << 20,
                scale_partitions: 20,
                scale_segments_per_partition: 10,
                scale_segment_bytes: [4 << 10, 32 << 10],
                scale_replay_bytes: 1 << 20,
                compaction_bytes: 4 << 20,
            },
            Mode::Quick => Self {
                run_seconds: 0.25,
                limit_write_bytes: 128 << 20,
                limit_sync_iterations: 200,
                limit_send_bytes: 256 << 20,
                fetch_partition_bytes: 4 << 20,
                fetch_run_bytes: 256 << 20,
                read_log_bytes: 96 << 20,
                read_segment_bytes: 32 << 20,
                recovery_bytes: 256 << 20,
                scale_partitions: 200,
                scale_segments_per_partition: 50,
                scale_segment_bytes: [4 << 10, 32 << 10],
                scale_replay_bytes: 4 << 20,
                compaction_bytes: 64 << 20,
            },
            Mode::Full => Self {
                run_seconds: 1.0,
                limit_write_bytes: 512 << 20,
                limit_sync_iterations: 1000,
                limit_send_bytes: 1 << 30,
                fetch_partition_bytes: 16 << 20,
                fetch_run_bytes: 1 << 30,
                read_log_bytes: 384 << 20,
                read_segment_bytes: 128 << 20,
                recovery_bytes: 1 << 30,
                scale_partitions: 1000,
                scale_segments_per_partition: 100,
                scale_segment_bytes: [4 << 10, 32 << 10],
                scale_replay_bytes: 4 << 20,
                compaction_bytes: 256 << 20,
            },
        }
    }
}

/// One timed run's metrics, by name.
pub type Sample = BTreeMap<&'static str, f64>;

/// One contender in a case: a name, what its settings mean, and a run function called once
/// per repetition.
pub struct Engine<'a> {
    /// Shown in tables and plots ("rill io_uring", "epoll baseline", "fjall", ...).
    pub name: String,
    /// Its settings in words (durability equivalent, strategy, ...).
    pub note: String,
    /// One timed run.
    pub run: Box<dyn FnMut() -> Result<Sample> + 'a>,
}

impl std::fmt::Debug for Engine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("name", &self.name).finish()
    }
}

impl<'a> Engine<'a> {
    /// An engine named `name` with `note`, running `run`.
    pub fn new(
        name: impl Into<String>,
        note: impl Into<String>,
        run: impl FnMut() -> Result<Sample> + 'a,
    ) -> Self {
        Self {
            name: name.into(),
            note: note.into(),
            run: Box::new(run),
        }
    }
}

/// The state shared by every workload of one harness run.
#[derive(Debug)]
pub struct Bench {
    /// The options.
    pub options: Options,
    /// Sizes and durations.
    pub scale: Scale,
    /// Root of the scratch directories (removed at the end).
    scratch: tempfile::TempDir,
    progress: ProgressBar,
    /// The machine limits, once measured: metric name → median.
    pub limits: BTreeMap<String, f64>,
    /// Whether [`Options::cases`] applies to the workload running now (not to `limits`).
    filtering: bool,
}

impl Bench {
    fn new(options: Options) -> Result<Self> {
        let scratch = match &options.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                tempfile::Builder::new()
                    .prefix("rill-bench-")
                    .tempdir_in(dir)?
            }
            None => tempfile::Builder::new().prefix("rill-bench-").tempdir()?,
        };
        let progress = if options.progress && std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} runs  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        Ok(Self {
            scale: Scale::new(options.mode),
            options,
            scratch,
            progress,
            limits: BTreeMap::new(),
            filtering: false,
        })
    }

    /// Whether the case `name` runs (see [`Options::cases`]).
    fn chosen(&self, name: &str) -> bool {
        !self.filtering
            || self.options.cases.is_empty()
            || self.options.cases.iter().any(|c| name.contains(c.as_str()))
    }

    /// The directory every log of this run lives under.
    pub fn scratch_root(&self) -> &Path {
        self.scratch.path()
    }

    /// A new empty directory for one run's log (removed when dropped).
    pub fn scratch_dir(&self, label: &str) -> Result<tempfile::TempDir> {
        Ok(tempfile::Builder::new()
            .prefix(&format!("{label}-"))
            .tempdir_in(self.scratch.path())?)
    }

    /// Shows what is running.
    pub fn status(&self, message: impl Into<String>) {
        let message = message.into();
        if self.progress.is_hidden() {
            eprintln!("  {message}");
        } else {
            self.progress.set_message(message);
        }
    }

    /// Runs `engines` interleaved for the configured repetitions (engine order rotates each
    /// repetition, so no engine always runs right after the same one), then summarises every
    /// metric and the ratios `(numerator, denominator)` of `primary` per repetition.
    pub fn run_case(
        &self,
        name: &str,
        params: BTreeMap<&'static str, serde_json::Value>,
        mut engines: Vec<Engine<'_>>,
        ratios: &[(&str, &str)],
        primary: &str,
    ) -> CaseResult {
        if !self.chosen(name) {
            // Left out by `Options::cases`: no engine runs, and `run` drops the case.
            return CaseResult {
                name: name.to_string(),
                params: BTreeMap::new(),
                primary_metric: primary.to_string(),
                engines: Vec::new(),
                ratios: Vec::new(),
            };
        }
        let reps = self.options.reps.max(1);
        self.progress.inc_length((reps * engines.len()) as u64);
        let mut samples: Vec<Vec<Sample>> = engines.iter().map(|_| Vec::new()).collect();
        let mut errors: Vec<Option<String>> = engines.iter().map(|_| None).collect();
        if self.progress.is_hidden() {
            eprintln!("  {name}");
        }
        for rep in 0..reps {
            for turn in 0..engines.len() {
                let i = (turn + rep) % engines.len();
                self.progress.set_message(format!(
                    "{name}: {} (rep {}/{reps})",
                    engines[i].name,
                    rep + 1
                ));
                if errors[i].is_none() {
                    match (engines[i].run)() {
                        Ok(sample) => samples[i].push(sample),
                        Err(e) => errors[i] = Some(format!("{e:#}")),
                    }
                }
                self.progress.inc(1);
            }
        }
        let results: Vec<EngineResult> = engines
            .iter()
            .zip(&samples)
            .zip(&errors)
            .map(|((engine, samples), error)| EngineResult {
                engine: engine.name.clone(),
                note: engine.note.clone(),
                metrics: summarise(samples),
                error: error.clone(),
            })
            .collect();
        let ratios = ratios
            .iter()
            .filter_map(|(num, den)| {
                let n = engines.iter().position(|e| e.name == *num)?;
                let d = engines.iter().position(|e| e.name == *den)?;
                let per_rep: Vec<f64> = samples[n]
                    .iter()
                    .zip(&samples[d])
                    .filter_map(|(a, b)| Some(a.get(primary)? / b.get(primary)?))
                    .collect();
                Some(RatioResult {
                    numerator: (*num).to_string(),
                    denominator: (*den).to_string(),
                    metric: primary.to_string(),
                    per_rep: Summary::of(&per_rep)?,
                })
            })
            .collect();
        engines.clear();
        CaseResult {
            name: name.to_string(),
            params: params
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            primary_metric: primary.to_string(),
            engines: results,
            ratios,
        }
    }
}

fn summarise(samples: &[Sample]) -> BTreeMap<String, Summary> {
    let mut metrics: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for sample in samples {
        for (metric, value) in sample {
            metrics.entry(metric).or_default().push(*value);
        }
    }
    metrics
        .into_iter()
        .filter_map(|(metric, values)| Some((metric.to_string(), Summary::of(&values)?)))
        .collect()
}

/// Runs the harness: the limits, then each chosen workload; prints each workload's table as
/// it finishes, writes `results.json` and one SVG per workload to `options.out_dir`.
pub fn run(options: Options) -> Result<Report> {
    let started = Instant::now();
    let mut chosen: Vec<Workload> = if options.workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        options.workloads.clone()
    };
    chosen.push(Workload::Limits);
    chosen.sort();
    chosen.dedup();
    std::fs::create_dir_all(&options.out_dir)
        .with_context(|| format!("creating {}", options.out_dir.display()))?;
    let mut bench = Bench::new(options)?;
    let machine = Machine::probe(bench.scratch_root());
    println!("{}", machine.describe());
    let mut report = Report::new(machine, &bench);
    for workload in chosen {
        bench.filtering = workload != Workload::Limits;
        let mut result: WorkloadResult = crate::workloads::run(workload, &mut bench)?;
        // Cases left out by `Options::cases` ran no engine.
        result.cases.retain(|case| !case.engines.is_empty());
        bench.progress.suspend(|| {
            println!("{}", crate::report::table(&result));
        });
        report.workloads.push(result);
        report.limits.clone_from(&bench.limits);
        report.elapsed_s = started.elapsed().as_secs_f64();
        report.write(&bench.options.out_dir)?;
    }
    bench.progress.finish_and_clear();
    println!(
        "results: {} (JSON and one SVG per workload); {:.0} s in all",
        bench.options.out_dir.display(),
        report.elapsed_s
    );
    Ok(report)
}
