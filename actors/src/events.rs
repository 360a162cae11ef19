//! Every event name, defined once: the `event` field of a log line and the `event` of its audit record (SPEC §9) are the same constant.
//!
//! Names are `area.what` in lowercase; the audit log and journald are read by people and scripts
//! alike, so a name, once released, keeps its spelling.

pub const ALERT_FAILED: &str = "alert.failed";
/// The outbox file had lines that do not parse (log only).
pub const ALERT_OUTBOX_DAMAGED: &str = "alert.outbox_damaged";
/// One delivery attempt failed or was rate-limited; another follows (log only).
pub const ALERT_RETRY: &str = "alert.retry";
pub const ALERT_SENT: &str = "alert.sent";
pub const ALERT_SUPPRESSED: &str = "alert.suppressed";

pub const AUDIT_ENCODE_FAILED: &str = "audit.encode_failed";
pub const AUDIT_WRITE_FAILED: &str = "audit.write_failed";

pub const COLLECTOR_COMMAND_ABANDONED: &str = "collector.command.abandoned";
pub const COLLECTOR_COMMAND_OVERRUN: &str = "collector.command.overrun";
pub const COLLECTOR_COMMAND_SPAWNED: &str = "collector.command.spawned";
pub const COLLECTOR_HEARTBEAT: &str = "collector.heartbeat";
pub const COLLECTOR_HTTP_POLL: &str = "collector.http.poll";
pub const COLLECTOR_HTTP_SKIPPED: &str = "collector.http.skipped";
pub const COLLECTOR_LEADER_ACQUIRE: &str = "collector.leader.acquire";
pub const COLLECTOR_LEADER_BACK: &str = "collector.leader.back";
pub const COLLECTOR_LEADER_DEMOTE: &str = "collector.leader.demote";
pub const COLLECTOR_LEADER_NONE: &str = "collector.leader.none";
pub const COLLECTOR_LEADER_RELEASE: &str = "collector.leader.release";
pub const COLLECTOR_LEADER_RENEW: &str = "collector.leader.renew";
pub const COLLECTOR_LEADER_STALE_DETECTED: &str = "collector.leader.stale_detected";
pub const COLLECTOR_LEADER_UNREACHABLE: &str = "collector.leader.unreachable";
pub const COLLECTOR_LISTEN: &str = "collector.listen";
pub const COLLECTOR_QUARANTINE: &str = "collector.quarantine";
pub const COLLECTOR_STDERR: &str = "collector.stderr";
pub const COLLECTOR_STORAGE_SWITCH: &str = "collector.storage.switch";
pub const COLLECTOR_SYNC_CHUNK: &str = "collector.sync.chunk";
pub const COLLECTOR_SYNC_COMPLETE: &str = "collector.sync.complete";
pub const COLLECTOR_SYNC_FAILED: &str = "collector.sync.failed";
pub const COLLECTOR_SYNC_GAP: &str = "collector.sync.gap";
pub const COLLECTOR_SYNC_PLAN: &str = "collector.sync.plan";
pub const COLLECTOR_SYNC_START: &str = "collector.sync.start";

pub const COLLECTOR_TAIL_FOLLOW: &str = "collector.tail.follow";
pub const COLLECTOR_TAIL_PARTIAL: &str = "collector.tail.partial";
pub const COLLECTOR_TAIL_RELEASED: &str = "collector.tail.released";
pub const COLLECTOR_TAIL_RESUMED: &str = "collector.tail.resumed";
pub const COLLECTOR_TAIL_ROTATED: &str = "collector.tail.rotated";
pub const COLLECTOR_TAIL_TRUNCATED: &str = "collector.tail.truncated";
pub const COLLECTOR_TAIL_UNREADABLE: &str = "collector.tail.unreadable";

pub const CONFIG_INVALID: &str = "config.invalid";
pub const CONFIG_LAST_GOOD_FAILED: &str = "config.last_good_failed";
pub const CONFIG_RELOAD_FAILED: &str = "config.reload.failed";
pub const CONFIG_RELOAD_OK: &str = "config.reload.ok";

/// An operator's order through the control socket (start, stop, update, inject…), for `fushi report`.
pub const CONTROL_ACTION: &str = "control.action";
pub const CONTROL_BAD_REQUEST: &str = "control.bad_request";
pub const CONTROL_LISTENING: &str = "control.listening";
pub const CONTROL_REFUSED: &str = "control.refused";
pub const CONTROL_UNLINK_FAILED: &str = "control.unlink_failed";

