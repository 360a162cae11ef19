//! `fushi verify`: every stream's continuity on the primary (ascending seq per epoch, no gaps, no duplicates, one writer per epoch), reported in runs so that a bad day cannot flood the report.
//!
//! Several nodes' lines interleave in one stream (a new leader's, and a fenced one's late
//! records of an older epoch after them), so an epoch lower than an earlier line's is no
//! problem; each epoch is checked on its own, on the lines of the node that wrote its first.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

use crate::records::StoredRecord;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

/// What `fushi verify` prints: per-stream summaries and every problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub root: PathBuf,
    pub records: u64,
    pub streams: Vec<StreamSummary>,
    pub problems: Vec<Problem>,
    /// Which seqs of each (stream, epoch) the store holds, for `fushi report`'s record tally
    /// against the journal; not printed.
    #[serde(skip)]
    pub coverage: Vec<EpochCoverage>,
}

/// The seqs of one epoch of one stream that the store holds, as inclusive runs in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochCoverage {
    pub stream: String,
    pub epoch: u64,
    /// The epoch's writer (the node of its first line).
    pub node: String,
    pub spans: Vec<(u64, u64)>,
    /// Lines of the epoch whose id was already held.
    pub duplicates: u64,
}

impl EpochCoverage {
    /// How many distinct seqs are held.
    pub fn held(&self) -> u64 {
        self.spans.iter().map(|(a, b)| b - a + 1).sum()
    }

    pub fn contains(&self, seq: u64) -> bool {
        let i = self.spans.partition_point(|&(a, _)| a <= seq);
        i > 0 && self.spans[i - 1].1 >= seq
    }

    pub fn max_seq(&self) -> u64 {
        self.spans.last().map_or(0, |s| s.1)
    }
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamSummary {
    pub stream: String,
    pub files: usize,
    pub records: u64,
    pub epochs: Vec<u64>,
    /// Per epoch, in the order of `epochs`: the node that wrote it and how many of its records.
    pub writers: Vec<EpochWriter>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    /// An unterminated last line in the stream's newest file: a crash mid-append, or an append
    /// running right now. Not a problem: the next append to the file rewrites it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torn_tail: Option<Location>,
}

/// The node that wrote one epoch of a stream (the one whose line came first), and its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EpochWriter {
    pub epoch: u64,
    pub node: String,
    pub records: u64,
}

/// A line of a file, the file relative to the store's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    pub line: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Seqs missing within an epoch (also before an epoch's first record here, if it is not 1).
    Gap,
    /// An id seen before.
    Duplicate,
    /// A seq lower than an earlier one of its epoch. (An epoch lower than an earlier line's is
    /// not: a fenced leader forwards its late records after the next leader's.)
    OutOfOrder,
    /// A line that is not a record.
    Unparseable,
    /// A record whose `id` disagrees with its epoch and seq, or whose `stream` with its file.
    Mismatch,
    /// A last line without `\n` in a file that is not the stream's newest: no append repairs it.
    Torn,
    /// A record of an epoch from another node than the one that wrote the epoch's first record:
    /// two leaders in one epoch, which leader election exists to prevent.
    TwoWriters,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Gap => "gap",
            ProblemKind::Duplicate => "duplicate",
            ProblemKind::OutOfOrder => "out-of-order",
            ProblemKind::Unparseable => "unparseable",
            ProblemKind::Mismatch => "mismatch",
            ProblemKind::Torn => "torn",
            ProblemKind::TwoWriters => "two-writers",
        }
    }
}

/// One problem; a run of like problems on consecutive lines (a batch sent twice, a garbled
/// stretch) is one problem with `count` > 1, so a bad day cannot flood the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub stream: String,
    /// Where it is (for a gap: the first record after it), the file relative to the root.
    pub file: String,
    pub line: u64,
    /// Records concerned: missing ones for a gap, consecutive lines for the others.
    pub count: u64,
    pub message: String,
}

