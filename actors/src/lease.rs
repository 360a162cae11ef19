//! The collection lease as the record sink sees it: until when this node may take records in, set by the leader actor at every renewal and checked at every submit, so that what a collector makes after its node fenced itself is refused even before the collector has stopped.
//!
//! The gate stops collectors one by one, each within its shutdown timeout, and a process frozen
//! past its deadline wakes with its collectors' timers due at the same moment as the fence:
//! neither can be trusted to stop collection in time. This check can: it reads this node's
//! monotonic clock against the deadline the leader computed, at the one place every record
//! passes through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

/// Until when records may be taken in; shared by the leader (which moves it) and the sink.
#[derive(Clone, Debug)]
pub struct Lease(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    anchor: Instant,
    /// Microseconds after `anchor` until which records are taken in; 0: none are.
    until_us: AtomicU64,
}

/// Why a submit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "this node does not hold the leader lease (another node may lead): records are not taken in"
)]
pub struct NotLeading;

impl Default for Lease {
    fn default() -> Self {
        Self(Arc::new(Inner {
            anchor: Instant::now(),
            until_us: AtomicU64::new(0),
        }))
    }
}

impl Lease {
    /// Records are taken in until `t` (unless moved again before).
    pub fn grant_until(&self, t: Instant) {
        let us = t.saturating_duration_since(self.0.anchor).as_micros() as u64;
        self.0.until_us.store(us.max(1), Ordering::SeqCst);
    }

    /// No record is taken in from now on.
    pub fn revoke(&self) {
        self.0.until_us.store(0, Ordering::SeqCst);
    }

    /// Whether records may be taken in now.
    pub fn valid(&self) -> bool {
        let until = self.0.until_us.load(Ordering::SeqCst);
        until > 0
            && Instant::now()
                .saturating_duration_since(self.0.anchor)
                .as_micros()
                < until as u128
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn valid_until_its_deadline_on_this_clock_and_never_once_revoked() {
        let l = Lease::default();
        assert!(!l.valid(), "closed to begin with");
        l.grant_until(Instant::now() + Duration::from_millis(800));
        assert!(l.valid());
        tokio::time::advance(Duration::from_millis(799)).await;
        assert!(l.valid());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!l.valid(), "at the deadline it has ended");
        l.grant_until(Instant::now() + Duration::from_secs(1));
        assert!(l.valid());
        l.revoke();
        assert!(!l.valid());
    }
}
