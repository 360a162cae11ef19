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
//! neither a duplicate nor a gap. And a node's ids only grow from file to file: a record goes to
//! the UTC day of its `ts`, but never to a day older than the stream's newest file (see
//! [`Primary::append`]), so a node's last line in a stream is its last id there.
//!
//! Several nodes may forward to one store (leader election, SPEC §4.4): the leader of each epoch
//! is its only writer, and a fenced or demoted leader still forwards its late records of an older
//! epoch after the new leader's. So a stream's file holds several nodes' lines interleaved, each
//! node's own in ascending (epoch, seq) order. Everything that reads ids back for forwarding
//! ([`Primary::last_ids`], [`Primary::not_held`]) looks only at the lines of the node the store
//! is opened for ([`Primary::for_node`]); `verify` checks continuity per epoch, whoever wrote it.
//! Each node keeps a write-intent hint (`nodes/<node>.json`, see `hint.rs`), so that reading its
//! last ids never reads the history of a stream it never wrote.

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
mod hint;
mod root;
mod verify;

use crate::fs::{sync_dir, write_atomic};
use crate::journal::Frames;
use crate::records::valid_stream;
use days::*;
use files::*;
use hint::Hint;
use root::*;
use verify::*;
pub use verify::{
    EpochCoverage, EpochWriter, Location, Problem, ProblemKind, StreamSummary, VerifyReport,
};

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
    /// The node this store is forwarded for ([`Primary::for_node`]): only its lines are its ids.
    /// None reads and writes the store as its only writer (every line counts, no hint is kept):
    /// what readers, benches and single-writer tests use.
    node: Option<Arc<str>>,
    /// The node's hint as last read or written, so that a write does not read it every batch;
    /// None until then, and again once the store's identity changes.
    hint: Arc<Mutex<Option<Hint>>>,
}

/// Stream → (epoch, seq).
type Ids = BTreeMap<String, (u64, u64)>;

