//! The restarting supervisor of SPEC §3.1, built on ractor's own supervision events.
//!
//! ractor links actors and reports `ActorFailed`/`ActorTerminated` to the parent, but has no
//! restarting supervisor. The third-party `ractor-supervisor` crate has none of what fushi
//! promises: no escalation after N consecutive failures, children killed without a graceful stop,
//! and a 10 ms sleep to dodge registry-name clashes on restart. So this module builds its own:
//!
//! - Children are never registered in ractor's global registry. A child's identity is its tree
//!   path, held here; the live incarnation is matched by `ActorId`. A replacement therefore never
//!   races the registry entry of the actor it replaces, and several trees can share one process
//!   (which the paused-clock tests rely on).
//! - Children start inline and in list order, as OTP's supervisor does (ractor runs `pre_start`
//!   in the caller of `spawn_linked`); `start_timeout` bounds a hung `pre_start`, which then counts
//!   as a failed start. A failed start is a restart failure, never a reason to give up.
//! - Stops are graceful first (`stop_and_wait` with `shutdown_timeout`), then a kill, and when
//!   the kill cannot land (ractor cannot interrupt a hung `post_stop`) the child's task is aborted.
//!   A supervisor stops its children in reverse order in its own `post_stop`, so a stop of the
//!   tree cascades in order.
//! - Every scheduled restart carries the child's generation; a stop or restart ordered during the
//!   backoff bumps it, so the pending restart finds itself stale and does nothing.
//! - Transitions are written to the [`StatusBoard`] and the [`AuditLog`] and escalations to the
//!   [`AlertOutbox`]; none of them touches the disk on this path, which keeps a zero-backoff
//!   restart in the microseconds.

mod policy;
mod spec;
mod types;

pub use policy::{RestartKind, RestartPolicy, Strategy};
use spec::start_error;
pub use spec::{ChildSpec, StartContext, StartFn, StartFuture, Started};
pub use types::{ChildInfo, ControlError, TreeContext, Verb};

use crate::events;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RactorErr, RpcReplyPort,
    SupervisionEvent,
};
use serde_json::json;
use std::task::Poll;
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;

use crate::alert::Alert;
use crate::board::ActorState;
use crate::clock;
#[derive(Clone)]
pub struct SupervisorArgs {
    /// This supervisor's tree path; empty for the root.
    pub path: String,
    pub strategy: Strategy,
    pub children: Vec<ChildSpec>,
    pub ctx: TreeContext,
}

impl ChildSpec {
    /// A child that is itself a supervisor of `children`; its path is filled in at start.
    pub fn supervisor(name: impl Into<String>, args: SupervisorArgs) -> Self {
        let mut spec = Self::new(name, move |ctx: StartContext| {
            let mut args = args.clone();
            args.path = ctx.path;
            Box::pin(async move {
                SupervisorActor::spawn_linked(None, SupervisorActor, args, ctx.supervisor)
                    .await
                    .map(|(r, task)| Started {
                        cell: r.get_cell(),
                        task,
                    })
                    .map_err(start_error)
            })
        });
        spec.start_timeout = None;
        spec.supervisor = true;
        // Its own post_stop stops its children one by one; give it time for that.
        spec.shutdown_timeout = Duration::from_secs(60);
        spec
    }
}

