//! The forwarding rule: which records of a batch read from the journal go to the primary, given this node's last ids there.
//!
//! The ids compared against are ours only ([`Primary::last_ids`]): on a primary several nodes
//! share, another node's lines interleave with ours, but our journal holds only our records, in
//! (epoch, seq) order per stream, and so does the primary of our lines; so "at or below our last
//! id" is "sent before", whatever other nodes wrote since.
//!
//! [`Primary::last_ids`]: crate::primary::Primary::last_ids

use std::collections::BTreeMap;

use crate::journal::Frames;
use crate::storage::Superseded;

/// A hole in a stream's seq within one epoch, seen while forwarding.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    pub stream: String,
    pub epoch: u64,
    pub expected: u64,
    pub got: u64,
}

/// What to send of a batch read from the journal, given our last ids on the primary.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Which records of the batch to send, by index, in order.
    pub to_send: Vec<usize>,
    /// Our last ids once `to_send` is on the primary.
    pub last_ids: BTreeMap<String, (u64, u64)>,
    pub gaps: Vec<Gap>,
    /// Records at or below our last id of their stream on the primary, by index: sent before,
    /// if the primary holds them as they are ([`Primary::not_held`] checks).
    ///
    /// [`Primary::not_held`]: crate::primary::Primary::not_held
    pub skipped: Vec<usize>,
}

/// The forwarding rule: records at or below our last id of a stream on the primary are skipped
/// (so a resend after a crash duplicates nothing), and so are records a rehome moved to new ids
/// (`superseded`: their copies follow); anything else is sent in journal order, and a seq that
/// does not follow its predecessor in the same epoch is reported as a gap.
pub fn plan(
    last_ids: &BTreeMap<String, (u64, u64)>,
    superseded: &Superseded,
    frames: &Frames,
) -> Plan {
    let streams = frames.streams();
    let mut last: Vec<Option<(u64, u64)>> =
        streams.iter().map(|s| last_ids.get(s).copied()).collect();
    let mut to_send = Vec::new();
    let mut gaps = Vec::new();
    let mut skipped = Vec::new();
    for i in 0..frames.len() {
        let (epoch, seq) = frames.id(i);
        let stream = frames.stream_of(i);
        // Moved to new ids further on (a rehome): its copy is what goes.
        if !superseded.is_empty() && superseded.contains(&frames.after(i)) {
            continue;
        }
        let expected = match last[stream] {
            Some(prev) if prev >= (epoch, seq) => {
                skipped.push(i);
                continue;
            }
            Some((e, s)) if e == epoch => s + 1,
            Some(_) => seq,
            None => 1,
        };
        if seq != expected {
            gaps.push(Gap {
                stream: streams[stream].clone(),
                epoch,
                expected,
                got: seq,
            });
        }
        last[stream] = Some((epoch, seq));
        to_send.push(i);
    }
    let mut ids = last_ids.clone();
    for (stream, id) in streams.iter().zip(last) {
        if let Some(id) = id {
            ids.insert(stream.clone(), id);
        }
    }
    Plan {
        to_send,
        last_ids: ids,
        gaps,
        skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal;
    use crate::records::StoredRecord;

    fn rec(stream: &str, epoch: u64, seq: u64) -> StoredRecord {
        StoredRecord::new(
            epoch,
            seq,
            "t".into(),
            stream.into(),
            "n".into(),
            serde_json::json!(null),
        )
    }

    #[test]
    fn plan_skips_what_the_primary_has_and_reports_gaps() {
        let last = BTreeMap::from([("a".to_string(), (1, 2))]);
        let recs = [
            rec("a", 1, 1),
            rec("a", 1, 2),
            rec("a", 1, 3),
            rec("a", 1, 5),
            rec("b", 1, 1),
            rec("a", 2, 1),
        ];
        let frames = journal::Frames::of(&recs).unwrap();
        let p = plan(&last, &Superseded::default(), &frames);
        let sent: Vec<_> = p
            .to_send
            .iter()
            .map(|&i| (recs[i].stream.as_str(), recs[i].id.as_str()))
            .collect();
        assert_eq!(
            sent,
            [("a", "1.3"), ("a", "1.5"), ("b", "1.1"), ("a", "2.1")]
        );
        assert_eq!(
            p.gaps,
            [Gap {
                stream: "a".into(),
                epoch: 1,
                expected: 4,
                got: 5
            }]
        );
        assert_eq!(p.last_ids["a"], (2, 1));
        assert_eq!(p.last_ids["b"], (1, 1));
        let again = plan(&p.last_ids, &Superseded::default(), &frames);
        assert!(
            again.to_send.is_empty() && again.gaps.is_empty(),
            "a resend sends nothing"
        );
    }
}
