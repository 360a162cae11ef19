//! The files a tail collector follows: found by its path or glob, told apart by [`identity`](super::identity), read in batches of lines, and followed through renames, copies, truncation and deletion.
//!
//! Every method does blocking file I/O and is called off the runtime (see the actor). What
//! happens to a file, and what is done about it:
//! - **renamed** (a rename rotation): the same device and inode at another path. It is still
//!   the same file, read on from where it was, before the files found after it (it holds the
//!   older lines). Out of the glob's reach, it is read to its end and released once it has not
//!   grown for `rotate_wait`.
//! - **deleted**: as renamed out of reach; the open descriptor keeps its lines readable.
//! - **copied** (copytruncate's first step, or `cp`): another inode with the same head and the
//!   same bytes before the offset. Not read while the original holds those lines; once the
//!   original is truncated, the copy is read on from where the original was, so the lines the
//!   writer put in just before the truncation are read from the copy (when the pattern matches
//!   the copy: with a single-file `path`, those lines, if unread, go with the truncation).
//!   "The same bytes" means bytes at least a sample's length past the first line
//!   ([`evidence_from`]): files that only begin alike wait up to `rotate_wait` to be told
//!   apart, and a copy that goes its own way later is read as the new file it is.
//! - **truncated** (copytruncate's second step, `> file`), or rewritten (the bytes before the
//!   offset changed): read again from its start. What it was is kept for a while as a *ghost*,
//!   so that a copy found later resumes where it was read up to.
//! - **a reused inode**: a file whose inode is known but whose head or sample is not is a new
//!   file. While a file is followed its descriptor is open, so its inode cannot be reused; after
//!   a restart the checkpoint's marks are checked against both.

use std::collections::{HashMap, HashSet};
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

use super::checkpoint::Mark;
use super::identity::{self, Head, Sample};
use super::lines::At;
use crate::events;

mod batch;

/// How long a ghost (the identity of a file truncated, vanished or released) is kept: for its
/// copy to resume it, or for the file itself to resume where it was read up to should it come
/// back within reach (a symlink switched back, a glob widened). Ghosts are few and small; the
/// newest [`GHOST_MAX`] are kept.
const GHOST_TTL: Duration = Duration::from_secs(3600);
const GHOST_MAX: usize = 256;

/// Batch ends whose samples a file keeps, for a copy made a few batches ago.
const RECENT: usize = 16;

/// What the followed files are and how they are read.
#[derive(Debug, Clone)]
pub struct Options {
    /// The collector's tree path, e.g. `collectors/app`, as logs and quarantine name it.
    pub collector: String,
    pub stream: String,
    /// A file or a glob.
    pub pattern: String,
    pub max_record_bytes: usize,
    /// Bytes of lines in one batch at most (one line over the limit is still read whole).
    pub batch_bytes: usize,
    pub partial_after: Duration,
    pub rotate_wait: Duration,
    /// Files present at the collector's very first scan start at their end.
    pub read_from_end: bool,
}

struct Followed {
    path: PathBuf,
    dev: u64,
    ino: u64,
    head: Head,
    /// Read up to here, and every record before it is durable.
    offset: u64,
    sample: Sample,
    file: File,
    /// Found in this order; files are read in it.
    order: u64,
    /// At no matching path since then (renamed away or deleted).
    gone_since: Option<Instant>,
    /// Renamed since found: read first, as it holds older lines than the files found after it.
    moved: bool,
    /// The size last seen and when it last changed.
    size: u64,
    changed: Instant,
    /// A copy of the followed file with this device and inode.
    copy_of: Option<(u64, u64)>,
    /// Samples at the last batch ends, oldest first.
    recent: Vec<(u64, Sample)>,
    /// See [`Mark::until`]: not read before it holds these bytes before this offset.
    until: Option<(u64, Sample)>,
    /// The size at which the last read found only an unterminated line to hold: not read
    /// again until the file changes or the line is due (`partial_after`).
    held_at: Option<u64>,
}