pub enum SupervisorMsg {
    /// A backoff elapsed: restart these children (name, generation at scheduling), in order.
    RestartDue(Vec<(String, u64)>),
    /// A child started at `generation` may have run `stable_after` without failing.
    StableDue(String, u64),
    Start(Vec<String>, RpcReplyPort<Result<(), ControlError>>),
    Stop(Vec<String>, RpcReplyPort<Result<(), ControlError>>),
    Restart(Vec<String>, RpcReplyPort<Result<(), ControlError>>),
    /// Start, stop or restart children by tree path: `name`, `sub/name`, `sub/*`, `all`.
    Control(Verb, Vec<String>, RpcReplyPort<Result<(), ControlError>>),
    Children(RpcReplyPort<Vec<ChildInfo>>),
    /// Adds a child at the end and starts it (a collector added to the config).
    Add(ChildSpec, RpcReplyPort<Result<(), ControlError>>),
    /// Stops a child and forgets it (a collector removed from the config).
    Remove(String, RpcReplyPort<Result<(), ControlError>>),
    /// Stops the child of the spec's name and puts the spec in its place (a collector changed
    /// in the config): same position, and still stopped if an operator stopped it.
    Replace(ChildSpec, RpcReplyPort<Result<(), ControlError>>),
    /// The live supervisor child `name`, to reach its own children.
    Supervisor(String, RpcReplyPort<Option<ActorRef<SupervisorMsg>>>),
    /// The live actor at tree path `a/b/c` (routed through the sub-supervisors on the way).
    Cell(String, RpcReplyPort<Option<ActorCell>>),
    /// Answers while the supervisor's loop runs; the watchdog relies on it.
    Ping(RpcReplyPort<()>),
}

struct Child {
    spec: ChildSpec,
    path: String,
    state: ActorState,
    cell: Option<ActorCell>,
    task: Option<JoinHandle<()>>,
    generation: u64,
    consecutive: u32,
    escalated: bool,
    streak_since: Option<String>,
    last_error: Option<String>,
}

impl Child {
    /// A child not started yet, under the supervisor at `parent`.
    fn new(spec: ChildSpec, parent: &str) -> Self {
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

    fn alive(&self) -> bool {
        self.cell.is_some()
    }
}

pub struct SupervisorState {
    path: String,
    strategy: Strategy,
    children: Vec<Child>,
    ctx: TreeContext,
}

/// A child's failure, as decided at once and written down later (see `on_failure`).
struct Failure {
    /// Consecutive failures, this one included.
    n: u32,
    /// Rendered only when written down: formatting is no work for the restart to wait on.
    error: ActorProcessingErr,
    at: SystemTime,
    /// This failure escalates (the first of the streak to reach `escalate_after`).
    escalate: bool,
    delay: Duration,
    /// The dead incarnation's cell and task, freed with the failure: after the replacement runs.
    _remains: Remains,
}

/// What is left of a child's dead incarnation.
type Remains = (Option<ActorCell>, Option<JoinHandle<()>>);

pub struct SupervisorActor;

enum Exit {
    Failed(ActorProcessingErr),
    Stopped(Option<String>),
}

fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// What LAST ERROR says about a permanent child that ended without failing. ractor gives a
/// killed actor the reason "killed": the supervisor kills only children it is stopping, whose
/// exits it no longer watches, so a kill it sees came from elsewhere (`fushi inject crash`).
fn exit_reason(reason: Option<&str>) -> String {
    match reason {
        Some("killed") => "killed from outside its supervisor (e.g. `fushi inject crash`)".into(),
        Some(r) => format!("stopped by itself ({r})"),
        None => "stopped by itself, giving no reason".into(),
    }
}

fn send_after(myself: &ActorRef<SupervisorMsg>, d: Duration, msg: SupervisorMsg) {
    let me = myself.clone();
    tokio::spawn(async move {
        tokio::time::sleep(d).await;
        // A dead supervisor has nothing left to restart.
        let _ = me.cast(msg);
    });
}

/// How long a kill may take to land before the actor's task is aborted.
const KILL_GRACE: Duration = Duration::from_secs(1);

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
    fn index(&self, name: &str) -> Option<usize> {
        self.children.iter().position(|c| c.spec.name == name)
    }

    fn index_of_cell(&self, id: ActorId) -> Option<usize> {
        self.children
            .iter()
            .position(|c| c.cell.as_ref().is_some_and(|cell| cell.get_id() == id))
    }

