#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a test failure"
)]
//! No crate of the workspace has a cycle among its top-level modules, so each concept can be
//! read without the ones above it; in `rill`, a request is plain data below the queue, the
//! futures and the send plumbing that carry it (docs/ARCHITECTURE.md, "`rill`, module by
//! module").
//!
//! The graph is read from the source: module `a` depends on `b` when code in `a` (any file under
//! `a/`, outside comments, test files (`tests.rs`, `*_tests.rs`) and the `#[cfg(test)]` module
//! at the end of a file) names `crate::b`. A submodule's `impl` blocks for its parent's types
//! (`impl Shard` in `shard/serve.rs`) are inside one top-level module and do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading the source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !is_test_file(&path) {
            out.push(path);
        }
    }
}

/// A file holding a test module (`mod tests;` under `#[cfg(test)]` in its parent).
fn is_test_file(path: &Path) -> bool {
    path.file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| s == "tests" || s.ends_with("_tests"))
}

/// `crate::<name>` references in one line of code.
fn crate_references(line: &str) -> impl Iterator<Item = &str> {
    line.match_indices("crate::").filter_map(|(at, _)| {
        let rest = &line[at + "crate::".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(rest.len());
        // `$crate::` in macros names the crate, not a module; the name must be a module's.
        let before = line[..at].chars().next_back();
        (end > 0 && before != Some('$')).then(|| &rest[..end])
    })
}

fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let relative = file.strip_prefix(src).expect("a file under src");
        let first = relative.components().next().expect("a path");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("reading a source file");
        let depends = graph.entry(module.clone()).or_default();
        for line in text.lines() {
            let code = line.trim_start();
            if code.starts_with("#[cfg(test)]") {
                break;
            }
            if code.starts_with("//") {
                continue;
            }
            let code = code.split("//").next().unwrap_or("");
            for name in crate_references(code) {
                if name != module {
                    depends.insert(name.to_string());
                }
            }
        }
    }
    graph
}

/// A cycle of the graph, as the modules along it, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[from..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Open);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut marks, &mut Vec::new()))
}

#[test]
fn no_crate_has_a_module_cycle() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&crates).expect("reading crates/") {
        let src = entry.expect("a directory entry").path().join("src");
        if !src.is_dir() {
            continue;
        }
        let graph = module_graph(&src);
        if let Some(cycle) = find_cycle(&graph) {
            panic!("module cycle in {}: {}", src.display(), cycle.join(" -> "));
        }
        checked.push(src);
    }
    assert!(checked.len() >= 10, "crates not found: {checked:?}");
}

#[test]
fn a_request_depends_on_nothing_that_carries_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/rill/src");
    let graph = module_graph(&src);
    assert!(
        graph.len() > 20 && graph.contains_key("request") && graph.contains_key("shard"),
        "the graph was not read: {graph:?}"
    );
    for carrier in ["queue", "pending", "send", "partition", "shard"] {
        assert!(
            !graph["request"].contains(carrier),
            "request depends on {carrier}"
        );
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_reads_references() {
    let graph: Graph = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(n, d)| (n.to_string(), d.into_iter().map(String::from).collect()))
    .collect();
    let cycle = find_cycle(&graph).expect("a -> b -> c -> a");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
    let acyclic: Graph = [("a", vec!["b"]), ("b", vec![])]
        .into_iter()
        .map(|(n, d)| (n.to_string(), d.into_iter().map(String::from).collect()))
        .collect();
    assert_eq!(find_cycle(&acyclic), None);
    let line = "use crate::send_item::{SendInfo}; crate::reply::channel(); $crate::reply::Pooled";
    assert_eq!(
        crate_references(line).collect::<Vec<_>>(),
        ["send_item", "reply"]
    );
}
