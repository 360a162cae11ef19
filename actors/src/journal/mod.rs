//! The local journal: segment files of checksummed frames, appended in groups and fsynced before any record is acknowledged.
//!
//! Layout: `<data_dir>/journal/<20-digit segment number>.seg`, each a sequence of frames
//! `MAGIC (4) | len u32 LE | crc32c u32 LE | postcard(FrameHead) | line`. The magic lets recovery
//! find the next frame after damage; the checksum tells a torn or flipped frame from a good one.
//! `line` is the record exactly as the primary stores it (SPEC §4.3, `\n` included), rendered
//! once at ingest: forwarding is then a checked copy, and neither forwarding nor recovery ever
//! parses JSON. The small postcard head repeats what they need to know without parsing the line
//! (stream, id, and `ts` for the day file). A copy frame ([`MAGIC_COPY`], written by
//! [`Journal::rehome`] when a stream's ids collide with the primary's) also names the id it was
//! first stored under, which it supersedes.
//!
//! Recovery ([`Journal::open`]) runs on every start, cold or after a crash, and never fails on
//! bad content: a damaged tail is truncated (`journal.recovered`), a damaged stretch followed by
//! good frames is copied to `journal/quarantine/` and the segment rewritten without it
//! (`journal.corrupt`), so every valid frame after the damage is kept and the next start does
//! not see the damage again.
//!
//! Durability: [`Journal::append`] writes a whole group with one `write` and one `fdatasync`. When
//! the write or the fsync fails nothing of the group is acknowledged. After a failed fsync the
//! kernel may have dropped the dirty pages and cleared the error (PostgreSQL's "fsyncgate"), so
//! retrying fsync on the same file proves nothing: the segment is truncated back to its last
//! durable length and closed, and the next attempt writes to a fresh segment. Frames that the
//! kernel still flushes later would be duplicates of (stream, epoch, seq) already held, which
//! recovery and readers drop. The journal's state (its segments, its last ids) changes only once
//! the operation behind it succeeded: a segment counts once its file exists and its directory
//! entry is durable, so a failed `open` at a rotation leaves the journal appending where it was.
//! And it keeps one segment of free space on its disk ([`Journal::reserve`]) so that forwarding to
//! a primary on the same disk can always release segments.

use nix::fcntl::{Flock, FlockArg};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::faults;
use crate::records::{Record, StoredRecord};

mod error;
mod frame;
mod read;
mod recover;

use error::io_err;
pub use error::JournalError;
pub use frame::*;
use read::segment_path;
pub use read::{each_held, read, read_into};
use recover::*;

/// A record moved by [`Journal::rehome`]: its (epoch, seq) before and after.
pub type Moved = ((u64, u64), (u64, u64));

/// What recovery found and did; each entry becomes an audit event.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recovery {
    pub segments: usize,
    pub records: u64,
    /// Damaged tails cut off: (segment, from offset, bytes removed).
    pub truncated: Vec<(PathBuf, u64, u64)>,
    /// Damaged stretches moved aside: (segment, offset, bytes, quarantine file).
    pub quarantined: Vec<(PathBuf, u64, u64, PathBuf)>,
    /// Frames dropped as duplicates of an earlier (stream, epoch, seq).
    pub duplicates: u64,
    /// Segments removed for holding no frame (created just before a crash, or all damage).
    pub removed: Vec<PathBuf>,
}

/// The file that holds the journal's reserve of free space (see [`Journal::make_room`]).
const BALLAST: &str = "reserve";
/// The smallest segment, also on a tiny filesystem.
const MIN_SEGMENT: u64 = 4 << 10;

/// (total, available) bytes of the filesystem that holds `dir`.
fn space(dir: &Path) -> io::Result<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
    let unit = st.fragment_size() as u64;
    Ok((
        st.blocks() as u64 * unit,
        st.blocks_available() as u64 * unit,
    ))
}

fn segment_number(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".seg")?.parse().ok()
}

fn fsync_dir(dir: &Path) -> Result<(), JournalError> {
    crate::fs::sync_dir(dir).map_err(io_err("fsyncing directory", dir))
}

