//! The process's descriptor limit (RLIMIT_NOFILE): read it, raise the soft limit to the hard one at start, and give children back the soft limit the daemon started with.
//!
//! systemd starts services with a soft limit of 1024 and a higher hard limit, and expects a
//! daemon that needs more to raise its own soft limit (systemd.exec(5), `LimitNOFILE=`). Children
//! get the old soft limit back, since programs built on select(2) break above 1024.

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// The soft limit before [`raise`], for children; 0 while nothing was raised.
static STARTED_WITH: AtomicU64 = AtomicU64::new(0);

/// The soft and hard limits on open descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub soft: u64,
    pub hard: u64,
}

/// What [`raise`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    pub before: Limits,
    pub now: Limits,
}

/// The limits in force.
pub fn get() -> io::Result<Limits> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    Ok(Limits { soft, hard })
}

/// Sets both limits. Only a system call: safe between fork and exec (`pre_exec`).
pub fn set(limits: Limits) -> io::Result<()> {
    setrlimit(Resource::RLIMIT_NOFILE, limits.soft, limits.hard).map_err(io::Error::from)
}

/// Raises the soft limit to the hard one and remembers the old soft limit for children.
pub fn raise() -> io::Result<Raised> {
    let before = get()?;
    let now = Limits {
        soft: before.hard,
        ..before
    };
    if now != before {
        set(now)?;
        STARTED_WITH.store(before.soft, Ordering::Relaxed);
    }
    Ok(Raised { before, now })
}

/// Gives a child about to exec the soft limit the daemon started with, when [`raise`] changed
/// it. Only an atomic load and system calls: safe between fork and exec (`pre_exec`).
pub fn restore_for_child() -> io::Result<()> {
    match STARTED_WITH.load(Ordering::Relaxed) {
        0 => Ok(()),
        soft => {
            let now = get()?;
            set(Limits {
                soft: soft.min(now.hard),
                ..now
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_back_as_set_and_proc_agrees() {
        let l = get().unwrap();
        assert!(l.soft <= l.hard, "{l:?}");
        let proc = std::fs::read_to_string("/proc/self/limits").unwrap();
        let line = proc
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
        assert_eq!(nums, [l.soft.to_string(), l.hard.to_string()]);
        // Setting what is in force changes nothing and must succeed unprivileged.
        set(l).unwrap();
        assert_eq!(get().unwrap(), l);
    }
}
