//! [`crate::Partition::send`]'s plumbing: the socket a send goes to, checked once, and the
//! socket gates: sends to one socket run one at a time, in the order they were asked for,
//! even when they are for partitions on different shards. The next send to a socket is
//! dispatched when the previous one's [`GateTicket`] drops, which the shard does before it
//! answers, so a caller that awaited one send finds the socket free for the next. What a
//! send is (its range, header, options, answer) is plain data in [`crate::send_item`].

use crate::error::{Error, Result};
use crate::pending::Pending;
use crate::queue::ShardHandle;
use crate::release::{GateTicket, OpenGate};
use crate::reply::{Pooled, Slot};
use crate::request::Request;
use parking_lot::Mutex;
use rill_send::SocketId;
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

/// A socket checked for sends: its identity for the gate, its mode and a duplicate of it.
pub(crate) struct PreparedSocket {
    pub(crate) id: SocketId,
    pub(crate) nonblocking: bool,
    pub(crate) fd: OwnedFd,
}

impl PreparedSocket {
    pub(crate) fn new(socket: BorrowedFd<'_>) -> Result<Self> {
        let prepared = rill_send::check_stream_socket(socket).and_then(|()| {
            Ok(Self {
                id: SocketId::of(socket)?,
                nonblocking: rill_send::is_nonblocking(socket)?,
                fd: socket.try_clone_to_owned()?,
            })
        });
        prepared.map_err(Error::Socket)
    }

    /// Another descriptor of the same socket.
    pub(crate) fn duplicate(&self) -> Result<OwnedFd> {
        self.fd.as_fd().try_clone_to_owned().map_err(Error::Socket)
    }
}

/// Sends queued behind a socket's current one, each with the shard to dispatch it to.
type Waiting = VecDeque<(Arc<ShardHandle>, Request)>;

/// The sends waiting for each busy socket, across all shards: at most `max_waiting` per socket
/// (a caller asking for more before awaiting any gets [`crate::Error::QueueFull`]).
#[derive(Debug)]
pub(crate) struct SocketGates {
    busy: Mutex<HashMap<SocketId, Waiting>>,
    max_waiting: usize,
}

/// Where [`SocketGates::enter`] put a request.
enum Entered {
    /// The socket was free: send the request to its shard now.
    Go(Request),
    /// Queued behind the socket's current send.
    Queued,
    /// `max_waiting` sends already wait for the socket: the request is given back.
    Full(Request),
}

impl SocketGates {
    pub(crate) fn new(max_waiting: usize) -> Self {
        Self {
            busy: Mutex::new(HashMap::new()),
            max_waiting,
        }
    }

    /// How many sends may wait behind a socket's current one.
    pub(crate) fn max_waiting(&self) -> usize {
        self.max_waiting
    }

    /// A ticket for `socket`, to put into the request passed to [`SocketGates::enter`].
    pub(crate) fn ticket(self: &Arc<Self>, socket: SocketId) -> GateTicket {
        GateTicket::new(Arc::clone(self) as Arc<dyn OpenGate>, socket)
    }

    /// Sends `request` (holding a ticket for `socket`, answered through `slot`) to `shard`
    /// through the socket's gate: at once if the socket is free, else when the sends before it
    /// ended. `QueueFull`, with nothing sent, when `max_waiting` sends already wait.
    pub(crate) fn dispatch<T: Pooled>(
        &self,
        socket: SocketId,
        shard: &Arc<ShardHandle>,
        request: Request,
        slot: Arc<Slot<T>>,
    ) -> Result<Pending<T>> {
        match self.enter(socket, shard, request) {
            Entered::Go(request) => Ok(Pending::send(shard, request, slot)),
            Entered::Queued => Ok(Pending::sent(slot)),
            Entered::Full(mut request) => {
                // Its ticket must not open the gate held by the send in progress.
                request.disarm_gate();
                drop(request);
                Err(Error::QueueFull)
            }
        }
    }

    /// Lets `request` (holding a ticket for `socket`) go if the socket is free, else queues it.
    fn enter(&self, socket: SocketId, shard: &Arc<ShardHandle>, request: Request) -> Entered {
        let mut busy = self.busy.lock();
        if let Some(queue) = busy.get_mut(&socket) {
            if queue.len() >= self.max_waiting {
                return Entered::Full(request);
            }
            queue.push_back((Arc::clone(shard), request));
            Entered::Queued
        } else {
            busy.insert(socket, VecDeque::new());
            Entered::Go(request)
        }
    }
}

impl OpenGate for SocketGates {
    /// The socket's send ended: dispatches the next queued one, or frees the socket.
    fn leave(&self, socket: SocketId) {
        // Each pass dispatches one request or drops one (its shard closed): bounded by the
        // queue's length.
        loop {
            let next = {
                let mut busy = self.busy.lock();
                let Some(queue) = busy.get_mut(&socket) else {
                    return;
                };
                let Some(next) = queue.pop_front() else {
                    busy.remove(&socket);
                    return;
                };
                next
            };
            let (shard, request) = next;
            // Queued even when the queue is full: it took room when asked for (at most one per
            // socket is dispatched). A closing shard drops it (answered `ShuttingDown`, its
            // ticket disarmed so it does not re-enter `leave`): try the next.
            if shard.push_control(request).is_ok() {
                return;
            }
        }
    }
}
