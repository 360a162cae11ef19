//! What can go wrong with the journal, each error naming the operation and the path.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal directory {0} is locked by another process (is a second fushi running on this data dir?)")]
    Locked(PathBuf),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot encode a record of stream {stream:?}: {reason}")]
    Encode { stream: String, reason: String },
    #[error(
        "disk nearly full under {dir}: the journal keeps {reserve} bytes (one segment) free so \
         that forwarding can always move a segment to the primary and release it; records wait \
         until {want} bytes are free ({free} were when this was first seen)"
    )]
    Space {
        dir: PathBuf,
        free: u64,
        reserve: u64,
        want: u64,
    },
}

impl JournalError {
    /// Disk full: the caller keeps the records and retries later instead of failing over.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, JournalError::Space { .. })
            || matches!(self, JournalError::Io { source, .. } if source.raw_os_error() == Some(nix::libc::ENOSPC))
    }
}

pub(super) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> JournalError + 'a {
    move |source| JournalError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}
