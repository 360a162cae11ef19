//! handover.md: what a person taking over needs first — health and why, open alerts, actors in trouble, storage, the primary — and what to look at next, derived from what the bundle found.

use fushi_actors::audit::AuditEvent;
use fushi_actors::board::{health, ActorState, PrimaryState, StatusDoc};
use serde_json::Value;

use super::gather::{Daemon, JournalStats};
use super::run::Ran;
use super::Part;

/// Everything the handover is written from.
pub(super) struct Findings<'a> {
    pub node: &'a str,
    pub created_at: &'a str,
    pub version: &'a str,
    pub config_path: &'a str,
    pub config_sha256: Option<&'a str>,
    /// Why the config file does not load, if it does not.
    pub config_error: Option<&'a str>,
    pub primary: &'a str,
    pub daemon: &'a Daemon,
    /// The live status, or the last one written.
    pub doc: Option<&'a StatusDoc>,
    pub journal: Option<&'a JournalStats>,
    pub verify: &'a Ran,
    pub verify_json: Option<&'a Value>,
    pub report: &'a Ran,
    pub report_json: Option<&'a Value>,
    pub audit: &'a [AuditEvent],
    pub since: &'a str,
    pub limit: std::time::Duration,
    pub parts: &'a [Part],
}

fn line(out: &mut String, s: impl AsRef<str>) {
    out.push_str(s.as_ref());
    out.push('\n');
}

