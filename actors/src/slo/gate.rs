//! The decisions of one SLO gate, free of I/O and clocks: a judged window moves its state (streak, warn, incident, phase) and says what to audit, alert and run.
//!
//! The actor persists the state after each call and only then carries out the effects, so that
//! a crash between the two repeats a decision rather than losing it, and never repeats a
//! rollback: its intent is part of the state written first.
//!
//! Audit policy: `slo.warn` and `slo.violation` are audited for every window so judged; `slo.ok`
//! and `slo.no_data` only when the verdict changes (and `slo.ok` again when the gate becomes
//! promotable), so a healthy SLO writes one line, not one per window.

use serde_json::{json, Value};

use super::spec::{Phase, SloSpec};
use super::state::{Incident, RollbackRun, SloState, PAST_KEPT};
use super::window::{judge, Judged, Verdict, WindowAcc};
use crate::alert::{SloAlert, SloVerdict};
use crate::events;

/// What the actor does after persisting the state.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Audit {
        event: &'static str,
        payload: Value,
    },
    Alert(SloAlert),
    /// Run the rollback of this incident (its intent is in the state already).
    Rollback {
        incident: String,
    },
}

/// One SLO: its spec and its persisted state.
#[derive(Debug, Clone)]
pub struct Gate {
    pub spec: SloSpec,
    pub state: SloState,
}

/// Why `fushi slo promote` refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromoteError {
    #[error("SLO {name} is in phase C already: there is no phase after it")]
    Last { name: String },
    #[error("SLO {name} has no threshold for phase {next} (add {next} = … to its thresholds)")]
    NoThreshold { name: String, next: Phase },
    #[error("SLO {name} is not promotable yet: {streak} of {need} consecutive ok windows in phase {phase}")]
    NotYet {
        name: String,
        streak: u32,
        need: u32,
        phase: Phase,
    },
    #[error("SLO {name} has an open incident ({id}): it is promoted only after it closes")]
    Incident { name: String, id: String },
}

/// The argv as it may be shown (secrets masked), one string.
pub fn shown_cmd(argv: &[String]) -> String {
    crate::collectors::command::masked_argv(argv).join(" ")
}

impl Gate {
    /// The gate from its spec and what its file held; the state must be persisted (returned
    /// `true`) when this changed it, before the effects are carried out.
    pub fn new(spec: SloSpec, found: Option<SloState>, now: &str) -> (Gate, Vec<Effect>, bool) {
        let Some(mut state) = found else {
            let state = SloState::new(&spec.name, spec.phase);
            return (Gate { spec, state }, Vec::new(), true);
        };
        let mut effects = Vec::new();
        let mut dirty = false;
        if state.config_phase != spec.phase || spec.threshold(state.phase).is_none() {
            // The operator moved the gate in the file (or took away the threshold of the phase it
            // was in): the file's phase wins, the streak starts again.
            tracing::info!(
                actor = "analyzer",
                slo = spec.name.as_str(),
                from = state.phase.as_str(),
                to = spec.phase.as_str(),
                "phase set by the config"
            );
            state.phase = spec.phase;
            state.config_phase = spec.phase;
            state.good_streak = 0;
            dirty = true;
        }
        let gate_name = spec.name.clone();
        if let Some(inc) = state.incident.as_mut() {
            if let Some(run) = inc.rollback.as_mut().filter(|r| !r.done()) {
                run.interrupted = true;
                run.finished_at = Some(now.to_string());
                let error = format!(
                    "the daemon stopped while the rollback of incident {} ran (started {}): its \
                     outcome is unknown and it is not run again for this incident; check by hand \
                     whether `{}` completed",
                    inc.id,
                    run.started_at,
                    shown_cmd(&run.argv)
                );
                run.error = Some(error.clone());
                effects.push(Effect::Audit {
                    event: events::SLO_ROLLBACK,
                    payload: json!({
                        "slo": gate_name, "incident": inc.id, "cmd": shown_cmd(&run.argv),
                        "exit_code": null, "outcome": "interrupted", "rerun": false,
                        "started_at": run.started_at, "error": error,
                    }),
                });
                dirty = true;
            }
        }
        let gate = Gate { spec, state };
        if let Some(inc) = &gate.state.incident {
            if let Some(run) = inc.rollback.as_ref().filter(|r| r.interrupted && dirty) {
                effects.push(Effect::Alert(gate.rollback_alert(inc, run)));
            }
        }
        (gate, effects, dirty)
    }

