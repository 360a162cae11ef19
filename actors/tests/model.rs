//! Model-based property test of the journal and forwarding to the primary against an in-memory list of acknowledged records, with crashes that lose whatever was not fsynced.
//!
//! The system under test is a real [`Journal`] and a real [`Primary`], each in a directory of its
//! own, and a forwarder that does what `SyncState::forward_once` does with the same pieces:
//! [`journal::read`] from a cursor, [`sync::plan`], [`Primary::write`] and [`Primary::sync`], then
//! [`storage::save_ids`] and [`Journal::release_before`]. The model is the list of records each
//! stream should end up with, in order: every acknowledged append, plus the whole frames of an
//! unacknowledged append that a crash happened to leave on disk (recovery keeps every valid frame,
//! so they are records like any other).
//!
//! A crash drops the journal (and, for a process crash, the forwarder's cursor and ids) and
//! then damages what was never fsynced, the way a power cut would (after redb's crash tests,
//! whose backend loses unsynced writes): nothing; a prefix of an append that was in flight; random
//! bytes or zeros after the durable end; a primary append cut off at any byte (whole lines
//! before a torn one); a batch written to the primary and never synced (the process crashed, or
//! the fsync failed); the forwarder stopped after the primary's fsync, after saving the last ids,
//! or halfway through a release whose unlinks were never made durable. A primary append that fails
//! without a crash (the NAS went away, or answered after the timeout) makes the forwarder reload
//! its ids from the primary and retry from the same cursor, as the sync actor does.
//!
//! Any journal or primary operation may also fail, as a full, read-only or vanishing disk makes it
//! fail: an armed [`faults`] rule fails the next matching `open`, `write`, `fsync`, `rename` or
//! marker check (after letting a few through) of the journal or the primary, wherever it falls.
//! The forwarder reacts as the sync actor does (an append or a forward that fails is retried; its
//! ids are read back from the primary first), and a journal that fails to open is opened again
//! once the fault is gone, as the supervisor restarts storage. And the journal's whole directory
//! may be lost (a new disk, a reinstall): what only it held is gone with it, so the model keeps
//! what the primary holds, and the new journal must number on from the primary's last ids, as the
//! storage actor does once the sync actor has read them ([`journal::Journal::seed_last_ids`]).
//! Every record at or below the primary's last id that forwarding skips must be on the primary as
//! it is ([`Primary::not_held`]): an id handed out twice would be a record skipped and lost.
//! The journal's directory may also be replaced by a copy taken earlier (a backup restored) and
//! started while the primary cannot be read, so that it numbers from its stale ids under ids the
//! primary holds; the forwarder then finds the collision and moves the stream's records to new
//! ids ([`Journal::rehome`]), as the sync actor does, and the model follows the move.
//!
//! After every step: each stream on the primary is a prefix of the model's list (same ids and
//! data, in order, no duplicate, a torn line only at the end of the newest file), the journal's
//! last ids are the model's and never below the primary's, and recovery only ever truncated a
//! tail. After a final drain: the primary holds exactly the model, [`Primary::verify`] is clean,
//! and the journal is down to its active segment; a restart, another drain and one more append
//! per stream then continue every stream's ids without a gap, although their segments are gone.
//!
//! A second property runs two such systems, two nodes in epochs 1 and 2, on one primary (leader
//! election: a fenced leader forwards its late records after the new leader's), every step of
//! either checked for both, each node's lines against its own model.
//!
//! `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override the defaults (256 cases, a fixed seed).

use fushi_actors::faults;
use fushi_actors::journal::{self, encode_frame, Journal, Position, Recovery};
use fushi_actors::primary::Primary;
use fushi_actors::records::StoredRecord;
use fushi_actors::storage;
use fushi_actors::sync;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;

/// Streams written to: `a` and `a/b` share `raw/a/` on the primary.
const STREAMS: &[&str] = &["a", "a/b", "x.y-z"];
/// Small segments, so that appends rotate and forwarding releases often.
const SEGMENT_MAX: u64 = 600;
/// The sync actor's `rotate_after`: an idle, forwarded active segment this large is rotated.
const ROTATE_AFTER: u64 = 300;
const EPOCH: u64 = 1;
const NODE: &str = "model-node";
/// Records per forward when draining.
const DRAIN_BATCH: usize = 7;

/// One record to append: its stream (an index into [`STREAMS`]) and its day of June 2025.
type Rec = (usize, u8);

/// What a crash leaves behind in the journal's active segment, past its durable end.
#[derive(Debug, Clone)]
enum Damage {
    None,
    /// A prefix (cut strictly inside) of the frames of an append that was in flight.
    TornAppend(Vec<Rec>, Index),
    Garbage(Vec<u8>),
    Zeros(usize),
}

