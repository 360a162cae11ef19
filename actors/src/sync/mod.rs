//! The sync actor: forwards the journal to the primary store in order, probes the primary, and keeps ingest going while it is down.
//!
//! Every primary operation runs on a worker thread and is awaited with `io_timeout`: a NAS that
//! hangs (hard-mounted NFS, a frozen FUSE daemon) blocks that thread in the kernel, never the
//! runtime, the tree or ingest. A worker that times out is abandoned and replaced; at most
//! [`MAX_STUCK`] may be stuck at once, after which the primary stays down until one comes back.
//!
//! Forwarding is idempotent: at start (and after each outage) this node's last id per stream is
//! read back from the primary (other nodes' lines interleave with ours on a shared store and are
//! none of ours) and records at or below it are skipped, so a crash between the primary's fsync
//! and the journal's release duplicates nothing. "At or below" is checked, not assumed: such a
//! record must be on the primary as it is ([`Primary::not_held`]); one whose id the primary holds
//! with other data (a journal restored from an old copy, a second writer) moves to new ids with
//! the rest of its stream ([`StorageHandle::rehome`]) and is forwarded under those. Segments are
//! released only once every record in them is on the primary. Failed attempts back off
//! exponentially with jitter.
//!
//! A backlog drains as a pipeline, so that the journal's reads, the primary's writes and its
//! fsyncs overlap: the next batch is read from the journal while one is written to the primary
//! (the `Main` lane of [`PrimaryIo`]), and the batches written meanwhile are fsynced together on
//! the `Sync` lane (group commit, as the journal does). A batch counts — ids, cursor, release —
//! only once its group is durable, and in order; what is written but not yet synced is bounded
//! by a size that adapts so that one fsync stays well inside `io_timeout`.
//!
//! This file is the actor: when a tick forwards, what a probe and a failure do, the messages.
//! The steps of forwarding are in `pipeline.rs`, a drain's bookkeeping in `drain.rs`, the
//! per-batch continuity check in `plan.rs`, the lanes in `io.rs`, and `sync --plan`'s survey of
//! the backlog in `backlog.rs`.

use crate::events;
use drain::Drain;
use pipeline::{Batch, Prefetch, Syncing, BATCH_BYTES_START};
mod backlog;
mod drain;
mod io;
mod pipeline;
mod plan;

pub use backlog::{survey, Backlog, StreamBacklog};
pub use io::{IoFailure, Lane, PrimaryIo, MAX_STUCK};
pub use plan::{plan, Gap, Plan};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::audit::AuditLog;
use crate::board::{PrimaryState, StatusBoard, SyncRun};
use crate::clock;
use crate::journal::{Frames, Position};
use crate::primary::{Primary, Written};
use crate::storage::StorageHandle;
use crate::{tick_every, AbortOnDrop, Due};

#[derive(Clone)]
pub struct SyncActor;

#[derive(Clone)]
pub struct SyncArgs {
    pub primary: PathBuf,
    /// The primary lies inside the data dir (the default): created on demand. Anywhere else it
    /// must carry the primary marker, so an unmounted NAS is never mistaken for the store.
    pub primary_is_local: bool,
    /// The node this forwards for (`[node] id`): on a primary several nodes share, its ids are
    /// its own lines' ([`Primary::for_node`]).
    pub node: String,
    pub storage: StorageHandle,
    pub interval: Duration,
    pub probe_interval: Duration,
    pub io_timeout: Duration,
    /// The most records one batch may hold (`[sync] batch`); its bytes are bounded too.
    pub batch: usize,
    /// Rotate the active segment once this much is forwarded, so that it can be released.
    pub rotate_after: u64,
    pub board: StatusBoard,
    /// Where a primary going down (and coming back) is told to a person.
    pub alerts: crate::alert::AlertOutbox,
    pub audit: AuditLog,
    pub io: PrimaryIo,
    /// Set by `fushi inject primary-down`; outlives restarts of this actor, like an outage would.
    pub forced_down: Arc<std::sync::atomic::AtomicBool>,
}

