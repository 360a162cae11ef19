//! The filesystem steps every writer of fushi shares: replace a file so that a crash leaves the old or the new content, and make a directory entry durable.
//!
//! Each step checks [`faults`] first, so that tests can fail it as the kernel would.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use crate::faults::{check, Op};

/// Replaces `path` with `bytes`: a temp file in the same directory, written, fsynced, renamed
/// over `path`, and the directory fsynced, since the rename is only durable once its entry is.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    check(Op::Open, path)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".fushi-tmp.")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    check(Op::Write, path)?;
    tmp.write_all(bytes)?;
    check(Op::Fsync, path)?;
    tmp.as_file().sync_all()?;
    check(Op::Rename, path)?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Makes the entries of directory `dir` (a file created, renamed or removed in it) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    check(Op::Fsync, dir)?;
    File::open(dir)?.sync_all()
}

/// Whether the open `file` is still what `path` names (same device and inode): after a
/// failed replace, whether a handle may go on appending.
pub fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}
