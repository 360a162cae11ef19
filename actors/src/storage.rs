//! The storage actor: owns the local journal and its writer thread, which makes records durable with group commit before they are acknowledged.
//!
//! Producers do not queue in the actor's mailbox: they hold a [`StorageHandle`] that outlives
//! restarts of this actor and talk to the writer thread directly. The writer takes every append
//! that queued while its previous fsync ran and makes them durable with one write and one fsync
//! (group commit), then answers each producer with its records' ids. While storage restarts, or
//! while the journal is full (`max_local`) or the disk is, producers wait: back-pressure, never a
//! drop. The actor itself only starts the thread (recovering the journal — the same code on a cold
//! start and after a crash), watches it, and fails if it dies, so the supervisor restarts both.
//!
//! Ids never go back on what the primary holds: at start the writer waits (up to
//! [`StorageArgs::seed_wait`]) for this node's last ids on the primary, which the sync actor hands over
//! ([`StorageHandle::seed`]), and numbers above them; a journal that was wiped, replaced or damaged
//! would otherwise hand out ids the primary already has. Its own last ids are saved every second.

use crate::events;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::audit::AuditLog;
use crate::board::StatusBoard;
use crate::journal::{Journal, JournalError, Position};
use crate::records::{Record, RecordId};
/// What the journal holds right now; the sync actor reads up to `end`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct JournalInfo {
    pub start: Position,
    pub end: Position,
    pub bytes: u64,
    pub records: u64,
    /// Generation of the writer that published this (a restart starts a new one).
    pub generation: u64,
    /// Group commits (one write and one fdatasync each) this writer made: records ÷ commits is
    /// how many records one fsync carried.
    pub commits: u64,
    /// Appends are held back (journal or disk full, a failing disk): the sync actor then
    /// rotates the active segment as soon as it is forwarded, so that releasing it makes room.
    pub blocked: bool,
}

enum Cmd {
    /// Shared, so that a producer keeps its records for a resend without copying them.
    Append(Arc<Vec<Record>>, oneshot::Sender<Vec<RecordId>>),
    Release(u64, oneshot::Sender<Result<u64, String>>),
    Rotate(oneshot::Sender<Result<(), String>>),
    /// The primary holds these last ids: numbering continues above them.
    Seed(BTreeMap<String, (u64, u64)>, oneshot::Sender<()>),
    /// Move a stream's frames from a position on to new ids after the primary's last one
    /// ([`Journal::rehome`]).
    Rehome(
        String,
        Position,
        Option<(u64, u64)>,
        oneshot::Sender<Result<Rehomed, String>>,
    ),
    /// The last id of a stream, once every append sent before the question is durable.
    LastId(String, oneshot::Sender<Option<RecordId>>),
    /// Appends sent from now on are numbered in this epoch (a leader lease's).
    SetEpoch(u64, oneshot::Sender<()>),
}

/// What a rehome moved: how many records, and the first one's ids before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rehomed {
    pub records: usize,
    pub first: Option<((u64, u64), (u64, u64))>,
}

/// Frames copied elsewhere by [`Journal::rehome`], per stream: the sync actor passes them.
pub type Superseded = std::collections::HashSet<Position>;

struct HandleInner {
    writer: Option<mpsc::Sender<Cmd>>,
    /// The primary's last ids as last seeded: a restarted writer numbers above them at once
    /// instead of waiting for the sync actor to read them again (they only ever grow).
    seed: Option<BTreeMap<String, (u64, u64)>>,
}

/// The producers' and the sync actor's way to the journal; it survives storage restarts.
#[derive(Clone)]
pub struct StorageHandle {
    inner: Arc<Mutex<HandleInner>>,
    /// The epoch set by [`StorageHandle::set_epoch`] (0: none yet, the writer's own), kept here
    /// so that a restarted writer numbers in it too.
    epoch: Arc<std::sync::atomic::AtomicU64>,
    writer_changed: Arc<tokio::sync::Notify>,
    info_tx: Arc<watch::Sender<JournalInfo>>,
    superseded: Arc<Mutex<Arc<Superseded>>>,
    dir: PathBuf,
}