/// Where a forward stops short.
#[derive(Debug, Clone)]
enum Stop {
    /// The primary append was cut off at some byte: a process crash (`Some`) or a failed append
    /// without one (`None`).
    TornPrimary(Index, Option<Damage>),
    /// The primary append was fsynced, then the process crashed (`Some`), or the append's answer
    /// came too late and it counted as failed (`None`).
    AfterPrimary(Option<Damage>),
    /// The batch was written to the primary and not synced (what the sync actor's pipeline
    /// holds between its write and its group fsync), then the process crashed (`Some`) or the
    /// fsync failed (`None`).
    WrittenNotSynced(Option<Damage>),
    /// Crash after the last ids were saved, before the release.
    AfterIds(Damage),
    /// Crash halfway through a release: the unlinks not made durable (bits of the mask) are lost.
    MidRelease(u8, Damage),
}

#[derive(Debug, Clone)]
enum Op {
    /// One group commit; its records are acknowledged.
    Append(Vec<Rec>),
    /// One `forward_once` of at most `max` records.
    Forward {
        max: usize,
        stop: Option<Stop>,
    },
    Rotate,
    /// A crash of the whole process, or (`whole == false`) of the storage actor only: the
    /// forwarder keeps its cursor and ids.
    Crash {
        whole: bool,
        damage: Damage,
    },
    /// The next matching operation of the journal (`journal`) or the primary, after `skip`
    /// others, fails.
    Fail {
        journal: bool,
        op: usize,
        skip: u32,
        errno: usize,
    },
    /// The journal's directory is lost, and the process restarts on an empty one.
    LoseJournal,
    /// A copy of the journal's directory is taken (a backup).
    Snapshot,
    /// The journal's directory is replaced by the last copy taken, and the process restarts on
    /// it while the primary cannot be read: it numbers on from the copy's ids.
    RestoreStale,
}

const FAULT_OPS: [faults::Op; 5] = [
    faults::Op::Open,
    faults::Op::Write,
    faults::Op::Fsync,
    faults::Op::Rename,
    faults::Op::Marker,
];
const ERRNOS: [i32; 4] = [
    nix::libc::ENOSPC,
    nix::libc::EIO,
    nix::libc::EMFILE,
    nix::libc::EROFS,
];

fn recs() -> impl Strategy<Value = Vec<Rec>> {
    prop::collection::vec((0..STREAMS.len(), 1u8..=3), 1..=5)
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        Just(Damage::None),
        (recs(), any::<Index>()).prop_map(|(r, cut)| Damage::TornAppend(r, cut)),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(Damage::Garbage),
        (1usize..700).prop_map(Damage::Zeros),
    ]
}

fn stop() -> impl Strategy<Value = Stop> {
    prop_oneof![
        (any::<Index>(), prop::option::of(damage())).prop_map(|(c, d)| Stop::TornPrimary(c, d)),
        prop::option::of(damage()).prop_map(Stop::AfterPrimary),
        prop::option::of(damage()).prop_map(Stop::WrittenNotSynced),
        damage().prop_map(Stop::AfterIds),
        (any::<u8>(), damage()).prop_map(|(m, d)| Stop::MidRelease(m, d)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => recs().prop_map(Op::Append),
        3 => (1usize..=8).prop_map(|max| Op::Forward { max, stop: None }),
        2 => (1usize..=8, stop()).prop_map(|(max, s)| Op::Forward { max, stop: Some(s) }),
        1 => Just(Op::Rotate),
        2 => (any::<bool>(), damage()).prop_map(|(whole, damage)| Op::Crash { whole, damage }),
        3 => (any::<bool>(), 0..FAULT_OPS.len(), 0u32..4, 0..ERRNOS.len())
            .prop_map(|(journal, op, skip, errno)| Op::Fail { journal, op, skip, errno }),
        1 => Just(Op::LoseJournal),
        1 => Just(Op::Snapshot),
        1 => Just(Op::RestoreStale),
    ]
}

fn ts(day: u8) -> String {
    format!("2025-06-{day:02}T12:00:00.000Z")
}

/// Scratch space: tmpfs when there is one, since the crashes here are simulated and real fsyncs
/// to a disk would only make the test slow.
fn scratch(what: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("fushi-model-{what}."))
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temp dir")
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.seg"))
}

fn segment_files(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    v.sort_unstable();
    v
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .unwrap_or_else(|e| panic!("damaging {}: {e}", path.display()));
}

/// A stream's day files on the primary, oldest first (`YYYY-MM-DD.jsonl` sorts by date).
fn day_files(root: &Path, stream: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(root.join("raw").join(stream)) else {
        return Vec::new();
    };
    let mut v: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.len() == 16 && n.ends_with(".jsonl"))
        .collect();
    v.sort();
    v
}

