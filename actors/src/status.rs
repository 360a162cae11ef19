//! The status actor: persists the status board to `<data_dir>/status.json`, atomically, on every change.
//!
//! Writes are coalesced (bursts within `coalesce` become one write) and each write is
//! temp file → write → fsync → rename → fsync of the directory, so a `kill -9` at any instant
//! leaves either the old or the new complete document. `pre_start` reads the file back and merges
//! its counters into the board once per process; that is also where an unclean previous exit is
//! detected and audited as `daemon.recovered`.

use crate::events;
use crate::fs::write_atomic;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::audit::AuditLog;
use crate::board::{StatusBoard, StatusDoc};
use crate::AbortOnDrop;

#[derive(Clone)]
pub struct StatusActor;

/// How stale a counter-only change (records, journal bytes, lag) may be on disk.
const QUIET_FLUSH: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct StatusArgs {
    pub board: StatusBoard,
    pub audit: AuditLog,
    pub path: PathBuf,
    /// How long a change may wait for others to join its write (SPEC: at most 100 ms).
    pub coalesce: Duration,
    /// Where a recovery from an unclean end is told to a person.
    pub alerts: crate::alert::AlertOutbox,
}

pub enum StatusMsg {
    /// The board changed: write it if it is newer than what is on disk.
    Flush,
    /// Write now and answer when it is durable.
    FlushNow(RpcReplyPort<()>),
}

pub struct StatusState {
    args: StatusArgs,
    written: Option<u64>,
    _watcher: AbortOnDrop,
}

/// Reads a status.json; a missing file is `None`, an unreadable one is an error the caller logs.
pub fn load(path: &Path) -> io::Result<Option<StatusDoc>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl StatusActor {
    async fn write(state: &mut StatusState, clean: bool) -> Result<(), ActorProcessingErr> {
        let (mut doc, version) = state.args.board.snapshot();
        if !clean && state.written == Some(version) {
            return Ok(());
        }
        doc.clean_shutdown = clean;
        let bytes = serde_json::to_vec_pretty(&doc)?;
        let path = state.args.path.clone();
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
            .await
            .map_err(|e| format!("status writer task failed: {e}"))?
            .map_err(|e| format!("writing {}: {e}", state.args.path.display()))?;
        state.written = Some(version);
        Ok(())
    }
}

impl Actor for StatusActor {
    type Msg = StatusMsg;
    type State = StatusState;
    type Arguments = StatusArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<StatusMsg>,
        args: StatusArgs,
    ) -> Result<StatusState, ActorProcessingErr> {
        // Off the runtime's only thread: a read may wait on a busy disk.
        let path = args.path.clone();
        // Its mtime is the previous daemon's last sign of life: where `fushi report` starts the
        // time a crash of the daemon took to recover from.
        let (loaded, last_seen) = tokio::task::spawn_blocking(move || {
            let seen = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            (load(&path), seen)
        })
        .await
        .unwrap_or_else(|e| (Err(io::Error::other(e)), None));
        let old = match loaded {
            Ok(old) => old,
            Err(e) => {
                // Only a foreign hand can damage it (writes are atomic); start afresh, loudly.
                tracing::warn!(actor = "status", event = events::STATUS_UNREADABLE, path = %args.path.display(),
                    error = %e, "status.json is unreadable; counters restart from zero");
                None
            }
        };
        if let Some(restored) = args.board.restore_once(old) {
            if restored.unclean {
                tracing::warn!(
                    actor = "status",
                    event = events::DAEMON_RECOVERED,
                    daemon_recovered = restored.daemon_recovered,
                    "previous daemon ended without a clean shutdown; recovered"
                );
                args.audit.emit(
                    events::DAEMON_RECOVERED,
                    None,
                    json!({"daemon_recovered": restored.daemon_recovered,
                           "last_seen": last_seen.map(crate::clock::rfc3339)}),
                );
                args.alerts.push(crate::alert::Alert::DaemonRecovered {
                    why: format!(
                        "the previous daemon ended without a clean shutdown (killed, crashed or power lost); unclean ends recovered from so far: {}",
                        restored.daemon_recovered
                    ),
                });
                // Durable before status.json counts it, so the audit trail never has fewer.
                let audit = args.audit.clone();
                tokio::task::spawn_blocking(move || audit.flush()).await?;
            }
        }
        let board = args.board.clone();
        let coalesce = args.coalesce;
        let watcher = tokio::spawn(async move {
            loop {
                // Transitions wake us at once; counters that move on every group commit are
                // written at most once per QUIET_FLUSH (Flush skips an unchanged board).
                tokio::select! {
                    _ = board.changed() => tokio::time::sleep(coalesce).await,
                    _ = tokio::time::sleep(QUIET_FLUSH) => {}
                }
                if myself.cast(StatusMsg::Flush).is_err() {
                    break;
                }
            }
        });
        let mut state = StatusState {
            args,
            written: None,
            _watcher: AbortOnDrop(watcher),
        };
        // On disk at once: from now on a crash of this process is detectable as unclean.
        Self::write(&mut state, false).await?;
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<StatusMsg>,
        msg: StatusMsg,
        state: &mut StatusState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            StatusMsg::Flush => Self::write(state, false).await,
            StatusMsg::FlushNow(reply) => {
                Self::write(state, false).await?;
                let _ = reply.send(());
                Ok(())
            }
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<StatusMsg>,
        state: &mut StatusState,
    ) -> Result<(), ActorProcessingErr> {
        // The status actor is the first child of the root, so it stops last: when the daemon is
        // shutting down, this write is the final one and carries the clean-shutdown mark.
        let clean = state.args.board.shutting_down();
        Self::write(state, clean).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("status.json");
        write_atomic(&p, b"{\"a\":1}").unwrap();
        write_atomic(&p, b"{\"a\":2}").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"{\"a\":2}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
    }

    #[test]
    fn unreadable_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("status.json");
        std::fs::write(&p, b"{not json").unwrap();
        assert_eq!(load(&p).unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert!(load(&dir.path().join("missing.json")).unwrap().is_none());
    }
}
