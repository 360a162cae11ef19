//! The tail collector and the real journal, with a checkpoint write failed on purpose at the two moments a crash can fall: before a batch goes to the journal (its intent) and after it is durable (its commit). Either way, a restarted collector leaves each line in the journal exactly once.
//!
//! The stream's last id is the oracle: it counts up by one per record with no gaps, and only
//! this collector writes the stream, so it equals the number of lines written exactly when no
//! line was lost or stored twice. Real clock: the collector's file I/O runs on the blocking
//! pool, which a paused clock would not wait for.

use fushi_actors::audit::AuditLog;
use fushi_actors::board::StatusBoard;
use fushi_actors::collectors::tail::{TailActor, TailArgs};
use fushi_actors::faults::{self, Op};
use fushi_actors::sink::RecordSink;
use fushi_actors::storage::{StorageActor, StorageArgs, StorageHandle};
use ractor::Actor;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

fn append(path: &Path, ks: std::ops::Range<u64>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for k in ks {
        writeln!(f, "{{\"k\":{k}}}").unwrap();
    }
}

struct Rig {
    dir: tempfile::TempDir,
    handle: StorageHandle,
    sink: RecordSink,
}

impl Rig {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let board = StatusBoard::new("node", "normal", "");
        let handle = StorageHandle::new(dir.path().join("journal"));
        let args = StorageArgs::unbounded(handle.clone(), board.clone(), AuditLog::memory("node"));
        Actor::spawn(None, StorageActor, args).await.unwrap();
        let sink = RecordSink::new(board, handle.clone());
        Self { dir, handle, sink }
    }

    fn log(&self) -> std::path::PathBuf {
        self.dir.path().join("app.log")
    }

    fn checkpoints(&self) -> std::path::PathBuf {
        self.dir.path().join("tail")
    }

    async fn start(
        &self,
    ) -> (
        ractor::ActorRef<fushi_actors::collectors::tail::TailMsg>,
        ractor::concurrency::JoinHandle<()>,
    ) {
        Actor::spawn(
            None,
            TailActor,
            TailArgs {
                path: "collectors/app".into(),
                stream: "app".into(),
                pattern: self.log().display().to_string(),
                checkpoint: self.checkpoints().join("app.json"),
                glob_interval: Duration::from_millis(50),
                read_from_end: false,
                partial_after: Duration::from_secs(5),
                rotate_wait: Duration::from_secs(1),
                max_record_bytes: 1 << 20,
                sink: self.sink.clone(),
            },
        )
        .await
        .unwrap()
    }

    /// Waits until the checkpoint says the log is read to its end with no batch in flight:
    /// every line the collector will ever take from it is durable by then (a batch is marked
    /// done only once its append returned). Woken by each journal commit.
    async fn all_read(&self) {
        let mut info = self.handle.info();
        let size = std::fs::metadata(self.log()).unwrap().len();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let done = std::fs::read(self.checkpoints().join("app.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|cp| {
                    cp["pending"].is_null() && cp["files"][0]["offset"].as_u64() == Some(size)
                });
            if done {
                return;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(!left.is_zero(), "the log was not read to its end in time");
            // A commit moves the journal; the checkpoint follows in the collector's next step.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), info.changed()).await;
        }
    }
}

#[tokio::test]
async fn a_failed_checkpoint_after_a_durable_batch_or_before_one_repeats_and_loses_nothing() {
    // The first checkpoint write names the first batch; the second commits it once durable.
    for (skip, moment) in [
        (1, "after the batch is durable"),
        (0, "before the batch is sent"),
    ] {
        let rig = Rig::new().await;
        append(&rig.log(), 0..100);
        std::fs::create_dir_all(rig.checkpoints()).unwrap();
        faults::arm(Op::Rename, &rig.checkpoints(), skip, 1, nix::libc::EIO);
        let (_tail, join) = rig.start().await;
        // The failed write fails the collector, as a crash would stop it.
        tokio::time::timeout(Duration::from_secs(30), join)
            .await
            .expect("the collector fails on the checkpoint it cannot write")
            .unwrap();
        faults::disarm(&rig.checkpoints());
        let (tail, _join) = rig.start().await;
        append(&rig.log(), 100..150);
        rig.all_read().await;
        let seq = rig.handle.last_id("app").await.unwrap().seq;
        assert_eq!(seq, 150, "a checkpoint failed {moment}");
        tail.stop(None);
    }
}
