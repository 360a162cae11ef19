//! Records as collectors emit them (SPEC §4.1), and the sink they are handed to.
//!
//! Until the storage actor lands, the sink counts records per collector on the status board and
//! logs them at debug level; collectors only see [`RecordSink::accept`], so storage slots in here.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::board::StatusBoard;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub stream: String,
    pub ts: String,
    pub data: Value,
}

/// A record after storage gave it its id `<epoch>.<seq>`: what the journal holds and what
/// becomes one line of `raw/<stream>/<YYYY-MM-DD>.jsonl` on the primary (fields in SPEC order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub id: String,
    pub epoch: u64,
    pub seq: u64,
    pub ts: String,
    pub stream: String,
    pub node: String,
    pub data: Value,
}

impl StoredRecord {
    pub fn new(
        epoch: u64,
        seq: u64,
        ts: String,
        stream: String,
        node: String,
        data: Value,
    ) -> Self {
        Self {
            id: format!("{epoch}.{seq}"),
            epoch,
            seq,
            ts,
            stream,
            node,
            data,
        }
    }
}

#[derive(Clone)]
pub struct RecordSink {
    board: StatusBoard,
}

impl RecordSink {
    pub fn new(board: StatusBoard) -> Self {
        Self { board }
    }

    pub fn accept(&self, collector: &str, record: Record) {
        tracing::debug!(actor = collector, stream = record.stream.as_str(), event = "record", data = %record.data, "record");
        self.board.add_records(collector, 1);
    }
}

/// Whether `s` is a valid stream name: `/`-joined segments of `[A-Za-z0-9._-]`, ≤ 128 bytes,
/// no `.` or `..` segment (no path escapes).
pub fn valid_stream(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

#[cfg(test)]
mod tests {
    use super::valid_stream;

    #[test]
    fn stream_names() {
        for ok in ["binance/trades", "a", "a.b-c_d/e", &"x".repeat(128)] {
            assert!(valid_stream(ok), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "../etc",
            "a/./b",
            "a b",
            "ä",
            &"x".repeat(129),
        ] {
            assert!(!valid_stream(bad), "{bad}");
        }
    }
}