pub enum SyncMsg {
    Tick(Due),
    Probe(Due),
    /// `fushi sync --now`: retry at once, ignoring the backoff.
    Now(RpcReplyPort<()>),
    /// The journal grew or shrank: refresh the lag shown in status (no I/O).
    JournalChanged,
    /// `fushi inject primary-down` (true) / `primary-up` (false): act out an outage.
    Force(bool, RpcReplyPort<()>),
    /// `fushi sync --plan`: what the next sync would send, per stream.
    Backlog(RpcReplyPort<Result<Backlog, String>>),
}

pub struct SyncState {
    args: SyncArgs,
    primary: Arc<Primary>,
    up: Option<bool>,
    last_ids: Option<BTreeMap<String, (u64, u64)>>,
    /// The last ids as they were when the primary went down, until they are read again: what
    /// `sync --plan` shows meanwhile.
    known_ids: BTreeMap<String, (u64, u64)>,
    cursor: Position,
    /// Records passed (forwarded or already there) per segment still in the journal.
    passed: BTreeMap<u64, u64>,
    retry_delay: Duration,
    /// The next batch, being read while the last one is written.
    prefetch: Option<Prefetch>,
    /// Batches written to the primary, not yet durable nor being made so, oldest first, with
    /// what they wrote; only ever held during a tick.
    unsynced: Vec<(Batch, Written)>,
    /// The fsync running over earlier batches; only ever set during a tick.
    syncing: Option<Syncing>,
    /// Each stream's newest record not yet in `latest/`, and when `latest/` was last replaced.
    latest: BTreeMap<String, Vec<u8>>,
    latest_at: Instant,
    /// A batch's buffers, back from the primary, for the next read.
    spare: Option<Frames>,
    /// The release of forwarded segments in progress.
    releasing: Option<AbortOnDrop>,
    /// How many bytes of journal the next batch reads at most (see [`SyncState::adapt_batch`]).
    batch_bytes: usize,
    next_try: Instant,
    drain: Option<Drain>,
    _ticker: AbortOnDrop,
    _prober: AbortOnDrop,
    _watcher: AbortOnDrop,
}

const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(60);
impl SyncState {
    fn set_up(&mut self, up: bool, reason: &str) {
        let was = self.up;
        self.up = Some(up);
        if was == Some(up) {
            return;
        }
        let (from, to) = (PrimaryState::probed(was), PrimaryState::probed(Some(up)));
        let (from, to) = (from.as_str(), to.as_str());
        if was.is_some() || !up {
            let level_down = !up;
            if level_down {
                tracing::error!(
                    actor = "sync",
                    event = events::COLLECTOR_STORAGE_SWITCH,
                    from,
                    to,
                    reason,
                    "primary is down; records stay in the local journal until it is back"
                );
            } else {
                tracing::info!(
                    actor = "sync",
                    event = events::COLLECTOR_STORAGE_SWITCH,
                    from,
                    to,
                    reason,
                    "primary is back"
                );
            }
            let primary = self.args.primary.display().to_string();
            self.args.alerts.push(if up {
                crate::alert::Alert::StorageBack { primary }
            } else {
                crate::alert::Alert::StorageDown {
                    primary,
                    why: reason.to_string(),
                }
            });
            self.args.audit.emit(
                events::COLLECTOR_STORAGE_SWITCH,
                Some("sync"),
                json!({"from": from, "to": to, "reason": reason, "primary": self.args.primary.display().to_string()}),
            );
        }
        if !up {
            // What is on the primary must be read again before forwarding resumes.
            if let Some(ids) = self.last_ids.take() {
                self.known_ids = ids;
            }
        }
        self.args
            .board
            .update_storage(|s, _| s.primary = PrimaryState::probed(Some(up)));
    }

    /// Records of the journal that are on the primary already.
    fn forwarded(&self, info: &crate::storage::JournalInfo) -> u64 {
        self.passed
            .range(info.start.segment..)
            .map(|(_, n)| n)
            .sum()
    }

    fn lag(&self, info: &crate::storage::JournalInfo) -> u64 {
        info.records.saturating_sub(self.forwarded(info))
    }

    fn publish_lag(&self) {
        let info = *self.args.storage.info().borrow();
        let forwarded = self.forwarded(&info);
        self.args.board.update_storage(|s, sync| {
            s.forwarded = forwarded;
            s.set_lag(info.records.saturating_sub(forwarded), sync);
        });
    }

