//! The primary store (SPEC §4.3): the directory (a NAS mount in production) that holds each stream's one continuous history as JSONL, appended, read back and verified with plain blocking I/O.
//!
//! Layout: `raw/<stream>/<YYYY-MM-DD>.jsonl`, one [`StoredRecord`] a line, and
//! `latest/<stream>.json`, the newest record, replaced atomically. A stream may hold `/`, so
//! stream `a` and stream `a/b` share `raw/a/`: date files for the one, a directory for the other.
//!
//! Nothing here is async: the sync actor calls it from a thread of its own under `io_timeout`,
//! because a hard-mounted NFS share can block a syscall for ever and that must not stall the
//! runtime.
//!
//! Idempotent forwarding rests on two rules. Only a line that ends in `\n` counts: a crash
//! mid-append leaves a torn last line that [`Primary::last_ids`] never reports and the next
//! [`Primary::append`] to that file cuts away, so re-sending everything after `last_ids` creates
//! neither a duplicate nor a gap. And a stream's ids only grow from file to file: a record goes to
//! the UTC day of its `ts`, but never to a day older than the stream's newest file (see
//! [`Primary::append`]), so the newest file's last line is the stream's last id.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use time::{Date, OffsetDateTime};

use crate::faults;

mod days;
mod files;
mod root;
mod verify;

use crate::fs::{sync_dir, write_atomic};
use crate::journal::Frames;
use crate::records::valid_stream;
use days::*;
use files::*;
use root::*;
use verify::*;
pub use verify::{Location, Problem, ProblemKind, StreamSummary, VerifyReport};

const LATEST: &str = "latest";

/// The file that marks a directory as a primary store. A NAS that is not mounted leaves its
/// mountpoint behind as an empty local directory, which takes writes as happily as the NAS: a
/// store outside the data dir is only used when this marker is there, so records never pile
/// up on the local disk under the mountpoint while the NAS is away.
pub const MARKER: &str = ".fushi-primary";

/// Records written to the primary by [`Primary::write`] and not yet durable.
///
/// It holds files open on the primary, and closing one can block for as long as the NAS
/// hangs (NFS flushes a file on close, a FUSE mount asks its daemon): [`Primary::sync`]
/// closes them on its own thread, and one dropped anywhere else has them closed on a thread
/// of their own, never on the caller's (the async runtime).
#[derive(Debug, Default)]
pub struct Written {
    /// The verified root handles the paths below resolve through: held until the sync, so that
    /// they stay valid (and pinned to the store they were verified on) that long.
    roots: Vec<Arc<Root>>,
    /// The files written to, in order; a file written by several batches is here once each.
    files: Vec<(PathBuf, File)>,
    /// Directories whose entries changed.
    dirs: BTreeSet<PathBuf>,
    /// Each stream's last record, for `latest/`.
    latest: BTreeMap<String, Vec<u8>>,
    stats: AppendStats,
}

impl Written {
    /// What was written, in records and bytes.
    pub fn stats(&self) -> AppendStats {
        self.stats
    }

    /// Takes out the records meant for `latest/`, to be written with a later sync instead.
    pub fn take_latest(&mut self) -> BTreeMap<String, Vec<u8>> {
        std::mem::take(&mut self.latest)
    }

    /// Has this sync write `latest` too (newer entries of its own win).
    pub fn add_latest(&mut self, mut latest: BTreeMap<String, Vec<u8>>) {
        latest.append(&mut self.latest);
        self.latest = latest;
    }

    /// Adds a later write to this one, so that one [`Primary::sync`] makes both durable.
    pub fn merge(&mut self, mut later: Written) {
        self.roots.append(&mut later.roots);
        self.files.append(&mut later.files);
        self.dirs.append(&mut later.dirs);
        self.latest.append(&mut later.latest);
        self.stats.items += later.stats.items;
        self.stats.bytes += later.stats.bytes;
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        let files = std::mem::take(&mut self.files);
        if !files.is_empty() {
            // Should no thread start, they are closed here after all: nothing better is left.
            let _ = std::thread::Builder::new()
                .name("fushi-close".into())
                .spawn(move || drop(files));
        }
    }
}

/// The primary store rooted at one directory.
#[derive(Debug, Clone)]
pub struct Primary {
    root: PathBuf,
    /// Local store (inside the data dir): created and marked on first use. Otherwise the
    /// marker must already be there ([`Primary::init`], `fushi check --init-primary`).
    create: bool,
    /// Device and inode of the root as last verified: a store that changes them (remounted,
    /// replaced, unmounted under a batch) is another store until its ids are read again.
    identity: Arc<Mutex<Option<(u64, u64)>>>,
}

/// What one [`Primary::append`] wrote: records, and bytes appended to `raw/`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AppendStats {
    pub items: usize,
    pub bytes: usize,
}

/// Whether the primary can hold `stream`: a valid name (SPEC §4.1) that cannot collide with the
/// store's own files. A segment after the first may not be a date file's name (stream
/// `a/2026-11-21.jsonl` would need a directory where stream `a` keeps that day), and a segment
/// before the last may not end in `.json` (stream `a.json/b` would need a directory where stream
/// `a` keeps `latest/a.json`).
pub fn storable_stream(stream: &str) -> bool {
    if !valid_stream(stream) {
        return false;
    }
    let segs: Vec<&str> = stream.split('/').collect();
    let last = segs.len() - 1;
    segs.iter().enumerate().all(|(i, seg)| {
        let collides_in_raw = i > 0 && date_of_file(seg).is_some();
        let collides_in_latest = i < last && seg.ends_with(".json");
        !(collides_in_raw || collides_in_latest)
    })
}