/// A segment's durable length and how many records it holds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Seg {
    bytes: u64,
    records: u64,
}

pub struct Journal {
    dir: PathBuf,
    /// Segment number → durable length and records, the last one being the active segment.
    /// A segment is in here only once its file exists and its directory entry is durable.
    segments: BTreeMap<u64, Seg>,
    /// The last segment's file, open for appending; `None` once a failed write or fsync made it
    /// unusable: the next append opens a new segment first, and fails while it cannot.
    active: Option<File>,
    /// Space kept free on the journal's filesystem: one segment, which is what forwarding needs
    /// to copy a whole segment to a primary on the same disk (the default layout) before it can
    /// release it. Without it a full disk deadlocks: nothing can be forwarded for want of room,
    /// and no room is made because nothing is forwarded.
    reserve: u64,
    /// Whether [`BALLAST`] holds the reserve for us: a disk that other programs fill to the last
    /// byte still has it, given back the moment the journal finds the disk full.
    ballast: bool,
    /// Why the last rotation failed, while the active segment grows past `segment_max` for
    /// want of a new one (it keeps taking records: nothing is lost, but nothing of it can be
    /// released either until a rotation succeeds).
    rotate_error: Option<String>,
    segment_max: u64,
    last: HashMap<String, (u64, u64)>,
    /// Frames copied elsewhere by [`Journal::rehome`], by where they end.
    superseded: HashSet<Position>,
    _lock: Flock<File>,
}

