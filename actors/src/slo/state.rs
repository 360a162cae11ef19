//! The persisted state of one SLO gate, `<data_dir>/slo/<name>.json`: its phase, its good streak, its past windows, its open incident and whether that incident's rollback ran.
//!
//! The file is replaced atomically ([`crate::fs::write_atomic`]) after every judged window and
//! before anything is done about it, so a crash at any instant leaves either the state before
//! the window (the window is judged again, the same way) or the state after it (it is not judged
//! twice). A rollback's intent is in the file before the command starts: a start that finds an
//! intent without an outcome knows the command may have run, and does not run it again.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};

use super::spec::Phase;
use super::window::{Judged, Verdict};

/// Past windows kept in the file and shown by `fushi slo`: a day of 15-minute windows.
pub const PAST_KEPT: usize = 96;

/// A rollback of an incident: written as an intent before the command starts, completed after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackRun {
    pub argv: Vec<String>,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Why it failed (did not start, timed out, killed by a signal, nonzero exit).
    #[serde(default)]
    pub error: Option<String>,
    /// The daemon stopped while it ran (a crash, `kill -9`): its outcome is unknown, and it was
    /// not run again.
    #[serde(default)]
    pub interrupted: bool,
}

impl RollbackRun {
    pub fn done(&self) -> bool {
        self.finished_at.is_some() || self.interrupted
    }
}

/// An incident: opened by a violation, closed by the next `ok` window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    /// The window that opened it, `<start>/<end>`.
    pub window: String,
    pub opened_at: String,
    /// The phase it was violated in and the one it stepped back to (the same for A).
    pub phase_from: Phase,
    pub phase_to: Phase,
    #[serde(default)]
    pub rollback: Option<RollbackRun>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloState {
    pub name: String,
    pub phase: Phase,
    /// The config's `phase` when this state was written: a config naming another one is the
    /// operator moving the gate by hand, and wins over the file.
    pub config_phase: Phase,
    /// The end of the last judged window (ms since the epoch): records before it are not
    /// counted again, windows from it on are judged next.
    #[serde(default)]
    pub judged_until_ms: Option<i64>,
    /// Consecutive `ok` windows in the current phase.
    #[serde(default)]
    pub good_streak: u32,
    /// In a warn streak: its alert was sent.
    #[serde(default)]
    pub warned: bool,
    #[serde(default)]
    pub past: VecDeque<Judged>,
    #[serde(default)]
    pub incident: Option<Incident>,
    /// Incidents opened so far: the next one's number.
    #[serde(default)]
    pub incidents: u64,
    /// Windows judged per verdict, ever (the `fushi_slo_windows` counters).
    #[serde(default)]
    pub verdicts: BTreeMap<Verdict, u64>,
    /// Records that arrived after their window was judged: counted in no window.
    #[serde(default)]
    pub too_late: u64,
}

impl SloState {
    pub fn new(name: &str, phase: Phase) -> Self {
        Self {
            name: name.to_string(),
            phase,
            config_phase: phase,
            judged_until_ms: None,
            good_streak: 0,
            warned: false,
            past: VecDeque::new(),
            incident: None,
            incidents: 0,
            verdicts: BTreeMap::new(),
            too_late: 0,
        }
    }

    pub fn last(&self) -> Option<&Judged> {
        self.past.back()
    }
}

/// Where SLO `name`'s state lives under the data dir.
pub fn path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("slo").join(format!("{name}.json"))
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("encoding the state of SLO {name}: {source}")]
    Encode {
        name: String,
        source: serde_json::Error,
    },
}

/// What [`load`] found.
#[derive(Debug)]
pub enum Loaded {
    Fresh,
    Found(Box<SloState>),
    /// The file did not parse (written by something else, or a disk that lost it): moved
    /// aside to `<name>.json.bad` so that it is kept, and the gate starts fresh.
    Unreadable {
        moved_to: PathBuf,
        error: String,
    },
}

/// Reads the state at `path` (blocking: call on the blocking pool).
pub fn load(path: &Path) -> Result<Loaded, StateError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Fresh),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    match serde_json::from_slice(&text) {
        Ok(s) => Ok(Loaded::Found(Box::new(s))),
        Err(e) => {
            let moved_to = path.with_extension("json.bad");
            std::fs::rename(path, &moved_to).map_err(|source| StateError::Write {
                path: moved_to.clone(),
                source,
            })?;
            Ok(Loaded::Unreadable {
                moved_to,
                error: e.to_string(),
            })
        }
    }
}

/// Replaces the state at `path` atomically (blocking: call on the blocking pool).
pub fn save(path: &Path, state: &SloState) -> Result<(), StateError> {
    let bytes = serde_json::to_vec_pretty(state).map_err(|source| StateError::Encode {
        name: state.name.clone(),
        source,
    })?;
    let write = |path: &Path| StateError::Write {
        path: path.to_path_buf(),
        source: io::Error::other("no parent directory"),
    };
    let dir = path.parent().ok_or_else(|| write(path))?;
    std::fs::create_dir_all(dir).map_err(|source| StateError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    crate::fs::write_atomic(path, &bytes).map_err(|source| StateError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_a_bad_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "latency");
        assert!(matches!(load(&p).unwrap(), Loaded::Fresh));
        let mut s = SloState::new("latency", Phase::B);
        s.incident = Some(Incident {
            id: "latency-1".into(),
            window: "a/b".into(),
            opened_at: "t".into(),
            phase_from: Phase::B,
            phase_to: Phase::A,
            rollback: Some(RollbackRun {
                argv: vec!["rb".into()],
                started_at: "t".into(),
                finished_at: None,
                exit_code: None,
                error: None,
                interrupted: false,
            }),
        });
        save(&p, &s).unwrap();
        match load(&p).unwrap() {
            Loaded::Found(back) => assert_eq!(*back, s),
            other => panic!("{other:?}"),
        }
        std::fs::write(&p, b"{\"name\": 3").unwrap();
        match load(&p).unwrap() {
            Loaded::Unreadable { moved_to, .. } => {
                assert!(moved_to.exists() && !p.exists());
            }
            other => panic!("{other:?}"),
        }
    }
}
