//! An SLO gate as the analyzer applies it: what is measured over which stream, per window, against which threshold in which rollout phase.
//!
//! The daemon builds these from supervisor.toml's `[[slo]]` tables (validated there); the
//! actors' crate has its own type because it never depends on the config code.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a window's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloKind {
    /// The nearest-rank 95th percentile of a numeric field (see `window::p95`).
    P95,
    /// The percentage (0–100) of records whose predicate field is truthy.
    ErrorRate,
    /// The longest collection delay of the window's records, in seconds.
    Lateness,
}

impl SloKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SloKind::P95 => "p95",
            SloKind::ErrorRate => "error_rate",
            SloKind::Lateness => "lateness",
        }
    }
}

/// A rollout phase (seed 003): A canary, B broad, C default. Stricter thresholds as it goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Phase {
    A,
    B,
    C,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::A => "A",
            Phase::B => "B",
            Phase::C => "C",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        match s {
            "A" => Some(Phase::A),
            "B" => Some(Phase::B),
            "C" => Some(Phase::C),
            _ => None,
        }
    }

    /// The phase a promotion moves on to; none after C.
    pub fn next(self) -> Option<Phase> {
        match self {
            Phase::A => Some(Phase::B),
            Phase::B => Some(Phase::C),
            Phase::C => None,
        }
    }

    /// The phase a rollback steps back to: one phase only; A stays A.
    pub fn back(self) -> Phase {
        match self {
            Phase::A | Phase::B => Phase::A,
            Phase::C => Phase::B,
        }
    }

    /// 1, 2, 3: the `fushi_slo_phase` gauge.
    pub fn number(self) -> i64 {
        self as i64 + 1
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[slo]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SloSpec {
    pub name: String,
    pub stream: String,
    pub kind: SloKind,
    /// p95: the numeric field measured, a `.`-separated path into the record's `data`.
    pub field: Option<String>,
    /// error_rate: the field whose truthy value marks a record as an error (same path syntax).
    pub predicate: Option<String>,
    pub window: Duration,
    /// A record stored more than this after its `ts` arrived late (collection delay); a window
    /// is judged this long after its end, so records that late still count in it.
    pub late_after: Duration,
    /// The phase the config names: where a new SLO starts, and where the operator puts it back
    /// by changing the file.
    pub phase: Phase,
    pub thresholds: BTreeMap<Phase, f64>,
    pub warn_ratio: f64,
    pub promote_after: u32,
    /// argv, run without a shell, once per incident.
    pub rollback: Vec<String>,
    pub rollback_timeout: Duration,
}

impl SloSpec {
    /// The threshold of `phase`, if the config gives it one.
    pub fn threshold(&self, phase: Phase) -> Option<f64> {
        self.thresholds.get(&phase).copied()
    }

    /// What is measured, as an alert's `metric` names it.
    pub fn metric(&self) -> String {
        match self.kind {
            SloKind::P95 => self.field.clone().unwrap_or_default(),
            SloKind::ErrorRate => self.predicate.clone().unwrap_or_default(),
            SloKind::Lateness => "lateness".into(),
        }
    }

    /// The window length in milliseconds (at least 1: the config refuses 0).
    pub fn window_ms(&self) -> i64 {
        (self.window.as_millis() as i64).max(1)
    }

    pub fn late_after_ms(&self) -> i64 {
        self.late_after.as_millis() as i64
    }
}
