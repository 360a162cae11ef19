//! The leader actor (SPEC §4.4): holds, renews or waits for the lease (a lock on the primary, or an etcd lease), opens the collectors' gate only while this node leads, and fences itself before any other node may take over.
//!
//! The timing rule that keeps two nodes from collecting at once, with working clocks: a
//! standby takes a lock over only once its content has stood still for `stale_after` on the
//! standby's own clock, counted from when it first saw that content, which is after the
//! holder's last renewal was started (on etcd, once etcd expired the lease, which lasts at
//! least as long). The holder counts `stale_after - margin` from the start of its last
//! successful renewal (`margin` is one heartbeat) and stops taking records in then: the gate
//! closes from the deadline's own timer, and the record sink checks the same deadline at every
//! submit (`crate::lease`), so neither a collector slow to stop nor a process frozen past the
//! deadline slips a record in. The clocks may run at rates that differ by up to
//! `margin / (stale_after - margin)` (20 % with the defaults) before that breaks; should it
//! ever, the epoch in every record id keeps the two leaders' records apart.
//!
//! `term.rs` is a term of leadership (renewals, fencing, hand-over), `standby.rs` a standby's
//! look at the lease, `backend.rs` where the lease lives, `lock.rs` the file backend's lock.

pub mod backend;
pub mod lock;
mod standby;
mod term;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::alert::AlertOutbox;
use crate::audit::AuditLog;
use crate::board::StatusBoard;
use crate::lease::Lease;
use crate::storage::StorageHandle;
use crate::supervisor::GateSender;
use crate::{clock, events, tick_every, AbortOnDrop, Due};
use backend::Backend;
use lock::{Holder, Staleness};

/// At most one `collector.leader.renew` audit record this often: a renewal every heartbeat
/// would bury everything else in the audit log.
const RENEW_AUDIT_EVERY: Duration = Duration::from_secs(600);
/// How long a hand-over waits for this node's collectors to stop before releasing anyway.
const HANDOVER_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct LeaderActor;

#[derive(Clone)]
pub struct LeaderArgs {
    /// Where the lease lives: the primary's `locks/`, or etcd.
    pub backend: LeaderBackendArgs,
    pub node: String,
    pub host: String,
    pub priority: i32,
    pub heartbeat: Duration,
    pub stale_after: Duration,
    pub io_timeout: Duration,
    /// The collectors' gate: open only while this node leads.
    pub gate: GateSender,
    /// What the record sink checks: records are taken in only until the fence deadline.
    pub lease: Lease,
    pub storage: StorageHandle,
    pub board: StatusBoard,
    pub audit: AuditLog,
    pub alerts: AlertOutbox,
}

/// The backend a leader actor (re)builds in `pre_start`.
#[derive(Clone, Debug)]
pub enum LeaderBackendArgs {
    /// The lock file under the primary store's root.
    File {
        primary: std::path::PathBuf,
    },
    Etcd {
        endpoints: Vec<String>,
    },
}

pub enum LeaderMsg {
    Tick(Due),
    /// The fencing deadline set after renewal number `.0`.
    Deadline(u64),
    /// `fushi leader --release`: hand the lease over now.
    Release(RpcReplyPort<Result<String, String>>),
}

/// This node's part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Standby,
    Leader,
    /// Could not renew in time and stopped collecting; stands by from here.
    Fenced,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Standby => "standby",
            Role::Leader => "leader",
            Role::Fenced => "fenced",
        }
    }
}

/// The lease while this node holds it.
struct Term {
    me: Holder,
    /// When the last successful renewal (or the take) started.
    renewed: Instant,
    /// Renewals so far; a deadline set after an older one is void.
    n: u64,
}

pub struct LeaderState {
    args: LeaderArgs,
    backend: Backend,
    role: Role,
    term: Option<Term>,
    /// How long the lock's content has stood still, on this node's clock.
    seen: Staleness,
    /// The same for a standing request of a node of higher priority.
    want_seen: Staleness,
    /// Our own request's counter, while we ask for the lease.
    want_beat: u64,
    /// After a release: this node takes no lock before then, so that another may.
    hold_off: Option<Instant>,
    /// Since when this node has seen no leader (no lock, a stale one, or none reachable).
    none_since: Option<(Instant, String)>,
    /// The no-leader alert went out for the current stretch.
    alerted: bool,
    last_renew_audit: Option<Instant>,
    /// The last lock error said, so that one outage is logged once, not every heartbeat.
    last_error: Option<String>,
    /// Counts takes and renewals across terms; [`Term::n`] is the latest one's.
    stamp: u64,
    /// The stamp whose deadline may fence, shared with the deadline timers; 0 when not leading.
    current: Arc<AtomicU64>,
    /// An operator released the lease here: this node no longer asks for it by its priority
    /// (it still takes a lock nobody holds), until it restarts.
    released_by_operator: bool,
    _ticker: AbortOnDrop,
}

/// Whether a process `pid` runs on this host.
fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence; EPERM means it exists under another user.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

impl LeaderState {
    fn fence_after(&self) -> Duration {
        self.args
            .stale_after
            .saturating_sub(self.args.heartbeat)
            .max(self.args.heartbeat)
    }

    fn me(&self, epoch: u64) -> Holder {
        Holder {
            host: self.args.host.clone(),
            node: self.args.node.clone(),
            pid: std::process::id(),
            epoch,
            started_at: clock::now_rfc3339(),
            heartbeat_ms: self.args.heartbeat.as_millis() as u64,
            beat: 0,
            priority: self.args.priority,
        }
    }