impl StorageHandle {
    pub fn new(journal_dir: PathBuf) -> Self {
        let (info_tx, _) = watch::channel(JournalInfo::default());
        Self {
            inner: Arc::new(Mutex::new(HandleInner {
                writer: None,
                seed: None,
            })),
            writer_changed: Arc::new(tokio::sync::Notify::new()),
            epoch: Arc::default(),
            info_tx: Arc::new(info_tx),
            superseded: Arc::default(),
            dir: journal_dir,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HandleInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn journal_dir(&self) -> &PathBuf {
        &self.dir
    }

    /// Follows the journal's end and size.
    pub fn info(&self) -> watch::Receiver<JournalInfo> {
        self.info_tx.subscribe()
    }

    async fn send(&self, mut cmd: Cmd) {
        loop {
            let notified = self.writer_changed.notified();
            let writer = self.lock().writer.clone();
            if let Some(tx) = writer {
                match tx.send(cmd) {
                    Ok(()) => return,
                    Err(mpsc::SendError(back)) => cmd = back,
                }
            }
            // Storage is restarting: wait for the next writer rather than drop anything.
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }

    /// Makes `records` durable and returns them with their ids; waits as long as it takes.
    pub async fn append(&self, records: Vec<Record>) -> Vec<RecordId> {
        let records = Arc::new(records);
        loop {
            let (tx, rx) = oneshot::channel();
            self.send(Cmd::Append(records.clone(), tx)).await;
            // A writer that died before answering acknowledged nothing: send them again.
            if let Ok(stored) = rx.await {
                return stored;
            }
        }
    }

    /// Deletes the closed segments before `segment` (forwarded to the primary).
    pub async fn release_before(&self, segment: u64) -> Result<u64, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Release(segment, tx)).await;
        rx.await.unwrap_or_else(|_| Err("storage restarted".into()))
    }

    /// Tells storage this node's last ids on the primary, so that no id is ever handed out
    /// again at or below them: a wiped, replaced or damaged journal no longer knows its own.
    /// Other nodes' lines on a shared primary are not among them: each epoch has one writer,
    /// so ids in ours never collide with theirs. Returns once the writer has them.
    pub async fn seed(&self, ids: BTreeMap<String, (u64, u64)>) {
        {
            let mut g = self.lock();
            let seed = g.seed.get_or_insert_with(BTreeMap::new);
            for (stream, &id) in &ids {
                let e = seed.entry(stream.clone()).or_insert(id);
                *e = (*e).max(id);
            }
        }
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Seed(ids, tx)).await;
        let _ = rx.await;
    }

    /// Gives every record of `stream` from `from` on new ids following `after` (the primary's
    /// last id of the stream), keeping their order; see [`Journal::rehome`].
    pub async fn rehome(
        &self,
        stream: &str,
        from: Position,
        after: Option<(u64, u64)>,
    ) -> Result<Rehomed, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Rehome(stream.to_string(), from, after, tx))
            .await;
        rx.await.unwrap_or_else(|_| Err("storage restarted".into()))
    }

    /// The frames superseded by a rehome, as the writer last published them.
    pub fn superseded(&self) -> Arc<Superseded> {
        self.superseded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The last durable id of `stream`, asked after every append sent before this call is durable
    /// (so an append a previous incarnation of a collector left in the queue is counted): how a
    /// collector learns which of its records a crash left durable. None when the journal knows
    /// no id of the stream.
    pub async fn last_id(&self, stream: &str) -> Option<RecordId> {
        loop {
            let (tx, rx) = oneshot::channel();
            self.send(Cmd::LastId(stream.to_string(), tx)).await;
            if let Ok(id) = rx.await {
                return id;
            }
        }
    }

    /// The highest epoch this journal numbers in or has numbered in: a lease taken by this
    /// node must be above it, or ids would go backwards.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Numbers every append sent after this call in `epoch` (never a lower one than before):
    /// how a node that takes the leader lease keeps its records apart from the last leader's.
    /// Returns once the writer has it.
    pub async fn set_epoch(&self, epoch: u64) {
        self.epoch
            .fetch_max(epoch, std::sync::atomic::Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::SetEpoch(epoch, tx)).await;
        let _ = rx.await;
    }

    /// Closes the active segment so that it can be released once forwarded.
    pub async fn rotate(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Rotate(tx)).await;
        rx.await.unwrap_or_else(|_| Err("storage restarted".into()))
    }

    fn install(&self, tx: Option<mpsc::Sender<Cmd>>) {
        self.lock().writer = tx;
        self.writer_changed.notify_waiters();
    }
}

