//! The parts of a bundle read from disk and from the daemon: status, the audit tail, recent logs, journal statistics; each says where it came from, or why it could not be had.

use fushi_actors::audit::AuditEvent;
use fushi_actors::board::StatusDoc;
use fushi_actors::journal::{self, Frames, Position};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::run::{bounded, run, End};
use super::{Kind, Part};
use crate::control::client::{self, ClientError};
use crate::control::proto::{Request, Response};

/// What is known of the daemon, and how.
pub(super) enum Daemon {
    /// It answered on its control socket.
    Answers {
        doc: Box<StatusDoc>,
        /// The document as it came, with fields this binary may not know.
        raw: String,
        socket: Vec<PathBuf>,
    },
    /// A fushi holds the data dir (`pid`, from its pid file) or answered on the socket, but
    /// gave no status.
    Silent { pid: Option<u32>, why: String },
    /// No daemon runs on this data dir.
    Down { why: String },
}

impl Daemon {
    /// "fushi pid 12 holds the data dir but …", for a daemon that gave no status.
    pub fn silent_words(&self) -> String {
        match self {
            Daemon::Silent {
                pid: Some(pid),
                why,
            } => {
                format!("fushi pid {pid} holds the data dir but {why}")
            }
            Daemon::Silent { pid: None, why } => {
                format!("a daemon answers on the control socket but {why}")
            }
            _ => String::new(),
        }
    }

    pub fn doc(&self) -> Option<&StatusDoc> {
        match self {
            Daemon::Answers { doc, .. } => Some(doc),
            _ => None,
        }
    }
}

/// One request to the daemon, bounded by `limit`: a daemon that accepts but never answers (its
/// runtime stuck) must not hold the bundle for the client's own five-minute patience.
pub(super) fn ask(sockets: &[PathBuf], req: Request, limit: Duration) -> Result<Response, String> {
    let sockets = sockets.to_vec();
    let shown = client::no_answer(&sockets);
    let sockets_for_call = sockets.clone();
    match bounded(limit, move || {
        client::call(&sockets_for_call, client::no_answer, &req)
    }) {
        Some(Ok(r)) => Ok(r),
        Some(Err(ClientError::NotRunning { .. })) => Err(shown),
        Some(Err(e)) => Err(e.to_string()),
        None => Err(format!(
            "the daemon did not answer within {} on {}",
            humantime::format_duration(limit),
            sockets
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        )),
    }
}

/// Asks the daemon for its status; tells a daemon that is down from one that does not answer.
pub(super) fn daemon(sockets: &[PathBuf], data_dir: &Path, limit: Duration) -> Daemon {
    let holder = || super::super::target::daemon_on(data_dir);
    match ask(sockets, Request::Status, limit) {
        Ok(Response::Json { json }) => match serde_json::from_str::<StatusDoc>(&json) {
            Ok(doc) => Daemon::Answers {
                doc: Box::new(doc),
                raw: json,
                socket: sockets.to_vec(),
            },
            Err(e) => Daemon::Silent {
                pid: holder(),
                why: format!("its status document does not parse: {e}"),
            },
        },
        Ok(other) => Daemon::Silent {
            pid: holder(),
            why: format!("it answered the status request with {other:?}"),
        },
        Err(why) => match holder() {
            Some(pid) => Daemon::Silent {
                pid: Some(pid),
                why,
            },
            None => Daemon::Down {
                why: format!("{why}, and no fushi holds data dir {}", data_dir.display()),
            },
        },
    }
}

/// status.json: the daemon's answer, else the file it last wrote.
pub(super) fn status(daemon: &Daemon, data_dir: &Path) -> (Part, Option<StatusDoc>) {
    const FILE: &str = "status.json";
    let why_not_live = match daemon {
        Daemon::Answers { raw, socket, .. } => {
            let part = Part::gathered(
                FILE,
                Kind::Json,
                format!(
                    "the running daemon, through its control socket ({})",
                    socket
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
                raw.clone(),
            );
            return (part, daemon.doc().cloned());
        }
        Daemon::Silent { .. } => daemon.silent_words(),
        Daemon::Down { why } => why.clone(),
    };
    let path = data_dir.join("status.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let doc = serde_json::from_str::<StatusDoc>(&text).ok();
            let written = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .map(fushi_actors::clock::rfc3339)
                .map(|t| format!(", last written {t}"))
                .unwrap_or_default();
            let mut part = Part::gathered(
                FILE,
                Kind::Json,
                format!("{} on disk{written}", path.display()),
                text,
            );
            part.note = Some(format!(
                "not the live state: {why_not_live}{}",
                if doc.is_none() {
                    "; the file does not parse as a status document"
                } else {
                    ""
                }
            ));
            (part, doc)
        }
        Err(e) => (
            Part::missing(
                FILE,
                Kind::Json,
                path.display().to_string(),
                format!(
                    "the daemon did not answer ({why_not_live}) and {} cannot be read: {e}{}",
                    path.display(),
                    if e.kind() == std::io::ErrorKind::NotFound {
                        " (no daemon has run on this data dir yet?)"
                    } else {
                        ""
                    }
                ),
            ),
            None,
        ),
    }
}