impl Primary {
    /// A local store: created, and marked, when first used.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            create: true,
            identity: Arc::default(),
        }
    }

    /// A store elsewhere (a NAS): used only when it carries [`MARKER`].
    pub fn external(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            create: false,
            identity: Arc::default(),
        }
    }

    /// Creates the root if needed and marks it as a primary store.
    pub fn init(&self) -> io::Result<()> {
        fs::create_dir_all(&self.root)?;
        let marker = self.root.join(MARKER);
        if !marker.exists() {
            let f = fs::File::create(&marker)?;
            f.sync_all()?;
            fs::File::open(&self.root)?.sync_all()?;
        }
        Ok(())
    }

    /// Opens the root and verifies it through the handle: a local store is created on demand,
    /// any other must carry the marker; and it must be the store last verified (same device and
    /// inode), or this fails once, so that the caller reads its ids again.
    fn open_root(&self) -> io::Result<Arc<Root>> {
        if self.create {
            self.init()?;
        }
        faults::check(faults::Op::Open, &self.root)?;
        let root = open_dir(&self.root)?;
        let marked = faults::check(faults::Op::Marker, &self.root)
            .and_then(|()| fs::metadata(root.path.join(MARKER)));
        match marked {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "{} has no {MARKER} marker, so it is not the primary store (is the NAS mounted?); \
                         mark the real store once with `fushi check --init-primary`",
                        self.root.display()
                    ),
                ))
            }
            Err(e) => return Err(e),
        }
        let meta = root.dir.metadata()?;
        let id = (meta.dev(), meta.ino());
        let mut known = self.identity.lock().unwrap_or_else(|p| p.into_inner());
        match *known {
            Some(was) if was != id => {
                *known = Some(id);
                Err(io::Error::other(format!(
                    "primary store {} is another directory than before (device {}, inode {} \
                     instead of {}, {}: remounted or replaced); its last ids are read again",
                    self.root.display(),
                    id.0,
                    id.1,
                    was.0,
                    was.1
                )))
            }
            _ => {
                *known = Some(id);
                Ok(Arc::new(root))
            }
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates, writes, fsyncs and removes a small uniquely named file in the root (creating the
    /// root if missing): the cheapest operation that proves the store takes durable writes.
    pub fn probe(&self) -> io::Result<()> {
        let root = self.open_root()?;
        // A random name, so nodes probing one NAS never trip over each other's probe.
        let mut probe = tempfile::Builder::new()
            .prefix(".fushi-probe.")
            .tempfile_in(&root.path)?;
        probe.write_all(b"fushi probe\n")?;
        probe.as_file().sync_all()?;
        probe.close()
    }

    /// The (epoch, seq) of each stream's last record: the last complete line of its newest date
    /// file, else of the newest older one that has one. Streams without a record are absent.
    /// The sync actor forwards only records above these, which makes forwarding idempotent.
    ///
    /// What is read back is made durable first: lines written and not yet fsynced (a sync
    /// actor that crashed or gave up between writing a batch and syncing it) are in the page
    /// cache, where a power cut could still take them, and an id counted from one would then
    /// skip records for good. So every file read here, and the directories up to the root,
    /// are fsynced before their ids count.
    pub fn last_ids(&self) -> io::Result<BTreeMap<String, (u64, u64)>> {
        let root = self.open_root()?;
        let mut out = BTreeMap::new();
        let mut dirs = BTreeSet::new();
        for (stream, files) in streams(&root.path)? {
            for (_, path) in files.iter().rev() {
                File::open(path)?.sync_data()?;
                let id = last_id_in(path)?;
                if let Some(id) = id {
                    out.insert(stream, id);
                    break;
                }
            }
            if let Some((_, path)) = files.last() {
                let mut dir = path.parent();
                while let Some(d) = dir.filter(|d| d.starts_with(&root.path)) {
                    dirs.insert(d.to_path_buf());
                    dir = d.parent();
                }
            }
        }
        for dir in dirs {
            sync_dir(&dir)?;
        }
        Ok(out)
    }

    /// Appends `batch` in order, each record to `raw/<stream>/<day>.jsonl`, fsynced, then
    /// replaces `latest/<stream>.json` with each stream's last record of the batch.
    ///
    /// `<day>` is the UTC day of the record's `ts`, but never older than the stream's newest
    /// file: ids must only grow from file to file (see the module doc), and a `ts` can go
    /// backwards across midnight (several sources feeding one stream, a clock step). A `ts` that
    /// does not parse, or lies more than a day ahead of this clock, is not trusted either: such a
    /// record joins the stream's newest file (today's for a new stream), so one bad clock cannot
    /// push a stream's files into the future.
    ///
    /// A stream the store cannot hold ([`storable_stream`]) fails the whole batch with
    /// [`io::ErrorKind::InvalidInput`] before anything is written; retrying cannot help.
    pub fn append(&self, frames: &Frames, pick: &[usize]) -> io::Result<AppendStats> {
        let written = self.write(frames, pick)?;
        self.sync(written)
    }

    /// The first half of [`Primary::append`]: records `pick` of `frames` written to their day
    /// files, nothing fsynced. Nothing of it counts until [`Primary::sync`] returns; the sync
    /// actor writes the next batch meanwhile (on another thread), which changes nothing that a
    /// crash between the two could not leave behind anyway: whole lines after the last synced
    /// one, or a torn last line that the next append cuts off.
    pub fn write(&self, frames: &Frames, pick: &[usize]) -> io::Result<Written> {
        let root = self.open_root()?;
        let streams = frames.streams();
        let unstorable: Vec<bool> = streams.iter().map(|s| !storable_stream(s)).collect();
        if let Some(&bad) = pick.iter().find(|&&i| unstorable[frames.stream_of(i)]) {
            let (epoch, seq) = frames.id(bad);
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "record {epoch}.{seq} has stream {:?}, which the primary store cannot hold",
                    streams[frames.stream_of(bad)]
                ),
            ));
        }
        let today = OffsetDateTime::now_utc().date();
        // The lines of each file, in order of first appearance, so each file takes one write.
        let mut groups: Vec<(usize, Date, Vec<&[u8]>)> = Vec::new();
        // Per stream of the batch: how it is filed, the group of its current day, its last record.
        let mut filing: Vec<Option<(StreamDays, usize, usize)>> = Vec::new();
        filing.resize_with(streams.len(), || None);
        // Per stream: the newest day file it had before this batch.
        let mut newest: Vec<Option<Date>> = vec![None; streams.len()];
        for &i in pick {
            let stream = frames.stream_of(i);
            let (days, group, last) = match &mut filing[stream] {
                Some(f) => f,
                none => {
                    newest[stream] = newest_day(&root.path, &streams[stream])?;
                    none.insert((StreamDays::new(newest[stream]), usize::MAX, i))
                }
            };
            let day = days.file_day(frames.ts_bytes(i), today);
            // Days only grow within a stream: a new day is a new group.
            if groups.get(*group).is_none_or(|g| g.1 != day) {
                groups.push((stream, day, Vec::new()));
                *group = groups.len() - 1;
            }
            groups[*group].2.push(frames.line(i));
            *last = i;
        }
        let mut last: Vec<(&str, usize)> = filing
            .iter()
            .enumerate()
            .filter_map(|(s, f)| f.as_ref().map(|f| (streams[s].as_str(), f.2)))
            .collect();
        last.sort_unstable();

        let mut written = Written::default();
        for (stream, day, lines) in &groups {
            let dir = ensure_dir(
                &root,
                &Path::new(RAW).join(&streams[*stream]),
                &mut written.dirs,
            )?;
            // A stream's newest file holds its last id (see the module doc): before a newer
            // day's file gets a line, the older one's lines must be durable, or a crash could
            // keep the newer file and lose the older one's tail, and the ids read back would
            // skip it. Once a day per stream, so it costs nothing worth mentioning.
            if let Some(older) = newest[*stream].filter(|d| d < day) {
                // And a torn last line there is cut now: once a newer file exists no append
                // goes to this one again, and a record it may have held is sent again anyway.
                let (older, _) = open_for_append(&dir.join(day_file(older)))?;
                older.sync_data()?;
                root.fault(faults::Op::Fsync, &dir)?;
                sync_dir(&dir)?;
            }
            newest[*stream] = Some(*day);
            let path = dir.join(day_file(*day));
            root.fault(faults::Op::Open, &path)?;
            let (file, created) = open_for_append(&path)?;
            root.fault(faults::Op::Write, &path)?;
            write_lines(&file, lines)?;
            if created {
                written.dirs.insert(dir);
            }
            written.files.push((path, file));
            written.stats.items += lines.len();
            written.stats.bytes += lines.iter().map(|l| l.len()).sum::<usize>();
        }
        written.roots.push(root);
        written.latest = last
            .into_iter()
            .map(|(stream, n)| (stream.to_string(), frames.get(n).json().to_vec()))
            .collect();
        Ok(written)
    }

    /// The second half of [`Primary::append`]: makes what [`Primary::write`] wrote durable, then
    /// replaces `latest/`.
    pub fn sync(&self, mut written: Written) -> io::Result<AppendStats> {
        // Taken out, so that they are closed here, on this thread (see `Written`'s drop).
        let files = std::mem::take(&mut written.files);
        let dirs = std::mem::take(&mut written.dirs);
        let latest = std::mem::take(&mut written.latest);
        let root = match written.roots.last() {
            Some(r) => r.clone(),
            None if latest.is_empty() => return Ok(written.stats),
            None => self.open_root()?,
        };
        // Every file was written before the first fsync, so the kernel writes them back
        // together; a file written by several batches is fsynced once.
        let mut synced = BTreeSet::new();
        for (path, file) in &files {
            if synced.insert(path) {
                root.fault(faults::Op::Fsync, path)?;
                file.sync_data()?;
            }
        }
        // New files and directories exist for sure only once their parents' entries are synced.
        for dir in dirs {
            root.fault(faults::Op::Fsync, &dir)?;
            sync_dir(&dir)?;
        }
        let mut dirty = BTreeSet::new();
        for (stream, json) in latest {
            let rel = Path::new(LATEST).join(format!("{stream}.json"));
            let parent = rel.parent().unwrap_or(Path::new(LATEST));
            let dir = ensure_dir(&root, parent, &mut dirty)?;
            let name = rel.file_name().unwrap_or_default();
            root.fault(faults::Op::Rename, &dir)?;
            write_atomic(&dir.join(name), &json)?;
        }
        for dir in dirty {
            sync_dir(&dir)?;
        }
        Ok(written.stats)
    }

    /// Which of the frames `pick` the store does not hold as they are: each is at or below its
    /// stream's last id here, which forwarding takes as "already sent", and this checks it. A
    /// frame whose id is here with the same line was sent before (a resend after a crash), and so
    /// was one whose record is here under a higher id (moved by a rehome, then restored from an
    /// older copy of the journal); one whose id is here with another line, or not here at all, is
    /// a conflict: the journal
    /// numbered it under ids the store already holds (a wiped or restored journal, a second
    /// writer), and skipping it would lose it. Reads each stream's files from the end, back to
    /// the lowest id asked for. What it finds held it makes durable first (the file and its
    /// directories fsynced): the write that put it there may have timed out before its own fsync.
    pub fn not_held(&self, frames: &Frames, pick: &[usize]) -> io::Result<Vec<usize>> {
        let root = self.open_root()?;
        let mut by_stream: BTreeMap<usize, HashMap<(u64, u64), usize>> = BTreeMap::new();
        for &i in pick {
            by_stream
                .entry(frames.stream_of(i))
                .or_default()
                .insert(frames.id(i), i);
        }
        let mut out = Vec::new();
        for (stream, mut wanted) in by_stream {
            let lowest = wanted.keys().min().copied().unwrap_or_default();
            let name = &frames.streams()[stream];
            let mut files: Vec<Date> = Vec::new();
            if let Ok(entries) = fs::read_dir(root.path.join(RAW).join(name)) {
                for e in entries {
                    let e = e?;
                    if e.file_type()?.is_file() {
                        files.extend(e.file_name().to_str().and_then(date_of_file));
                    }
                }
            }
            files.sort_unstable();
            let dir = root.path.join(RAW).join(name);
            // The records (all but their ids) seen at or above the lowest id asked for: a
            // record moved to a higher id (a rehome) is held all the same.
            let mut moved: HashSet<Vec<u8>> = HashSet::new();
            let mut synced_in = false;
            'files: for day in files.iter().rev() {
                let path = dir.join(day_file(*day));
                let file = File::open(&path)?;
                let mut done = false;
                let before = wanted.len();
                each_line_backwards(&file, |line| {
                    let Ok(id) = serde_json::from_slice::<LineId>(line) else {
                        return true;
                    };
                    let id = (id.epoch, id.seq);
                    if id < lowest {
                        done = true;
                        return false;
                    }
                    match wanted.get(&id) {
                        Some(&i) if frames.get(i).json() == line => {
                            wanted.remove(&id);
                        }
                        _ => {
                            moved.extend(without_id(line).map(<[u8]>::to_vec));
                        }
                    }
                    done = wanted.is_empty();
                    !done
                })?;
                if wanted.len() < before {
                    // Held is only as good as durable: the write that put these lines here may
                    // have timed out before its fsync, its file closed unsynced. Forwarding
                    // counts them (and releases their journal segment) on this answer.
                    root.fault(faults::Op::Fsync, &path)?;
                    file.sync_data()?;
                    synced_in = true;
                }
                if done {
                    break 'files;
                }
            }
            if synced_in {
                // And the entries that name them, up to the root: that write may have made
                // the file, or the stream's directory.
                let mut d = dir.as_path();
                while d.starts_with(&root.path) {
                    root.fault(faults::Op::Fsync, d)?;
                    sync_dir(d)?;
                    match d.parent() {
                        Some(up) if up != root.path => d = up,
                        _ => break,
                    }
                }
            }
            out.extend(
                wanted.into_values().filter(|&i| {
                    without_id(frames.get(i).json()).is_none_or(|r| !moved.contains(r))
                }),
            );
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Reads every stream's history in date order and reports gaps, duplicates, out-of-order
    /// ids and unreadable lines. Fails with [`io::ErrorKind::NotFound`] if the root is missing.
    pub fn verify(&self) -> io::Result<VerifyReport> {
        let mut report = VerifyReport {
            root: self.root.clone(),
            records: 0,
            streams: Vec::new(),
            problems: Vec::new(),
        };
        // Read-only: a missing or unmarked root is reported, never created or refused.
        let root = open_dir(&self.root)?;
        for (stream, files) in streams(&root.path)? {
            let mut check = StreamCheck::new(&stream);
            let newest = files.len() - 1;
            for (i, (_, path)) in files.iter().enumerate() {
                let rel = path.strip_prefix(&root.path).unwrap_or(path);
                check.file(path, rel.display().to_string(), i == newest)?;
            }
            let (summary, problems) = check.finish();
            report.records += summary.records;
            report.streams.push(summary);
            report.problems.extend(problems);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::StoredRecord;
    use serde_json::json;
    use std::fs::OpenOptions;

    /// Records appended as the sync actor does, from their journal frames.
    trait AppendRecords {
        fn append_records(&self, records: &[StoredRecord]) -> io::Result<AppendStats>;
    }

    impl AppendRecords for Primary {
        fn append_records(&self, records: &[StoredRecord]) -> io::Result<AppendStats> {
            let frames = Frames::of(records).unwrap();
            self.append(&frames, &(0..frames.len()).collect::<Vec<_>>())
        }
    }

    fn rec(stream: &str, epoch: u64, seq: u64, ts: &str) -> StoredRecord {
        StoredRecord::new(
            epoch,
            seq,
            ts.into(),
            stream.into(),
            "node".into(),
            json!({"n": seq}),
        )
    }

    /// Records `from..=to` of one stream and epoch, all on one day.
    fn recs(stream: &str, epoch: u64, from: u64, to: u64, day: &str) -> Vec<StoredRecord> {
        (from..=to)
            .map(|s| rec(stream, epoch, s, &format!("{day}T10:00:00.000Z")))
            .collect()
    }

    fn line(r: &StoredRecord) -> String {
        serde_json::to_string(r).unwrap() + "\n"
    }

    fn lines(rs: &[StoredRecord]) -> String {
        rs.iter().map(line).collect()
    }

    fn store() -> (tempfile::TempDir, Primary) {
        let dir = tempfile::tempdir().unwrap();
        let p = Primary::new(dir.path().join("primary"));
        fs::create_dir(p.root()).unwrap();
        (dir, p)
    }

    /// Writes a day file by hand, as a foreign hand or a crash would have left it.
    fn put(p: &Primary, stream: &str, day: &str, text: &str) {
        let dir = p.root().join(RAW).join(stream);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("{day}.jsonl")), text).unwrap();
    }

    fn read(p: &Primary, stream: &str, day: &str) -> String {
        fs::read_to_string(p.root().join(RAW).join(stream).join(format!("{day}.jsonl"))).unwrap()
    }

    fn kinds(report: &VerifyReport) -> Vec<ProblemKind> {
        report.problems.iter().map(|p| p.kind).collect()
    }

    /// What the sync actor does: forward only what lies above the primary's last id.
    fn forward(p: &Primary, records: &[StoredRecord]) -> AppendStats {
        let last = p.last_ids().unwrap();
        let todo: Vec<StoredRecord> = records
            .iter()
            .filter(|r| match last.get(&r.stream) {
                Some(l) => (r.epoch, r.seq) > *l,
                None => true,
            })
            .cloned()
            .collect();
        p.append_records(&todo).unwrap()
    }

    #[test]
    fn lines_follow_the_spec_layout_and_latest_holds_the_newest() {
        let (_d, p) = store();
        let mut batch = recs("binance/trades", 3, 1, 2, "2026-11-20");
        batch.push(rec("binance/trades", 3, 3, "2026-11-21T00:00:00.001Z"));
        // 09:00 in Tokyo on the 21st is still the 20th in UTC.
        batch.push(rec("tokyo", 1, 1, "2026-11-21T08:00:00+09:00"));
        let stats = p.append_records(&batch).unwrap();
        assert_eq!(stats.items, 4);
        assert_eq!(
            stats.bytes,
            batch.iter().map(|r| line(r).len()).sum::<usize>()
        );
        assert_eq!(read(&p, "binance/trades", "2026-11-20"), lines(&batch[..2]));
        assert!(read(&p, "binance/trades", "2026-11-20").starts_with(
            r#"{"id":"3.1","epoch":3,"seq":1,"ts":"2026-11-20T10:00:00.000Z","stream":"binance/trades","node":"node","data":{"n":1}}"#
        ));
        assert_eq!(read(&p, "binance/trades", "2026-11-21"), line(&batch[2]));
        assert_eq!(read(&p, "tokyo", "2026-11-20"), line(&batch[3]));
        let latest: StoredRecord =
            serde_json::from_slice(&fs::read(p.root().join("latest/binance/trades.json")).unwrap())
                .unwrap();
        assert_eq!(latest, batch[2]);
        assert!(p.root().join("latest/tokyo.json").is_file());
        assert!(p.verify().unwrap().is_clean());
    }

    #[test]
    fn writes_merged_into_one_sync_land_like_appends_and_latest_takes_the_newest() {
        let (_d, p) = store();
        let first = recs("a", 1, 1, 3, "2026-11-21");
        let mut second = recs("a", 1, 4, 5, "2026-11-21");
        second.extend(recs("b", 1, 1, 2, "2026-11-22"));
        let (f1, f2) = (Frames::of(&first).unwrap(), Frames::of(&second).unwrap());
        let mut written = p.write(&f1, &[0, 1, 2]).unwrap();
        // Written, not synced: the lines are there for a reader already, latest/ is not.
        assert_eq!(read(&p, "a", "2026-11-21"), lines(&first));
        assert!(!p.root().join("latest/a.json").exists());
        written.merge(p.write(&f2, &[0, 1, 2, 3]).unwrap());
        assert_eq!(written.stats().items, 7);
        let stats = p.sync(written).unwrap();
        assert_eq!(stats.items, 7);
        assert_eq!(
            read(&p, "a", "2026-11-21"),
            lines(&first) + &lines(&second[..2])
        );
        assert_eq!(read(&p, "b", "2026-11-22"), lines(&second[2..]));
        let latest = |s: &str| -> StoredRecord {
            serde_json::from_slice(&fs::read(p.root().join(format!("latest/{s}.json"))).unwrap())
                .unwrap()
        };
        assert_eq!(latest("a"), second[1]);
        assert_eq!(latest("b"), second[3]);
        assert_eq!(p.last_ids().unwrap()["a"], (1, 5));
        assert!(p.verify().unwrap().is_clean());
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_resent_records_leave_no_duplicate_or_gap() {
        let all = recs("s", 1, 1, 8, "2026-11-21");
        // Two ways a crash can tear the last line: mid-record, and just before its newline.
        for torn in [
            line(&all[3])[..20].to_string(),
            line(&all[3]).trim_end().to_string(),
        ] {
            let (_d, p) = store();
            forward(&p, &all[..3]);
            let path = p.root().join("raw/s/2026-11-21.jsonl");
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(torn.as_bytes()).unwrap();

            assert_eq!(
                p.last_ids().unwrap()["s"],
                (1, 3),
                "a torn line never counts"
            );
            let report = p.verify().unwrap();
            assert!(report.is_clean(), "{report:?}");
            assert_eq!(report.streams[0].torn_tail.as_ref().unwrap().line, 4);

            assert_eq!(forward(&p, &all).items, 5);
            assert_eq!(read(&p, "s", "2026-11-21"), lines(&all));
            assert_eq!(p.last_ids().unwrap()["s"], (1, 8));
            let report = p.verify().unwrap();
            assert!(report.is_clean(), "{report:?}");
            assert_eq!(report.records, 8);
            assert_eq!(report.streams[0].torn_tail, None);
        }
    }

    #[test]
    fn a_file_with_only_a_torn_line_is_emptied_and_refilled() {
        let (_d, p) = store();
        let all = recs("s", 1, 1, 2, "2026-11-21");
        put(&p, "s", "2026-11-21", &line(&all[0])[..10]);
        assert!(p.last_ids().unwrap().is_empty());
        forward(&p, &all);
        assert_eq!(read(&p, "s", "2026-11-21"), lines(&all));
    }

    #[test]
    fn last_ids_spans_days_nested_streams_and_empty_or_broken_newest_files() {
        let (_d, p) = store();
        let mut batch = recs("a", 1, 1, 3, "2026-11-19");
        batch.extend(recs("a", 1, 4, 5, "2026-11-20"));
        batch.extend(recs("a/b", 2, 1, 3, "2026-11-19"));
        batch.extend(recs("a/b/c", 1, 1, 1, "2026-11-21"));
        p.append_records(&batch).unwrap();
        // A newest file created just before a crash, and one holding only garbage.
        put(&p, "a", "2026-11-21", "");
        put(&p, "a/b", "2026-11-20", "not json\n");
        let last = p.last_ids().unwrap();
        assert_eq!(
            last,
            BTreeMap::from([
                ("a".to_string(), (1, 5)),
                ("a/b".to_string(), (2, 3)),
                ("a/b/c".to_string(), (1, 1)),
            ])
        );
        // A later line that is broken is skipped back over, not taken as the end.
        put(
            &p,
            "a/b/c",
            "2026-11-21",
            &(lines(&recs("a/b/c", 1, 1, 2, "2026-11-21")) + "{\"id\":\n"),
        );
        assert_eq!(p.last_ids().unwrap()["a/b/c"], (1, 2));
    }

    #[test]
    fn last_ids_reads_long_files_from_the_end() {
        let (_d, p) = store();
        // Lines longer than a read chunk, across several chunks.
        let big: Vec<StoredRecord> = (1..=5)
            .map(|s| {
                let mut r = rec("s", 1, s, "2026-11-21T10:00:00Z");
                r.data = json!({"pad": "x".repeat(100_000)});
                r
            })
            .collect();
        p.append_records(&big).unwrap();
        assert_eq!(p.last_ids().unwrap()["s"], (1, 5));
    }

    #[test]
    fn last_ids_of_a_missing_root_is_an_error_and_of_an_empty_store_empty() {
        let (d, _) = store();
        let external = Primary::external(d.path().join("absent"));
        assert_eq!(
            external.last_ids().unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let p = Primary::new(d.path().join("absent"));
        assert_eq!(p.verify().unwrap_err().kind(), io::ErrorKind::NotFound);
        p.probe().unwrap();
        assert!(p.last_ids().unwrap().is_empty());
        assert!(p.verify().unwrap().is_clean());
    }

    #[test]
    fn a_ts_that_goes_back_across_midnight_stays_in_the_newest_file() {
        let (_d, p) = store();
        let batch = [
            rec("s", 1, 1, "2026-11-20T23:59:59.990Z"),
            rec("s", 1, 2, "2026-11-21T00:00:00.001Z"),
            rec("s", 1, 3, "2026-11-20T23:59:59.999Z"),
            rec("s", 1, 4, "not a time"),
        ];
        p.append_records(&batch[..2]).unwrap();
        p.append_records(&batch[2..]).unwrap();
        assert_eq!(read(&p, "s", "2026-11-20"), line(&batch[0]));
        assert_eq!(read(&p, "s", "2026-11-21"), lines(&batch[1..]));
        assert_eq!(p.last_ids().unwrap()["s"], (1, 4));
        assert!(p.verify().unwrap().is_clean());
    }

    #[test]
    fn filing_by_the_cached_day_agrees_with_parsing_every_ts() {
        use rand::{Rng, SeedableRng};
        let today = OffsetDateTime::now_utc().date();
        let tomorrow = day_file(today.next_day().unwrap()).replace(".jsonl", "");
        let times = [
            "2026-11-20T23:59:59.990Z".to_string(),
            "2026-11-21T00:00:00.001Z".into(),
            "2026-11-21T10:00:00Z".into(),
            "2026-11-21Tgarbage Z".into(),
            "2026-11-21T23:00:00-05:00".into(),
            "2026-11-22T01:00:00+05:00".into(),
            "2026-11-21".into(),
            "garbage".into(),
            "é".into(),
            "2999-01-01T00:00:00Z".into(),
            format!("{tomorrow}T12:00:00Z"),
            format!("{tomorrow}Tbad Z"),
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..2000 {
            let start = [
                None,
                Some(Date::from_calendar_date(2026, time::Month::November, 21).unwrap()),
            ][rng.random_range(0..2)];
            let mut cached = StreamDays::new(start);
            let mut newest = start;
            for _ in 0..rng.random_range(1..12) {
                let ts = &times[rng.random_range(0..times.len())];
                let want = file_day(ts, newest, today);
                newest = Some(want);
                assert_eq!(
                    cached.file_day(ts.as_bytes(), today),
                    want,
                    "{ts} after {start:?}"
                );
            }
        }
    }

    #[test]
    fn untrusted_times_go_to_today_for_a_new_stream() {
        let (_d, p) = store();
        let today = day_file(OffsetDateTime::now_utc().date());
        p.append_records(&[
            rec("s", 1, 1, "garbage"),
            rec("s", 1, 2, "2999-01-01T00:00:00Z"),
        ])
        .unwrap();
        let files: Vec<_> = fs::read_dir(p.root().join("raw/s"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files, [today]);
    }

    #[test]
    fn append_rejects_streams_that_could_leave_the_root_or_collide() {
        let (d, p) = store();
        for bad in [
            "../x",
            "a/../../x",
            "/x",
            "a/2026-11-21.jsonl",
            "a.json/b",
            "",
        ] {
            let mut batch = recs("ok", 1, 1, 1, "2026-11-21");
            batch.push(rec(bad, 1, 1, "2026-11-21T10:00:00Z"));
            let err = p.append_records(&batch).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
        // Nothing written at all, inside the root (but its marker) or beside it.
        assert_eq!(fs::read_dir(p.root()).unwrap().count(), 1);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        assert!(storable_stream("a.json"));
        assert!(storable_stream("2026-11-21.jsonl"));
    }

    #[test]
    fn probe_creates_the_root_and_leaves_nothing_behind() {
        let (d, _) = store();
        let p = Primary::new(d.path().join("nas/fushi"));
        p.probe().unwrap();
        p.probe().unwrap();
        assert!(p.root().is_dir());
        let left: Vec<_> = fs::read_dir(p.root())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [MARKER], "only the marker stays");
    }

    #[test]
    fn an_external_store_without_its_marker_is_never_written() {
        let (d, _) = store();
        // An unmounted NAS: the mountpoint is an empty local directory.
        let mountpoint = d.path().join("mnt/nas");
        fs::create_dir_all(&mountpoint).unwrap();
        let p = Primary::external(&mountpoint);
        let err = p.probe().unwrap_err();
        assert!(err.to_string().contains("is the NAS mounted?"), "{err}");
        assert!(p
            .append_records(&[rec("s", 1, 1, "2026-11-21T10:00:00.000Z")])
            .is_err());
        assert!(p.last_ids().is_err());
        assert_eq!(
            fs::read_dir(&mountpoint).unwrap().count(),
            0,
            "nothing written under the mountpoint"
        );
        let absent = Primary::external(d.path().join("absent"));
        assert!(absent.probe().is_err());
        assert!(
            !d.path().join("absent").exists(),
            "an external root is never created"
        );
        p.init().unwrap();
        p.probe().unwrap();
        assert_eq!(
            p.append_records(&[rec("s", 1, 1, "2026-11-21T10:00:00.000Z")])
                .unwrap()
                .items,
            1
        );
    }

    /// Issue 9, case 3: the marker was checked once by path and everything after went by path,
    /// so a NAS unmounted under a batch had the rest of it land in the bare mountpoint. Now one
    /// verified handle carries the whole batch, its sync and its `latest/` entries.
    #[test]
    fn a_store_swapped_under_a_batch_never_gets_its_writes_and_is_another_store_after() {
        let (d, _) = store();
        let mnt = d.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let p = Primary::external(&mnt);
        p.init().unwrap();
        let batch = recs("s", 1, 1, 3, "2026-11-21");
        let frames = Frames::of(&batch).unwrap();
        let written = p.write(&frames, &[0, 1, 2]).unwrap();
        // "Unmounted": the store moves away and an empty directory is left at its path.
        let nas = d.path().join("nas");
        fs::rename(&mnt, &nas).unwrap();
        fs::create_dir(&mnt).unwrap();
        p.sync(written).unwrap();
        assert_eq!(
            fs::read_dir(&mnt).unwrap().count(),
            0,
            "nothing in the mountpoint"
        );
        let on_nas = Primary::external(&nas);
        assert_eq!(on_nas.last_ids().unwrap()["s"], (1, 3));
        assert!(
            nas.join("latest/s.json").is_file(),
            "latest/ went with the batch"
        );
        let err = p.write(&frames, &[0]).unwrap_err();
        assert!(err.to_string().contains("is the NAS mounted?"), "{err}");
        assert!(p.probe().is_err() && p.last_ids().is_err());
        assert_eq!(fs::read_dir(&mnt).unwrap().count(), 0, "still nothing");
        // Mounted again: the same store is the same store.
        fs::remove_dir(&mnt).unwrap();
        fs::rename(&nas, &mnt).unwrap();
        p.probe().unwrap();
        assert_eq!(p.last_ids().unwrap()["s"], (1, 3));
        // Another marked store in its place is refused once, so that its ids are read again.
        let other = d.path().join("other");
        Primary::external(&other).init().unwrap();
        fs::rename(&mnt, &nas).unwrap();
        fs::rename(&other, &mnt).unwrap();
        let err = p.probe().unwrap_err();
        assert!(
            err.to_string().contains("another directory than before"),
            "{err}"
        );
        p.probe().unwrap();
        assert!(p.last_ids().unwrap().is_empty());
    }

    /// Issue 9, case 2: a frame at or below the primary's last id is only "already sent" when the
    /// primary holds that very line; a reused id with other data is a conflict, never skipped.
    #[test]
    fn not_held_tells_a_resend_from_a_reused_id() {
        let (_d, p) = store();
        let mut on_primary = recs("s", 1, 1, 3, "2026-11-20");
        on_primary.extend(recs("s", 1, 4, 6, "2026-11-21"));
        on_primary.push({
            let mut r = rec("s", 1, 7, "2026-11-21T10:00:00Z");
            r.data = json!({"pad": "y".repeat(3 * CHUNK as usize)});
            r
        });
        p.append_records(&on_primary).unwrap();
        put(
            &p,
            "s",
            "2026-11-21",
            &(lines(&on_primary[3..]) + "{\"id\":\"1.8\""),
        );
        // The same records: a resend after a crash.
        let frames = Frames::of(&on_primary).unwrap();
        let all: Vec<usize> = (0..frames.len()).collect();
        assert!(p.not_held(&frames, &all).unwrap().is_empty());
        // A fresh journal numbering from 1.1 again: other data under ids the primary holds.
        let mut reused = on_primary.clone();
        reused[1].data = json!({"other": true});
        reused[5].data = json!({"other": true});
        let mut t = rec("t", 1, 1, "2026-11-21T10:00:00Z");
        t.data = json!("never forwarded");
        reused.push(t);
        let frames = Frames::of(&reused).unwrap();
        let all: Vec<usize> = (0..frames.len()).collect();
        assert_eq!(p.not_held(&frames, &all).unwrap(), [1, 5, 7]);
        // A record the primary holds under a higher id (moved there by a rehome) is held.
        let mut moved = on_primary[6].clone();
        moved.id = "1.2".into();
        moved.seq = 2;
        let frames = Frames::of(&[moved]).unwrap();
        assert!(p.not_held(&frames, &[0]).unwrap().is_empty());
    }

    /// A line is held only once durable: the write that put it there may have timed out before
    /// its fsync, so the answer "held" fsyncs the files (and their directories) it found it in,
    /// and a failing fsync is an error, not "held".
    #[test]
    fn not_held_makes_what_it_finds_durable_before_calling_it_held() {
        use crate::faults::{self, Op};
        let (d, p) = store();
        let on_primary = recs("s/x", 1, 1, 3, "2026-11-20");
        p.append_records(&on_primary).unwrap();
        let frames = Frames::of(&on_primary).unwrap();
        let file = p.root().join("raw/s/x/2026-11-20.jsonl");
        faults::arm(Op::Fsync, &file, 0, 1, nix::libc::EIO);
        assert!(
            p.not_held(&frames, &[0, 1, 2]).is_err(),
            "a failed fsync is not 'held'"
        );
        let dir = p.root().join("raw/s");
        faults::arm(Op::Fsync, &dir, 0, 1, nix::libc::EIO);
        assert!(
            p.not_held(&frames, &[2]).is_err(),
            "the stream's directories are made durable too"
        );
        faults::disarm(d.path());
        assert!(p.not_held(&frames, &[0, 1, 2]).unwrap().is_empty());
        // Nothing found, nothing to make durable: a missing record is a conflict, no fsync.
        faults::arm(Op::Fsync, &file, 0, u32::MAX, nix::libc::EIO);
        let other = recs("t", 1, 1, 1, "2026-11-20");
        assert_eq!(p.not_held(&Frames::of(&other).unwrap(), &[0]).unwrap(), [0]);
        faults::disarm(d.path());
    }

    /// Injected failures reach every step of a batch; a failed one leaves no line counted.
    #[test]
    fn injected_primary_failures_fail_the_operation_they_hit() {
        use crate::faults::{self, Op};
        for (op, what) in [
            (Op::Open, "open"),
            (Op::Write, "write"),
            (Op::Fsync, "fsync"),
            (Op::Rename, "rename"),
            (Op::Marker, "marker"),
        ] {
            let (_d, p) = store();
            let batch = recs("s", 1, 1, 2, "2026-11-21");
            faults::arm(op, p.root(), 0, 1, nix::libc::EIO);
            let r = p.append_records(&batch);
            assert!(r.is_err(), "{what}: {r:?}");
            faults::disarm(p.root());
            forward(&p, &batch);
            assert_eq!(p.last_ids().unwrap()["s"], (1, 2), "{what}");
            assert!(p.verify().unwrap().is_clean(), "{what}");
        }
    }

    #[test]
    fn verify_summarises_clean_streams() {
        let (_d, p) = store();
        let mut batch = recs("a", 1, 1, 3, "2026-11-20");
        batch.extend(recs("a", 1, 4, 4, "2026-11-21"));
        batch.extend(recs("a", 2, 1, 2, "2026-11-21"));
        batch.extend(recs("a/b", 1, 1, 1, "2026-11-21"));
        p.append_records(&batch).unwrap();
        let report = p.verify().unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.records, 7);
        assert_eq!(
            report.streams[0],
            StreamSummary {
                stream: "a".into(),
                files: 2,
                records: 6,
                epochs: vec![1, 2],
                first_id: Some("1.1".into()),
                last_id: Some("2.2".into()),
                torn_tail: None,
            }
        );
        assert_eq!(report.streams[1].stream, "a/b");
    }

    #[test]
    fn verify_finds_gaps_in_and_before_an_epoch_and_across_files() {
        let (_d, p) = store();
        let mut one = recs("s", 1, 1, 2, "2026-11-20");
        one.extend(recs("s", 1, 5, 5, "2026-11-20"));
        put(&p, "s", "2026-11-20", &lines(&one));
        let mut two = recs("s", 1, 7, 7, "2026-11-21");
        two.extend(recs("s", 2, 3, 4, "2026-11-21"));
        put(&p, "s", "2026-11-21", &lines(&two));
        let report = p.verify().unwrap();
        let gaps: Vec<_> = report
            .problems
            .iter()
            .map(|p| (p.kind, p.file.as_str(), p.line, p.count))
            .collect();
        assert_eq!(
            gaps,
            [
                (ProblemKind::Gap, "raw/s/2026-11-20.jsonl", 3, 2),
                (ProblemKind::Gap, "raw/s/2026-11-21.jsonl", 1, 1),
                (ProblemKind::Gap, "raw/s/2026-11-21.jsonl", 2, 2),
            ]
        );
        assert_eq!(
            report.problems[0].message,
            "epoch 1: seqs 3..4 missing (2 records) between 1.2 (raw/s/2026-11-20.jsonl:2) and 1.5"
        );
        assert!(report.problems[2].message.contains("seqs 1..2 missing"));
        assert!(report.problems[2].message.contains("before 2.3"));
    }

    #[test]
    fn verify_finds_duplicates_and_reports_a_resent_run_once() {
        let (_d, p) = store();
        let all = recs("s", 1, 1, 6, "2026-11-21");
        let mut text = lines(&all[..4]);
        text += &lines(&all[1..4]); // a batch sent twice
        text += &lines(&all[4..]);
        text += &line(&all[0]); // and a lone old one
        put(&p, "s", "2026-11-21", &text);
        let report = p.verify().unwrap();
        assert_eq!(
            kinds(&report),
            [ProblemKind::Duplicate, ProblemKind::Duplicate]
        );
        let (a, b) = (&report.problems[0], &report.problems[1]);
        assert_eq!((a.line, a.count), (5, 3));
        assert_eq!(a.message, "ids 1.2..1.4 (3 records) seen before");
        assert_eq!((b.line, b.count), (10, 1));
        assert_eq!(b.message, "id 1.1 seen before");
    }

    #[test]
    fn verify_finds_out_of_order_seqs_and_epochs() {
        let (_d, p) = store();
        let r = |e, s| rec("s", e, s, "2026-11-21T10:00:00Z");
        let text = lines(&[
            r(1, 1),
            r(1, 3),
            r(1, 2),
            r(1, 4),
            r(2, 1),
            r(1, 5),
            r(2, 2),
        ]);
        put(&p, "s", "2026-11-21", &text);
        let report = p.verify().unwrap();
        assert_eq!(
            kinds(&report),
            [ProblemKind::OutOfOrder, ProblemKind::OutOfOrder]
        );
        assert_eq!(report.problems[0].line, 3);
        assert_eq!(
            report.problems[0].message,
            "id 1.2 after 1.3 (the seq goes backwards)"
        );
        assert_eq!(report.problems[1].line, 6);
        assert_eq!(
            report.problems[1].message,
            "id 1.5 after 2.1 (the epoch goes backwards)"
        );
    }

    #[test]
    fn verify_finds_unparseable_mismatched_and_torn_lines() {
        let (_d, p) = store();
        let all = recs("s", 1, 1, 4, "2026-11-20");
        let mut wrong_id = all[1].clone();
        wrong_id.id = "1.9".into();
        let mut wrong_stream = all[2].clone();
        wrong_stream.stream = "t".into();
        let text = line(&all[0])
            + "garbage\n\n"
            + &line(&wrong_id)
            + &line(&wrong_stream)
            + &line(&all[3])[..15];
        put(&p, "s", "2026-11-20", &text);
        put(
            &p,
            "s",
            "2026-11-21",
            &lines(&recs("s", 1, 5, 5, "2026-11-21")),
        );
        let report = p.verify().unwrap();
        let found: Vec<_> = report
            .problems
            .iter()
            .map(|p| (p.kind, p.line, p.count))
            .collect();
        assert_eq!(
            found,
            [
                (ProblemKind::Unparseable, 2, 2),
                (ProblemKind::Mismatch, 4, 1),
                (ProblemKind::Mismatch, 5, 1),
                (ProblemKind::Torn, 6, 1),
                // The torn record 1.4 never made it: a gap too.
                (ProblemKind::Gap, 1, 1),
            ]
        );
        assert!(report.problems[0].message.starts_with("not a record: "));
        assert!(report.problems[0].message.ends_with("(and the next line)"));
        assert_eq!(
            report.problems[1].message,
            "id \"1.9\" does not match epoch 1 and seq 2"
        );
        assert_eq!(report.problems[2].message, "record 1.3 says stream \"t\"");
        assert!(report.problems[4]
            .message
            .contains("seq 4 missing (1 record)"));
        assert_eq!(report.problems[4].file, "raw/s/2026-11-21.jsonl");
    }

    #[test]
    fn report_serialises_for_json_output() {
        let (_d, p) = store();
        put(
            &p,
            "s",
            "2026-11-21",
            &lines(&recs("s", 1, 2, 2, "2026-11-21")),
        );
        let v = serde_json::to_value(p.verify().unwrap()).unwrap();
        assert_eq!(v["records"], 1);
        assert_eq!(v["streams"][0]["epochs"], json!([1]));
        assert_eq!(v["problems"][0]["kind"], "gap");
        assert_eq!(v["problems"][0]["file"], "raw/s/2026-11-21.jsonl");
        assert!(v["streams"][0].get("torn_tail").is_none());
    }
}
