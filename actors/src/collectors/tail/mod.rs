//! The tail collector: follows a file or a glob through rotation (rename and copytruncate), truncation and inode reuse, and reads each line exactly once by its checkpoint, also across `kill -9`.
//!
//! One worker task per collector loops: commit the last batch, scan (every `glob_interval`),
//! read the next batch of lines from one file, write the checkpoint naming that batch, hand it
//! to storage and wait until it is durable. Every step that touches files runs on the blocking
//! pool under [`IO_TIMEOUT`]: a log directory on a hung mount fails the collector, with a
//! message saying so, instead of stopping the runtime. Storage's back-pressure reaches the
//! files directly: while a batch waits to be durable nothing more is read, so memory holds one
//! batch at most whatever the producer's speed.
//!
//! Exactly once: see [`checkpoint`] for why the checkpoint names the batch in flight, and
//! [`files`] for how a file is recognised. A tail collector's stream is its own (the config
//! check refuses another collector on it), so its last id in the journal counts its records.

pub mod checkpoint;
mod files;
mod identity;
mod lines;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

use self::checkpoint::{Checkpoint, CheckpointError, Pending};
use self::files::{Files, Options};
use crate::events;
use crate::sink::RecordSink;
use crate::AbortOnDrop;

/// A step of file I/O that takes longer than this is taken for a hung file system.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// How often files are looked at for new lines while nothing is left to read.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Bytes of lines in one batch: one journal append and one checkpoint per this much. A full
/// journal takes one batch beyond `max_local`, so this is kept well below a small bound.
const BATCH_BYTES: usize = 1 << 20;

#[derive(Clone)]
pub struct TailActor;

#[derive(Clone)]
pub struct TailArgs {
    /// Tree path, e.g. `collectors/app`.
    pub path: String,
    pub stream: String,
    /// A file or a glob, absolute.
    pub pattern: String,
    /// Where the checkpoint lives: `<data_dir>/tail/<name>.json`.
    pub checkpoint: PathBuf,
    pub glob_interval: Duration,
    /// `read_from = "end"`: files found at the very first start are read from their last line.
    pub read_from_end: bool,
    pub partial_after: Duration,
    pub rotate_wait: Duration,
    pub max_record_bytes: usize,
    pub sink: RecordSink,
}

pub enum TailMsg {
    /// The worker stopped on this error; the actor fails with it.
    Failed(String),
}

pub struct TailState {
    _worker: AbortOnDrop,
}

/// Whether `pattern` is a file or a glob the collector can follow; the error says what is wrong.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("path is empty: name a file or a glob, e.g. \"/var/log/app/*.log\"".into());
    }
    glob::Pattern::new(pattern)
        .map(drop)
        .map_err(|e| format!("{pattern:?} is not a valid glob: {e}"))?;
    if pattern.ends_with('/') {
        return Err(format!(
            "{pattern:?} names a directory: follow the files in it with a glob, e.g. \"{pattern}*.log\""
        ));
    }
    Ok(())
}

/// What a pattern matches now, for `fushi check`: the regular files that can be read and those
/// that cannot, with why.
pub fn survey(pattern: &str) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let (paths, errors) = files::expand(pattern);
    let mut readable = Vec::new();
    let mut unreadable: Vec<(PathBuf, String)> = errors
        .into_iter()
        .map(|(p, e)| (p, e.to_string()))
        .collect();
    for p in paths {
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => {
                unreadable.push((
                    p.clone(),
                    format!(
                        "a directory, not a file: follow the files in it with a glob, e.g. \"{}/*.log\"",
                        p.display()
                    ),
                ));
                continue;
            }
            Ok(m) if m.is_file() => {}
            _ => continue,
        }
        match std::fs::File::open(&p) {
            Ok(_) => readable.push(p),
            Err(e) => unreadable.push((p, e.to_string())),
        }
    }
    (readable, unreadable)
}

