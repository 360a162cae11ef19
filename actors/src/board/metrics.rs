//! The counters and the ack-latency histogram behind `GET /metrics`, kept in memory by the board.

use std::collections::BTreeMap;

/// Upper bounds (seconds) of the ack-latency histogram's buckets.
pub const ACK_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A counter of [`Metrics`] that takes no label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Records made durable in the journal (quarantined ones too).
    RecordsIngested,
    /// Records a sync wrote to the primary.
    RecordsForwarded,
    /// Changes of the primary between up and down, as audited (`collector.storage.switch`).
    StorageSwitches,
    Escalations,
    AlertsSent,
    /// Deliveries given up after every retry (`alert.failed`).
    AlertsFailed,
    /// Alerts noise control held back (`alert.suppressed`).
    AlertsSuppressed,
}

/// Counters and the ack-latency histogram behind `GET /metrics`; in memory only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub records_ingested: u64,
    pub records_forwarded: u64,
    pub storage_switches: u64,
    pub escalations: u64,
    pub alerts_sent: u64,
    pub alerts_failed: u64,
    pub alerts_suppressed: u64,
    /// Input lines a collector answered with an error, per collector.
    pub rejected: BTreeMap<String, u64>,
    /// Records a collector's input put on the `_quarantine` stream, per collector.
    pub quarantined: BTreeMap<String, u64>,
    /// Per bucket of [`ACK_BUCKETS`] (not cumulative), then the count beyond the last bound.
    pub ack_buckets: Vec<u64>,
    pub ack_sum: f64,
    pub ack_count: u64,
}

impl Metrics {
    pub(super) fn counter(&mut self, c: Counter) -> &mut u64 {
        match c {
            Counter::RecordsIngested => &mut self.records_ingested,
            Counter::RecordsForwarded => &mut self.records_forwarded,
            Counter::StorageSwitches => &mut self.storage_switches,
            Counter::Escalations => &mut self.escalations,
            Counter::AlertsSent => &mut self.alerts_sent,
            Counter::AlertsFailed => &mut self.alerts_failed,
            Counter::AlertsSuppressed => &mut self.alerts_suppressed,
        }
    }
}

pub(super) fn add_to(map: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    match map.get_mut(key) {
        Some(v) => *v += n,
        None => {
            map.insert(key.to_string(), n);
        }
    }
}
