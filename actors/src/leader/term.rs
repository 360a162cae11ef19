//! A term of leadership: taking it up, renewing it every heartbeat, fencing at its deadline, stepping down and handing it over at a clean point.

use ractor::ActorRef;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

use super::lock::{Holder, Renewal, Staleness};
use super::{LeaderMsg, LeaderState, Role, Term, HANDOVER_WAIT, RENEW_AUDIT_EVERY};
use crate::board::ActorState;
use crate::events;

impl LeaderState {
    /// Fences at `from + fence_after` unless renewal `n` is superseded by then. The gate closes
    /// from the timer's own task, not through the mailbox: the actor may be waiting out a
    /// renewal that hangs right then, and fencing must not wait for it.
    pub(super) fn schedule_deadline(&self, myself: &ActorRef<LeaderMsg>, n: u64, from: Instant) {
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
    pub(super) fn fence(&mut self) {
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

    pub(super) fn next_stamp(&mut self) -> u64 {
        self.stamp += 1;
        self.stamp
    }

    /// Leads from now on with `me`, taken when `started`.
    pub(super) async fn lead(
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
    pub(super) fn step_down(&mut self, role: Role, reason: &str, holder: Option<&Holder>) {
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
    /// at which the lease may go to another node. It polls the board: the board's change
    /// notice has one listener, the status actor, and a hand-over is rare and short.
    pub(super) async fn collectors_stopped(&self) -> bool {
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
    pub(super) async fn hand_over(&mut self, why: &str) -> Result<String, String> {
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

    pub(super) async fn tick_leader(&mut self, myself: &ActorRef<LeaderMsg>) {
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
}
