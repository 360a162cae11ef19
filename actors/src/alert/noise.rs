//! Noise control: which accepted alerts reach a person — repeats of an open condition held back, one notice when it ends, a flapping actor reported once and held until it settles.
//!
//! Pure and on the wall clock in milliseconds, because its state is written to the alert
//! outbox and must mean the same after a restart; the actor passes `now` in, the tests too.
//! Alertmanager dedups and repeats but refused flap detection (alertmanager#204); here an
//! actor that escalates more than `flap_count` times within `flap_window` is one message,
//! then silence until it has been quiet for `stable_after`, then one message saying how it
//! settled.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::types::{Alert, Role};

/// The `[alert]` keys noise control follows, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseConfig {
    pub repeat_after_ms: u64,
    pub flap_count: u32,
    pub flap_window_ms: u64,
    pub stable_after_ms: u64,
}

/// A condition a person was told of and has not heard the end of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Open {
    first_ms: u64,
    last_sent_ms: u64,
    suppressed: u32,
}

impl Open {
    fn at(now: u64) -> Open {
        Open {
            first_ms: now,
            last_sent_ms: now,
            suppressed: 0,
        }
    }
}

/// An actor whose alerts are held because it flaps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Held {
    since_ms: u64,
    /// Its last escalation or recovery, from which `stable_after` counts.
    last_ms: u64,
    held: u32,
    /// Its latest alert, which the settling message is about.
    last: Alert,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Flap {
    escalations: Vec<u64>,
    held: Option<Held>,
}

/// What a message says beyond its alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "note", rename_all = "snake_case")]
pub enum Note {
    Plain {
        /// A resolution: how long the condition lasted; a reminder: how long it has lasted.
        duration_ms: Option<u64>,
        /// Repeats held back since the last message about the condition.
        suppressed: u32,
    },
    /// The actor escalated `escalations` times within `window_ms`: reported once, then held.
    Flapping { escalations: u32, window_ms: u64 },
    /// A held actor was quiet for `stable_after`: `held` alerts were held back; `failing`
    /// says whether its last word was an escalation.
    Settled {
        held: u32,
        failing: bool,
        since_ms: u64,
    },
}

impl Note {
    /// The note of an alert that is news: no history, nothing held back.
    pub fn fresh() -> Note {
        Note::Plain {
            duration_ms: None,
            suppressed: 0,
        }
    }
}

/// Why an alert was not sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Why {
    /// The condition is open and was told of less than `repeat_after` ago.
    Repeat { count: u32 },
    /// A resolution of something no person was told of (or already told the end of).
    NothingOpen,
    /// The actor flaps; its alerts wait for it to settle.
    Flapping { held: u32 },
}

impl Why {
    pub fn reason(&self) -> &'static str {
        match self {
            Why::Repeat { .. } => "repeat",
            Why::NothingOpen => "nothing_open",
            Why::Flapping { .. } => "flapping",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Send(Note),
    Suppress(Why),
}

/// Noise control's whole state; serialisable, so that the outbox carries it across restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Noise {
    open: BTreeMap<String, Open>,
    flaps: BTreeMap<String, Flap>,
    /// One-off events ([`Role::Event`]) by key: when last sent, and repeats held since.
    #[serde(default)]
    events: BTreeMap<String, Open>,
}

impl Noise {
    /// Decides on an alert accepted at `now`, and remembers it.
    pub fn accept(&mut self, alert: &Alert, now: u64, cfg: &NoiseConfig) -> Decision {
        let role = alert.role();
        if let Some(d) = self.flap(alert, now, cfg) {
            self.track(&role, now);
            return d;
        }
        self.events
            .retain(|_, e| now.saturating_sub(e.last_sent_ms) < cfg.repeat_after_ms);
        match role {
            Role::Once => Decision::Send(Note::fresh()),
            Role::Event(key) => match self.events.get_mut(&key) {
                Some(e) => {
                    e.suppressed += 1;
                    Decision::Suppress(Why::Repeat {
                        count: e.suppressed,
                    })
                }
                None => {
                    self.events.insert(key, Open::at(now));
                    Decision::Send(Note::fresh())
                }
            },
            Role::Opens(key) => match self.open.get_mut(&key) {
                Some(o) if now.saturating_sub(o.last_sent_ms) < cfg.repeat_after_ms => {
                    o.suppressed += 1;
                    Decision::Suppress(Why::Repeat {
                        count: o.suppressed,
                    })
                }
                Some(o) => {
                    // Still open after `repeat_after`: a reminder, saying for how long.
                    let note = Note::Plain {
                        duration_ms: Some(now.saturating_sub(o.first_ms)),
                        suppressed: o.suppressed,
                    };
                    o.last_sent_ms = now;
                    o.suppressed = 0;
                    Decision::Send(note)
                }
                None => {
                    self.open.insert(key, Open::at(now));
                    Decision::Send(Note::fresh())
                }
            },
            Role::Resolves(keys) => {
                let ended: Vec<Open> = keys.iter().filter_map(|k| self.open.remove(k)).collect();
                match ended.iter().map(|o| o.first_ms).min() {
                    None => Decision::Suppress(Why::NothingOpen),
                    Some(first) => Decision::Send(Note::Plain {
                        duration_ms: Some(now.saturating_sub(first)),
                        suppressed: ended.iter().map(|o| o.suppressed).sum(),
                    }),
                }
            }
        }
    }

