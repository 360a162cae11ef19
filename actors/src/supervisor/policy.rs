//! Restart policy (SPEC §3.1): when a child is restarted (`RestartKind`), how its siblings are affected (`Strategy`), and the backoff, escalation and give-up limits (`RestartPolicy`).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// When a child is restarted (SPEC §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartKind {
    /// Always restarted, also after stopping by itself.
    #[default]
    Permanent,
    /// Restarted only after a failure.
    Transient,
    /// Never restarted.
    Temporary,
}

impl RestartKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartKind::Permanent => "permanent",
            RestartKind::Transient => "transient",
            RestartKind::Temporary => "temporary",
        }
    }
}

/// Which siblings restart with a failed child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    OneForOne,
    OneForAll,
    RestForOne,
}

/// Backoff, escalation and give-up settings of one child.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    pub backoff: Vec<Duration>,
    pub jitter: Duration,
    pub escalate_after: u32,
    pub stable_after: Duration,
    /// 0 = never give up.
    pub give_up_after: u32,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            backoff: vec![
                Duration::from_secs(5),
                Duration::from_secs(10),
                Duration::from_secs(15),
            ],
            jitter: Duration::from_secs(1),
            escalate_after: 4,
            stable_after: Duration::from_secs(60),
            give_up_after: 0,
        }
    }
}

impl RestartPolicy {
    /// `backoff[min(n, len) - 1]` for the n-th consecutive failure (n ≥ 1).
    pub fn base_delay(&self, n: u32) -> Duration {
        if self.backoff.is_empty() {
            return Duration::ZERO;
        }
        let i = (n.max(1) as usize).min(self.backoff.len()) - 1;
        self.backoff[i]
    }

    /// The base delay plus uniform random jitter in `0..jitter`, in whole milliseconds.
    ///
    /// Whole milliseconds because tokio's timers round a deadline up to the next millisecond: a
    /// jitter drawn in nanoseconds within 1 ms of `jitter` fired at exactly `base + jitter`,
    /// outside the promised `base..base + jitter` (and differed from the audited `delay_ms`).
    pub fn delay(&self, n: u32) -> Duration {
        let jitter_ms = self.jitter.as_millis() as u64;
        let extra = if jitter_ms == 0 {
            0
        } else {
            rand::random_range(0..jitter_ms)
        };
        self.base_delay(n) + Duration::from_millis(extra)
    }
}
