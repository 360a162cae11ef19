//! The leader actor (SPEC §4.4): holds, renews or waits for the lease on the primary, opens the collectors' gate only while this node leads, and fences itself before any other node may take over.
//!
//! The timing rule that keeps two nodes from collecting at once, with working clocks: a
//! standby takes a lock over only once its content has stood still for `stale_after` on the
//! standby's own clock, counted from when it first saw that content, which is after the
//! holder's last renewal was started. The holder counts `stale_after - margin` from the start
//! of its last successful renewal and closes its gate then (`margin` is one heartbeat), so it
//! has stopped collecting at least a margin before a standby can take over. The clocks may run
//! at rates that differ by up to `margin / (stale_after - margin)` (20 % with the defaults)
//! before that breaks; should it ever break (a clock jump, a NAS that delays a renewal past its
//! timeout and then applies it), the epoch in every record id keeps the two leaders' records
//! apart.
//!
//! Lock I/O runs on primary I/O threads of the actor's own (a busy sync never delays a
//! renewal) under `io_timeout`: a hung NAS makes renewals fail, never the actor hang.

pub mod backend;
pub mod lock;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::alert::{Alert, AlertOutbox};
use crate::audit::AuditLog;
use crate::board::{ActorState, StatusBoard};
use crate::lease::Lease;
use crate::storage::StorageHandle;
use crate::supervisor::GateSender;
use crate::{clock, events, tick_every, AbortOnDrop, Due};
use backend::{Backend, Look};
use lock::{Holder, Renewal, Staleness, Taken, Want};

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

    /// This node has seen no leader (`why`); alerts once that outlasts `stale_after + heartbeat`.
    fn no_leader(&mut self, why: &str) {
        let now = Instant::now();
        let (since, _) = self
            .none_since
            .get_or_insert_with(|| (now, clock::now_rfc3339()))
            .clone();
        let limit = self.args.stale_after + self.args.heartbeat;
        if !self.alerted && now.saturating_duration_since(since) > limit {
            self.alerted = true;
            let at = self.none_since.as_ref().map(|(_, a)| a.clone());
            tracing::error!(
                actor = "leader",
                event = events::COLLECTOR_LEADER_NONE,
                since = at.as_deref().unwrap_or(""),
                "no node has led for longer than stale_after + heartbeat ({}): {why}",
                humantime::format_duration(limit)
            );
            self.args.audit.emit(
                events::COLLECTOR_LEADER_NONE,
                Some("leader"),
                json!({"since": at, "why": why}),
            );
            self.args.alerts.push(Alert::NoLeader {
                since: at.unwrap_or_default(),
                why: why.to_string(),
            });
        }
    }

    /// A leader is seen (or we lead): the no-leader stretch ends, with a notice if it alerted.
    fn leader_seen(&mut self, node: &str) {
        if let Some((_, since)) = self.none_since.take() {
            if std::mem::take(&mut self.alerted) {
                self.args.alerts.push(Alert::LeaderBack {
                    node: node.to_string(),
                    since,
                });
            }
        }
    }

    /// Fences at `from + fence_after` unless renewal `n` is superseded by then. The gate closes
    /// from the timer's own task, not through the mailbox: the actor may be waiting out a
    /// renewal that hangs right then, and fencing must not wait for it.
    fn schedule_deadline(&self, myself: &ActorRef<LeaderMsg>, n: u64, from: Instant) {
        self.current.store(n, Ordering::SeqCst);
        let at = from + self.fence_after();
        self.args.lease.grant_until(at);
        let (me, current, gate) = (myself.clone(), self.current.clone(), self.args.gate.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            if current
                .compare_exchange(n, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                gate.set(false);
                let _ = me.cast(LeaderMsg::Deadline(n));
            }
        });
    }

    /// No renewal succeeded in time: the gate is closed already (by the deadline's timer);
    /// this node says so and stands by.
    fn fence(&mut self) {
        let me = self.term.as_ref().map(|t| t.me.clone());
        let reason = format!(
            "no renewal succeeded for {} (stale_after {} minus a heartbeat): fenced before any \
             standby may take over",
            humantime::format_duration(self.fence_after()),
            humantime::format_duration(self.args.stale_after)
        );
        self.step_down(Role::Fenced, &reason, me.as_ref());
        let e = self.last_error.clone();
        self.publish(me.as_ref(), false, e);
    }

    fn next_stamp(&mut self) -> u64 {
        self.stamp += 1;
        self.stamp
    }

    /// Leads from now on with `me`, taken when `started`.
    async fn lead(
        &mut self,
        myself: &ActorRef<LeaderMsg>,
        me: Holder,
        started: Instant,
        from: Option<Holder>,
    ) {
        // Records from here on carry the new epoch; those already sent keep theirs.
        self.args.storage.set_epoch(me.epoch).await;
        let took_over = from
            .as_ref()
            .is_some_and(|h| h.node != me.node || h.pid != me.pid);
        self.role = Role::Leader;
        let n = self.next_stamp();
        self.term = Some(Term {
            me: me.clone(),
            renewed: started,
            n,
        });
        self.schedule_deadline(myself, n, started);
        self.leader_seen(&me.node);
        self.last_error = None;
        self.args.gate.set(true);
        if took_over {
            self.args.board.update_leader(|l| l.failovers += 1);
        }
        tracing::info!(
            actor = "leader",
            event = events::COLLECTOR_LEADER_ACQUIRE,
            epoch = me.epoch,
            from = from.as_ref().map(|h| h.node.as_str()).unwrap_or(""),
            "this node leads now (epoch {}){}",
            me.epoch,
            from.as_ref()
                .map(|h| format!(", after {} (epoch {})", h.node, h.epoch))
                .unwrap_or_default()
        );
        self.args.audit.emit(
            events::COLLECTOR_LEADER_ACQUIRE,
            Some("leader"),
            json!({"epoch": me.epoch, "node": me.node, "host": me.host,
                   "from": from.as_ref().map(|h| json!({"node": h.node, "host": h.host, "epoch": h.epoch}))}),
        );
        self.publish(Some(&me), true, None);
    }

    /// Stops leading: the gate closes first, so nothing is collected under a lease we may
    /// have lost.
    fn step_down(&mut self, role: Role, reason: &str, holder: Option<&Holder>) {
        self.args.lease.revoke();
        self.args.gate.set(false);
        self.current.store(0, Ordering::SeqCst);
        let epoch = self.term.take().map(|t| t.me.epoch);
        self.role = role;
        self.seen = Staleness::default();
        tracing::warn!(
            actor = "leader",
            event = events::COLLECTOR_LEADER_DEMOTE,
            role = role.as_str(),
            epoch = epoch.unwrap_or(0),
            "this node stopped collecting ({}): {reason}",
            role.as_str()
        );
        self.args.audit.emit(
            events::COLLECTOR_LEADER_DEMOTE,
            Some("leader"),
            json!({"epoch": epoch, "role": role.as_str(), "reason": reason}),
        );
        self.publish(holder, false, None);
    }

    /// Waits (up to [`HANDOVER_WAIT`]) until no collector of this node runs: the clean point
    /// at which the lease may go to another node.
    async fn collectors_stopped(&self) -> bool {
        let deadline = Instant::now() + HANDOVER_WAIT;
        loop {
            let (doc, _) = self.args.board.snapshot();
            let running = doc.actors.iter().any(|a| {
                a.name.starts_with("collectors/")
                    && !matches!(a.state, ActorState::Stopped | ActorState::Fatal)
            });
            if !running {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Hands the lease over at a clean point: collectors stopped, then the lock released.
    async fn hand_over(&mut self, why: &str) -> Result<String, String> {
        let Some(term) = &self.term else {
            let holder = self
                .args
                .board
                .snapshot()
                .0
                .leader
                .node
                .map(|n| format!("; {n} holds the lease: run `fushi leader --release` there"))
                .unwrap_or_default();
            return Err(format!(
                "this node does not lead: there is nothing to hand over{holder}"
            ));
        };
        let me = term.me.clone();
        self.step_down(Role::Standby, why, Some(&me));
        let clean = self.collectors_stopped().await;
        let released = self.backend.release(&me).await;
        // Not taken again by this node before another had its chance.
        self.hold_off = Some(Instant::now() + self.args.stale_after);
        match released {
            Ok(()) => {
                tracing::info!(
                    actor = "leader",
                    event = events::COLLECTOR_LEADER_RELEASE,
                    epoch = me.epoch,
                    "released the lease (epoch {}): {why}",
                    me.epoch
                );
                self.args.audit.emit(
                    events::COLLECTOR_LEADER_RELEASE,
                    Some("leader"),
                    json!({"epoch": me.epoch, "reason": why, "collectors_stopped": clean}),
                );
                self.publish(None, false, None);
                Ok(format!(
                    "released the lease (epoch {}); this node stands by{}",
                    me.epoch,
                    if clean {
                        ""
                    } else {
                        " (some collectors were still stopping)"
                    }
                ))
            }
            Err(e) => {
                // It goes stale instead, and a standby takes it over then.
                let e = format!("could not remove the lock, so it goes stale instead: {e}");
                self.publish(Some(&me), false, Some(e.clone()));
                Err(e)
            }
        }
    }

    async fn tick_leader(&mut self, myself: &ActorRef<LeaderMsg>) {
        let Some(term) = &self.term else { return };
        let started = Instant::now();
        let mut next = term.me.clone();
        next.beat += 1;
        let r = self.backend.renew(&next).await;
        match r {
            Ok((Renewal::Renewed, _)) if self.current.load(Ordering::SeqCst) == 0 => {
                // It came too late: the deadline fenced meanwhile. The lock is still ours, and
                // the next look renews it as such if nobody took it over.
                self.fence();
            }
            Ok((Renewal::Renewed, want)) => {
                let n = self.next_stamp();
                let Some(term) = &mut self.term else { return };
                term.me = next.clone();
                term.renewed = started;
                term.n = n;
                self.schedule_deadline(myself, n, started);
                self.last_error = None;
                let due = self
                    .last_renew_audit
                    .is_none_or(|t| started.saturating_duration_since(t) >= RENEW_AUDIT_EVERY);
                if due {
                    self.last_renew_audit = Some(started);
                    self.args.audit.emit(
                        events::COLLECTOR_LEADER_RENEW,
                        Some("leader"),
                        json!({"epoch": next.epoch, "beat": next.beat}),
                    );
                }
                tracing::debug!(
                    actor = "leader",
                    event = events::COLLECTOR_LEADER_RENEW,
                    epoch = next.epoch,
                    beat = next.beat,
                    "renewed"
                );
                self.publish(Some(&next), true, None);
                // A node of higher priority asks, and its request is alive: hand over.
                let asking = want
                    .filter(|(w, _)| w.priority > self.args.priority && w.node != self.args.node);
                let fresh = match &asking {
                    Some((_, b)) => {
                        self.want_seen.observe(Some(b), started) < self.args.stale_after
                    }
                    None => {
                        self.want_seen.observe(None, started);
                        false
                    }
                };
                if let (Some((w, _)), true) = (asking, fresh) {
                    let why = format!("{} (priority {}) asks for the lease", w.node, w.priority);
                    let _ = self.hand_over(&why).await;
                }
            }
            Ok((Renewal::Lost(holder), _)) => {
                let reason = match &holder {
                    Some(h) => format!("the lease is {}'s now (epoch {})", h.node, h.epoch),
                    None => "the lock is gone".to_string(),
                };
                self.step_down(Role::Standby, &reason, holder.as_ref());
            }
            Err(e) => {
                let left = self
                    .term
                    .as_ref()
                    .map(|t| {
                        (t.renewed + self.fence_after()).saturating_duration_since(Instant::now())
                    })
                    .unwrap_or_default();
                self.say_error(
                    &format!(
                        "cannot renew the lease (fencing in {})",
                        humantime::format_duration(Duration::from_millis(left.as_millis() as u64))
                    ),
                    e.to_string(),
                );
                let me = self.term.as_ref().map(|t| t.me.clone());
                self.publish(
                    me.as_ref(),
                    false,
                    Some(format!("cannot renew the lease: {e}")),
                );
            }
        }
    }

    /// Takes the lock (over `stale`, when it is a stale one) with the next epoch.
    async fn take(&mut self, myself: &ActorRef<LeaderMsg>, look: &Look, stale: Option<Vec<u8>>) {
        let floor = look
            .epoch
            .max(look.lock.as_ref().map_or(0, |(h, _)| h.epoch))
            .max(self.args.storage.epoch());
        let me = self.me(floor + 1);
        let started = Instant::now();
        match self
            .backend
            .take(me, stale, self.args.storage.epoch())
            .await
        {
            Ok((Taken::Ours, me)) => {
                let from = look.lock.as_ref().map(|(h, _)| h.clone());
                self.lead(myself, me, started, from).await;
            }
            Ok((Taken::Held(h), _)) => self.publish(Some(&h), false, None),
            Ok((Taken::Contended, _)) => {}
            Err(e) => {
                // The lock may be ours after all (a reply lost on the way back): the next look
                // finds our own lock and, it being this process's, renews it.
                self.say_error("cannot take the lease", e.clone());
                self.publish(None, false, Some(format!("cannot take the lease: {e}")));
            }
        }
    }

    async fn tick_standby(&mut self, myself: &ActorRef<LeaderMsg>) {
        let now = Instant::now();
        let look = match self.backend.look().await {
            Ok(l) => l,
            Err(e) => {
                self.say_error("cannot read the leader lock", e.clone());
                self.no_leader(&format!("the lock is unreachable from this node: {e}"));
                self.publish(
                    None,
                    false,
                    Some(format!("cannot read the leader lock: {e}")),
                );
                return;
            }
        };
        if self.role == Role::Fenced {
            // The lock is within reach again: from here this node is a standby like any other.
            self.role = Role::Standby;
        }
        let held_off = self.hold_off.is_some_and(|t| now < t);
        // A node of higher priority waiting for the lease goes first.
        let yield_to = look.want.as_ref().filter(|(w, b)| {
            w.node != self.args.node
                && w.priority > self.args.priority
                && self.want_seen.observe(Some(b), now) < self.args.stale_after
        });
        if look.want.is_none() {
            self.want_seen.observe(None, now);
        }
        let Some((h, bytes)) = &look.lock else {
            self.seen.observe(None, now);
            self.no_leader("no node holds the lock");
            if held_off || yield_to.is_some() {
                self.publish(None, false, None);
                return;
            }
            self.take(myself, &look, None).await;
            return;
        };
        let mut same_name = None;
        if h.node == self.args.node {
            if h.host == self.args.host && h.pid == std::process::id() {
                // Ours (from before this actor restarted, or from before a fence): this node
                // leads again once a renewal succeeds, timed from that renewal's start.
                let mut next = h.clone();
                next.beat += 1;
                let started = Instant::now();
                match self.backend.renew(&next).await {
                    Ok((Renewal::Renewed, _)) => self.lead(myself, next, started, None).await,
                    Ok((Renewal::Lost(other), _)) => self.publish(other.as_ref(), false, None),
                    Err(e) => self.say_error("cannot renew the lease", e),
                }
                return;
            }
            if h.host == self.args.host && !alive(h.pid) {
                // This node's previous process, gone (killed): nobody else can be renewing it.
                let stale = Some(bytes.clone());
                self.take(myself, &look, stale).await;
                return;
            }
            // Under our name but not this process's, and not a dead one of this host: another
            // daemon given the same [node] id, or this node's lock from another host (a
            // re-created container, a replaced machine). Said, and judged stale like any other.
            let e = format!(
                "the lock is held under this node's name {:?} by host {} (pid {}); if that is \
                 another daemon, two daemons share one node name: give each its own [node] id",
                h.node, h.host, h.pid
            );
            self.say_error("leader election", e.clone());
            same_name = Some(e);
        }
        // An etcd lease ends by itself: a key that is there is a live holder's.
        let still = if self.backend.expires() {
            Duration::ZERO
        } else {
            self.seen.observe(Some(bytes), now)
        };
        if still >= self.args.stale_after {
            self.no_leader(&format!(
                "the lock of {} (epoch {}) has not changed for {}",
                h.node,
                h.epoch,
                humantime::format_duration(Duration::from_millis(still.as_millis() as u64))
            ));
            if held_off || yield_to.is_some() {
                self.publish(Some(h), false, same_name);
                return;
            }
            tracing::warn!(
                actor = "leader",
                event = events::COLLECTOR_LEADER_STALE_DETECTED,
                holder = h.node.as_str(),
                epoch = h.epoch,
                still_ms = still.as_millis() as u64,
                "the lock of {} (epoch {}) has not changed for {still:?}: taking over",
                h.node,
                h.epoch
            );
            self.args.audit.emit(
                events::COLLECTOR_LEADER_STALE_DETECTED,
                Some("leader"),
                json!({"holder": h.node, "host": h.host, "epoch": h.epoch, "unchanged_ms": still.as_millis() as u64}),
            );
            let stale = Some(bytes.clone());
            self.take(myself, &look, stale).await;
            return;
        }
        if still == Duration::ZERO {
            // Its content moved: a live holder.
            let node = h.node.clone();
            self.leader_seen(&node);
        }
        if self.args.priority > h.priority && !self.released_by_operator {
            self.want_beat += 1;
            let w = Want {
                node: self.args.node.clone(),
                priority: self.args.priority,
                beat: self.want_beat,
            };
            if let Err(e) = self.backend.want(&w).await {
                self.say_error("cannot ask for the lease", e);
            }
        }
        if same_name.is_none() {
            // A clean look: the next error is news again.
            self.last_error = None;
        }
        self.publish(Some(h), still == Duration::ZERO, same_name);
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
