//! What a tree's supervisors share (`TreeContext`) and what control requests name, answer and refuse (`Verb`, `ChildInfo`, `ControlError`).

use serde::{Deserialize, Serialize};

use crate::alert::AlertOutbox;
use crate::audit::AuditLog;
use crate::board::{ActorState, StatusBoard};

/// The observers every supervisor of a tree shares.
#[derive(Clone)]
pub struct TreeContext {
    pub board: StatusBoard,
    pub audit: AuditLog,
    pub alerts: AlertOutbox,
}

/// A child as `Children` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildInfo {
    pub name: String,
    pub path: String,
    pub state: ActorState,
    pub consecutive_failures: u32,
    pub escalated: bool,
    pub generation: u64,
    /// Stopped by an operator and not started since ([`ChildSpec::held`]).
    pub held: bool,
}

/// What a control request does to the children it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Start,
    Stop,
    Restart,
}

/// Why a control request was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    #[error("a child named {name:?} already exists")]
    Exists { name: String },
    #[error(
        "{path:?} is not a supervisor: only a supervisor's children can be named as {path}/NAME"
    )]
    NotASupervisor { path: String },
    #[error("{path:?} is not running; start it first (fushi start {path})")]
    NotRunning { path: String },
    #[error("{path:?} did not answer: {error}")]
    Unreachable { path: String, error: String },
    #[error("no actor named {name:?} under {supervisor:?}; known: {}", known.join(", "))]
    UnknownChild {
        name: String,
        supervisor: String,
        known: Vec<String>,
    },
    #[error(
        "{path} is one of the daemon's own actors: the daemon does not do its work without it, so it \
         is never stopped through the control socket; `fushi restart {path}` restarts it, \
         `fushi stop all` stops every collector, `fushi shutdown` stops the daemon"
    )]
    Essential { path: String },
    #[error("restart the daemon's own actors one at a time, not {} together", paths.join(", "))]
    EssentialTogether { paths: Vec<String> },
}