/// The handover document; every "next" item comes from a finding above it.
pub(super) fn write(f: &Findings) -> String {
    let mut out = String::new();
    let mut next: Vec<String> = Vec::new();
    line(&mut out, format!("# Handover: fushi on node {}", f.node));
    line(&mut out, "");
    line(
        &mut out,
        format!(
            "Bundle made {} by fushi {}; config `{}`{}; events and logs since {}.",
            f.created_at,
            f.version,
            f.config_path,
            f.config_sha256
                .map(|s| format!(" (sha256 {s})"))
                .unwrap_or_default(),
            f.since
        ),
    );
    line(&mut out, "");

    // The daemon.
    line(&mut out, "## Daemon");
    line(&mut out, "");
    match f.daemon {
        Daemon::Answers { doc, .. } => {
            line(
                &mut out,
                format!(
                    "Running: pid {}, started {}, mode {}{}, logging to {}; {} recovered crash{} counted.",
                    doc.pid,
                    doc.started_at,
                    doc.mode,
                    doc.mode_until
                        .as_ref()
                        .map(|u| format!(" until {u}"))
                        .unwrap_or_default(),
                    if doc.log.is_empty() { "?" } else { &doc.log },
                    doc.daemon_recovered,
                    if doc.daemon_recovered == 1 { "" } else { "es" }
                ),
            );
            if doc.mode != "prod" {
                next.push(format!(
                    "The daemon runs in mode {} (health stays yellow for it): `fushi mode prod` once \
                     the diagnosis is over.",
                    doc.mode
                ));
            }
        }
        Daemon::Silent { pid, .. } => {
            line(
                &mut out,
                format!("**Not answering**: {}.", f.daemon.silent_words()),
            );
            next.push(match pid {
                Some(pid) => format!(
                    "fushi pid {pid} holds the data dir but gives no status: `fushi check` says \
                     where it looks for the socket; if the process is stuck, `kill -9 {pid}` \
                     (systemd starts it again; nothing acknowledged is lost)."
                ),
                None => "A daemon answers on the control socket but gives no status: is it \
                         another version of fushi (`fushi --version`, the unit's ExecStart)?"
                    .into(),
            });
        }
        Daemon::Down { why } => {
            line(&mut out, format!("**Not running**: {why}."));
            match f.doc {
                Some(d) if d.clean_shutdown => {
                    line(
                        &mut out,
                        format!("Its last run (pid {}) shut down in order.", d.pid),
                    );
                    next.push(
                        "The daemon was stopped in order and nothing collects now: start it \
                         (`systemctl start fushi`, or `fushi run -c CONFIG`) if it should run."
                            .into(),
                    );
                }
                Some(d) => {
                    line(
                        &mut out,
                        format!(
                            "Its last run (pid {}, started {}) did **not** shut down in order: it \
                             crashed, was killed or the machine went down.",
                            d.pid, d.started_at
                        ),
                    );
                    let logs = if logs_gathered(f) {
                        "read the end of logs.txt"
                    } else {
                        "its log is not in this bundle (logs.txt says why): look where it logged"
                    };
                    next.push(format!(
                        "The daemon is down after an unclean end of pid {}: {logs}, then \
                         `systemctl status fushi` (or `journalctl -u fushi -b -1`), and start it; \
                         its next start counts the crash as recovered.",
                        d.pid
                    ));
                }
                None => next.push(
                    "No daemon has run on this data dir (no status.json): `fushi check -c CONFIG` \
                     says what would stop one, `fushi run -c CONFIG` starts it."
                        .into(),
                ),
            }
        }
    }
    line(&mut out, "");

    // Health.
    if let Some(e) = f.config_error {
        next.push(format!(
            "The config file does not load: {}; fix it (`fushi check` shows the same message).",
            first_line(e)
        ));
    }
    let Some(doc) = f.doc else {
        line(&mut out, "## Health");
        line(&mut out, "");
        line(
            &mut out,
            "Unknown: no status from the daemon and none on disk.",
        );
        line(&mut out, "");
        rest(&mut out, f, &mut next);
        return out;
    };
    let (colour, reasons) = health::assess(doc);
    line(&mut out, "## Health");
    line(&mut out, "");
    line(
        &mut out,
        format!(
            "**{}** ({}){}",
            colour,
            colour.word(),
            match f.daemon {
                Daemon::Answers { .. } => "",
                Daemon::Silent { .. } =>
                    " as of the last status.json: the daemon does not answer now",
                Daemon::Down { .. } => " as of the last status.json: the daemon is not running now",
            }
        ),
    );
    if reasons.is_empty() {
        line(&mut out, "");
        line(
            &mut out,
            "Every permanent actor running, primary up, journal drained in time.",
        );
    } else {
        line(&mut out, "");
        for r in &reasons {
            line(&mut out, format!("- {r}"));
        }
    }
    line(&mut out, "");

    // Alerts.
    let a = &doc.alerts;
    line(&mut out, "## Alerts");
    line(&mut out, "");
    if a.owed.is_empty() && a.open.is_empty() && a.flapping.is_empty() && a.pending == 0 {
        line(
            &mut out,
            "None open, none owed to a channel, no actor flapping.",
        );
    }
    if !a.open.is_empty() {
        line(
            &mut out,
            format!("- open (told, not yet resolved): {}", a.open.join(", ")),
        );
    }
    if !a.owed.is_empty() {
        let owed: Vec<String> = a.owed.iter().map(|(c, n)| format!("{c} {n}")).collect();
        line(
            &mut out,
            format!(
                "- messages owed: {}{}",
                owed.join(", "),
                a.oldest_owed_at
                    .as_ref()
                    .map(|t| format!(" (oldest made {t})"))
                    .unwrap_or_default()
            ),
        );
        next.push(format!(
            "Alert messages are still owed ({}): the channel cannot deliver; `fushi audit \
             --event 'alert.*'` (audit.jsonl here) says what its endpoint answered.",
            owed.join(", ")
        ));
    }
    if a.pending > 0 {
        line(
            &mut out,
            format!("- {} alert(s) waiting for their group to close", a.pending),
        );
    }
    if !a.flapping.is_empty() {
        line(&mut out, format!("- flapping: {}", a.flapping.join(", ")));
        next.push(format!(
            "{} flap (escalate and recover over and over): their alerts are held; look at their \
             last errors below and their lines in logs.txt.",
            a.flapping.join(", ")
        ));
    }
    line(&mut out, "");

    // Actors.
    let troubled: Vec<_> = doc
        .actors
        .iter()
        .filter(|x| x.state != ActorState::Running || x.escalated)
        .collect();
    line(&mut out, "## Actors not running or escalated");
    line(&mut out, "");
    if troubled.is_empty() {
        line(
            &mut out,
            format!("None: all {} actors running.", doc.actors.len()),
        );
    } else {
        line(
            &mut out,
            "| actor | state | restarts | failures in a row | escalated | last error |",
        );
        line(&mut out, "|---|---|---|---|---|---|");
        for x in &troubled {
            line(
                &mut out,
                format!(
                    "| {} | {} | {} | {} | {} | {} |",
                    x.name,
                    x.state.as_str(),
                    x.restarts,
                    x.consecutive_failures,
                    if x.escalated { "yes" } else { "no" },
                    x.last_error
                        .as_deref()
                        .map(|e| first_line(e).replace('|', "\\|"))
                        .unwrap_or_else(|| "-".into())
                ),
            );
            let short = x.name.rsplit('/').next().unwrap_or(&x.name);
            let why = x
                .last_error
                .as_deref()
                .map(|e| format!(" (last error: {})", first_line(e)))
                .unwrap_or_default();
            if x.escalated {
                next.push(format!(
                    "{} escalated after {} failures in a row{why}: fix what it reads from, \
                     its lines are in logs.txt (`fushi tail {short}`); it keeps retrying by itself.",
                    x.name, x.consecutive_failures
                ));
            } else if x.state == ActorState::Fatal {
                next.push(format!(
                    "{} gave up (fatal){why}: once its cause is fixed, `fushi start {short}`.",
                    x.name
                ));
            } else if doc.patience.unsettled.contains(&x.name) {
                next.push(format!(
                    "{} is {} after {} failure(s) in a row{why}: its lines are in logs.txt \
                     (`fushi tail {short}`); it escalates after `escalate_after` of them.",
                    x.name,
                    x.state.as_str(),
                    x.consecutive_failures
                ));
            } else if x.state == ActorState::Stopped && x.restart == "permanent" {
                next.push(format!(
                    "{} is stopped (by hand, or `enabled = false`): `fushi start {short}` if it \
                     should collect.",
                    x.name
                ));
            }
        }
    }
    line(&mut out, "");

    // Storage.
    let s = &doc.storage;
    line(&mut out, "## Storage");
    line(&mut out, "");
    line(
        &mut out,
        format!(
            "- primary `{}`: {}; journal (secondary) {}: {} B, {} waiting for the primary{}",
            f.primary,
            s.primary,
            s.secondary,
            s.journal_bytes,
            crate::ctl::records(s.lag_records),
            if s.lag_records > 0 {
                format!(
                    ", the oldest for {} (health allows {})",
                    secs(doc.patience.lag_age_ms),
                    secs(doc.patience.limit_ms)
                )
            } else {
                String::new()
            }
        ),
    );
    if let Some(j) = f.journal {
        line(
            &mut out,
            format!(
                "- journal files: {} segment(s), {} B, {} held{}",
                j.segments,
                j.bytes,
                crate::ctl::records(j.records),
                match (&j.oldest_ts, &j.newest_ts) {
                    (Some(o), Some(n)) => format!(", ts from {o} to {n}"),
                    _ => String::new(),
                }
            ),
        );
        if j.quarantine_files > 0 {
            line(
                &mut out,
                format!(
                    "- journal/quarantine: {} file(s), {} B of damaged frames moved aside",
                    j.quarantine_files, j.quarantine_bytes
                ),
            );
            next.push(format!(
                "The journal quarantined {} damaged stretch(es) (journal/quarantine/, \
                 `journal.corrupt` in the audit log): the disk or an unclean power loss; check \
                 the disk (`dmesg`, SMART).",
                j.quarantine_files
            ));
        }
    }
    if let Some(last) = &doc.sync.last {
        line(
            &mut out,
            format!(
                "- last sync {}: {}, {} B, {}",
                last.at,
                crate::ctl::records(last.items),
                last.bytes,
                if last.ok { "ok" } else { "failed" }
            ),
        );
    }
    if doc.leader.enabled {
        line(
            &mut out,
            format!(
                "- leader election: this node is {}, holder {} (epoch {})",
                doc.leader.role,
                doc.leader.node.as_deref().unwrap_or("none"),
                doc.leader.epoch
            ),
        );
    }
    match s.primary {
        PrimaryState::Down => next.push(format!(
            "The primary `{}` is down: is the NAS mounted and answering (`mount`, `ls {}`, \
             `fushi check`)? Records wait in the journal meanwhile ({}) and drain once it is back.",
            f.primary,
            f.primary,
            crate::ctl::records(s.lag_records)
        )),
        PrimaryState::Up if doc.patience.journal_late() => next.push(format!(
            "Forwarding is late: the oldest record has waited {} (limit {}); `fushi sync` says \
             why, `fushi sync --now` retries.",
            secs(doc.patience.lag_age_ms),
            secs(doc.patience.limit_ms)
        )),
        _ => {}
    }
    if s.journal_full {
        next.push(
            "The journal is full (max_local or the disk): collectors are held back; free space on \
             the data dir's disk or bring the primary back so it drains."
                .into(),
        );
    }
    if let Some(e) = &s.journal_error {
        next.push(format!(
            "The journal cannot write: {e}; check the data dir's disk."
        ));
    }
    if let Some(c) = &doc.sync.conflict {
        next.push(format!(
            "Forwarding stopped at a conflict: {c}; `fushi sync --plan` shows the stream."
        ));
    }
    if doc.leader.none_since.is_some() {
        next.push(
            "No node leads: no collector runs anywhere; check the primary's lock (`fushi leader`)."
                .into(),
        );
    }
    line(&mut out, "");
    rest(&mut out, f, &mut next);
    out
}

