//! The process's descriptor limit (RLIMIT_NOFILE): read it, raise the soft limit to the hard one at start, and give children back the soft limit the daemon started with.
//!
//! systemd starts services with a soft limit of 1024 and a higher hard limit, and expects a
//! daemon that needs more to raise its own soft limit (systemd.exec(5), `LimitNOFILE=`). Children
//! get the old soft limit back, since programs built on select(2) break above 1024.

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
    sys::get()
}

/// Sets both limits. Only a system call: safe between fork and exec (`pre_exec`).
pub fn set(limits: Limits) -> io::Result<()> {
    sys::set(limits)
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

/// getrlimit/setrlimit as 64-bit Linux (glibc and musl alike) declares them: `rlim_t` is a
/// 64-bit unsigned integer and RLIMIT_NOFILE is 7 on every such architecture but MIPS and SPARC.
#[cfg(all(
    target_os = "linux",
    target_pointer_width = "64",
    not(any(target_arch = "mips64", target_arch = "sparc64"))
))]
mod sys {
    use super::Limits;
    use std::io;

    const RLIMIT_NOFILE: std::ffi::c_int = 7;

    #[repr(C)]
    struct RLimit {
        cur: u64,
        max: u64,
    }

    extern "C" {
        fn getrlimit(resource: std::ffi::c_int, rlim: *mut RLimit) -> std::ffi::c_int;
        fn setrlimit(resource: std::ffi::c_int, rlim: *const RLimit) -> std::ffi::c_int;
    }

    pub fn get() -> io::Result<Limits> {
        let mut r = RLimit { cur: 0, max: 0 };
        // SAFETY: `r` is a valid, writable rlimit for the duration of the call.
        if unsafe { getrlimit(RLIMIT_NOFILE, &mut r) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Limits {
            soft: r.cur,
            hard: r.max,
        })
    }

    pub fn set(l: Limits) -> io::Result<()> {
        let r = RLimit {
            cur: l.soft,
            max: l.hard,
        };
        // SAFETY: `r` is a valid rlimit for the duration of the call.
        if unsafe { setrlimit(RLIMIT_NOFILE, &r) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(not(all(
    target_os = "linux",
    target_pointer_width = "64",
    not(any(target_arch = "mips64", target_arch = "sparc64"))
)))]
mod sys {
    use super::Limits;
    use std::io;

    pub fn get() -> io::Result<Limits> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "reading RLIMIT_NOFILE is not supported on this platform",
        ))
    }

    pub fn set(_: Limits) -> io::Result<()> {
        get().map(|_| ())
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
