//! Topic administration on a [`Log`]: creation (with a configuration), deletion, and reading
//! and changing a topic's configuration. Serialised by the log's admin lock; each step is
//! durable before the call returns, in the order `topic_store` relies on after a crash.

use super::Log;
use crate::error::{Error, Result};
use crate::pending::Pending;
use crate::reply;
use crate::request::Request;
use crate::shared::OrderGuard;
use crate::topic;
use crate::topic_config::TopicConfig;
use crate::topic_dirs::{self, sync_dir};
use crate::topic_store::{self, StoredTopic};
use rill_segment::recovery::OpenOptions;
use rill_segment::{LogConfig, PartitionLog};
use std::sync::Arc;

impl Log {
    /// Creates a topic with `partitions` empty partitions and the log's default settings.
    /// Durable when it returns (the directories are created and the data directory fsynced).
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<()> {
        self.create_topic_with(name, partitions, &TopicConfig::default())
    }

    /// Creates a topic with `partitions` empty partitions and the settings of `config` where
    /// they differ from the log's defaults ([`crate::Config::log`]). The configuration is
    /// checked first ([`Error::InvalidTopicConfig`] names the setting; nothing is created) and
    /// stored with the topic. Durable when it returns; a crash before that leaves either no
    /// topic or the whole topic with its configuration.
    pub fn create_topic_with(
        &self,
        name: &str,
        partitions: u32,
        config: &TopicConfig,
    ) -> Result<()> {
        topic::validate_name(name)?;
        topic::validate_partitions(name, partitions)?;
        let log_config = config.apply(&self.inner.config.log)?;
        let _admin = self.inner.admin.lock();
        self.check_open()?;
        if self.inner.topics.read().contains_key(name) {
            return Err(Error::TopicExists(name.to_string()));
        }
        let data_dir = &self.inner.config.data_dir;
        let disk = self.inner.storage.disk();
        topic_dirs::clear_failed_deletion(disk, data_dir, name)?;
        for index in 0..partitions {
            let dir = data_dir.join(topic::dir_name(name, index));
            if disk.is_dir(&dir).map_err(|e| Error::io("stat", &dir, e))? {
                return Err(Error::TopicExists(name.to_string()));
            }
        }
        // The configuration is durable before any partition directory exists: a directory is
        // never found without its topic's settings.
        let stored = StoredTopic {
            partitions,
            config: config.clone(),
        };
        topic_store::write(disk, data_dir, name, &stored)?;
        let mut logs = Vec::with_capacity(partitions as usize);
        for index in 0..partitions {
            let (shard, log) = self.open_new_partition(name, index, &log_config)?;
            logs.push((index, shard, log));
        }
        sync_dir(disk, data_dir)?;
        let mut handles = Vec::with_capacity(logs.len());
        for (index, shard, log) in logs {
            handles.push(self.attach(name, index, shard, log)?);
        }
        self.inner.topics.write().insert(name.to_string(), handles);
        self.inner
            .stored_topics
            .write()
            .insert(name.to_string(), stored);
        Ok(())
    }