    /// Open and close conditions without a message: what a held actor's alerts still do, so
    /// that the end of a condition is told once the actor settles.
    fn track(&mut self, role: &Role, now: u64) {
        match role {
            Role::Opens(key) => {
                self.open.entry(key.clone()).or_insert(Open::at(now));
            }
            Role::Resolves(keys) => keys.iter().for_each(|k| {
                self.open.remove(k);
            }),
            Role::Once | Role::Event(_) => {}
        }
    }

    /// Flap detection, for the supervisor's escalations and recoveries of one actor.
    fn flap(&mut self, alert: &Alert, now: u64, cfg: &NoiseConfig) -> Option<Decision> {
        let escalation = match alert {
            Alert::Escalation { .. } => true,
            Alert::Recovered { .. } => false,
            _ => return None,
        };
        let f = self.flaps.entry(alert.actor().to_string()).or_default();
        if escalation {
            f.escalations
                .retain(|t| now.saturating_sub(*t) < cfg.flap_window_ms);
            f.escalations.push(now);
        }
        if let Some(h) = &mut f.held {
            h.held += 1;
            h.last_ms = now;
            h.last = alert.clone();
            return Some(Decision::Suppress(Why::Flapping { held: h.held }));
        }
        if escalation && f.escalations.len() as u32 > cfg.flap_count {
            f.held = Some(Held {
                since_ms: now,
                last_ms: now,
                held: 0,
                last: alert.clone(),
            });
            return Some(Decision::Send(Note::Flapping {
                escalations: f.escalations.len() as u32,
                window_ms: cfg.flap_window_ms,
            }));
        }
        None
    }

    /// Held actors quiet for `stable_after` at `now`: released, each with its settling note.
    pub fn settle(&mut self, now: u64, cfg: &NoiseConfig) -> Vec<(Alert, Note)> {
        let mut out = Vec::new();
        for f in self.flaps.values_mut() {
            let Some(h) = &f.held else { continue };
            if now.saturating_sub(h.last_ms) < cfg.stable_after_ms {
                continue;
            }
            let failing = matches!(h.last, Alert::Escalation { .. });
            out.push((
                h.last.clone(),
                Note::Settled {
                    held: h.held,
                    failing,
                    since_ms: h.since_ms,
                },
            ));
            f.held = None;
            f.escalations.clear();
        }
        self.flaps
            .retain(|_, f| f.held.is_some() || !f.escalations.is_empty());
        out
    }

    /// When the next held actor may settle (wall-clock ms), if one is held.
    pub fn next_settle(&self, cfg: &NoiseConfig) -> Option<u64> {
        self.flaps
            .values()
            .filter_map(|f| f.held.as_ref())
            .map(|h| h.last_ms + cfg.stable_after_ms)
            .min()
    }