/// Every complete line of `node`'s in a stream on the primary, in order; a torn line (whoever's)
/// may only end the newest file.
fn primary_records(root: &Path, stream: &str, node: &str) -> Vec<StoredRecord> {
    let files = day_files(root, stream);
    let mut out = Vec::new();
    for (i, name) in files.iter().enumerate() {
        let bytes = fs::read(root.join("raw").join(stream).join(name)).unwrap();
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            match line.strip_suffix(b"\n") {
                Some(text) => {
                    let r: StoredRecord = serde_json::from_slice(text).unwrap_or_else(|e| {
                        panic!("{stream}/{name}: a complete line that is not a record: {e}")
                    });
                    if r.node == node {
                        out.push(r);
                    }
                }
                None => assert_eq!(
                    i + 1,
                    files.len(),
                    "{stream}/{name}: a torn line in a file that is not the stream's newest"
                ),
            }
        }
    }
    out
}

/// Writes what `Primary::append(batch)` writes for `node`, in its order (its hint first, then one
/// group per day file, in order of first appearance), cut off after `cut` of the lines' bytes:
/// the files a crash mid-append leaves.
fn torn_primary_append(root: &Path, node: &str, batch: &[StoredRecord], cut: Index) {
    let mut groups: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut floor: HashMap<&str, String> = HashMap::new();
    for r in batch {
        let stream = r.stream.as_str();
        let newest = match floor.get(stream) {
            Some(d) => Some(d.clone()),
            None => day_files(root, stream).pop().map(|n| n[..10].to_string()),
        };
        // Every ts here parses and is in the past: its own day, but never older than the newest.
        let day = newest
            .into_iter()
            .fold(r.ts[..10].to_string(), |a, b| a.max(b));
        floor.insert(stream, day.clone());
        let path = root.join("raw").join(stream).join(format!("{day}.jsonl"));
        let i = match groups.iter().position(|(p, _)| *p == path) {
            Some(i) => i,
            None => {
                groups.push((path, Vec::new()));
                groups.len() - 1
            }
        };
        serde_json::to_writer(&mut groups[i].1, r).unwrap();
        groups[i].1.push(b'\n');
    }
    let total: usize = groups.iter().map(|(_, b)| b.len()).sum();
    if total == 0 {
        return;
    }
    // The node's write intent, as the append records it before any line: stream → newest day.
    let hint_path = root.join("nodes").join(format!("{node}.json"));
    let mut hint: serde_json::Value = fs::read(&hint_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({"node": node, "streams": {}}));
    for (stream, day) in &floor {
        let known = hint["streams"][*stream].as_str().map(str::to_string);
        if known.is_none_or(|k| k < *day) {
            hint["streams"][*stream] = json!(day);
        }
    }
    fs::create_dir_all(root.join("nodes")).unwrap();
    fs::write(&hint_path, serde_json::to_vec(&hint).unwrap()).unwrap();
    let mut left = cut.index(total);
    for (path, bytes) in groups {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Like the append, cut an earlier torn line off before writing.
        if let Ok(old) = fs::read(&path) {
            let keep = old.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(keep as u64))
                .unwrap();
        }
        let n = left.min(bytes.len());
        append_bytes(&path, &bytes[..n]);
        left -= n;
        if n < bytes.len() {
            break;
        }
    }
}

/// The acknowledged records per stream, in order, and every record recovery brought back.
#[derive(Debug, Default)]
struct Model {
    streams: BTreeMap<String, Vec<StoredRecord>>,
    /// A restored copy of the journal numbers from stale ids until forwarding moves its records
    /// to new ones: meanwhile the ids are not checked as they are added.
    stale: bool,
    /// The epoch the node numbers in.
    epoch: u64,
}

impl Model {
    fn new(epoch: u64) -> Self {
        Model {
            epoch,
            ..Model::default()
        }
    }

    fn add(&mut self, rec: StoredRecord) {
        let list = self.streams.entry(rec.stream.clone()).or_default();
        if self.stale {
            list.push(rec);
            return;
        }
        // Ids are gap-free per stream and epoch.
        assert_eq!(
            (rec.epoch, rec.seq),
            (self.epoch, list.len() as u64 + 1),
            "record {} of {} does not follow {:?}",
            rec.id,
            rec.stream,
            list.last().map(|r| &r.id)
        );
        list.push(rec);
    }

    fn of(&self, stream: &str) -> &[StoredRecord] {
        self.streams.get(stream).map_or(&[], |v| v)
    }

    /// A rehome moved the last `moved.len()` records of `stream` to new ids, in order.
    fn moved(&mut self, stream: &str, moved: &[journal::Moved]) {
        let list = self.streams.get_mut(stream).expect("a stream with records");
        let from = list.len() - moved.len();
        for (rec, &(was, new)) in list[from..].iter_mut().zip(moved) {
            assert_eq!(
                (rec.epoch, rec.seq),
                was,
                "rehome moved {stream} out of order"
            );
            *rec = StoredRecord::new(
                new.0,
                new.1,
                rec.ts.clone(),
                rec.stream.clone(),
                rec.node.clone(),
                rec.data.clone(),
            );
        }
    }

    /// Every stream's ids run 1, 2, 3… (one epoch per node here).
    fn contiguous(&self) -> bool {
        self.streams.values().all(|l| {
            l.iter()
                .zip(1..)
                .all(|(r, n)| (r.epoch, r.seq) == (self.epoch, n))
        })
    }
}

