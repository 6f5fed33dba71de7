//! What the results were measured on: kernel, CPU, memory, the data directory's filesystem,
//! the commit of the code. Every field is best effort ("unknown" when it cannot be read).

use serde::Serialize;
use std::path::Path;
use std::process::Command;

/// The machine and build a report was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `uname -sr` and the machine architecture.
    pub kernel: String,
    /// The CPU model.
    pub cpu: String,
    /// CPUs this process may run on.
    pub cpus: usize,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Filesystem type of the data directory, its device and mount options.
    pub filesystem: String,
    /// Where the logs were written.
    pub data_dir: String,
    /// The git commit of the code (with `-dirty` when the work tree had changes).
    pub commit: String,
    /// `rustc --version` of the toolchain on the path.
    pub rustc: String,
    /// Whether this build has debug assertions (benchmarks should run `--release`).
    pub debug_build: bool,
}

impl Machine {
    /// Reads what it can about this machine; `data_dir` names the measured filesystem.
    pub fn probe(data_dir: &Path) -> Self {
        let uname = rustix::system::uname();
        Self {
            kernel: format!(
                "{} {} {}",
                uname.sysname().to_string_lossy(),
                uname.release().to_string_lossy(),
                uname.machine().to_string_lossy()
            ),
            cpu: cpu_model().unwrap_or_else(|| "unknown".into()),
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            memory_bytes: memory_bytes().unwrap_or(0),
            filesystem: filesystem_of(data_dir).unwrap_or_else(|| "unknown".into()),
            data_dir: data_dir.display().to_string(),
            commit: commit().unwrap_or_else(|| "unknown".into()),
            rustc: command_line("rustc", &["--version"]).unwrap_or_else(|| "unknown".into()),
            debug_build: cfg!(debug_assertions),
        }
    }

    /// One paragraph for the terminal.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "machine: {} | {} x {} | {:.1} GiB | {} ({})\ncode: {} | {}",
            self.kernel,
            self.cpus,
            self.cpu,
            self.memory_bytes as f64 / f64::from(1u32 << 30),
            self.filesystem,
            self.data_dir,
            self.commit,
            self.rustc
        );
        if self.debug_build {
            text.push_str("\nWARNING: a debug build; run with --release for meaningful numbers");
        }
        text
    }
}

fn cpu_model() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, model)| model.trim().to_string())
}

fn memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The mount holding `path` (the longest mount point that is a prefix of it) from
/// `/proc/mounts`: "fstype on device (options)".
fn filesystem_of(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = fields.next()?;
            let mount_point = fields.next()?.replace("\\040", " ");
            let fstype = fields.next()?;
            let options = fields.next().unwrap_or("");
            path.starts_with(&mount_point).then(|| {
                (
                    mount_point.len(),
                    format!("{fstype} on {device} ({options})"),
                )
            })
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, description)| description)
}

fn commit() -> Option<String> {
    let dir = env!("CARGO_MANIFEST_DIR");
    let head = command_line("git", &["-C", dir, "rev-parse", "--short=12", "HEAD"])?;
    let dirty = Command::new("git")
        .args(["-C", dir, "status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reads_this_machine() {
        let machine = Machine::probe(Path::new("/"));
        assert!(machine.kernel.starts_with("Linux"), "{}", machine.kernel);
        assert!(machine.cpus >= 1);
        assert!(machine.memory_bytes > 0);
        assert_ne!(machine.filesystem, "unknown");
    }
}
