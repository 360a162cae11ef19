//! Records as collectors emit them (SPEC §4.1), how an input line becomes one, and the sink that makes them durable.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::board::StatusBoard;
use crate::clock;
use crate::journal::Pending;
use crate::storage::{RecordId, StorageHandle};

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

/// Where collectors hand their records: storage, through a handle that survives its restarts.
#[derive(Clone)]
pub struct RecordSink {
    board: StatusBoard,
    storage: StorageHandle,
}

impl RecordSink {
    pub fn new(board: StatusBoard, storage: StorageHandle) -> Self {
        Self { board, storage }
    }

    /// Returns once the records are durable in the journal (the moment they may be acknowledged),
    /// however long storage holds producers back.
    pub async fn submit(&self, collector: &str, records: Vec<Record>) -> Vec<RecordId> {
        if records.is_empty() {
            return Vec::new();
        }
        let n = records.len() as u64;
        let pending = records
            .into_iter()
            .map(|r| Pending {
                stream: r.stream,
                ts: r.ts,
                data: r.data,
            })
            .collect();
        let stored = self.storage.append(pending).await;
        self.board.add_records(collector, n);
        stored
    }
}

/// The stream bad input goes to (SPEC §5): kept, counted and visible, never silently dropped.
pub const QUARANTINE: &str = "_quarantine";

/// One input line as a collector read it: its bytes, or the length of a line over the limit.
pub type Line = Result<Vec<u8>, usize>;

/// Turns an input line into a record for `stream`. JSON stays itself; other text becomes
/// `{"line": …}` unless `json_only`; an over-long line, invalid UTF-8 or (with `json_only`)
/// invalid JSON goes to [`QUARANTINE`] and the reason is returned beside it.
pub fn from_line(
    collector: &str,
    stream: &str,
    line: Line,
    max: usize,
    json_only: bool,
) -> (Record, Option<String>) {
    let ts = clock::now_rfc3339();
    let bad = |error: String, text: Option<String>| {
        let mut data =
            serde_json::json!({"collector": collector, "stream": stream, "error": error});
        if let Some(t) = text {
            data["line"] = Value::String(t);
        }
        (
            Record {
                stream: QUARANTINE.into(),
                ts: ts.clone(),
                data,
            },
            Some(error),
        )
    };
    let bytes = match line {
        Err(len) => {
            return bad(
                format!("line of {len} bytes exceeds max_record_bytes ({max})"),
                None,
            )
        }
        Ok(b) => b,
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            return bad("invalid UTF-8".into(), Some(lossy));
        }
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(data) => (
            Record {
                stream: stream.into(),
                ts,
                data,
            },
            None,
        ),
        Err(e) if json_only => bad(format!("invalid JSON: {e}"), Some(text)),
        Err(_) => (
            Record {
                stream: stream.into(),
                ts,
                data: serde_json::json!({ "line": text }),
            },
            None,
        ),
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
    use super::*;

    #[test]
    fn lines_become_records_or_quarantine() {
        let (r, e) = from_line("c", "s", Ok(br#"{"a":1}"#.to_vec()), 100, true);
        assert_eq!(
            (r.stream.as_str(), r.data["a"].as_i64(), e),
            ("s", Some(1), None)
        );
        let (r, e) = from_line("c", "s", Ok(b"plain text".to_vec()), 100, false);
        assert_eq!(
            (r.stream.as_str(), r.data["line"].as_str(), e),
            ("s", Some("plain text"), None)
        );
        let (r, e) = from_line("c", "s", Ok(b"plain text".to_vec()), 100, true);
        assert_eq!(r.stream, QUARANTINE);
        assert!(e.unwrap().starts_with("invalid JSON"));
        assert_eq!(r.data["line"], "plain text");
        let (r, e) = from_line("c", "s", Ok(vec![b'"', 0xff, b'"']), 100, false);
        assert_eq!(
            (r.stream.as_str(), e.as_deref()),
            (QUARANTINE, Some("invalid UTF-8"))
        );
        let (r, e) = from_line("c", "s", Err(5000), 100, false);
        assert_eq!(r.stream, QUARANTINE);
        assert_eq!(
            e.unwrap(),
            "line of 5000 bytes exceeds max_record_bytes (100)"
        );
        assert!(valid_stream(QUARANTINE));
    }

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