#[derive(Clone)]
pub struct StorageActor;

#[derive(Clone)]
pub struct StorageArgs {
    pub handle: StorageHandle,
    pub node: String,
    pub epoch: u64,
    pub max_local: u64,
    pub segment_max: u64,
    pub board: StatusBoard,
    pub audit: AuditLog,
    /// How long a journal that knows no ids of its own (a fresh or wiped data dir) holds its
    /// appends for the primary's ([`StorageHandle::seed`], sent by the sync actor once it read
    /// them): numbering from 1.1 again would reuse ids the primary may hold. A primary that
    /// does not answer in time is down, and records must pile up in the journal all the same:
    /// numbering then starts from the journal's own knowledge, and should an id turn out to be
    /// taken, forwarding stops before it and says so (see the sync actor). Zero: no wait.
    pub seed_wait: Duration,
}

impl StorageArgs {
    /// Storage with no bound on the journal, in epoch 1, numbering at once (no wait for the
    /// primary's ids): what a test or a benchmark that drives storage alone needs.
    pub fn unbounded(handle: StorageHandle, board: StatusBoard, audit: AuditLog) -> Self {
        Self {
            handle,
            node: "node".into(),
            epoch: 1,
            max_local: u64::MAX,
            segment_max: 16 << 20,
            board,
            audit,
            seed_wait: Duration::ZERO,
        }
    }
}

pub enum StorageMsg {
    /// The writer thread ended; its reason.
    WriterDied(String),
    Info(RpcReplyPort<JournalInfo>),
}

pub struct StorageState {
    handle: StorageHandle,
    stop: Option<mpsc::Sender<Cmd>>,
}

fn publish_superseded(to: &Mutex<Arc<Superseded>>, journal: &Journal) {
    *to.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(journal.superseded().clone());
}

/// Where the last ids live once the segments that held them are released.
const IDS_FILE: &str = "last-ids.json";

/// The last ids [`save_ids`] left in the journal directory `dir`; none if there is no such file.
pub fn load_ids(dir: &std::path::Path) -> BTreeMap<String, (u64, u64)> {
    read_ids(dir).unwrap_or_default()
}