    fn resolve(&self, names: &[String]) -> Result<Vec<usize>, ControlError> {
        let mut out = Vec::new();
        for name in names {
            if name == "all" || name == "*" {
                out.extend(0..self.children.len());
                continue;
            }
            match self.index(name) {
                Some(i) => out.push(i),
                None => {
                    return Err(ControlError::UnknownChild {
                        name: name.clone(),
                        supervisor: if self.path.is_empty() {
                            "fushi".into()
                        } else {
                            self.path.clone()
                        },
                        known: self.children.iter().map(|c| c.spec.name.clone()).collect(),
                    })
                }
            }
        }
        // Keep the first occurrence of each child: `dedup` alone only drops adjacent repeats, so
        // `restart a b a` (or `all a`) restarted `a` twice.
        let mut seen = std::collections::HashSet::new();
        out.retain(|&i| seen.insert(i));
        Ok(out)
    }

    fn publish(&self, idx: usize, restarted: bool, failed: bool, recovered: bool) {
        let c = &self.children[idx];
        let (state, consecutive, escalated) = (c.state, c.consecutive, c.escalated);
        let last_error = c.last_error.clone();
        let restart = c.spec.restart.as_str();
        self.ctx.board.update(&c.path, |a| {
            if a.state != state {
                a.since = Some(clock::now_rfc3339());
            }
            a.state = state;
            a.restart = restart.into();
            a.consecutive_failures = consecutive;
            a.escalated = escalated;
            a.last_error = last_error;
            a.restarts += u64::from(restarted);
            a.failures += u64::from(failed);
            a.recovered += u64::from(recovered);
            if state != ActorState::Backoff {
                a.next_restart_at = None;
            }
        });
    }

    fn audit(&self, idx: usize, event: &str, payload: serde_json::Value) {
        self.ctx
            .audit
            .emit(event, Some(&self.children[idx].path), payload);
    }

    /// Starts child `idx` now; a failed start goes down the failure path.
    async fn start_child(&mut self, myself: &ActorRef<SupervisorMsg>, idx: usize, restart: bool) {
        self.start_child_noting(myself, idx, restart, None).await
    }

