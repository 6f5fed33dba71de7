//! `Log`: the engine a service embeds. Opens (recovering every partition), starts the shards,
//! manages topics, hands out `Partition` handles, and shuts down cleanly.

use crate::cleaner::Cleaner;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::partition::Partition;
use crate::pending::Pending;
use crate::producer_ids::{ProducerId, ProducerIds};
use crate::queue::ShardHandle;
use crate::reply;
use crate::request::Request;
use crate::send::SocketGates;
use crate::shard;
use crate::shared::PartitionShared;
use crate::topic;
use crate::topic_dirs::{self, sync_dir};
use crate::topic_store::{self, Reconciled, StoredTopic};
use parking_lot::{Mutex, RwLock};
use rill_segment::disk::{Disk, HandleStats, StdDisk};
use rill_segment::index::{IndexCache, IndexCacheStats};
use rill_segment::recovery::{OpenOptions, RecoveryReport};
use rill_segment::{LogConfig, Offsets, PartitionLog};
use rill_uring::{ClosedFiles, Doorbell, DriverKind, DriverStats, NotifyingDisk};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;

mod admin;

/// What [`Log::open`] found and did.
#[derive(Debug)]
#[non_exhaustive]
pub struct OpenReport {
    /// The I/O driver the shards run (io_uring unless unavailable or not chosen).
    pub driver: DriverKind,
    /// Each partition's recovery report.
    pub partitions: Vec<PartitionReport>,
    /// Topics whose deletion was interrupted by a crash and has now been finished.
    pub deletions_finished: Vec<String>,
    /// With the io_uring driver: whether the data directory's file system completes buffered
    /// io_uring writes inline (XFS, btrfs) or hands them to io-wq workers (ext4). Appends are
    /// written on the caller's thread either way (see `docs/ARCHITECTURE.md`); `None` when not
    /// probed (another driver) or the probe failed.
    pub buffered_ring_writes_inline: Option<bool>,
}

/// One partition's recovery.
#[derive(Debug)]
pub struct PartitionReport {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: u32,
    /// What recovery did.
    pub report: RecoveryReport,
}

/// A topic's name and partition count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The name.
    pub name: String,
    /// The number of partitions.
    pub partitions: u32,
}

struct LogInner {
    config: Arc<Config>,
    shards: Vec<Arc<ShardHandle>>,
    disks: Vec<Arc<dyn Disk>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Shared with the cleaner thread, which lists the partitions without holding the log.
    topics: Arc<RwLock<BTreeMap<String, Vec<Partition>>>>,
    /// The cleaner thread (compaction), stopped first at close.
    cleaner: Mutex<Option<Cleaner>>,
    /// Each topic's stored configuration (as in its file), by name.
    stored_topics: RwLock<BTreeMap<String, StoredTopic>>,
    /// Serialises topic creation, deletion and configuration changes.
    admin: Mutex<()>,
    next_key: AtomicU64,
    closed: AtomicBool,
    driver: DriverKind,
    /// Sends to one socket go one at a time, across shards.
    gates: Arc<SocketGates>,
    /// What the files live on: every file and directory operation goes through its disk (the
    /// shards' disks wrap it).
    storage: Storage,
    /// Sealed segments' indexes, read on use, shared by every partition.
    index_cache: Arc<IndexCache>,
    /// Producer ids for idempotent producers; set once the partitions are open.
    producer_ids: std::sync::OnceLock<ProducerIds>,
}

/// Threads that open partitions at [`Log::open`], at least one per shard. A cold open mostly
/// waits on small reads (directories, inodes, checkpoints), and the virtio disk here serves
/// many at once: 32 threads opened 10,000 segments in 100 partitions cold in 0.12-0.14 s, 8
/// threads in 0.15-0.19 s.
const OPEN_WORKERS: usize = 32;

/// An open log: topics of partitions, each an append-only sequence of segments.
///
/// Cheap to clone (shared). Closing ([`Log::close`]) drains the shards and shuts every
/// partition down cleanly; dropping the last clone without closing does the same, ignoring
/// errors.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use rill::{Config, Log, Record};
/// let dir = tempfile::tempdir()?;
/// let (log, report) = Log::open(Config::new(dir.path()))?;
/// assert!(report.partitions.is_empty());
/// log.create_topic("orders", 3)?;
/// assert_eq!(log.topics()[0].partitions, 3);
///
/// let p = log.partition("orders", 0)?;
/// let info = p.append_records(&[Record::value(1_700_000_000_000, b"order #1")]).wait()?;
/// assert_eq!(info.base_offset, 0);
/// log.close()?;
///
/// // Reopening recovers every partition.
/// let (log, report) = Log::open(Config::new(dir.path()))?;
/// assert_eq!(report.partitions.len(), 3);
/// assert_eq!(log.partition("orders", 0)?.offsets().log_end, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Log {
    inner: Arc<LogInner>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("data_dir", &self.inner.config.data_dir)
            .field("shards", &self.inner.shards.len())
            .field("driver", &self.inner.driver)
            .field("topics", &self.inner.topics.read().len())
            .finish()
    }
}

