//! One child's life under its supervisor: its record in the tree, a start bounded by `start_timeout`, and a stop that is graceful first, then a kill, then an abort.

use super::failure::{send_after, Exit, Failure};
use super::{ChildSpec, StartContext, SupervisorMsg, SupervisorState};
use crate::events;
use ractor::{ActorCell, ActorRef, RactorErr};
use serde_json::json;
use std::task::Poll;
use std::time::Duration;
use tokio::task::JoinHandle;

use crate::board::ActorState;

pub(super) struct Child {
    pub(super) spec: ChildSpec,
    pub(super) path: String,
    pub(super) state: ActorState,
    pub(super) cell: Option<ActorCell>,
    pub(super) task: Option<JoinHandle<()>>,
    pub(super) generation: u64,
    pub(super) consecutive: u32,
    pub(super) escalated: bool,
    pub(super) streak_since: Option<String>,
    pub(super) last_error: Option<String>,
}

impl Child {
    /// A child not started yet, under the supervisor at `parent`.
    pub(super) fn new(spec: ChildSpec, parent: &str) -> Self {
        Self {
            path: child_path(parent, &spec.name),
            spec,
            state: ActorState::Stopped,
            cell: None,
            task: None,
            generation: 0,
            consecutive: 0,
            escalated: false,
            streak_since: None,
            last_error: None,
        }
    }

    pub(super) fn alive(&self) -> bool {
        self.cell.is_some()
    }
}

fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// How long a kill may take to land before the actor's task is aborted.
pub(super) const KILL_GRACE: Duration = Duration::from_secs(1);

/// Graceful stop within `timeout`, then kill; true when the stop was graceful.
///
/// ractor's kill interrupts a hung message handler but not a hung `post_stop`; when the kill has
/// not landed within [`KILL_GRACE`], the actor's task is aborted, which drops its state (and with
/// it the process groups its guards own), so a stopped child never runs on beside its replacement.
async fn stop_cell(cell: &ActorCell, task: Option<JoinHandle<()>>, timeout: Duration) -> bool {
    match cell.stop_and_wait(Some("stop".into()), Some(timeout)).await {
        Err(RactorErr::Timeout) => {
            // Kill first: for a sub-supervisor it also takes down its children.
            cell.kill();
            if let Some(task) = task {
                let abort = task.abort_handle();
                if tokio::time::timeout(KILL_GRACE.min(timeout), task)
                    .await
                    .is_err()
                {
                    tracing::error!(event = events::SUPERVISOR_KILL_TIMEOUT, id = %cell.get_id(),
                        "child ignored its kill (hung in post_stop); aborting its task");
                    abort.abort();
                }
            }
            false
        }
        // Ok, or the actor was already gone.
        _ => true,
    }
}

impl SupervisorState {
    /// Starts child `idx` now; a failed start goes down the failure path.
    pub(super) async fn start_child(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        idx: usize,
        restart: bool,
    ) {
        self.start_child_noting(myself, idx, restart, None).await
    }

    /// [`SupervisorState::start_child`], writing down the failure it replaces (if any) only
    /// once the replacement is started.
    pub(super) async fn start_child_noting(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        idx: usize,
        restart: bool,
        failure: Option<Failure>,
    ) {
        if !self.gate_open() {
            // Closed: no child starts (nor restarts); the gate's opening starts it.
            let c = &mut self.children[idx];
            c.generation += 1;
            c.state = ActorState::Stopped;
            self.publish(idx, false, false, false);
            return;
        }
        let c = &mut self.children[idx];
        c.generation += 1;
        c.state = ActorState::Starting;
        let ctx = StartContext {
            path: c.path.clone(),
            supervisor: myself.get_cell(),
        };
        let mut fut = (c.spec.start)(ctx);
        let timeout = c.spec.start_timeout;
        if failure.is_none() {
            self.publish(idx, false, false, false);
        }
        // A start that completes without waiting, as most do, needs no timer: arming and
        // dropping one takes the timer driver's lock on the restart path.
        let result = match futures::poll!(&mut fut) {
            Poll::Ready(result) => result,
            Poll::Pending => match timeout {
                Some(t) => tokio::time::timeout(t, fut)
                    .await
                    .unwrap_or_else(|_| Err(format!("start timed out after {t:?}"))),
                None => fut.await,
            },
        };
        match result {
            Ok(started) => {
                let c = &mut self.children[idx];
                c.cell = Some(started.cell);
                c.task = Some(started.task);
                c.state = ActorState::Running;
                // Let the replacement, and whoever waits on it, run before the bookkeeping
                // below: yielding puts this task behind every task that is ready now.
                tokio::task::yield_now().await;
                if let Some(f) = failure {
                    self.note_immediate_restart(idx, &f);
                }
                let c = &mut self.children[idx];
                let (generation, attempt, stable) =
                    (c.generation, c.consecutive, c.spec.policy.stable_after);
                let (event, path) = if restart {
                    (events::SUPERVISOR_CHILD_RESTARTED, c.path.clone())
                } else {
                    (events::SUPERVISOR_CHILD_STARTED, c.path.clone())
                };
                tracing::info!(actor = path.as_str(), event, attempt, "{event}");
                self.publish(idx, restart, false, false);
                self.audit(
                    idx,
                    event,
                    json!({"attempt": attempt, "generation": generation}),
                );
                send_after(
                    myself,
                    stable,
                    SupervisorMsg::StableDue(self.children[idx].spec.name.clone(), generation),
                );
            }
            // Through on_exit, not straight to on_failure: a temporary child whose start fails
            // must not be restarted either (SPEC §3.1: temporary = never restarted).
            Err(e) => {
                if let Some(f) = failure {
                    self.note_immediate_restart(idx, &f);
                }
                Box::pin(self.on_exit(myself, idx, Exit::Failed(e.into()))).await
            }
        }
    }

    /// Stops a running child (graceful, then kill) or cancels its pending restart.
    pub(super) async fn stop_child(&mut self, idx: usize, reason: &str) {
        let c = &mut self.children[idx];
        c.generation += 1;
        let was = c.state;
        if let Some(cell) = c.cell.take() {
            c.state = ActorState::Stopping;
            let timeout = c.spec.shutdown_timeout;
            let task = c.task.take();
            self.publish(idx, false, false, false);
            let graceful = stop_cell(&cell, task, timeout).await;
            let c = &mut self.children[idx];
            c.state = ActorState::Stopped;
            tracing::info!(
                actor = c.path.as_str(),
                event = events::SUPERVISOR_CHILD_STOPPED,
                reason,
                graceful,
                "stopped"
            );
            self.publish(idx, false, false, false);
            self.audit(
                idx,
                events::SUPERVISOR_CHILD_STOPPED,
                json!({"reason": reason, "graceful": graceful}),
            );
        } else if was != ActorState::Stopped {
            c.state = ActorState::Stopped;
            self.publish(idx, false, false, false);
            self.audit(
                idx,
                events::SUPERVISOR_CHILD_STOPPED,
                json!({"reason": reason, "was": was.as_str()}),
            );
        }
    }
}