struct System {
    jdir: PathBuf,
    primary: Primary,
    journal: Option<Journal>,
    /// The forwarder's state: where it reads next and the last ids on the primary (`None`:
    /// to be read back before the next forward).
    cursor: Position,
    ids: Option<BTreeMap<String, (u64, u64)>>,
    /// The primary's ids as the storage handle last had them (a restart of storage alone uses
    /// them); gone with the process.
    seeded: BTreeMap<String, (u64, u64)>,
    /// The last copy of the journal's directory: its files' names and bytes.
    snapshot: Option<Vec<(std::ffi::OsString, Vec<u8>)>>,
    /// Makes every record's data unique.
    counter: u64,
    /// The node this system is, and the epoch it numbers in.
    node: &'static str,
    epoch: u64,
    _dirs: (TempDir, Arc<TempDir>),
}

impl System {
    fn new() -> Self {
        Self::on(NODE, EPOCH, Arc::new(scratch("primary")))
    }

    /// Node `node`, numbering in `epoch`, forwarding to the primary in `p` (which other nodes
    /// may share).
    fn on(node: &'static str, epoch: u64, p: Arc<TempDir>) -> Self {
        let j = scratch("journal");
        let mut s = System {
            jdir: j.path().join("journal"),
            primary: Primary::new(p.path()).for_node(node),
            node,
            epoch,
            journal: None,
            cursor: Position::default(),
            ids: None,
            seeded: BTreeMap::new(),
            snapshot: None,
            counter: 0,
            _dirs: (j, p),
        };
        s.restart(true);
        s
    }

    fn journal(&mut self) -> &mut Journal {
        self.journal.as_mut().expect("journal open")
    }

    /// Opens the journal as the storage actor does (recovery, then the saved last ids, then the
    /// primary's) and, for a process start, the forwarder as the sync actor does (ids from the
    /// primary, from the start). A journal that fails to open (an injected fault) is opened
    /// again once the fault is gone, as the supervisor restarts storage.
    fn restart(&mut self, whole: bool) {
        assert!(self.journal.is_none());
        let (mut j, recovery) = match Journal::open(&self.jdir, SEGMENT_MAX, Duration::from_secs(5))
        {
            Ok(opened) => opened,
            Err(_) => {
                faults::disarm(&self.jdir);
                Journal::open(&self.jdir, SEGMENT_MAX, Duration::from_secs(5))
                    .expect("open journal")
            }
        };
        j.seed_last_ids(&storage::load_ids(&self.jdir));
        let Recovery {
            quarantined,
            duplicates,
            ..
        } = &recovery;
        // Damage here only ever lies past the durable end of the active segment.
        assert!(
            quarantined.is_empty() && *duplicates == 0,
            "recovery did more than cut a tail: {recovery:?}"
        );
        if whole {
            // A new process's storage numbers nothing before the sync actor has read the
            // primary's ids (or its wait for them expires: the case the forward's conflict check
            // is for), and saves them as its own.
            self.cursor = j.start();
            let ids = loop {
                match self.primary.last_ids() {
                    Ok(ids) => break ids,
                    Err(_) => faults::disarm(self.primary.root()),
                }
            };
            j.seed_last_ids(&ids);
            let _ = storage::save_ids(&j);
            self.seeded = ids.clone();
            self.ids = Some(ids);
        } else {
            // A restarted storage actor takes the ids its handle was last seeded with.
            j.seed_last_ids(&self.seeded);
        }
        self.journal = Some(j);
    }

    /// The last ids on the primary, read back if they are not known (and handed to the
    /// journal, as the sync actor hands them to storage); None while that fails.
    fn ids(&mut self) -> Option<BTreeMap<String, (u64, u64)>> {
        if self.ids.is_none() {
            let ids = self.primary.last_ids().ok()?;
            self.journal().seed_last_ids(&ids);
            for (stream, &id) in &ids {
                let e = self.seeded.entry(stream.clone()).or_insert(id);
                *e = (*e).max(id);
            }
            self.ids = Some(ids);
        }
        self.ids.clone()
    }

    /// The journal's directory is lost: what only it held is gone, what the primary holds stays.
    fn lose_journal(&mut self, model: &mut Model) {
        self.journal.take().expect("journal open");
        fs::remove_dir_all(&self.jdir).expect("removing the journal");
        let root = self.primary.root().to_path_buf();
        for stream in STREAMS {
            let held = faults::without(|| primary_records(&root, stream, self.node));
            model.streams.insert(stream.to_string(), held);
        }
        self.restart(true);
    }

    fn snapshot(&mut self) {
        let mut files = Vec::new();
        for e in fs::read_dir(&self.jdir).expect("listing the journal") {
            let e = e.expect("a journal entry");
            if e.file_type().is_ok_and(|t| t.is_file()) && e.file_name() != "LOCK" {
                files.push((
                    e.file_name(),
                    fs::read(e.path()).expect("reading the journal"),
                ));
            }
        }
        self.snapshot = Some(files);
    }

