//! A backlog's way through the pipeline: batches read ahead from the journal, written to the primary on the `Main` lane, fsynced in groups on the `Sync` lane, and counted only once durable, in order.
//!
//! The pipeline's state is part of [`SyncState`] (the cursor, the last ids and the segments
//! passed are what a committed batch moves); this file holds the steps of a tick's forwarding,
//! the actor's file (`mod.rs`) when a tick runs and what a failure does.

use super::{plan, IoFailure, Lane, Plan, SyncState, RETRY_MIN};
use crate::board::SyncRun;
use crate::clock::{self, Stopwatch};
use crate::events;
use crate::journal::{self, Frames, Position};
use crate::primary::{AppendStats, Written};
use crate::AbortOnDrop;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// A batch read from the journal, on its way to the primary: what holds once it is durable.
pub(super) struct Batch {
    /// Our last ids on the primary after it.
    expect: BTreeMap<String, (u64, u64)>,
    /// The journal position after it.
    next: Position,
    /// Its records per journal segment.
    passed: BTreeMap<u64, u64>,
    read_bytes: usize,
    /// What of it was written to the primary (nothing if all was there already).
    stats: AppendStats,
    started: Stopwatch,
}

/// Written batches being made durable by one fsync of everything they wrote (group commit on
/// the primary), while the next batches are written.
pub(super) struct Syncing {
    task: tokio::task::JoinHandle<Result<Duration, IoFailure>>,
    batches: Vec<Batch>,
    /// The `latest/` entries this sync writes, handed back should it fail: its records may be
    /// durable all the same, and then nothing else would carry these entries again.
    latest: BTreeMap<String, Vec<u8>>,
}

type ReadTask = tokio::task::JoinHandle<Result<(Frames, Position), journal::JournalError>>;

/// A journal read started ahead of need, from `from`.
pub(super) struct Prefetch {
    from: Position,
    task: ReadTask,
}

/// Bounds of a batch's size in journal bytes; a fresh sync actor starts at [`BATCH_BYTES_START`].
const BATCH_BYTES_MIN: usize = 64 << 10;
pub(super) const BATCH_BYTES_START: usize = 4 << 20;
const BATCH_BYTES_MAX: usize = 32 << 20;
/// The most journal bytes one read takes: small enough that reading, writing and fsyncing
/// overlap finely, large enough that each costs few calls.
const READ_UNIT: usize = 4 << 20;
/// How often `latest/` is replaced during a long drain.
const LATEST_EVERY: Duration = Duration::from_secs(1);

impl SyncState {
    /// Reads the batch at `from` on a blocking thread.
    fn start_read(&mut self, from: Position, end: Position) -> ReadTask {
        let dir = self.args.storage.journal_dir().clone();
        let (batch, bytes) = (self.args.batch, self.batch_bytes.min(READ_UNIT));
        let spare = self.spare.take().unwrap_or_default();
        tokio::task::spawn_blocking(move || {
            journal::read_into(spare, &dir, from, end, batch, bytes)
        })
    }

    /// Sizes the unsynced bytes one fsync may cover (and so each read, up to [`READ_UNIT`])
    /// from how fast the primary went. Each fsync has a fixed cost, so a backlog drains fastest
    /// in large groups; but one operation must stay well inside `io_timeout`, or a slow but
    /// healthy primary is taken for a hung one. So the size becomes what the measured rate
    /// does in an eighth of `io_timeout`, between [`BATCH_BYTES_MIN`] and [`BATCH_BYTES_MAX`],
    /// and grows (at most eightfold) only from a sync that covered the whole size (`durable`):
    /// a short operation measures its rate poorly, and a write only fills the page cache.
    fn adapt_batch(&mut self, bytes: usize, took: Duration, durable: bool) {
        let aim = self.args.io_timeout / 8;
        let rate = bytes as f64 / took.as_secs_f64().max(1e-6);
        let fits = (rate * aim.as_secs_f64()) as usize;
        let next = if durable && bytes >= self.batch_bytes {
            fits.min(self.batch_bytes.saturating_mul(8))
        } else {
            fits.min(self.batch_bytes)
        };
        self.batch_bytes = next.clamp(BATCH_BYTES_MIN, BATCH_BYTES_MAX);
    }

