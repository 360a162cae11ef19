//! The failure path: a child's exit becomes a decision (restart now, after a backoff, with its siblings, or escalate), taken at once and written down after the replacement runs; a child stable long enough has its streak reset.

use super::{RestartKind, Strategy, SupervisorMsg, SupervisorState};
use crate::events;
use ractor::{ActorCell, ActorProcessingErr, ActorRef};
use serde_json::json;
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;

use crate::alert::Alert;
use crate::board::ActorState;
use crate::clock;

/// How a child's incarnation ended, as its supervisor saw it.
pub(super) enum Exit {
    Failed(ActorProcessingErr),
    Stopped(Option<String>),
}

/// What LAST ERROR says about a permanent child that ended without failing. ractor gives a
/// killed actor the reason "killed": the supervisor kills only children it is stopping, whose
/// exits it no longer watches, so a kill it sees came from elsewhere (`fushi inject crash`).
pub(super) fn exit_reason(reason: Option<&str>) -> String {
    match reason {
        Some("killed") => "killed from outside its supervisor (e.g. `fushi inject crash`)".into(),
        Some(r) => format!("stopped by itself ({r})"),
        None => "stopped by itself, giving no reason".into(),
    }
}

/// A child's failure, as decided at once and written down later (see `on_failure`).
pub(super) struct Failure {
    /// Consecutive failures, this one included.
    pub(super) n: u32,
    /// Rendered only when written down: formatting is no work for the restart to wait on.
    pub(super) error: ActorProcessingErr,
    pub(super) at: SystemTime,
    /// This failure escalates (the first of the streak to reach `escalate_after`).
    pub(super) escalate: bool,
    pub(super) delay: Duration,
    /// The dead incarnation's cell and task, freed with the failure: after the replacement runs.
    pub(super) _remains: Remains,
}

/// What is left of a child's dead incarnation.
pub(super) type Remains = (Option<ActorCell>, Option<JoinHandle<()>>);

pub(super) fn send_after(myself: &ActorRef<SupervisorMsg>, d: Duration, msg: SupervisorMsg) {
    let me = myself.clone();
    tokio::spawn(async move {
        tokio::time::sleep(d).await;
        // A dead supervisor has nothing left to restart.
        let _ = me.cast(msg);
    });
}

impl SupervisorState {
    pub(super) async fn on_exit(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        idx: usize,
        exit: Exit,
    ) {
        let c = &mut self.children[idx];
        let remains = (c.cell.take(), c.task.take());
        let error = match exit {
            Exit::Failed(e) => Some(e),
            Exit::Stopped(reason) => match c.spec.restart {
                RestartKind::Permanent => Some(exit_reason(reason.as_deref()).into()),
                RestartKind::Transient | RestartKind::Temporary => None,
            },
        };
        let Some(error) = error else {
            c.state = ActorState::Stopped;
            self.publish(idx, false, false, false);
            self.audit(
                idx,
                events::SUPERVISOR_CHILD_STOPPED,
                json!({"reason": "exited normally"}),
            );
            return;
        };
        if c.spec.restart == RestartKind::Temporary {
            let error = error.to_string();
            c.state = ActorState::Stopped;
            c.last_error = Some(error.clone());
            tracing::warn!(actor = c.path.as_str(), event = events::SUPERVISOR_CHILD_FAILED, error = %error,
                "temporary child failed; not restarted");
            self.publish(idx, false, true, false);
            self.audit(
                idx,
                events::SUPERVISOR_CHILD_FAILED,
                json!({"error": error, "restart": "temporary"}),
            );
            return;
        }
        self.on_failure(myself, idx, error, remains).await;
    }

    /// A restart failure of child `idx`: count it, escalate or give up, and schedule the restart.
    async fn on_failure(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        idx: usize,
        error: ActorProcessingErr,
        remains: Remains,
    ) {
        let c = &mut self.children[idx];
        c.consecutive += 1;
        let n = c.consecutive;
        let policy = &c.spec.policy;
        let escalate = n >= policy.escalate_after && !c.escalated;
        c.escalated |= escalate;
        let fatal = policy.give_up_after > 0 && n >= policy.give_up_after;
        let delay = policy.delay(n);
        let failure = Failure {
            n,
            error,
            at: clock::wall(),
            escalate,
            delay,
            _remains: remains,
        };
        // An immediate restart of this child alone: the replacement first, and what the
        // failure leaves to write down (log, audit, status, alert) once it runs, so that the
        // restart does not wait on any of it.
        let alone = self.strategy == Strategy::OneForOne;
        if alone && !fatal && delay.is_zero() {
            self.children[idx].generation += 1;
            Box::pin(self.start_child_noting(myself, idx, true, Some(failure))).await;
            return;
        }
        self.note_failure(idx, &failure);

        if fatal {
            let c = &mut self.children[idx];
            c.state = ActorState::Fatal;
            c.generation += 1;
            tracing::error!(
                actor = c.path.as_str(),
                event = events::SUPERVISOR_CHILD_FATAL,
                attempt = n,
                "giving up after {n} consecutive failures; `fushi start` revives it"
            );
            self.publish(idx, false, true, false);
            self.audit(idx, events::SUPERVISOR_CHILD_FATAL, json!({"failures": n}));
            let c = &self.children[idx];
            self.ctx.alerts.push(Alert::Fatal {
                actor: c.path.clone(),
                failures: n,
                last_error: c.last_error.clone(),
            });
            return;
        }

        let group: Vec<usize> = match self.strategy {
            Strategy::OneForOne => vec![idx],
            Strategy::OneForAll => (0..self.children.len())
                .filter(|&j| j == idx || self.sibling_joins(j))
                .collect(),
            Strategy::RestForOne => (idx..self.children.len())
                .filter(|&j| j == idx || self.sibling_joins(j))
                .collect(),
        };
        for &j in group.iter().rev() {
            if j != idx && self.children[j].alive() {
                self.stop_child(j, "sibling failed").await;
            }
        }
        let mut due = Vec::with_capacity(group.len());
        // An immediate restart has no "next restart" worth formatting on the hot path.
        let next_at = (!delay.is_zero()).then(|| clock::in_rfc3339(delay));
        for &j in &group {
            let failed = j == idx;
            if !failed && self.children[j].spec.restart == RestartKind::Temporary {
                continue;
            }
            let c = &mut self.children[j];
            c.generation += 1;
            c.state = ActorState::Backoff;
            due.push((c.spec.name.clone(), c.generation));
            self.publish(j, false, failed, false);
            if let Some(next) = next_at.clone() {
                self.ctx
                    .board
                    .update(&self.children[j].path, |a| a.next_restart_at = Some(next));
            }
        }
        let with: Vec<String> = due.iter().map(|(n, _)| n.clone()).collect();
        self.note_restart_scheduled(idx, &failure, next_at, &with);
        if delay.is_zero() {
            Box::pin(self.restart_due(myself, due)).await;
        } else {
            send_after(myself, delay, SupervisorMsg::RestartDue(due));
        }
    }