    /// Restores the last copy taken and restarts on it without the primary's ids, as a storage
    /// actor whose wait for them expired does. What the copy holds and the primary does not yet
    /// is forwarded from it; what only the replaced journal held is gone with it.
    fn restore_stale(&mut self, model: &mut Model) {
        let Some(files) = self.snapshot.clone() else {
            return;
        };
        self.journal.take().expect("journal open");
        fs::remove_dir_all(&self.jdir).expect("removing the journal");
        fs::create_dir_all(&self.jdir).expect("creating the journal");
        for (name, bytes) in &files {
            fs::write(self.jdir.join(name), bytes).expect("restoring the journal");
        }
        let (mut j, _) = loop {
            match Journal::open(&self.jdir, SEGMENT_MAX, Duration::from_secs(5)) {
                Ok(opened) => break opened,
                Err(_) => faults::disarm(&self.jdir),
            }
        };
        j.seed_last_ids(&storage::load_ids(&self.jdir));
        let root = self.primary.root().to_path_buf();
        let (frames, _) = faults::without(|| {
            journal::read(&self.jdir, j.start(), j.end(), usize::MAX, usize::MAX)
        })
        .expect("reading the restored journal");
        // The model: what the primary holds, then every live record of the copy it does not
        // hold (by content: a stale copy's ids say nothing), in journal order.
        for stream in STREAMS {
            let mut held = faults::without(|| primary_records(&root, stream, self.node));
            let on_primary: Vec<serde_json::Value> = held.iter().map(|r| r.data.clone()).collect();
            held.extend(
                (0..frames.len())
                    .filter(|&i| !j.superseded().contains(&frames.after(i)))
                    .filter_map(|i| frames.get(i).record())
                    .filter(|r| r.stream == *stream && !on_primary.contains(&r.data)),
            );
            model.streams.insert(stream.to_string(), held);
        }
        // Behind the primary until forwarding hands it the primary's ids, or moves its records.
        model.stale = true;
        self.cursor = j.start();
        self.ids = None;
        self.seeded = BTreeMap::new();
        self.journal = Some(j);
    }

    /// Drops the journal (and with `whole` the forwarder), damages what was not fsynced, and
    /// restarts. Whole frames a torn append left are recovered: they go into the model.
    fn crash(&mut self, model: &mut Model, whole: bool, damage: &Damage) {
        let j = self.journal.take().expect("journal open");
        let active = segment_path(&self.jdir, j.end().segment);
        assert_eq!(
            fs::metadata(&active).map(|m| m.len()).unwrap_or(0),
            j.end().offset,
            "the active segment's length is its durable end"
        );
        let last = j.last_ids().clone();
        drop(j);
        match damage {
            Damage::None => {}
            Damage::TornAppend(recs, cut) => {
                let mut next = last;
                let mut frames = Vec::new();
                for &(s, day) in recs {
                    let stream = STREAMS[s];
                    let seq = match next.get(stream) {
                        Some(&(e, q)) if e == self.epoch => q + 1,
                        _ => 1,
                    };
                    next.insert(stream.to_string(), (self.epoch, seq));
                    let rec = self.record(self.epoch, seq, stream, day);
                    frames.push((encode_frame(&rec).unwrap(), rec));
                }
                let total: usize = frames.iter().map(|(f, _)| f.len()).sum();
                let cut = cut.index(total); // strictly inside: never the whole append
                let mut bytes = Vec::new();
                for (frame, rec) in frames {
                    let n = frame.len().min(cut - bytes.len());
                    bytes.extend_from_slice(&frame[..n]);
                    if n == frame.len() {
                        model.add(rec);
                    } else {
                        break;
                    }
                }
                append_bytes(&active, &bytes);
            }
            Damage::Garbage(bytes) => append_bytes(&active, bytes),
            Damage::Zeros(n) => append_bytes(&active, &vec![0; *n]),
        }
        self.restart(whole);
    }

    /// Data no other record has.
    fn data(&mut self) -> serde_json::Value {
        self.counter += 1;
        json!({"n": self.counter, "text": format!("record {}", self.counter)})
    }

    fn record(&mut self, epoch: u64, seq: u64, stream: &str, day: u8) -> StoredRecord {
        let data = self.data();
        StoredRecord::new(epoch, seq, ts(day), stream.into(), self.node.into(), data)
    }

    fn append(&mut self, model: &mut Model, recs: &[Rec]) {
        let pending: Vec<_> = recs
            .iter()
            .map(|&(s, day)| fushi_actors::records::Record {
                stream: STREAMS[s].to_string(),
                ts: ts(day),
                data: self.data(),
            })
            .collect();
        // A failed append acknowledges nothing; its producer sends it again later.
        let (epoch, node) = (self.epoch, self.node);
        let Ok(stored) = self.journal().append(epoch, node, &pending) else {
            return;
        };
        assert_eq!(stored.len(), pending.len());
        for (rec, p) in stored.into_iter().zip(&pending) {
            assert_eq!(
                (&rec.stream, &rec.ts, &rec.data),
                (&p.stream, &p.ts, &p.data)
            );
            model.add(rec);
        }
    }