/// The most audit lines a bundle holds (the newest of the window).
const AUDIT_LINES_MAX: usize = 20_000;

/// The audit tail since `cutoff` (RFC 3339), and its events for the handover; read with the
/// reader `fushi audit` and `fushi report` use, so a bad line is skipped the same way.
pub(super) fn audit(data_dir: &Path, cutoff: &str) -> (Part, Vec<AuditEvent>) {
    const FILE: &str = "audit.jsonl";
    let path = data_dir.join("audit.jsonl");
    let source = format!("{} on disk, events since {cutoff}", path.display());
    let missing = |why: String| {
        (
            Part::missing(FILE, Kind::JsonLines, source.clone(), why),
            Vec::new(),
        )
    };
    // Said here, in the part's words, rather than by the reader on stderr.
    if let Err(e) = std::fs::metadata(&path) {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (no daemon has run on this data dir yet?)"
        } else {
            ""
        };
        return missing(format!("cannot read {}: {e}{hint}", path.display()));
    }
    let mut events = match crate::audit_file::read(&path) {
        Ok(Some(events)) => events,
        Ok(None) => return missing(format!("{} is gone", path.display())),
        Err(e) => return missing(format!("{e:#}")),
    };
    events.retain(|e| e.ts.as_str() >= cutoff);
    let left_out = events.len().saturating_sub(AUDIT_LINES_MAX);
    events.drain(..left_out);
    let mut body = String::new();
    for e in &events {
        if let Ok(line) = serde_json::to_string(e) {
            body.push_str(&line);
            body.push('\n');
        }
    }
    let mut part = Part::gathered(FILE, Kind::JsonLines, source, body);
    part.note = (left_out > 0).then(|| {
        format!("the newest {AUDIT_LINES_MAX} events of the window; {left_out} older ones left out")
    });
    (part, events)
}

/// Lines of recent log a bundle holds.
const LOG_LINES: u32 = 2000;

/// Recent logs: journald's when the daemon logs there, else the daemon's ring, else why none.
pub(super) fn logs(
    daemon: &Daemon,
    last: Option<&StatusDoc>,
    audit: &[AuditEvent],
    since: std::time::SystemTime,
    limit: Duration,
) -> Part {
    const FILE: &str = "logs.txt";
    let live = daemon.doc();
    let doc = live.or(last);
    let mut tried = Vec::new();
    if let Some(doc) = doc.filter(|d| d.log == "journald") {
        // Every daemon process of the window: the lines of one that crashed before this one
        // started are what a handover needs most.
        let mut pids: Vec<u32> = audit
            .iter()
            .filter(|e| e.event == fushi_actors::events::DAEMON_STARTED)
            .filter_map(|e| e.payload.get("pid").and_then(Value::as_u64))
            .map(|p| p as u32)
            .collect();
        pids.push(doc.pid);
        pids.sort_unstable();
        pids.dedup();
        let epoch = since
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut cmd = Command::new("journalctl");
        cmd.args(["--no-pager", "-q", "-o", "short-iso-precise"])
            .args(["-n", &LOG_LINES.to_string()])
            .arg(format!("--since=@{epoch}"))
            .arg("SYSLOG_IDENTIFIER=fushi");
        for p in &pids {
            cmd.arg(format!("_PID={p}"));
        }
        let ran = run(cmd, limit);
        match (&ran.end, ran.stdout.is_empty()) {
            (End::Exited(st), false) if st.success() => {
                return Part::gathered(
                    FILE,
                    Kind::Text,
                    format!(
                        "journald: `{}` (the newest {LOG_LINES} lines of the daemon's processes since the window's start)",
                        ran.shown
                    ),
                    ran.stdout_text(),
                );
            }
            (End::Exited(st), true) if st.success() => tried.push(format!(
                "`{}` found no lines{}",
                ran.shown,
                quoted_stderr(&ran.stderr_text())
            )),
            _ => tried.push(format!(
                "`{}`: {}{}",
                ran.shown,
                ran.end_words(limit),
                quoted_stderr(&ran.stderr_text())
            )),
        }
    }
    if let Daemon::Answers { socket, .. } = daemon {
        match ask(
            socket,
            Request::Tail {
                lines: LOG_LINES,
                actor: None,
            },
            limit,
        ) {
            Ok(Response::Lines { lines }) => {
                let mut part = Part::gathered(
                    FILE,
                    Kind::Text,
                    format!(
                        "the running daemon's log ring (control socket, `fushi tail -n {LOG_LINES}`)"
                    ),
                    lines.join("\n") + "\n",
                );
                part.note = (!tried.is_empty()).then(|| tried.join("; "));
                return part;
            }
            Ok(other) => tried.push(format!(
                "the daemon answered the tail request with {other:?}"
            )),
            Err(e) => tried.push(format!("the daemon's log ring: {e}")),
        }
    }
    let down = match daemon {
        Daemon::Down { .. } => "the daemon is not running",
        _ => "the daemon does not answer",
    };
    let why = match (live, last) {
        (Some(_), _) => tried.join("; "),
        (None, Some(d)) if d.log != "journald" => format!(
            "{down} and it logged as text to its stderr (pid {}), which fushi does not keep; \
             look where its stderr went (a terminal, a container's log, a file it was redirected to){}",
            d.pid,
            if tried.is_empty() { String::new() } else { format!("; {}", tried.join("; ")) }
        ),
        (None, Some(_)) => tried.join("; "),
        (None, None) => format!("{down} and no status.json says where it logged"),
    };
    Part::missing(FILE, Kind::Text, "none".into(), why)
}

