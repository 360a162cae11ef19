//! `leader`: who holds the lease, with which epoch and how fresh its last renewal is, this node's role; `--release` hands the lease over now.

use serde_json::json;

use super::target::*;
use super::words::*;
use crate::control::proto::Request;

/// `fushi leader`: exit 0 when a node leads as far as this daemon sees, 1 when none does (or
/// leader election is off), 7 when the daemon does not answer. `--release` asks it to hand the
/// lease over (exit 0 once released).
pub fn leader(t: &Target, release: bool, json_out: bool) -> anyhow::Result<u8> {
    if release {
        return super::simple::simple(t, Request::LeaderRelease);
    }
    let doc = match status_doc(t) {
        Ok(d) => d,
        Err(e) => return down(e, EXIT_DAEMON_DOWN),
    };
    let l = &doc.leader;
    let age = l.renewed_at.as_deref().and_then(ago);
    // A lock unchanged for longer than stale_after is a holder gone, even before a standby
    // has taken over or the no-leader alert is due.
    let fresh = age.is_none_or(|a| a.as_millis() as u64 <= l.stale_after_ms.max(1000));
    let led =
        l.enabled && l.node.is_some() && l.none_since.is_none() && (l.role == "leader" || fresh);
    if json_out {
        outln!(
            "{}",
            json!({
                "enabled": l.enabled,
                "node": doc.node,
                "role": l.role,
                "holder": l.node.as_ref().map(|n| json!({"node": n, "host": l.host, "epoch": l.epoch, "since": l.since})),
                "epoch": l.epoch,
                "renewed_at": l.renewed_at,
                "renewed_ago_ms": age.map(|a| a.as_millis() as u64),
                "failovers": l.failovers,
                "none_since": l.none_since,
                "error": l.error,
            })
        );
        return Ok(if led { EXIT_OK } else { EXIT_FAILURE });
    }
    if !l.enabled {
        outln!(
            "leader election is off ([leader] enabled = false): {} collects on its own, epoch {}",
            doc.node,
            l.epoch
        );
        return Ok(EXIT_FAILURE);
    }
    match (&l.node, &l.host) {
        (Some(n), Some(h)) => outln!(
            "holder {n} on {h}, epoch {}{}; last renewal seen {}",
            l.epoch,
            l.since
                .as_ref()
                .map(|s| format!(" since {s}"))
                .unwrap_or_default(),
            age.map_or("never".into(), |a| format!(
                "{} ago{}",
                humantime::format_duration(a),
                if fresh || l.role == "leader" {
                    ""
                } else {
                    " (longer than stale_after: the holder looks gone; a standby takes over)"
                }
            ))
        ),
        // Unreadable from here: whether anyone holds it is not known.
        _ if l.error.is_some() => outln!("holder unknown: the lease cannot be read from this node"),
        _ => outln!("no node holds the lease"),
    }
    outln!(
        "this node ({}) is {}{}",
        doc.node,
        l.role,
        match l.role.as_str() {
            "leader" => "; its collectors run",
            "fenced" => ": it could not renew in time and stopped its collectors",
            _ => "; its collectors wait",
        }
    );
    if let Some(since) = &l.none_since {
        outln!("no node has led since {since}");
    }
    if let Some(e) = &l.error {
        outln!("error: {e}");
    }
    Ok(if led { EXIT_OK } else { EXIT_FAILURE })
}