    /// One `SyncState::forward_once`, stopped short by `stop`; returns whether more may wait.
    fn forward(&mut self, model: &mut Model, max: usize, stop: Option<&Stop>) -> bool {
        let (start, end) = {
            let j = self.journal();
            (j.start(), j.end())
        };
        if self.cursor < start {
            self.cursor = start;
        }
        if self.cursor >= end {
            // A release that failed (its ids could not be saved) is asked for again, as the sync
            // actor does once caught up.
            if self.cursor.segment > start.segment && storage::save_ids(self.journal()).is_ok() {
                let cut = self.cursor.segment;
                let _ = self.journal().release_before(cut);
            }
            if end.offset >= ROTATE_AFTER {
                // A rotation that fails is tried again at the next forward.
                let _ = self.journal().rotate();
            }
            return false;
        }
        let Some(ids) = self.ids() else {
            return true;
        };
        let (frames, next) =
            journal::read(&self.jdir, self.cursor, end, max, usize::MAX).expect("read");
        assert!(
            !frames.is_empty() || next > self.cursor,
            "forwarding is stuck at {:?} (end {end:?})",
            self.cursor
        );
        let superseded = self.journal().superseded().clone();
        let plan = sync::plan(&ids, &superseded, &frames);
        assert!(
            plan.gaps.is_empty(),
            "gaps while forwarding: {:?}",
            plan.gaps
        );
        if !plan.skipped.is_empty() {
            match self.primary.not_held(&frames, &plan.skipped) {
                Ok(conflicts) if conflicts.is_empty() => {}
                Ok(conflicts) => {
                    // Only a restored copy numbers under ids the primary holds.
                    assert!(
                        model.stale,
                        "records skipped as forwarded that the primary does not hold: {:?}",
                        conflicts
                            .iter()
                            .map(|&i| frames.get(i).record())
                            .collect::<Vec<_>>()
                    );
                    // As the sync actor does: each colliding stream moves from its first
                    // collision on, after the primary's last id; then the batch is read again.
                    let mut done: Vec<usize> = Vec::new();
                    for &i in &conflicts {
                        let s = frames.stream_of(i);
                        if done.contains(&s) {
                            continue;
                        }
                        done.push(s);
                        let stream = frames.streams()[s].clone();
                        let at = if i == 0 {
                            self.cursor
                        } else {
                            frames.after(i - 1)
                        };
                        let epoch = self.epoch;
                        match self
                            .journal()
                            .rehome(epoch, &stream, at, ids.get(&stream).copied())
                        {
                            Ok(moved) => model.moved(&stream, &moved),
                            Err(_) => return true,
                        }
                    }
                    return true;
                }
                Err(_) => {
                    self.interrupted(model, None);
                    return true;
                }
            }
        }
        if let Some(Stop::TornPrimary(cut, crash)) = stop {
            let batch: Vec<StoredRecord> = plan
                .to_send
                .iter()
                .map(|&i| frames.get(i).record().unwrap())
                .collect();
            torn_primary_append(self.primary.root(), self.node, &batch, *cut);
            self.interrupted(model, crash.as_ref());
            return true;
        }
        if let Some(Stop::WrittenNotSynced(crash)) = stop {
            if !plan.to_send.is_empty() {
                drop(self.primary.write(&frames, &plan.to_send));
            }
            self.interrupted(model, crash.as_ref());
            return true;
        }
        if !plan.to_send.is_empty() {
            // As the sync actor does: written, then made durable; either failing, the ids are
            // read back and the same batch is tried again.
            let done = self
                .primary
                .write(&frames, &plan.to_send)
                .and_then(|written| self.primary.sync(written));
            if done.is_err() {
                self.interrupted(model, None);
                return true;
            }
        }
        if let Some(Stop::AfterPrimary(crash)) = stop {
            self.interrupted(model, crash.as_ref());
            return true;
        }
        self.ids = Some(plan.last_ids);
        self.cursor = next;
        if self.cursor.segment > start.segment {
            let cut = self.cursor.segment;
            // As the writer's release: no segment goes before the ids are saved.
            if storage::save_ids(self.journal()).is_err() {
                return true;
            }
            if let Some(Stop::AfterIds(damage)) = stop {
                self.crash(model, true, damage);
                return true;
            }
            let active = end.segment;
            let doomed: Vec<(u64, Vec<u8>)> = segment_files(&self.jdir)
                .into_iter()
                .filter(|&n| n < cut && n < active)
                .map(|n| (n, fs::read(segment_path(&self.jdir, n)).unwrap()))
                .collect();
            // A release that fails is asked for again by a later forward.
            let _ = self.journal().release_before(cut);
            if let Some(Stop::MidRelease(mask, damage)) = stop {
                for (i, (n, bytes)) in doomed.iter().enumerate() {
                    if mask & (1 << (i % 8)) != 0 {
                        fs::write(segment_path(&self.jdir, *n), bytes).unwrap();
                    }
                }
                self.crash(model, true, damage);
                return true;
            }
        }
        if let Some(Stop::AfterIds(damage) | Stop::MidRelease(_, damage)) = stop {
            // Nothing to release this time: the crash comes right after.
            self.crash(model, true, damage);
        }
        self.cursor < end
    }