    /// Whether `fushi slo promote` would move the gate on now.
    pub fn promotable(&self) -> bool {
        self.promote_check().is_ok()
    }

    fn promote_check(&self) -> Result<Phase, PromoteError> {
        let name = self.spec.name.clone();
        let phase = self.state.phase;
        let next = phase
            .next()
            .ok_or(PromoteError::Last { name: name.clone() })?;
        if self.spec.threshold(next).is_none() {
            return Err(PromoteError::NoThreshold { name, next });
        }
        if let Some(inc) = &self.state.incident {
            return Err(PromoteError::Incident {
                name,
                id: inc.id.clone(),
            });
        }
        if self.state.good_streak < self.spec.promote_after {
            return Err(PromoteError::NotYet {
                name,
                streak: self.state.good_streak,
                need: self.spec.promote_after,
                phase,
            });
        }
        Ok(next)
    }

    /// `fushi slo promote`: on one phase; the caller persists, then audits the returned payload.
    pub fn promote(&mut self) -> Result<Effect, PromoteError> {
        let next = self.promote_check()?;
        let from = self.state.phase;
        let streak = self.state.good_streak;
        self.state.phase = next;
        self.state.good_streak = 0;
        self.state.warned = false;
        Ok(Effect::Audit {
            event: events::SLO_PROMOTE,
            payload: json!({
                "slo": self.spec.name, "from": from, "to": next, "good_windows": streak,
                "threshold": self.spec.threshold(next),
            }),
        })
    }

    fn alert(&self, verdict: SloVerdict, j: &Judged, why: String) -> SloAlert {
        SloAlert {
            verdict,
            slo: self.spec.name.clone(),
            stream: self.spec.stream.clone(),
            kind: self.spec.kind.as_str().into(),
            phase: j.phase.as_str().into(),
            metric: self.spec.metric(),
            value: j.value.unwrap_or(0.0),
            threshold: j.threshold,
            window: format!("{}/{}", j.start, j.end),
            incident: None,
            rollback_required: false,
            cmd: None,
            exit_code: None,
            error: None,
            why,
        }
    }

    fn rollback_alert(&self, inc: &Incident, run: &RollbackRun) -> SloAlert {
        let cmd = shown_cmd(&run.argv);
        let why = match (&run.error, run.exit_code) {
            (Some(e), _) => format!("rollback `{cmd}` of incident {}: {e}", inc.id),
            (None, code) => format!(
                "rollback `{cmd}` of incident {} ran (exit {}); phase {} → {}",
                inc.id,
                code.map_or("?".into(), |c| c.to_string()),
                inc.phase_from,
                inc.phase_to
            ),
        };
        let last = self
            .state
            .past
            .iter()
            .rev()
            .find(|j| format!("{}/{}", j.start, j.end) == inc.window);
        SloAlert {
            verdict: SloVerdict::Rollback,
            slo: self.spec.name.clone(),
            stream: self.spec.stream.clone(),
            kind: self.spec.kind.as_str().into(),
            phase: inc.phase_from.as_str().into(),
            metric: self.spec.metric(),
            value: last.and_then(|j| j.value).unwrap_or(0.0),
            threshold: last.map_or(0.0, |j| j.threshold),
            window: inc.window.clone(),
            incident: Some(inc.id.clone()),
            rollback_required: true,
            cmd: Some(cmd),
            exit_code: run.exit_code,
            error: run.error.clone(),
            why,
        }
    }

    fn audit(&self, event: &'static str, j: &Judged, extra: Value) -> Effect {
        let mut payload = json!({
            "slo": self.spec.name, "stream": self.spec.stream, "kind": self.spec.kind.as_str(),
            "phase": j.phase, "window": format!("{}/{}", j.start, j.end), "value": j.value,
            "threshold": j.threshold, "records": j.records, "late": j.late, "why": j.why,
        });
        if let (Value::Object(p), Value::Object(e)) = (&mut payload, extra) {
            p.extend(e);
        }
        Effect::Audit { event, payload }
    }

