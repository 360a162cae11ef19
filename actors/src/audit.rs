//! The audit log: `audit.jsonl`, one event a line, appended and fsynced by a writer thread with group commit.
//!
//! The supervisor emits audit events on its restart path, which must stay in the microseconds, so
//! `emit` never touches the disk: it hands the event to a dedicated thread that writes every event
//! queued while its previous fsync ran and then fsyncs once (group commit). `flush` waits until
//! everything emitted before it is durable; shutdown and tests use it.
//!
//! Each append goes after the last complete line: an append that fails part-way (a full disk)
//! is cut off again, and a line left torn by a crash is ended before the next, so one bad
//! moment loses its own events and never glues the next event to half a line.

use crate::events;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::clock;

/// One line of `audit.jsonl` (SPEC §9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub ts: String,
    pub event: String,
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default)]
    pub payload: Value,
}

/// An event as `emit` hands it over: formatting, masking and encoding happen on the writer thread.
struct Raw {
    at: std::time::SystemTime,
    event: String,
    actor: Option<String>,
    payload: Value,
}

impl Raw {
    fn finish(mut self, node: &str) -> AuditEvent {
        mask_secrets(&mut self.payload);
        AuditEvent {
            ts: clock::rfc3339(self.at),
            event: self.event,
            node: node.to_string(),
            actor: self.actor,
            payload: self.payload,
        }
    }
}

enum Command {
    Write(Raw),
    Barrier(mpsc::Sender<()>),
}

enum Sink {
    File(Mutex<mpsc::Sender<Command>>),
    Memory(Mutex<Vec<AuditEvent>>),
}

/// A cheap, cloneable handle to the audit log.
#[derive(Clone)]
pub struct AuditLog {
    node: Arc<str>,
    sink: Arc<Sink>,
}

impl AuditLog {
    /// Opens (creating) the audit file and starts its writer thread.
    pub fn open(path: &Path, node: &str) -> io::Result<Self> {
        // Read too: the writer looks at the last byte to tell whether a crash left it mid-line.
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = mpsc::channel();
        let path = path.to_path_buf();
        let node_name = node.to_string();
        std::thread::Builder::new()
            .name("fushi-audit".into())
            .spawn(move || writer(file, path, node_name, rx))?;
        Ok(Self {
            node: node.into(),
            sink: Arc::new(Sink::File(Mutex::new(tx))),
        })
    }

