//! The record sink: where collectors hand their records to storage, through a handle that survives storage's restarts, and where what they hand in is counted.

use crate::board::StatusBoard;
use crate::lease::{Lease, NotLeading};
use crate::records::{keepable, Record, RecordId, QUARANTINE};
use crate::storage::StorageHandle;

/// Where collectors hand their records: storage, through a handle that survives its restarts.
#[derive(Clone)]
pub struct RecordSink {
    board: StatusBoard,
    storage: StorageHandle,
    /// With leader election: records are taken in only while it is valid.
    lease: Option<Lease>,
}

impl RecordSink {
    pub fn new(board: StatusBoard, storage: StorageHandle) -> Self {
        Self {
            board,
            storage,
            lease: None,
        }
    }

    /// Takes records in only while `lease` is valid (with leader election).
    pub fn with_lease(mut self, lease: Lease) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Whether records are taken in now: always without leader election.
    pub fn leading(&self) -> bool {
        self.lease.as_ref().is_none_or(Lease::valid)
    }

    /// Where collectors count what never becomes a record of their stream.
    pub fn board(&self) -> &StatusBoard {
        &self.board
    }

    /// The last durable id of `stream`, once every record handed in before is durable.
    pub async fn last_id(&self, stream: &str) -> Option<RecordId> {
        self.storage.last_id(stream).await
    }

    /// Returns once the records are durable in the journal (the moment they may be acknowledged),
    /// however long storage holds producers back; refuses them, storing nothing, when this node
    /// does not hold the leader lease (see [`crate::lease`]).
    pub async fn submit(
        &self,
        collector: &str,
        records: Vec<Record>,
    ) -> Result<Vec<RecordId>, NotLeading> {
        if !self.leading() {
            return Err(NotLeading);
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let n = records.len() as u64;
        let pending: Vec<Record> = records
            .into_iter()
            .map(|r| keepable(collector, r))
            .collect();
        let quarantined = pending.iter().filter(|p| p.stream == QUARANTINE).count() as u64;
        let asked = tokio::time::Instant::now();
        let stored = self.storage.append(pending).await;
        self.board.observe_ack(asked.elapsed(), n);
        self.board.add_records(collector, n);
        if quarantined > 0 {
            self.board.quarantined(collector, quarantined);
        }
        Ok(stored)
    }
}
