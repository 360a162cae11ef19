//! Where the analyzer's records come from: the journal (every record this node stores, read from a position like the sync actor does) and, at a start, the primary's day files for what was already forwarded and released.
//!
//! Both readers block (files, and a NAS that may hang): the actor runs them on the blocking pool
//! under a timeout.

use serde_json::Value;
use std::collections::HashSet;
use std::io::BufRead;
use std::path::Path;

use crate::journal::{self, JournalError, Position};
use crate::records::StoredRecord;
use crate::storage::Superseded;

/// One record of a watched stream, in storage order.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub stream: String,
    pub id: (u64, u64),
    pub ts: String,
    pub data: Value,
}

/// Frames per journal read, and the bytes they may take.
const READ_FRAMES: usize = 10_000;
const READ_BYTES: usize = 8 << 20;

/// The records of `streams` in the journal from `from` to `end` (skipping frames a rehome
/// superseded: their copies follow), and where the reading stopped.
pub fn journal(
    dir: &Path,
    from: Position,
    end: Position,
    streams: &HashSet<String>,
    superseded: &Superseded,
) -> Result<(Vec<Item>, Position), JournalError> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos < end {
        let (frames, next) = journal::read(dir, pos, end, READ_FRAMES, READ_BYTES)?;
        for i in 0..frames.len() {
            let f = frames.get(i);
            if !streams.contains(f.stream) || superseded.contains(&frames.after(i)) {
                continue;
            }
            if let Some(r) = f.record() {
                out.push(Item {
                    stream: r.stream,
                    id: (r.epoch, r.seq),
                    ts: r.ts,
                    data: r.data,
                });
            }
        }
        if next == pos {
            // Nothing more decodes before `end` (a reader racing a rotation): next time.
            break;
        }
        pos = next;
    }
    Ok((out, pos))
}

/// The records of `stream` on the primary at `root` from the day of `from_day` (`YYYY-MM-DD`)
/// on whose `ts` is at `from_ts_ms` or later. A missing stream directory holds none.
pub fn primary(
    root: &Path,
    stream: &str,
    from_day: &str,
    from_ts_ms: i64,
) -> std::io::Result<Vec<Item>> {
    let dir = root.join("raw").join(stream);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut days: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".jsonl") && n.as_str() >= from_day)
        .collect();
    days.sort();
    let mut out = Vec::new();
    for day in days {
        let file = std::fs::File::open(dir.join(&day))?;
        for line in std::io::BufReader::new(file).lines() {
            let Ok(r) = serde_json::from_str::<StoredRecord>(&line?) else {
                // `fushi verify` reports such lines; they are no record to judge.
                continue;
            };
            if super::window::parse_ts(&r.ts).is_some_and(|t| t >= from_ts_ms) {
                out.push(Item {
                    stream: r.stream,
                    id: (r.epoch, r.seq),
                    ts: r.ts,
                    data: r.data,
                });
            }
        }
    }
    Ok(out)
}
