//! Wall-clock timestamps in the one format every file and JSON document of fushi uses (RFC 3339, UTC, ms).

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

pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// The wall-clock instant `d` from now, formatted (for `next_restart_at`).
pub fn in_rfc3339(d: Duration) -> String {
    rfc3339(SystemTime::now() + d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_with_millis_and_z() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_120);
        assert_eq!(super::rfc3339(t), "2026-11-18T11:06:40.120Z");
    }
}
