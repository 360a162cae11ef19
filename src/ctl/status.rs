//! `status`, `start`/`stop`/`restart` and `health`: the tree as the daemon reports it, and control requests on it.

use anyhow::bail;
use fushi_actors::board::{health, Health};
use fushi_actors::board::{ActorState, ActorStatus};
use fushi_actors::supervisor::Verb;
use serde_json::json;
use std::time::Duration;

use super::names::*;
use super::target::*;
use super::words::*;
use crate::control::client::ClientError;
use crate::control::proto::{Request, Response};

pub(super) fn when(a: &ActorStatus) -> String {
    match a.state {
        ActorState::Running => a
            .since
            .as_deref()
            .and_then(ago)
            .map(|d| format!("up {}", humantime::format_duration(d))),
        ActorState::Backoff => a.next_restart_at.as_deref().and_then(until).map(|d| {
            format!(
                "restart in {}",
                humantime::format_duration(Duration::from_millis(d.as_millis() as u64 / 100 * 100))
            )
        }),
        _ => a
            .since
            .as_deref()
            .and_then(ago)
            .map(|d| format!("for {}", humantime::format_duration(d))),
    }
    .unwrap_or_default()
}

pub fn status(t: &Target, names: &[String], json_out: bool) -> anyhow::Result<u8> {
    let doc = match status_doc(t) {
        Ok(d) => d,
        Err(e) => return down(e, EXIT_NOT_RUNNING),
    };
    let names = resolve(&doc, names.to_vec())?;
    let selected: Vec<&ActorStatus> = if names.is_empty() {
        doc.actors.iter().collect()
    } else {
        for n in &names {
            if !doc.actors.iter().any(|a| selects(n, &a.name)) {
                let known: Vec<&str> = doc.actors.iter().map(|a| a.name.as_str()).collect();
                bail!("no actor named {n:?}; known: {}", known.join(", "));
            }
        }
        doc.actors
            .iter()
            .filter(|a| names.iter().any(|n| selects(n, &a.name)))
            .collect()
    };
    if json_out {
        if names.is_empty() {
            outln!("{}", serde_json::to_string_pretty(&doc)?);
        } else {
            outln!("{}", serde_json::to_string_pretty(&selected)?);
        }
    } else {
        outln!(
            "node {}  health {}  mode {}  primary {}  journal {} B  lag {}  daemon recovered {}",
            doc.node,
            doc.health,
            doc.mode,
            doc.storage.primary,
            doc.storage.journal_bytes,
            doc.storage.lag_records,
            doc.daemon_recovered
        );
        if doc.leader.enabled {
            let l = &doc.leader;
            outln!(
                "leader {}  holder {}  epoch {}",
                l.role,
                l.node.as_deref().unwrap_or("none"),
                l.epoch
            );
        }
        if let Some(line) = alerts_line(&doc.alerts) {
            outln!("{line}");
        }
        outln!(
            "{:<28} {:<9} {:<24} {:>8} {:>9} {:>9} {:>5}  LAST ERROR",
            "NAME",
            "STATE",
            "UPTIME / NEXT",
            "RESTARTS",
            "RECOVERED",
            "RECORDS",
            "BAD"
        );
        for a in &selected {
            let state = if a.escalated {
                format!("{}!", a.state.as_str())
            } else {
                a.state.as_str().to_string()
            };
            outln!(
                "{:<28} {:<9} {:<24} {:>8} {:>9} {:>9} {:>5}  {}",
                a.name,
                state,
                when(a),
                a.restarts,
                a.recovered,
                a.records,
                a.quarantined,
                a.last_error.as_deref().unwrap_or("-")
            );
        }
        for e in &doc.config.errors {
            outln!("config error: {e}");
        }
    }
    let all_running = selected.iter().all(|a| a.state == ActorState::Running);
    Ok(if all_running {
        EXIT_OK
    } else {
        EXIT_NOT_RUNNING
    })
}

pub fn control(t: &Target, verb: Verb, names: Vec<String>) -> anyhow::Result<u8> {
    match t.call(&Request::Control { verb, names }) {
        Ok(Response::Ok { message }) => {
            outln!("{message}");
            Ok(EXIT_OK)
        }
        Ok(other) => bail!("unexpected answer {other:?}"),
        Err(e) => down(e, EXIT_DAEMON_DOWN),
    }
}

pub fn health(t: &Target, json_out: bool) -> anyhow::Result<u8> {
    let doc = match status_doc(t) {
        Ok(d) => d,
        Err(e @ ClientError::NotRunning { .. }) => {
            // No answer is critical, whether the daemon is gone or unreachable; the reason
            // says which (`Target::not_running`).
            let (health, reason) = (Health::Red, e.to_string());
            if json_out {
                outln!(
                    "{}",
                    json!({"status": health.word(), "health": health, "reasons": [reason]})
                );
            } else {
                outln!("{}\n  {reason}", health.word());
            }
            return Ok(health.code());
        }
        Err(e) => return Err(e.into()),
    };
    let (health, reasons) = health::assess(&doc);
    let (word, code) = (health.word(), health.code());
    if json_out {
        outln!(
            "{}",
            json!({"status": word, "health": health, "reasons": reasons})
        );
    } else {
        outln!("{word}");
        for r in reasons {
            outln!("  {r}");
        }
    }
    Ok(code)
}

/// What the alert outbox still owes and holds, when it owes or holds anything: messages
/// waiting (a channel retrying, rate-limited or hung shows here) and flapping actors.
fn alerts_line(a: &fushi_actors::board::AlertsStatus) -> Option<String> {
    let mut parts = Vec::new();
    if !a.owed.is_empty() {
        let owed: Vec<String> = a.owed.iter().map(|(c, n)| format!("{c} {n}")).collect();
        parts.push(format!("alerts owed: {}", owed.join(", ")));
    }
    if a.pending > 0 {
        parts.push(format!("grouping {}", a.pending));
    }
    if !a.flapping.is_empty() {
        parts.push(format!("held as flapping: {}", a.flapping.join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join("  "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alerts_line_says_what_is_owed_and_held_and_is_absent_when_nothing_is() {
        let mut a = fushi_actors::board::AlertsStatus::default();
        assert_eq!(alerts_line(&a), None);
        a.owed.insert("webhook".into(), 2);
        a.flapping.push("collectors/x".into());
        assert_eq!(
            alerts_line(&a).unwrap(),
            "alerts owed: webhook 2  held as flapping: collectors/x"
        );
    }
}
