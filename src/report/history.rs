//! What the audit log says happened in a window: per actor its restarts, failures, escalations, fatal stops and recoveries and how long each failure took to recover from; the daemon's own crashes; operators' orders; storage switches; leader failovers.
//!
//! Pure: it takes the events and the window, so a test can script a history whose answers are
//! known. Events before the window still set the scene (a primary down since yesterday counts
//! from the window's start), but only what happens inside it is counted.

use fushi_actors::audit::AuditEvent;
use fushi_actors::{clock, events};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Time-to-recover figures of a set of samples, in ms (nearest-rank percentiles).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Spread {
    pub samples: usize,
    pub mean: Option<u64>,
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub max: Option<u64>,
}

impl Spread {
    pub fn of(samples: &[u64]) -> Self {
        let mut s = samples.to_vec();
        s.sort_unstable();
        let rank = |q: f64| {
            let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
            s[i - 1]
        };
        if s.is_empty() {
            return Self::default();
        }
        Self {
            samples: s.len(),
            mean: Some(s.iter().sum::<u64>() / s.len() as u64),
            p50: Some(rank(0.50)),
            p95: Some(rank(0.95)),
            max: s.last().copied(),
        }
    }
}

/// One actor's figures (or the sum over every actor).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActorHistory {
    pub restarts: u64,
    pub failures: u64,
    pub escalations: u64,
    pub fatal_stops: u64,
    pub recovered: u64,
    /// From a failure to the actor running again, one per recovery.
    pub recover_ms: Vec<u64>,
}

