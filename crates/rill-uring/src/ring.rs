//! Setting up one shard's ring: the best task-running mode the kernel offers, a CQ larger than
//! the SQ, a probe of every opcode the driver uses, and a cap on io-wq workers.

use crate::error::DriverError;
use io_uring::{IoUring, Probe, opcode};

/// How completion work is run, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskrunMode {
    /// `SINGLE_ISSUER | DEFER_TASKRUN` (Linux 6.1): completion work runs only when the shard
    /// waits for it, never interrupting it.
    DeferTaskrun,
    /// `COOP_TASKRUN | TASKRUN_FLAG` (Linux 5.19).
    CoopTaskrun,
    /// Neither: the kernel interrupts the thread to run completion work.
    Plain,
}

/// Ring sizes and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingConfig {
    /// Submission queue entries (a power of two, at most 32768).
    pub sq_entries: u32,
    /// Completion queue entries (at least `sq_entries`; the driver keeps no more operations in
    /// flight than this, so the CQ never overflows).
    pub cq_entries: u32,
    /// Slots in the sparse registered-file table.
    pub registered_files: u32,
    /// Most io-wq workers for bounded work (regular-file I/O such as buffered ext4 writes and
    /// fsyncs) and unbounded work (sockets, pipes); 0 keeps the kernel's default.
    pub iowq_max_workers: [u32; 2],
    /// Try `DEFER_TASKRUN` and `COOP_TASKRUN` (on by default; off forces `Plain`).
    pub taskrun_flags: bool,
}

impl Default for RingConfig {
    fn default() -> Self {
        Self {
            sq_entries: 256,
            cq_entries: 1024,
            registered_files: 1024,
            iowq_max_workers: [16, 16],
            taskrun_flags: true,
        }
    }
}

/// What the ring was set up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingFeatures {
    /// The task-running mode the kernel accepted.
    pub taskrun: TaskrunMode,
    /// Submission queue entries.
    pub sq_entries: u32,
    /// Completion queue entries.
    pub cq_entries: u32,
}

/// Opcodes the driver submits; set-up fails naming the first one missing.
const REQUIRED_OPCODES: [(u8, &str); 8] = [
    (opcode::Writev::CODE, "IORING_OP_WRITEV"),
    (opcode::Fsync::CODE, "IORING_OP_FSYNC"),
    (opcode::Read::CODE, "IORING_OP_READ"),
    (opcode::ReadFixed::CODE, "IORING_OP_READ_FIXED"),
    (opcode::PollAdd::CODE, "IORING_OP_POLL_ADD"),
    (opcode::Splice::CODE, "IORING_OP_SPLICE"),
    (opcode::Send::CODE, "IORING_OP_SEND"),
    (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL"),
];

/// Builds a ring on the calling thread (with `SINGLE_ISSUER`, the only thread that may use it).
pub(crate) fn build(config: &RingConfig) -> Result<(IoUring, RingFeatures), DriverError> {
    if config.sq_entries == 0 || config.cq_entries < config.sq_entries {
        return Err(DriverError::Config(format!(
            "ring needs sq_entries > 0 and cq_entries >= sq_entries, got {config:?}"
        )));
    }
    let attempts: &[TaskrunMode] = if config.taskrun_flags {
        &[
            TaskrunMode::DeferTaskrun,
            TaskrunMode::CoopTaskrun,
            TaskrunMode::Plain,
        ]
    } else {
        &[TaskrunMode::Plain]
    };
    let mut last_error = None;
    for &mode in attempts {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(config.cq_entries).setup_submit_all();
        match mode {
            TaskrunMode::DeferTaskrun => {
                // The flag tells an enter that deferred completions are waiting, so one that
                // does not wait asks for them only then (see `UringDriver::enter`).
                builder
                    .setup_single_issuer()
                    .setup_defer_taskrun()
                    .setup_taskrun_flag();
            }
            TaskrunMode::CoopTaskrun => {
                builder.setup_coop_taskrun().setup_taskrun_flag();
            }
            TaskrunMode::Plain => {}
        }
        match builder.build(config.sq_entries) {
            Ok(ring) => {
                check(&ring)?;
                let features = RingFeatures {
                    taskrun: mode,
                    sq_entries: ring.params().sq_entries(),
                    cq_entries: ring.params().cq_entries(),
                };
                return Ok((ring, features));
            }
            // EINVAL: a flag this kernel does not know; try the next mode.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_error = Some(e),
            Err(e) => return Err(unavailable(&e)),
        }
    }
    let e = last_error.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL));
    Err(unavailable(&e))
}

fn unavailable(e: &std::io::Error) -> DriverError {
    DriverError::Unsupported {
        what: format!(
            "io_uring_setup failed ({e}): the kernel lacks io_uring, it is disabled \
             (sysctl kernel.io_uring_disabled), or a seccomp profile blocks it"
        ),
    }
}

/// Checks the features and opcodes the driver relies on.
fn check(ring: &IoUring) -> Result<(), DriverError> {
    if !ring.params().is_feature_ext_arg() {
        return Err(DriverError::Unsupported {
            what: "IORING_FEAT_EXT_ARG (Linux 5.11), needed to wait with a timeout".into(),
        });
    }
    if !ring.params().is_feature_nodrop() {
        return Err(DriverError::Unsupported {
            what: "IORING_FEAT_NODROP (Linux 5.5)".into(),
        });
    }
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| DriverError::Unsupported {
            what: format!("IORING_REGISTER_PROBE (Linux 5.6): {e}"),
        })?;
    for (code, name) in REQUIRED_OPCODES {
        if !probe.is_supported(code) {
            return Err(DriverError::Unsupported {
                what: format!("opcode {name}"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_with_the_best_mode_this_kernel_has() {
        let (ring, features) = match build(&RingConfig::default()) {
            Ok(r) => r,
            Err(DriverError::Unsupported { what }) => {
                eprintln!("SKIP: io_uring unavailable here: {what}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert!(features.cq_entries >= 2 * features.sq_entries);
        assert_eq!(ring.params().sq_entries(), features.sq_entries);
        eprintln!("ring: {features:?}");
        // DEFER_TASKRUN with TASKRUN_FLAG exists since Linux 6.1: a kernel that has it must
        // not fall back (the driver's no-wait enter relies on the flag).
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut numbers = release
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<u32>().ok());
        let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
        if version >= (6, 1) {
            assert_eq!(features.taskrun, TaskrunMode::DeferTaskrun, "{release}");
        }
    }

    #[test]
    fn rejects_a_cq_smaller_than_the_sq() {
        let config = RingConfig {
            cq_entries: 8,
            sq_entries: 16,
            ..RingConfig::default()
        };
        assert!(matches!(build(&config), Err(DriverError::Config(_))));
    }
}