    /// Reads our last ids back from the primary (after start or an outage).
    async fn load_ids(&mut self) -> Result<(), IoFailure> {
        let p = self.primary.clone();
        let ids = self
            .args
            .io
            .run(self.args.io_timeout, move || p.last_ids())
            .await?;
        // Before anything is forwarded, storage numbers above them (a fresh journal waits for
        // exactly this): an id of ours the primary holds is never handed out again. Other
        // nodes' ids need no seeding: an epoch has one writer, and ours numbers in its own.
        self.args.storage.seed(ids.clone()).await;
        self.last_ids = Some(ids);
        Ok(())
    }

    /// Forwards one batch; Ok(true) when more may be waiting. Batches go through a pipeline: a
    /// batch is read from the journal while the one before is written to the primary, and the
    /// batches written meanwhile are fsynced together while the next ones are written. A batch
    /// counts (ids, cursor, release) only once it is durable, and in order. Ok(false) comes only
    /// once nothing is in flight any more.
    pub(super) async fn forward_once(&mut self) -> Result<bool, IoFailure> {
        if self.last_ids.is_none() {
            self.load_ids().await?;
        }
        let info = *self.args.storage.info().borrow();
        if self.cursor < info.start {
            self.cursor = info.start;
        }
        // Segments released since: their counts no longer matter.
        self.passed = self.passed.split_off(&info.start.segment);
        // Reading goes on after the newest batch in flight, planned against the ids it leaves.
        let from = self.newest().map_or(self.cursor, |b| b.next);
        if from >= info.end {
            self.land_all().await?;
            if let Some(d) = self.drain.take() {
                self.complete(d);
            }
            // A release asked for while another ran was skipped: ask again.
            if self.cursor.segment > info.start.segment {
                self.release(self.cursor.segment);
            }
            self.maybe_clean(&info).await;
            return Ok(false);
        }
        let read = match self.prefetch.take() {
            Some(p) if p.from == from => p.task,
            _ => self.start_read(from, info.end),
        };
        let (mut frames, next) = read
            .await
            .map_err(|e| IoFailure::Failed(format!("journal reader failed: {e}")))?
            .map_err(|e| IoFailure::Failed(e.to_string()))?;
        let ids = match self.newest() {
            Some(b) => &b.expect,
            None => self.last_ids.as_ref().expect("loaded above"),
        };
        let superseded = self.args.storage.superseded();
        let mut plan = plan(ids, &superseded, &frames);
        if !plan.skipped.is_empty() {
            // "Already on the primary" is checked, not assumed: a reused id must not be skipped.
            let (p, skipped) = (self.primary.clone(), std::mem::take(&mut plan.skipped));
            let (conflicts, back) = self
                .args
                .io
                .run(self.args.io_timeout, move || {
                    p.not_held(&frames, &skipped).map(|c| (c, frames))
                })
                .await?;
            frames = back;
            if !conflicts.is_empty() {
                // Each colliding stream moves to new ids from its first collision on, order
                // kept; then this batch is read and planned again.
                let ids = match self.newest() {
                    Some(b) => b.expect.clone(),
                    None => self.last_ids.clone().unwrap_or_default(),
                };
                self.rehome(&frames, from, &conflicts, &ids).await?;
                self.prefetch = None;
                return Ok(true);
            }
        }
        // The next batch is read while this one is planned and written. A failure leaves the
        // cursor where it was, and the next call drops this read.
        if next < info.end {
            self.prefetch = Some(Prefetch {
                from: next,
                task: self.start_read(next, info.end),
            });
        }
        if let Some(d) = &mut self.drain {
            d.gaps += plan.gaps.len() as u64;
        }
        for gap in &plan.gaps {
            tracing::error!(
                actor = "sync",
                event = events::COLLECTOR_SYNC_GAP,
                stream = gap.stream.as_str(),
                expected = gap.expected,
                got = gap.got,
                "continuity broken: records missing from the journal"
            );
            self.args.audit.emit(events::COLLECTOR_SYNC_FAILED, Some("sync"),
                json!({"error": "gap", "stream": gap.stream, "epoch": gap.epoch, "expected": gap.expected, "got": gap.got}));
        }
        let Plan {
            to_send,
            last_ids: expect,
            ..
        } = plan;
        let mut batch = Batch {
            expect,
            next,
            passed: BTreeMap::new(),
            read_bytes: frames.size(),
            stats: AppendStats::default(),
            started: Stopwatch::start(),
        };
        for i in 0..frames.len() {
            *batch.passed.entry(frames.after(i).segment).or_default() += 1;
        }
        // What is written but not durable is bounded, so that one fsync of it stays well inside
        // io_timeout: past the bound, the running fsync must land first.
        let pending: usize = self.unsynced.iter().map(|(b, _)| b.read_bytes).sum();
        if pending >= self.batch_bytes {
            self.land().await?;
            self.start_sync(false);
        }
        let written = if to_send.is_empty() {
            self.spare = Some(frames);
            Written::default()
        } else {
            let p = self.primary.clone();
            let started = Stopwatch::start();
            let (written, frames) = self
                .args
                .io
                .run(self.args.io_timeout, move || {
                    p.write(&frames, &to_send).map(|w| (w, frames))
                })
                .await?;
            self.spare = Some(frames);
            // Writing fills the page cache, which says nothing about how fast the primary makes
            // it durable: a slow write only ever makes batches smaller.
            self.adapt_batch(batch.read_bytes, started.elapsed(), false);
            written
        };
        batch.stats = written.stats();
        self.unsynced.push((batch, written));
        if self.syncing.as_ref().is_none_or(|s| s.task.is_finished()) {
            self.land().await?;
            self.start_sync(false);
        }
        Ok(true)
    }

