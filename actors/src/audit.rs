//! The audit log: `audit.jsonl`, one event a line, appended and fsynced by a writer thread with group commit.
//!
//! The supervisor emits audit events on its restart path, which must stay in the microseconds, so
//! `emit` never touches the disk: it hands the event to a dedicated thread that writes every event
//! queued while its previous fsync ran and then fsyncs once (group commit). `flush` waits until
//! everything emitted before it is durable; shutdown and tests use it.

use crate::events;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
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
        let file = OpenOptions::new().create(true).append(true).open(path)?;
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

fn writer(mut file: File, path: PathBuf, node: String, rx: mpsc::Receiver<Command>) {
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
            let res = file
                .write_all(buf.as_bytes())
                .and_then(|()| file.sync_data());
            if let Err(e) = res {
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