/// The parts of a primary line that say whose id it is.
#[derive(serde::Deserialize)]
struct LineOwner<'a> {
    epoch: u64,
    seq: u64,
    /// Borrowed when it can be: a name with an escape in it needs its own copy.
    #[serde(borrow)]
    node: std::borrow::Cow<'a, str>,
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
            node: None,
            hint: Arc::default(),
        }
    }

    /// A store elsewhere (a NAS): used only when it carries [`MARKER`].
    pub fn external(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            create: false,
            identity: Arc::default(),
            node: None,
            hint: Arc::default(),
        }
    }

    /// This store as forwarded for `node`: its last ids are the node's own lines', and its
    /// writes keep the node's hint.
    pub fn for_node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(Arc::from(node.into()));
        self.hint = Arc::default();
        self
    }

    /// Whether `line` (a primary line) is one of ours and, if so, its id; None for another
    /// node's line and for one that does not parse.
    fn our_id(&self, line: &[u8]) -> Option<(u64, u64)> {
        let l = serde_json::from_slice::<LineOwner>(line).ok()?;
        match &self.node {
            Some(n) if **n != *l.node => None,
            _ => Some((l.epoch, l.seq)),
        }
    }

    fn cached_hint(&self) -> std::sync::MutexGuard<'_, Option<Hint>> {
        self.hint.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates the root if needed and marks it as a primary store.
    pub fn init(&self) -> io::Result<()> {
        fs::create_dir_all(&self.root)?;
        let marker = self.root.join(MARKER);
        if !marker.exists() {
            let f = fs::File::create(&marker)?;
            f.sync_all()?;
            crate::fs::sync_dir(&self.root)?;
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
                // Another store holds another hint (or none).
                *self.cached_hint() = None;
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

    /// The (epoch, seq) of each stream's last record written by this store's node (any node's
    /// with none set): its last complete line of the node's in the stream's files, read from the
    /// newest file back. Streams without such a record are absent. The sync actor forwards only
    /// records above these, which makes forwarding idempotent; another node's lines in between
    /// (a new leader's, or a fenced one's late records) are no ids of ours, above or below.
    ///
    /// Only the streams in the node's hint are read (see `hint.rs`): a stream it never wrote is
    /// not, however long its history. Without a hint every stream is read, and the hint is
    /// written from what was found, so that the next start is bounded.
    ///
    /// What is read back is made durable first: lines written and not yet fsynced (a sync
    /// actor that crashed or gave up between writing a batch and syncing it) are in the page
    /// cache, where a power cut could still take them, and an id counted from one would then
    /// skip records for good. So every file whose line counts here, and the directories up to
    /// the root, are fsynced before their ids count.
    pub fn last_ids(&self) -> io::Result<BTreeMap<String, (u64, u64)>> {
        let root = self.open_root()?;
        let hint = match &self.node {
            Some(node) => hint::read(&root, node)?,
            None => None,
        };
        let (ids, found) = self.scan_ours(&root, hint.as_ref())?;
        let hint = match (&self.node, hint) {
            (_, Some(h)) => Some(h),
            (Some(node), None) => {
                hint::write(&root, node, &found)?;
                Some(found)
            }
            (None, None) => None,
        };
        *self.cached_hint() = hint;
        Ok(ids)
    }

    /// Our last id per stream and the day file it is in, reading (with a hint) only the
    /// streams in it; every file whose line counts and its directories are fsynced.
    fn scan_ours(&self, root: &Root, hint: Option<&Hint>) -> io::Result<(Ids, Hint)> {
        let mut out = BTreeMap::new();
        let mut days = Hint::new();
        let mut dirs = BTreeSet::new();
        for (stream, files) in streams(&root.path)? {
            if hint.is_some_and(|h| !h.contains_key(&stream)) {
                continue;
            }
            // From the newest file back; older than the hint's day only when the intent it
            // records never landed (then nothing of ours may be anywhere, and all is read).
            for (day, path) in files.iter().rev() {
                root.fault(faults::Op::Open, path)?;
                let file = File::open(path)?;
                let mut found = None;
                each_line_backwards(&file, |line| {
                    found = self.our_id(line);
                    found.is_none()
                })?;
                if let Some(id) = found {
                    root.fault(faults::Op::Fsync, path)?;
                    file.sync_data()?;
                    let mut dir = path.parent();
                    while let Some(d) = dir.filter(|d| d.starts_with(&root.path)) {
                        dirs.insert(d.to_path_buf());
                        dir = d.parent();
                    }
                    out.insert(stream.clone(), id);
                    days.insert(stream, *day);
                    break;
                }
            }
        }
        for dir in dirs {
            root.fault(faults::Op::Fsync, &dir)?;
            sync_dir(&dir)?;
        }
        Ok((out, days))
    }

    /// The node's hint, as cached, else as on the store, else found by reading every stream
    /// (and written): a write must know it exactly, since it only ever adds to it.
    fn hint(&self, root: &Root, node: &str) -> io::Result<Hint> {
        if let Some(h) = self.cached_hint().as_ref() {
            return Ok(h.clone());
        }
        let h = match hint::read(root, node)? {
            Some(h) => h,
            None => {
                let (_, found) = self.scan_ours(root, None)?;
                hint::write(root, node, &found)?;
                found
            }
        };
        *self.cached_hint() = Some(h.clone());
        Ok(h)
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

        if let Some(node) = &self.node {
            self.intend(&root, node, &groups, streams)?;
        }

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

    /// Records in the node's hint, durably and before any line goes there, the day files
    /// `groups` are about to append to, where the hint does not cover them yet: so the hint
    /// always holds at least what the node wrote. One write at most, and none in the common case
    /// (the same streams and days as the last batch), which costs a look at the cached hint.
    fn intend(
        &self,
        root: &Root,
        node: &str,
        groups: &[(usize, Date, Vec<&[u8]>)],
        streams: &[String],
    ) -> io::Result<()> {
        let covered = |h: &Hint| {
            groups
                .iter()
                .all(|(s, day, _)| h.get(&streams[*s]).is_some_and(|d| d >= day))
        };
        if self.cached_hint().as_ref().is_some_and(covered) {
            return Ok(());
        }
        let mut h = self.hint(root, node)?;
        if covered(&h) {
            return Ok(());
        }
        for (s, day, _) in groups {
            let d = h.entry(streams[*s].clone()).or_insert(*day);
            *d = (*d).max(*day);
        }
        hint::write(root, node, &h)?;
        // Only once it is on the store: a failed write leaves the cache as the store may be.
        *self.cached_hint() = Some(h);
        Ok(())
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

    /// Which of the frames `pick` the store does not hold as they are: each is at or below our
    /// last id of its stream here, which forwarding takes as "already sent", and this checks it. A
    /// frame whose id is here with the same line was sent before (a resend after a crash), and so
    /// was one whose record is here under a higher id (moved by a rehome, then restored from an
    /// older copy of the journal); one whose id is here with another line, or not here at all, is
    /// a conflict: the journal
    /// numbered it under ids the store already holds (a wiped or restored journal, a second
    /// writer), and skipping it would lose it. Reads each stream's files from the end, back to
    /// our first line below the lowest id asked for; other nodes' lines are passed over. What it finds held it makes durable first (the file and its
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
                root.fault(faults::Op::Open, &path)?;
                let file = File::open(&path)?;
                let mut done = false;
                let before = wanted.len();
                each_line_backwards(&file, |line| {
                    // Another node's line is neither a match nor where ours end: its ids
                    // interleave with ours (a new leader's above, a fenced one's below).
                    let Some(id) = self.our_id(line) else {
                        return true;
                    };
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
            coverage: Vec::new(),
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
            let (summary, problems, coverage) = check.finish();
            report.coverage.extend(coverage);
            report.records += summary.records;
            report.streams.push(summary);
            report.problems.extend(problems);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