    /// [`SupervisorState::start_child`], writing down the failure it replaces (if any) only
    /// once the replacement is started.
    async fn start_child_noting(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        idx: usize,
        restart: bool,
        failure: Option<Failure>,
    ) {
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
    async fn stop_child(&mut self, idx: usize, reason: &str) {
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

    async fn on_exit(&mut self, myself: &ActorRef<SupervisorMsg>, idx: usize, exit: Exit) {
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
    fn note_immediate_restart(&mut self, idx: usize, f: &Failure) {
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

    async fn restart_due(&mut self, myself: &ActorRef<SupervisorMsg>, due: Vec<(String, u64)>) {
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

    fn stable_due(&mut self, name: &str, generation: u64) {
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

    /// Applies `verb` to children named by tree path; `head/rest` is handed to child supervisor
    /// `head`. Names are checked before anything is done, so a typo changes nothing.
    async fn control(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        verb: Verb,
        names: Vec<String>,
    ) -> Result<(), ControlError> {
        let (nested, local): (Vec<String>, Vec<String>) =
            names.into_iter().partition(|n| n.contains('/'));
        let idxs = self.resolve(&local)?;
        self.check_essential(verb, &idxs)?;
        let mut routes: Vec<(usize, String)> = Vec::new();
        for name in nested {
            let (head, rest) = name.split_once('/').unwrap_or((&name, ""));
            let idx = self.resolve(&[head.to_string()])?[0];
            let c = &self.children[idx];
            if !c.spec.supervisor {
                return Err(ControlError::NotASupervisor {
                    path: c.path.clone(),
                });
            }
            if c.cell.is_none() {
                return Err(ControlError::NotRunning {
                    path: c.path.clone(),
                });
            }
            routes.push((idx, rest.to_string()));
        }
        for (idx, rest) in routes {
            let c = &self.children[idx];
            let Some(cell) = c.cell.clone() else {
                return Err(ControlError::NotRunning {
                    path: c.path.clone(),
                });
            };
            let sub: ActorRef<SupervisorMsg> = cell.into();
            let path = c.path.clone();
            match ractor::call!(sub, |reply| SupervisorMsg::Control(verb, vec![rest], reply)) {
                Ok(res) => res?,
                Err(e) => {
                    return Err(ControlError::Unreachable {
                        path,
                        error: e.to_string(),
                    })
                }
            }
        }
        match verb {
            Verb::Stop => {
                for &i in idxs.iter().rev() {
                    self.children[i].spec.hold(true);
                    self.stop_child(i, "requested").await;
                }
            }
            Verb::Start => {
                for &i in &idxs {
                    let c = &mut self.children[i];
                    c.spec.hold(false);
                    if matches!(c.state, ActorState::Stopped | ActorState::Fatal) {
                        // A manual start is a fresh start: the failure streak is forgiven.
                        c.consecutive = 0;
                        c.escalated = false;
                        self.start_child(myself, i, false).await;
                    }
                }
            }
            Verb::Restart => {
                for &i in idxs.iter().rev() {
                    self.stop_child(i, "restart requested").await;
                }
                for &i in &idxs {
                    // The operator starts it again: what they stopped before is forgiven.
                    self.children[i].spec.hold(false);
                    self.start_child(myself, i, true).await;
                }
            }
        }
        Ok(())
    }

    /// Refuses a stop of the daemon's own actors, and a restart of several at once: with
    /// `control` or `storage` down the request that asked for it could not even be answered.
    fn check_essential(&self, verb: Verb, idxs: &[usize]) -> Result<(), ControlError> {
        let essential: Vec<String> = idxs
            .iter()
            .map(|&i| &self.children[i])
            .filter(|c| c.spec.essential)
            .map(|c| c.path.clone())
            .collect();
        match (verb, &essential[..]) {
            (Verb::Stop, [path, ..]) => Err(ControlError::Essential { path: path.clone() }),
            (Verb::Restart, [_, _, ..]) => {
                Err(ControlError::EssentialTogether { paths: essential })
            }
            _ => Ok(()),
        }
    }

    fn info(&self) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|c| ChildInfo {
                name: c.spec.name.clone(),
                path: c.path.clone(),
                state: c.state,
                consecutive_failures: c.consecutive,
                escalated: c.escalated,
                generation: c.generation,
                held: c.spec.held(),
            })
            .collect()
    }
}

impl Actor for SupervisorActor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let children = args
            .children
            .into_iter()
            .map(|spec| Child::new(spec, &args.path))
            .collect();
        let mut state = SupervisorState {
            path: args.path,
            strategy: args.strategy,
            children,
            ctx: args.ctx,
        };
        for idx in 0..state.children.len() {
            let c = &state.children[idx];
            if c.spec.held() {
                // An operator stopped it under this supervisor's previous incarnation; a restart
                // of the parent is not theirs to undo.
                tracing::info!(
                    actor = c.path.as_str(),
                    event = events::SUPERVISOR_CHILD_HELD,
                    "left stopped: stopped by the operator until `fushi start`"
                );
                state.publish(idx, false, false, false);
                continue;
            }
            // A sibling's failed start under one_for_all may already have scheduled this one.
            if c.state == ActorState::Stopped {
                state.start_child(&myself, idx, false).await;
            }
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::RestartDue(due) => state.restart_due(&myself, due).await,
            SupervisorMsg::StableDue(name, generation) => state.stable_due(&name, generation),
            SupervisorMsg::Stop(names, reply) => {
                let _ = reply.send(state.control(&myself, Verb::Stop, names).await);
            }
            SupervisorMsg::Start(names, reply) => {
                let _ = reply.send(state.control(&myself, Verb::Start, names).await);
            }
            SupervisorMsg::Restart(names, reply) => {
                let _ = reply.send(state.control(&myself, Verb::Restart, names).await);
            }
            SupervisorMsg::Control(verb, names, reply) => {
                let _ = reply.send(state.control(&myself, verb, names).await);
            }
            SupervisorMsg::Children(reply) => {
                let _ = reply.send(state.info());
            }
            SupervisorMsg::Add(spec, reply) => {
                if state.index(&spec.name).is_some() {
                    let _ = reply.send(Err(ControlError::Exists {
                        name: spec.name.clone(),
                    }));
                    return Ok(());
                }
                let child = Child::new(spec, &state.path);
                state.children.push(child);
                let idx = state.children.len() - 1;
                state.start_child(&myself, idx, false).await;
                let _ = reply.send(Ok(()));
            }
            SupervisorMsg::Remove(name, reply) => {
                let res = state
                    .resolve(std::slice::from_ref(&name))
                    .map(|idxs| idxs[0]);
                if let Ok(idx) = res {
                    state.stop_child(idx, "removed from the config").await;
                    let gone = state.children.remove(idx);
                    state.ctx.board.remove(&gone.path);
                }
                let _ = reply.send(res.map(|_| ()));
            }
            SupervisorMsg::Replace(spec, reply) => {
                let res = state
                    .resolve(std::slice::from_ref(&spec.name))
                    .map(|idxs| idxs[0]);
                if let Ok(idx) = res {
                    state
                        .stop_child(idx, "changed in the config: replaced")
                        .await;
                    let held = state.children[idx].spec.held();
                    spec.hold(held);
                    let mut child = Child::new(spec, &state.path);
                    // Its history (restarts, recovered) stays on the board under the same path.
                    child.last_error = state.children[idx].last_error.take();
                    state.children[idx] = child;
                    if held {
                        state.publish(idx, false, false, false);
                    } else {
                        state.start_child(&myself, idx, false).await;
                    }
                }
                let _ = reply.send(res.map(|_| ()));
            }
            SupervisorMsg::Cell(path, reply) => {
                let (head, rest) = match path.split_once('/') {
                    Some((h, r)) => (h.to_string(), Some(r.to_string())),
                    None => (path.clone(), None),
                };
                let child = state.index(&head).map(|i| &state.children[i]);
                let found = match (child, rest) {
                    (Some(c), None) => c.cell.clone(),
                    (Some(c), Some(rest)) if c.spec.supervisor => match c.cell.clone() {
                        Some(cell) => {
                            let sub: ActorRef<SupervisorMsg> = cell.into();
                            ractor::call!(sub, |r| SupervisorMsg::Cell(rest, r))
                                .ok()
                                .flatten()
                        }
                        None => None,
                    },
                    _ => None,
                };
                let _ = reply.send(found);
            }
            SupervisorMsg::Supervisor(name, reply) => {
                let sub = state
                    .index(&name)
                    .map(|i| &state.children[i])
                    .filter(|c| c.spec.supervisor)
                    .and_then(|c| c.cell.clone())
                    .map(ActorRef::from);
                let _ = reply.send(sub);
            }
            SupervisorMsg::Ping(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (id, exit) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (cell.get_id(), Exit::Failed(err)),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell.get_id(), Exit::Stopped(reason))
            }
            _ => return Ok(()),
        };
        // Unknown ids are incarnations this supervisor already stopped or replaced.
        if let Some(idx) = state.index_of_cell(id) {
            state.on_exit(&myself, idx, exit).await;
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        for idx in (0..state.children.len()).rev() {
            state.stop_child(idx, "shutdown").await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_steps_then_stays_at_last() {
        let p = RestartPolicy {
            jitter: Duration::ZERO,
            ..RestartPolicy::default()
        };
        let got: Vec<u64> = (1..=6).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(got, [5, 10, 15, 15, 15, 15]);
    }

    #[test]
    fn jitter_stays_in_range() {
        let p = RestartPolicy::default();
        for n in 1..200 {
            let d = p.delay(n);
            let base = p.base_delay(n);
            assert!(
                d >= base && d < base + Duration::from_secs(1),
                "{d:?} for n={n}"
            );
        }
    }
}