    /// Whether `actor` is held as flapping (for status).
    pub fn flapping(&self) -> Vec<String> {
        self.flaps
            .iter()
            .filter(|(_, f)| f.held.is_some())
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// The conditions open now, by key.
    pub fn open(&self) -> Vec<String> {
        self.open.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn cfg() -> NoiseConfig {
        NoiseConfig {
            repeat_after_ms: 30 * MIN,
            flap_count: 3,
            flap_window_ms: 30 * MIN,
            stable_after_ms: 10 * MIN,
        }
    }

    fn esc(actor: &str) -> Alert {
        Alert::Escalation {
            actor: actor.into(),
            failures: 4,
            last_error: Some("boom".into()),
            since: "t".into(),
        }
    }

    fn rec(actor: &str) -> Alert {
        Alert::Recovered {
            actor: actor.into(),
            failures: 4,
            since: "t".into(),
        }
    }

    fn sent(d: &Decision) -> bool {
        matches!(d, Decision::Send(_))
    }

    #[test]
    fn a_repeat_within_repeat_after_is_held_back_and_counted_in_the_one_recovered_notice() {
        let (mut n, c) = (Noise::default(), cfg());
        assert!(sent(&n.accept(&esc("a"), 0, &c)));
        assert_eq!(
            n.accept(&esc("a"), MIN, &c),
            Decision::Suppress(Why::Repeat { count: 1 })
        );
        assert!(
            sent(&n.accept(&esc("b"), MIN, &c)),
            "another actor's alert is its own"
        );
        assert_eq!(
            n.accept(&rec("a"), 5 * MIN, &c),
            Decision::Send(Note::Plain {
                duration_ms: Some(5 * MIN),
                suppressed: 1
            })
        );
        assert_eq!(
            n.accept(&rec("a"), 6 * MIN, &c),
            Decision::Suppress(Why::NothingOpen),
            "one recovered notice"
        );
    }

    #[test]
    fn a_condition_still_open_after_repeat_after_is_told_again_with_its_age() {
        let (mut n, c) = (Noise::default(), cfg());
        n.accept(&esc("a"), 0, &c);
        assert_eq!(
            n.accept(&esc("a"), 31 * MIN, &c),
            Decision::Send(Note::Plain {
                duration_ms: Some(31 * MIN),
                suppressed: 0
            })
        );
    }

    #[test]
    fn an_actor_that_flaps_is_reported_once_held_and_settles_with_one_message() {
        let (mut n, c) = (Noise::default(), cfg());
        let mut t = 0;
        let mut decisions = Vec::new();
        for _ in 0..6 {
            decisions.push(n.accept(&esc("a"), t, &c));
            t += MIN;
            decisions.push(n.accept(&rec("a"), t, &c));
            t += MIN;
        }
        // Three cycles told as they happened, the fourth escalation is the flapping report.
        assert!(decisions[..6].iter().all(sent), "{decisions:?}");
        assert_eq!(
            decisions[6],
            Decision::Send(Note::Flapping {
                escalations: 4,
                window_ms: 30 * MIN
            })
        );
        assert!(decisions[7..]
            .iter()
            .all(|d| matches!(d, Decision::Suppress(Why::Flapping { .. }))));
        assert_eq!(n.flapping(), ["a"]);
        let last = t - MIN;
        assert_eq!(n.next_settle(&c), Some(last + 10 * MIN));
        assert!(n.settle(last + 10 * MIN - 1, &c).is_empty());
        let settled = n.settle(last + 10 * MIN, &c);
        assert_eq!(settled.len(), 1);
        assert_eq!(
            settled[0].1,
            Note::Settled {
                held: 5,
                failing: false,
                since_ms: 6 * MIN
            }
        );
        assert!(n.flapping().is_empty());
        assert!(n.open().is_empty(), "it settled recovered: nothing open");
        assert!(
            sent(&n.accept(&esc("a"), last + 11 * MIN, &c)),
            "a fresh start after settling"
        );
    }

    #[test]
    fn a_held_actor_that_stays_down_settles_as_failing_and_its_recovery_is_told() {
        let (mut n, c) = (Noise::default(), cfg());
        let mut t = 0;
        for _ in 0..4 {
            n.accept(&esc("a"), t, &c);
            n.accept(&rec("a"), t + 1, &c);
            t += MIN;
        }
        n.accept(&esc("a"), t, &c);
        let settled = n.settle(t + 10 * MIN, &c);
        assert!(matches!(settled[0].1, Note::Settled { failing: true, .. }));
        assert!(sent(&n.accept(&rec("a"), t + 20 * MIN, &c)));
    }

    #[test]
    fn a_one_off_event_is_held_within_repeat_after_and_sent_fresh_after_it() {
        let (mut n, c) = (Noise::default(), cfg());
        let back = Alert::DaemonRecovered { why: "x".into() };
        assert!(sent(&n.accept(&back, 0, &c)));
        assert_eq!(
            n.accept(&back, MIN, &c),
            Decision::Suppress(Why::Repeat { count: 1 })
        );
        assert_eq!(
            n.accept(&back, 31 * MIN, &c),
            Decision::Send(Note::Plain {
                duration_ms: None,
                suppressed: 0
            }),
            "a new event, not a reminder of an old one"
        );
        assert!(n.open().is_empty(), "an event is never an open condition");
    }

    #[test]
    fn every_giving_up_is_news_and_opens_nothing() {
        let (mut n, c) = (Noise::default(), cfg());
        let fatal = Alert::Fatal {
            actor: "a".into(),
            failures: 5,
            last_error: None,
        };
        assert!(sent(&n.accept(&fatal, 0, &c)));
        assert!(
            sent(&n.accept(&fatal, MIN, &c)),
            "given up again after a manual start"
        );
        assert!(n.open().is_empty());
    }

    #[test]
    fn noise_state_survives_a_round_trip_through_json() {
        let (mut n, c) = (Noise::default(), cfg());
        n.accept(&esc("a"), 0, &c);
        let back: Noise = serde_json::from_str(&serde_json::to_string(&n).unwrap()).unwrap();
        assert_eq!(back, n);
    }
}
