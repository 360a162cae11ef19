//! The store's root directory as one verified handle, through which every path of a batch is resolved (so an unmount under a batch cannot redirect its writes), and the directories made under it.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::faults;

/// The root directory, opened once and verified to carry the marker; every operation of one
/// batch resolves its paths through this handle, never through the root's path again.
///
/// A NAS unmounted between two operations leaves the bare mountpoint at the root's path: a
/// check of the marker by path followed by writes by path sends the writes there. std has no
/// `openat`, so the handle's `/proc/self/fd/N` path stands in for the directory fd: the kernel
/// resolves it to the directory the fd was opened on, whatever is mounted at the root's path
/// since, and std's whole API then works relative to it (as `openat(fd, …)` would).
#[derive(Debug)]
pub(super) struct Root {
    pub(super) dir: File,
    /// `/proc/self/fd/<fd of dir>`: valid while `dir` is open.
    pub(super) path: PathBuf,
    /// The root's configured path, for messages and injected faults.
    pub(super) logical: PathBuf,
}

impl Root {
    /// An injected failure of `op` on `path` (a path under [`Root::path`]), matched against the
    /// path as configured.
    pub(super) fn fault(&self, op: faults::Op, path: &Path) -> io::Result<()> {
        let rel = path.strip_prefix(&self.path).unwrap_or(path);
        faults::check(op, &self.logical.join(rel))
    }
}

/// Creates `root/rel` and its missing ancestors (the root exists); each directory whose entries changed goes
/// into `dirty`, to be fsynced before the write counts as durable.
pub(super) fn ensure_dir(
    root: &Root,
    rel: &Path,
    dirty: &mut BTreeSet<PathBuf>,
) -> io::Result<PathBuf> {
    let full = root.path.join(rel);
    // The common case costs one stat, not a mkdir per level on a NAS.
    if full.is_dir() {
        return Ok(full);
    }
    let mut path = root.path.clone();
    for part in rel.components() {
        let parent = path.clone();
        path.push(part);
        root.fault(faults::Op::Open, &path)?;
        match fs::create_dir(&path) {
            Ok(()) => {
                dirty.insert(parent);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(path)
}

/// Opens `path` as a directory handle for reading only (`fushi verify`): no marker needed.
pub(super) fn open_dir(path: &Path) -> io::Result<Root> {
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ENOTDIR) => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("primary store {} is not a directory", path.display()),
            ),
            _ => e,
        })?;
    Ok(Root {
        path: PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())),
        logical: path.to_path_buf(),
        dir,
    })
}
