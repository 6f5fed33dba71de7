//! Test equipment for rill: a simulated disk that loses power.
//!
//! [`SimDisk`] implements [`rill_disk::Disk`] in memory with the fault model of
//! docs/ARCHITECTURE.md ("The simulated disk"): each file keeps what reads see and what a power
//! cut keeps; unsynced writes may be lost, torn or zero-filled at a cut, names not yet synced in
//! their directory may vanish, and fsync, write and read faults can be injected. Everything
//! random comes from one seed, so a failing run replays.
//!
//! A service that embeds rill opens its log on one (`rill::Log::open_on`), drives it, cuts the
//! power ([`SimDisk::power_cut_after`], then [`SimDisk::crash`]) and opens it again, to test
//! that what it acknowledged survives: see `crates/rill/examples/service_recovery.rs`.

mod disk;
#[cfg(feature = "fuse")]
pub mod fuse;
mod namespace;
mod rng;

pub use disk::{CrashKind, FaultConfig, SimDisk, SimStats};
pub use rng::SimRng;