/// The primary, resilience, events of the window, what next, and the parts.
fn rest(out: &mut String, f: &Findings, next: &mut Vec<String>) {
    line(out, "## The primary (`fushi verify`)");
    line(out, "");
    match (f.verify.code(), f.verify_json) {
        (Some(0), Some(v)) => line(
            out,
            format!(
                "Clean: {} on the primary, no gap, duplicate or out-of-order id.",
                crate::ctl::records(v["records"].as_u64().unwrap_or(0))
            ),
        ),
        (Some(1), Some(v)) if v["problems"].is_array() => {
            let problems = v["problems"].as_array().map_or(&[][..], |p| p.as_slice());
            line(out, format!("**{} problem(s)**:", problems.len()));
            for p in problems.iter().take(10) {
                line(
                    out,
                    format!(
                        "- {}:{}: {}",
                        p["file"].as_str().unwrap_or("?"),
                        p["line"],
                        p["message"].as_str().unwrap_or("?")
                    ),
                );
            }
            next.push(format!(
                "The primary has {} continuity problem(s): verify.txt lists them with file and line.",
                problems.len()
            ));
        }
        _ => {
            let said = first_line(f.verify.stderr_text().trim());
            line(
                out,
                format!(
                    "Not verified: `{}` {}{}",
                    f.verify.shown,
                    f.verify.end_words(f.limit),
                    if said.is_empty() {
                        String::new()
                    } else {
                        format!(": {said}")
                    }
                ),
            );
            next.push(format!(
                "`fushi verify` could not judge the primary ({}): see verify.txt.",
                f.verify.end_words(f.limit)
            ));
        }
    }
    line(out, "");

    line(out, "## Resilience (`fushi report`)");
    line(out, "");
    match f.report_json {
        Some(r) if r["total"].is_object() => {
            let t = &r["total"];
            line(
                out,
                format!(
                    "In the window: {} restart(s), {} failure(s), {} escalation(s), {} fatal stop(s), \
                     {} recovered; {}.",
                    t["restarts"], t["failures"], t["escalations"], t["fatal_stops"], t["recovered"],
                    match t["mttr_ms"]["p95"].as_u64() {
                        Some(ms) => format!("time to recover p95 {ms} ms"),
                        None => "no failure to recover from".to_string(),
                    }
                ),
            );
            if r["records"].is_object() {
                let rec = &r["records"];
                line(
                    out,
                    format!(
                        "Records: {} received, {} durable, {} forwarded, {} pending, {} lost, {} duplicated.",
                        rec["received"], rec["durable"], known(&rec["forwarded"]), rec["pending"],
                        known(&rec["lost"]), known(&rec["duplicated"])
                    ),
                );
            }
            let failing: Vec<String> = r["targets"]
                .as_array()
                .map(|ts| {
                    ts.iter()
                        .filter(|t| t["pass"] == Value::Bool(false))
                        .map(|t| {
                            format!(
                                "{} = {} (target {})",
                                t["name"].as_str().unwrap_or("?"),
                                t["value"],
                                t["target"].as_str().unwrap_or("?")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if failing.is_empty() {
                line(out, "Every target passes.");
            } else {
                line(out, format!("**Failing targets**: {}", failing.join("; ")));
                next.push(format!(
                    "Resilience targets fail: {}; report.txt has the table.",
                    failing.join("; ")
                ));
            }
        }
        _ => {
            let said = first_line(f.report.stderr_text().trim());
            line(
                out,
                format!(
                    "No report: `{}` {}{}",
                    f.report.shown,
                    f.report.end_words(f.limit),
                    if said.is_empty() {
                        String::new()
                    } else {
                        format!(": {said}")
                    }
                ),
            );
        }
    }
    line(out, "");

    // Events of the window that a person should know of.
    let count = |name: &str| f.audit.iter().filter(|e| e.event == name).count();
    use fushi_actors::events as ev;
    let notable = [
        (ev::DAEMON_RECOVERED, "daemon restarts after a crash"),
        (ev::SUPERVISOR_CHILD_ESCALATED, "escalations"),
        (ev::SUPERVISOR_CHILD_FATAL, "actors given up"),
        (ev::COLLECTOR_STORAGE_SWITCH, "primary up/down switches"),
        (ev::JOURNAL_CORRUPT, "damaged journal stretches"),
        (ev::CONFIG_RELOAD_FAILED, "refused config reloads"),
        (ev::ALERT_FAILED, "alerts given up"),
    ];
    let seen: Vec<String> = notable
        .iter()
        .filter_map(|(name, words)| {
            let n = count(name);
            (n > 0).then(|| format!("{n} {words} (`{name}`)"))
        })
        .collect();
    line(out, format!("## Audit events since {}", f.since));
    line(out, "");
    if seen.is_empty() {
        line(
            out,
            format!(
                "{} event(s); no crash recovery, escalation, give-up, primary switch, journal damage, refused reload or failed alert.",
                f.audit.len()
            ),
        );
    } else {
        line(
            out,
            format!("{} event(s), of note: {}.", f.audit.len(), seen.join(", ")),
        );
        if count(ev::DAEMON_RECOVERED) > 0 {
            let from_journald = f
                .parts
                .iter()
                .any(|p| p.file == "logs.txt" && p.gathered && p.source.starts_with("journald"));
            let logs = if from_journald {
                "logs.txt holds the lines of every daemon process of the window: the last ones \
                 before each `daemon.started` say what ended it"
            } else {
                "the daemon logs as text, so logs.txt holds at most the running process's lines; \
                 the crashed ones' went where their stderr went"
            };
            next.push(format!(
                "The daemon came back from {} crash(es) in the window (`daemon.recovered`): {logs}.",
                count(ev::DAEMON_RECOVERED)
            ));
        }
    }
    line(out, "");

    let missing: Vec<&Part> = f.parts.iter().filter(|p| !p.gathered).collect();
    if !missing.is_empty() {
        next.push(format!(
            "Parts of this bundle could not be gathered: {}; each file says why.",
            missing
                .iter()
                .map(|p| p.file.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    line(out, "## What to look at next");
    line(out, "");
    if next.is_empty() {
        line(
            out,
            "Nothing needs attention: the daemon runs, health is green, no alert is open or owed, \
             the primary is up and verified clean, and every part of this bundle was gathered.",
        );
    } else {
        for (i, n) in next.iter().enumerate() {
            line(out, format!("{}. {n}", i + 1));
        }
    }
    line(out, "");

    line(out, "## Parts of this bundle");
    line(out, "");
    line(out, "| file | from | note |");
    line(out, "|---|---|---|");
    for p in f.parts {
        line(
            out,
            format!(
                "| {} | {} | {} |",
                p.file,
                p.source.replace('|', "\\|"),
                match (&p.note, p.gathered) {
                    (Some(n), false) => format!("**not gathered**: {}", n.replace('|', "\\|")),
                    (None, false) => "**not gathered**".into(),
                    (Some(n), true) => n.replace('|', "\\|"),
                    (None, true) => String::new(),
                }
            ),
        );
    }
    line(
        out,
        "| handover.md | this summary, from the parts above | |",
    );
    line(
        out,
        "| manifest.json | the environment and every part's source | |",
    );
}

fn logs_gathered(f: &Findings) -> bool {
    f.parts.iter().any(|p| p.file == "logs.txt" && p.gathered)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

fn secs(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string()
}

/// A figure of the report, or what its `null` means: the primary could not be read.
fn known(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "unknown (primary unreadable)".into(),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(code: i32, stdout: &str) -> Ran {
        use std::os::unix::process::ExitStatusExt;
        Ran {
            shown: "fushi x".into(),
            stdout: stdout.as_bytes().to_vec(),
            stderr: Vec::new(),
            end: super::super::run::End::Exited(std::process::ExitStatus::from_raw(code << 8)),
            took: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn next_steps_follow_from_what_was_found() {
        let board = fushi_actors::board::StatusBoard::new("n1", "prod", "c.toml");
        let mut doc = board.snapshot().0;
        doc.storage.primary = PrimaryState::Down;
        doc.storage.lag_records = 7;
        doc.alerts.owed.insert("webhook".into(), 2);
        let mut a = doc.actors.first().cloned().unwrap_or_else(|| {
            serde_json::from_value(serde_json::json!({"name": "collectors/x", "state": "backoff"}))
                .unwrap()
        });
        a.name = "collectors/x".into();
        a.state = ActorState::Backoff;
        a.escalated = true;
        a.consecutive_failures = 4;
        a.last_error = Some("connection refused".into());
        doc.actors.push(a);
        let daemon = Daemon::Down {
            why: "no daemon answers".into(),
        };
        let verify = ran(0, "");
        let verify_json = serde_json::json!({"records": 12, "problems": []});
        let report = ran(2, "");
        let f = Findings {
            node: "n1",
            created_at: "t",
            version: "0",
            config_path: "c.toml",
            config_sha256: None,
            config_error: None,
            primary: "/mnt/nas",
            daemon: &daemon,
            doc: Some(&doc),
            journal: None,
            verify: &verify,
            verify_json: Some(&verify_json),
            report: &report,
            report_json: None,
            audit: &[],
            since: "s",
            limit: std::time::Duration::from_secs(1),
            parts: &[],
        };
        let md = write(&f);
        let next = md.split("## What to look at next").nth(1).unwrap();
        assert!(
            next.contains("did not shut down in order") || next.contains("unclean end"),
            "{md}"
        );
        assert!(
            next.contains(
                "collectors/x escalated after 4 failures in a row (last error: connection refused)"
            ),
            "{md}"
        );
        assert!(next.contains("The primary `/mnt/nas` is down"), "{md}");
        assert!(
            next.contains("Alert messages are still owed (webhook 2)"),
            "{md}"
        );
        assert!(md.contains("Clean: 12 records on the primary"), "{md}");
        assert!(md.contains("No report: `fushi x` exit status 2"), "{md}");
    }
}
