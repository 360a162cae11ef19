//! A tail collector's checkpoint, `<data_dir>/tail/<collector>.json`: where each followed file was read up to, and the batch on its way to the journal, replaced atomically.
//!
//! Why a pending batch is written *before* it is sent: the journal's fsync and the checkpoint's
//! rename are two writes, and a `kill -9` can fall between them. Checkpointing only after the
//! records are durable would then read them again (a repeat); before, would skip them should the
//! append not happen (a loss). So the checkpoint names the batch in flight and the stream's last
//! id before it; after a crash, the journal's last id of the stream (which no other collector
//! writes) says how many of the batch's records became durable, and reading resumes right after
//! the last of them.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use super::identity::{Head, Sample};

/// Where a followed file was read up to: its last path, which file it is, and the offset up to
/// which its records are durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub head: Head,
    pub offset: u64,
    pub sample: Sample,
    /// For a copy of another followed file (its dev and inode): not read while that one holds
    /// the same lines.
    #[serde(default)]
    pub copy_of: Option<(u64, u64)>,
    /// Samples at the ends of the last batches: a copy made before the last of them holds the
    /// bytes of an earlier one.
    #[serde(default)]
    pub recent: Vec<(u64, Sample)>,
    /// For a copy still shorter than where its lines were read up to (a copy being written, or
    /// one made before the last lines were read): it is read from this offset once it holds
    /// these bytes before it, and not before.
    #[serde(default)]
    pub until: Option<(u64, Sample)>,
}

/// A batch on its way to the journal: lines `start..end` of one file, of which `records` are
/// records of the collector's stream (the others, quarantined, go to `_quarantine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub dev: u64,
    pub ino: u64,
    pub start: u64,
    pub end: u64,
    pub records: u64,
    /// The batch's last line had no newline (emitted after `partial_after`), so it ends at
    /// `end` and not at a newline.
    pub partial: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub version: u32,
    /// The stream the records went to: a checkpoint of another stream cannot be reconciled
    /// with this one's ids.
    pub stream: String,
    /// The stream's last id once every record up to the marks was durable.
    pub last: Option<(u64, u64)>,
    pub files: Vec<Mark>,
    /// Files truncated or gone whose lines may turn up in a copy (copytruncate's): a file with
    /// one's head and sample resumes where it was read up to.
    #[serde(default)]
    pub ghosts: Vec<Mark>,
    pub pending: Option<Pending>,
}

pub const VERSION: u32 = 1;

/// Why a checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read the checkpoint {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the checkpoint {} is damaged ({error})", path.display())]
    Damaged { path: PathBuf, error: String },
    #[error("cannot write the checkpoint {}: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// The checkpoint at `path`; None when there is none (the collector's first start).
pub fn load(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(CheckpointError::Read {
                path: path.into(),
                error,
            })
        }
    };
    let damaged = |error: String| CheckpointError::Damaged {
        path: path.into(),
        error,
    };
    let cp: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
    if cp.version != VERSION {
        return Err(damaged(format!(
            "version {}, this fushi writes {VERSION}",
            cp.version
        )));
    }
    Ok(Some(cp))
}

/// Replaces the checkpoint at `path` (its directory created if need be), durably.
pub fn save(path: &Path, cp: &Checkpoint) -> Result<(), CheckpointError> {
    let write = |error| CheckpointError::Write {
        path: path.into(),
        error,
    };
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            crate::faults::check(crate::faults::Op::Open, dir).map_err(write)?;
            std::fs::create_dir_all(dir).map_err(write)?;
            if let Some(up) = dir.parent() {
                crate::fs::sync_dir(up).map_err(write)?;
            }
        }
    }
    let bytes = serde_json::to_vec_pretty(cp).map_err(|e| write(std::io::Error::other(e)))?;
    crate::fs::write_atomic(path, &bytes).map_err(write)
}

/// Moves a damaged checkpoint aside (`<name>.damaged`), so that it can be looked at while the
/// collector starts afresh.
pub fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
    let mut to = path.as_os_str().to_owned();
    to.push(".damaged");
    let to = PathBuf::from(to);
    std::fs::rename(path, &to)?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_and_a_damaged_one_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tail").join("app.json");
        assert!(load(&path).unwrap().is_none());
        let cp = Checkpoint {
            version: VERSION,
            stream: "app".into(),
            last: Some((1, 7)),
            files: vec![Mark {
                path: "/var/log/app.log".into(),
                dev: 1,
                ino: 2,
                head: Head {
                    len: 3,
                    crc: 4,
                    complete: true,
                },
                offset: 5,
                sample: Sample { len: 1, crc: 9 },
                copy_of: None,
                recent: vec![(5, Sample { len: 1, crc: 9 })],
                until: None,
            }],
            ghosts: Vec::new(),
            pending: Some(Pending {
                dev: 1,
                ino: 2,
                start: 5,
                end: 50,
                records: 3,
                partial: false,
            }),
        };
        save(&path, &cp).unwrap();
        assert_eq!(load(&path).unwrap(), Some(cp));
        std::fs::write(&path, b"{\"version\":1,").unwrap();
        let e = load(&path).unwrap_err();
        assert!(e.to_string().contains("is damaged"), "{e}");
        let aside = set_aside(&path).unwrap();
        assert!(aside.exists() && !path.exists());
    }
}
