//! Where the dashboard's data comes from: the status over the control socket, a restart sent, the tail of audit.jsonl (re-read only when it grew), and the terminal restored on exit.

use fushi_actors::audit::AuditEvent;
use fushi_actors::board::StatusDoc;
use fushi_actors::supervisor::Verb;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::control::client::{self, ClientError};
use crate::control::proto::{Request, Response};

use super::view::*;

/// How much of the end of audit.jsonl is read: the dashboard shows only the newest events.
pub(super) const AUDIT_TAIL_BYTES: u64 = 256 * 1024;
/// How many events the view keeps (newest first).
pub(super) const EVENTS_KEPT: usize = 100;

pub(super) fn fetch_status(candidates: &[PathBuf]) -> Result<StatusDoc, String> {
    match client::call(candidates, client::no_answer, &Request::Status) {
        Ok(Response::Json { json }) => {
            serde_json::from_str(&json).map_err(|e| format!("bad status document: {e}"))
        }
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(ClientError::NotRunning { tried, .. }) => Err(client::no_answer(&tried)),
        Err(e) => Err(e.to_string()),
    }
}

pub(super) fn send_restart(candidates: &[PathBuf], name: &str) -> Result<String, String> {
    let req = Request::Control {
        verb: Verb::Restart,
        names: vec![name.to_string()],
    };
    match client::call(candidates, client::no_answer, &req) {
        Ok(Response::Ok { message }) => Ok(message),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The newest events of audit.jsonl, re-read only when the file's length changes; only its last
/// [`AUDIT_TAIL_BYTES`] are read, so a long history costs nothing.
pub(super) struct AuditTail {
    pub(super) path: PathBuf,
    pub(super) len: Option<u64>,
    pub(super) events: Vec<AuditEvent>,
}

impl AuditTail {
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path,
            len: None,
            events: Vec::new(),
        }
    }

    pub(super) fn read(&mut self) -> Vec<AuditEvent> {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            self.len = None;
            self.events.clear();
            return Vec::new();
        };
        if self.len != Some(meta.len()) {
            if let Ok(events) = tail_events(&self.path) {
                self.events = events;
                self.len = Some(meta.len());
            }
        }
        self.events.clone()
    }
}

/// Parses the end of an audit file, newest first. A line cut by the start of the window, or torn
/// at the end, is not JSON and is skipped, as `audit::read_events` does.
pub(super) fn tail_events(path: &Path) -> std::io::Result<Vec<AuditEvent>> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(AUDIT_TAIL_BYTES)))?;
    let mut buf = Vec::new();
    f.take(AUDIT_TAIL_BYTES).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let mut events: Vec<AuditEvent> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<AuditEvent>(l).ok())
        .filter(|e| shown(&e.event))
        .collect();
    events.reverse();
    events.truncate(EVENTS_KEPT);
    Ok(events)
}

/// Puts the terminal back (raw mode off, main screen) however `run` ends.
pub(super) struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}