/// The saved last ids, or None when there is no readable file: the journal then knows nothing
/// of the ids it handed out before.
/// The last ids the journal saved (`last-ids.json`): what it numbered up to, also once the
/// segments that held them are released.
pub fn read_ids(dir: &std::path::Path) -> Option<BTreeMap<String, (u64, u64)>> {
    std::fs::read(dir.join(IDS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// How often the writer saves the last ids while they change: what a zeroed or lost segment
/// can take from the journal's own knowledge of its ids (the primary's, read at start, covers
/// the rest).
const SAVE_IDS_EVERY: Duration = Duration::from_secs(1);

/// Saves the journal's last ids atomically; done before releasing segments, so that the ids
/// outlive the segments that hold them.
pub fn save_ids(journal: &Journal) -> Result<(), String> {
    let ids: BTreeMap<_, _> = journal.last_ids().clone().into_iter().collect();
    let bytes = serde_json::to_vec(&ids).map_err(|e| e.to_string())?;
    crate::fs::write_atomic(&journal.dir().join(IDS_FILE), &bytes)
        .map_err(|e| format!("saving last ids: {e}"))
}

impl Actor for StorageActor {
    type Msg = StorageMsg;
    type State = StorageState;
    type Arguments = StorageArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<StorageMsg>,
        args: StorageArgs,
    ) -> Result<StorageState, ActorProcessingErr> {
        let dir = args.handle.dir.clone();
        let segment_max = args.segment_max;
        // A previous incarnation's writer may still be finishing its last fsync: wait for its lock.
        let (mut journal, recovery, ids) = tokio::task::spawn_blocking(move || {
            let (journal, recovery) = Journal::open(&dir, segment_max, Duration::from_secs(10))?;
            let ids = read_ids(journal.dir());
            Ok::<_, JournalError>((journal, recovery, ids))
        })
        .await??;
        // A journal with neither frames nor saved ids (a new, wiped or replaced data dir) would
        // number from 1.1 again, under ids the primary may hold already; a damaged one, or one
        // restored from an old copy, from below them. So every start first asks the primary,
        // which answers at once when it is up.
        let knows_ids = ids.is_some() || !journal.last_ids().is_empty();
        journal.seed_last_ids(&ids.unwrap_or_default());
        // Seeded before in this process (this is a restart of storage alone): no need to wait.
        let seeded = args.handle.lock().seed.clone();
        if let Some(seed) = &seeded {
            journal.seed_last_ids(seed);
        }
        for path in &recovery.removed {
            tracing::warn!(actor = "storage", event = events::JOURNAL_RECOVERED, segment = %path.display(),
                "removed an empty journal segment");
            args.audit.emit(
                events::JOURNAL_RECOVERED,
                Some("storage"),
                json!({"segment": path.display().to_string(), "action": "removed_empty"}),
            );
        }
        for (path, off, n) in &recovery.truncated {
            tracing::warn!(actor = "storage", event = events::JOURNAL_RECOVERED, segment = %path.display(), offset = off, bytes = n,
                "truncated a torn journal tail");
            args.audit.emit(events::JOURNAL_RECOVERED, Some("storage"),
                json!({"segment": path.display().to_string(), "offset": off, "bytes": n, "action": "truncated"}));
        }
        for (path, off, n, q) in &recovery.quarantined {
            tracing::error!(actor = "storage", event = events::JOURNAL_CORRUPT, segment = %path.display(), offset = off, bytes = n,
                quarantine = %q.display(), "quarantined a corrupt journal stretch; the frames after it are kept");
            args.audit.emit(events::JOURNAL_CORRUPT, Some("storage"),
                json!({"segment": path.display().to_string(), "offset": off, "bytes": n, "quarantine": q.display().to_string()}));
        }
        if recovery.records > 0 || recovery.duplicates > 0 {
            args.audit.emit(events::JOURNAL_RECOVERED, Some("storage"),
                json!({"segments": recovery.segments, "records": recovery.records, "duplicates": recovery.duplicates}));
        }
        publish_superseded(&args.handle.superseded, &journal);
        // The journal's own epochs count too: after a restart it must never number below them.
        if let Some(top) = journal.last_ids().values().map(|&(e, _)| e).max() {
            args.handle
                .epoch
                .fetch_max(top, std::sync::atomic::Ordering::SeqCst);
        }
        let (tx, rx) = mpsc::channel();
        let generation = args.handle.info_tx.borrow().generation + 1;
        let writer = Writer {
            journal,
            rx,
            epoch: args
                .epoch
                .max(args.handle.epoch.load(std::sync::atomic::Ordering::SeqCst)),
            node: args.node.clone(),
            max_local: args.max_local,
            board: args.board.clone(),
            info: args.handle.info_tx.clone(),
            generation,
            commits: 0,
            waiting: VecDeque::new(),
            asks: Vec::new(),
            full: false,
            failing_since: None,
            audit: args.audit.clone(),
            superseded: args.handle.superseded.clone(),
            unseeded: (!args.seed_wait.is_zero() && seeded.is_none())
                .then(|| Instant::now() + args.seed_wait),
            knows_ids,
            error: None,
            saved_ids: None,
            dirty: false,
            saved_at: Instant::now(),
        };
        writer.publish();
        let me = myself.clone();
        std::thread::Builder::new()
            .name("fushi-journal".into())
            .spawn(move || {
                let reason =
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.run())) {
                        Ok(()) => "writer stopped".to_string(),
                        Err(_) => "journal writer panicked".to_string(),
                    };
                let _ = me.cast(StorageMsg::WriterDied(reason));
            })?;
        args.handle.install(Some(tx.clone()));
        Ok(StorageState {
            handle: args.handle,
            stop: Some(tx),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<StorageMsg>,
        msg: StorageMsg,
        state: &mut StorageState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            StorageMsg::WriterDied(reason) => Err(reason.into()),
            StorageMsg::Info(reply) => {
                let _ = reply.send(*state.handle.info_tx.borrow());
                Ok(())
            }
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<StorageMsg>,
        state: &mut StorageState,
    ) -> Result<(), ActorProcessingErr> {
        state.handle.install(None);
        state.stop.take();
        Ok(())
    }
}

impl Drop for StorageState {
    fn drop(&mut self) {
        // Also when killed: producers must stop reaching a writer this incarnation owned.
        if self.stop.take().is_some() {
            self.handle.install(None);
        }
    }
}

/// An append waiting for its group: the records and where their ids go.
type Waiting = (Arc<Vec<Record>>, oneshot::Sender<Vec<RecordId>>);

/// The writer thread: group commit over the journal.
struct Writer {
    journal: Journal,
    rx: mpsc::Receiver<Cmd>,
    epoch: u64,
    node: String,
    max_local: u64,
    board: StatusBoard,
    info: Arc<watch::Sender<JournalInfo>>,
    generation: u64,
    commits: u64,
    /// Appends held back by a full journal or a failing disk, oldest first.
    waiting: VecDeque<Waiting>,
    /// Questions for a stream's last id, answered once no append is waiting.
    asks: Vec<(String, oneshot::Sender<Option<RecordId>>)>,
    full: bool,
    failing_since: Option<Instant>,
    audit: AuditLog,
    /// Where the superseded frames are published for the sync actor (the handle's, not the
    /// handle itself: that would keep this thread's own channel open).
    superseded: Arc<Mutex<Arc<Superseded>>>,
    /// No ids are handed out until the primary's are known or this deadline passes (see
    /// [`StorageArgs::seed_wait`]).
    unseeded: Option<Instant>,
    /// Whether the journal had ids of its own at start: waiting for the primary's is then
    /// routine, and only a journal without them shows the wait as an error.
    knows_ids: bool,
    /// What status shows as the journal's error, as last published.
    error: Option<String>,
    /// The last ids as last saved, and when.
    saved_ids: Option<HashMap<String, (u64, u64)>>,
    /// Ids were handed out since the last save.
    dirty: bool,
    saved_at: Instant,
}

const UNSEEDED: &str = "the journal knows no ids of its own (a new or wiped data dir): records \
    wait until the primary's last ids are read";

/// Upper bound of one group, so that one fsync never waits on an unbounded write.
const GROUP_MAX_RECORDS: usize = 16 * 1024;

impl Writer {
    fn publish(&self) {
        let info = JournalInfo {
            start: self.journal.start(),
            end: self.journal.end(),
            bytes: self.journal.bytes(),
            records: self.journal.records(),
            generation: self.generation,
            commits: self.commits,
            blocked: self.full || self.failing_since.is_some(),
        };
        self.info.send_replace(info);
        self.board.set_journal(
            info.bytes,
            info.records,
            self.full || self.failing_since.is_some(),
        );
        let error = self.error.clone();
        self.board.update_storage(|s, _| s.journal_error = error);
    }

    /// Sets what status says is wrong with the journal, auditing each change.
    fn set_error(&mut self, error: Option<String>) {
        if self.error == error {
            return;
        }
        match &error {
            Some(e) => {
                tracing::error!(actor = "storage", event = events::JOURNAL_WRITE_FAILED, error = %e,
                    "journal cannot take records; producers wait and nothing is acknowledged until it is durable");
                self.audit.emit(
                    events::JOURNAL_WRITE_FAILED,
                    Some("storage"),
                    json!({"error": e}),
                );
            }
            None => {
                tracing::info!(
                    actor = "storage",
                    event = events::JOURNAL_WRITABLE,
                    "journal takes records again"
                );
                self.audit
                    .emit(events::JOURNAL_WRITABLE, Some("storage"), json!({}));
            }
        }
        self.error = error;
    }

    /// Shows the journal's failed rotation as its error, or clears it once one succeeded.
    fn show_rotate_error(&mut self) {
        let rotate = self.journal.rotate_error().map(|e| {
            format!("cannot start a new segment ({e}); the active one grows past its size and cannot be released")
        });
        self.set_error(rotate);
    }

    /// Saves the last ids when they changed and [`SAVE_IDS_EVERY`] has passed (or `now`).
    fn save_ids_due(&mut self, now: bool) -> Result<(), String> {
        let ids = self.journal.last_ids();
        if self.saved_ids.as_ref() == Some(ids)
            || (!now && self.saved_at.elapsed() < SAVE_IDS_EVERY)
        {
            return Ok(());
        }
        // Also a failed attempt waits its turn: a full disk is not retried (and logged) 4 times a second.
        self.saved_at = Instant::now();
        save_ids(&self.journal)?;
        self.saved_ids = Some(self.journal.last_ids().clone());
        self.dirty = false;
        Ok(())
    }

    fn seed(&mut self, ids: &BTreeMap<String, (u64, u64)>) {
        self.journal.seed_last_ids(ids);
        if self.unseeded.is_some() {
            // Numbering may start: the ids that matter are saved before the first is used.
            match self.save_ids_due(true) {
                Ok(()) => {
                    self.unseeded = None;
                    self.clear_unseeded_error();
                    tracing::info!(
                        actor = "storage",
                        event = events::JOURNAL_SEEDED,
                        streams = ids.len(),
                        "numbering continues above the primary's last ids"
                    );
                    self.audit.emit(
                        events::JOURNAL_SEEDED,
                        Some("storage"),
                        json!({"from": "primary", "streams": ids.len()}),
                    );
                }
                Err(e) => self.set_error(Some(e)),
            }
        }
        self.publish();
    }

    fn clear_unseeded_error(&mut self) {
        if self.error.as_deref() == Some(UNSEEDED) {
            self.error = None;
        }
    }

    /// A fresh journal whose primary did not answer in time numbers on its own (see
    /// [`StorageArgs::seed_wait`]).
    fn seed_expired(&mut self) {
        if self.unseeded.is_some_and(|at| Instant::now() >= at) {
            self.unseeded = None;
            self.clear_unseeded_error();
            tracing::warn!(actor = "storage", event = events::JOURNAL_SEEDED,
                "the primary's last ids could not be read in time: numbering starts from the journal's own; \
                 should the primary hold any of these ids already, forwarding stops before them and says so");
            self.audit.emit(
                events::JOURNAL_SEEDED,
                Some("storage"),
                json!({"from": "journal"}),
            );
        }
    }

    fn run(mut self) {
        loop {
            // Held-back appends are retried now and then, and new ids saved once due.
            let blocked =
                self.full || self.failing_since.is_some() || self.unseeded.is_some() || self.dirty;
            // With appends held back, wake up now and then to retry them.
            let first = if blocked {
                match self.rx.recv_timeout(Duration::from_millis(250)) {
                    Ok(cmd) => Some(cmd),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match self.rx.recv() {
                    Ok(cmd) => Some(cmd),
                    Err(_) => return,
                }
            };
            let mut next = first;
            while let Some(cmd) = next {
                match cmd {
                    Cmd::Append(recs, reply) => self.waiting.push_back((recs, reply)),
                    Cmd::Release(seg, reply) => {
                        let _ = reply.send(self.release(seg));
                    }
                    Cmd::Rotate(reply) => {
                        let _ = reply.send(self.journal.rotate().map_err(|e| e.to_string()));
                        // A rotation asked for by sync clears (or shows) a failed one as well.
                        if self.failing_since.is_none() {
                            self.show_rotate_error();
                        }
                        self.publish();
                    }
                    Cmd::Seed(ids, reply) => {
                        self.seed(&ids);
                        let _ = reply.send(());
                    }
                    Cmd::Rehome(stream, from, after, reply) => {
                        let _ = reply.send(self.rehome(&stream, from, after));
                    }
                    Cmd::LastId(stream, reply) => self.asks.push((stream, reply)),
                    Cmd::SetEpoch(epoch, reply) => {
                        // Appends already waiting go out first, in the epoch they were sent in
                        // (unless a full or failing journal holds them back still).
                        self.commit();
                        self.epoch = self.epoch.max(epoch);
                        let _ = reply.send(());
                    }
                }
                next = self.rx.try_recv().ok();
            }
            self.commit();
            if self.waiting.is_empty() {
                for (stream, reply) in self.asks.drain(..) {
                    let id = self.journal.last_ids().get(&stream);
                    let _ = reply.send(id.map(|&(epoch, seq)| RecordId { epoch, seq }));
                }
            }
        }
    }

    fn rehome(
        &mut self,
        stream: &str,
        from: Position,
        after: Option<(u64, u64)>,
    ) -> Result<Rehomed, String> {
        let moved = self
            .journal
            .rehome(self.epoch, stream, from, after)
            .map_err(|e| e.to_string())?;
        self.dirty = true;
        publish_superseded(&self.superseded, &self.journal);
        self.publish();
        Ok(Rehomed {
            records: moved.len(),
            first: moved.first().copied(),
        })
    }

    fn release(&mut self, segment: u64) -> Result<u64, String> {
        self.save_ids_due(true)?;
        let before = self.journal.records();
        let result = self.journal.release_before(segment);
        // Only forwarded segments are released, also by a release that failed part way: their
        // records were counted as forwarded.
        self.board
            .released(before.saturating_sub(self.journal.records()));
        self.publish();
        result.map_err(|e| e.to_string())
    }

    /// Makes durable as many waiting appends as the journal's bound allows, in one fsync.
    fn commit(&mut self) {
        loop {
            self.full = self.journal.bytes() >= self.max_local;
            self.seed_expired();
            if self.unseeded.is_some() && !self.knows_ids {
                self.error = Some(UNSEEDED.into());
            }
            if self.full || self.unseeded.is_some() || self.waiting.is_empty() {
                if self.unseeded.is_none() && self.failing_since.is_none() {
                    // Idle or full: the last ids reach disk even when no release comes.
                    if let Err(e) = self.save_ids_due(false) {
                        tracing::warn!(actor = "storage", event = events::JOURNAL_WRITE_FAILED, error = %e, "cannot save the last ids");
                    }
                }
                self.publish();
                return;
            }
            let mut take = 0;
            let mut count = 0;
            for (recs, _) in &self.waiting {
                if take > 0 && count + recs.len() > GROUP_MAX_RECORDS {
                    break;
                }
                count += recs.len();
                take += 1;
            }
            let group: Vec<_> = self.waiting.drain(..take).collect();
            let all = group.iter().flat_map(|(r, _)| r.iter());
            match self.journal.append_seqs(self.epoch, &self.node, all) {
                Ok(seqs) => {
                    self.commits += 1;
                    self.dirty = true;
                    self.failing_since = None;
                    self.show_rotate_error();
                    let epoch = self.epoch;
                    let mut it = seqs.into_iter().map(|seq| RecordId { epoch, seq });
                    for (recs, reply) in group {
                        let mine: Vec<_> = it.by_ref().take(recs.len()).collect();
                        // A producer that gave up waiting is no reason to stop.
                        let _ = reply.send(mine);
                    }
                }
                Err(e) => {
                    self.report(&e);
                    // Nothing of the group is acknowledged; it waits at the front to be retried.
                    for g in group.into_iter().rev() {
                        self.waiting.push_front(g);
                    }
                    self.publish();
                    return;
                }
            }
        }
    }

    fn report(&mut self, e: &JournalError) {
        let first = self.failing_since.is_none();
        if first {
            self.failing_since = Some(Instant::now());
        }
        // The first error of a streak stands: one that only differs in how many bytes are free
        // would audit every retry.
        if first || self.error.is_none() {
            self.set_error(Some(e.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Record;

    async fn spawn(handle: &StorageHandle) -> ActorRef<StorageMsg> {
        let args = StorageArgs::unbounded(
            handle.clone(),
            StatusBoard::new("node", "prod", ""),
            AuditLog::memory("node"),
        );
        let (storage, _) = Actor::spawn(None, StorageActor, args).await.unwrap();
        storage
    }

    fn record() -> Vec<Record> {
        vec![Record {
            stream: "s".into(),
            ts: "2026-12-01T00:00:00.000Z".into(),
            data: json!({"k": 1}),
        }]
    }

    #[tokio::test]
    async fn a_set_epoch_numbers_later_appends_in_it_also_after_a_restart_and_never_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let handle = StorageHandle::new(dir.path().join("journal"));
        let storage = spawn(&handle).await;
        assert_eq!(
            handle.append(record()).await,
            [RecordId { epoch: 1, seq: 1 }]
        );
        handle.set_epoch(3).await;
        assert_eq!(
            handle.append(record()).await,
            [RecordId { epoch: 3, seq: 1 }]
        );
        storage.stop_and_wait(None, None).await.unwrap();
        // A restarted writer numbers in the epoch set, not the one of its arguments.
        let _storage = spawn(&handle).await;
        assert_eq!(
            handle.append(record()).await,
            [RecordId { epoch: 3, seq: 2 }]
        );
        handle.set_epoch(2).await;
        assert_eq!(
            handle.append(record()).await,
            [RecordId { epoch: 3, seq: 3 }]
        );
        _storage.stop_and_wait(None, None).await.unwrap();
        // A new process (a new handle) on that journal: its epochs are the floor, so a lease
        // taken next must be above them and nothing is numbered below.
        let fresh = StorageHandle::new(dir.path().join("journal"));
        let _storage = spawn(&fresh).await;
        assert_eq!(fresh.epoch(), 3);
        assert_eq!(
            fresh.append(record()).await,
            [RecordId { epoch: 3, seq: 4 }]
        );
    }
}
