//! Why a send failed. Every variant says how many bytes already reached the socket: after a
//! failure mid-transfer the stream holds a partial frame, and the caller should close it.

use std::io;

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The peer closed or reset the connection (`EPIPE`, `ECONNRESET`, ...).
    #[error("the peer closed the connection after {sent} bytes were sent")]
    PeerClosed {
        /// Bytes written to the socket before (header included).
        sent: u64,
    },
    /// No progress for the stall timeout: the peer stopped reading or vanished.
    #[error("no progress for {timeout_ms} ms after {sent} bytes were sent")]
    Stalled {
        /// Bytes written to the socket before.
        sent: u64,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The segment file ended before the range did (it was truncated under the transfer).
    #[error("the segment file ended {missing} bytes early after {sent} bytes were sent")]
    FileShort {
        /// Bytes written to the socket before.
        sent: u64,
        /// Bytes of the range that were not there.
        missing: u64,
    },
    /// The transfer was cancelled (the log is closing).
    #[error("the transfer was cancelled after {sent} bytes were sent")]
    Cancelled {
        /// Bytes written to the socket before.
        sent: u64,
    },
    /// An I/O error on the file, the pipe or the socket.
    #[error("{what} failed after {sent} bytes were sent: {source}")]
    Io {
        /// Which step failed.
        what: &'static str,
        /// Bytes written to the socket before.
        sent: u64,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The driver cannot send (for example the simulated disk has no descriptors).
    #[error("sending is not supported: {0}")]
    Unsupported(&'static str),
}

impl SendError {
    /// Bytes written to the socket before the failure.
    pub fn sent(&self) -> u64 {
        match self {
            Self::PeerClosed { sent }
            | Self::Stalled { sent, .. }
            | Self::FileShort { sent, .. }
            | Self::Cancelled { sent }
            | Self::Io { sent, .. } => *sent,
            Self::Unsupported(_) => 0,
        }
    }

    /// The error for a failed socket write: the peer's going away gets its own variant.
    pub fn socket(errno: i32, sent: u64) -> Self {
        match errno {
            libc_errno::EPIPE
            | libc_errno::ECONNRESET
            | libc_errno::ENOTCONN
            | libc_errno::ESHUTDOWN
            | libc_errno::ECONNABORTED => Self::PeerClosed { sent },
            _ => Self::Io {
                what: "socket write",
                sent,
                source: io::Error::from_raw_os_error(errno),
            },
        }
    }
}

/// Errno values (Linux), without a libc dependency.
pub(crate) mod libc_errno {
    use rustix::io::Errno;
    pub(crate) const EPIPE: i32 = Errno::PIPE.raw_os_error();
    pub(crate) const ECONNRESET: i32 = Errno::CONNRESET.raw_os_error();
    pub(crate) const ENOTCONN: i32 = Errno::NOTCONN.raw_os_error();
    pub(crate) const ESHUTDOWN: i32 = Errno::SHUTDOWN.raw_os_error();
    pub(crate) const ECONNABORTED: i32 = Errno::CONNABORTED.raw_os_error();
}
