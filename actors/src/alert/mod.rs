//! The alert actor: turns escalations and recovered notices into deliveries on its channels.
//!
//! Supervisors never talk to the alert actor directly: they push onto an [`AlertOutbox`] that
//! outlives the actor. An alert is removed from the outbox only after every channel was tried, so
//! an alert pushed while the actor is restarting, or whose delivery crashed the actor, is
//! delivered by the next incarnation rather than lost. Channels implement [`AlertChannel`]; this
//! issue ships the log channel (journald fields at error level), webhook/command/file slot in beside it.

use crate::events;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::Serialize;
use serde_json::json;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::audit::AuditLog;

/// What the tree tells the alert actor.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Alert {
    /// `actor` failed `failures` consecutive times; sent once per failure streak.
    Escalation {
        actor: String,
        failures: u32,
        last_error: Option<String>,
        since: String,
    },
    /// An escalated actor ran `stable_after` without failing.
    Recovered {
        actor: String,
        failures: u32,
        since: String,
    },
    /// No node has been seen leading for longer than `stale_after + heartbeat` (SPEC §4.4):
    /// no collector runs anywhere.
    NoLeader { since: String, why: String },
    /// A node leads again after a [`Alert::NoLeader`].
    LeaderBack { node: String, since: String },
    /// An SLO gate's verdict on one window that a person should hear of (SPEC §6): a warning, a
    /// violation (an incident), the rollback it ran, or ok again after one of those.
    Slo(SloAlert),
}

/// What the analyzer says about one window of one SLO.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SloAlert {
    pub verdict: SloVerdict,
    /// The `[[slo]]` name.
    pub slo: String,
    pub stream: String,
    /// `p95`, `error_rate` or `lateness`.
    pub kind: String,
    /// The rollout phase whose threshold was applied (A, B or C).
    pub phase: String,
    /// What was measured: the field for p95, the predicate for error_rate, `lateness`.
    pub metric: String,
    pub value: f64,
    pub threshold: f64,
    /// The window, `<start>/<end>` in RFC 3339.
    pub window: String,
    /// The incident this belongs to (violation and rollback; ok closing one).
    pub incident: Option<String>,
    /// A violation whose SLO has a `rollback` command or a phase to step back from.
    pub rollback_required: bool,
    /// Rollback only: the command run (secrets masked), its exit code, what went wrong.
    pub cmd: Option<String>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    /// One sentence a person reads first.
    pub why: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloVerdict {
    /// Back within its threshold after a warning or an incident.
    Ok,
    /// At or above `warn_ratio` of the threshold, or a collection delay (lateness).
    Warn,
    /// Over the threshold: an incident.
    Violation,
    /// The rollback an incident ran.
    Rollback,
}

impl Alert {
    pub fn actor(&self) -> &str {
        match self {
            Alert::Escalation { actor, .. } | Alert::Recovered { actor, .. } => actor,
            Alert::NoLeader { .. } | Alert::LeaderBack { .. } => "leader",
            Alert::Slo(s) => &s.slo,
        }
    }

    /// The template name of SPEC §6 this alert renders with.
    pub fn template(&self) -> &'static str {
        match self {
            Alert::Escalation { .. } | Alert::NoLeader { .. } => "escalation",
            Alert::Recovered { .. } | Alert::LeaderBack { .. } => "recovered",
            Alert::Slo(s) => match s.verdict {
                SloVerdict::Ok => "ok",
                SloVerdict::Warn => "warn",
                SloVerdict::Violation => "incident",
                SloVerdict::Rollback => "rollback",
            },
        }
    }

    pub fn text(&self) -> String {
        match self {
            Alert::Escalation {
                actor,
                failures,
                last_error,
                since,
            } => format!(
                "{actor} failed {failures} times in a row since {since} (last error: {}); still retrying",
                last_error.as_deref().unwrap_or("none")
            ),
            Alert::Recovered {
                actor,
                failures,
                since,
            } => format!("{actor} recovered after {failures} consecutive failures (since {since})"),
            Alert::NoLeader { since, why } => format!(
                "no node has led since {since}, so no collector runs anywhere: {why}"
            ),
            Alert::LeaderBack { node, since } => {
                format!("{node} leads again (no node had led since {since})")
            }
            Alert::Slo(s) => format!("SLO {}: {}", s.slo, s.why),
        }
    }
}

/// A place alerts go. Delivery errors are reported, audited as `alert.failed`, never fatal.
pub trait AlertChannel: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn deliver(&self, alert: &Alert) -> Result<(), String>;
}

/// The always-on channel: the daemon's log, which under systemd is journald.
pub struct LogChannel;

/// journald's `critical`, which SPEC §6 gives the journald channel: alerts stand out in
/// `journalctl -p crit`. The daemon's journald layer takes a `priority` field over the level.
const JOURNALD_PRIORITY: u8 = 2;