    /// Judges the window starting at `start_ms` from what it saw, at wall time `now`.
    pub fn close(&mut self, start_ms: i64, acc: &WindowAcc, now: &str) -> Vec<Effect> {
        let j = judge(&self.spec, self.state.phase, start_ms, acc);
        let prev = self.state.last().map(|p| p.verdict);
        let was_promotable = self.promotable();
        self.state.judged_until_ms = Some(start_ms + self.spec.window_ms());
        *self.state.verdicts.entry(j.verdict).or_default() += 1;
        self.state.past.push_back(j.clone());
        while self.state.past.len() > PAST_KEPT {
            self.state.past.pop_front();
        }
        let mut out = Vec::new();
        match j.verdict {
            Verdict::Ok => {
                self.state.good_streak += 1;
                let promotable = self.promotable();
                if prev != Some(Verdict::Ok) || (promotable && !was_promotable) {
                    let extra =
                        json!({"good_windows": self.state.good_streak, "promotable": promotable});
                    out.push(self.audit(events::SLO_OK, &j, extra));
                }
                let closed = self.state.incident.take();
                if self.state.warned || closed.is_some() {
                    let why = match &closed {
                        Some(inc) => format!("{}; incident {} is closed", j.why, inc.id),
                        None => format!("{}; no longer near its threshold", j.why),
                    };
                    let mut a = self.alert(SloVerdict::Ok, &j, why);
                    a.incident = closed.map(|i| i.id);
                    out.push(Effect::Alert(a));
                }
                self.state.warned = false;
            }
            Verdict::Warn => {
                self.state.good_streak = 0;
                out.push(self.audit(
                    events::SLO_WARN,
                    &j,
                    json!({"delay": j.delayed(&self.spec)}),
                ));
                if !self.state.warned && self.state.incident.is_none() {
                    let why = if j.delayed(&self.spec) {
                        format!("collection delay in {}: {}", self.spec.stream, j.why)
                    } else {
                        format!("nearing its limit: {}", j.why)
                    };
                    out.push(Effect::Alert(self.alert(SloVerdict::Warn, &j, why)));
                }
                self.state.warned = true;
            }
            Verdict::Violation => {
                self.state.good_streak = 0;
                if let Some(inc) = &self.state.incident {
                    // The same incident goes on: audited, but no new alert, step or rollback.
                    let extra = json!({"incident": inc.id, "incident_open": true});
                    out.push(self.audit(events::SLO_VIOLATION, &j, extra));
                } else {
                    out.extend(self.open_incident(&j, now));
                }
            }
            Verdict::NoData => {
                self.state.good_streak = 0;
                if prev != Some(Verdict::NoData) {
                    out.push(self.audit(events::SLO_NO_DATA, &j, json!({})));
                }
            }
        }
        out
    }

    fn open_incident(&mut self, j: &Judged, now: &str) -> Vec<Effect> {
        self.state.incidents += 1;
        let id = format!("{}-{}", self.spec.name, self.state.incidents);
        let from = self.state.phase;
        let back = from.back();
        // One phase back only, and only to a phase the config gives a threshold.
        let to = if self.spec.threshold(back).is_some() {
            back
        } else {
            from
        };
        self.state.phase = to;
        self.state.warned = false;
        let rollback = (!self.spec.rollback.is_empty()).then(|| RollbackRun {
            argv: self.spec.rollback.clone(),
            started_at: now.to_string(),
            finished_at: None,
            exit_code: None,
            error: None,
            interrupted: false,
        });
        let required = rollback.is_some() || to != from;
        let cmd = rollback.as_ref().map(|r| shown_cmd(&r.argv));
        let step = if to == from {
            format!("phase {from} stays (no phase before it to step back to)")
        } else {
            format!("phase steps back {from} → {to}")
        };
        let why = format!(
            "violation: {}; incident {id} opened, {step}{}",
            j.why,
            cmd.as_ref()
                .map(|c| format!(", rollback `{c}` runs"))
                .unwrap_or_default()
        );
        let extra = json!({
            "incident": id, "phase_from": from, "phase_to": to, "rollback_required": required,
            "cmd": cmd,
        });
        let mut out = vec![self.audit(events::SLO_VIOLATION, j, extra)];
        let mut a = self.alert(SloVerdict::Violation, j, why);
        a.incident = Some(id.clone());
        a.rollback_required = required;
        a.cmd = cmd;
        out.push(Effect::Alert(a));
        if rollback.is_some() {
            out.push(Effect::Rollback {
                incident: id.clone(),
            });
        }
        self.state.incident = Some(Incident {
            id,
            window: format!("{}/{}", j.start, j.end),
            opened_at: now.to_string(),
            phase_from: from,
            phase_to: to,
            rollback,
        });
        out
    }

