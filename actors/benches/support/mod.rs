//! Helpers shared by the benchmarks of `fushi-actors`: the daemon's allocator, knobs, the scratch directory, tool lookup and figures.

pub mod restart;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The daemon's allocator, so that ours is measured as it runs.
#[global_allocator]
static ALLOC: fushi_actors::runtime::Allocator = fushi_actors::runtime::Allocator;

/// A numeric knob from the environment, or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// `name` on `PATH`, if it is there.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A fresh scratch directory for one benchmark, under `FUSHI_BENCH_DIR` or else cargo's
/// per-target temporary directory (on the build disk, unlike `/tmp`, which may be tmpfs). Ours
/// and the baseline both work below it, so they run on the same filesystem.
pub fn scratch(bench: &str) -> tempfile::TempDir {
    let base = std::env::var_os("FUSHI_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).expect("creating the benchmark base directory");
    let dir = tempfile::Builder::new()
        .prefix(&format!("fushi-bench-{bench}."))
        .tempdir_in(&base)
        .expect("creating the benchmark scratch directory");
    println!(
        "scratch directory: {} ({}; set FUSHI_BENCH_DIR to move it)",
        dir.path().display(),
        fs_kind(dir.path())
    );
    dir
}

/// The filesystem type of `dir`, with a warning where fsync means nothing.
fn fs_kind(dir: &Path) -> String {
    use nix::sys::statfs::*;
    let kind = match statfs(dir) {
        Ok(s) => s.filesystem_type(),
        Err(e) => return format!("filesystem unknown: {e}"),
    };
    let named = [
        (EXT4_SUPER_MAGIC, "ext4"),
        (XFS_SUPER_MAGIC, "xfs"),
        (BTRFS_SUPER_MAGIC, "btrfs"),
        (NFS_SUPER_MAGIC, "nfs"),
        (OVERLAYFS_SUPER_MAGIC, "overlayfs"),
        (FUSE_SUPER_MAGIC, "fuse"),
    ];
    if kind == TMPFS_MAGIC {
        return "tmpfs: WARNING, fsync is a no-op here, the figures say nothing about a disk"
            .into();
    }
    match named.iter().find(|(m, _)| *m == kind) {
        Some((_, name)) => (*name).to_string(),
        None => format!("filesystem magic {:#x}", kind.0),
    }
}

/// Megabytes (10^6 bytes) per second.
pub fn mb_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / took.as_secs_f64() / 1e6
}

/// The median of a few figures (rounds), for the summary line.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// CPU time (user + system, all threads) this process used so far, at the 10 ms resolution of
/// `/proc/self/stat` (USER_HZ is 100 on Linux).
pub fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("reading /proc/self/stat");
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')').expect("a /proc/self/stat line") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}