impl ActorHistory {
    fn add(&mut self, o: &ActorHistory) {
        self.restarts += o.restarts;
        self.failures += o.failures;
        self.escalations += o.escalations;
        self.fatal_stops += o.fatal_stops;
        self.recovered += o.recovered;
        self.recover_ms.extend_from_slice(&o.recover_ms);
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaemonHistory {
    pub starts: u64,
    /// Starts that found the previous daemon ended without a clean shutdown.
    pub crashes_recovered: u64,
    /// From the crashed daemon's last status write to the next one's ready.
    pub recover_ms: Vec<u64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub actors: BTreeMap<String, ActorHistory>,
    pub daemon: DaemonHistory,
    /// Operators' orders (control socket, SIGHUP) by action.
    pub manual: BTreeMap<String, u64>,
    pub storage_switches: u64,
    /// Time with the primary down, so that records went to the local journal only.
    pub secondary_ms: u64,
    pub leader_failovers: u64,
    /// From the old leader's last renewal (as the standby saw it) to this node leading.
    pub failover_ms: Vec<u64>,
    /// Events in the window.
    pub events: usize,
    /// Lines whose `ts` is not a time: not placed in any window.
    pub untimed: usize,
}

impl History {
    pub fn total(&self) -> ActorHistory {
        let mut t = ActorHistory::default();
        for a in self.actors.values() {
            t.add(a);
        }
        t
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The figures of `[since_ms, until_ms]`, from events in file order (which is time order: one
/// writer appends them).
pub fn history(events: &[AuditEvent], since_ms: u64, until_ms: u64) -> History {
    let mut h = History::default();
    // Failures not yet recovered from, by actor: when the first of the run happened.
    let mut failing: BTreeMap<&str, u64> = BTreeMap::new();
    let mut down_since: Option<u64> = None;
    // The recovering daemon's predecessor's last sign of life.
    let mut crashed_at: Option<u64> = None;
    let mut stale: Option<(u64, u64)> = None;
    let inside = |t: u64| (since_ms..=until_ms).contains(&t);
    let close_down = |from: &mut Option<u64>, to: u64, h: &mut History| {
        if let Some(from) = from.take() {
            let (a, b) = (from.max(since_ms), to.min(until_ms));
            h.secondary_ms += b.saturating_sub(a);
        }
    };
    for e in events {
        let Some(t) = clock::parse_ms(&e.ts) else {
            h.untimed += 1;
            continue;
        };
        if t > until_ms {
            break;
        }
        let counted = inside(t);
        h.events += usize::from(counted);
        let actor = e.actor.as_deref().unwrap_or("");
        let mut bump = |f: fn(&mut ActorHistory) -> &mut u64| {
            if counted {
                *f(h.actors.entry(actor.to_string()).or_default()) += 1;
            }
        };
        match e.event.as_str() {
            events::SUPERVISOR_CHILD_FAILED => {
                bump(|a| &mut a.failures);
                failing.entry(actor).or_insert(t);
            }
            events::SUPERVISOR_CHILD_RESTARTED => {
                bump(|a| &mut a.restarts);
                if let Some(t0) = failing.remove(actor) {
                    if inside(t0) {
                        let a = h.actors.entry(actor.to_string()).or_default();
                        a.recover_ms.push(t - t0);
                    }
                }
            }
            events::SUPERVISOR_CHILD_ESCALATED => bump(|a| &mut a.escalations),
            events::SUPERVISOR_CHILD_RECOVERED => bump(|a| &mut a.recovered),
            events::SUPERVISOR_CHILD_FATAL => {
                bump(|a| &mut a.fatal_stops);
                failing.remove(actor);
            }
            // Stopped by an operator or with the daemon: no longer a failure to recover from.
            events::SUPERVISOR_CHILD_STOPPED => {
                failing.remove(actor);
            }
            events::DAEMON_STARTED => {
                if counted {
                    h.daemon.starts += 1;
                }
                // A new process starts every actor afresh: that is not an actor's recovery.
                failing.clear();
                close_down(&mut down_since, t, &mut h);
                crashed_at = None;
            }
            events::DAEMON_STOPPED => close_down(&mut down_since, t, &mut h),
            events::DAEMON_RECOVERED => {
                if counted {
                    h.daemon.crashes_recovered += 1;
                }
                crashed_at = text(&e.payload, "last_seen").and_then(clock::parse_ms);
            }
            events::DAEMON_READY => {
                if let Some(t0) = crashed_at.take() {
                    if counted {
                        h.daemon.recover_ms.push(t.saturating_sub(t0));
                    }
                }
            }
            events::CONTROL_ACTION if counted => {
                let action = text(&e.payload, "action").unwrap_or("unknown");
                *h.manual.entry(action.to_string()).or_default() += 1;
            }
            events::COLLECTOR_STORAGE_SWITCH => {
                h.storage_switches += u64::from(counted);
                match text(&e.payload, "to") {
                    Some("down") => {
                        down_since.get_or_insert(t);
                    }
                    _ => close_down(&mut down_since, t, &mut h),
                }
            }
            events::COLLECTOR_LEADER_STALE_DETECTED => {
                let unchanged = e.payload.get("unchanged_ms").and_then(Value::as_u64);
                stale = Some((t, unchanged.unwrap_or(0)));
            }
            events::COLLECTOR_LEADER_ACQUIRE => {
                let me = text(&e.payload, "node");
                let from = e.payload.get("from").and_then(|f| text(f, "node"));
                let seen_stale = stale.take();
                if counted && from.is_some() && from != me {
                    h.leader_failovers += 1;
                    if let Some((ts, unchanged)) = seen_stale {
                        h.failover_ms.push(unchanged + t.saturating_sub(ts));
                    }
                }
            }
            _ => {}
        }
    }
    close_down(&mut down_since, until_ms, &mut h);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Seconds into the scripted day, as the audit log writes a time.
    fn at(s: u64) -> String {
        clock::rfc3339_ms(DAY + s * 1000)
    }
    const DAY: u64 = 1_780_000_000_000;

    fn ev(s: u64, event: &str, actor: Option<&str>, payload: Value) -> AuditEvent {
        AuditEvent {
            ts: at(s),
            event: event.into(),
            node: "n1".into(),
            actor: actor.map(Into::into),
            payload,
        }
    }

    fn window(events: &[AuditEvent], from: u64, to: u64) -> History {
        history(events, DAY + from * 1000, DAY + to * 1000)
    }

    #[test]
    fn a_scripted_history_gives_the_figures_it_was_written_with() {
        use events::*;
        let x = Some("collectors/x");
        let y = Some("collectors/y");
        let e = vec![
            ev(0, DAEMON_STARTED, None, json!({})),
            ev(1, DAEMON_READY, None, json!({})),
            // x: fails, backs off 5 s, runs again: 5 s to recover.
            ev(10, SUPERVISOR_CHILD_FAILED, x, json!({})),
            ev(10, SUPERVISOR_CHILD_RESTART_SCHEDULED, x, json!({})),
            ev(15, SUPERVISOR_CHILD_RESTARTED, x, json!({})),
            // x again: the restart fails once more; the run counts from its first failure.
            ev(100, SUPERVISOR_CHILD_FAILED, x, json!({})),
            ev(105, SUPERVISOR_CHILD_FAILED, x, json!({})),
            ev(105, SUPERVISOR_CHILD_ESCALATED, x, json!({})),
            ev(120, SUPERVISOR_CHILD_RESTARTED, x, json!({})),
            ev(120, SUPERVISOR_CHILD_RESTARTED, x, json!({})),
            ev(400, SUPERVISOR_CHILD_RECOVERED, x, json!({})),
            // y: fails for good.
            ev(200, SUPERVISOR_CHILD_FAILED, y, json!({})),
            ev(230, SUPERVISOR_CHILD_FATAL, y, json!({})),
            ev(300, CONTROL_ACTION, None, json!({"action": "start"})),
            ev(301, SUPERVISOR_CHILD_STARTED, y, json!({})),
            // The primary is down from 500 to 530.
            ev(
                500,
                COLLECTOR_STORAGE_SWITCH,
                Some("sync"),
                json!({"from": "up", "to": "down"}),
            ),
            ev(
                530,
                COLLECTOR_STORAGE_SWITCH,
                Some("sync"),
                json!({"from": "down", "to": "up"}),
            ),
            // The daemon is killed; its last status write was at 600, the next is ready at 607.
            ev(606, DAEMON_STARTED, None, json!({})),
            ev(606, DAEMON_RECOVERED, None, json!({"last_seen": at(600)})),
            ev(607, DAEMON_READY, None, json!({})),
            ev(700, CONTROL_ACTION, None, json!({"action": "reload"})),
            ev(701, CONTROL_ACTION, None, json!({"action": "start"})),
            // A failover: the old leader's lock unchanged for 9 s when seen, taken 1 s later.
            ev(
                800,
                COLLECTOR_LEADER_STALE_DETECTED,
                Some("leader"),
                json!({"unchanged_ms": 9000}),
            ),
            ev(
                801,
                COLLECTOR_LEADER_ACQUIRE,
                Some("leader"),
                json!({"node": "n1", "from": {"node": "n2"}}),
            ),
            // This node's own first lease is no failover.
            ev(
                802,
                COLLECTOR_LEADER_ACQUIRE,
                Some("leader"),
                json!({"node": "n1", "from": null}),
            ),
        ];
        let h = window(&e, 0, 1000);
        let x = &h.actors["collectors/x"];
        assert_eq!(
            (
                x.failures,
                x.restarts,
                x.escalations,
                x.recovered,
                x.fatal_stops
            ),
            (3, 3, 1, 1, 0)
        );
        assert_eq!(x.recover_ms, vec![5_000, 20_000]);
        let y = &h.actors["collectors/y"];
        assert_eq!((y.failures, y.fatal_stops, y.restarts), (1, 1, 0));
        assert!(y.recover_ms.is_empty(), "a fatal actor did not recover");
        let t = h.total();
        assert_eq!((t.failures, t.restarts, t.fatal_stops), (4, 3, 1));
        assert_eq!(h.daemon.starts, 2);
        assert_eq!(h.daemon.crashes_recovered, 1);
        assert_eq!(h.daemon.recover_ms, vec![7_000]);
        assert_eq!(
            h.manual,
            BTreeMap::from([("reload".into(), 1), ("start".into(), 2)])
        );
        assert_eq!((h.storage_switches, h.secondary_ms), (2, 30_000));
        assert_eq!(
            (h.leader_failovers, h.failover_ms.clone()),
            (1, vec![10_000])
        );

        let spread = Spread::of(&t.recover_ms);
        assert_eq!(
            spread,
            Spread {
                samples: 2,
                mean: Some(12_500),
                p50: Some(5_000),
                p95: Some(20_000),
                max: Some(20_000)
            }
        );
    }

    #[test]
    fn the_window_counts_what_happens_inside_it_and_clips_what_straddles_it() {
        use events::*;
        let x = Some("collectors/x");
        let e = vec![
            ev(10, SUPERVISOR_CHILD_FAILED, x, json!({})),
            ev(
                50,
                COLLECTOR_STORAGE_SWITCH,
                Some("sync"),
                json!({"to": "down"}),
            ),
            ev(110, SUPERVISOR_CHILD_RESTARTED, x, json!({})),
            ev(150, SUPERVISOR_CHILD_FAILED, x, json!({})),
            ev(155, SUPERVISOR_CHILD_RESTARTED, x, json!({})),
            ev(500, SUPERVISOR_CHILD_FAILED, x, json!({})),
        ];
        let h = window(&e, 100, 200);
        let x = &h.actors["collectors/x"];
        // The failure at 10 is before the window: its restart counts, its time to recover not.
        assert_eq!((x.failures, x.restarts), (1, 2));
        assert_eq!(x.recover_ms, vec![5_000]);
        // Down since before the window and still down at its end: the whole window.
        assert_eq!(h.secondary_ms, 100_000);
        assert_eq!(h.storage_switches, 0);
        assert_eq!(h.events, 3);
    }

    #[test]
    fn a_new_daemon_is_not_an_actors_recovery_and_an_untimed_line_is_counted_apart() {
        use events::*;
        let x = Some("collectors/x");
        let mut bad = ev(2, SUPERVISOR_CHILD_FAILED, x, json!({}));
        bad.ts = "yesterday".into();
        let e = vec![
            ev(1, SUPERVISOR_CHILD_FAILED, x, json!({})),
            bad,
            ev(5, DAEMON_STARTED, None, json!({})),
            ev(6, SUPERVISOR_CHILD_STARTED, x, json!({})),
            ev(7, SUPERVISOR_CHILD_RESTARTED, x, json!({})),
        ];
        let h = window(&e, 0, 100);
        assert!(h.actors["collectors/x"].recover_ms.is_empty());
        assert_eq!(h.untimed, 1);
        assert_eq!(Spread::of(&[]), Spread::default());
        assert_eq!(Spread::of(&[7]).p95, Some(7));
    }
}
