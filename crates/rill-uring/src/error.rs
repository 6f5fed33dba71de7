//! Errors of driver set-up. Errors of individual operations are `std::io::Error`s recorded in
//! the operation itself.

use std::io;

/// Why a driver could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The kernel lacks io_uring, or an opcode or feature the driver needs.
    #[error("io_uring is unavailable: {what}")]
    Unsupported {
        /// What is missing.
        what: String,
    },
    /// A system call failed during set-up.
    #[error("{op}: {source}")]
    Setup {
        /// What was being set up.
        op: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// An option is out of range.
    #[error("invalid driver option: {0}")]
    Config(String),
}

impl DriverError {
    pub(crate) fn setup(op: &'static str, source: impl Into<io::Error>) -> Self {
        Self::Setup {
            op,
            source: source.into(),
        }
    }
}