/// ": journalctl said …", or nothing when it said nothing.
fn quoted_stderr(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(" (it said: {})", super::said(s, 3))
    }
}

/// One stream's records held in the journal.
#[derive(Debug, Default, Serialize)]
pub(super) struct StreamHeld {
    pub stream: String,
    pub records: u64,
    pub first_id: String,
    pub last_id: String,
    pub oldest_ts: String,
    pub newest_ts: String,
}

/// The local journal as its files show it.
#[derive(Debug, Default, Serialize)]
pub(super) struct JournalStats {
    pub dir: String,
    pub segments: usize,
    pub bytes: u64,
    /// Records in the segments still on disk: not yet forwarded, or forwarded and waiting for
    /// their segment's release.
    pub records: u64,
    pub oldest_ts: Option<String>,
    pub newest_ts: Option<String>,
    pub streams: Vec<StreamHeld>,
    /// Damaged stretches recovery moved aside (`journal/quarantine/`).
    pub quarantine_files: usize,
    pub quarantine_bytes: u64,
    /// The free space the journal keeps for itself on its disk (`journal/reserve`).
    pub reserve_bytes: u64,
}

fn segment_number(p: &Path) -> Option<u64> {
    p.file_name()?.to_str()?.strip_suffix(".seg")?.parse().ok()
}

/// Reads the journal's segments with the journal's own frame reader; never opens the journal
/// (that would take its lock and run recovery, which writes).
pub(super) fn journal_stats(dir: &Path) -> Result<JournalStats, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (no daemon has run on this data dir yet?)"
        } else {
            ""
        };
        format!("cannot read {}: {e}{hint}", dir.display())
    })?;
    let mut segs: BTreeMap<u64, u64> = BTreeMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if let Some(n) = segment_number(&path) {
            segs.insert(n, entry.metadata().map_or(0, |m| m.len()));
        }
    }
    let mut out = JournalStats {
        dir: dir.display().to_string(),
        segments: segs.len(),
        bytes: segs.values().sum(),
        reserve_bytes: std::fs::metadata(dir.join("reserve")).map_or(0, |m| m.len()),
        ..Default::default()
    };
    if let Ok(q) = std::fs::read_dir(dir.join("quarantine")) {
        for e in q.flatten() {
            out.quarantine_files += 1;
            out.quarantine_bytes += e.metadata().map_or(0, |m| m.len());
        }
    }
    let (Some((&first, _)), Some((&last, &last_len))) =
        (segs.first_key_value(), segs.last_key_value())
    else {
        return Ok(out);
    };
    let end = Position {
        segment: last,
        offset: last_len,
    };
    let mut pos = Position {
        segment: first,
        offset: 0,
    };
    let mut by_stream: BTreeMap<String, StreamHeld> = BTreeMap::new();
    let mut frames = Frames::default();
    while pos < end {
        // A segment released meanwhile reads as empty: the reader moves on to the next.
        let (read, next) = journal::read_into(frames, dir, pos, end, usize::MAX, 4 << 20)
            .map_err(|e| format!("reading the journal in {}: {e}", dir.display()))?;
        frames = read;
        if frames.is_empty() || next <= pos {
            break;
        }
        let streams = frames.streams().to_vec();
        for i in 0..frames.len() {
            let (e, s) = frames.id(i);
            let ts = String::from_utf8_lossy(frames.ts_bytes(i)).into_owned();
            let name = &streams[frames.stream_of(i)];
            let h = by_stream.entry(name.clone()).or_insert_with(|| StreamHeld {
                stream: name.clone(),
                first_id: format!("{e}.{s}"),
                oldest_ts: ts.clone(),
                newest_ts: ts.clone(),
                ..Default::default()
            });
            h.records += 1;
            h.last_id = format!("{e}.{s}");
            if ts < h.oldest_ts {
                h.oldest_ts = ts.clone();
            }
            if ts > h.newest_ts {
                h.newest_ts = ts;
            }
        }
        out.records += frames.len() as u64;
        pos = next;
    }
    out.oldest_ts = by_stream.values().map(|h| h.oldest_ts.clone()).min();
    out.newest_ts = by_stream.values().map(|h| h.newest_ts.clone()).max();
    out.streams = by_stream.into_values().collect();
    Ok(out)
}

