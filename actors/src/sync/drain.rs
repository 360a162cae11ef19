//! A backlog drain's bookkeeping: planned when the primary is found up with records waiting, audited as plan, start and complete (`collector.sync.*`).

use super::SyncState;
use crate::clock::Stopwatch;
use crate::events;
use crate::journal::Position;
use serde_json::json;

/// A backlog drain in progress (after an outage or at start): audited as plan/start/chunk/complete.
pub(super) struct Drain {
    pub(super) started: Stopwatch,
    /// The journal's end when the drain was planned: reaching it completes the drain, however
    /// much arrived since (under steady ingest the journal is never empty at a tick).
    pub(super) target: Position,
    pub(super) items: u64,
    pub(super) bytes: u64,
    /// Continuity breaks the per-batch check saw while draining.
    pub(super) gaps: u64,
}

impl SyncState {
    pub(super) fn plan(&mut self) {
        let info = *self.args.storage.info().borrow();
        let lag = self.lag(&info);
        if lag == 0 || self.drain.is_some() {
            return;
        }
        self.args.audit.emit(
            events::COLLECTOR_SYNC_PLAN,
            Some("sync"),
            json!({"items": lag, "bytes": info.bytes}),
        );
        self.args.audit.emit(
            events::COLLECTOR_SYNC_START,
            Some("sync"),
            json!({"items": lag}),
        );
        tracing::info!(
            actor = "sync",
            event = events::COLLECTOR_SYNC_START,
            items = lag,
            "draining the journal to the primary"
        );
        self.drain = Some(Drain {
            started: Stopwatch::start(),
            target: info.end,
            items: 0,
            bytes: 0,
            gaps: 0,
        });
    }

    pub(super) fn complete(&mut self, d: Drain) {
        let elapsed_ms = d.started.elapsed().as_millis() as u64;
        tracing::info!(
            actor = "sync",
            event = events::COLLECTOR_SYNC_COMPLETE,
            items = d.items,
            bytes = d.bytes,
            elapsed_ms,
            gaps = d.gaps,
            "journal drained to the primary"
        );
        // `gaps`: continuity breaks seen batch by batch; `verified` only when there were none.
        self.args.audit.emit(
            events::COLLECTOR_SYNC_COMPLETE,
            Some("sync"),
            json!({"items": d.items, "bytes": d.bytes, "elapsed_ms": elapsed_ms,
                   "gaps": d.gaps, "verified": d.gaps == 0}),
        );
    }
}
