//! One window of one SLO judged from its records — nearest-rank p95, error rate, collection delay — the one evaluation both the analyzer and `fushi slo --dry-run` run.
//!
//! Definitions (the contract `fushi slo` and the alerts report in):
//! - **Windows** are fixed-length and aligned to the Unix epoch: a record with collection time
//!   `ts` belongs to the window `[floor(ts / window) · window, + window)`.
//! - **p95** is the nearest-rank percentile: of the window's `n` numeric values sorted
//!   ascending, the one at rank `ceil(0.95 · n)` (1-based). It is always a value that occurred,
//!   never an interpolation; with fewer than 20 values it is the largest. Records whose field is
//!   missing or not a number are skipped (and counted).
//! - **error_rate** is `100 · errors / records`, in percent: a record is an error when its
//!   predicate field is truthy — `true`, a non-zero number, a non-empty string, array or
//!   object. `false`, `0`, `""`, `null`, `[]`, `{}` and a missing field are not errors.
//! - **Arrival and delay.** A record arrives when storage makes it durable. The analyzer sees a
//!   live record at the journal's end within moments of that and uses the wall clock then;
//!   where the arrival was not seen (the lines of a fixture, records read back after a
//!   restart) it is at least the latest `ts` stored before it in the stream, since storage
//!   appends in arrival order. A record's delay is `arrival − ts` (never negative), and it is
//!   **late** when its delay exceeds `late_after`.
//! - **Collection delay**: a window holding at least one late record. It turns an `ok` verdict
//!   into `warn` (whatever the kind), saying how many records were late and by how much.
//! - **lateness**'s value is the window's largest delay, in seconds.
//! - **Verdicts**: `no_data` without a value (no record, or no numeric value for p95);
//!   `violation` when value > threshold; `warn` when value ≥ `warn_ratio` · threshold (a
//!   threshold of 0 never warns: only 0 passes it); else `ok`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::spec::{Phase, SloKind, SloSpec};

