//! The result model (written as JSON), the terminal tables and the SVG plots.

use crate::harness::{Bench, Scale};
use crate::machine::Machine;
use crate::measure::Summary;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Everything one harness run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// What it ran on.
    pub machine: Machine,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix_s: u64,
    /// Full, quick or smoke.
    pub mode: crate::harness::Mode,
    /// Repetitions per engine and case.
    pub reps: usize,
    /// Sizes and durations.
    pub scale: Scale,
    /// The machine's limits (median of each), by metric.
    pub limits: BTreeMap<String, f64>,
    /// One entry per workload run.
    pub workloads: Vec<WorkloadResult>,
    /// Seconds the harness ran.
    pub elapsed_s: f64,
}

impl Report {
    /// An empty report for `bench`.
    pub fn new(machine: Machine, bench: &Bench) -> Self {
        Self {
            machine,
            started_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            mode: bench.options.mode,
            reps: bench.options.reps,
            scale: bench.scale,
            limits: BTreeMap::new(),
            workloads: Vec::new(),
            elapsed_s: 0.0,
        }
    }

    /// Writes `results.json` and `<workload>.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        let path = dir.join("results.json");
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
        for workload in &self.workloads {
            let path = dir.join(format!("{}.svg", workload.name));
            std::fs::write(&path, svg(workload))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

/// One workload's cases.
#[derive(Debug, Serialize)]
pub struct WorkloadResult {
    /// `append`, `fetch`, ...
    pub name: String,
    /// What was measured, in a sentence.
    pub description: String,
    /// The metric the ratios and plots use.
    pub primary_metric: String,
    /// The metrics shown in the terminal table, in order.
    pub columns: Vec<String>,
    /// The cases.
    pub cases: Vec<CaseResult>,
    /// Settings and caveats, in words.
    pub notes: Vec<String>,
}

/// One case: its parameters, each engine's metrics, the ratios between engines.
#[derive(Debug, Serialize)]
pub struct CaseResult {
    /// A short name ("100 B x 1000, 16 partitions, 16 producers, durable").
    pub name: String,
    /// Every parameter of the case.
    pub params: BTreeMap<String, serde_json::Value>,
    /// The metric its ratios use (the workload's, except for the latency limit).
    pub primary_metric: String,
    /// Each engine's results.
    pub engines: Vec<EngineResult>,
    /// Ratios of the primary metric per repetition pair.
    pub ratios: Vec<RatioResult>,
}

/// One engine's metrics over the repetitions of a case.
#[derive(Debug, Serialize)]
pub struct EngineResult {
    /// The engine.
    pub engine: String,
    /// Its settings in words.
    pub note: String,
    /// Metric → summary over repetitions.
    pub metrics: BTreeMap<String, Summary>,
    /// The error that stopped its runs, if one did.
    pub error: Option<String>,
}

/// `numerator / denominator` of the primary metric, per repetition.
#[derive(Debug, Serialize)]
pub struct RatioResult {
    /// The engine above the line.
    pub numerator: String,
    /// The engine below the line.
    pub denominator: String,
    /// The metric.
    pub metric: String,
    /// The ratio over the repetition pairs.
    pub per_rep: Summary,
}

/// Formats a metric value for a table: integers for large values, three significant digits
/// for small ones.
fn number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1e7 {
        format!("{:.2}M", value / 1e6)
    } else if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// The terminal table of one workload: per case, a row per engine with the median of each
/// column metric and the primary metric's min..max, then the ratios.
pub fn table(workload: &WorkloadResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n== {}: {}", workload.name, workload.description);
    for note in &workload.notes {
        let _ = writeln!(out, "   {note}");
    }
    let width = workload
        .cases
        .iter()
        .flat_map(|c| &c.engines)
        .map(|e| e.engine.len())
        .max()
        .unwrap_or(6);
    for case in &workload.cases {
        let _ = writeln!(out, "\n-- {}", case.name);
        let mut header = format!("{:<width$}", "engine");
        for column in &workload.columns {
            let _ = write!(header, " {column:>12}");
        }
        let widths: Vec<usize> = workload.columns.iter().map(|c| c.len().max(12)).collect();
        let _ = write!(header, "  {} min..max", workload.primary_metric);
        let _ = writeln!(out, "{header}");
        for engine in &case.engines {
            let mut row = format!("{:<width$}", engine.engine);
            for (column, cell_width) in workload.columns.iter().zip(&widths) {
                let cell = engine
                    .metrics
                    .get(column)
                    .map_or_else(|| "-".to_string(), |s| number(s.median));
                let _ = write!(row, " {cell:>cell_width$}");
            }
            if let Some(s) = engine.metrics.get(&workload.primary_metric) {
                let _ = write!(row, "  {}..{}", number(s.min), number(s.max));
            }
            if let Some(error) = &engine.error {
                let _ = write!(row, "  FAILED: {error}");
            }
            let _ = writeln!(out, "{row}");
        }
        for ratio in &case.ratios {
            let _ = writeln!(
                out,
                "   {} / {}: x{:.2} [{:.2}..{:.2}] ({} per repetition pair)",
                ratio.numerator,
                ratio.denominator,
                ratio.per_rep.median,
                ratio.per_rep.min,
                ratio.per_rep.max,
                ratio.metric
            );
        }
    }
    out
}

const ENGINE_COLOURS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// Escapes text for SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A horizontal grouped bar chart of the primary metric: a group per case, a bar per engine
/// at its median, a whisker over min..max. Plain SVG, no dependencies.
pub fn svg(workload: &WorkloadResult) -> String {
    let metric = &workload.primary_metric;
    let mut engines: Vec<&str> = Vec::new();
    for case in &workload.cases {
        for engine in &case.engines {
            if !engines.contains(&engine.engine.as_str()) {
                engines.push(&engine.engine);
            }
        }
    }
    let max = workload
        .cases
        .iter()
        .flat_map(|c| &c.engines)
        .filter_map(|e| e.metrics.get(metric))
        .map(|s| s.max)
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let (label_width, plot_width, bar_height, gap) = (330.0, 560.0, 14.0, 12.0);
    let legend_height = 20.0 * engines.len() as f64 + 10.0;
    let top = 50.0 + legend_height;
    let bars: usize = workload.cases.iter().map(|c| c.engines.len()).sum();
    let height = top + bars as f64 * bar_height + workload.cases.len() as f64 * gap + 40.0;
    let width = label_width + plot_width + 90.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">{}: {} (median, whisker min..max)</text>"#,
        escape(&workload.name),
        escape(metric)
    );
    for (i, engine) in engines.iter().enumerate() {
        let y = 40.0 + 20.0 * i as f64;
        let colour = ENGINE_COLOURS[i % ENGINE_COLOURS.len()];
        let _ = writeln!(
            out,
            r#"<rect x="10" y="{y}" width="12" height="12" fill="{colour}"/><text x="28" y="{:.0}">{}</text>"#,
            y + 10.0,
            escape(engine)
        );
    }
    let mut y = top;
    for case in &workload.cases {
        let _ = writeln!(
            out,
            r#"<text x="10" y="{:.0}" font-weight="bold">{}</text>"#,
            y + bar_height,
            escape(&case.name)
        );
        for engine in &case.engines {
            let index = engines
                .iter()
                .position(|e| *e == engine.engine)
                .unwrap_or(0);
            let colour = ENGINE_COLOURS[index % ENGINE_COLOURS.len()];
            if let Some(s) = engine.metrics.get(metric) {
                let scale = |v: f64| label_width + plot_width * v / max;
                let _ = writeln!(
                    out,
                    r#"<rect x="{label_width}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{colour}"/>"#,
                    scale(s.median) - label_width,
                    bar_height - 2.0
                );
                let mid = y + (bar_height - 2.0) / 2.0;
                let _ = writeln!(
                    out,
                    r#"<line x1="{:.1}" y1="{mid:.1}" x2="{:.1}" y2="{mid:.1}" stroke="black"/>"#,
                    scale(s.min),
                    scale(s.max)
                );
                let _ = writeln!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                    scale(s.max) + 4.0,
                    y + bar_height - 4.0,
                    number(s.median)
                );
            }
            y += bar_height;
        }
        y += gap;
    }
    let _ = writeln!(out, "</svg>");
    out
}

