//! What the send path needs to know about a caller's socket.

use rustix::fs::{OFlags, fcntl_getfl, fstat};
use std::io;
use std::os::fd::AsFd;

/// Identifies a socket across duplicated descriptors (device and inode of its sockfs node), so
/// that sends to one socket through different descriptors are still serialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketId {
    dev: u64,
    ino: u64,
}

impl SocketId {
    /// The socket behind `fd`.
    pub fn of(fd: impl AsFd) -> io::Result<Self> {
        let stat = fstat(fd)?;
        Ok(Self {
            dev: stat.st_dev,
            ino: stat.st_ino,
        })
    }
}

/// Fails unless `fd` is a connected-or-not stream socket (TCP or Unix `SOCK_STREAM`).
pub fn check_stream_socket(fd: impl AsFd) -> io::Result<()> {
    match rustix::net::sockopt::socket_type(fd) {
        Ok(rustix::net::SocketType::STREAM) => Ok(()),
        Ok(other) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a stream socket ({other:?})"),
        )),
        Err(e) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a socket: {e}"),
        )),
    }
}

/// Whether `fd`'s open file description is in non-blocking mode (`O_NONBLOCK`).
pub fn is_nonblocking(fd: impl AsFd) -> io::Result<bool> {
    Ok(fcntl_getfl(fd)?.contains(OFlags::NONBLOCK))
}