/// journal.json: what the journal's files hold, what waits for the primary (the daemon's own
/// survey, when it answers) and the lag status reports.
pub(super) fn journal(
    daemon: &Daemon,
    doc: Option<&StatusDoc>,
    dir: &Path,
    limit: Duration,
) -> (Part, Option<JournalStats>) {
    const FILE: &str = "journal.json";
    let owned = dir.to_path_buf();
    let disk = bounded(limit, move || journal_stats(&owned)).unwrap_or_else(|| {
        Err(format!(
            "reading {} took longer than {}",
            dir.display(),
            humantime::format_duration(limit)
        ))
    });
    let (pending, pending_source) = match daemon {
        Daemon::Answers { socket, .. } => match ask(socket, Request::SyncPlan, limit) {
            Ok(Response::Json { json }) => (
                serde_json::from_str::<Value>(&json).unwrap_or(Value::String(json)),
                "the running daemon's survey (`fushi sync --plan`)".to_string(),
            ),
            Ok(other) => (
                Value::Null,
                format!("not known: the daemon answered {other:?}"),
            ),
            Err(e) => (Value::Null, format!("not known: {e}")),
        },
        _ => (
            Value::Null,
            "not known: the daemon is not answering, and which records the primary holds already \
             is only read from the primary (report.json's records.pending does)"
                .to_string(),
        ),
    };
    let lag = doc.map(|d| {
        json!({
            "records": d.storage.lag_records,
            "oldest_waiting_ms": d.patience.lag_age_ms,
            "limit_ms": d.patience.limit_ms,
            "late": d.patience.journal_late(),
            "journal_bytes": d.storage.journal_bytes,
            "journal_full": d.storage.journal_full,
            "journal_error": d.storage.journal_error,
        })
    });
    let (files, files_error) = match &disk {
        Ok(s) => (serde_json::to_value(s).unwrap_or(Value::Null), None),
        Err(e) => (Value::Null, Some(e.clone())),
    };
    let body = json!({
        "files": files,
        "files_error": files_error,
        "pending": pending,
        "pending_source": pending_source,
        "lag": lag,
        "lag_source": if daemon.doc().is_some() { "the running daemon's status" } else if doc.is_some() { "status.json as last written" } else { "none" },
    });
    let mut part = Part::gathered(
        FILE,
        Kind::Json,
        format!(
            "the journal's segment files in {} (read with the journal's frame reader)",
            dir.display()
        ),
        body.to_string(),
    );
    if let Some(e) = files_error {
        part.gathered = false;
        part.note = Some(e);
    }
    (part, disk.ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fushi_actors::journal::Journal;
    use fushi_actors::records::Record;

    #[test]
    fn journal_stats_count_what_the_segments_hold_without_opening_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("journal");
        {
            let mut j = Journal::open(&jdir, 4096, Duration::from_secs(1))
                .unwrap()
                .0;
            let recs: Vec<Record> = (0..50)
                .map(|k| Record {
                    stream: if k % 2 == 0 { "a/x" } else { "b/y" }.into(),
                    ts: format!("2026-12-01T10:00:{:02}.000Z", k),
                    data: json!({ "k": k }),
                })
                .collect();
            // One group each: segments rotate between groups.
            for r in &recs {
                j.append(1, "n1", [r]).unwrap();
            }
        }
        let s = journal_stats(&jdir).unwrap();
        assert!(s.segments > 1, "4 KiB segments rotate: {}", s.segments);
        assert_eq!(s.records, 50);
        assert_eq!(s.streams.len(), 2);
        assert_eq!(s.streams[0].stream, "a/x");
        assert_eq!(s.streams[0].records, 25);
        assert_eq!(s.streams[0].first_id, "1.1");
        assert_eq!(s.streams[0].last_id, "1.25");
        assert_eq!(s.oldest_ts.as_deref(), Some("2026-12-01T10:00:00.000Z"));
        assert_eq!(s.newest_ts.as_deref(), Some("2026-12-01T10:00:49.000Z"));
        let on_disk: u64 = std::fs::read_dir(&jdir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert_eq!(s.bytes, on_disk);
        let e = journal_stats(&dir.path().join("nope")).unwrap_err();
        assert!(e.contains("no daemon has run"), "{e}");
    }
}