    /// Deletes a topic: its partitions finish the requests already queued, close, and their
    /// directories are removed, then its configuration. Handles to them then answer
    /// [`Error::UnknownPartition`]. A crash midway is finished by the next open.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let _admin = self.inner.admin.lock();
        self.check_open()?;
        let Some(partitions) = self.inner.topics.write().remove(name) else {
            return Err(Error::UnknownTopic(name.to_string()));
        };
        self.inner.stored_topics.write().remove(name);
        for partition in &partitions {
            let (reply, slot) = reply::channel();
            let pushed = {
                // Under the log's lock, as every request appends stay behind.
                let _log = partition.shared.log.lock();
                let request = Request::Detach {
                    part: Arc::clone(&partition.shared),
                    reply,
                    order: OrderGuard::new(&partition.shared),
                };
                partition.shard.push_control(request)
            };
            if pushed.is_err() {
                return Err(Error::ShuttingDown);
            }
            Pending::sent(slot).wait()?;
        }
        let data_dir = &self.inner.config.data_dir;
        let disk = self.inner.storage.disk();
        let mut doomed = Vec::with_capacity(partitions.len());
        for partition in &partitions {
            let dir_name = topic::dir_name(name, partition.index());
            doomed.push(topic_dirs::set_aside(disk, data_dir, &dir_name)?);
        }
        // Once the renames are durable the deletion is decided: a crash from here on is
        // finished by the next open (a configuration without directories is removed there).
        sync_dir(disk, data_dir)?;
        for dir in doomed {
            topic_dirs::remove_tree(disk, &dir)?;
        }
        sync_dir(disk, data_dir)?;
        topic_store::remove(disk, data_dir, name)
    }

    /// Grows `topic` to `partitions` partitions (Kafka's CreatePartitions: partitions are
    /// only ever added). The new count is stored durably before the new directories exist, so
    /// a crash midway is finished by the next open (a topic short of its count gets its
    /// missing partitions). Fails with [`Error::InvalidTopic`] if `partitions` is not more than
    /// the topic has, or above [`crate::MAX_PARTITIONS`].
    pub fn create_partitions(&self, topic: &str, partitions: u32) -> Result<()> {
        topic::validate_partitions(topic, partitions)?;
        let _admin = self.inner.admin.lock();
        self.check_open()?;
        let existing = self.partitions(topic)?.len() as u32;
        if partitions <= existing {
            return Err(Error::InvalidTopic {
                name: topic.to_string(),
                reason: format!("it has {existing} partitions; a topic only grows"),
            });
        }
        let config = self.topic_config(topic)?;
        let log_config = config.apply(&self.inner.config.log)?;
        let stored = StoredTopic { partitions, config };
        let data_dir = &self.inner.config.data_dir;
        let disk = self.inner.storage.disk();
        topic_store::write(disk, data_dir, topic, &stored)?;
        self.inner
            .stored_topics
            .write()
            .insert(topic.to_string(), stored);
        let mut handles = Vec::with_capacity((partitions - existing) as usize);
        for index in existing..partitions {
            let (shard, log) = self.open_new_partition(topic, index, &log_config)?;
            handles.push(self.attach(topic, index, shard, log)?);
        }
        sync_dir(disk, data_dir)?;
        if let Some(existing) = self.inner.topics.write().get_mut(topic) {
            existing.extend(handles);
        }
        Ok(())
    }

    /// The settings in which `topic` differs from the log's defaults.
    pub fn topic_config(&self, topic: &str) -> Result<TopicConfig> {
        self.inner
            .stored_topics
            .read()
            .get(topic)
            .map(|stored| stored.config.clone())
            .ok_or_else(|| Error::UnknownTopic(topic.to_string()))
    }

    /// The settings `topic`'s partitions run with: the log's defaults with the topic's
    /// configuration applied.
    pub fn topic_log_config(&self, topic: &str) -> Result<LogConfig> {
        self.topic_config(topic)?.apply(&self.inner.config.log)
    }

    /// Replaces `topic`'s configuration with `config` (settings it leaves `None` return to the
    /// log's defaults; read the current one with [`Log::topic_config`] to change one setting).
    /// Checked first ([`Error::InvalidTopicConfig`]: nothing changes), stored durably, then in
    /// effect on every partition: appends from the next one on (`max_batch_bytes`, timestamp
    /// checks and type), rolls from the next append (`segment_bytes`, `segment_ms`), retention
    /// from the next maintenance pass. On an I/O error the stored file is the old or the new
    /// one, and the partitions keep the old settings.
    pub fn alter_topic_config(&self, topic: &str, config: &TopicConfig) -> Result<()> {
        let log_config = config.apply(&self.inner.config.log)?;
        let _admin = self.inner.admin.lock();
        self.check_open()?;
        let partitions = self.partitions(topic)?;
        let stored = StoredTopic {
            partitions: partitions.len() as u32,
            config: config.clone(),
        };
        let disk = self.inner.storage.disk();
        topic_store::write(disk, &self.inner.config.data_dir, topic, &stored)?;
        self.inner
            .stored_topics
            .write()
            .insert(topic.to_string(), stored);
        for partition in &partitions {
            partition.shared.set_config(log_config.clone())?;
        }
        Ok(())
    }

    /// Creates (durably) and opens partition `index` of `topic`, on its shard's disk: returns
    /// the shard and the log, to attach.
    fn open_new_partition(
        &self,
        topic: &str,
        index: u32,
        log_config: &LogConfig,
    ) -> Result<(usize, PartitionLog)> {
        let dir = self
            .inner
            .config
            .data_dir
            .join(topic::dir_name(topic, index));
        let shard = topic::shard_of(topic, index, self.inner.shards.len());
        let (log, _report) = PartitionLog::open(
            Arc::clone(&self.inner.disks[shard]),
            &dir,
            log_config.clone(),
            OpenOptions {
                repair: false,
                now_ms: self.inner.config.wall_clock.now_ms(),
            },
        )?;
        Ok((shard, log))
    }
}