/// A closed window's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Warn,
    Violation,
    NoData,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Violation => "violation",
            Verdict::NoData => "no_data",
        }
    }
}

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp (a record's `ts`).
pub fn parse_ts(ts: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(ts, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Milliseconds since the Unix epoch of a wall-clock instant (0 before it).
pub fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A timestamp as every file of fushi writes it.
pub fn format_ms(ms: i64) -> String {
    crate::clock::rfc3339(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
}

/// The start of the window holding `ts_ms`.
pub fn window_start(ts_ms: i64, window_ms: i64) -> i64 {
    ts_ms.div_euclid(window_ms) * window_ms
}

/// The arrivals of one stream in storage order: the lower bound of an unseen arrival.
#[derive(Debug, Clone, Copy, Default)]
pub struct Arrivals {
    latest_ts: Option<i64>,
}

impl Arrivals {
    /// The delay of the next record in storage order: `arrival` (when seen) or the latest `ts`
    /// stored before it, whichever is later, minus its own `ts`.
    pub fn delay(&mut self, ts_ms: i64, arrival_ms: Option<i64>) -> i64 {
        let latest = self.latest_ts.map_or(ts_ms, |l| l.max(ts_ms));
        self.latest_ts = Some(latest);
        (arrival_ms.map_or(latest, |a| a.max(latest)) - ts_ms).max(0)
    }
}

/// What a window has seen so far: enough to judge it, and small (the values only for p95).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowAcc {
    pub records: u64,
    /// p95: the numeric values.
    pub values: Vec<f64>,
    /// p95: records without a numeric value in the field.
    pub skipped: u64,
    /// error_rate: records whose predicate is truthy.
    pub errors: u64,
    /// Records that arrived more than `late_after` after their `ts`.
    pub late: u64,
    pub max_delay_ms: i64,
}

/// The value at a `.`-separated path of `data`.
pub fn field<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(data, |v, key| v.get(key))
}

/// Whether a predicate's value marks an error (see the module doc).
pub fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// The nearest-rank 95th percentile of `values` (sorted in place); None when empty.
pub fn p95(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    // ceil(0.95 · n) in integers, so that 20 values give rank 19 exactly.
    let rank = (95 * values.len()).div_ceil(100).max(1);
    Some(values[rank - 1])
}

/// `100 · errors / records`; None without records.
pub fn error_rate(errors: u64, records: u64) -> Option<f64> {
    (records > 0).then(|| 100.0 * errors as f64 / records as f64)
}

impl WindowAcc {
    /// Counts one record of the window, `delay_ms` after its `ts` (from [`Arrivals::delay`]).
    pub fn observe(&mut self, spec: &SloSpec, delay_ms: i64, data: &Value) {
        self.records += 1;
        if delay_ms > spec.late_after_ms() {
            self.late += 1;
        }
        self.max_delay_ms = self.max_delay_ms.max(delay_ms);
        match spec.kind {
            SloKind::P95 => {
                let v = spec.field.as_deref().and_then(|f| field(data, f));
                match v.and_then(Value::as_f64).filter(|f| f.is_finite()) {
                    Some(x) => self.values.push(x),
                    None => self.skipped += 1,
                }
            }
            SloKind::ErrorRate => {
                let v = spec.predicate.as_deref().and_then(|f| field(data, f));
                if truthy(v) {
                    self.errors += 1;
                }
            }
            SloKind::Lateness => {}
        }
    }

    /// The window's value: None when there is nothing to measure.
    pub fn value(&self, kind: SloKind) -> Option<f64> {
        match kind {
            SloKind::P95 => p95(&mut self.values.clone()),
            SloKind::ErrorRate => error_rate(self.errors, self.records),
            SloKind::Lateness => (self.records > 0).then(|| self.max_delay_ms as f64 / 1000.0),
        }
    }
}

/// The verdict of `value` against `threshold` (see the module doc).
pub fn verdict(value: Option<f64>, threshold: f64, warn_ratio: f64) -> Verdict {
    match value {
        None => Verdict::NoData,
        Some(v) if v > threshold => Verdict::Violation,
        Some(v) if threshold > 0.0 && v >= warn_ratio * threshold => Verdict::Warn,
        Some(_) => Verdict::Ok,
    }
}

/// One judged window: what `fushi slo` lists and what alerts are made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    pub start: String,
    pub end: String,
    pub value: Option<f64>,
    pub threshold: f64,
    pub verdict: Verdict,
    pub phase: Phase,
    pub records: u64,
    /// Records that arrived late (collection delay), and the largest delay in seconds.
    pub late: u64,
    pub max_delay_s: f64,
    /// p95: records without a numeric value in the field.
    pub skipped: u64,
    /// One sentence: why this verdict.
    pub why: String,
}

impl Judged {
    /// Whether the verdict comes from a collection delay rather than the value.
    pub fn delayed(&self, spec: &SloSpec) -> bool {
        self.late > 0 && verdict(self.value, self.threshold, spec.warn_ratio) != self.verdict
    }
}

fn num(v: f64) -> String {
    // Three decimals at most, no trailing zeros: 2.5, 0.333, 1800.
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Judges the window starting at `start_ms` in `phase`.
pub fn judge(spec: &SloSpec, phase: Phase, start_ms: i64, acc: &WindowAcc) -> Judged {
    let threshold = spec.threshold(phase).unwrap_or(f64::INFINITY);
    let value = acc.value(spec.kind);
    let by_value = verdict(value, threshold, spec.warn_ratio);
    let delayed = acc.late > 0 && by_value == Verdict::Ok;
    let v = if delayed { Verdict::Warn } else { by_value };
    let unit = match spec.kind {
        SloKind::P95 => "",
        SloKind::ErrorRate => "%",
        SloKind::Lateness => "s",
    };
    let what = format!("{} of {}", spec.kind.as_str(), spec.metric());
    let why = match (value, by_value) {
        (None, _) if acc.records == 0 => format!("no record of {} in the window", spec.stream),
        (None, _) => format!(
            "none of the window's {} records has a numeric {}",
            acc.records,
            spec.metric()
        ),
        (Some(x), Verdict::Violation) => format!(
            "{what} is {}{unit}, over the phase {phase} threshold of {}{unit}",
            num(x),
            num(threshold)
        ),
        (Some(x), Verdict::Warn) => format!(
            "{what} is {}{unit}, at {}% of the phase {phase} threshold of {}{unit}",
            num(x),
            num(100.0 * x / threshold),
            num(threshold)
        ),
        (Some(x), _) => format!(
            "{what} is {}{unit}, within the phase {phase} threshold of {}{unit}",
            num(x),
            num(threshold)
        ),
    };
    let why = if acc.late > 0 {
        format!(
            "{why}; collection delay: {} of {} records arrived up to {}s after their ts (late_after {}s)",
            acc.late,
            acc.records,
            num(acc.max_delay_ms as f64 / 1000.0),
            num(spec.late_after.as_secs_f64())
        )
    } else {
        why
    };
    Judged {
        start: format_ms(start_ms),
        end: format_ms(start_ms + spec.window_ms()),
        value,
        threshold,
        verdict: v,
        phase,
        records: acc.records,
        late: acc.late,
        max_delay_s: acc.max_delay_ms as f64 / 1000.0,
        skipped: acc.skipped,
        why,
    }
}

/// A record's `ts` that is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("ts {ts:?} is not an RFC 3339 timestamp (e.g. 2026-11-21T10:00:00.123Z)")]
pub struct BadTs {
    pub ts: String,
}

/// Every window from the first record's to the last one's (those between without records are
/// `no_data`), judged in `phase`: `records` are the stream's `(ts, data)` in storage order, their
/// arrivals unseen. What `fushi slo --dry-run` prints; no records, no windows.
pub fn evaluate<'a>(
    spec: &SloSpec,
    phase: Phase,
    records: impl IntoIterator<Item = (&'a str, &'a Value)>,
) -> Result<Vec<Judged>, BadTs> {
    let w = spec.window_ms();
    let mut arrivals = Arrivals::default();
    let mut windows: BTreeMap<i64, WindowAcc> = BTreeMap::new();
    for (ts, data) in records {
        let ts_ms = parse_ts(ts).ok_or_else(|| BadTs { ts: ts.to_string() })?;
        let delay = arrivals.delay(ts_ms, None);
        windows
            .entry(window_start(ts_ms, w))
            .or_default()
            .observe(spec, delay, data);
    }
    let (Some(&first), Some(&last)) = (windows.keys().next(), windows.keys().next_back()) else {
        return Ok(Vec::new());
    };
    let empty = WindowAcc::default();
    Ok((0..=(last - first) / w)
        .map(|i| {
            let start = first + i * w;
            judge(spec, phase, start, windows.get(&start).unwrap_or(&empty))
        })
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn spec(kind: SloKind) -> SloSpec {
        SloSpec {
            name: "s".into(),
            stream: "app/save".into(),
            kind,
            field: Some("latency_ms".into()),
            predicate: Some("error".into()),
            window: Duration::from_secs(900),
            late_after: Duration::from_secs(300),
            phase: Phase::A,
            thresholds: [(Phase::A, 2500.0), (Phase::B, 2000.0), (Phase::C, 1800.0)]
                .into_iter()
                .collect(),
            warn_ratio: 0.8,
            promote_after: 3,
            rollback: Vec::new(),
            rollback_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn p95_is_the_nearest_rank_value() {
        assert_eq!(p95(&mut []), None);
        assert_eq!(p95(&mut [7.0]), Some(7.0));
        // 1..=100: rank ceil(95) = 95.
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(p95(&mut v), Some(95.0));
        // 20 values: rank 19, not the largest.
        let mut v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(p95(&mut v), Some(19.0));
        // 19 values: rank ceil(18.05) = 19, the largest.
        let mut v: Vec<f64> = (1..=19).map(f64::from).collect();
        assert_eq!(p95(&mut v), Some(19.0));
        // 21 values: rank ceil(19.95) = 20.
        let mut v: Vec<f64> = (1..=21).map(f64::from).collect();
        assert_eq!(p95(&mut v), Some(20.0));
    }

    #[test]
    fn error_rate_counts_truthy_predicates_in_percent() {
        assert_eq!(error_rate(0, 0), None);
        assert_eq!(error_rate(1, 200), Some(0.5));
        for yes in [
            json!(true),
            json!(1),
            json!(-0.5),
            json!("E42"),
            json!([0]),
            json!({"a": 1}),
        ] {
            assert!(truthy(Some(&yes)), "{yes}");
        }
        for no in [
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!(null),
            json!([]),
            json!({}),
        ] {
            assert!(!truthy(Some(&no)), "{no}");
        }
        assert!(!truthy(None));
        let s = spec(SloKind::ErrorRate);
        let mut acc = WindowAcc::default();
        for data in [
            json!({"error": true}),
            json!({"error": false}),
            json!({}),
            json!({"error": "timeout"}),
        ] {
            acc.observe(&s, 0, &data);
        }
        assert_eq!(acc.value(SloKind::ErrorRate), Some(50.0));
    }

    #[test]
    fn fields_are_paths_and_non_numbers_are_skipped() {
        let mut s = spec(SloKind::P95);
        s.field = Some("save.ms".into());
        let mut acc = WindowAcc::default();
        acc.observe(&s, 0, &json!({"save": {"ms": 12}}));
        acc.observe(&s, 0, &json!({"save": {"ms": "12"}}));
        acc.observe(&s, 0, &json!({"other": 1}));
        assert_eq!(
            (acc.records, acc.skipped, acc.values.clone()),
            (3, 2, vec![12.0])
        );
        let j = judge(
            &s,
            Phase::A,
            0,
            &WindowAcc {
                values: vec![],
                skipped: 2,
                records: 2,
                ..Default::default()
            },
        );
        assert_eq!(j.verdict, Verdict::NoData);
        assert!(
            j.why
                .contains("none of the window's 2 records has a numeric save.ms"),
            "{}",
            j.why
        );
    }

    #[test]
    fn verdicts_against_the_threshold() {
        assert_eq!(verdict(None, 10.0, 0.8), Verdict::NoData);
        assert_eq!(verdict(Some(7.9), 10.0, 0.8), Verdict::Ok);
        assert_eq!(verdict(Some(8.0), 10.0, 0.8), Verdict::Warn);
        assert_eq!(verdict(Some(10.0), 10.0, 0.8), Verdict::Warn);
        assert_eq!(verdict(Some(10.001), 10.0, 0.8), Verdict::Violation);
        // "= 0" thresholds (history drift): only 0 passes, and nothing warns.
        assert_eq!(verdict(Some(0.0), 0.0, 0.8), Verdict::Ok);
        assert_eq!(verdict(Some(1.0), 0.0, 0.8), Verdict::Violation);
    }

    #[test]
    fn unseen_arrivals_are_the_latest_ts_stored_before() {
        let mut a = Arrivals::default();
        assert_eq!(a.delay(10_000, None), 0);
        assert_eq!(a.delay(400_000, None), 0);
        // Stored after a record of 400 s: it arrived at least 390 s after its ts.
        assert_eq!(a.delay(10_000, None), 390_000);
        // A seen arrival counts when it is later.
        assert_eq!(a.delay(400_000, Some(401_500)), 1_500);
        assert_eq!(a.delay(401_000, Some(100)), 0);
    }

    #[test]
    fn a_late_window_warns_of_collection_delay_and_lateness_measures_it() {
        let s = spec(SloKind::P95);
        let mut acc = WindowAcc::default();
        acc.observe(&s, 1_000, &json!({"latency_ms": 100}));
        acc.observe(&s, 300_001, &json!({"latency_ms": 100}));
        let j = judge(&s, Phase::A, 0, &acc);
        assert_eq!((j.verdict, j.late), (Verdict::Warn, 1));
        assert!(j.delayed(&s));
        assert!(
            j.why
                .contains("collection delay: 1 of 2 records arrived up to 300.001s"),
            "{}",
            j.why
        );
        // At exactly late_after a record is not late yet.
        let mut on_time = WindowAcc::default();
        on_time.observe(&s, 300_000, &json!({"latency_ms": 100}));
        assert_eq!(judge(&s, Phase::A, 0, &on_time).verdict, Verdict::Ok);

        let mut l = spec(SloKind::Lateness);
        l.thresholds = [(Phase::A, 180.0)].into_iter().collect();
        l.late_after = Duration::from_secs(600);
        let mut acc = WindowAcc::default();
        acc.observe(&l, 200_000, &json!({}));
        let j = judge(&l, Phase::A, 0, &acc);
        assert_eq!((j.value, j.verdict), (Some(200.0), Verdict::Violation));
    }

    #[test]
    fn evaluate_aligns_windows_fills_gaps_and_uses_the_phase() {
        let s = spec(SloKind::P95);
        let recs = [
            ("2026-11-21T10:01:00.000Z", json!({"latency_ms": 1000})),
            ("2026-11-21T10:14:59.999Z", json!({"latency_ms": 2100})),
            ("2026-11-21T10:45:00.000Z", json!({"latency_ms": 2600})),
        ];
        let out = evaluate(&s, Phase::B, recs.iter().map(|(t, d)| (*t, d))).unwrap();
        let got: Vec<_> = out
            .iter()
            .map(|j| (j.start.as_str(), j.value, j.verdict))
            .collect();
        assert_eq!(
            got,
            vec![
                ("2026-11-21T10:00:00.000Z", Some(2100.0), Verdict::Violation),
                ("2026-11-21T10:15:00.000Z", None, Verdict::NoData),
                ("2026-11-21T10:30:00.000Z", None, Verdict::NoData),
                ("2026-11-21T10:45:00.000Z", Some(2600.0), Verdict::Violation),
            ]
        );
        assert_eq!(out[0].end, "2026-11-21T10:15:00.000Z");
        assert_eq!(out[0].threshold, 2000.0);
        assert!(evaluate(&s, Phase::A, std::iter::empty())
            .unwrap()
            .is_empty());
        let bad = json!({});
        assert_eq!(
            evaluate(&s, Phase::A, [("yesterday", &bad)])
                .unwrap_err()
                .ts,
            "yesterday"
        );
    }
}
