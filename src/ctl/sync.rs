//! `sync`: whether forwarding keeps up, what the next sync sends (`--plan`), and a retry at once with progress (`--now`).

use anyhow::bail;
use fushi_actors::board::{PrimaryState, StatusDoc};
use serde_json::json;
use std::time::Duration;

use super::target::*;
use super::words::*;
use crate::control::proto::{Request, Response};

/// What `fushi sync` does besides saying where forwarding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncAction {
    Show,
    /// List what the next sync sends, per stream.
    Plan,
    /// Retry at once and show the journal draining.
    Now,
}

/// Whether forwarding keeps up, by health's rule (SPEC §7): nothing waits, or what waits is
/// younger than the patience limit, with the primary up and no conflict. One sentence either way.
/// `tried_now` when `sync --now` tries: it then does not suggest itself.
pub(super) fn sync_verdict(doc: &StatusDoc, tried_now: bool) -> (bool, String) {
    let st = &doc.storage;
    let p = &doc.patience;
    let limit = humantime::format_duration(Duration::from_secs(p.limit_ms.div_ceil(1000)));
    let age = humantime::format_duration(Duration::from_secs(p.lag_age_ms / 1000));
    let lag = st.lag_records;
    let (wait, go, they) = if lag == 1 {
        ("waits", "goes", "it")
    } else {
        ("wait", "go", "they")
    };
    let lag = records(lag);
    if let Some(c) = &doc.sync.conflict {
        return (false, format!("forwarding stopped: {c}"));
    }
    if st.lag_records == 0 {
        return (
            true,
            "journal drained: nothing waits for the primary".into(),
        );
    }
    if st.primary == PrimaryState::Down {
        return (
            false,
            format!(
                "{lag} {wait}: the primary is down; {they} {go} when it is back (sync retries on \
                 its own{})",
                if tried_now {
                    ""
                } else {
                    ", `fushi sync --now` at once"
                }
            ),
        );
    }
    if p.journal_late() {
        return (
            false,
            format!(
                "{lag} {wait}, the oldest for {age}: longer than the {limit} in which sync \
                 keeps up (2 × sync.interval + io_timeout); see `fushi sync --plan` and `fushi tail sync`"
            ),
        );
    }
    (
        true,
        format!("{lag} {wait}, the oldest for {age}: sync keeps up ({they} {go} within {limit})"),
    )
}

/// `fushi sync`: where forwarding stands, exit 0 when it keeps up and 1 when records wait
/// longer than health allows; `--plan` lists what waits per stream; `--now` retries at once and
/// shows the journal draining.
pub fn sync(t: &Target, action: SyncAction, json_out: bool) -> anyhow::Result<u8> {
    let doc = match status_doc(t) {
        Ok(d) => d,
        Err(e) => return down(e, EXIT_DAEMON_DOWN),
    };
    let st = &doc.storage;
    let (keeps_up, verdict) = sync_verdict(&doc, action == SyncAction::Now);
    let plan = if action == SyncAction::Plan {
        match t.call(&Request::SyncPlan) {
            Ok(Response::Json { json }) => {
                Some(serde_json::from_str::<fushi_actors::sync::Backlog>(&json)?)
            }
            Ok(Response::Error { message }) => bail!("{message}"),
            Ok(other) => bail!("unexpected answer {other:?}"),
            Err(e) => return down(e, EXIT_DAEMON_DOWN),
        }
    } else {
        None
    };
    let code = if keeps_up { EXIT_OK } else { EXIT_FAILURE };
    if json_out && action != SyncAction::Now {
        let out = json!({
            "primary": st.primary,
            "lag_records": st.lag_records,
            "journal_bytes": st.journal_bytes,
            "lag_age_ms": doc.patience.lag_age_ms,
            "limit_ms": doc.patience.limit_ms,
            "keeps_up": keeps_up,
            "conflict": doc.sync.conflict,
            "last": doc.sync.last,
            "plan": plan,
        });
        outln!("{out}");
        return Ok(code);
    }
    outln!(
        "primary {}; {} not yet on the primary; journal {} on disk; last sync: {}",
        st.primary,
        records(st.lag_records),
        bytesize::ByteSize::b(st.journal_bytes).display().iec(),
        doc.sync
            .last
            .as_ref()
            .map_or("never".to_string(), |l| format!(
                "{} ({}, {})",
                l.at,
                records(l.items),
                if l.ok { "ok" } else { "failed" }
            ))
    );
    outln!("{verdict}");
    if let Some(plan) = plan {
        print_plan(&plan);
    }
    if action != SyncAction::Now {
        return Ok(code);
    }
    sync_now(t, st.lag_records)
}

