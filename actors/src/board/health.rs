//! Health (SPEC §7): the one rule that turns the status document into a colour and the reasons for it, for status, `fushi health`, `top`, HTTP and systemd's `STATUS=` alike.
//!
//! The colour is the worst of the reasons' levels, so a reader can never see a colour without
//! the sentence that explains it, nor a reason that the colour ignores.

use super::doc::{stopped_permanent, ActorState, Health, PrimaryState, StatusDoc};

/// `5s`, `7.1s`: written as the config writes durations.
fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// "in backoff", "starting", "stopped": what follows "is".
fn state_words(state: ActorState) -> &'static str {
    match state {
        ActorState::Backoff => "in backoff",
        other => other.as_str(),
    }
}

/// The health of `doc` and why it is not green, one line a reason, most severe kinds first.
/// How long an alert message may wait for its channel before health says so: longer than the
/// default retries (5 + 10 + 15 s, four attempts of 10 s) with room for a rate limit.
const ALERTS_LATE_MS: u64 = 5 * 60 * 1000;

pub fn assess(doc: &StatusDoc) -> (Health, Vec<String>) {
    let mut worst = Health::Green;
    let mut out = Vec::new();
    let mut say = |level: Health, text: String| {
        worst = worst.max(level);
        out.push(text);
    };
    for e in &doc.config.errors {
        // The error was written for the moment of loading ("fix this line and run again"); the
        // reason says what holds now and what clears it.
        say(
            Health::Red,
            format!(
                "config file not in use (the daemon runs on its last good config; once the file \
                 is fixed, `fushi update` applies it and clears this): {e}"
            ),
        );
    }
    let l = &doc.leader;
    if let Some(since) = &l.none_since {
        say(
            Health::Red,
            format!(
                "no node has led since {since}: no collector runs anywhere{}",
                l.error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
        );
    } else if l.role == "fenced" {
        say(
            Health::Yellow,
            format!(
                "fenced: this node could not renew its leader lease in time and stopped its \
                 collectors; it stands by until it reaches the lock again{}",
                l.error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
        );
    } else if let Some(e) = &l.error {
        say(Health::Yellow, format!("leader election: {e}"));
    }
    if doc.storage.journal_full {
        say(Health::Red, "journal full: collectors are held back".into());
    }
    if let Some(e) = &doc.storage.journal_error {
        say(Health::Red, format!("journal: {e}"));
    }
    if let Some(c) = &doc.sync.conflict {
        say(Health::Red, format!("sync: {c}"));
    }
    let standing_by = l.enabled && l.role != "leader";
    for a in &doc.actors {
        if a.escalated {
            say(
                Health::Red,
                format!(
                    "{} escalated after {} consecutive failures",
                    a.name, a.consecutive_failures
                ),
            );
        } else if a.state == ActorState::Fatal {
            say(
                Health::Red,
                format!(
                    "{} is fatal (gave up); `fushi start {}` revives it",
                    a.name, a.name
                ),
            );
        } else if doc.patience.unsettled.contains(&a.name) {
            // A record waiting for the next sync, or an actor restarting at once, is routine:
            // only what outlasts the patience limit degrades health (else it flaps).
            let why = if a.consecutive_failures >= 2 {
                format!("after {} consecutive failures", a.consecutive_failures)
            } else {
                format!("for longer than {}", seconds(doc.patience.limit_ms))
            };
            say(
                Health::Yellow,
                format!("{} is {} {why}", a.name, state_words(a.state)),
            );
        } else if stopped_permanent(a) && !(standing_by && a.name.starts_with("collectors/")) {
            // A standby's collectors wait for the lease: stopped is what they should be.
            say(
                Health::Yellow,
                format!("{} is {}", a.name, state_words(a.state)),
            );
        }
    }
    if doc.storage.primary == PrimaryState::Down {
        say(
            Health::Yellow,
            "primary store is down: records wait in the local journal".into(),
        );
    }
    if doc.patience.journal_late() {
        say(
            Health::Yellow,
            format!(
                "{} records not yet on the primary, the oldest for {} (more than {} = 2 × sync.interval + io_timeout)",
                doc.storage.lag_records,
                seconds(doc.patience.lag_age_ms),
                seconds(doc.patience.limit_ms)
            ),
        );
    }
    if doc.patience.alerts_owed_age_ms > ALERTS_LATE_MS {
        let owed: Vec<String> = doc
            .alerts
            .owed
            .iter()
            .map(|(c, n)| format!("{n} to {c}"))
            .collect();
        say(
            Health::Yellow,
            format!(
                "alert messages owed ({}) for {}: a person may not have been told; the log's alert.retry lines say why",
                owed.join(", "),
                seconds(doc.patience.alerts_owed_age_ms)
            ),
        );
    }
    if doc.mode != "prod" {
        say(Health::Yellow, format!("mode {}", doc.mode));
    }
    (worst, out)
}
