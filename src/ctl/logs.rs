//! `tail` (the daemon's log ring, `-f`) and `audit` (audit.jsonl, read directly so it works with the daemon stopped).

use anyhow::Context;
use fushi_actors::audit::AuditEvent;
use std::time::Duration;

use super::names::*;
use super::target::*;
use crate::control::client::ClientError;
use crate::control::proto::{Request, Response};

/// Prints one log line, as a JSON string with `--json` (JSON Lines, so that `-f` streams).
pub(super) fn print_line(line: &str, json_out: bool) -> anyhow::Result<()> {
    if json_out {
        outln!("{}", serde_json::to_string(line)?);
    } else {
        outln!("{line}");
    }
    Ok(())
}

pub fn tail(
    t: &Target,
    lines: u32,
    follow: bool,
    actor: Option<String>,
    json_out: bool,
) -> anyhow::Result<u8> {
    let doc = match status_doc(t) {
        Ok(doc) => doc,
        Err(e) => return down(e, EXIT_DAEMON_DOWN),
    };
    let actor = match actor {
        Some(a) => resolve(&doc, vec![a])?.pop(),
        None => None,
    };
    // Under journald the journal is the log: read it there (ACTOR= is a native field).
    if doc.log == "journald" {
        let mut cmd = std::process::Command::new("journalctl");
        cmd.args(["--no-pager", "-n", &lines.to_string()])
            .args(["-o", if json_out { "json" } else { "short-iso" }])
            .arg(format!("_PID={}", doc.pid))
            .arg("SYSLOG_IDENTIFIER=fushi");
        if follow {
            cmd.arg("-f");
        }
        if let Some(a) = &actor {
            cmd.arg(format!("ACTOR={a}"));
        }
        let status = cmd
            .status()
            .context("running journalctl (the daemon logs to journald)")?;
        return Ok(if status.success() {
            EXIT_OK
        } else {
            EXIT_FAILURE
        });
    }
    let fetch = |n: u32| match t.call(&Request::Tail {
        lines: n,
        actor: actor.clone(),
    }) {
        Ok(Response::Lines { lines }) => Ok(lines),
        Ok(other) => Err(ClientError::Daemon(format!("unexpected answer {other:?}"))),
        Err(e) => Err(e),
    };
    // Following needs the newest line as the mark to follow from, even when none is printed
    // (`-n 0 -f`); without the mark everything in the ring would count as new.
    let first = if follow { lines.max(1) } else { lines };
    let mut last = match fetch(first) {
        Ok(ls) => {
            for l in &ls[ls.len().saturating_sub(lines as usize)..] {
                print_line(l, json_out)?;
            }
            ls.last().cloned()
        }
        Err(e) => return down(e, EXIT_DAEMON_DOWN),
    };
    if !follow {
        return Ok(EXIT_OK);
    }
    loop {
        #[allow(
            clippy::disallowed_methods,
            reason = "the CLI's own thread polls the daemon; no runtime runs here"
        )]
        std::thread::sleep(Duration::from_millis(500));
        let ls = match fetch(2000) {
            Ok(ls) => ls,
            Err(ClientError::NotRunning { .. }) => {
                eprintln!(
                    "fushi: the daemon stopped answering (shut down, or its control socket is restarting); \
                     its last lines are in the journal (`journalctl -u fushi`) or `fushi tail` once it is back"
                );
                return Ok(EXIT_DAEMON_DOWN);
            }
            Err(e) => return down(e, EXIT_DAEMON_DOWN),
        };
        let start = last
            .as_ref()
            .and_then(|l| ls.iter().rposition(|x| x == l))
            .map_or(0, |i| i + 1);
        for l in &ls[start..] {
            print_line(l, json_out)?;
        }
        if let Some(l) = ls.last() {
            last = Some(l.clone());
        }
    }
}

/// `*` matches any run of characters, everything else itself.
pub fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            let Some(at) = rest.find(p) else { return false };
            rest = &rest[at + p.len()..];
        }
    }
    true
}

/// Reads the audit log directly, so it works with the daemon stopped too; see
/// [`crate::audit_file`] for what happens to bad lines.
pub fn audit(
    t: &Target,
    since: Option<Duration>,
    event: Option<String>,
    json_out: bool,
) -> anyhow::Result<u8> {
    let path = audit_dir(t)?.join("audit.jsonl");
    let Some(events) = crate::audit_file::read(&path)? else {
        return Ok(EXIT_FAILURE);
    };
    let cutoff = since.map(|d| fushi_actors::clock::rfc3339(fushi_actors::clock::wall() - d));
    let picked: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| cutoff.as_ref().is_none_or(|c| e.ts.as_str() >= c.as_str()))
        .filter(|e| event.as_ref().is_none_or(|g| glob(g, &e.event)))
        .collect();
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&picked)?);
    } else {
        for e in picked {
            outln!(
                "{} {:<36} {:<24} {}",
                e.ts,
                e.event,
                e.actor.as_deref().unwrap_or("-"),
                e.payload
            );
        }
    }
    Ok(EXIT_OK)
}