impl Followed {
    fn key(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    fn mark(&self) -> Mark {
        Mark {
            path: self.path.clone(),
            dev: self.dev,
            ino: self.ino,
            head: self.head,
            offset: self.offset,
            sample: self.sample,
            copy_of: self.copy_of,
            recent: self.recent.clone(),
            until: self.until,
        }
    }
}

struct Ghost {
    mark: Mark,
    since: Instant,
}

/// Where a copy reads on.
enum Resume {
    At(u64),
    /// Once it holds, before this offset, the bytes of this sample.
    Until(u64, Sample),
}

pub struct Files {
    opts: Options,
    followed: Vec<Followed>,
    ghosts: Vec<Ghost>,
    next_order: u64,
    /// The order of the file the last batch came from: the next one starts after it.
    last_read: u64,
    /// Marks changed since [`Files::marks`] was last asked for.
    dirty: bool,
    /// Files that matched but could not be opened, said once each.
    unreadable: HashSet<PathBuf>,
    /// Whether "nothing matches" was said since something last matched.
    said_nothing: bool,
    /// Since [`Files::restore`]: which followed file holds what each mark (by its device and
    /// inode) was read from: the same file, or a copy found for its ghost. A batch in flight at
    /// the crash belongs to that content, wherever it is now, and never to a file that merely
    /// kept the inode (truncated, or a new file under it).
    continued: HashMap<(u64, u64), (u64, u64)>,
    /// Files that begin like one read before and hold too little to tell whether they are its
    /// copy: since when they are seen so.
    undecided: HashMap<(u64, u64), Instant>,
    /// Matching files that are compressed (said once each, never followed).
    compressed: HashSet<(u64, u64)>,
}

/// Where a comparison of two files must be to count as evidence that one is a copy of the
/// other: far enough that the sample before it lies wholly past the first line. Logs often
/// begin alike for more than a line (a banner, a CSV header), so bytes within reach of the
/// head say nothing.
fn evidence_from(head: Head) -> u64 {
    u64::from(head.len) + identity::SAMPLE_MAX
}

fn key_of(m: &Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

impl Files {
    pub fn new(opts: Options) -> Self {
        Self {
            opts,
            followed: Vec::new(),
            ghosts: Vec::new(),
            next_order: 0,
            last_read: 0,
            dirty: false,
            unreadable: HashSet::new(),
            said_nothing: false,
            continued: HashMap::new(),
            undecided: HashMap::new(),
            compressed: HashSet::new(),
        }
    }

    /// The regular files the pattern matches now, with their metadata (symlinks followed).
    fn matching(&mut self) -> Vec<(PathBuf, Metadata)> {
        let (paths, errors) = expand(&self.opts.pattern);
        for (dir, error) in errors {
            if self.unreadable.insert(dir.clone()) {
                tracing::warn!(actor = self.opts.collector.as_str(), event = events::COLLECTOR_TAIL_UNREADABLE,
                    path = %dir.display(), error = %error, "a directory of the glob cannot be read; files in it are not followed");
            }
        }
        let found: Vec<_> = paths
            .into_iter()
            .filter_map(|p| {
                let m = std::fs::metadata(&p).ok()?;
                m.is_file().then_some((p, m))
            })
            .collect();
        if found.is_empty() && !self.said_nothing {
            if Path::new(&self.opts.pattern).is_dir() {
                tracing::warn!(
                    actor = self.opts.collector.as_str(),
                    event = events::COLLECTOR_TAIL_FOLLOW,
                    path = self.opts.pattern.as_str(),
                    "the path is a directory, not a file: nothing is followed; follow the files in it with a glob, e.g. \"{}/*.log\"",
                    self.opts.pattern
                );
            } else {
                tracing::warn!(
                    actor = self.opts.collector.as_str(),
                    event = events::COLLECTOR_TAIL_FOLLOW,
                    path = self.opts.pattern.as_str(),
                    "no file matches the path yet; waiting for one"
                );
            }
        }
        self.said_nothing = found.is_empty();
        found
    }

    /// Opens a matched file, saying once if it cannot be read.
    fn open(&mut self, path: &Path) -> Option<File> {
        let opened =
            crate::faults::check(crate::faults::Op::Open, path).and_then(|()| File::open(path));
        match opened {
            Ok(f) => {
                self.unreadable.remove(path);
                Some(f)
            }
            Err(e) => {
                if self.unreadable.insert(path.to_path_buf()) {
                    tracing::warn!(actor = self.opts.collector.as_str(), event = events::COLLECTOR_TAIL_UNREADABLE,
                        path = %path.display(), error = %e, "a matching file cannot be read; it is tried again at each scan");
                }
                None
            }
        }
    }

    fn follow(
        &mut self,
        path: PathBuf,
        file: File,
        meta: &Metadata,
        offset: u64,
        now: Instant,
        how: &str,
    ) -> io::Result<&mut Followed> {
        let head = identity::head(&file)?;
        let sample = identity::sample(&file, offset)?;
        tracing::info!(actor = self.opts.collector.as_str(), event = events::COLLECTOR_TAIL_FOLLOW,
            path = %path.display(), offset, how, "following a file");
        self.next_order += 1;
        self.dirty = true;
        self.followed.push(Followed {
            path,
            dev: meta.dev(),
            ino: meta.ino(),
            head,
            offset,
            sample,
            file,
            order: self.next_order,
            gone_since: None,
            moved: false,
            size: meta.len(),
            changed: now,
            copy_of: None,
            recent: vec![(offset, sample)],
            until: None,
            held_at: None,
        });
        Ok(self.followed.last_mut().expect("just pushed"))
    }

    /// Whether `file` holds what `mark` was read from, up to its offset.
    fn holds(file: &File, size: u64, mark: &Mark) -> io::Result<bool> {
        Ok(mark.head.len > 0
            && size >= mark.offset
            && identity::head_matches(file, mark.head)?
            && identity::sample_matches(file, mark.offset, mark.sample)?)
    }

    /// Where a copy of what `mark` was read from reads on: at the mark's offset when the file
    /// holds the same bytes up to it; once it does, when it is shorter but holds the bytes
    /// before one of the mark's recent batch ends (a copy still being written, or one made
    /// before the last lines were read). None when the file is no such copy.
    fn resumes(file: &File, size: u64, mark: &Mark) -> io::Result<Option<Resume>> {
        if mark.head.len == 0 || !identity::head_matches(file, mark.head)? {
            return Ok(None);
        }
        if size >= mark.offset && identity::sample_matches(file, mark.offset, mark.sample)? {
            return Ok(Some(Resume::At(mark.offset)));
        }
        for &(end, sample) in mark.recent.iter().rev() {
            if end >= evidence_from(mark.head)
                && end <= size
                && identity::sample_matches(file, end, sample)?
            {
                return Ok(Some(Resume::Until(mark.offset, mark.sample)));
            }
        }
        Ok(None)
    }

    /// Starts from a checkpoint's marks: each file is found again by its device and inode (at
    /// a matching path, or renamed out of reach in the directory it was in) and checked to hold
    /// what was read from it; a mark not found so becomes a ghost, which a copy may resume.
    pub fn restore(&mut self, marks: Vec<Mark>, ghosts: Vec<Mark>, now: Instant) -> io::Result<()> {
        let found = self.matching();
        let mut copies = Vec::new();
        // Where each mark's file was read up to, for its copies to take over from.
        let read_up_to: HashMap<(u64, u64), (u64, Sample)> = marks
            .iter()
            .map(|m| ((m.dev, m.ino), (m.offset, m.sample)))
            .collect();
        let mut lost_content = HashSet::new();
        for mark in marks {
            let at = found
                .iter()
                .find(|(_, m)| key_of(m) == (mark.dev, mark.ino))
                .map(|(p, m)| (p.clone(), m.clone(), false))
                .or_else(|| renamed_away(&mark).map(|(p, m)| (p, m, true)));
            let Some((path, meta, away)) = at else {
                self.ghosts.push(Ghost { mark, since: now });
                continue;
            };
            let Some(file) = self.open(&path) else {
                self.ghosts.push(Ghost { mark, since: now });
                continue;
            };
            if Self::holds(&file, meta.len(), &mark)? || (mark.offset == 0 && mark.head.len == 0) {
                let (copy_of, until) = (mark.copy_of, mark.until);
                self.continued
                    .insert((mark.dev, mark.ino), (mark.dev, mark.ino));
                let f = self.follow(path, file, &meta, mark.offset, now, "resumed")?;
                f.copy_of = copy_of;
                f.until = until;
                if away {
                    f.gone_since = Some(now);
                    f.moved = true;
                }
                if copy_of.is_some() {
                    copies.push(f.key());
                }
            } else {
                tracing::info!(actor = self.opts.collector.as_str(), event = events::COLLECTOR_TAIL_TRUNCATED,
                    path = %path.display(), offset = mark.offset,
                    "the file under this inode no longer holds what was read from it (truncated, rewritten, or a new file under a reused inode): read from its start");
                lost_content.insert((mark.dev, mark.ino));
                self.ghosts.push(Ghost { mark, since: now });
                if !away {
                    self.follow(path, file, &meta, 0, now, "new")?;
                }
            }
        }
        for g in ghosts {
            self.ghosts.push(Ghost {
                mark: g,
                since: now,
            });
        }
        // A copy whose original is gone, or no longer holds what was read from it (truncated
        // while the daemon was down), reads on by itself from where the original was read up
        // to; a batch in flight on the original's lines continues in it.
        for key in copies {
            let Some(o) = self.find(key).and_then(|i| self.followed[i].copy_of) else {
                continue;
            };
            if self.find(o).is_none() || lost_content.contains(&o) {
                self.take_over(key, read_up_to.get(&o).copied())?;
                self.continued.insert(o, key);
                // Its lines have a home now: the ghost is not to be matched again.
                self.ghosts.retain(|g| (g.mark.dev, g.mark.ino) != o);
            }
        }
        self.scan(now, false)
    }

    /// The followed copies of the file with this key.
    fn copies_of(&self, key: (u64, u64)) -> Vec<(u64, u64)> {
        self.followed
            .iter()
            .filter(|c| c.copy_of == Some(key))
            .map(Followed::key)
            .collect()
    }

    fn find(&self, key: (u64, u64)) -> Option<usize> {
        self.followed.iter().position(|f| f.key() == key)
    }

    /// Looks for new, renamed, copied, truncated and vanished files; releases the vanished
    /// ones that were read to their end and have not grown for `rotate_wait`. `first` on the
    /// collector's very first scan (no checkpoint yet), when `read_from` applies.
    pub fn scan(&mut self, now: Instant, first: bool) -> io::Result<()> {
        let found = self.matching();
        let mut seen = HashSet::new();
        let mut new = Vec::new();
        for (path, meta) in found {
            let key = key_of(&meta);
            // A hard link or a symlink to a file already followed is not a second file.
            if !seen.insert(key) {
                continue;
            }
            match self.find(key) {
                Some(i) => {
                    let f = &mut self.followed[i];
                    if f.path != path {
                        tracing::info!(actor = self.opts.collector.as_str(), event = events::COLLECTOR_TAIL_ROTATED,
                            from = %f.path.display(), to = %path.display(), offset = f.offset,
                            "a followed file was renamed: read on from its offset");
                        f.path = path;
                        f.moved = true;
                        self.dirty = true;
                    }
                    f.gone_since = None;
                }
                None => new.push((path, meta)),
            }
        }
        for f in &mut self.followed {
            if f.gone_since.is_none() && !seen.contains(&f.key()) {
                tracing::info!(actor = self.opts.collector.as_str(), event = events::COLLECTOR_TAIL_ROTATED,
                    path = %f.path.display(), offset = f.offset,
                    "a followed file is at no matching path any more (renamed away or deleted): read to its end, then released");
                f.gone_since = Some(now);
                f.moved = true;
            }
        }
        for i in 0..self.followed.len() {
            self.check(i, now)?;
        }
        for (path, meta) in new {
            self.adopt(path, &meta, now, first)?;
        }
        self.undecided.retain(|k, _| seen.contains(k));
        self.compressed.retain(|k| seen.contains(k));
        // Files that match but cannot be read, and none that can: the collector collects
        // nothing, which is a failure a person must hear of, not a warning in a log.
        if self.followed.is_empty() {
            if let Some(path) = self.unreadable.iter().next() {
                let error = crate::faults::check(crate::faults::Op::Open, path)
                    .and_then(|()| File::open(path).map(drop))
                    .err()
                    .map_or_else(|| "it could not be opened".to_string(), |e| e.to_string());
                return Err(io::Error::other(format!(
                    "{} matches but cannot be read ({error}), and no other file does: give the daemon's user read access to it",
                    path.display()
                )));
            }
        }
        self.release(now)?;
        self.ghosts
            .retain(|g| now.saturating_duration_since(g.since) < GHOST_TTL);
        let excess = self.ghosts.len().saturating_sub(GHOST_MAX);
        self.ghosts.drain(..excess);
        Ok(())
    }

    /// Releases the vanished files read to their end and idle for `rotate_wait`; a copy whose
    /// original is released reads on by itself.
    fn release(&mut self, now: Instant) -> io::Result<()> {
        let wait = self.opts.rotate_wait;
        let done: Vec<(u64, u64)> = self
            .followed
            .iter()
            .filter(|f| {
                // A copy is not read (nor one waiting to hold what was read), so nothing of it
                // is left to read.
                f.gone_since.is_some()
                    && (f.copy_of.is_some()
                        || f.until.is_some()
                        || (f.size <= f.offset && now.saturating_duration_since(f.changed) >= wait))
            })
            .map(Followed::key)
            .collect();
        for key in done {
            let Some(i) = self.find(key) else { continue };
            let f = self.followed.remove(i);
            if f.copy_of.is_some() || f.until.is_some() {
                tracing::info!(actor = self.opts.collector.as_str(), event = events::COLLECTOR_TAIL_RELEASED,
                    path = %f.path.display(), "a copy that was never read is gone and released");
            } else {
                tracing::info!(actor = self.opts.collector.as_str(), event = events::COLLECTOR_TAIL_RELEASED,
                    path = %f.path.display(), offset = f.offset, "a rotated file was read to its end and released");
            }
            self.dirty = true;
            let copies = self.copies_of(key);
            for c in copies {
                self.take_over(c, Some((f.offset, f.sample)))?;
            }
            if f.copy_of.is_none() && f.until.is_none() {
                // Should it come back within reach, it is read on, not again.
                self.ghosts.push(Ghost {
                    mark: f.mark(),
                    since: now,
                });
            }
        }
        Ok(())
    }

    /// A copy starts reading by itself, at `from` (where its original was read up to when it
    /// stopped holding the same lines, and the original's sample there) or, not knowing that,
    /// where it was. A copy shorter than that waits until it holds those bytes (a copy still
    /// being written): clamped to its size, it would read again what the original gave.
    fn take_over(&mut self, key: (u64, u64), from: Option<(u64, Sample)>) -> io::Result<()> {
        let Some(i) = self.find(key) else {
            return Ok(());
        };
        let c = &mut self.followed[i];
        c.copy_of = None;
        match from {
            Some((at, sample)) if c.size < at => c.until = Some((at, sample)),
            Some((at, _)) => c.offset = at,
            None => {}
        }
        if c.until.is_none() {
            c.sample = identity::sample(&c.file, c.offset)?;
            c.recent = vec![(c.offset, c.sample)];
        }
        c.moved = true;
        self.dirty = true;
        if c.until.is_some() {
            tracing::info!(actor = self.opts.collector.as_str(), event = events::COLLECTOR_TAIL_FOLLOW,
                path = %c.path.display(), how = "copy",
                "a copy of a file that was truncated or released, shorter than what that file gave: read only once it holds more");
        } else {
            tracing::info!(actor = self.opts.collector.as_str(), event = events::COLLECTOR_TAIL_FOLLOW,
                path = %c.path.display(), offset = c.offset, how = "copy",
                "a copy of a file that was truncated or released is read on from where the file was read up to");
        }
        Ok(())
    }

    /// Checks one followed file: its size, and whether it still holds what was read from it.
    /// A file that does not is read again from its start, and a copy of it takes over.
    fn check(&mut self, i: usize, now: Instant) -> io::Result<()> {
        let f = &mut self.followed[i];
        let size = f.file.metadata()?.len();
        if size != f.size {
            f.size = size;
            f.changed = now;
        }
        if let Some((at, sample)) = f.until {
            if size >= at {
                f.until = None;
                self.dirty = true;
                if identity::sample_matches(&f.file, at, sample)? {
                    f.offset = at;
                    f.sample = sample;
                    f.recent = vec![(at, sample)];
                } else {
                    // Past the offset it waited for, and other bytes there: no copy, a new file.
                    tracing::info!(actor = self.opts.collector.as_str(), event = events::COLLECTOR_TAIL_FOLLOW,
                        path = %f.path.display(), how = "new",
                        "a file taken for a copy holds other lines: read from its start");
                    f.offset = 0;
                    f.sample = Sample::default();
                    f.recent.clear();
                }
            }
            return Ok(());
        }
        if let Some(o) = f.copy_of {
            let key = f.key();
            return self.check_copy(key, o);
        }
        if f.offset == 0 {
            // Nothing read yet: the file is whatever it holds now (it may have been truncated
            // and rewritten before its first read, and its head must be the new one).
            let head = identity::head(&f.file)?;
            if head != f.head {
                f.head = head;
                self.dirty = true;
            }
            return Ok(());
        }
        let intact = size >= f.offset
            && identity::sample_matches(&f.file, f.offset, f.sample)?
            && identity::head_matches(&f.file, f.head)?;
        if intact && !f.head.complete && size > u64::from(f.head.len) {
            // The head grows with the file until its newline.
            f.head = identity::head(&f.file)?;
            self.dirty = true;
        }
        if intact {
            return Ok(());
        }
        let old = f.mark();
        tracing::warn!(actor = self.opts.collector.as_str(), event = events::COLLECTOR_TAIL_TRUNCATED,
            path = %f.path.display(), offset = f.offset, size,
            "a followed file was truncated or rewritten: read again from its start");
        f.offset = 0;
        f.sample = Sample::default();
        f.recent.clear();
        f.head = identity::head(&f.file)?;
        self.dirty = true;
        let key = f.key();
        let copies = self.copies_of(key);
        let at = (old.offset, old.sample);
        if copies.is_empty() {
            self.ghosts.push(Ghost {
                mark: old,
                since: now,
            });
        }
        for c in copies {
            self.take_over(c, Some(at))?;
        }
        Ok(())
    }

    /// A copy must keep holding its original's bytes: one that grew its own way (a new file
    /// that began like the original) is read from its start.
    fn check_copy(&mut self, key: (u64, u64), original: (u64, u64)) -> io::Result<()> {
        let (Some(c), Some(o)) = (self.find(key), self.find(original)) else {
            return Ok(());
        };
        let (copy, orig) = (&self.followed[c], &self.followed[o]);
        let upto = copy.size.min(orig.size);
        if upto < evidence_from(orig.head)
            || identity::sample(&copy.file, upto)? == identity::sample(&orig.file, upto)?
        {
            return Ok(());
        }
        let c = &mut self.followed[c];
        tracing::info!(actor = self.opts.collector.as_str(), event = events::COLLECTOR_TAIL_FOLLOW,
            path = %c.path.display(), how = "new",
            "a file taken for a copy holds other lines than its original: read from its start");
        c.copy_of = None;
        c.offset = 0;
        c.sample = Sample::default();
        c.recent.clear();
        self.dirty = true;
        Ok(())
    }

    /// A file found for the first time: a ghost's copy, a live file's copy, or a new file.
    fn adopt(
        &mut self,
        path: PathBuf,
        meta: &Metadata,
        now: Instant,
        first: bool,
    ) -> io::Result<()> {
        let key = key_of(meta);
        if self.compressed.contains(&key) {
            return Ok(());
        }
        let Some(file) = self.open(&path) else {
            return Ok(());
        };
        if let Some(format) = identity::compressed(&file)? {
            tracing::info!(actor = self.opts.collector.as_str(), event = events::COLLECTOR_TAIL_FOLLOW,
                path = %path.display(), format,
                "a matching file is compressed (a rotated log logrotate compressed): it holds no lines to read and is not followed");
            self.compressed.insert(key);
            return Ok(());
        }
        let size = meta.len();
        for g in 0..self.ghosts.len() {
            if let Some(resume) = Self::resumes(&file, size, &self.ghosts[g].mark)? {
                let ghost = self.ghosts.remove(g);
                self.continued
                    .insert((ghost.mark.dev, ghost.mark.ino), key_of(meta));
                let offset = ghost.mark.offset;
                let waits = matches!(resume, Resume::Until(..));
                tracing::info!(actor = self.opts.collector.as_str(), event = events::COLLECTOR_TAIL_FOLLOW,
                    path = %path.display(), of = %ghost.mark.path.display(), offset,
                    "a copy of a file that was truncated or vanished: {}",
                    if waits { "shorter than what that file gave, it is read only once it holds more" } else { "read on from where that file was read up to" });
                match resume {
                    Resume::At(at) => {
                        self.follow(path, file, meta, at, now, "copy")?;
                    }
                    Resume::Until(at, sample) => {
                        let f = self.follow(path, file, meta, 0, now, "copy")?;
                        f.until = Some((at, sample));
                    }
                }
                return Ok(());
            }
        }
        for o in 0..self.followed.len() {
            let orig = &self.followed[o];
            // A copy shares more than its first lines with its original: the bytes at the end
            // of the shorter of the two, far enough from the start (`evidence_from`). A copy
            // is checked again at every look (`check`), so a new file that began alike and
            // goes its own way is read after all.
            // Nor is a copy longer than its original (sizes are fresh: `scan` checks every
            // followed file before it adopts new ones).
            let upto = size.min(orig.size);
            if orig.head.len == 0 || size > orig.size || upto < evidence_from(orig.head) {
                continue;
            }
            if identity::head_matches(&file, orig.head)?
                && identity::sample(&file, upto)? == identity::sample(&orig.file, upto)?
            {
                let (key, offset) = (orig.key(), orig.offset.min(size));
                tracing::info!(actor = self.opts.collector.as_str(), event = events::COLLECTOR_TAIL_FOLLOW,
                    path = %path.display(), of = %orig.path.display(),
                    "a copy of a followed file: not read while the original holds the same lines");
                let f = self.follow(path, file, meta, offset, now, "copy")?;
                f.copy_of = Some(key);
                return Ok(());
            }
        }
        // Starting like a file read before, with too little past its first lines to tell a
        // copy being written from a new file that begins alike (a CSV header, a banner):
        // decided once it holds enough, or as a new file `rotate_wait` after it was first seen.
        if self.lookalike(&file, size)? {
            let since = *self.undecided.entry(key).or_insert(now);
            if now.saturating_duration_since(since) < self.opts.rotate_wait {
                return Ok(());
            }
        }
        self.undecided.remove(&key);
        let offset = if first && self.opts.read_from_end {
            last_line_start(&file, size, self.opts.max_record_bytes as u64)?
        } else {
            0
        };
        self.follow(path, file, meta, offset, now, "new")?;
        Ok(())
    }

    /// Whether a file of `size` begins like a ghost or a followed file and holds nothing past
    /// that first line that could be compared with it.
    fn lookalike(&self, file: &File, size: u64) -> io::Result<bool> {
        for g in &self.ghosts {
            let h = g.mark.head;
            let evidence = g
                .mark
                .recent
                .iter()
                .any(|&(end, _)| end >= evidence_from(h) && end <= size)
                || size >= g.mark.offset;
            if h.len > 0 && !evidence && identity::head_matches(file, h)? {
                return Ok(true);
            }
        }
        for o in &self.followed {
            let h = o.head;
            if h.len > 0
                && size <= o.size
                && size < evidence_from(h)
                && identity::head_matches(file, h)?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The checkpoint's marks and ghosts, and whether they changed since last asked.
    pub fn marks(&mut self) -> (Vec<Mark>, Vec<Mark>, bool) {
        let dirty = std::mem::take(&mut self.dirty);
        let marks = self.followed.iter().map(Followed::mark).collect();
        let ghosts = self.ghosts.iter().map(|g| g.mark.clone()).collect();
        (marks, ghosts, dirty)
    }
}

/// The paths `pattern` matches now, and the directories on the way that could not be read
/// (with why). A pattern that is no glob (the config check refuses a bad one) is its own match.
pub(crate) fn expand(pattern: &str) -> (Vec<PathBuf>, Vec<(PathBuf, io::Error)>) {
    let mut errors = Vec::new();
    let paths = match glob::glob(pattern) {
        Ok(found) => found
            .filter_map(|p| match p {
                Ok(p) => Some(p),
                Err(e) => {
                    errors.push((e.path().to_path_buf(), e.into()));
                    None
                }
            })
            .collect(),
        Err(_) => vec![PathBuf::from(pattern)],
    };
    (paths, errors)
}

/// A mark's file renamed out of the pattern's reach: the same device and inode in the
/// directory it was in.
fn renamed_away(mark: &Mark) -> Option<(PathBuf, Metadata)> {
    let dir = mark.path.parent()?;
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let m = std::fs::metadata(e.path()).ok()?;
        (m.is_file() && key_of(&m) == (mark.dev, mark.ino)).then(|| (e.path(), m))
    })
}

/// Where the file's last line begins (`read_from = "end"`): after the last newline within
/// `max` bytes of its end, so that a line being written as the collector starts is read whole.
fn last_line_start(file: &File, size: u64, max: u64) -> io::Result<u64> {
    let from = size.saturating_sub(max + 1);
    let mut buf = Vec::new();
    io::Read::read_to_end(
        &mut At {
            file,
            pos: from,
            end: size,
        },
        &mut buf,
    )?;
    Ok(match buf.iter().rposition(|&b| b == b'\n') {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => size,
    })
}