    /// Moves each stream with records in `conflicts` (ids the primary holds with other data) to
    /// new ids from its first such record on ([`StorageHandle::rehome`]), audited as
    /// `journal.conflict` and `journal.rehomed`. Should storage refuse, forwarding stops before
    /// them (health red) rather than skip them as forwarded.
    async fn rehome(
        &mut self,
        frames: &Frames,
        from: Position,
        conflicts: &[usize],
        primary_ids: &BTreeMap<String, (u64, u64)>,
    ) -> Result<(), IoFailure> {
        let mut firsts: Vec<usize> = Vec::new();
        for &i in conflicts {
            if !firsts
                .iter()
                .any(|&f| frames.stream_of(f) == frames.stream_of(i))
            {
                firsts.push(i);
            }
        }
        for i in firsts {
            let view = frames.get(i);
            let stream = view.stream.to_string();
            let count = conflicts
                .iter()
                .filter(|&&c| frames.stream_of(c) == frames.stream_of(i))
                .count();
            let at = if i == 0 { from } else { frames.after(i - 1) };
            let after = primary_ids.get(&stream).copied();
            match self.args.storage.rehome(&stream, at, after).await {
                // Nothing left to move (all of it superseded already): reading the batch again
                // would find the same collision, for ever.
                Ok(moved) if moved.records == 0 => return Err(self.conflict(frames, conflicts)),
                Ok(moved) => {
                    let new = moved.first.map(|(_, n)| format!("{}.{}", n.0, n.1));
                    tracing::warn!(actor = "sync", event = events::JOURNAL_REHOMED, stream = stream.as_str(),
                        epoch = view.epoch, seq = view.seq, moved = moved.records,
                        "journal record {}.{} of {stream:?} has an id the primary already holds with other data \
                         (a journal restored from an old copy, or a second writer): this stream's records from \
                         it on move to new ids from {}, in order", view.epoch, view.seq, new.as_deref().unwrap_or("-"));
                    self.args.audit.emit(
                        events::JOURNAL_CONFLICT,
                        Some("sync"),
                        json!({"stream": stream, "epoch": view.epoch, "seq": view.seq, "count": count}),
                    );
                    self.args.audit.emit(
                        events::JOURNAL_REHOMED,
                        Some("sync"),
                        json!({"stream": stream, "from": format!("{}.{}", view.epoch, view.seq),
                               "to": new, "records": moved.records}),
                    );
                }
                Err(e) => {
                    tracing::warn!(actor = "sync", event = events::JOURNAL_REHOME_FAILED, error = %e,
                        "cannot move colliding records to new ids");
                    return Err(self.conflict(frames, conflicts));
                }
            }
        }
        Ok(())
    }