/// A partition log recovered at open, or why not.
type Recovered = Result<(PartitionLog, RecoveryReport)>;

/// A partition to open at open.
struct Found {
    topic: String,
    index: u32,
    shard: usize,
    dir: PathBuf,
    /// Its settings: the log's defaults with its topic's configuration applied.
    log_config: LogConfig,
}

impl Log {
    /// Opens (creating if needed) the log in `config.data_dir`: finishes interrupted topic
    /// deletions, recovers every partition (in parallel, one thread per shard), and starts the
    /// shards. A partition whose acknowledged data is damaged makes the open fail with
    /// [`Error::Corrupt`] naming the file and bytes, unless `config.repair` is set.
    pub fn open(config: Config) -> Result<(Self, OpenReport)> {
        let files = Arc::new(StdDisk::with_max_open_files(config.max_open_files));
        Self::open_with(config, Storage::Files(files))
    }

    /// Opens the log on `disk` instead of the file system: every file and directory operation
    /// goes through it (paths are `config.data_dir` and below), and the shards run the
    /// [`DriverKind::Disk`] driver, which needs no descriptors, whatever `config.driver` says.
    /// Zero-copy sends are refused on such a log. This is how tests run the whole engine on a
    /// simulated disk that cuts the power (`rill_sim::SimDisk`): shards, queues,
    /// recovery and topic management together under its fault model.
    pub fn open_on(config: Config, disk: Arc<dyn Disk>) -> Result<(Self, OpenReport)> {
        Self::open_with(config, Storage::Disk(disk))
    }

    fn open_with(config: Config, storage: Storage) -> Result<(Self, OpenReport)> {
        config.validate()?;
        let data_dir = config.data_dir.clone();
        let disk = storage.disk();
        rill_segment::disk::create_dir_durably(disk, &data_dir)
            .map_err(|e| Error::io("create", &data_dir, e))?;
        let deletions_finished = topic_dirs::finish_deletions(disk, &data_dir)?;
        topic_store::prepare(disk, &data_dir)?;
        let stored = topic_store::read_all(disk, &data_dir, config.repair)?;
        let (found, stored) = plan_open(disk, &config, &stored)?;
        let config = Arc::new(config);
        let log = Self {
            inner: Arc::new(start_shards(&config, storage)?),
        };
        *log.inner.stored_topics.write() = stored;
        let partitions = match log.recover_all(found) {
            Ok(reports) => reports,
            Err(e) => {
                let _ = log.close();
                return Err(e);
            }
        };
        let ids = ProducerIds::open(
            log.inner.storage.disk(),
            &data_dir,
            log.inner.config.repair,
            || log.highest_producer_id(),
        );
        let ids = match ids {
            Ok(ids) => ids,
            Err(e) => {
                let _ = log.close();
                return Err(e);
            }
        };
        let _ = log.inner.producer_ids.set(ids);
        let topics = Arc::clone(&log.inner.topics);
        let cleaner = Cleaner::start(
            std::time::Duration::from_millis(log.inner.config.cleaner_interval_ms),
            move || topics.read().values().flatten().cloned().collect(),
        );
        match cleaner {
            Ok(cleaner) => *log.inner.cleaner.lock() = Some(cleaner),
            Err(e) => {
                let _ = log.close();
                return Err(e);
            }
        }
        sync_dir(log.inner.storage.disk(), &data_dir)?;
        let buffered_ring_writes_inline = probe_ring_writes(log.inner.driver, &data_dir);
        let report = OpenReport {
            driver: log.inner.driver,
            partitions,
            deletions_finished,
            buffered_ring_writes_inline,
        };
        Ok((log, report))
    }