/// A place in a stream's files: (index into its file list, line).
pub(super) type Loc = (usize, u64);

/// Seqs `start..=end` of one epoch, and where the lowest and highest of them are.
pub(super) struct Span {
    pub(super) end: u64,
    pub(super) start_loc: Loc,
    pub(super) end_loc: Loc,
}

#[derive(Default)]
pub(super) struct EpochState {
    /// Disjoint, non-adjacent spans keyed by start: one span per epoch on healthy data, so
    /// memory grows with the number of gaps, not of records.
    pub(super) spans: BTreeMap<u64, Span>,
    pub(super) max_seq: u64,
    /// The node whose line of the epoch came first, and where: the epoch's writer.
    pub(super) node: String,
    pub(super) node_loc: Loc,
    /// The writer's records.
    pub(super) records: u64,
    pub(super) duplicates: u64,
}

impl EpochState {
    pub(super) fn contains(&self, seq: u64) -> bool {
        self.spans
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, s)| s.end >= seq)
    }

    pub(super) fn insert(&mut self, seq: u64, loc: Loc) {
        let left = seq.checked_sub(1).and_then(|p| {
            self.spans
                .range(..=p)
                .next_back()
                .filter(|(_, s)| s.end == p)
                .map(|(k, _)| *k)
        });
        let right = seq
            .checked_add(1)
            .and_then(|n| self.spans.remove(&n).map(|s| (s.end, s.end_loc)));
        let (end, end_loc) = right.unwrap_or((seq, loc));
        match left.and_then(|l| self.spans.get_mut(&l)) {
            Some(span) => {
                span.end = end;
                span.end_loc = end_loc;
            }
            None => {
                self.spans.insert(
                    seq,
                    Span {
                        end,
                        start_loc: loc,
                        end_loc,
                    },
                );
            }
        }
        self.max_seq = self.max_seq.max(seq);
    }
}

/// A run of like problems on consecutive lines, not yet written out.
pub(super) struct Run {
    pub(super) kind: ProblemKind,
    /// Like problems of one kind but different causes (a wrong id, a wrong stream) never merge.
    pub(super) tag: &'static str,
    pub(super) file: usize,
    pub(super) first_line: u64,
    pub(super) last_line: u64,
    pub(super) count: u64,
    /// For id problems: the epoch and the first and last seq of the run.
    pub(super) ids: Option<(u64, u64, u64)>,
    /// The first problem's detail.
    pub(super) note: String,
}

impl Run {
    pub(super) fn continues(&self, (file, line): Loc, id: Option<(u64, u64)>) -> bool {
        self.file == file
            && self.last_line + 1 == line
            && match (self.ids, id) {
                (Some((e, _, last)), Some((epoch, seq))) => e == epoch && last + 1 == seq,
                (None, None) => true,
                _ => false,
            }
    }

    pub(super) fn message(&self) -> String {
        let ids = |e: u64, a: u64, b: u64| {
            if a == b {
                format!("id {e}.{a}")
            } else {
                format!("ids {e}.{a}..{e}.{b} ({} records)", self.count)
            }
        };
        match (self.kind, self.ids) {
            (ProblemKind::Duplicate, Some((e, a, b))) => format!("{} seen before", ids(e, a, b)),
            (ProblemKind::OutOfOrder, Some((e, a, b))) => {
                format!("{} after {}", ids(e, a, b), self.note)
            }
            (ProblemKind::TwoWriters, Some((e, a, b))) => {
                format!("{} {}", ids(e, a, b), self.note)
            }
            _ => match self.count {
                1 => self.note.clone(),
                2 => format!("{} (and the next line)", self.note),
                n => format!("{} (and the next {} lines)", self.note, n - 1),
            },
        }
    }
}