    /// Reports records the journal holds under ids the primary holds with other data, and the
    /// failure that stops forwarding before the first of them.
    fn conflict(&mut self, frames: &Frames, conflicts: &[usize]) -> IoFailure {
        let first = frames.get(conflicts[0]);
        let msg = format!(
            "journal record {}.{} of stream {:?} (and {} more of this batch) has an id the primary \
             already holds with other data: two writers numbered the same ids (a journal restored \
             from an old copy, or a second node forwarding under this node's id); \
             forwarding stops before it so that neither is lost",
            first.epoch,
            first.seq,
            first.stream,
            conflicts.len() - 1
        );
        // Set and compared in one go on the board: a conflict seen again is not logged again.
        let mut fresh = false;
        let m = msg.clone();
        self.args.board.update_storage(|_, sync| {
            if sync.conflict.as_deref() != Some(m.as_str()) {
                sync.conflict = Some(m);
                fresh = true;
            }
        });
        if fresh {
            tracing::error!(
                actor = "sync",
                event = events::JOURNAL_CONFLICT,
                stream = first.stream,
                epoch = first.epoch,
                seq = first.seq,
                count = conflicts.len(),
                "{msg}"
            );
            self.args.audit.emit(
                events::JOURNAL_CONFLICT,
                Some("sync"),
                json!({"stream": first.stream, "epoch": first.epoch, "seq": first.seq,
                       "count": conflicts.len()}),
            );
        }
        IoFailure::Conflict(msg)
    }

    /// The newest batch read and not yet counted.
    fn newest(&self) -> Option<&Batch> {
        match self.unsynced.last() {
            Some((b, _)) => Some(b),
            None => self.syncing.as_ref().and_then(|s| s.batches.last()),
        }
    }

    /// Starts one fsync over every batch written and not yet being synced.
    ///
    /// `latest/` is replaced at most once a [`LATEST_EVERY`] during a drain and at its end
    /// (`last`), not with every group: it costs two fsyncs a stream, on the disk every group
    /// waits for. Its records are those of groups synced by then (or by this one).
    fn start_sync(&mut self, last: bool) {
        debug_assert!(self.syncing.is_none());
        let mut all = Written::default();
        let mut batches = Vec::with_capacity(self.unsynced.len());
        for (batch, mut written) in self.unsynced.drain(..) {
            self.latest.append(&mut written.take_latest());
            all.merge(written);
            batches.push(batch);
        }
        let latest_due = last || self.latest_at.elapsed() >= LATEST_EVERY;
        let mut latest = BTreeMap::new();
        if latest_due && !self.latest.is_empty() {
            latest = std::mem::take(&mut self.latest);
            all.add_latest(latest.clone());
            self.latest_at = Instant::now();
        } else if batches.is_empty() {
            return;
        }
        let (p, io, timeout) = (
            self.primary.clone(),
            self.args.io.clone(),
            self.args.io_timeout,
        );
        let task = tokio::spawn(async move {
            let started = Stopwatch::start();
            io.run_on(Lane::Sync, timeout, move || p.sync(all)).await?;
            Ok(started.elapsed())
        });
        self.syncing = Some(Syncing {
            task,
            batches,
            latest,
        });
    }

