//! Starting `rill-broker` as a real process, and finding the independent clients.

#![allow(dead_code, reason = "each test binary uses part of this module")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running broker; killed (SIGKILL) when dropped unless stopped.
pub struct Broker {
    pub child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
}

impl Broker {
    /// Starts `rill-broker` on a free loopback port over `data_dir`, with extra flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", data_dir, extra)
    }

    /// Starts `rill-broker` listening on `listen` (a fixed port, to restart it where its
    /// clients expect it).
    pub fn start_on(listen: &str, data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rill-broker"))
            .args(["--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rill-broker");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the broker's first line");
        let addr = line
            .split_whitespace()
            .nth(3)
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        assert!(line.starts_with("rill-broker listening on "), "{line}");
        Self {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded) for a clean exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        false
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Whether an external client is installed. Missing clients fail the test when
/// `RILL_REQUIRE_CLIENTS=1` (CI, after scripts/setup.sh); otherwise the test says SKIP.
pub fn client_available(what: &str, probe: &mut Command) -> bool {
    let ok = probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("RILL_REQUIRE_CLIENTS").is_none_or(|v| v != "1"),
            "{what} is not installed; run scripts/setup.sh"
        );
        eprintln!("SKIP: {what} is not installed (scripts/setup.sh installs it)");
    }
    ok
}

pub fn kcat_available() -> bool {
    client_available("kcat", Command::new("kcat").arg("-V"))
}

/// A loopback port free right now (for a broker that must come back on the same one).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn python_module_available(module: &str) -> bool {
    client_available(
        module,
        Command::new("python3").args(["-c", &format!("import {module}")]),
    )
}

/// kafkajs, installed by scripts/setup.sh under `.clients/node_modules`.
pub fn kafkajs_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.clients");
    let ok = client_available(
        "kafkajs",
        Command::new("node")
            .current_dir(&dir)
            .args(["-e", "require('kafkajs')"]),
    );
    ok.then_some(dir)
}

pub fn kafka_python_available() -> bool {
    client_available(
        "kafka-python",
        Command::new("python3").args(["-c", "import kafka"]),
    )
}

/// The Python client scripts of these tests.
pub fn client_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

/// Runs a command to completion with a time limit (killed past it), returning stdout;
/// panics with its output on failure.
pub fn run(command: &mut Command, limit: Duration) -> String {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).map(|_| text)
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).map(|_| text)
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = out.join().expect("stdout reader").unwrap_or_default();
    let err = err.join().expect("stderr reader").unwrap_or_default();
    assert!(
        status.success(),
        "{command:?} failed ({status}) within {limit:?}:\nstdout:\n{out}\nstderr:\n{err}"
    );
    out
}
