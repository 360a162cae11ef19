//! How times and counts read in the commands' output: "5m 3s ago", "in 4s", "1 record".

use fushi_actors::clock;
use std::time::Duration;

pub(super) fn ago(ts: &str) -> Option<Duration> {
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()?;
    let now = time::OffsetDateTime::from(clock::wall());
    let d = now - t;
    (d.is_positive() || d.is_zero()).then(|| Duration::from_secs(d.whole_seconds().max(0) as u64))
}

pub(super) fn until(ts: &str) -> Option<Duration> {
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()?;
    let d = t - time::OffsetDateTime::from(clock::wall());
    Some(Duration::from_millis(d.whole_milliseconds().max(0) as u64))
}

/// "1 record", "2 records".
pub(crate) fn records(n: u64) -> String {
    if n == 1 {
        "1 record".into()
    } else {
        format!("{n} records")
    }
}