    /// Writes down a failure of child `idx`: log, audit, and the escalation it may bring.
    fn note_failure(&mut self, idx: usize, f: &Failure) {
        let error = f.error.to_string();
        let c = &mut self.children[idx];
        if f.n == 1 {
            c.streak_since = Some(clock::rfc3339(f.at));
        }
        c.last_error = Some(error.clone());
        tracing::warn!(actor = c.path.as_str(), event = events::SUPERVISOR_CHILD_FAILED, attempt = f.n,
            error = %error, "child failed");
        self.audit(
            idx,
            events::SUPERVISOR_CHILD_FAILED,
            json!({"error": error, "consecutive_failures": f.n}),
        );
        if f.escalate {
            let c = &self.children[idx];
            let alert = Alert::Escalation {
                actor: c.path.clone(),
                failures: f.n,
                last_error: Some(error.clone()),
                since: c.streak_since.clone().unwrap_or_else(clock::now_rfc3339),
            };
            self.audit(
                idx,
                events::SUPERVISOR_CHILD_ESCALATED,
                json!({"failures": f.n, "last_error": error}),
            );
            self.ctx.alerts.push(alert);
            self.ctx.board.count(crate::board::Counter::Escalations, 1);
        }
    }

    /// Writes down a failure of child `idx` that was restarted at once, alone: what
    /// `on_failure` left for after the replacement's start.
    pub(super) fn note_immediate_restart(&mut self, idx: usize, f: &Failure) {
        self.note_failure(idx, f);
        self.publish(idx, false, true, false);
        let name = self.children[idx].spec.name.clone();
        self.note_restart_scheduled(idx, f, None, &[name]);
    }

    /// Writes down the restart a failure of child `idx` scheduled, of the children `with`.
    fn note_restart_scheduled(
        &self,
        idx: usize,
        f: &Failure,
        next_at: Option<String>,
        with: &[String],
    ) {
        tracing::info!(actor = self.children[idx].path.as_str(), event = events::SUPERVISOR_CHILD_RESTART_SCHEDULED,
            attempt = f.n, delay = ?f.delay, "restart scheduled");
        self.audit(
            idx,
            events::SUPERVISOR_CHILD_RESTART_SCHEDULED,
            json!({"attempt": f.n, "delay_ms": f.delay.as_millis() as u64, "next_restart_at": next_at,
                   "with": with}),
        );
    }

    /// Whether sibling `j` is taken down and restarted along with a failed child.
    fn sibling_joins(&self, j: usize) -> bool {
        let c = &self.children[j];
        c.alive() || matches!(c.state, ActorState::Backoff | ActorState::Starting)
    }

    pub(super) async fn restart_due(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        due: Vec<(String, u64)>,
    ) {
        for (name, generation) in due {
            let Some(idx) = self.index(&name) else {
                continue;
            };
            let c = &self.children[idx];
            if c.generation != generation || c.state != ActorState::Backoff {
                continue; // cancelled by a stop, a restart, or a newer failure
            }
            self.start_child(myself, idx, true).await;
        }
    }

    pub(super) fn stable_due(&mut self, name: &str, generation: u64) {
        let Some(idx) = self.index(name) else {
            return;
        };
        let c = &mut self.children[idx];
        if c.generation != generation || c.state != ActorState::Running || c.consecutive == 0 {
            return;
        }
        let failures = c.consecutive;
        let was_escalated = c.escalated;
        c.consecutive = 0;
        c.escalated = false;
        let since = c.streak_since.take().unwrap_or_else(clock::now_rfc3339);
        let path = c.path.clone();
        tracing::info!(
            actor = path.as_str(),
            event = events::SUPERVISOR_CHILD_RECOVERED,
            attempt = failures,
            "child ran stable after {failures} consecutive failures"
        );
        self.publish(idx, false, false, true);
        self.audit(
            idx,
            events::SUPERVISOR_CHILD_RECOVERED,
            json!({"after_failures": failures, "was_escalated": was_escalated}),
        );
        if was_escalated {
            self.ctx.alerts.push(Alert::Recovered {
                actor: path,
                failures,
                since,
            });
        }
    }
}