    /// A tick that ended without a failure: the last run is no longer the failed one, also when
    /// it had nothing new to forward (its records were on the primary already, or it only wrote
    /// `latest/`), which a forwarded batch would otherwise be the only one to say.
    fn succeeded(&self) {
        self.args.board.update_storage(|_, sync| {
            sync.conflict = None;
            if sync.last.as_ref().is_some_and(|l| !l.ok) {
                sync.last = Some(SyncRun {
                    at: clock::now_rfc3339(),
                    items: 0,
                    bytes: 0,
                    ok: true,
                });
            }
        });
    }

    fn failed(&mut self, error: &IoFailure) {
        if matches!(error, IoFailure::Timeout(_)) {
            // Perhaps not hung but slow for the size: start again small.
            self.batch_bytes = self.batch_bytes.min(BATCH_BYTES_START);
        }
        let jitter = rand::random_range(0..=self.retry_delay.as_millis() as u64 / 4);
        let delay = self.retry_delay + Duration::from_millis(jitter);
        self.next_try = Instant::now() + delay;
        self.retry_delay = (self.retry_delay * 2).min(RETRY_MAX);
        tracing::warn!(actor = "sync", event = events::COLLECTOR_SYNC_FAILED, error = %error, delay = ?delay, "forwarding failed; retrying");
        self.args.audit.emit(
            events::COLLECTOR_SYNC_FAILED,
            Some("sync"),
            json!({"error": error.to_string(), "retry_in_ms": delay.as_millis() as u64}),
        );
        self.args.board.update_storage(|_, sync| {
            sync.last = Some(SyncRun {
                at: clock::now_rfc3339(),
                items: 0,
                bytes: 0,
                ok: false,
            })
        });
        if matches!(error, IoFailure::Timeout(_) | IoFailure::TooManyStuck)
            || matches!(error, IoFailure::Failed(_))
        {
            self.set_up(false, &error.to_string());
        }
    }

    /// Once everything is forwarded, rotate a large active segment so it can be released.
    async fn maybe_clean(&mut self, info: &crate::storage::JournalInfo) {
        // A held-back journal (a full disk) gets its room back only from released segments.
        let blocked = info.blocked && info.end.offset > 0;
        if info.end.offset >= self.args.rotate_after || blocked {
            if let Err(e) = self.args.storage.rotate().await {
                tracing::warn!(actor = "sync", event = events::JOURNAL_ROTATE_FAILED, error = %e, "cannot rotate the journal");
            }
        }
    }

    /// Answers `reply` with the backlog, surveyed on a blocking thread: a long journal takes a
    /// while to read, and forwarding goes on meanwhile.
    fn survey(&self, reply: RpcReplyPort<Result<Backlog, String>>) {
        let info = *self.args.storage.info().borrow();
        let dir = self.args.storage.journal_dir().clone();
        let superseded = self.args.storage.superseded();
        let (from, end) = (self.cursor.max(info.start), info.end);
        let known = self.last_ids.is_some();
        let ids = self
            .last_ids
            .clone()
            .unwrap_or_else(|| self.known_ids.clone());
        let primary = PrimaryState::probed(self.up);
        let next_attempt_ms = self
            .next_try
            .saturating_duration_since(Instant::now())
            .as_millis() as u64;
        tokio::spawn(async move {
            let surveyed = tokio::task::spawn_blocking(move || {
                backlog::survey(&dir, from, end, &ids, &superseded)
            })
            .await;
            let answer = match surveyed {
                Ok(Ok(b)) => Ok(Backlog {
                    primary_ids_known: known,
                    primary,
                    next_attempt_ms,
                    ..b
                }),
                Ok(Err(e)) => Err(format!("reading the journal: {e}")),
                Err(e) => Err(format!("the survey of the journal failed: {e}")),
            };
            let _ = reply.send(answer);
        });
    }

