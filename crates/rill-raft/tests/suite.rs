#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

//! openraft's own storage test suite (`openraft::testing::Suite`) on rill-raft's log store and
//! state machine, once on each I/O driver. Small segments, so the suite's logs span several
//! segments and its truncations and purges cross segment boundaries.

use openraft::testing::{StoreBuilder, Suite};
use rill::{Config, DriverChoice, Log, LogConfig};
use rill_raft::{LogStore, StateMachine, StorageError, TypeConfig};

/// What a built store needs kept alive: its log (closed when the test is done) and directory.
struct Guard {
    log: Log,
    _dir: tempfile::TempDir,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.log.close().unwrap();
    }
}

struct Builder {
    driver: DriverChoice,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, Guard> for Builder {
    async fn build(&self) -> Result<(Guard, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path().join("data"));
        config.driver = self.driver;
        config.shards = 1;
        config.log = LogConfig {
            segment_bytes: 1024,
            max_batch_bytes: 1024,
            ..LogConfig::default()
        };
        let (log, _) = Log::open(config).unwrap();
        assert_eq!(
            log.driver(),
            match self.driver {
                DriverChoice::Uring => rill::DriverKind::Uring,
                _ => rill::DriverKind::Syscall,
            },
            "the driver asked for runs"
        );
        log.create_topic_with("raft", 1, &rill_raft::topic_config())
            .unwrap();
        let partition = log.partition("raft", 0).unwrap();
        let state = dir.path().join("raft");
        let store = LogStore::open(partition, &state).await.unwrap();
        let state_machine = StateMachine::open(&state).unwrap();
        Ok((Guard { log, _dir: dir }, store, state_machine))
    }
}

#[test]
fn openraft_storage_suite_on_io_uring() {
    Suite::test_all(Builder {
        driver: DriverChoice::Uring,
    })
    .unwrap();
}

#[test]
fn openraft_storage_suite_on_the_syscall_driver() {
    Suite::test_all(Builder {
        driver: DriverChoice::Syscall,
    })
    .unwrap();
}
