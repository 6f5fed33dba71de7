#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a test failure"
)]
//! `rill bench` end to end at toy sizes (`--smoke`): every workload runs on every engine
//! without an error (the recovery child included), and the results land as JSON with the
//! machine and parameters, one SVG per workload and a table on stdout. This checks the
//! harness, not performance: no number is compared with another.

use std::process::Command;

/// What a `rill bench --smoke` run left: its stdout, its results.json, the output directory
/// and the data directory it was given.
struct SmokeRun {
    stdout: String,
    json: serde_json::Value,
    out: tempfile::TempDir,
    data: tempfile::TempDir,
}

/// Runs `rill bench --smoke --no-progress` with `args`; it must succeed.
fn smoke_bench(args: &[&str]) -> SmokeRun {
    let out = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(["bench", "--smoke", "--no-progress"])
        .args(args)
        .arg("--out")
        .arg(out.path())
        .arg("--dir")
        .arg(data.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let json =
        serde_json::from_slice(&std::fs::read(out.path().join("results.json")).unwrap()).unwrap();
    SmokeRun {
        stdout,
        json,
        out,
        data,
    }
}

#[test]
fn the_smoke_benchmark_runs_every_workload_and_writes_its_results() {
    let SmokeRun {
        stdout,
        json,
        out,
        data,
    } = smoke_bench(&["--reps", "2"]);
    assert!(
        json["machine"]["kernel"]
            .as_str()
            .unwrap()
            .starts_with("Linux")
    );
    assert_eq!(json["reps"], 2);
    let workloads = json["workloads"].as_array().unwrap();
    let names: Vec<&str> = workloads
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "limits",
            "append",
            "fetch",
            "read",
            "recovery",
            "scale",
            "compaction",
            "raft"
        ]
    );
    for workload in workloads {
        let name = workload["name"].as_str().unwrap();
        let cases = workload["cases"].as_array().unwrap();
        assert!(!cases.is_empty(), "{name}");
        for case in cases {
            let primary = case["primary_metric"].as_str().unwrap();
            for engine in case["engines"].as_array().unwrap() {
                assert!(engine["error"].is_null(), "{name}: {engine}");
                let samples = engine["metrics"][primary]["samples"].as_array();
                assert_eq!(samples.map(Vec::len), Some(2), "{name}: {engine}");
            }
            if name != "limits" {
                let ratio = &case["ratios"][0];
                assert!(ratio["per_rep"]["median"].as_f64().unwrap() > 0.0, "{case}");
            }
        }
        let svg = std::fs::read_to_string(out.path().join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(stdout.contains(&format!("== {name}:")), "{stdout}");
    }
    // The scratch directory is removed at the end.
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);
}

#[test]
fn chosen_cases_run_alone_and_limits_run_whole() {
    let chosen = "x 1000 records, 1 partition(s), 1 producer(s), durable";
    let run = smoke_bench(&["--reps", "1", "--workload", "append", "--case", chosen]);
    let (stdout, json) = (&run.stdout, &run.json);
    let workloads = json["workloads"].as_array().unwrap();
    let cases = |name: &str| -> Vec<String> {
        let workload = workloads.iter().find(|w| w["name"] == name).unwrap();
        workload["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    let append = cases("append");
    assert_eq!(append.len(), 1, "{stdout}");
    for case in &append {
        assert!(case.ends_with(chosen), "{case} ran");
    }
    assert!(cases("limits").len() >= 3, "limits run whole");
}

#[test]
fn unknown_workloads_are_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(["bench", "--smoke", "--workload", "nope"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
