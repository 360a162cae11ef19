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
//!
//! This file is the actor and its messages. A child's start and stop are in `child.rs`, the
//! failure path (restart, backoff, siblings, escalation, the stable reset) in `failure.rs`, the
//! operator verbs in `control.rs`; the policy types in `policy.rs`, child specs in `spec.rs`.

mod child;
mod control;
mod failure;
mod gate;
mod policy;
mod spec;
mod types;

pub use gate::{gate, Gate, GateSender};
pub use policy::{RestartKind, RestartPolicy, Strategy};
use spec::start_error;
pub use spec::{ChildSpec, StartContext, StartFn, StartFuture, Started};
pub use types::{ChildInfo, ControlError, TreeContext, Verb};

use crate::events;
use child::Child;
use failure::Exit;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use std::time::Duration;

use crate::board::ActorState;
use crate::clock;
#[derive(Clone)]
pub struct SupervisorArgs {
    /// This supervisor's tree path; empty for the root.
    pub path: String,
    pub strategy: Strategy,
    pub children: Vec<ChildSpec>,
    pub ctx: TreeContext,
    /// Children run only while this is open (the collectors of a standby node do not).
    pub gate: Option<Gate>,
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
    /// The gate opened (true) or closed.
    Gate(bool),
}

pub struct SupervisorState {
    path: String,
    strategy: Strategy,
    children: Vec<Child>,
    ctx: TreeContext,
    gate: Option<Gate>,
    _gate_watch: Option<crate::AbortOnDrop>,
}

pub struct SupervisorActor;

impl SupervisorState {
    fn index(&self, name: &str) -> Option<usize> {
        self.children.iter().position(|c| c.spec.name == name)
    }

    fn index_of_cell(&self, id: ActorId) -> Option<usize> {
        self.children
            .iter()
            .position(|c| c.cell.as_ref().is_some_and(|cell| cell.get_id() == id))
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
            _gate_watch: args.gate.as_ref().map(|g| g.watch(myself.clone())),
            gate: args.gate,
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
            SupervisorMsg::Gate(open) => state.gate_moved(&myself, open).await,
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