/// Runs `f` on the blocking pool, bounded by [`IO_TIMEOUT`].
async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    match tokio::time::timeout(IO_TIMEOUT, tokio::task::spawn_blocking(f)).await {
        Err(_) => Err(format!(
            "{what} did not finish within {}s: is the file system of the followed files or of the data directory hung?",
            IO_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(format!("{what} failed: {e}")),
        Ok(Ok(r)) => r,
    }
}

/// The lock of one checkpoint, held by every step of a worker that reads or writes it.
///
/// A step stuck on a hung file system outlives its worker (a blocking thread cannot be
/// cancelled), and may finish after the collector's next incarnation has started: holding the
/// lock, it makes that incarnation's first step (which loads the checkpoint) wait for it, so
/// the checkpoint an incarnation starts from is always the last one written.
fn checkpoint_lock(path: &Path) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    locks.entry(path.to_path_buf()).or_default().clone()
}

fn hold(lock: &Mutex<()>) -> MutexGuard<'_, ()> {
    lock.lock().unwrap_or_else(|p| p.into_inner())
}

fn io(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// How many records of the batch in flight at the last stop became durable, from the stream's
/// last id before it (`before`) and now (`now`); None when the ids plainly cannot tell
/// (another epoch, a journal that lost ids, more new ids than the batch had). Ids moved by a
/// rehome (a conflict with another node's records of the stream, which only a second writer
/// of the stream causes) are not told apart from durable records: that stays for leader
/// election to rule out.
fn durable_of(p: &Pending, before: Option<(u64, u64)>, now: Option<(u64, u64)>) -> Option<u64> {
    let n = match (before, now) {
        (None, None) => 0,
        (Some(b), Some(n)) if b == n => 0,
        (None, Some((_, seq))) => seq,
        (Some((e0, s0)), Some((e1, s1))) if e0 == e1 && s1 > s0 => s1 - s0,
        _ => return None,
    };
    (n <= p.records).then_some(n)
}

async fn run(args: Arc<TailArgs>) -> Result<(), String> {
    let opts = Options {
        collector: args.path.clone(),
        stream: args.stream.clone(),
        pattern: args.pattern.clone(),
        max_record_bytes: args.max_record_bytes,
        batch_bytes: BATCH_BYTES.max(args.max_record_bytes + 1),
        partial_after: args.partial_after,
        rotate_wait: args.rotate_wait,
        read_from_end: args.read_from_end,
    };
    let cp_path = args.checkpoint.clone();
    let actor = args.path.clone();
    let lock = checkpoint_lock(&args.checkpoint);
    let held = lock.clone();
    let (mut files, cp, first) = blocking("reading the checkpoint and finding the files", move || {
        let _held = hold(&held);
        let cp = match checkpoint::load(&cp_path) {
            Ok(cp) => cp,
            Err(e @ CheckpointError::Damaged { .. }) => {
                let aside = checkpoint::set_aside(&cp_path)
                    .map_err(io("moving the damaged checkpoint aside"))?;
                tracing::error!(actor = actor.as_str(), event = events::COLLECTOR_TAIL_RESUMED, error = %e,
                    kept = %aside.display(),
                    "the checkpoint is damaged and was set aside: every matching file is read from its start, so lines read before may be stored twice");
                Some(Checkpoint {
                    version: checkpoint::VERSION,
                    stream: String::new(),
                    last: None,
                    files: Vec::new(),
                    ghosts: Vec::new(),
                    pending: None,
                })
            }
            Err(e) => return Err(e.to_string()),
        };
        let mut files = Files::new(opts);
        let now = Instant::now();
        let first = cp.is_none();
        match &cp {
            Some(cp) => files.restore(cp.files.clone(), cp.ghosts.clone(), now),
            None => files.scan(now, true),
        }
        .map_err(io("finding the files to follow"))?;
        Ok((files, cp, first))
    })
    .await?;

    // Asked after the appends an earlier incarnation left in storage's queue are durable.
    let now_last = args
        .sink
        .last_id(&args.stream)
        .await
        .map(|id| (id.epoch, id.seq));
    if let Some((cp, p)) = cp.as_ref().and_then(|c| c.pending.map(|p| (c, p))) {
        let same_stream = cp.stream == args.stream;
        let durable = same_stream
            .then(|| durable_of(&p, cp.last, now_last))
            .flatten();
        let held = lock.clone();
        let (resumed, f) = blocking("reading the batch in flight again", move || {
            let _held = hold(&held);
            let at = match durable {
                Some(d) => files
                    .resume(&p, d)
                    .map_err(io("reading the batch in flight again"))?,
                None => None,
            };
            Ok((at, files))
        })
        .await?;
        files = f;
        match durable {
            Some(d) => tracing::info!(actor = args.path.as_str(), event = events::COLLECTOR_TAIL_RESUMED,
                durable = d, of = p.records, offset = resumed.unwrap_or(p.start),
                "a batch was on its way to the journal at the last stop: read on right after its last durable record"),
            None => tracing::warn!(actor = args.path.as_str(), event = events::COLLECTOR_TAIL_RESUMED,
                of = p.records, before = ?cp.last, now = ?now_last,
                "a batch was on its way to the journal at the last stop, and the stream's ids cannot tell how much of it is durable \
                 (another stream, another epoch, or a journal wiped or renumbered): it is read again, so some lines may be stored twice"),
        }
    }

    let mut last = now_last;
    // The checkpoint on disk names a batch that is no longer in flight, or none exists yet.
    let mut stale = cp.as_ref().is_none_or(|c| c.pending.is_some()) || first;
    let mut done: Option<(Pending, identity::Sample)> = None;
    let mut next_scan = Instant::now() + args.glob_interval;
    loop {
        let now = Instant::now();
        let scan = now >= next_scan;
        if scan {
            next_scan = now + args.glob_interval;
        }
        let path = args.checkpoint.clone();
        let stream = args.stream.clone();
        let held = lock.clone();
        let (f, batch) = blocking("reading the followed files", move || {
            let _held = hold(&held);
            if let Some((p, sample)) = done {
                files
                    .commit(&p, sample)
                    .map_err(io("sampling a followed file"))?;
            }
            if scan {
                files.scan(now, false).map_err(io("scanning for files"))?;
            }
            let batch = files
                .next_batch(now)
                .map_err(io("reading a followed file"))?;
            let (marks, ghosts, dirty) = files.marks();
            if batch.is_some() || dirty || stale {
                let cp = Checkpoint {
                    version: checkpoint::VERSION,
                    stream,
                    last,
                    files: marks,
                    ghosts,
                    pending: batch.as_ref().map(|b| b.pending),
                };
                checkpoint::save(&path, &cp).map_err(|e| e.to_string())?;
            }
            Ok((files, batch))
        })
        .await?;
        files = f;
        done = None;
        let Some(batch) = batch else {
            stale = false;
            tokio::time::sleep(IDLE_POLL.min(args.glob_interval)).await;
            continue;
        };
        stale = true;
        let mine: Vec<bool> = batch
            .records
            .iter()
            .map(|r| r.stream == args.stream)
            .collect();
        if batch.rejected > 0 {
            args.sink.board().rejected(&args.path, batch.rejected);
        }
        // Not leading (fenced, or a standby stopping us): the batch stays pending in the
        // checkpoint and is read again, under the next lease, after the reconciliation.
        let ids = args
            .sink
            .submit(&args.path, batch.records)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(id) = ids
            .iter()
            .zip(&mine)
            .filter(|(_, m)| **m)
            .map(|(id, _)| id)
            .next_back()
        {
            last = Some((id.epoch, id.seq));
        }
        done = Some((batch.pending, batch.end_sample));
    }
}

impl Actor for TailActor {
    type Msg = TailMsg;
    type State = TailState;
    type Arguments = TailArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<TailMsg>,
        args: TailArgs,
    ) -> Result<TailState, ActorProcessingErr> {
        let worker = tokio::spawn(async move {
            if let Err(e) = run(Arc::new(args)).await {
                let _ = myself.cast(TailMsg::Failed(e));
            }
        });
        Ok(TailState {
            _worker: AbortOnDrop(worker),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<TailMsg>,
        msg: TailMsg,
        _state: &mut TailState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TailMsg::Failed(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests;