pub(super) fn print_plan(plan: &fushi_actors::sync::Backlog) {
    if !plan.primary_ids_known {
        outln!(
            "primary {}: ON PRIMARY is the last id it was known to hold (it is read again once it is back)",
            plan.primary
        );
    }
    if plan.streams.is_empty() {
        outln!("the next sync sends nothing");
    } else {
        let w = plan
            .streams
            .iter()
            .map(|s| s.stream.len())
            .max()
            .unwrap_or(0)
            .max("STREAM".len());
        outln!(
            "{:<w$}  {:>9}  {:>10}  {:<14} {:<14} {:<14} OLDEST",
            "STREAM",
            "RECORDS",
            "BYTES",
            "FIRST",
            "LAST",
            "ON PRIMARY"
        );
        for s in &plan.streams {
            outln!(
                "{:<w$}  {:>9}  {:>10}  {:<14} {:<14} {:<14} {}",
                s.stream,
                s.records,
                bytesize::ByteSize::b(s.bytes).display().iec().to_string(),
                s.first,
                s.last,
                s.on_primary.as_deref().unwrap_or("-"),
                s.oldest_ts
            );
        }
    }
    if plan.already_there > 0 {
        outln!(
            "{} on the primary already (sent before a restart): skipped",
            records(plan.already_there)
        );
    }
    if plan.superseded > 0 {
        outln!(
            "{} moved to new ids (a rehome): their copies go instead",
            records(plan.superseded)
        );
    }
    match plan.next_attempt_ms {
        0 => outln!("next attempt: with the next sync, within sync.interval"),
        ms => outln!(
            "next attempt: in {} (backing off after a failure; `fushi sync --now` retries at once)",
            humantime::format_duration(Duration::from_millis(ms / 100 * 100))
        ),
    }
}

/// `sync --now`: asks for a retry at once, then shows the journal draining until it is empty,
/// stalls, or the primary is down.
pub(super) fn sync_now(t: &Target, lag_at_start: u64) -> anyhow::Result<u8> {
    let total = lag_at_start.max(1);
    if let Err(e) = t.call(&Request::SyncNow) {
        return down(e, EXIT_DAEMON_DOWN);
    }
    if lag_at_start == 0 {
        return Ok(EXIT_OK);
    }
    let mut stalled = 0;
    let mut last = u64::MAX;
    // On stderr, and only when it is a terminal (indicatif hides it otherwise).
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template("[{bar:30}] {pos}/{len} records forwarded")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    loop {
        let doc = match status_doc(t) {
            Ok(d) => d,
            Err(e) => return down(e, EXIT_DAEMON_DOWN),
        };
        let lag = doc.storage.lag_records;
        bar.set_position(total.saturating_sub(lag.min(total)));
        if lag == 0 {
            bar.finish();
            outln!("journal drained; primary {}", doc.storage.primary);
            return Ok(EXIT_OK);
        }
        stalled = if lag >= last { stalled + 1 } else { 0 };
        last = lag;
        if stalled >= 20 || doc.storage.primary == PrimaryState::Down || doc.sync.conflict.is_some()
        {
            bar.abandon();
            let (_, verdict) = sync_verdict(&doc, true);
            outln!("{verdict}");
            return Ok(EXIT_FAILURE);
        }
        #[allow(
            clippy::disallowed_methods,
            reason = "the CLI's own thread polls the daemon; no runtime runs here"
        )]
        std::thread::sleep(Duration::from_millis(250));
    }
}