    /// An audit log kept in memory, for tests that inspect what was emitted.
    pub fn memory(node: &str) -> Self {
        Self {
            node: node.into(),
            sink: Arc::new(Sink::Memory(Mutex::new(Vec::new()))),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Records an event. The caller pays for a timestamp and a channel send only: secrets are
    /// masked and the line encoded on the writer thread, off the supervisor's restart path.
    pub fn emit(&self, event: &str, actor: Option<&str>, payload: Value) {
        let raw = Raw {
            at: crate::clock::wall(),
            event: event.to_string(),
            actor: actor.map(str::to_string),
            payload,
        };
        match &*self.sink {
            Sink::Memory(events) => lock(events).push(raw.finish(&self.node)),
            // A closed channel means the writer thread died; it already logged why.
            Sink::File(tx) => {
                let _ = lock(tx).send(Command::Write(raw));
            }
        }
    }

    /// Blocks until every event emitted before this call is written and fsynced.
    pub fn flush(&self) {
        if let Sink::File(tx) = &*self.sink {
            let (done_tx, done_rx) = mpsc::channel();
            if lock(tx).send(Command::Barrier(done_tx)).is_ok() {
                let _ = done_rx.recv();
            }
        }
    }

    /// The events of a memory log (empty for a file log).
    pub fn events(&self) -> Vec<AuditEvent> {
        match &*self.sink {
            Sink::Memory(events) => lock(events).clone(),
            Sink::File(_) => Vec::new(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the data half-updated (push/send only).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where the file's last complete line ends, and whether bytes of a torn one follow it.
struct Tail {
    len: u64,
    torn: bool,
}

impl Tail {
    fn of(file: &File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        let mut last = [b'\n'];
        if len > 0 {
            file.read_exact_at(&mut last, len - 1)?;
        }
        Ok(Self {
            len,
            torn: last[0] != b'\n',
        })
    }
}

/// Appends `lines` (each ending in a newline) and fsyncs. A torn line before them is ended
/// first; a failed append is cut back to where the file ended, and when even that fails the
/// next append starts on a line of its own.
fn append(file: &mut File, tail: &mut Tail, lines: &str) -> io::Result<()> {
    append_with(file, tail, lines, |f, bytes| {
        f.write_all(bytes).and_then(|()| f.sync_data())
    })
}

/// [`append`] with its write step given, so a test can cut one short as a full disk does.
fn append_with(
    file: &mut File,
    tail: &mut Tail,
    lines: &str,
    write: impl FnOnce(&mut File, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    // Another process may have appended since (`fushi bundle` audits itself with one O_APPEND
    // line): a failed append must be cut back to the file's end as it is now, not as it was.
    if file.metadata().is_ok_and(|m| m.len() != tail.len) {
        if let Ok(now) = Tail::of(file) {
            *tail = now;
        }
    }
    let mut out = Vec::with_capacity(lines.len() + 1);
    if tail.torn {
        out.push(b'\n');
    }
    out.extend_from_slice(lines.as_bytes());
    match write(file, &out) {
        Ok(()) => {
            tail.len += out.len() as u64;
            tail.torn = false;
            Ok(())
        }
        Err(e) => {
            if file.set_len(tail.len).is_err() {
                // Some of the batch may be there, ending anywhere: start the next on a new line.
                tail.len = file.metadata().map_or(tail.len, |m| m.len());
                tail.torn = true;
            }
            Err(e)
        }
    }
}

fn writer(mut file: File, path: PathBuf, node: String, rx: mpsc::Receiver<Command>) {
    let mut tail = Tail::of(&file).unwrap_or_else(|e| {
        tracing::error!(event = events::AUDIT_WRITE_FAILED, path = %path.display(), error = %e,
            "cannot read the end of the audit log; appending on a line of its own");
        Tail {
            len: file.metadata().map_or(0, |m| m.len()),
            torn: true,
        }
    });
    let mut buf = String::new();
    let mut barriers = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(cmd) = next {
            match cmd {
                Command::Write(raw) => match serde_json::to_string(&raw.finish(&node)) {
                    Ok(line) => {
                        buf.push_str(&line);
                        buf.push('\n');
                    }
                    Err(e) => {
                        tracing::error!(event = events::AUDIT_ENCODE_FAILED, error = %e, "cannot encode audit event")
                    }
                },
                Command::Barrier(done) => barriers.push(done),
            }
            next = rx.try_recv().ok();
        }
        if !buf.is_empty() {
            if let Err(e) = append(&mut file, &mut tail, &buf) {
                // The audit trail is diagnostic, not acknowledged data: report and keep going
                // rather than take the daemon down with a full disk.
                tracing::error!(event = events::AUDIT_WRITE_FAILED, path = %path.display(), error = %e,
                    "cannot append to the audit log; events of this batch are lost");
            }
            buf.clear();
        }
        for done in barriers.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Reads an audit file back, skipping a torn last line.
pub fn read_events(path: &Path) -> io::Result<Vec<AuditEvent>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

const SECRET_KEYS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "secret",
    "credential",
    "api_key",
];

/// Whether a key (a config key, an env variable, a header name) names a secret.
pub fn secret_key(key: &str) -> bool {
    // Names people give their secrets: API_KEY, Api-Key, PAGERDUTY_ROUTING_KEY, X-Auth-Token,
    // Authorization, Cookie. Broader than the audit payload's keys, which are fushi's own.
    let key = key.to_ascii_lowercase().replace('-', "_");
    SECRET_KEYS.iter().any(|s| key.contains(s))
        || ["key", "auth", "cookie", "session"]
            .iter()
            .any(|s| key.contains(s))
}

/// Masks values under secret-looking keys and credentials embedded in URLs (`scheme://user:pass@`).
pub fn mask_secrets(v: &mut Value) {
    match v {
        Value::Object(map) => mask_map(map),
        Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        Value::String(s) => {
            if let Some(masked) = mask_url(s) {
                *s = masked;
            }
        }
        _ => {}
    }
}

fn mask_map(map: &mut Map<String, Value>) {
    for (k, v) in map.iter_mut() {
        let key = k.to_ascii_lowercase();
        if SECRET_KEYS.iter().any(|s| key.contains(s)) && !v.is_null() {
            *v = Value::String("***".into());
        } else {
            mask_secrets(v);
        }
    }
}

/// `https://user:pw@host/x` → `https://user:***@host/x`; `None` when there is nothing to mask.
pub fn mask_url(s: &str) -> Option<String> {
    let scheme_end = s.find("://")? + 3;
    let rest = &s[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    let userinfo = &rest[..at];
    let masked = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        None => "***".to_string(),
    };
    Some(format!("{}{}{}", &s[..scheme_end], masked, &rest[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_secret_keys_and_url_credentials() {
        let mut v = json!({"http_token": "abc", "url": "https://bob:hunter2@nas/x?q=1",
                           "nested": [{"password": "p"}], "plain": "https://nas/x"});
        mask_secrets(&mut v);
        assert_eq!(v["http_token"], "***");
        assert_eq!(v["url"], "https://bob:***@nas/x?q=1");
        assert_eq!(v["nested"][0]["password"], "***");
        assert_eq!(v["plain"], "https://nas/x");
    }

    #[test]
    fn file_log_is_durable_after_flush_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, "n1").unwrap();
        for i in 0..100 {
            log.emit(
                "supervisor.child.failed",
                Some("collectors/a"),
                json!({"i": i}),
            );
        }
        log.flush();
        let events = read_events(&path).unwrap();
        assert_eq!(events.len(), 100);
        assert_eq!(events[99].payload["i"], 99);
        assert_eq!(events[0].node, "n1");
        assert_eq!(events[0].actor.as_deref(), Some("collectors/a"));
    }

    /// A kill -9 mid-append leaves half a line; the next daemon's first event is on a line of
    /// its own, not glued to it.
    #[test]
    fn an_append_after_a_torn_line_starts_a_line_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "{\"ts\":\"t\",\"event\":\"daemon.started\",\"node\":\"n\",\"payload\":{}}\n{\"ts\":\"t\",\"ev").unwrap();
        let log = AuditLog::open(&path, "n1").unwrap();
        log.emit("daemon.recovered", None, json!({}));
        log.flush();
        assert_eq!(event_names(&path), ["daemon.started", "daemon.recovered"]);
    }

    const STARTED: &str =
        "{\"ts\":\"t\",\"event\":\"daemon.started\",\"node\":\"n\",\"payload\":{}}\n";
    const WRITABLE: &str =
        "{\"ts\":\"t\",\"event\":\"journal.writable\",\"node\":\"n\",\"payload\":{}}\n";

    fn event_names(path: &Path) -> Vec<String> {
        read_events(path)
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect()
    }

    /// An append that a full disk cuts short is cut back, so the next lands on a clean line end.
    #[test]
    fn a_failed_append_is_cut_back_to_the_last_complete_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, STARTED).unwrap();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .unwrap();
        let mut tail = Tail::of(&file).unwrap();
        let half = |f: &mut File, bytes: &[u8]| {
            f.write_all(&bytes[..bytes.len() / 2])?;
            Err(io::Error::from_raw_os_error(nix::libc::ENOSPC))
        };
        assert!(append_with(&mut file, &mut tail, WRITABLE, half).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), STARTED, "cut back");
        append(&mut file, &mut tail, WRITABLE).unwrap();
        assert_eq!(event_names(&path), ["daemon.started", "journal.writable"]);
    }

    /// A line another process appended (`fushi bundle`'s) survives a failed append's cut.
    #[test]
    fn a_failed_append_keeps_a_line_another_process_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, STARTED).unwrap();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .unwrap();
        let mut tail = Tail::of(&file).unwrap();
        let bundle =
            "{\"ts\":\"t\",\"event\":\"handover.bundle.create\",\"node\":\"n\",\"payload\":{}}\n";
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(bundle.as_bytes())
            .unwrap();
        let half = |f: &mut File, bytes: &[u8]| {
            f.write_all(&bytes[..bytes.len() / 2])?;
            Err(io::Error::from_raw_os_error(nix::libc::ENOSPC))
        };
        assert!(append_with(&mut file, &mut tail, WRITABLE, half).is_err());
        append(&mut file, &mut tail, WRITABLE).unwrap();
        assert_eq!(
            event_names(&path),
            [
                "daemon.started",
                "handover.bundle.create",
                "journal.writable"
            ]
        );
    }

    /// When the cut fails too, the next append starts a line of its own.
    #[test]
    fn a_failed_cut_makes_the_next_append_start_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, STARTED).unwrap();
        let mut writable = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .unwrap();
        let mut tail = Tail::of(&writable).unwrap();
        writable.write_all(b"{\"ts\":\"t\",\"ev").unwrap();
        // A handle that can neither write nor truncate: the batch fails and so does its cut.
        let mut read_only = File::open(&path).unwrap();
        assert!(append(&mut read_only, &mut tail, WRITABLE).is_err());
        assert!(tail.torn);
        append(&mut writable, &mut tail, WRITABLE).unwrap();
        assert_eq!(event_names(&path), ["daemon.started", "journal.writable"]);
    }

    #[test]
    fn torn_last_line_is_skipped_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "{\"ts\":\"t\",\"event\":\"daemon.started\",\"node\":\"n\",\"payload\":{}}\n{\"ts\":\"t\",\"ev").unwrap();
        let events = read_events(&path).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event, "daemon.started");
    }
}
