//! The file backend's lock, `<primary>/locks/collector.leader`: taken by an exclusive create that holds on NFS, renewed by atomic replace, and taken over when stale — every step a blocking call for the primary's I/O lanes.
//!
//! Why `link(2)` and not `O_EXCL` or `flock`: `O_EXCL` was not atomic over NFSv2 and is still
//! emulated by some servers, and `flock` over NFS is silently local with `local_lock=` (one
//! measurement saw 94 % of critical sections violated). Linking a file of one's own to the lock
//! name is atomic on every NFS version; a reply lost on the way back can make a link that
//! succeeded look failed (or the reverse), so the outcome is read from the link count of one's
//! own file, which only a successful link makes 2.
//!
//! Staleness is judged by the reader: the lock's *content* must change at every renewal (a
//! `beat` counter), and the reader times how long it has seen the same content on its own
//! monotonic clock ([`Staleness`]). Never by mtime: NFS caches attributes for 3–60 s, and the
//! writer's clock is not the reader's.
//!
//! Taking over a stale lock moves it aside to a name of one's own (an atomic rename) and checks
//! that what it moved is what it judged stale; if the holder renewed in between, the lock goes
//! back under its name with `link(2)` (never over a newer one) and the take-over is abandoned.
//! That is sound for the file backend's case, two nodes: one standby against one holder. With
//! several standbys taking over at once, one may take the name while another has it moved
//! aside, and two can believe they hold it until the next renewal tells one it does not:
//! beyond two nodes, the etcd backend (SPEC §4.4).

use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

/// The lock's name in `<primary>/locks/`.
pub const LOCK_NAME: &str = "collector.leader";

/// What the lock says: who holds it, with which epoch, and a counter that every renewal moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub node: String,
    pub pid: u32,
    pub epoch: u64,
    pub started_at: String,
    pub heartbeat_ms: u64,
    /// Renewals so far: the content changes at each, which is what a reader watches.
    pub beat: u64,
    /// The holder's priority: a node of a higher one asks for the lease.
    #[serde(default)]
    pub priority: i32,
}

/// The file that keeps the highest epoch taken, in `<primary>/locks/`.
pub const EPOCH_NAME: &str = "collector.epoch";
/// A node of higher priority's request for the lease, in `<primary>/locks/`.
pub const WANT_NAME: &str = "collector.want";

/// A request for the lease by a node of higher priority than the holder's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Want {
    pub node: String,
    pub priority: i32,
    /// Moves at every request, so that holders time how long it has stood still.
    pub beat: u64,
}

/// What a renewal found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    Renewed,
    /// The lock is not ours any more: another holder's (or none).
    Lost(Option<Holder>),
}

/// What an attempt to take the lock found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// The lock is ours now.
    Ours,
    /// Someone holds it.
    Held(Holder),
    /// Our link lost to a lock that was gone again when we looked: nobody holds it, and the
    /// next attempt decides.
    Contended,
}

/// The lock directory and its files.
#[derive(Debug, Clone)]
pub struct LockDir {
    dir: PathBuf,
}