pub const DAEMON_FD_LIMIT: &str = "daemon.fd_limit";
pub const DAEMON_FD_LIMIT_LOW: &str = "daemon.fd_limit_low";
pub const DAEMON_FD_LIMIT_UNKNOWN: &str = "daemon.fd_limit_unknown";
pub const DAEMON_PID_FILE_LEFT: &str = "daemon.pid_file_left";
pub const DAEMON_READY: &str = "daemon.ready";
pub const DAEMON_RECOVERED: &str = "daemon.recovered";
pub const DAEMON_STARTED: &str = "daemon.started";
pub const DAEMON_STOP_TIMEOUT: &str = "daemon.stop_timeout";
pub const DAEMON_STOPPED: &str = "daemon.stopped";
pub const DAEMON_STOPPING: &str = "daemon.stopping";

/// `fushi bundle` wrote a handover archive (path, bytes, sha256).
pub const HANDOVER_BUNDLE_CREATE: &str = "handover.bundle.create";

pub const HTTP_CONNECTION_ERROR: &str = "http.connection_error";
pub const HTTP_LISTENING: &str = "http.listening";

pub const INJECT_CRASH: &str = "inject.crash";

pub const JOURNAL_CONFLICT: &str = "journal.conflict";
pub const JOURNAL_CORRUPT: &str = "journal.corrupt";
pub const JOURNAL_RECOVERED: &str = "journal.recovered";
pub const JOURNAL_REHOME_FAILED: &str = "journal.rehome_failed";
pub const JOURNAL_REHOMED: &str = "journal.rehomed";
pub const JOURNAL_RELEASE_FAILED: &str = "journal.release_failed";
pub const JOURNAL_ROTATE_FAILED: &str = "journal.rotate_failed";
pub const JOURNAL_SEEDED: &str = "journal.seeded";
pub const JOURNAL_WRITABLE: &str = "journal.writable";
pub const JOURNAL_WRITE_FAILED: &str = "journal.write_failed";

pub const LOG_RELOAD_FAILED: &str = "log.reload_failed";

pub const MODE_CHANGE: &str = "mode.change";

pub const SLO_NO_DATA: &str = "slo.no_data";
pub const SLO_OK: &str = "slo.ok";
pub const SLO_PROMOTE: &str = "slo.promote";
pub const SLO_ROLLBACK: &str = "slo.rollback";
pub const SLO_SOURCE_GAP: &str = "slo.source_gap";
pub const SLO_STATE_RESET: &str = "slo.state_reset";
pub const SLO_TOO_LATE: &str = "slo.too_late";
pub const SLO_VIOLATION: &str = "slo.violation";
pub const SLO_WARN: &str = "slo.warn";

pub const STATUS_UNREADABLE: &str = "status.unreadable";

pub const SUPERVISOR_CHILD_ESCALATED: &str = "supervisor.child.escalated";
pub const SUPERVISOR_CHILD_FAILED: &str = "supervisor.child.failed";
pub const SUPERVISOR_CHILD_FATAL: &str = "supervisor.child.fatal";
pub const SUPERVISOR_CHILD_HELD: &str = "supervisor.child.held";
pub const SUPERVISOR_CHILD_RECOVERED: &str = "supervisor.child.recovered";
pub const SUPERVISOR_CHILD_RESTART_SCHEDULED: &str = "supervisor.child.restart_scheduled";
pub const SUPERVISOR_CHILD_RESTARTED: &str = "supervisor.child.restarted";
pub const SUPERVISOR_CHILD_STARTED: &str = "supervisor.child.started";
pub const SUPERVISOR_CHILD_STOPPED: &str = "supervisor.child.stopped";
pub const SUPERVISOR_KILL_TIMEOUT: &str = "supervisor.kill_timeout";

pub const SYSTEMD_NOTIFY_FAILED: &str = "systemd.notify_failed";
pub const SYSTEMD_WATCHDOG_MISSED: &str = "systemd.watchdog_missed";

