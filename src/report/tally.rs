//! The record tally, Jepsen-style: every id this node made durable, held by the primary, still waiting in the journal, or neither (lost); and the primary's lines of it more than once.
//!
//! A node numbers each stream's records `epoch.seq`, seqs from 1 without holes within an epoch,
//! and only once the record is durable in its journal (a failed append numbers nothing). So
//! seqs 1 to the highest one seen for an epoch — in the journal, on the primary, or in the
//! journal's saved last ids — are exactly the records it acknowledged, and each must be on the
//! primary or still in the journal. The journal is read before the primary: a record forwarded
//! and released in between is then on the primary when it is read, so a running daemon is never
//! caught with a record in neither place that is only in transit.

use anyhow::Context;
use fushi_actors::primary::{EpochCoverage, Primary};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Seqs as disjoint inclusive runs, keyed by start.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Seqs(BTreeMap<u64, u64>);

impl Seqs {
    pub fn insert(&mut self, seq: u64) {
        if self.contains(seq) {
            return;
        }
        let left = seq
            .checked_sub(1)
            .and_then(|p| self.0.range(..=p).next_back().filter(|(_, &e)| e == p))
            .map(|(&s, _)| s);
        let right_end = seq.checked_add(1).and_then(|n| self.0.remove(&n));
        let end = right_end.unwrap_or(seq);
        match left {
            Some(s) => {
                self.0.insert(s, end);
            }
            None => {
                self.0.insert(seq, end);
            }
        }
    }

    pub fn contains(&self, seq: u64) -> bool {
        self.0
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, &e)| e >= seq)
    }

    pub fn max(&self) -> u64 {
        self.0.last_key_value().map_or(0, |(_, &e)| e)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Records {
    /// Records the collectors counted as taken in (status.json's per-actor `records`).
    pub received: u64,
    /// Ids this node numbered: durable in its journal before they were acknowledged.
    pub durable: u64,
    /// Of those, on the primary.
    pub forwarded: Option<u64>,
    /// Of those, not on the primary yet but in the journal.
    pub pending: u64,
    /// Of those, in neither place.
    pub lost: Option<u64>,
    /// Lines on the primary of an id of this node's already held there.
    pub duplicated: Option<u64>,
    /// Why the primary's side is unknown, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_error: Option<String>,
    /// Lost ids, first few, as `stream epoch.seq..seq`, for the person who has to look.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lost_ids: Vec<String>,
}

/// Reading a large store takes time; a hung NAS would take forever.
pub const PRIMARY_READ_TIMEOUT: Duration = Duration::from_secs(60);

type Key = (String, u64);

/// The tally of `node`'s records; `received` comes from status.json, read by the caller.
pub fn tally(node: &str, journal: &Path, primary: &Path) -> anyhow::Result<Records> {
    let mut held: BTreeMap<Key, Seqs> = BTreeMap::new();
    if journal.exists() {
        fushi_actors::journal::each_held(journal, |stream, epoch, seq| {
            held.entry((stream.to_string(), epoch))
                .or_default()
                .insert(seq);
        })
        .with_context(|| format!("reading the journal {}", journal.display()))?;
    }
    let mut top: BTreeMap<Key, u64> = BTreeMap::new();
    for (stream, (epoch, seq)) in fushi_actors::storage::read_ids(journal).unwrap_or_default() {
        top.insert((stream, epoch), seq);
    }
    for (k, s) in &held {
        let t = top.entry(k.clone()).or_default();
        *t = (*t).max(s.max());
    }
    let on_primary = read_primary(primary, node);
    let mut r = Records::default();
    let coverage = match on_primary {
        Ok(c) => c,
        Err(e) => {
            r.primary_error = Some(e);
            BTreeMap::new()
        }
    };
    for (k, c) in &coverage {
        let t = top.entry(k.clone()).or_default();
        *t = (*t).max(c.max_seq());
    }
    let (mut forwarded, mut lost, mut duplicated) = (0u64, 0u64, 0u64);
    let empty = Seqs::default();
    for (k, &max) in &top {
        r.durable += max;
        let j = held.get(k).unwrap_or(&empty);
        let p = coverage.get(k);
        if let Some(p) = p {
            forwarded += p.held();
            duplicated += p.duplicates;
        }
        // Walk 1..=max once by runs: on the primary, else in the journal, else lost.
        let mut seq = 1u64;
        while seq <= max {
            if p.is_some_and(|p| p.contains(seq)) {
                seq += 1;
                continue;
            }
            if j.contains(seq) {
                r.pending += 1;
            } else {
                lost += 1;
                if r.lost_ids.len() < 10 {
                    r.lost_ids.push(format!("{} {}.{seq}", k.0, k.1));
                }
            }
            seq += 1;
        }
    }
    if r.primary_error.is_none() {
        r.forwarded = Some(forwarded);
        r.lost = Some(lost);
        r.duplicated = Some(duplicated);
    }
    Ok(r)
}

/// The primary's holdings of `node`'s epochs, on a thread of its own under
/// [`PRIMARY_READ_TIMEOUT`].
fn read_primary(root: &Path, node: &str) -> Result<BTreeMap<Key, EpochCoverage>, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = root.to_path_buf();
    std::thread::Builder::new()
        .name("fushi-report-primary".into())
        .spawn(move || {
            let _ = tx.send(Primary::new(&path).verify());
        })
        .map_err(|e| format!("starting a reader thread: {e}"))?;
    let report = match rx.recv_timeout(PRIMARY_READ_TIMEOUT) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(format!("cannot read the primary {}: {e}", root.display())),
        Err(_) => {
            return Err(format!(
                "the primary {} did not answer within {}s (a hung NAS?)",
                root.display(),
                PRIMARY_READ_TIMEOUT.as_secs()
            ))
        }
    };
    Ok(report
        .coverage
        .into_iter()
        .filter(|c| c.node == node)
        .map(|c| ((c.stream.clone(), c.epoch), c))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqs_merge_into_runs_in_any_order() {
        let mut s = Seqs::default();
        for q in [5, 1, 3, 2, 4, 9, 7, 8, 3] {
            s.insert(q);
        }
        assert_eq!(s.0, std::collections::BTreeMap::from([(1, 5), (7, 9)]));
        assert!(s.contains(8) && !s.contains(6) && !s.contains(10));
        assert_eq!(s.max(), 9);
    }
}