#[cfg(test)]
#[allow(clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;

    fn workload() -> WorkloadResult {
        let metrics = |v: f64| {
            BTreeMap::from([(
                "mb_per_s".to_string(),
                Summary::of(&[v, v * 0.9, v * 1.1]).expect("samples"),
            )])
        };
        WorkloadResult {
            name: "fetch".into(),
            description: "test <workload>".into(),
            primary_metric: "mb_per_s".into(),
            columns: vec!["mb_per_s".into()],
            cases: vec![CaseResult {
                name: "1 consumer & splice".into(),
                params: BTreeMap::new(),
                primary_metric: "mb_per_s".into(),
                engines: vec![
                    EngineResult {
                        engine: "rill io_uring".into(),
                        note: String::new(),
                        metrics: metrics(2000.0),
                        error: None,
                    },
                    EngineResult {
                        engine: "epoll baseline".into(),
                        note: String::new(),
                        metrics: metrics(1000.0),
                        error: Some("boom".into()),
                    },
                ],
                ratios: vec![RatioResult {
                    numerator: "rill io_uring".into(),
                    denominator: "epoll baseline".into(),
                    metric: "mb_per_s".into(),
                    per_rep: Summary::of(&[2.0]).expect("samples"),
                }],
            }],
            notes: vec![],
        }
    }

    #[test]
    fn table_shows_medians_ranges_ratios_and_failures() {
        let text = table(&workload());
        assert!(text.contains("rill io_uring"), "{text}");
        assert!(text.contains("2000"), "{text}");
        assert!(text.contains("x2.00"), "{text}");
        assert!(text.contains("FAILED: boom"), "{text}");
    }

    #[test]
    fn svg_is_well_formed_and_escaped() {
        let svg = svg(&workload());
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("1 consumer &amp; splice"));
        assert!(!svg.contains("& splice"));
        assert_eq!(svg.matches("<rect").count(), 1 + 2 + 2, "{svg}");
    }
}