    /// A forward cut short: a process crash, or a failed primary operation, after which the
    /// sync actor reads the ids back from the primary and retries from the same cursor.
    fn interrupted(&mut self, model: &mut Model, crash: Option<&Damage>) {
        match crash {
            Some(damage) => self.crash(model, true, damage),
            None => self.ids = None,
        }
    }

    /// Forwards until the journal is down to its active segment and all of it is on the primary.
    fn drain(&mut self, model: &mut Model) {
        for _ in 0..10_000 {
            self.forward(model, DRAIN_BATCH, None);
            let j = self.journal.as_ref().unwrap();
            if self.cursor >= j.end()
                && j.start().segment == j.end().segment
                && j.end().offset < ROTATE_AFTER
            {
                return;
            }
        }
        panic!("the drain does not converge");
    }

    /// A restored copy has caught up once every id in the model runs on from 1 and the journal's
    /// last ids are the model's again: from then on ids are checked as they are added.
    fn settle(&self, model: &mut Model) {
        if !model.stale || !model.contiguous() {
            return;
        }
        let j = self.journal.as_ref().unwrap();
        let caught_up = STREAMS.iter().all(|stream| {
            j.last_ids().get(*stream).copied() == model.of(stream).last().map(|r| (r.epoch, r.seq))
        });
        model.stale = !caught_up;
    }

    /// The invariants that hold after every step.
    fn check(&self, model: &Model) {
        let root = self.primary.root().to_path_buf();
        let primary_last = faults::without(|| self.primary.last_ids()).expect("primary last ids");
        let j = self.journal.as_ref().unwrap();
        for stream in STREAMS {
            let want = model.of(stream);
            let got = primary_records(&root, stream, self.node);
            let ids = |v: &[StoredRecord]| v.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
            assert!(
                got.len() <= want.len() && got[..] == want[..got.len()],
                "stream {stream}: the primary holds {:?}, not a prefix of {:?}",
                ids(&got),
                ids(want)
            );
            let key = |r: &StoredRecord| (r.epoch, r.seq);
            assert_eq!(
                primary_last.get(*stream).copied(),
                got.last().map(key),
                "stream {stream}: Primary::last_ids"
            );
            if !model.stale {
                assert_eq!(
                    j.last_ids().get(*stream).copied(),
                    want.last().map(key),
                    "stream {stream}: the journal's last id"
                );
            }
        }
    }

    /// The invariants once everything is forwarded; `all` are the models of every node that
    /// forwards to this primary (this one's among them), whose records verify counts.
    fn check_drained(&self, model: &Model, all: &[&Model]) {
        self.check(model);
        let root = self.primary.root().to_path_buf();
        for stream in STREAMS {
            assert_eq!(
                primary_records(&root, stream, self.node).len(),
                model.of(stream).len(),
                "stream {stream}: not everything reached the primary"
            );
        }
        let report = faults::without(|| self.primary.verify()).expect("verify");
        assert!(report.is_clean(), "verify: {:?}", report.problems);
        let total: usize = all
            .iter()
            .flat_map(|m| m.streams.values())
            .map(Vec::len)
            .sum();
        assert_eq!(report.records, total as u64);
        let j = self.journal.as_ref().unwrap();
        let (start, end) = (j.start(), j.end());
        assert_eq!(
            start.segment, end.segment,
            "forwarded segments are released"
        );
        assert_eq!(segment_files(&self.jdir), [end.segment], "segment files");
        assert_eq!(j.bytes(), end.offset);
    }
}

fn run(ops: &[Op]) {
    let mut sys = System::new();
    let mut model = Model::new(EPOCH);
    for op in ops {
        match op {
            Op::Append(recs) => sys.append(&mut model, recs),
            Op::Forward { max, stop } => {
                sys.forward(&mut model, *max, stop.as_ref());
            }
            Op::Rotate => {
                let _ = sys.journal().rotate();
            }
            Op::Crash { whole, damage } => sys.crash(&mut model, *whole, damage),
            Op::Fail {
                journal,
                op,
                skip,
                errno,
            } => {
                let under = if *journal {
                    sys.jdir.clone()
                } else {
                    sys.primary.root().to_path_buf()
                };
                faults::arm(FAULT_OPS[*op], &under, *skip, 1, ERRNOS[*errno]);
            }
            Op::LoseJournal => sys.lose_journal(&mut model),
            Op::Snapshot => sys.snapshot(),
            Op::RestoreStale => sys.restore_stale(&mut model),
        }
        sys.settle(&mut model);
        sys.check(&model);
    }
    // The disks are healthy again: everything must drain.
    faults::disarm(&sys.jdir);
    faults::disarm(sys.primary.root());
    sys.drain(&mut model);
    sys.check_drained(&model, &[&model]);
    // Idempotent across a restart, and the ids continue although their segments are gone.
    sys.crash(&mut model, true, &Damage::None);
    sys.drain(&mut model);
    sys.check_drained(&model, &[&model]);
    let more: Vec<Rec> = (0..STREAMS.len()).map(|s| (s, 3)).collect();
    sys.append(&mut model, &more);
    sys.drain(&mut model);
    sys.check_drained(&model, &[&model]);
}