    /// Recovers the partitions found, in parallel, and attaches them to their shards.
    fn recover_all(&self, found: Vec<Found>) -> Result<Vec<PartitionReport>> {
        let inner = &self.inner;
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<Recovered>>> = found.iter().map(|_| Mutex::new(None)).collect();
        // Opening a partition mostly waits on the disk (directory reads, inode reads, a few
        // syncs), so more threads than cores overlap those waits; a replay's CRC work still
        // shares the cores.
        let workers = inner.shards.len().max(OPEN_WORKERS).min(found.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    // Each pass takes one partition; ends when all are taken.
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(part) = found.get(i) else { return };
                        let result = PartitionLog::open(
                            Arc::clone(&inner.disks[part.shard]),
                            &part.dir,
                            part.log_config.clone(),
                            OpenOptions {
                                repair: inner.config.repair,
                                now_ms: inner.config.wall_clock.now_ms(),
                            },
                        )
                        .map_err(Error::from);
                        *slots[i].lock() = Some(result);
                    }
                });
            }
        });
        let mut reports = Vec::with_capacity(found.len());
        let mut first_error = None;
        let mut topics: BTreeMap<String, Vec<Partition>> = BTreeMap::new();
        for (part, slot) in found.into_iter().zip(slots) {
            match slot.into_inner() {
                Some(Ok((log, report))) => {
                    crate::metrics::recovery(&part.topic, part.index, &report);
                    let handle = self.attach(&part.topic, part.index, part.shard, log)?;
                    topics.entry(part.topic.clone()).or_default().push(handle);
                    reports.push(PartitionReport {
                        topic: part.topic,
                        partition: part.index,
                        report,
                    });
                }
                Some(Err(e)) => {
                    tracing::error!(error = %e, dir = %part.dir.display(), "partition does not open");
                    first_error.get_or_insert(e);
                }
                None => {
                    first_error.get_or_insert(Error::ShuttingDown);
                }
            }
        }
        *inner.topics.write() = topics;
        match first_error {
            Some(e) => Err(e),
            None => Ok(reports),
        }
    }

    /// Hands a partition log to its shard and returns a handle to it.
    fn attach(
        &self,
        topic: &str,
        index: u32,
        shard: usize,
        mut log: PartitionLog,
    ) -> Result<Partition> {
        let inner = &self.inner;
        log.set_index_cache(Arc::clone(&inner.index_cache));
        let shared = Arc::new(PartitionShared::new(
            Arc::from(topic),
            index,
            inner.next_key.fetch_add(1, Ordering::Relaxed),
            log,
        ));
        let handle = Arc::clone(&inner.shards[shard]);
        let (reply, slot) = reply::channel();
        let request = Request::Attach {
            shared: Arc::clone(&shared),
            reply,
        };
        if handle.push_control(request).is_err() {
            return Err(Error::ShuttingDown);
        }
        Pending::sent(slot).wait()?;
        Ok(Partition {
            shared,
            shard: handle,
            default_durability: inner.config.default_durability,
            read_limit: inner.config.read_limit,
            max_read_bytes: inner.config.max_read_bytes,
            gates: Arc::clone(&inner.gates),
            clock: inner.config.wall_clock.clone(),
            cleaner: inner.config.cleaner,
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        Ok(())
    }

    /// The topics, by name.
    pub fn topics(&self) -> Vec<TopicInfo> {
        self.inner
            .topics
            .read()
            .iter()
            .map(|(name, partitions)| TopicInfo {
                name: name.clone(),
                partitions: partitions.len() as u32,
            })
            .collect()
    }

    /// A handle to partition `index` of `topic`.
    pub fn partition(&self, topic: &str, index: u32) -> Result<Partition> {
        let topics = self.inner.topics.read();
        let partitions = topics
            .get(topic)
            .ok_or_else(|| Error::UnknownTopic(topic.to_string()))?;
        partitions
            .get(index as usize)
            .cloned()
            .ok_or_else(|| Error::UnknownPartition {
                topic: topic.to_string(),
                partition: index,
            })
    }

    /// Handles to every partition of `topic`, by index.
    pub fn partitions(&self, topic: &str) -> Result<Vec<Partition>> {
        self.inner
            .topics
            .read()
            .get(topic)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic(topic.to_string()))
    }

    /// The offsets of every partition of `topic`.
    pub fn offsets(&self, topic: &str) -> Result<Vec<Offsets>> {
        Ok(self
            .partitions(topic)?
            .iter()
            .map(Partition::offsets)
            .collect())
    }

    /// A new idempotent producer's id (epoch 0), never handed out before by this log, across
    /// restarts and crashes (ids are reserved durably in blocks; see docs/FORMAT.md §9).
    /// Batches carrying it are checked against each partition's producer state: a retry is
    /// answered with the original's offsets ([`rill_segment::AppendInfo::duplicate`]), a gap
    /// refused with [`Error::OutOfOrderSequence`], an older epoch with
    /// [`Error::ProducerFenced`].
    pub fn init_producer_id(&self) -> Result<ProducerId> {
        self.check_open()?;
        let ids = self.inner.producer_ids.get().ok_or(Error::ShuttingDown)?;
        ids.next(self.inner.storage.disk())
    }

    /// The highest producer id any partition knows (-1 if none).
    fn highest_producer_id(&self) -> i64 {
        let topics = self.inner.topics.read();
        topics
            .values()
            .flatten()
            .filter_map(|p| p.shared.log.lock().max_producer_id())
            .max()
            .unwrap_or(-1)
    }

    /// The I/O driver the shards run.
    pub fn driver(&self) -> DriverKind {
        self.inner.driver
    }

    /// What the log holds for its files: handles, descriptors open now (at most
    /// [`Config::max_open_files`]), evictions and reopens. All zero on a disk of the caller's
    /// ([`Log::open_on`]).
    pub fn file_stats(&self) -> HandleStats {
        match &self.inner.storage {
            Storage::Files(files) => files.handle_stats(),
            Storage::Disk(_) => HandleStats::default(),
        }
    }

    /// The shared cache of sealed segments' indexes: what it holds (at most
    /// [`Config::index_cache_bytes`]) and how it was used.
    pub fn index_cache_stats(&self) -> IndexCacheStats {
        self.inner.index_cache.stats()
    }

    /// The I/O drivers' counters, summed over the shards (as of their last round).
    pub fn driver_stats(&self) -> DriverStats {
        let mut total = DriverStats::default();
        for shard in &self.inner.shards {
            total += *shard.stats.lock();
        }
        total
    }

    /// What the shards' request queues held at most since the log opened (maxima over shards),
    /// and how many callers wait for room now.
    pub fn queue_stats(&self) -> crate::QueueStats {
        let mut total = crate::QueueStats::default();
        for shard in &self.inner.shards {
            total += shard.queue_stats();
        }
        total
    }

    /// The settings the log was opened with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Test hook: makes shard `shard` panic at its next pass (to test that a panic fails safe).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn inject_shard_panic(&self, shard: usize) {
        if let Some(handle) = self.inner.shards.get(shard) {
            handle
                .panic_next_pass
                .store(true, std::sync::atomic::Ordering::SeqCst);
            handle.doorbell.ring();
        }
    }

    /// Clean shutdown: the shards finish every request already queued (new ones get
    /// [`Error::ShuttingDown`]), then each partition syncs, writes its indexes and a clean
    /// checkpoint, so the next open needs no scan. Idempotent; returns the first error.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