    fn publish(&self, holder: Option<&Holder>, renewed: bool, error: Option<String>) {
        let role = self.role;
        let epoch = holder.map_or_else(|| self.args.storage.epoch().max(1), |h| h.epoch);
        let none_since = self
            .none_since
            .as_ref()
            .filter(|_| self.alerted)
            .map(|(_, at)| at.clone());
        let holder = holder.cloned();
        let stale_ms = self.args.stale_after.as_millis() as u64;
        self.args.board.update_leader(|l| {
            l.enabled = true;
            l.stale_after_ms = stale_ms;
            l.role = role.as_str().into();
            let same = holder
                .as_ref()
                .is_some_and(|h| l.node.as_deref() == Some(&h.node) && l.epoch == h.epoch);
            if let Some(h) = &holder {
                if !same {
                    l.since = Some(h.started_at.clone());
                }
                l.node = Some(h.node.clone());
                l.host = Some(h.host.clone());
            } else {
                l.node = None;
                l.host = None;
                l.since = None;
                l.renewed_at = None;
            }
            l.epoch = epoch;
            if renewed || (holder.is_some() && !same) {
                l.renewed_at = Some(clock::now_rfc3339());
            }
            l.error = error;
            l.none_since = none_since;
        });
    }

    fn say_error(&mut self, what: &str, e: String) {
        if self.last_error.as_deref() != Some(e.as_str()) {
            tracing::warn!(
                actor = "leader",
                event = events::COLLECTOR_LEADER_UNREACHABLE,
                error = e.as_str(),
                role = self.role.as_str(),
                "{what}: {e}"
            );
            self.args.audit.emit(
                events::COLLECTOR_LEADER_UNREACHABLE,
                Some("leader"),
                json!({"error": e, "role": self.role.as_str()}),
            );
            self.last_error = Some(e);
        }
    }
}

impl Actor for LeaderActor {
    type Msg = LeaderMsg;
    type State = LeaderState;
    type Arguments = LeaderArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<LeaderMsg>,
        args: LeaderArgs,
    ) -> Result<LeaderState, ActorProcessingErr> {
        // Whatever this actor did before it restarted, nothing collects until the lock says
        // this node leads.
        args.lease.revoke();
        args.gate.set(false);
        // Twice a heartbeat: a standby sees a renewal within half a heartbeat of it, which
        // takes that much off a failover; the leader renews every other tick.
        let ticker = tick_every(myself.clone(), args.heartbeat / 2, LeaderMsg::Tick);
        let backend = match &args.backend {
            LeaderBackendArgs::File { primary } => Backend::file(primary, args.io_timeout),
            LeaderBackendArgs::Etcd { endpoints } => Backend::etcd(
                endpoints.clone(),
                args.stale_after,
                args.heartbeat,
                args.io_timeout,
            ),
        };
        let state = LeaderState {
            backend,
            role: Role::Standby,
            term: None,
            seen: Staleness::default(),
            want_seen: Staleness::default(),
            want_beat: 0,
            hold_off: None,
            none_since: None,
            alerted: false,
            last_renew_audit: None,
            last_error: None,
            stamp: 0,
            current: Arc::default(),
            released_by_operator: false,
            _ticker: ticker,
            args,
        };
        state.publish(None, false, None);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<LeaderMsg>,
        msg: LeaderMsg,
        state: &mut LeaderState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LeaderMsg::Tick(_due) => match state.role {
                Role::Leader => {
                    // Every other tick: a renewal a heartbeat after the last one's start.
                    let since = state
                        .term
                        .as_ref()
                        .map(|t| Instant::now().saturating_duration_since(t.renewed));
                    if since.is_none_or(|d| d >= state.args.heartbeat * 3 / 4) {
                        state.tick_leader(&myself).await
                    }
                }
                Role::Standby | Role::Fenced => state.tick_standby(&myself).await,
            },
            LeaderMsg::Deadline(n) => {
                let due = state.term.as_ref().is_some_and(|t| t.n == n);
                if due && state.role == Role::Leader {
                    state.fence();
                }
            }
            LeaderMsg::Release(reply) => {
                let r = state
                    .hand_over("released by an operator (fushi leader --release)")
                    .await
                    .map(|m| {
                        state.released_by_operator = true;
                        if state.args.priority > 0 {
                            format!("{m}; it does not ask for the lease back by its priority until it restarts")
                        } else {
                            m
                        }
                    });
                let _ = reply.send(r);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<LeaderMsg>,
        state: &mut LeaderState,
    ) -> Result<(), ActorProcessingErr> {
        // An ordered stop (the daemon shutting down, after the collectors): the lease goes at
        // once instead of going stale, so a standby takes over without waiting.
        if let Some(term) = state.term.take() {
            state.args.lease.revoke();
            state.args.gate.set(false);
            match state.backend.release(&term.me).await {
                Ok(()) => {
                    state.args.audit.emit(
                        events::COLLECTOR_LEADER_RELEASE,
                        Some("leader"),
                        json!({"epoch": term.me.epoch, "reason": "the daemon stops"}),
                    );
                }
                Err(e) => {
                    tracing::warn!(actor = "leader", event = events::COLLECTOR_LEADER_RELEASE,
                    error = %e, "could not release the lease at stop; it goes stale instead")
                }
            }
        }
        Ok(())
    }
}