impl AlertChannel for LogChannel {
    fn name(&self) -> &str {
        "journald"
    }

    fn deliver(&self, alert: &Alert) -> Result<(), String> {
        match alert {
            Alert::Escalation {
                actor, failures, ..
            } => tracing::error!(
                actor = actor.as_str(),
                event = events::SUPERVISOR_CHILD_ESCALATED,
                failures = *failures,
                alert = "escalation",
                priority = JOURNALD_PRIORITY,
                "{}",
                alert.text()
            ),
            Alert::Recovered {
                actor, failures, ..
            } => tracing::warn!(
                actor = actor.as_str(),
                event = events::SUPERVISOR_CHILD_RECOVERED,
                failures = *failures,
                alert = "recovered",
                priority = JOURNALD_PRIORITY,
                "{}",
                alert.text()
            ),
            Alert::NoLeader { .. } => tracing::error!(
                actor = "leader",
                event = events::COLLECTOR_LEADER_NONE,
                alert = "escalation",
                priority = JOURNALD_PRIORITY,
                "{}",
                alert.text()
            ),
            Alert::LeaderBack { .. } => tracing::warn!(
                actor = "leader",
                event = events::COLLECTOR_LEADER_BACK,
                alert = "recovered",
                priority = JOURNALD_PRIORITY,
                "{}",
                alert.text()
            ),
            Alert::Slo(s) => tracing::warn!(
                actor = "analyzer",
                slo = s.slo.as_str(),
                alert = alert.template(),
                priority = JOURNALD_PRIORITY,
                "{}",
                alert.text()
            ),
        }
        Ok(())
    }
}

struct OutboxInner {
    queue: VecDeque<Alert>,
    actor: Option<ActorRef<AlertMsg>>,
}

/// The queue between the tree and the alert actor; it survives the actor's restarts.
#[derive(Clone)]
pub struct AlertOutbox {
    inner: Arc<Mutex<OutboxInner>>,
}

impl Default for AlertOutbox {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(OutboxInner {
                queue: VecDeque::new(),
                actor: None,
            })),
        }
    }
}

impl AlertOutbox {
    fn lock(&self) -> MutexGuard<'_, OutboxInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, alert: Alert) {
        let mut g = self.lock();
        g.queue.push_back(alert);
        if let Some(actor) = &g.actor {
            // If the actor is gone, its successor drains the queue in pre_start.
            let _ = actor.cast(AlertMsg::Drain);
        }
    }

    pub fn pending(&self) -> usize {
        self.lock().queue.len()
    }

    fn attach(&self, actor: ActorRef<AlertMsg>) {
        self.lock().actor = Some(actor);
    }

    fn front(&self) -> Option<Alert> {
        self.lock().queue.front().cloned()
    }

    fn pop(&self) {
        self.lock().queue.pop_front();
    }
}

#[derive(Clone)]
pub struct AlertActor;

#[derive(Clone)]
pub struct AlertArgs {
    pub outbox: AlertOutbox,
    pub audit: AuditLog,
    pub board: crate::board::StatusBoard,
    pub channels: Vec<Arc<dyn AlertChannel>>,
}

pub enum AlertMsg {
    /// Deliver everything queued in the outbox.
    Drain,
}

pub struct AlertState {
    args: AlertArgs,
}

impl Actor for AlertActor {
    type Msg = AlertMsg;
    type State = AlertState;
    type Arguments = AlertArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<AlertMsg>,
        args: AlertArgs,
    ) -> Result<AlertState, ActorProcessingErr> {
        args.outbox.attach(myself.clone());
        // Whatever queued up while no alert actor ran.
        myself.cast(AlertMsg::Drain)?;
        Ok(AlertState { args })
    }

    async fn handle(
        &self,
        _myself: ActorRef<AlertMsg>,
        msg: AlertMsg,
        state: &mut AlertState,
    ) -> Result<(), ActorProcessingErr> {
        let AlertMsg::Drain = msg;
        while let Some(alert) = state.args.outbox.front() {
            for ch in &state.args.channels {
                let payload =
                    json!({"channel": ch.name(), "template": alert.template(), "alert": &alert});
                match ch.deliver(&alert) {
                    Ok(()) => {
                        state.args.board.count(crate::board::Counter::AlertsSent, 1);
                        state
                            .args
                            .audit
                            .emit(events::ALERT_SENT, Some(alert.actor()), payload)
                    }
                    Err(e) => {
                        tracing::warn!(actor = "alert", event = events::ALERT_FAILED, channel = ch.name(),
                            error = %e, "alert delivery failed");
                        let mut payload = payload;
                        payload["error"] = json!(e);
                        state
                            .args
                            .audit
                            .emit(events::ALERT_FAILED, Some(alert.actor()), payload);
                    }
                }
            }
            state.args.outbox.pop();
        }
        Ok(())
    }
}
