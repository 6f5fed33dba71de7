//! # rill-raft-node
//!
//! A replicated rill partition you can run: each node is a process holding the partition in
//! its own rill log, replicated with openraft (storage: `rill-raft`) over TCP. Clients append
//! records through the leader (answered once committed) and read committed batches from any
//! node; admins make the cluster, add learners and change the voters. See the README, "A
//! replicated partition on three nodes".

pub mod client;
pub mod network;
pub mod node;
pub mod proposer;
pub mod wire;

pub use client::{CallError, Client};
pub use node::{Node, NodeConfig, TOPIC, serve};