/// The continuity check of one stream, fed its files in date order.
pub(super) struct StreamCheck<'a> {
    pub(super) stream: &'a str,
    pub(super) files: Vec<String>,
    pub(super) epochs: BTreeMap<u64, EpochState>,
    pub(super) records: u64,
    pub(super) first: Option<String>,
    pub(super) last: Option<String>,
    pub(super) torn_tail: Option<Location>,
    pub(super) runs: Vec<Run>,
    pub(super) problems: Vec<(Loc, Problem)>,
}

impl<'a> StreamCheck<'a> {
    pub(super) fn new(stream: &'a str) -> Self {
        Self {
            stream,
            files: Vec::new(),
            epochs: BTreeMap::new(),
            records: 0,
            first: None,
            last: None,
            torn_tail: None,
            runs: Vec::new(),
            problems: Vec::new(),
        }
    }

    pub(super) fn file(&mut self, path: &Path, rel: String, newest: bool) -> io::Result<()> {
        let idx = self.files.len();
        self.files.push(rel.clone());
        let mut reader = BufReader::with_capacity(256 * 1024, File::open(path)?);
        let mut buf = Vec::new();
        let mut line = 0u64;
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf)? == 0 {
                return Ok(());
            }
            line += 1;
            if buf.last() != Some(&b'\n') {
                if newest {
                    self.torn_tail = Some(Location { file: rel, line });
                } else {
                    let note = "last line has no newline: an append torn by a crash that no later append repaired".to_string();
                    self.problem(ProblemKind::Torn, "", (idx, line), None, note);
                }
                return Ok(());
            }
            buf.pop();
            self.line((idx, line), &buf);
        }
    }

    pub(super) fn line(&mut self, loc: Loc, text: &[u8]) {
        let r: StoredRecord = match serde_json::from_slice(text) {
            Ok(r) => r,
            Err(e) => {
                let note = format!("not a record: {e}");
                return self.problem(ProblemKind::Unparseable, "", loc, None, note);
            }
        };
        let (epoch, seq) = (r.epoch, r.seq);
        let id = format!("{epoch}.{seq}");
        if r.id != id {
            let note = format!("id {:?} does not match epoch {epoch} and seq {seq}", r.id);
            self.problem(ProblemKind::Mismatch, "id", loc, None, note);
        }
        if r.stream != self.stream {
            let note = format!("record {id} says stream {:?}", r.stream);
            self.problem(ProblemKind::Mismatch, "stream", loc, None, note);
        }
        self.records += 1;
        self.first.get_or_insert_with(|| id.clone());
        self.last = Some(id);

        let state = self.epochs.entry(epoch).or_insert_with(|| EpochState {
            node: r.node.clone(),
            node_loc: loc,
            ..EpochState::default()
        });
        if state.node != r.node {
            // Not the epoch's record: its continuity is its writer's lines', which this one
            // would otherwise fill in or collide with.
            let (writer, at) = (state.node.clone(), state.node_loc);
            let note = format!(
                "from node {:?} in epoch {epoch}, whose first record here is node {writer:?}'s ({}): two writers in one epoch",
                r.node,
                self.at(at)
            );
            return self.problem(ProblemKind::TwoWriters, "", loc, Some((epoch, seq)), note);
        }
        if state.contains(seq) {
            state.duplicates += 1;
            let id = Some((epoch, seq));
            return self.problem(ProblemKind::Duplicate, "", loc, id, String::new());
        }
        let seq_before = state.max_seq;
        // Out of order or not, the record is there: it still fills its place against gaps.
        state.insert(seq, loc);
        state.records += 1;
        if seq < seq_before {
            let note = format!("{epoch}.{seq_before} (the seq goes backwards)");
            self.problem(ProblemKind::OutOfOrder, "", loc, Some((epoch, seq)), note);
        }
    }

    pub(super) fn problem(
        &mut self,
        kind: ProblemKind,
        tag: &'static str,
        loc: Loc,
        id: Option<(u64, u64)>,
        note: String,
    ) {
        if let Some(run) = self
            .runs
            .iter_mut()
            .find(|r| (r.kind, r.tag) == (kind, tag))
        {
            if run.continues(loc, id) {
                run.last_line = loc.1;
                run.count += 1;
                if let (Some(ids), Some((_, seq))) = (run.ids.as_mut(), id) {
                    ids.2 = seq;
                }
                return;
            }
        }
        self.flush(Some((kind, tag)));
        self.runs.push(Run {
            kind,
            tag,
            file: loc.0,
            first_line: loc.1,
            last_line: loc.1,
            count: 1,
            ids: id.map(|(e, s)| (e, s, s)),
            note,
        });
    }

    /// Writes out the pending run of one kind and tag, or all of them.
    pub(super) fn flush(&mut self, which: Option<(ProblemKind, &str)>) {
        let (done, keep): (Vec<Run>, Vec<Run>) = std::mem::take(&mut self.runs)
            .into_iter()
            .partition(|r| match which {
                Some(w) => (r.kind, r.tag) == w,
                None => true,
            });
        self.runs = keep;
        for run in done {
            let problem = Problem {
                kind: run.kind,
                stream: self.stream.to_string(),
                file: self.files[run.file].clone(),
                line: run.first_line,
                count: run.count,
                message: run.message(),
            };
            self.problems.push(((run.file, run.first_line), problem));
        }
    }

    pub(super) fn gaps(&mut self) {
        let mut found = Vec::new();
        for (epoch, state) in &self.epochs {
            let mut expect = 1u64;
            let mut before: Option<&Span> = None;
            for (start, span) in &state.spans {
                if *start > expect {
                    let missing = if *start - 1 == expect {
                        format!("seq {expect}")
                    } else {
                        format!("seqs {expect}..{}", start - 1)
                    };
                    let count = start - expect;
                    let records = if count == 1 { "record" } else { "records" };
                    let message = match before {
                        Some(b) => format!(
                            "epoch {epoch}: {missing} missing ({count} {records}) between {epoch}.{} ({}) and {epoch}.{start}",
                            expect - 1,
                            self.at(b.end_loc)
                        ),
                        None => format!(
                            "epoch {epoch}: {missing} missing ({count} {records}) before {epoch}.{start}, the epoch's first record here"
                        ),
                    };
                    found.push((span.start_loc, ProblemKind::Gap, count, message));
                }
                expect = span.end.saturating_add(1);
                before = Some(span);
            }
        }
        for (loc, kind, count, message) in found {
            let problem = Problem {
                kind,
                stream: self.stream.to_string(),
                file: self.files[loc.0].clone(),
                line: loc.1,
                count,
                message,
            };
            self.problems.push((loc, problem));
        }
    }

    pub(super) fn at(&self, (file, line): Loc) -> Location {
        Location {
            file: self.files[file].clone(),
            line,
        }
    }

    pub(super) fn finish(mut self) -> (StreamSummary, Vec<Problem>, Vec<EpochCoverage>) {
        self.flush(None);
        self.gaps();
        // By place in the files, so a reader can walk through them top to bottom.
        self.problems.sort_by_key(|(loc, p)| (*loc, p.kind));
        let summary = StreamSummary {
            stream: self.stream.to_string(),
            files: self.files.len(),
            records: self.records,
            epochs: self.epochs.keys().copied().collect(),
            writers: self
                .epochs
                .iter()
                .map(|(&epoch, st)| EpochWriter {
                    epoch,
                    node: st.node.clone(),
                    records: st.records,
                })
                .collect(),
            first_id: self.first,
            last_id: self.last,
            torn_tail: self.torn_tail,
        };
        let coverage = self
            .epochs
            .iter()
            .map(|(&epoch, st)| EpochCoverage {
                stream: self.stream.to_string(),
                epoch,
                node: st.node.clone(),
                spans: st.spans.iter().map(|(&a, span)| (a, span.end)).collect(),
                duplicates: st.duplicates,
            })
            .collect();
        (
            summary,
            self.problems.into_iter().map(|(_, p)| p).collect(),
            coverage,
        )
    }
}
