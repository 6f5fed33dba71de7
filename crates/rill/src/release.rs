//! What a queued request holds on behalf of others, given back when the request drops: its
//! batch's bytes in its shard queue's bound ([`BytesGuard`]) and its socket's gate
//! ([`GateTicket`]). The owners (the queue, the socket gates) implement the traits here, so a
//! request stays plain data that knows none of them.

use rill_send::SocketId;
use std::fmt;
use std::sync::Arc;

/// Takes back bytes a [`BytesGuard`] counted (a shard's queue).
pub(crate) trait ReleaseBytes: Send + Sync + fmt::Debug {
    /// `bytes` are no longer held inside the library.
    fn release_bytes(&self, bytes: usize);
}

/// Bytes of a batch counted inside the library until the request carrying it is done with it.
#[derive(Debug)]
pub(crate) struct BytesGuard {
    owner: Arc<dyn ReleaseBytes>,
    bytes: usize,
}

impl BytesGuard {
    pub(crate) fn new(owner: Arc<dyn ReleaseBytes>, bytes: usize) -> Self {
        Self { owner, bytes }
    }
}

impl Drop for BytesGuard {
    fn drop(&mut self) {
        self.owner.release_bytes(self.bytes);
    }
}

/// Lets the next send to a socket go (the socket gates).
pub(crate) trait OpenGate: Send + Sync + fmt::Debug {
    /// The send holding `socket`'s gate ended.
    fn leave(&self, socket: SocketId);
}

/// Held by the send that owns its socket's gate (inside its request); dropping it lets the
/// next send to the socket go.
#[derive(Debug)]
pub(crate) struct GateTicket {
    gates: Arc<dyn OpenGate>,
    socket: SocketId,
    /// Whether dropping it opens the gate (a ticket disarmed by
    /// [`crate::send::SocketGates`]'s `leave` does not, so leaving never recurses).
    armed: bool,
}

impl GateTicket {
    /// An armed ticket for `socket`'s gate in `gates`.
    pub(crate) fn new(gates: Arc<dyn OpenGate>, socket: SocketId) -> Self {
        Self {
            gates,
            socket,
            armed: true,
        }
    }

    /// Dropping it will not open the gate.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for GateTicket {
    fn drop(&mut self) {
        if self.armed {
            self.gates.leave(self.socket);
        }
    }
}
