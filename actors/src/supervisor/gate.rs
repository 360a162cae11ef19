//! A supervisor's gate: while it is closed the supervisor's children are stopped and none is started (a standby node's collectors); opening it starts every child an operator did not stop.
//!
//! The gate's state lives outside the supervisor, in a watch channel whose sender the owner
//! keeps (the leader actor, across its own restarts), so a restarted supervisor starts from
//! the gate as it is, like every other actor starting from its arguments.

use ractor::ActorRef;
use tokio::sync::watch;

use super::{SupervisorMsg, SupervisorState};
use crate::board::ActorState;
use crate::AbortOnDrop;

/// The owner's end: opens and closes the gate.
#[derive(Clone)]
pub struct GateSender(std::sync::Arc<watch::Sender<bool>>);

/// The supervisor's end, in its arguments.
#[derive(Clone)]
pub struct Gate(watch::Receiver<bool>);

/// A gate, closed or open to begin with.
pub fn gate(open: bool) -> (GateSender, Gate) {
    let (tx, rx) = watch::channel(open);
    (GateSender(std::sync::Arc::new(tx)), Gate(rx))
}

impl GateSender {
    pub fn set(&self, open: bool) {
        self.0.send_replace(open);
    }
}

impl Gate {
    pub fn is_open(&self) -> bool {
        *self.0.borrow()
    }

    /// Tells the supervisor each time the gate moves, for as long as the returned guard lives.
    pub(super) fn watch(&self, myself: ActorRef<SupervisorMsg>) -> AbortOnDrop {
        let mut rx = self.0.clone();
        AbortOnDrop(tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let open = *rx.borrow_and_update();
                if myself.cast(SupervisorMsg::Gate(open)).is_err() {
                    break;
                }
            }
        }))
    }
}

impl SupervisorState {
    /// Whether children may start: no gate, or an open one.
    pub(super) fn gate_open(&self) -> bool {
        self.gate.as_ref().is_none_or(Gate::is_open)
    }

    /// The gate moved: closed, every running child stops (in reverse order, not held: it
    /// starts again when the gate opens); open, every child not stopped by an operator starts.
    pub(super) async fn gate_moved(&mut self, myself: &ActorRef<SupervisorMsg>, open: bool) {
        if open {
            for i in 0..self.children.len() {
                let c = &self.children[i];
                if !c.spec.held() && c.state == ActorState::Stopped {
                    self.start_child(myself, i, false).await;
                }
            }
        } else {
            for i in (0..self.children.len()).rev() {
                if self.children[i].state != ActorState::Stopped {
                    self.stop_child(i, "the node is not the leader").await;
                }
            }
        }
    }
}