impl LogInner {
    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // The cleaner asks the shards to install its work: it stops before they do.
        if let Some(mut cleaner) = self.cleaner.lock().take() {
            cleaner.stop();
        }
        let mut first_error = None;
        let mut waits = Vec::new();
        for shard in &self.shards {
            let (reply, slot) = reply::channel();
            if shard.push_control(Request::Shutdown { reply }).is_ok() {
                waits.push(Pending::sent(slot));
            }
        }
        for wait in waits {
            if let Err(e) = wait.wait() {
                first_error.get_or_insert(e);
            }
        }
        for thread in self.threads.lock().drain(..) {
            if thread.join().is_err() {
                first_error.get_or_insert(Error::Config("a shard thread panicked".into()));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for LogInner {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!(error = %e, "closing the log on drop");
        }
    }
}

/// What a log's files live on.
enum Storage {
    /// The file system, through the descriptor cache; the configured driver.
    Files(Arc<StdDisk>),
    /// A disk of the caller's; the [`DriverKind::Disk`] driver.
    Disk(Arc<dyn Disk>),
}

impl Storage {
    fn disk(&self) -> &dyn Disk {
        match self {
            Storage::Files(files) => files.as_ref(),
            Storage::Disk(disk) => disk.as_ref(),
        }
    }

