//! `rill-raft-node`: run a node of a replicated rill partition, or talk to one.
//!
//! ```text
//! rill-raft-node serve --id 1 --listen 127.0.0.1:21001 --dir /tmp/n1
//! rill-raft-node init --node 127.0.0.1:21001 --member 1=127.0.0.1:21001 --member 2=... --member 3=...
//! rill-raft-node append --node 127.0.0.1:21001 --value hello --count 10
//! rill-raft-node read --node 127.0.0.1:21002 --offset 0
//! rill-raft-node add-learner --node 127.0.0.1:21001 --id 4 --addr 127.0.0.1:21004
//! rill-raft-node change-membership --node 127.0.0.1:21001 --voter 1 --voter 2 --voter 4
//! rill-raft-node metrics --node 127.0.0.1:21003
//! ```
//!
//! `serve` exits with an error when Raft stops on its own (a disk that refused a write or an
//! fdatasync): fail-stop, for a supervisor to restart the node, which recovers from disk.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rill_raft::Record;
use rill_raft_node::{Client, Node, NodeConfig, serve};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "A node of a replicated rill partition (openraft over TCP), and its client")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node until SIGTERM or SIGINT.
    Serve {
        /// The node's id.
        #[arg(long)]
        id: u64,
        /// Address to listen on (peers and clients).
        #[arg(long)]
        listen: String,
        /// The node's directory (its rill log and Raft state).
        #[arg(long)]
        dir: PathBuf,
        /// A snapshot every this many applied entries.
        #[arg(long, default_value_t = 10_000)]
        snapshot_every: u64,
        /// Entries kept below the last snapshot (older ones are deleted); default: all.
        #[arg(long)]
        keep_below_snapshot: Option<u64>,
        /// The I/O driver: auto, uring or syscall.
        #[arg(long, default_value = "auto")]
        driver: String,
        /// How long an append waits to be committed before it is answered "outcome
        /// unknown".
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
        append_timeout_ms: u64,
    },
    /// Make the cluster of these voters (once, on one node).
    Init {
        /// The node to ask.
        #[arg(long)]
        node: String,
        /// A voter, as id=address (repeat).
        #[arg(long = "member", required = true)]
        members: Vec<String>,
    },
    /// Append records through the leader and print their offsets once committed.
    Append {
        /// Any node (the leader is found).
        #[arg(long)]
        node: String,
        /// The records' value.
        #[arg(long)]
        value: String,
        /// How many records (one request).
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
    /// Print the committed records a node holds from an offset.
    Read {
        /// The node to read.
        #[arg(long)]
        node: String,
        /// Where to start.
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Add a learner (through the leader) and wait until it has caught up.
    AddLearner {
        /// Any node (the leader is found).
        #[arg(long)]
        node: String,
        /// The learner's id.
        #[arg(long)]
        id: u64,
        /// The learner's address.
        #[arg(long)]
        addr: String,
    },
    /// Make these nodes the voters (through the leader).
    ChangeMembership {
        /// Any node (the leader is found).
        #[arg(long)]
        node: String,
        /// A voter's id (repeat).
        #[arg(long = "voter", required = true)]
        voters: Vec<u64>,
    },
    /// Print a node's state as JSON.
    Metrics {
        /// The node to ask.
        #[arg(long)]
        node: String,
    },
}

fn driver(name: &str) -> anyhow::Result<rill::DriverChoice> {
    Ok(match name {
        "auto" => rill::DriverChoice::Auto,
        "uring" => rill::DriverChoice::Uring,
        "syscall" => rill::DriverChoice::Syscall,
        other => bail!("unknown driver {other:?}: auto, uring or syscall"),
    })
}

async fn run_node(config: NodeConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("listen on {}", config.listen))?;
    let node = Node::start(&config).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(serve(std::sync::Arc::clone(&node), listener, stopped));
    // Tests and scripts wait for this line.
    println!("node {} listening on {}", config.id, config.listen);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let failed = tokio::select! {
        _ = term.recv() => None,
        _ = tokio::signal::ctrl_c() => None,
        why = node.raft_stopped() => Some(why),
    };
    let _ = stop.send(true);
    let _ = server.await;
    let closed = node.shutdown().await;
    match failed {
        // Fail-stop: a restart recovers the log from disk and rejoins the cluster.
        Some(why) => {
            tracing::error!(id = config.id, "Raft stopped: {why}");
            bail!("node {}: Raft stopped: {why}; restart the node", config.id)
        }
        None => closed,
    }
}

fn print_records(batches: &[u8]) -> anyhow::Result<()> {
    let mut rest = batches;
    while !rest.is_empty() {
        let header = rill::batch::BatchHeader::parse(rest)?;
        let len = usize::try_from(header.total_bytes())?.min(rest.len());
        let (batch, tail) = rest.split_at(len);
        rest = tail;
        if header.attributes.is_control() {
            continue;
        }
        for record in rill::batch::records(batch)? {
            let record = record?;
            let value = record.value.map(String::from_utf8_lossy);
            println!("{}\t{}", record.offset, value.unwrap_or_default());
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            id,
            listen,
            dir,
            snapshot_every,
            keep_below_snapshot,
            driver: name,
            append_timeout_ms,
        } => {
            let mut config = NodeConfig::new(id, listen, dir);
            config.append_timeout_ms = append_timeout_ms;
            config.snapshot_every = snapshot_every;
            config.keep_below_snapshot = keep_below_snapshot.unwrap_or(u64::MAX);
            config.driver = driver(&name)?;
            run_node(config).await
        }
        Command::Init { node, members } => {
            let mut map = BTreeMap::new();
            for member in members {
                let (id, addr) = member
                    .split_once('=')
                    .with_context(|| format!("{member:?} is not id=address"))?;
                map.insert(id.parse()?, addr.to_string());
            }
            Ok(Client::new(node).init(map).await?)
        }
        Command::Append { node, value, count } => {
            let now_ms = i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_millis(),
            )?;
            let records = (0..count)
                .map(|_| Record {
                    timestamp_ms: now_ms,
                    value: Some(value.clone().into_bytes()),
                    ..Record::default()
                })
                .collect();
            for offset in Client::new(node).append(records).await? {
                println!("{offset}");
            }
            Ok(())
        }
        Command::Read { node, offset } => {
            let batches = Client::new(node).read_all(offset).await?;
            print_records(&batches)
        }
        Command::AddLearner { node, id, addr } => {
            Ok(Client::new(node).add_learner(id, addr).await?)
        }
        Command::ChangeMembership { node, voters } => {
            let voters: BTreeSet<u64> = voters.into_iter().collect();
            Ok(Client::new(node).change_membership(voters).await?)
        }
        Command::Metrics { node } => {
            let metrics = Client::new(node).metrics().await?;
            println!("{}", serde_json::to_string_pretty(&metrics)?);
            Ok(())
        }
    }
}