/// Leader election on one primary: node a led epoch 1, node b leads epoch 2, and a (fenced, or
/// standby) still forwards its backlog of epoch 1 while b forwards epoch 2, into the same day
/// files. A partition may even let both collect for a while; their epochs keep them apart.
/// Each node is a whole system of its own (journal, forwarder, crashes, faults), and every step
/// of either is checked for both: each node's lines on the primary are a prefix of its model
/// and its last ids are its own lines'. Drained, the primary holds every acknowledged record of
/// both exactly once and verifies clean.
fn run_two(ops: &[(bool, Op)]) {
    let p = Arc::new(scratch("primary"));
    let mut a = System::on("model-a", 1, p.clone());
    let mut b = System::on("model-b", 2, p.clone());
    let (mut ma, mut mb) = (Model::new(1), Model::new(2));
    // a's backlog is only partly forwarded when b takes over; b forwards; then a's late
    // records of epoch 1 go after b's of epoch 2.
    let every: Vec<Rec> = (0..STREAMS.len()).flat_map(|s| [(s, 1), (s, 2)]).collect();
    a.append(&mut ma, &every);
    a.forward(&mut ma, 2, None);
    b.append(&mut mb, &every);
    b.drain(&mut mb);
    a.drain(&mut ma);
    for (sys, model) in [(&a, &ma), (&b, &mb)] {
        sys.check_drained(model, &[&ma, &mb]);
    }
    for (on_b, op) in ops {
        let (sys, model) = if *on_b {
            (&mut b, &mut mb)
        } else {
            (&mut a, &mut ma)
        };
        match op {
            Op::Append(recs) => sys.append(model, recs),
            Op::Forward { max, stop } => {
                sys.forward(model, *max, stop.as_ref());
            }
            Op::Rotate => {
                let _ = sys.journal().rotate();
            }
            Op::Crash { whole, damage } => sys.crash(model, *whole, damage),
            Op::Fail {
                journal,
                op,
                skip,
                errno,
            } => {
                let under = if *journal {
                    sys.jdir.clone()
                } else {
                    sys.primary.root().to_path_buf()
                };
                faults::arm(FAULT_OPS[*op], &under, *skip, 1, ERRNOS[*errno]);
            }
            Op::LoseJournal => sys.lose_journal(model),
            Op::Snapshot => sys.snapshot(),
            Op::RestoreStale => sys.restore_stale(model),
        }
        sys.settle(model);
        a.check(&ma);
        b.check(&mb);
    }
    for sys in [&a, &b] {
        faults::disarm(&sys.jdir);
    }
    faults::disarm(p.path());
    a.drain(&mut ma);
    b.drain(&mut mb);
    // a fenced leader's journal may still hold records: they land after b's.
    let more: Vec<Rec> = (0..STREAMS.len()).map(|s| (s, 3)).collect();
    b.append(&mut mb, &more);
    b.drain(&mut mb);
    a.append(&mut ma, &more);
    a.drain(&mut ma);
    for (sys, model) in [(&a, &ma), (&b, &mb)] {
        sys.check_drained(model, &[&ma, &mb]);
    }
    // Idempotent across restarts of both.
    a.crash(&mut ma, true, &Damage::None);
    b.crash(&mut mb, true, &Damage::None);
    a.drain(&mut ma);
    b.drain(&mut mb);
    for (sys, model) in [(&a, &ma), (&b, &mb)] {
        sys.check_drained(model, &[&ma, &mb]);
    }
}

fn config() -> Config {
    let mut c = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 256;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = RngSeed::Fixed(0x6675_7368_6920);
    }
    // The seed is fixed: a failure comes back on every run without a regressions file.
    c.failure_persistence = None;
    c
}

proptest! {
    #![proptest_config(config())]

    /// Journal + forwarding + crashes never lose, duplicate or reorder a record, and drain clean.
    #[test]
    fn journal_and_forwarding_match_the_model(ops in prop::collection::vec(op(), 1..40)) {
        run(&ops);
    }

    /// Two nodes forwarding one stream set to one primary, in epochs 1 and 2, interleaved:
    /// nothing lost, nothing twice, verify clean.
    #[test]
    fn two_nodes_on_one_primary_match_their_models(
        ops in prop::collection::vec((any::<bool>(), op()), 1..40)
    ) {
        run_two(&ops);
    }
}
