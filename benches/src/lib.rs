//! The head-to-head benchmark harness behind `rill bench` (DESIGN §10).
//!
//! Every workload runs the same work on rill's io_uring executor and on the epoll + syscalls
//! baseline executor, in one process run, interleaved (A B A B ...) over several repetitions;
//! peers (`commitlog`, `fjall`) join the append and read workloads. Each case reports the
//! median and min..max of every metric and, per repetition pair, the ratio rill / baseline.
//! The machine's own limits (sequential write + fdatasync, 4 KiB append + fdatasync latency,
//! loopback sendfile) are measured first, so every result can be read against them.
//!
//! Module map:
//! - [`harness`]: the interleaving runner, the scratch directories, progress.
//! - [`measure`]: medians and ranges, latency histograms, CPU clocks.
//! - [`workloads`]: `limits`, `append`, `fetch`, `read`, `recovery`, `scale`, `compaction`,
//!   `raft`, each its own module.
//! - [`peers`]: the `commitlog` and `fjall` adapters.
//! - [`report`]: the result model (JSON), the terminal table and the SVG plots.
//! - [`machine`]: what the results were measured on (kernel, CPU, filesystem, commit).

#![allow(
    clippy::cast_precision_loss,
    reason = "statistics over counters and byte counts far below 2^52"
)]

pub mod harness;
pub mod machine;
pub mod measure;
pub mod peers;
pub mod report;
pub mod workloads;

pub use harness::{Mode, Options, Scale, Workload, run};
pub use workloads::child_main_if_requested;