    /// Waits for the running fsync, if any, and counts its batches.
    async fn land(&mut self) -> Result<(), IoFailure> {
        let Some(Syncing {
            task,
            batches,
            latest,
        }) = self.syncing.take()
        else {
            return Ok(());
        };
        let synced = task
            .await
            .map_err(|e| IoFailure::Failed(format!("primary sync task failed: {e}")))
            .and_then(|r| r);
        let took = match synced {
            Ok(took) => took,
            Err(e) => {
                // Newer entries, from batches written since, win.
                for (stream, line) in latest {
                    self.latest.entry(stream).or_insert(line);
                }
                return Err(e);
            }
        };
        // A group that wrote nothing measured nothing.
        if batches.iter().any(|b| b.stats.items > 0) {
            let bytes = batches.iter().map(|b| b.read_bytes).sum();
            self.adapt_batch(bytes, took, true);
        }
        for batch in batches {
            self.commit(batch);
        }
        Ok(())
    }

    /// Makes every written batch durable and counts them.
    async fn land_all(&mut self) -> Result<(), IoFailure> {
        self.land().await?;
        self.start_sync(true);
        self.land().await
    }

    /// After a failure: counts what became durable, and has what was written and not synced
    /// synced in the background, uncounted. Its lines may already be visible on the primary,
    /// where the ids read back before forwarding resumes would count them; and a sync that
    /// hangs counts as stuck, which holds forwarding back until it is done.
    pub(super) async fn abandon(&mut self) {
        let _ = self.land().await;
        if self.unsynced.is_empty() && self.latest.is_empty() {
            return;
        }
        let mut all = Written::default();
        for (_, mut written) in self.unsynced.drain(..) {
            self.latest.append(&mut written.take_latest());
            all.merge(written);
        }
        // Kept as well: this sync may fail too, and the next drain's end writes them again.
        all.add_latest(self.latest.clone());
        let (p, io, timeout) = (
            self.primary.clone(),
            self.args.io.clone(),
            self.args.io_timeout,
        );
        tokio::spawn(async move {
            if let Err(e) = io.run_on(Lane::Sync, timeout, move || p.sync(all)).await {
                tracing::warn!(actor = "sync", event = events::COLLECTOR_SYNC_FAILED, error = %e,
                    "cannot sync a batch written before a failure; its records are sent again if missing");
            }
        });
    }

    /// A batch is durable on the primary (or was there already): its ids, cursor and segments
    /// count from now on.
    fn commit(&mut self, batch: Batch) {
        let (items, bytes) = (batch.stats.items as u64, batch.stats.bytes as u64);
        let elapsed_ms = batch.started.elapsed().as_millis() as u64;
        self.last_ids = Some(batch.expect);
        for (segment, n) in batch.passed {
            *self.passed.entry(segment).or_default() += n;
        }
        self.cursor = batch.next;
        self.retry_delay = RETRY_MIN;
        let reached = self.drain.as_ref().map(|d| self.cursor >= d.target);
        if items > 0 {
            self.args.board.count_forwarded(items);
            self.args.board.update_storage(|_, sync| {
                sync.last = Some(SyncRun {
                    at: clock::now_rfc3339(),
                    items,
                    bytes,
                    ok: true,
                })
            });
            if let Some(d) = &mut self.drain {
                d.items += items;
                d.bytes += bytes;
                self.args.audit.emit(
                    events::COLLECTOR_SYNC_CHUNK,
                    Some("sync"),
                    json!({"items": items, "bytes": bytes, "elapsed_ms": elapsed_ms}),
                );
            }
        }
        if reached == Some(true) {
            if let Some(d) = self.drain.take() {
                self.complete(d);
            }
        }
        let start = self.args.storage.info().borrow().start;
        if self.cursor.segment > start.segment {
            self.release(self.cursor.segment);
        }
    }

    /// Deletes the journal's segments before `cut`, all of whose records are on the primary, in
    /// the background: forwarding goes on meanwhile, and the journal's info shows the result.
    /// One release runs at a time; a later batch asks again with a later cut.
    fn release(&mut self, cut: u64) {
        if self.releasing.as_ref().is_some_and(|t| !t.0.is_finished()) {
            return;
        }
        let storage = self.args.storage.clone();
        self.releasing = Some(AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = storage.release_before(cut).await {
                tracing::warn!(actor = "sync", event = events::JOURNAL_RELEASE_FAILED, error = %e, "cannot release forwarded segments");
            }
        })));
    }
}
