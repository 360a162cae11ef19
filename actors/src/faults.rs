//! Injected I/O failures: a test arms a rule ("the next 3 fsyncs under this directory fail with EIO") and the journal and the primary store fail those operations as the kernel would.
//!
//! The journal and the primary call [`check`] right before each operation that can fail for real
//! (`open`, `write`, `fsync`, `rename`, and the primary's marker check), with the path it acts on.
//! Disarmed (always, outside tests) that is one relaxed atomic load. Armed, a matching rule makes
//! the operation return its error *instead of* running it, which is what the kernel does for
//! `open`, `rename` and a refused `write`; for `fsync` it is the worst case (the data may or may
//! not have reached the disk), which is what the callers must survive anyway. Rules match by
//! path prefix, so tests running in parallel in one process only ever hit their own files.
//!
//! Real mounts (a tmpfs out of inodes, a full one, a frozen bindfs) reach the same code paths in
//! the integration tests; this reaches them in a property test, hundreds of times a second.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// An operation that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Opening or creating a file or directory (`open`, `mkdir`).
    Open,
    Write,
    /// `fsync`/`fdatasync` of a file or a directory.
    Fsync,
    Rename,
    /// Reading the primary store's marker through its directory handle.
    Marker,
}

#[derive(Debug)]
struct Rule {
    op: Op,
    under: PathBuf,
    /// Matching operations to let through before failing.
    skip: u32,
    /// Failures left; `u32::MAX` fails until disarmed.
    times: u32,
    errno: i32,
}

static ARMED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set while [`without`] runs: this thread's operations are never failed.
    static EXEMPT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with no failure injected into this thread's operations: a test's own checks read
/// the files under test without taking the failures meant for the code under test.
pub fn without<T>(f: impl FnOnce() -> T) -> T {
    let was = EXEMPT.with(|e| e.replace(true));
    let out = f();
    EXEMPT.with(|e| e.set(was));
    out
}
static RULES: Mutex<Vec<Rule>> = Mutex::new(Vec::new());

fn rules() -> std::sync::MutexGuard<'static, Vec<Rule>> {
    RULES.lock().unwrap_or_else(|p| p.into_inner())
}

/// Fails `op` on paths under `under` with `errno`, after letting `skip` such operations through,
/// `times` times (`u32::MAX`: until [`disarm`]).
pub fn arm(op: Op, under: &Path, skip: u32, times: u32, errno: i32) {
    let mut r = rules();
    r.push(Rule {
        op,
        under: under.to_path_buf(),
        skip,
        times,
        errno,
    });
    ARMED.store(true, Ordering::Release);
}

/// Removes every rule for paths under `under`.
pub fn disarm(under: &Path) {
    let mut r = rules();
    r.retain(|rule| !rule.under.starts_with(under));
    ARMED.store(!r.is_empty(), Ordering::Release);
}

/// Fails with the armed error if a rule matches `op` on `path`; otherwise does nothing.
#[inline]
pub fn check(op: Op, path: &Path) -> io::Result<()> {
    if !ARMED.load(Ordering::Relaxed) {
        return Ok(());
    }
    check_slow(op, path)
}

#[cold]
fn check_slow(op: Op, path: &Path) -> io::Result<()> {
    if EXEMPT.with(|e| e.get()) {
        return Ok(());
    }
    let mut r = rules();
    let Some(i) = r
        .iter()
        .position(|rule| rule.op == op && path.starts_with(&rule.under))
    else {
        return Ok(());
    };
    let rule = &mut r[i];
    if rule.skip > 0 {
        rule.skip -= 1;
        return Ok(());
    }
    let errno = rule.errno;
    if rule.times != u32::MAX {
        rule.times -= 1;
        if rule.times == 0 {
            r.remove(i);
        }
    }
    ARMED.store(!r.is_empty(), Ordering::Release);
    Err(io::Error::from_raw_os_error(errno))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_by_prefix_skip_and_run_out() {
        let dir = Path::new("/nonexistent/faults-test");
        arm(Op::Fsync, dir, 1, 2, nix::libc::EIO);
        assert!(check(Op::Fsync, &dir.join("a")).is_ok(), "skipped");
        assert!(check(Op::Write, &dir.join("a")).is_ok(), "another op");
        assert!(check(Op::Fsync, Path::new("/nonexistent/other")).is_ok());
        let e = check(Op::Fsync, &dir.join("b")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(nix::libc::EIO));
        assert!(check(Op::Fsync, dir).is_err());
        assert!(check(Op::Fsync, dir).is_ok(), "ran out");
        arm(Op::Open, dir, 0, u32::MAX, nix::libc::ENOSPC);
        for _ in 0..5 {
            assert!(check(Op::Open, dir).is_err());
        }
        disarm(dir);
        assert!(check(Op::Open, dir).is_ok());
    }
}
