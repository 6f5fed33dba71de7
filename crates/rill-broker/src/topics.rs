//! The broker's view of the log's topics: partition handles, cached. Long-polling fetches wait
//! on the engine's `Partition::wait_for_data`.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
/// A partition of the broker's topics.
#[derive(Debug)]
pub struct PartitionHandle {
    pub partition: rill::Partition,
}

/// A topic's partitions, by index.
pub type TopicPartitions = Arc<[Arc<PartitionHandle>]>;

/// Topics by name. Holds one entry per topic of the log (bounded by what exists on disk); a
/// deletion through the broker removes its entry (handles still held elsewhere answer
/// UNKNOWN_TOPIC_OR_PARTITION from then on).
#[derive(Debug)]
pub struct Topics {
    log: Arc<rill::Log>,
    cache: RwLock<HashMap<String, TopicPartitions>>,
    /// Held while a topic is created (see [`Topics::create`]).
    creating: tokio::sync::Mutex<()>,
}

impl Topics {
    pub fn new(log: Arc<rill::Log>) -> Self {
        Self {
            log,
            cache: RwLock::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
        }
    }

    /// The log.
    pub fn log(&self) -> &Arc<rill::Log> {
        &self.log
    }

    /// Partitions of the topics clients created (the broker's own `__consumer_offsets` is not
    /// counted against `max_partitions`).
    fn client_partitions(&self) -> u64 {
        self.log
            .topics()
            .iter()
            .filter(|t| t.name != crate::offsets::OFFSETS_TOPIC)
            .map(|t| u64::from(t.partitions))
            .sum()
    }

    /// A topic's partitions, or `None` if it does not exist.
    pub fn get(&self, name: &str) -> Option<TopicPartitions> {
        if let Some(found) = self.cache.read().get(name) {
            return Some(Arc::clone(found));
        }
        let partitions = self.log.partitions(name).ok()?;
        let handles: TopicPartitions = partitions
            .into_iter()
            .map(|partition| Arc::new(PartitionHandle { partition }))
            .collect();
        let mut cache = self.cache.write();
        Some(Arc::clone(cache.entry(name.to_owned()).or_insert(handles)))
    }

    /// One partition, or `None` if the topic or the index does not exist.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<PartitionHandle>> {
        let partitions = self.get(topic)?;
        let index = usize::try_from(index).ok()?;
        partitions.get(index).cloned()
    }

    /// Every partition handle created so far.
    pub fn cached(&self) -> Vec<Arc<PartitionHandle>> {
        self.cache
            .read()
            .values()
            .flat_map(|partitions| partitions.iter().cloned())
            .collect()
    }

    /// Deletes a topic (file work, so off the async threads; one at a time with creations).
    pub async fn delete(&self, name: &str) -> Result<(), rill::Error> {
        let _one_at_a_time = self.creating.lock().await;
        let log = Arc::clone(&self.log);
        let owned = name.to_owned();
        let deleted = tokio::task::spawn_blocking(move || log.delete_topic(&owned))
            .await
            .unwrap_or(Err(rill::Error::ShuttingDown));
        self.cache.write().remove(name);
        deleted
    }

    /// Grows a topic to `partitions` (file work, so off the async threads; one at a time with
    /// creations), unless the broker would then hold more than `max_partitions`.
    pub async fn grow(
        &self,
        name: &str,
        partitions: u32,
        max_partitions: u32,
    ) -> Result<(), CreateError> {
        let _one_at_a_time = self.creating.lock().await;
        let held = self.client_partitions();
        let current = self.log.partitions(name).map_or(0, |p| p.len() as u64);
        let added = u64::from(partitions).saturating_sub(current);
        if held + added > u64::from(max_partitions) {
            return Err(CreateError::Limit {
                held,
                max: max_partitions,
            });
        }
        let log = Arc::clone(&self.log);
        let owned = name.to_owned();
        let grown = tokio::task::spawn_blocking(move || log.create_partitions(&owned, partitions))
            .await
            .unwrap_or(Err(rill::Error::ShuttingDown))
            .map_err(CreateError::Engine);
        // The cached handles are the old count's.
        self.cache.write().remove(name);
        grown
    }

    /// Creates a topic (file work, so off the async threads), unless the broker would then
    /// hold more than `max_partitions`. Creations run one at a time (an async lock: no thread
    /// waits), so two cannot both pass the check.
    pub async fn create(
        &self,
        name: &str,
        partitions: u32,
        max_partitions: u32,
    ) -> Result<(), CreateError> {
        self.create_with(
            name,
            partitions,
            max_partitions,
            rill::TopicConfig::default(),
        )
        .await
    }

    /// [`Topics::create`] with the topic's own settings (checked by the engine).
    pub async fn create_with(
        &self,
        name: &str,
        partitions: u32,
        max_partitions: u32,
        config: rill::TopicConfig,
    ) -> Result<(), CreateError> {
        let _one_at_a_time = self.creating.lock().await;
        let held = self.client_partitions();
        if held + u64::from(partitions) > u64::from(max_partitions) {
            return Err(CreateError::Limit {
                held,
                max: max_partitions,
            });
        }
        let log = Arc::clone(&self.log);
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || log.create_topic_with(&name, partitions, &config))
            .await
            .unwrap_or(Err(rill::Error::ShuttingDown))
            .map_err(CreateError::Engine)
    }
}

/// Why a topic was not created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The broker would hold more than its `max_partitions`.
    #[error("the broker holds {held} partitions, at most {max}")]
    Limit { held: u64, max: u32 },
    #[error(transparent)]
    Engine(rill::Error),
}