/// Every name above, for the test that keeps them unique and well formed.
pub const ALL: &[&str] = &[
    ALERT_FAILED,
    ALERT_OUTBOX_DAMAGED,
    ALERT_RETRY,
    ALERT_SENT,
    ALERT_SUPPRESSED,
    AUDIT_ENCODE_FAILED,
    AUDIT_WRITE_FAILED,
    COLLECTOR_COMMAND_ABANDONED,
    COLLECTOR_COMMAND_OVERRUN,
    COLLECTOR_COMMAND_SPAWNED,
    COLLECTOR_HEARTBEAT,
    COLLECTOR_HTTP_POLL,
    COLLECTOR_HTTP_SKIPPED,
    COLLECTOR_LEADER_ACQUIRE,
    COLLECTOR_LEADER_BACK,
    COLLECTOR_LEADER_DEMOTE,
    COLLECTOR_LEADER_NONE,
    COLLECTOR_LEADER_RELEASE,
    COLLECTOR_LEADER_RENEW,
    COLLECTOR_LEADER_STALE_DETECTED,
    COLLECTOR_LEADER_UNREACHABLE,
    COLLECTOR_LISTEN,
    COLLECTOR_QUARANTINE,
    COLLECTOR_STDERR,
    COLLECTOR_STORAGE_SWITCH,
    COLLECTOR_SYNC_CHUNK,
    COLLECTOR_SYNC_COMPLETE,
    COLLECTOR_SYNC_FAILED,
    COLLECTOR_SYNC_GAP,
    COLLECTOR_SYNC_PLAN,
    COLLECTOR_SYNC_START,
    COLLECTOR_TAIL_FOLLOW,
    COLLECTOR_TAIL_PARTIAL,
    COLLECTOR_TAIL_RELEASED,
    COLLECTOR_TAIL_RESUMED,
    COLLECTOR_TAIL_ROTATED,
    COLLECTOR_TAIL_TRUNCATED,
    COLLECTOR_TAIL_UNREADABLE,
    CONFIG_INVALID,
    CONFIG_LAST_GOOD_FAILED,
    CONFIG_RELOAD_FAILED,
    CONFIG_RELOAD_OK,
    CONTROL_ACTION,
    CONTROL_BAD_REQUEST,
    CONTROL_LISTENING,
    CONTROL_REFUSED,
    CONTROL_UNLINK_FAILED,
    DAEMON_FD_LIMIT,
    DAEMON_FD_LIMIT_LOW,
    DAEMON_FD_LIMIT_UNKNOWN,
    DAEMON_PID_FILE_LEFT,
    DAEMON_READY,
    DAEMON_RECOVERED,
    DAEMON_STARTED,
    DAEMON_STOP_TIMEOUT,
    DAEMON_STOPPED,
    DAEMON_STOPPING,
    HANDOVER_BUNDLE_CREATE,
    HTTP_CONNECTION_ERROR,
    HTTP_LISTENING,
    INJECT_CRASH,
    JOURNAL_CONFLICT,
    JOURNAL_CORRUPT,
    JOURNAL_RECOVERED,
    JOURNAL_REHOME_FAILED,
    JOURNAL_REHOMED,
    JOURNAL_RELEASE_FAILED,
    JOURNAL_ROTATE_FAILED,
    JOURNAL_SEEDED,
    JOURNAL_WRITABLE,
    JOURNAL_WRITE_FAILED,
    LOG_RELOAD_FAILED,
    MODE_CHANGE,
    SLO_NO_DATA,
    SLO_OK,
    SLO_PROMOTE,
    SLO_ROLLBACK,
    SLO_SOURCE_GAP,
    SLO_STATE_RESET,
    SLO_TOO_LATE,
    SLO_VIOLATION,
    SLO_WARN,
    STATUS_UNREADABLE,
    SUPERVISOR_CHILD_ESCALATED,
    SUPERVISOR_CHILD_FAILED,
    SUPERVISOR_CHILD_FATAL,
    SUPERVISOR_CHILD_HELD,
    SUPERVISOR_CHILD_RECOVERED,
    SUPERVISOR_CHILD_RESTART_SCHEDULED,
    SUPERVISOR_CHILD_RESTARTED,
    SUPERVISOR_CHILD_STARTED,
    SUPERVISOR_CHILD_STOPPED,
    SUPERVISOR_KILL_TIMEOUT,
    SYSTEMD_NOTIFY_FAILED,
    SYSTEMD_WATCHDOG_MISSED,
];

#[cfg(test)]
mod tests {
    /// The log line's `event = "…"` or an audit `emit("…")` with a name written out: the way a
    /// second spelling of a name comes back.
    #[test]
    fn no_event_name_is_written_out_in_the_code() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut found = Vec::new();
        let mut dirs = vec![root.join("src"), root.join("../src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") || path.ends_with("events.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("\n#[cfg(test)]\nmod tests").next().unwrap_or("");
                for (i, line) in code.lines().enumerate() {
                    let squeezed: String = line.split_whitespace().collect();
                    if squeezed.contains("event=\"") || squeezed.contains(".emit(\"") {
                        found.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            found.is_empty(),
            "use the constants of events.rs:\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn names_are_unique_and_area_dot_what() {
        let mut seen = std::collections::HashSet::new();
        for n in super::ALL {
            assert!(seen.insert(n), "{n} twice");
            let parts: Vec<&str> = n.split('.').collect();
            assert!(parts.len() >= 2, "{n}");
            assert!(
                parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c == '_')),
                "{n}"
            );
        }
    }
}
