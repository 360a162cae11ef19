//! The clocks fushi reads: the wall clock for timestamps (RFC 3339, UTC, ms, the one format of every file and JSON document), and a stopwatch for the real cost of I/O.
//!
//! Timers and deadlines on the runtime use tokio's clock (`tokio::time::Instant`), which a test
//! can pause; `clippy.toml` disallows `std::time::Instant::now`, `std::thread::sleep` and
//! `SystemTime::now` elsewhere. The wall clock is read here only, so that every timestamp fushi
//! writes comes from one function.

use std::time::{Duration, SystemTime};
use time::macros::format_description;
use time::OffsetDateTime;

/// Formats a wall-clock instant as `2026-11-21T10:00:00.120Z` (always three fraction digits, UTC).
pub fn rfc3339(t: SystemTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from(t)
        .format(format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".into())
}

/// Now on the wall clock: the one reader of `SystemTime::now` (timestamps, file ages, `--since`).
#[allow(
    clippy::disallowed_methods,
    reason = "the wall clock's one reader, which the policy points everyone else to"
)]
pub fn wall() -> SystemTime {
    SystemTime::now()
}

/// Now on the wall clock in milliseconds since the Unix epoch: the unit of state that must mean
/// the same after a restart (the alert outbox, health's age of what it still owes).
pub fn wall_ms() -> u64 {
    wall()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `ms` since the Unix epoch, formatted as [`rfc3339`] does.
pub fn rfc3339_ms(ms: u64) -> String {
    rfc3339(std::time::UNIX_EPOCH + Duration::from_millis(ms))
}

/// Milliseconds since the Unix epoch of an RFC 3339 time (an audit line's `ts`); `None` for
/// text that is not one or a time before 1970.
pub fn parse_ms(ts: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

pub fn now_rfc3339() -> String {
    rfc3339(wall())
}

/// The wall-clock instant `d` from now, formatted (for `next_restart_at`).
pub fn in_rfc3339(d: Duration) -> String {
    rfc3339(wall() + d)
}

/// Real time elapsed where no runtime timer is involved: the cost of a piece of blocking I/O (a
/// journal read, a primary's fsync), which is the disk's and which tokio's clock would show as
/// zero when a test pauses time, or as a jump when a timer fires meanwhile; or a plain thread's
/// own pace (the journal's lock wait, `top`'s blink). It sizes batches and fills statistics;
/// no actor waits on it.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(std::time::Instant);

impl Stopwatch {
    #[allow(
        clippy::disallowed_methods,
        reason = "measures the real cost of I/O, see the type's doc"
    )]
    pub fn start() -> Self {
        Self(std::time::Instant::now())
    }

    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_with_millis_and_z() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_120);
        assert_eq!(super::rfc3339(t), "2026-11-18T11:06:40.120Z");
    }
}
