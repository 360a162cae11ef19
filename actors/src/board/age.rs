//! The age of the oldest journal record not yet on the primary, from coarse marks of when the journal grew: health's "journal not drained in time" rule measures it.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// Marks of when the journal grew, at most this many: past it the two oldest merge, keeping
/// the older time, so the age of a record among them is overstated, never understated.
const MAX_MARKS: usize = 1024;

/// When the journal's records were appended, coarsely: enough to tell the age of the oldest
/// one not yet forwarded, since records reach the primary in the order they were appended.
#[derive(Debug)]
pub(super) struct AppendClock {
    /// Records appended since this board began (the journal's count only ever grows by appends).
    pub(super) appended: u64,
    /// The journal's record count as last published.
    pub(super) records: u64,
    /// `(appended after the mark's appends, when the first of them came)`, oldest first.
    pub(super) marks: VecDeque<(u64, Instant)>,
    /// Appends closer together than this share a mark.
    pub(super) resolution: Duration,
}

impl AppendClock {
    pub(super) fn new(limit: Duration) -> Self {
        Self {
            appended: 0,
            records: 0,
            marks: VecDeque::new(),
            resolution: limit / 32,
        }
    }

    /// The journal now holds `records`, `lag` of them not on the primary.
    pub(super) fn journal(&mut self, records: u64, lag: u64, now: Instant) {
        let grew = records.saturating_sub(self.records);
        self.records = records;
        if grew > 0 {
            self.appended += grew;
            match self.marks.back_mut() {
                Some((end, at)) if now.duration_since(*at) < self.resolution => *end += grew,
                _ => self.marks.push_back((self.appended, now)),
            }
            if self.marks.len() > MAX_MARKS {
                if let Some((end, _)) = self.marks.remove(1) {
                    self.marks[0].0 = end;
                }
            }
        }
        self.lag(lag, now);
    }

    /// Forgets the marks once nothing waits. Marks are never dropped on a partial lag: a lag
    /// published from an older journal count may understate it for a moment.
    pub(super) fn lag(&mut self, lag: u64, now: Instant) {
        if lag == 0 {
            self.marks.clear();
        } else if self.marks.is_empty() {
            // Records this board never saw appended (it began after them): as old as that.
            self.marks.push_back((self.appended, now));
        }
    }

    /// How long the oldest of the last `lag` appended records has waited.
    pub(super) fn oldest(&self, lag: u64, now: Instant) -> Duration {
        if lag == 0 {
            return Duration::ZERO;
        }
        let before = self.appended.saturating_sub(lag);
        let i = self.marks.partition_point(|&(end, _)| end <= before);
        self.marks
            .get(i)
            .or(self.marks.back())
            .map_or(Duration::ZERO, |&(_, at)| now.duration_since(at))
    }
}