impl Journal {
    /// Opens (creating) the journal in `dir`, recovering whatever a crash left behind.
    /// Waits up to `lock_wait` for a previous incarnation in this process to let go of the lock.
    pub fn open(
        dir: &Path,
        segment_max: u64,
        lock_wait: Duration,
    ) -> Result<(Journal, Recovery), JournalError> {
        fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        let lock_path = dir.join("LOCK");
        let waited = crate::clock::Stopwatch::start();
        let lock = loop {
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(io_err("opening", &lock_path))?;
            match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                Ok(l) => break l,
                Err((_, _)) if waited.elapsed() < lock_wait =>
                {
                    #[allow(
                        clippy::disallowed_methods,
                        reason = "open runs on a blocking thread, waiting for another thread's \
                                  file lock; no timer of the runtime is involved"
                    )]
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(_) => return Err(JournalError::Locked(dir.to_path_buf())),
            }
        };
        let mut numbers: Vec<u64> = fs::read_dir(dir)
            .map_err(io_err("listing", dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| segment_number(&e.path()))
            .collect();
        numbers.sort_unstable();

        let mut recovery = Recovery::default();
        let mut segments = BTreeMap::new();
        let mut last: HashMap<String, (u64, u64)> = HashMap::new();
        let mut superseded: HashSet<Position> = HashSet::new();
        let count = numbers.len();
        for (i, n) in numbers.into_iter().enumerate() {
            let path = segment_path(dir, n);
            let buf = fs::read(&path).map_err(io_err("reading", &path))?;
            let Scan {
                mut frames,
                mut damage,
            } = scan(&buf);
            // A group of copies that a crash cut short is dropped whole, originals kept: its
            // last frame says more of the group should follow. Only the last segment can end so.
            if i + 1 == count {
                if let Some(cut) = torn_copy_group(&frames) {
                    let at = frames[cut].0;
                    damage.retain(|&(off, _)| off < at);
                    damage.push((at, buf.len() as u64 - at));
                    frames.truncate(cut);
                }
            }
            let seg_records = frames.len() as u64;
            for (_, _, rec) in &frames {
                let key = (rec.epoch, rec.seq);
                if let Some(c) = rec.copy_of {
                    // A copy may reuse an id of the frames it supersedes: never a duplicate.
                    superseded.insert(c.at);
                    let prev = last.entry(rec.stream.to_string()).or_insert(key);
                    *prev = (*prev).max(key);
                    recovery.records += 1;
                    continue;
                }
                match last.get_mut(rec.stream) {
                    Some(prev) if *prev >= key => recovery.duplicates += 1,
                    Some(prev) => {
                        *prev = key;
                        recovery.records += 1;
                    }
                    None => {
                        last.insert(rec.stream.to_string(), key);
                        recovery.records += 1;
                    }
                }
            }
            let mut len = buf.len() as u64;
            if let Some(&(off, n_bytes)) = damage.last() {
                let only_tail = damage.len() == 1 && off + n_bytes == buf.len() as u64;
                if only_tail {
                    Self::truncate(&path, off)?;
                    recovery.truncated.push((path.clone(), off, n_bytes));
                    len = off;
                } else {
                    len = Self::quarantine(dir, &path, &buf, &frames, &damage, &mut recovery)?;
                }
            }
            let is_last = i + 1 == count;
            if len == 0 && !is_last {
                fs::remove_file(&path).map_err(io_err("removing empty segment", &path))?;
                recovery.removed.push(path);
                continue;
            }
            segments.insert(
                n,
                Seg {
                    bytes: len,
                    records: seg_records,
                },
            );
            recovery.segments += 1;
        }
        if segments.is_empty() {
            segments.insert(1, Seg::default());
        }
        let (&active_n, active_seg) = segments.iter().next_back().expect("at least one segment");
        let active = Self::open_segment(dir, active_n, active_seg.bytes)?;
        fsync_dir(dir)?;
        // On a small filesystem, segments (and so the reserve) shrink with it.
        let total = space(dir).map(|(total, _)| total).unwrap_or(u64::MAX);
        let segment_max = segment_max.min((total / 16).max(MIN_SEGMENT));
        let ballast_path = dir.join(BALLAST);
        let ballast = match fs::metadata(&ballast_path) {
            Ok(m) if m.len() == segment_max => true,
            Ok(_) => {
                // Sized for another segment size: made again at the right size when there is room.
                let _ = fs::remove_file(&ballast_path);
                false
            }
            Err(_) => false,
        };
        Ok((
            Journal {
                dir: dir.to_path_buf(),
                segments,
                active: Some(active),
                reserve: segment_max,
                ballast,
                rotate_error: None,
                segment_max,
                last,
                superseded,
                _lock: lock,
            },
            recovery,
        ))
    }

    fn truncate(path: &Path, len: u64) -> Result<(), JournalError> {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err("opening", path))?;
        f.set_len(len).map_err(io_err("truncating", path))?;
        f.sync_all().map_err(io_err("fsyncing", path))
    }

    /// Moves the damaged stretches of `path` aside and rewrites it with its frames only.
    fn quarantine(
        dir: &Path,
        path: &Path,
        buf: &[u8],
        frames: &[(u64, usize, FrameView)],
        damage: &[(u64, u64)],
        recovery: &mut Recovery,
    ) -> Result<u64, JournalError> {
        let qdir = dir.join("quarantine");
        fs::create_dir_all(&qdir).map_err(io_err("creating", &qdir))?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("segment");
        for &(off, n) in damage {
            let q = qdir.join(format!("{name}-{off}.bin"));
            let bytes = &buf[off as usize..(off + n) as usize];
            let mut f = File::create(&q).map_err(io_err("creating", &q))?;
            f.write_all(bytes)
                .and_then(|()| f.sync_all())
                .map_err(io_err("writing", &q))?;
            recovery.quarantined.push((path.to_path_buf(), off, n, q));
        }
        fsync_dir(&qdir)?;
        let mut clean = Vec::with_capacity(buf.len());
        for &(off, n, _) in frames {
            clean.extend_from_slice(&buf[off as usize..off as usize + n]);
        }
        crate::fs::write_atomic(path, &clean).map_err(io_err("rewriting", path))?;
        Ok(clean.len() as u64)
    }

    fn open_segment(dir: &Path, n: u64, len: u64) -> Result<File, JournalError> {
        let path = segment_path(dir, n);
        faults::check(faults::Op::Open, &path).map_err(io_err("opening", &path))?;
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err("opening", &path))?;
        f.seek(SeekFrom::Start(len))
            .map_err(io_err("seeking", &path))?;
        Ok(f)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last (epoch, seq) per stream held in the journal.
    pub fn last_ids(&self) -> &HashMap<String, (u64, u64)> {
        &self.last
    }

    /// Raises the last ids to those already on the primary, so numbering continues after
    /// segments that were forwarded and deleted.
    pub fn seed_last_ids(&mut self, ids: &BTreeMap<String, (u64, u64)>) {
        for (stream, &id) in ids {
            let e = self.last.entry(stream.clone()).or_insert(id);
            if *e < id {
                *e = id;
            }
        }
    }

    /// Bytes held on disk.
    pub fn bytes(&self) -> u64 {
        self.segments.values().map(|s| s.bytes).sum()
    }

    /// Records held, valid frames only.
    pub fn records(&self) -> u64 {
        self.segments.values().map(|s| s.records).sum()
    }

    /// Where the oldest held frame is: readers start here.
    pub fn start(&self) -> Position {
        Position {
            segment: *self.segments.keys().next().expect("active segment"),
            offset: 0,
        }
    }

    /// Where the durable frames end: readers stop here.
    pub fn end(&self) -> Position {
        let (&segment, seg) = self.segments.iter().next_back().expect("active segment");
        Position {
            segment,
            offset: seg.bytes,
        }
    }

    fn active_number(&self) -> u64 {
        *self.segments.keys().next_back().expect("active segment")
    }

    /// Assigns ids (`epoch`, next seq per stream) and makes the records durable with one write and
    /// one fdatasync. On error nothing is durable as far as the caller knows and ids are not consumed.
    pub fn append<'a>(
        &mut self,
        epoch: u64,
        node: &str,
        pending: impl IntoIterator<Item = &'a Record>,
    ) -> Result<Vec<StoredRecord>, JournalError> {
        let pending: Vec<&Record> = pending.into_iter().collect();
        let seqs = self.append_seqs(epoch, node, pending.iter().copied())?;
        Ok(pending
            .iter()
            .zip(seqs)
            .map(|(p, seq)| {
                let (ts, stream, data) = (p.ts.clone(), p.stream.clone(), p.data.clone());
                StoredRecord::new(epoch, seq, ts, stream, node.to_string(), data)
            })
            .collect())
    }

    /// [`Journal::append`] returning only each record's seq: what the writer acknowledges with.
    pub fn append_seqs<'a>(
        &mut self,
        epoch: u64,
        node: &str,
        pending: impl IntoIterator<Item = &'a Record>,
    ) -> Result<Vec<u64>, JournalError> {
        let pending = pending.into_iter();
        let mut next: HashMap<&str, (u64, u64)> = HashMap::new();
        let mut out = Vec::with_capacity(pending.size_hint().0);
        let mut buf = Vec::new();
        for p in pending {
            let prev = next
                .get(p.stream.as_str())
                .or_else(|| self.last.get(&p.stream))
                .copied();
            let seq = match prev {
                Some((e, s)) if e == epoch => s + 1,
                _ => 1,
            };
            encode_parts(&mut buf, epoch, seq, &p.stream, &p.ts, node, &p.data, None)?;
            next.insert(&p.stream, (epoch, seq));
            out.push(seq);
        }
        self.write_group(&buf, out.len() as u64)?;
        self.last
            .extend(next.into_iter().map(|(k, v)| (k.to_string(), v)));
        Ok(out)
    }

    /// Copies every frame of `stream` from `from` to the end of the journal (but those already
    /// superseded) to the end, in order, under new ids following `after` (the primary's last id
    /// of the stream; the journal's own when None), in one group, and marks the originals
    /// superseded: forwarding then passes over them and sends the copies instead. This is how a
    /// stream whose ids collide with the primary's (see the sync actor) gets ids that continue
    /// the primary's without losing a record or its order: every record of the stream from the
    /// collision on moves, so none of it can come before the records it followed, and the copies
    /// may take ids the superseded frames had, so the primary gets no gap. Returns the
    /// (original, copy) ids; on error nothing changed.
    pub fn rehome(
        &mut self,
        epoch: u64,
        stream: &str,
        from: Position,
        after: Option<(u64, u64)>,
    ) -> Result<Vec<Moved>, JournalError> {
        let (frames, _) = read(&self.dir, from, self.end(), usize::MAX, usize::MAX)?;
        let moving: Vec<usize> = (0..frames.len())
            .filter(|&i| frames.get(i).stream == stream)
            .filter(|&i| !self.superseded.contains(&frames.after(i)))
            .collect();
        let mut buf = Vec::new();
        let mut moved = Vec::with_capacity(moving.len());
        let mut last = after.or_else(|| self.last.get(stream).copied());
        for (k, &i) in moving.iter().enumerate() {
            let view = frames.get(i);
            let rec = view.record().ok_or_else(|| JournalError::Encode {
                stream: stream.to_string(),
                reason: format!("frame {}.{} holds no record", view.epoch, view.seq),
            })?;
            let seq = match last {
                Some((e, q)) if e == epoch => q + 1,
                _ => 1,
            };
            let copy = CopyOf {
                was: (view.epoch, view.seq),
                at: frames.after(i),
                left: (moving.len() - k - 1) as u32,
            };
            encode_parts(
                &mut buf,
                epoch,
                seq,
                stream,
                &rec.ts,
                &rec.node,
                &rec.data,
                Some(copy),
            )?;
            last = Some((epoch, seq));
            moved.push((copy.was, (epoch, seq)));
        }
        if moved.is_empty() {
            return Ok(moved);
        }
        self.write_group(&buf, moved.len() as u64)?;
        if let Some(id) = last {
            let e = self.last.entry(stream.to_string()).or_insert(id);
            *e = (*e).max(id);
        }
        self.superseded
            .extend(moving.iter().map(|&i| frames.after(i)));
        Ok(moved)
    }

    /// The frames copied elsewhere by [`Journal::rehome`], by where they end: forwarding
    /// passes them.
    pub fn superseded(&self) -> &HashSet<Position> {
        &self.superseded
    }

    /// Writes one group of encoded frames (`records` of them) at the end of the active segment
    /// and fsyncs it; on error nothing of it counts.
    fn write_group(&mut self, buf: &[u8], records: u64) -> Result<(), JournalError> {
        self.make_room(buf.len() as u64)?;
        if self.active.is_none() {
            // The last write or fsync failed: that file is never written again.
            self.open_next()?;
        }
        let n = self.active_number();
        let path = segment_path(&self.dir, n);
        let before = self.segments[&n];
        let durable = before.bytes;
        let Some(active) = self.active.as_mut() else {
            unreachable!("opened above")
        };
        let written = faults::check(faults::Op::Write, &path).and_then(|()| active.write_all(buf));
        if let Err(e) = written {
            // A failed write (ENOSPC, EIO) left at most a partial group: cut it off and stay in
            // this segment. Nothing of the group was acknowledged. Should the cut itself fail,
            // the file's end is unknown: it is written no more.
            let cut = active
                .set_len(durable)
                .and_then(|()| active.seek(SeekFrom::Start(durable)).map(drop));
            if cut.is_err() {
                self.active = None;
            }
            return Err(io_err("appending to", &path)(e));
        }
        let synced = faults::check(faults::Op::Fsync, &path).and_then(|()| active.sync_data());
        if let Err(e) = synced {
            // fsyncgate: after a failed fsync the kernel may have dropped the dirty pages and
            // cleared the error, so a retried fsync on this file proves nothing. Cut back to what
            // was durable and never write to this file again; the next append opens a new
            // segment (and fails, acknowledging nothing, for as long as that fails).
            let _ = active.set_len(durable);
            let _ = active.sync_data();
            self.active = None;
            let _ = self.open_next();
            return Err(io_err("fsyncing", &path)(e));
        }
        self.segments.insert(
            n,
            Seg {
                bytes: durable + buf.len() as u64,
                records: before.records + records,
            },
        );
        if durable + buf.len() as u64 >= self.segment_max {
            // The group is durable and acknowledged whatever happens here: a rotation that
            // fails leaves this segment active and is tried again with the next group.
            match self.open_next() {
                Ok(()) => self.rotate_error = None,
                Err(e) => self.rotate_error = Some(e.to_string()),
            }
        }
        Ok(())
    }

    /// Checks that `need` more bytes leave the reserve free (see [`Journal::reserve`]), keeping
    /// the ballast file that holds the reserve: made when there is room for it on top, given back
    /// when the disk is full, so that forwarding has room to release segments. Fails, before
    /// anything is written, while there is too little room.
    fn make_room(&mut self, need: u64) -> Result<(), JournalError> {
        let (_, free) = space(&self.dir).map_err(io_err("checking free space under", &self.dir))?;
        if free >= need + self.reserve {
            if !self.ballast && free >= need + 2 * self.reserve {
                self.ballast = self.make_ballast().is_ok();
            }
            return Ok(());
        }
        if self.ballast && free < need + self.reserve {
            let path = self.dir.join(BALLAST);
            if fs::remove_file(&path).is_ok() {
                self.ballast = false;
                let _ = fsync_dir(&self.dir);
            }
        }
        Err(JournalError::Space {
            dir: self.dir.clone(),
            free,
            reserve: self.reserve,
            want: need + self.reserve,
        })
    }

    fn make_ballast(&self) -> Result<(), JournalError> {
        let path = self.dir.join(BALLAST);
        let f = File::create(&path).map_err(io_err("creating", &path))?;
        let made = nix::fcntl::fallocate(
            &f,
            nix::fcntl::FallocateFlags::empty(),
            0,
            self.reserve as i64,
        )
        .map_err(io::Error::from)
        .and_then(|()| f.sync_all())
        .and_then(|()| crate::fs::sync_dir(&self.dir));
        if let Err(e) = made {
            drop(f);
            let _ = fs::remove_file(&path);
            return Err(io_err("reserving space in", &path)(e));
        }
        Ok(())
    }

    /// The space kept free for forwarding, in bytes.
    pub fn reserve(&self) -> u64 {
        self.reserve
    }

    /// Makes segment n+1 the active one. Its file is created and its directory entry made
    /// durable first: only then does it count (readers and releases go by `segments`), so a
    /// failure here changes nothing and appends go on where they were.
    fn open_next(&mut self) -> Result<(), JournalError> {
        let n = self.active_number() + 1;
        let file = Self::open_segment(&self.dir, n, 0)?;
        if let Err(e) = fsync_dir(&self.dir) {
            // Its entry may or may not survive a crash: an empty segment either way, which
            // recovery removes. It does not count.
            drop(file);
            let _ = fs::remove_file(segment_path(&self.dir, n));
            return Err(e);
        }
        self.segments.insert(n, Seg::default());
        self.active = Some(file);
        Ok(())
    }

    /// Why the active segment could not be rotated, while it cannot.
    pub fn rotate_error(&self) -> Option<&str> {
        self.rotate_error.as_deref()
    }

    /// Whether the active segment is unusable after a failed write or fsync (the next append
    /// opens a new one).
    pub fn poisoned(&self) -> bool {
        self.active.is_none()
    }

    /// Deletes the closed segments before `segment`: everything in them is on the primary.
    /// Returns the bytes freed.
    pub fn release_before(&mut self, segment: u64) -> Result<u64, JournalError> {
        let active = self.active_number();
        let doomed: Vec<u64> = self
            .segments
            .keys()
            .copied()
            .filter(|&n| n < segment && n < active)
            .collect();
        let mut freed = 0;
        for n in &doomed {
            let path = segment_path(&self.dir, *n);
            fs::remove_file(&path).map_err(io_err("removing forwarded segment", &path))?;
            freed += self.segments.remove(n).map_or(0, |s| s.bytes);
        }
        if !doomed.is_empty() {
            let first = self.start().segment;
            self.superseded.retain(|p| p.segment >= first);
            fsync_dir(&self.dir)?;
        }
        Ok(freed)
    }

    /// Starts a new segment so that the current one can be released once forwarded.
    pub fn rotate(&mut self) -> Result<(), JournalError> {
        let n = self.active_number();
        if self.segments[&n].bytes == 0 && self.active.is_some() {
            return Ok(());
        }
        let r = self.open_next();
        self.rotate_error = r.as_ref().err().map(|e| e.to_string());
        r
    }
}

#[cfg(test)]
mod tests;