    fn shared_disk(&self) -> Arc<dyn Disk> {
        match self {
            Storage::Files(files) => Arc::clone(files) as Arc<dyn Disk>,
            Storage::Disk(disk) => Arc::clone(disk),
        }
    }
}

fn start_shards(config: &Arc<Config>, storage: Storage) -> Result<LogInner> {
    let base = storage.shared_disk();
    let on_disk = matches!(storage, Storage::Disk(_));
    let mut shards = Vec::with_capacity(config.shards);
    let mut disks: Vec<Arc<dyn Disk>> = Vec::with_capacity(config.shards);
    let mut threads = Vec::with_capacity(config.shards);
    let mut driver = DriverKind::Syscall;
    let stop = |shards: &[Arc<ShardHandle>], threads: Vec<JoinHandle<()>>| {
        for shard in shards {
            let (reply, _slot) = reply::channel::<()>();
            let _ = shard.push_control(Request::Shutdown { reply });
        }
        for thread in threads {
            let _ = thread.join();
        }
    };
    for id in 0..config.shards {
        let closed = Arc::new(ClosedFiles::default());
        let disk: Arc<dyn Disk> =
            Arc::new(NotifyingDisk::new(Arc::clone(&base), Arc::clone(&closed)));
        let doorbell = match Doorbell::new() {
            Ok(d) => Arc::new(d),
            Err(e) => {
                stop(&shards, threads);
                return Err(e.into());
            }
        };
        let handle = Arc::new(ShardHandle::new(
            id,
            config.queue_depth,
            config.max_queued_bytes,
            doorbell,
        ));
        match shard::spawn(
            Arc::clone(&handle),
            Arc::clone(&disk),
            closed,
            Arc::clone(config),
            on_disk,
        ) {
            Ok((thread, kind)) => {
                driver = kind;
                threads.push(thread);
            }
            Err(e) => {
                stop(&shards, threads);
                return Err(e);
            }
        }
        shards.push(handle);
        disks.push(disk);
    }
    Ok(LogInner {
        config: Arc::clone(config),
        shards,
        disks,
        threads: Mutex::new(threads),
        topics: Arc::new(RwLock::new(BTreeMap::new())),
        cleaner: Mutex::new(None),
        stored_topics: RwLock::new(BTreeMap::new()),
        admin: Mutex::new(()),
        next_key: AtomicU64::new(1),
        closed: AtomicBool::new(false),
        driver,
        gates: Arc::new(SocketGates::new(config.queue_depth)),
        storage,
        index_cache: Arc::new(IndexCache::new(config.index_cache_bytes)),
        producer_ids: std::sync::OnceLock::new(),
    })
}

/// The partitions to open, by topic: the partition directories in `data_dir` reconciled with
/// the stored configurations (`topic_store::reconcile`: a creation a crash interrupted is
/// finished, a configuration without directories removed, a topic without one given the
/// defaults). Gaps in a topic's indexes are filled: the missing partitions are created empty.
fn plan_open(
    disk: &dyn Disk,
    config: &Config,
    stored: &BTreeMap<String, StoredTopic>,
) -> Result<(Vec<Found>, BTreeMap<String, StoredTopic>)> {
    let data_dir = &config.data_dir;
    let mut dirs: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for name in topic_dirs::subdirectories(disk, data_dir)? {
        if let Some((topic, index)) = topic::parse_dir_name(&name) {
            dirs.entry(topic.to_string()).or_default().insert(index);
        }
    }
    let names: BTreeSet<String> = dirs.keys().chain(stored.keys()).cloned().collect();
    let mut found = Vec::new();
    let mut topics = BTreeMap::new();
    for name in names {
        let highest = dirs.get(&name).and_then(|indexes| indexes.last().copied());
        let (partitions, topic_config, rewrite) =
            match topic_store::reconcile(highest, stored.get(&name)) {
                Reconciled::RemoveFile => {
                    topic_store::remove(disk, data_dir, &name)?;
                    continue;
                }
                Reconciled::Open {
                    partitions,
                    config,
                    rewrite,
                } => (partitions, config, rewrite),
            };
        let log_config = topic_config.apply(&config.log).map_err(|e| match e {
            Error::InvalidTopicConfig { key, reason } => Error::InvalidTopicConfig {
                key,
                reason: format!("topic {name:?} on this log's defaults: {reason}"),
            },
            other => other,
        })?;
        let entry = StoredTopic {
            partitions,
            config: topic_config,
        };
        if rewrite {
            topic_store::write(disk, data_dir, &name, &entry)?;
        }
        for index in 0..partitions {
            found.push(Found {
                dir: data_dir.join(topic::dir_name(&name, index)),
                shard: topic::shard_of(&name, index, config.shards),
                topic: name.clone(),
                index,
                log_config: log_config.clone(),
            });
        }
        topics.insert(name, entry);
    }
    Ok((found, topics))
}

/// Probes, for the io_uring driver, whether buffered ring writes complete inline here.
fn probe_ring_writes(driver: DriverKind, data_dir: &Path) -> Option<bool> {
    if driver != DriverKind::Uring {
        return None;
    }
    match rill_uring::buffered_writes_complete_inline(data_dir) {
        Ok(inline) => {
            tracing::info!(
                inline,
                dir = %data_dir.display(),
                "buffered io_uring writes {} here; appends are written on the caller's thread",
                if inline { "complete inline" } else { "go to io-wq workers" }
            );
            Some(inline)
        }
        Err(e) => {
            tracing::debug!(error = %e, "probing buffered io_uring writes");
            None
        }
    }
}
