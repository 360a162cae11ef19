//! What waits in the journal for the primary, stream by stream: the survey behind `fushi sync --plan`.
//!
//! It reads the journal from the sync cursor to its end and applies the forwarding rule
//! ([`crate::sync::plan`]) to it, so that it counts what the next sync would send, not merely
//! what is on disk: records the primary holds already, or that a rehome moved, are counted apart.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

use super::plan::plan;
use crate::board::PrimaryState;
use crate::journal::{self, Frames, JournalError, Position};
use crate::storage::Superseded;

/// One stream's part of the backlog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamBacklog {
    pub stream: String,
    /// Records the next sync sends.
    pub records: u64,
    /// Their size as lines on the primary.
    pub bytes: u64,
    /// The first and last of them, as `epoch.seq`.
    pub first: String,
    pub last: String,
    /// The `ts` of the first of them: how long the stream has waited.
    pub oldest_ts: String,
    /// The stream's last id on the primary (`None`: it has none, or it was not read yet).
    pub on_primary: Option<String>,
}

/// The whole backlog, as the sync actor sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backlog {
    pub streams: Vec<StreamBacklog>,
    /// Records the primary holds already (sent before a crash): they are skipped.
    pub already_there: u64,
    /// Records a rehome moved to new ids: their copies, further on, go instead.
    pub superseded: u64,
    /// Whether the primary's last ids are current: if not (the primary is down), the survey
    /// went by the ones last known, or none if they were never read.
    pub primary_ids_known: bool,
    /// The primary as the sync actor last probed it.
    pub primary: PrimaryState,
    /// How long until the next attempt to forward (0: at the next tick); `sync --now` skips it.
    pub next_attempt_ms: u64,
}

/// How many journal bytes one read of the survey takes: the survey never holds more.
const READ_BYTES: usize = 4 << 20;

fn id(e: u64, s: u64) -> String {
    format!("{e}.{s}")
}

/// Surveys the journal in `dir` from `from` to `end` against the primary's `last_ids`; blocking.
pub fn survey(
    dir: &Path,
    from: Position,
    end: Position,
    last_ids: &BTreeMap<String, (u64, u64)>,
    superseded: &Superseded,
) -> Result<Backlog, JournalError> {
    let mut out = Backlog::default();
    let mut by_stream: BTreeMap<String, StreamBacklog> = BTreeMap::new();
    let mut ids = last_ids.clone();
    let mut pos = from;
    let mut frames = Frames::default();
    while pos < end {
        let (read, next) = journal::read_into(frames, dir, pos, end, usize::MAX, READ_BYTES)?;
        frames = read;
        if frames.is_empty() || next <= pos {
            break;
        }
        let p = plan(&ids, superseded, &frames);
        out.already_there += p.skipped.len() as u64;
        let streams = frames.streams();
        for &i in &p.to_send {
            let (e, s) = frames.id(i);
            let name = &streams[frames.stream_of(i)];
            let b = by_stream
                .entry(name.clone())
                .or_insert_with(|| StreamBacklog {
                    stream: name.clone(),
                    first: id(e, s),
                    oldest_ts: String::from_utf8_lossy(frames.ts_bytes(i)).into_owned(),
                    on_primary: last_ids.get(name).map(|&(e, s)| id(e, s)),
                    ..Default::default()
                });
            b.records += 1;
            // The line and its newline, as the primary stores it.
            b.bytes += frames.line(i).len() as u64 + 1;
            b.last = id(e, s);
        }
        out.superseded += (frames.len() - p.to_send.len() - p.skipped.len()) as u64;
        ids = p.last_ids;
        pos = next;
    }
    out.streams = by_stream.into_values().collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Journal;
    use crate::records::Record;
    use std::time::Duration;

    fn pending(stream: &str, k: u64) -> Record {
        Record {
            stream: stream.into(),
            ts: "2026-12-01T10:00:00.000Z".into(),
            data: serde_json::json!({ "k": k }),
        }
    }

    #[test]
    fn counts_what_the_next_sync_sends_per_stream_and_what_it_skips() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), 1 << 20, Duration::from_secs(1))
            .unwrap()
            .0;
        let recs: Vec<_> = (1..=5)
            .map(|k| pending("a", k))
            .chain((1..=3).map(|k| pending("b", k)))
            .collect();
        j.append(1, "n", &recs).unwrap();
        let ids = BTreeMap::from([("a".to_string(), (1, 2))]);
        let none = Superseded::default();
        let b = survey(dir.path(), j.start(), j.end(), &ids, &none).unwrap();
        assert_eq!((b.already_there, b.superseded), (2, 0));
        assert_eq!(b.streams.len(), 2);
        let a = &b.streams[0];
        assert_eq!((a.stream.as_str(), a.records), ("a", 3));
        assert_eq!((a.first.as_str(), a.last.as_str()), ("1.3", "1.5"));
        assert_eq!(a.on_primary.as_deref(), Some("1.2"));
        assert_eq!(a.oldest_ts, "2026-12-01T10:00:00.000Z");
        assert!(a.bytes > 3 * 20, "{a:?}");
        let bb = &b.streams[1];
        assert_eq!(
            (bb.records, bb.first.as_str(), bb.on_primary.as_deref()),
            (3, "1.1", None)
        );
        // Nothing from the end on.
        let empty = survey(dir.path(), j.end(), j.end(), &ids, &none).unwrap();
        assert!(empty.streams.is_empty() && empty.already_there == 0);
    }
}