    /// The rollback of `incident` ended: its exit code or why it failed.
    pub fn rollback_finished(
        &mut self,
        incident: &str,
        exit_code: Option<i32>,
        error: Option<String>,
        now: &str,
    ) -> Vec<Effect> {
        let Some(inc) = self.state.incident.as_mut().filter(|i| i.id == incident) else {
            return Vec::new();
        };
        let Some(run) = inc.rollback.as_mut() else {
            return Vec::new();
        };
        run.finished_at = Some(now.to_string());
        run.exit_code = exit_code;
        run.error = error;
        let run = run.clone();
        let inc = inc.clone();
        vec![
            Effect::Audit {
                event: events::SLO_ROLLBACK,
                payload: json!({
                    "slo": self.spec.name, "incident": inc.id, "cmd": shown_cmd(&run.argv),
                    "exit_code": run.exit_code, "error": run.error, "outcome":
                        if run.error.is_none() { "ok" } else { "failed" },
                    "phase_from": inc.phase_from, "phase_to": inc.phase_to,
                    "started_at": run.started_at, "finished_at": run.finished_at,
                }),
            },
            Effect::Alert(self.rollback_alert(&inc, &run)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::spec::SloKind;
    use crate::slo::window::tests::spec;

    const W: i64 = 900_000;

    fn acc(values: &[f64]) -> WindowAcc {
        WindowAcc {
            records: values.len() as u64,
            values: values.to_vec(),
            ..Default::default()
        }
    }

    fn gate(rollback: &[&str]) -> Gate {
        let mut s = spec(SloKind::P95);
        s.phase = Phase::C;
        s.rollback = rollback.iter().map(|a| a.to_string()).collect();
        Gate::new(s, None, "t0").0
    }

    fn kinds(effects: &[Effect]) -> Vec<String> {
        effects
            .iter()
            .map(|e| match e {
                Effect::Audit { event, .. } => event.to_string(),
                Effect::Alert(a) => format!("alert:{:?}", a.verdict),
                Effect::Rollback { incident } => format!("rollback:{incident}"),
            })
            .collect()
    }

    #[test]
    fn ok_is_audited_on_change_and_when_promotable_and_promotion_moves_one_phase() {
        let mut g = gate(&[]);
        g.state.phase = Phase::A;
        assert_eq!(kinds(&g.close(0, &acc(&[100.0]), "t")), ["slo.ok"]);
        assert_eq!(
            kinds(&g.close(W, &acc(&[100.0]), "t")),
            Vec::<String>::new()
        );
        assert!(matches!(
            g.promote(),
            Err(PromoteError::NotYet {
                streak: 2,
                need: 3,
                ..
            })
        ));
        // The third ok window makes it promotable: audited once more.
        let e = g.close(2 * W, &acc(&[100.0]), "t");
        assert_eq!(kinds(&e), ["slo.ok"]);
        assert!(matches!(&e[0], Effect::Audit { payload, .. } if payload["promotable"] == true));
        assert!(g.promotable());
        let Effect::Audit { event, payload } = g.promote().unwrap() else {
            panic!()
        };
        assert_eq!(
            (event, &payload["from"], &payload["to"]),
            (events::SLO_PROMOTE, &json!("A"), &json!("B"))
        );
        assert_eq!((g.state.phase, g.state.good_streak), (Phase::B, 0));
        assert!(!g.promotable(), "the streak starts again in B");
        // No data breaks a streak.
        g.close(3 * W, &acc(&[100.0]), "t");
        assert_eq!(
            kinds(&g.close(4 * W, &WindowAcc::default(), "t")),
            ["slo.no_data"]
        );
        assert_eq!(g.state.good_streak, 0);
        g.state.phase = Phase::C;
        g.state.good_streak = 10;
        assert!(matches!(g.promote(), Err(PromoteError::Last { .. })));
    }

    #[test]
    fn warn_alerts_once_per_streak_and_ok_ends_it() {
        let mut g = gate(&[]);
        // C's threshold is 1800: 1500 is at 83 %.
        assert_eq!(
            kinds(&g.close(0, &acc(&[1500.0]), "t")),
            ["slo.warn", "alert:Warn"]
        );
        assert_eq!(kinds(&g.close(W, &acc(&[1500.0]), "t")), ["slo.warn"]);
        let e = g.close(2 * W, &acc(&[10.0]), "t");
        assert_eq!(kinds(&e), ["slo.ok", "alert:Ok"]);
        assert_eq!(
            kinds(&g.close(3 * W, &acc(&[1500.0]), "t")),
            ["slo.warn", "alert:Warn"]
        );
    }

    #[test]
    fn a_violation_opens_one_incident_steps_back_one_phase_and_asks_for_one_rollback() {
        let mut g = gate(&["rb", "--token=s3cret"]);
        let e = g.close(0, &acc(&[5000.0]), "t1");
        assert_eq!(
            kinds(&e),
            ["slo.violation", "alert:Violation", "rollback:s-1"]
        );
        let Effect::Alert(a) = &e[1] else { panic!() };
        assert!(a.rollback_required);
        assert_eq!(
            (a.phase.as_str(), a.threshold, a.value),
            ("C", 1800.0, 5000.0)
        );
        assert_eq!(a.cmd.as_deref(), Some("rb --token=***"));
        assert_eq!(a.incident.as_deref(), Some("s-1"));
        assert_eq!(g.state.phase, Phase::B, "C steps back to B, not further");
        let run = g
            .state
            .incident
            .as_ref()
            .unwrap()
            .rollback
            .as_ref()
            .unwrap();
        assert!(
            !run.done(),
            "the intent is recorded before the command runs"
        );
        // Still violating at B: the same incident, no second step or rollback.
        let e = g.close(W, &acc(&[5000.0]), "t2");
        assert_eq!(kinds(&e), ["slo.violation"]);
        assert_eq!(g.state.phase, Phase::B);
        let e = g.rollback_finished("s-1", Some(0), None, "t3");
        assert_eq!(kinds(&e), ["slo.rollback", "alert:Rollback"]);
        let Effect::Audit { payload, .. } = &e[0] else {
            panic!()
        };
        assert_eq!(payload["exit_code"], 0);
        // Ok closes the incident; the next violation is a new one, stepping back B → A.
        let e = g.close(2 * W, &acc(&[10.0]), "t");
        assert_eq!(kinds(&e), ["slo.ok", "alert:Ok"]);
        let Effect::Alert(a) = &e[1] else { panic!() };
        assert_eq!(a.incident.as_deref(), Some("s-1"));
        let e = g.close(3 * W, &acc(&[5000.0]), "t");
        assert_eq!(
            kinds(&e),
            ["slo.violation", "alert:Violation", "rollback:s-2"]
        );
        assert_eq!(g.state.phase, Phase::A);
        g.close(4 * W, &acc(&[10.0]), "t");
        g.close(5 * W, &acc(&[5000.0]), "t");
        assert_eq!(g.state.phase, Phase::A, "A stays A");
    }

    #[test]
    fn an_interrupted_rollback_is_reported_once_and_never_run_again() {
        let mut g = gate(&["rb"]);
        g.close(0, &acc(&[5000.0]), "t1");
        let saved = g.state.clone();
        let (g2, effects, dirty) = Gate::new(g.spec.clone(), Some(saved), "t9");
        assert!(dirty);
        assert_eq!(kinds(&effects), ["slo.rollback", "alert:Rollback"]);
        let Effect::Audit { payload, .. } = &effects[0] else {
            panic!()
        };
        assert_eq!(
            (&payload["outcome"], &payload["rerun"]),
            (&json!("interrupted"), &json!(false))
        );
        let Effect::Alert(a) = &effects[1] else {
            panic!()
        };
        assert!(
            a.error.as_deref().unwrap().contains("not run again"),
            "{a:?}"
        );
        // A second restart finds it done: nothing more.
        let (_, effects, dirty) = Gate::new(g.spec.clone(), Some(g2.state.clone()), "t10");
        assert!(effects.is_empty() && !dirty);
    }

    #[test]
    fn the_config_phase_wins_when_the_operator_changes_it() {
        let g = gate(&[]);
        let mut saved = g.state.clone();
        saved.phase = Phase::B; // stepped back at some point
        let (g2, _, _) = Gate::new(g.spec.clone(), Some(saved.clone()), "t");
        assert_eq!(
            g2.state.phase,
            Phase::B,
            "the file's phase holds while the config's is unchanged"
        );
        let mut spec = g.spec.clone();
        spec.phase = Phase::A;
        let (g3, _, dirty) = Gate::new(spec, Some(saved), "t");
        assert!(dirty);
        assert_eq!(g3.state.phase, Phase::A);
    }
}