    async fn tick(&mut self) {
        // Not before the first probe either: it creates a missing root, and the backlog found
        // at start is planned as a drain once the primary is known to be up.
        if self.up != Some(true) || Instant::now() < self.next_try {
            return;
        }
        // An append given up on may still land once the primary answers again (seen with a
        // frozen FUSE mount: the batch then went to the primary twice). Forwarding resumes only
        // when every abandoned operation has finished, so that the ids read back include it.
        if self.args.io.stuck() > 0 {
            return;
        }
        let mut done = false;
        loop {
            match self.forward_once().await {
                Ok(true) => continue,
                Ok(false) => {
                    done = true;
                    break;
                }
                Err(e) => {
                    self.abandon().await;
                    self.failed(&e);
                    break;
                }
            }
        }
        debug_assert!(
            self.syncing.is_none() && self.unsynced.is_empty(),
            "a batch outlived its tick"
        );
        // Recycling buffers pays within a drain; between ticks it would only hold megabytes.
        self.spare = None;
        self.publish_lag();
        if done {
            self.succeeded();
        }
    }

    /// Probes the primary; true when it just came (back) up, so that its backlog can be
    /// drained at once rather than at the next tick, up to `interval` later.
    async fn probe(&mut self) -> bool {
        if self.args.forced_down.load(Ordering::SeqCst) {
            self.set_up(
                false,
                "primary-down injected (fushi inject primary-up ends it)",
            );
            self.publish_lag();
            return false;
        }
        let mut came_up = false;
        let p = self.primary.clone();
        match self
            .args
            .io
            .run(self.args.io_timeout, move || p.probe())
            .await
        {
            Ok(()) => {
                if self.up != Some(true) {
                    self.set_up(true, "probe succeeded");
                    // The retry backoff stands: a store that takes a probe may still refuse
                    // appends (quota, permissions), and resetting here would retry at every
                    // probe. Only a forwarded batch (or `sync --now`) resets it.
                    // The backlog of the outage (or found at start) is one drain; one cut short
                    // by the outage is superseded.
                    self.drain = None;
                    self.plan();
                    came_up = true;
                }
            }
            Err(e) => self.set_up(false, &format!("probe failed: {e}")),
        }
        self.publish_lag();
        came_up
    }
}

impl Actor for SyncActor {
    type Msg = SyncMsg;
    type State = SyncState;
    type Arguments = SyncArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SyncMsg>,
        args: SyncArgs,
    ) -> Result<SyncState, ActorProcessingErr> {
        let ticker = tick_every(myself.clone(), args.interval, SyncMsg::Tick);
        let prober = tick_every(myself.clone(), args.probe_interval, SyncMsg::Probe);
        let primary = Arc::new(
            if args.primary_is_local {
                Primary::new(args.primary.clone())
            } else {
                Primary::external(args.primary.clone())
            }
            .for_node(args.node.clone()),
        );
        let mut journal = args.storage.info();
        let me = myself.clone();
        let watcher = AbortOnDrop(tokio::spawn(async move {
            while journal.changed().await.is_ok() {
                if me.cast(SyncMsg::JournalChanged).is_err() {
                    break;
                }
            }
        }));
        let info = *args.storage.info().borrow();
        Ok(SyncState {
            primary,
            up: None,
            last_ids: None,
            known_ids: BTreeMap::new(),
            cursor: info.start,
            passed: BTreeMap::new(),
            retry_delay: RETRY_MIN,
            batch_bytes: BATCH_BYTES_START,
            prefetch: None,
            releasing: None,
            spare: None,
            unsynced: Vec::new(),
            syncing: None,
            latest: BTreeMap::new(),
            latest_at: Instant::now(),
            next_try: Instant::now(),
            drain: None,
            args,
            _ticker: ticker,
            _prober: prober,
            _watcher: watcher,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<SyncMsg>,
        msg: SyncMsg,
        state: &mut SyncState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SyncMsg::Tick(_due) => state.tick().await,
            SyncMsg::Probe(_due) => {
                if state.probe().await {
                    state.tick().await;
                }
            }
            SyncMsg::JournalChanged => state.publish_lag(),
            SyncMsg::Force(down, reply) => {
                state.args.forced_down.store(down, Ordering::SeqCst);
                state.probe().await;
                let _ = reply.send(());
            }
            SyncMsg::Backlog(reply) => state.survey(reply),
            SyncMsg::Now(reply) => {
                state.next_try = Instant::now();
                state.retry_delay = RETRY_MIN;
                state.probe().await;
                state.tick().await;
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}