fn unique(dir: &Path, what: &str, node: &str) -> PathBuf {
    dir.join(format!(
        ".{LOCK_NAME}.{what}.{node}.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ))
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    crate::faults::check(crate::faults::Op::Open, path)?;
    let mut f = File::options().write(true).create_new(true).open(path)?;
    crate::faults::check(crate::faults::Op::Write, path)?;
    f.write_all(bytes)?;
    crate::faults::check(crate::faults::Op::Fsync, path)?;
    f.sync_all()
}

impl LockDir {
    /// The lock directory of the primary store at `primary`.
    pub fn of(primary: &Path) -> Self {
        Self {
            dir: primary.join("locks"),
        }
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(LOCK_NAME)
    }

    /// The lock's bytes, or None when there is no lock.
    pub fn read_raw(&self) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.lock_path()) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The lock's holder, or None when there is no lock. A lock that does not parse is an
    /// error naming the file: a person must look (it is never taken as free).
    pub fn read(&self) -> io::Result<Option<(Holder, Vec<u8>)>> {
        let Some(bytes) = self.read_raw()? else {
            return Ok(None);
        };
        let holder = serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not a lock fushi wrote: {e}",
                    self.lock_path().display()
                ),
            )
        })?;
        Ok(Some((holder, bytes)))
    }

    /// Takes the lock if there is none: a file of our own, written and fsynced, linked to the
    /// lock's name; whether the link took is read from our file's link count.
    pub fn try_take(&self, me: &Holder) -> io::Result<Taken> {
        fs::create_dir_all(&self.dir)?;
        let mine = unique(&self.dir, "new", &me.node);
        let bytes = serde_json::to_vec(me).map_err(io::Error::other)?;
        write_synced(&mine, &bytes)?;
        let linked = fs::hard_link(&mine, self.lock_path());
        let nlink = fs::metadata(&mine).map(|m| m.nlink());
        let _ = fs::remove_file(&mine);
        match (linked, nlink) {
            (_, Ok(2)) => {
                crate::fs::sync_dir(&self.dir)?;
                Ok(Taken::Ours)
            }
            (Err(e), _) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
            _ => match self.read()? {
                Some((h, _)) => Ok(Taken::Held(h)),
                None => Ok(Taken::Contended),
            },
        }
    }

    /// Renews our lock: the new content replaces the old atomically, once the lock is checked
    /// to still be ours (the node and epoch we wrote). [`Renewal::Lost`] when it is not: another
    /// node took it over (or it is gone), and we must stop collecting.
    ///
    /// A renewal that a NAS held past its timeout and applied late can land over a newer
    /// holder's lock. The epoch count tells such a zombie write apart: a lock whose epoch is
    /// below the count is stale news, so the count's holder rewrites it instead of giving up,
    /// and the zombie's writer, finding the count above its own epoch, gives up.
    pub fn renew(&self, me: &Holder) -> io::Result<Renewal> {
        let counted = self.read_epoch()?;
        let lock = self.read()?;
        if me.epoch < counted {
            return Ok(Renewal::Lost(lock.map(|(h, _)| h)));
        }
        match lock {
            Some((h, _)) if h.node == me.node && h.epoch == me.epoch => {}
            Some((h, _)) if h.epoch < counted && me.epoch == counted => {}
            other => return Ok(Renewal::Lost(other.map(|(h, _)| h))),
        }
        let bytes = serde_json::to_vec(me).map_err(io::Error::other)?;
        let tmp = unique(&self.dir, "renew", &me.node);
        write_synced(&tmp, &bytes)?;
        crate::faults::check(crate::faults::Op::Rename, &self.lock_path())?;
        if let Err(e) = fs::rename(&tmp, self.lock_path()) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        crate::fs::sync_dir(&self.dir)?;
        Ok(Renewal::Renewed)
    }

    /// The highest epoch any node took the lock with, as `collector.epoch` says (0 before the
    /// first). The lock goes when its holder releases it; this file keeps the count, so that an
    /// epoch is never handed out twice.
    pub fn read_epoch(&self) -> io::Result<u64> {
        match fs::read_to_string(self.dir.join(EPOCH_NAME)) {
            Ok(s) => s.trim().parse().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} does not hold an epoch: {e}",
                        self.dir.join(EPOCH_NAME).display()
                    ),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Records `epoch` as taken, unless a higher one already is.
    pub fn write_epoch(&self, epoch: u64, node: &str) -> io::Result<()> {
        if self.read_epoch().unwrap_or(0) >= epoch {
            return Ok(());
        }
        let tmp = unique(&self.dir, "epoch", node);
        write_synced(&tmp, format!("{epoch}\n").as_bytes())?;
        crate::faults::check(crate::faults::Op::Rename, &self.dir.join(EPOCH_NAME))?;
        if let Err(e) = fs::rename(&tmp, self.dir.join(EPOCH_NAME)) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        crate::fs::sync_dir(&self.dir)
    }

    /// The standing request of a node of higher priority for the lease, if any.
    pub fn read_want(&self) -> io::Result<Option<(Want, Vec<u8>)>> {
        let path = self.dir.join(WANT_NAME);
        match fs::read(&path) {
            // A request that does not parse is no request: it only ever asks.
            Ok(b) => Ok(serde_json::from_slice(&b).ok().map(|w| (w, b))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Asks the holder for the lease (replacing any older request); `want.beat` must move at
    /// each call, so that the holder sees the request is alive.
    pub fn want(&self, want: &Want) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let tmp = unique(&self.dir, "want", &want.node);
        write_synced(&tmp, &serde_json::to_vec(want).map_err(io::Error::other)?)?;
        if let Err(e) = fs::rename(&tmp, self.dir.join(WANT_NAME)) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(())
    }

    /// Withdraws our request, if the standing one is ours.
    pub fn unwant(&self, node: &str) -> io::Result<()> {
        if let Some((w, _)) = self.read_want()? {
            if w.node == node {
                match fs::remove_file(self.dir.join(WANT_NAME)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Takes over a lock judged stale, whose bytes were `stale`: moved aside to a name of our
    /// own, checked to be those bytes, then replaced by ours with [`LockDir::try_take`]. When
    /// the holder renewed meanwhile, the lock goes back (without replacing a newer one) and
    /// the holder keeps it.
    pub fn take_over(&self, stale: &[u8], me: &Holder) -> io::Result<Taken> {
        let aside = unique(&self.dir, "stale", &me.node);
        crate::faults::check(crate::faults::Op::Rename, &self.lock_path())?;
        match fs::rename(self.lock_path(), &aside) {
            Ok(()) => {}
            // Another standby moved it first: whatever is there now decides.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return self.try_take(me),
            Err(e) => return Err(e),
        }
        let moved = fs::read(&aside)?;
        if moved != stale {
            let _ = fs::hard_link(&aside, self.lock_path());
            let _ = fs::remove_file(&aside);
            return match self.read()? {
                Some((h, _)) => Ok(Taken::Held(h)),
                None => self.try_take(me),
            };
        }
        let _ = fs::remove_file(&aside);
        self.try_take(me)
    }

    /// Removes our lock (a clean stop or a hand-over), once it is checked to be ours.
    pub fn release(&self, me: &Holder) -> io::Result<()> {
        if let Some((h, bytes)) = self.read()? {
            if h.node == me.node && h.epoch == me.epoch {
                let aside = unique(&self.dir, "released", &me.node);
                fs::rename(self.lock_path(), &aside)?;
                // Renewed by someone else between the read and the rename: put it back.
                if fs::read(&aside)? != bytes {
                    let _ = fs::hard_link(&aside, self.lock_path());
                }
                let _ = fs::remove_file(&aside);
                crate::fs::sync_dir(&self.dir)?;
            }
        }
        Ok(())
    }
}

/// How long the lock's content has stayed the same, timed on this node's monotonic clock.
#[derive(Debug, Default)]
pub struct Staleness {
    seen: Option<(Vec<u8>, Instant)>,
}

impl Staleness {
    /// Records what the lock holds at `now` (None: no lock); returns for how long it has held
    /// exactly that.
    pub fn observe(&mut self, content: Option<&[u8]>, now: Instant) -> Duration {
        let Some(bytes) = content else {
            self.seen = None;
            return Duration::ZERO;
        };
        match &self.seen {
            Some((b, since)) if b.as_slice() == bytes => now.saturating_duration_since(*since),
            _ => {
                self.seen = Some((bytes.to_vec(), now));
                Duration::ZERO
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn holder(node: &str, epoch: u64) -> Holder {
        Holder {
            host: "h".into(),
            node: node.into(),
            pid: 1,
            epoch,
            started_at: "2026-12-01T00:00:00Z".into(),
            heartbeat_ms: 100,
            beat: 0,
            priority: 0,
        }
    }

    #[test]
    fn one_of_many_racing_nodes_takes_the_lock() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let locks = Arc::new(LockDir::of(dir.path()));
            let go = Arc::new(Barrier::new(8));
            let winners: Vec<bool> = (0..8)
                .map(|i| {
                    let (locks, go) = (locks.clone(), go.clone());
                    std::thread::spawn(move || {
                        go.wait();
                        locks.try_take(&holder(&format!("n{i}"), 1)).unwrap() == Taken::Ours
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect();
            assert_eq!(winners.iter().filter(|w| **w).count(), 1, "{winners:?}");
            let (h, _) = locks.read().unwrap().unwrap();
            assert!(winners[h.node[1..].parse::<usize>().unwrap()]);
        }
    }

    #[test]
    fn a_renewal_changes_the_content_and_fails_once_the_lease_is_someone_elses() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LockDir::of(dir.path());
        let mut a = holder("a", 1);
        assert_eq!(locks.try_take(&a).unwrap(), Taken::Ours);
        let before = locks.read_raw().unwrap().unwrap();
        a.beat += 1;
        locks.renew(&a).unwrap();
        assert_ne!(locks.read_raw().unwrap().unwrap(), before);
        // b judges it stale and takes it over with the next epoch.
        let stale = locks.read_raw().unwrap().unwrap();
        assert_eq!(
            locks.take_over(&stale, &holder("b", 2)).unwrap(),
            Taken::Ours
        );
        match locks.renew(&a).unwrap() {
            Renewal::Lost(Some(h)) => assert_eq!((h.node.as_str(), h.epoch), ("b", 2)),
            other => panic!("{other:?}"),
        }
        assert_eq!(locks.read().unwrap().unwrap().0.node, "b");
        locks.release(&holder("b", 2)).unwrap();
        assert_eq!(locks.renew(&a).unwrap(), Renewal::Lost(None));
    }

    #[test]
    fn a_take_over_of_a_lock_renewed_meanwhile_gives_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LockDir::of(dir.path());
        let mut a = holder("a", 1);
        locks.try_take(&a).unwrap();
        let judged = locks.read_raw().unwrap().unwrap();
        a.beat += 1;
        locks.renew(&a).unwrap();
        let got = locks.take_over(&judged, &holder("b", 2)).unwrap();
        assert_eq!(got, Taken::Held(a.clone()));
        assert_eq!(locks.read().unwrap().unwrap().0, a, "a keeps its lease");
        // No file of ours is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("locks"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from(LOCK_NAME)]);
    }

    #[test]
    fn a_take_over_racing_the_holders_renewal_leaves_one_holder() {
        for _ in 0..50 {
            let dir = tempfile::tempdir().unwrap();
            let locks = Arc::new(LockDir::of(dir.path()));
            let mut a = holder("a", 1);
            locks.try_take(&a).unwrap();
            let judged = locks.read_raw().unwrap().unwrap();
            let go = Arc::new(Barrier::new(2));
            let (l, g) = (locks.clone(), go.clone());
            let standby = std::thread::spawn(move || {
                g.wait();
                l.take_over(&judged, &holder("b", 2)).unwrap() == Taken::Ours
            });
            go.wait();
            a.beat += 1;
            let renewed = locks.renew(&a).unwrap() == Renewal::Renewed;
            let b_took = standby.join().unwrap();
            assert!(renewed || b_took, "nobody holds the lock");
            // Both can believe it for a moment (a renewal that read the lock as its own just
            // before the take-over; the actor's timing rules, not the lock, keep that from
            // happening: a standby takes over only after stale_after without a renewal). The
            // next renewal settles it: exactly one of them keeps the lease.
            let mut b = holder("b", 2);
            a.beat += 1;
            b.beat += 1;
            let a_keeps = locks.renew(&a).unwrap() == Renewal::Renewed;
            let b_keeps = locks.renew(&b).unwrap() == Renewal::Renewed;
            assert!(a_keeps != b_keeps, "a {a_keeps}, b {b_keeps}");
            let (h, _) = locks.read().unwrap().unwrap();
            assert_eq!(h.node, if a_keeps { "a" } else { "b" });
        }
    }

    #[test]
    fn the_epoch_count_only_grows_and_a_request_is_withdrawn_only_by_its_node() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LockDir::of(dir.path());
        assert_eq!(locks.read_epoch().unwrap(), 0);
        std::fs::create_dir_all(dir.path().join("locks")).unwrap();
        locks.write_epoch(3, "a").unwrap();
        locks.write_epoch(2, "b").unwrap();
        assert_eq!(locks.read_epoch().unwrap(), 3);
        std::fs::write(dir.path().join("locks").join(EPOCH_NAME), "x").unwrap();
        let e = locks.read_epoch().unwrap_err();
        assert!(e.to_string().contains("does not hold an epoch"), "{e}");

        assert_eq!(locks.read_want().unwrap(), None);
        let w = Want {
            node: "hi".into(),
            priority: 5,
            beat: 1,
        };
        locks.want(&w).unwrap();
        assert_eq!(locks.read_want().unwrap().unwrap().0, w);
        locks.unwant("other").unwrap();
        assert!(locks.read_want().unwrap().is_some());
        locks.unwant("hi").unwrap();
        assert_eq!(locks.read_want().unwrap(), None);
    }

    #[test]
    fn a_late_write_of_an_older_term_loses_to_the_epoch_count() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LockDir::of(dir.path());
        let a = holder("a", 1);
        assert_eq!(locks.try_take(&a).unwrap(), Taken::Ours);
        locks.write_epoch(1, "a").unwrap();
        let stale = locks.read_raw().unwrap().unwrap();
        let b = holder("b", 2);
        assert_eq!(locks.take_over(&stale, &b).unwrap(), Taken::Ours);
        locks.write_epoch(2, "b").unwrap();
        // a's renewal, held by the NAS past its timeout, lands over b's lock.
        let mut late = a.clone();
        late.beat = 7;
        std::fs::write(locks.lock_path(), serde_json::to_vec(&late).unwrap()).unwrap();
        // b, the count's holder, keeps its lease and puts its lock back.
        let mut b2 = b.clone();
        b2.beat = 1;
        assert_eq!(locks.renew(&b2).unwrap(), Renewal::Renewed);
        assert_eq!(locks.read().unwrap().unwrap().0, b2);
        // a, finding the count above its epoch, gives up even where the lock names it.
        std::fs::write(locks.lock_path(), serde_json::to_vec(&late).unwrap()).unwrap();
        match locks.renew(&late).unwrap() {
            Renewal::Lost(Some(h)) => assert_eq!(h.node, "a"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn staleness_is_how_long_the_same_content_was_seen_on_our_clock() {
        let t0 = Instant::now();
        let mut s = Staleness::default();
        assert_eq!(s.observe(Some(b"a"), t0), Duration::ZERO);
        assert_eq!(
            s.observe(Some(b"a"), t0 + Duration::from_secs(3)),
            Duration::from_secs(3)
        );
        assert_eq!(
            s.observe(Some(b"b"), t0 + Duration::from_secs(4)),
            Duration::ZERO
        );
        assert_eq!(
            s.observe(Some(b"b"), t0 + Duration::from_secs(5)),
            Duration::from_secs(1)
        );
        assert_eq!(s.observe(None, t0 + Duration::from_secs(6)), Duration::ZERO);
    }

    #[test]
    fn a_release_removes_only_our_own_lock_and_a_failed_write_takes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LockDir::of(dir.path());
        let a = holder("a", 1);
        locks.try_take(&a).unwrap();
        locks.release(&holder("b", 7)).unwrap();
        assert!(locks.read().unwrap().is_some(), "not b's to release");
        locks.release(&a).unwrap();
        assert!(locks.read().unwrap().is_none());
        crate::faults::arm(
            crate::faults::Op::Fsync,
            &dir.path().join("locks"),
            0,
            1,
            nix::libc::EIO,
        );
        assert!(locks.try_take(&a).is_err());
        crate::faults::disarm(&dir.path().join("locks"));
        assert!(
            locks.read().unwrap().is_none(),
            "a failed take leaves no lock"
        );
        assert_eq!(locks.try_take(&a).unwrap(), Taken::Ours);
    }
}
