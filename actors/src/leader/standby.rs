//! A standby's look at the lease: a live holder, a stale lock to take over, a node of higher priority to yield to or to ask for, and the alert when no node leads at all.

use ractor::ActorRef;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

use super::backend::Look;
use super::lock::{Renewal, Taken, Want};
use super::{alive, LeaderMsg, LeaderState, Role};
use crate::alert::Alert;
use crate::{clock, events};

impl LeaderState {
    /// This node has seen no leader (`why`); alerts once that outlasts `stale_after + heartbeat`.
    pub(super) fn no_leader(&mut self, why: &str) {
        let now = Instant::now();
        let (since, _) = self
            .none_since
            .get_or_insert_with(|| (now, clock::now_rfc3339()))
            .clone();
        let limit = self.args.stale_after + self.args.heartbeat;
        if !self.alerted && now.saturating_duration_since(since) > limit {
            self.alerted = true;
            let at = self.none_since.as_ref().map(|(_, a)| a.clone());
            // The alert's journald channel logs it (PRIORITY=2); a line here would say it twice.
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
    pub(super) fn leader_seen(&mut self, node: &str) {
        if let Some((_, since)) = self.none_since.take() {
            if std::mem::take(&mut self.alerted) {
                self.args.alerts.push(Alert::LeaderBack {
                    node: node.to_string(),
                    since,
                });
            }
        }
    }

    /// Takes the lock (over `stale`, when it is a stale one) with the next epoch.
    pub(super) async fn take(
        &mut self,
        myself: &ActorRef<LeaderMsg>,
        look: &Look,
        stale: Option<Vec<u8>>,
    ) {
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

    pub(super) async fn tick_standby(&mut self, myself: &ActorRef<LeaderMsg>) {
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
