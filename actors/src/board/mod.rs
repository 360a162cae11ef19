//! The status board: the tree's live state in memory, shared by every supervisor and persisted by the status actor.
//!
//! Supervisors write each transition here synchronously (a short mutex section), so a transition
//! is never lost even while the `status` actor itself is restarting; the status actor is woken by
//! [`StatusBoard::changed`] and persists snapshots. Counters (`restarts`, `failures`, `recovered`)
//! are restored from status.json once per process, so they keep growing across daemon restarts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::clock;

mod age;
pub mod doc;
pub mod health;
mod metrics;

use age::AppendClock;
pub use doc::*;
use metrics::add_to;
pub use metrics::{Counter, Metrics, ACK_BUCKETS};

/// `2 × sync.interval + io_timeout` with the default config; the daemon sets its own.
const DEFAULT_LIMIT: Duration = Duration::from_secs(5);

/// What restoring from an older status.json found.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    /// The previous process ended without a clean-shutdown mark.
    pub unclean: bool,
    pub daemon_recovered: u64,
}

struct Inner {
    metrics: Metrics,
    doc: StatusDoc,
    limit: Duration,
    clock: AppendClock,
    /// When each actor entered its present state.
    entered: HashMap<String, Instant>,
    version: u64,
    restored: bool,
    shutting_down: bool,
}

#[derive(Clone)]
pub struct StatusBoard {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
}

impl StatusBoard {
    pub fn new(node: &str, mode: &str, config_path: &str) -> Self {
        let pid = std::process::id();
        let started_at = clock::now_rfc3339();
        let doc = StatusDoc {
            node: node.to_string(),
            mode: mode.to_string(),
            mode_until: None,
            health: Health::Yellow,
            instance: format!("{pid}@{started_at}#{:08x}", rand::random::<u32>()),
            started_at,
            pid,
            daemon_recovered: 0,
            clean_shutdown: false,
            log: "text".into(),
            leader: LeaderStatus::default(),
            storage: StorageStatus::default(),
            sync: SyncStatus::default(),
            config: ConfigStatus {
                path: config_path.to_string(),
                errors: Vec::new(),
            },
            alerts: AlertsStatus::default(),
            actors: Vec::new(),
            slos: Vec::new(),
            patience: Patience::default(),
        };
        Self {
            inner: Arc::new(Mutex::new(Inner {
                metrics: Metrics {
                    ack_buckets: vec![0; ACK_BUCKETS.len() + 1],
                    ..Metrics::default()
                },
                doc,
                limit: DEFAULT_LIMIT,
                clock: AppendClock::new(DEFAULT_LIMIT),
                entered: HashMap::new(),
                version: 0,
                restored: false,
                shutting_down: false,
            })),
            changed: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section below leaves the document consistent before it can panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self, mut g: MutexGuard<'_, Inner>) {
        g.version += 1;
        drop(g);
        self.changed.notify_one();
    }

    /// A change of a counter only (records, journal bytes, lag): it moves on every group commit
    /// under load, so it does not wake the status actor; its periodic flush picks it up.
    fn bump_quiet(&self, mut g: MutexGuard<'_, Inner>) {
        g.version += 1;
    }

    /// Resolves when the board changed since the last call (a permit is kept if nobody waited).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// Replaces SLO gate `s.name`'s entry (the analyzer, after each change of the gate).
    pub fn set_slo(&self, s: SloStatus) {
        let mut g = self.lock();
        // The current window's count moves with every record: like the other counters it does
        // not wake the status actor (its periodic flush picks it up); a verdict, phase or
        // incident does.
        let quiet = match g.doc.slos.iter_mut().find(|o| o.name == s.name) {
            Some(o) if *o == s => return,
            Some(o) => {
                let counts_only = SloStatus {
                    current: s.current.clone(),
                    ..o.clone()
                } == s;
                *o = s;
                counts_only
            }
            None => {
                g.doc.slos.push(s);
                false
            }
        };
        if quiet {
            self.bump_quiet(g);
        } else {
            self.bump(g);
        }
    }

    /// Updates the leader section (SPEC §7.1).
    pub fn update_leader(&self, f: impl FnOnce(&mut LeaderStatus)) {
        let mut g = self.lock();
        let before = g.doc.leader.clone();
        f(&mut g.doc.leader);
        if g.doc.leader != before {
            self.bump(g);
        }
    }

    /// Replaces the alerts section (SPEC §6).
    pub fn set_alerts(&self, alerts: AlertsStatus) {
        let mut g = self.lock();
        if g.doc.alerts != alerts {
            g.doc.alerts = alerts;
            self.bump(g);
        }
    }

    /// Updates (creating) an actor's entry.
    pub fn update(&self, name: &str, f: impl FnOnce(&mut ActorStatus)) {
        let mut g = self.lock();
        let idx = match g.doc.actors.iter().position(|a| a.name == name) {
            Some(i) => i,
            None => {
                g.doc.actors.push(ActorStatus::new(name));
                g.doc.actors.len() - 1
            }
        };
        let was = g.doc.actors[idx].state;
        f(&mut g.doc.actors[idx]);
        let state = g.doc.actors[idx].state;
        if state != was || !g.entered.contains_key(name) {
            g.entered.insert(name.to_string(), Instant::now());
        }
        self.bump(g);
    }

    /// Removes an actor's entry (a collector removed from the config).
    pub fn remove(&self, name: &str) {
        let mut g = self.lock();
        g.doc.actors.retain(|a| a.name != name);
        g.entered.remove(name);
        self.bump(g);
    }

    pub fn set_config_errors(&self, errors: Vec<String>) {
        let mut g = self.lock();
        g.doc.config.errors = errors;
        self.bump(g);
    }

    pub fn set_log_target(&self, target: &str) {
        let mut g = self.lock();
        g.doc.log = target.to_string();
        self.bump(g);
    }

    /// The mode, and until when if it was set `--for` a while.
    pub fn set_mode(&self, mode: &str, until: Option<String>) {
        let mut g = self.lock();
        g.doc.mode = mode.to_string();
        g.doc.mode_until = until;
        self.bump(g);
    }

    /// The journal's size and records, and whether producers are held back (full or failing
    /// disk); the lag follows from the records (see [`StorageStatus::forwarded`]).
    pub fn set_journal(&self, bytes: u64, records: u64, full: bool) {
        self.storage_locked(Some(records), |s, sync| {
            s.journal_bytes = bytes;
            s.journal_full = full;
            s.set_lag(records.saturating_sub(s.forwarded), sync);
        });
    }

    /// The journal released `records` forwarded records with their segments: they leave the
    /// journal's count and its forwarded count together. Storage says so before it publishes the
    /// smaller count, so the lag derived from the two is never understated in between (the sync
    /// actor publishes its own count only at the end of a tick).
    pub fn released(&self, records: u64) {
        let mut g = self.lock();
        let f = &mut g.doc.storage.forwarded;
        *f = f.saturating_sub(records);
    }

    /// How long the journal may hold a record (and an actor start or back off) before health is
    /// degraded; see [`Patience::limit_ms`].
    pub fn set_patience(&self, limit: Duration) {
        let mut g = self.lock();
        g.limit = limit;
        g.clock.resolution = limit / 32;
        self.bump(g);
    }

    pub fn update_storage(&self, f: impl FnOnce(&mut StorageStatus, &mut SyncStatus)) {
        self.storage_locked(None, f)
    }

    /// One critical section for the change, the append clock and the switch counter, so that
    /// the clock never sees a lag that does not belong to its journal count.
    fn storage_locked(
        &self,
        records: Option<u64>,
        f: impl FnOnce(&mut StorageStatus, &mut SyncStatus),
    ) {
        let mut g = self.lock();
        let before = (g.doc.storage.clone(), g.doc.sync.clone());
        let inner = &mut *g;
        f(&mut inner.doc.storage, &mut inner.doc.sync);
        let (now, lag) = (Instant::now(), inner.doc.storage.lag_records);
        match records {
            Some(r) => inner.clock.journal(r, lag, now),
            None => inner.clock.lag(lag, now),
        }
        let (from, to) = (before.0.primary, inner.doc.storage.primary);
        // As the sync actor audits a switch: every change, and a first probe that finds it down.
        if from != to && (from != PrimaryState::Unknown || to == PrimaryState::Down) {
            inner.metrics.storage_switches += 1;
        }
        let (st, sy) = (&g.doc.storage, &g.doc.sync);
        let shape = |s: &StorageStatus, y: &SyncStatus| {
            (
                s.primary,
                s.secondary,
                s.journal_full,
                s.journal_error.clone(),
                y.conflict.clone(),
                y.pending,
                y.last.as_ref().map(|l| l.ok),
            )
        };
        if shape(st, sy) != shape(&before.0, &before.1) {
            self.bump(g);
        } else if (st, sy) != (&before.0, &before.1) {
            self.bump_quiet(g);
        }
    }

    /// Adds to a counter; no status write is triggered (metrics are read on demand).
    pub fn count(&self, counter: Counter, n: u64) {
        *self.lock().metrics.counter(counter) += n;
    }

    /// Records a sync wrote to the primary.
    pub fn count_forwarded(&self, n: u64) {
        self.count(Counter::RecordsForwarded, n);
    }

    /// Input lines `collector` answered with an error.
    pub fn rejected(&self, collector: &str, n: u64) {
        add_to(&mut self.lock().metrics.rejected, collector, n);
    }

    /// Records of `collector` made durable on the `_quarantine` stream.
    pub fn quarantined(&self, collector: &str, n: u64) {
        let mut g = self.lock();
        add_to(&mut g.metrics.quarantined, collector, n);
        if let Some(a) = g.doc.actors.iter_mut().find(|a| a.name == collector) {
            a.quarantined += n;
            self.bump_quiet(g);
        } else {
            drop(g);
            self.update(collector, |a| a.quarantined += n);
        }
    }

    /// Records how long producers waited for records to be durable.
    pub fn observe_ack(&self, latency: std::time::Duration, records: u64) {
        let secs = latency.as_secs_f64();
        let i = ACK_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(ACK_BUCKETS.len());
        let mut g = self.lock();
        g.metrics.ack_buckets[i] += records;
        g.metrics.ack_sum += secs * records as f64;
        g.metrics.ack_count += records;
    }

    pub fn metrics(&self) -> Metrics {
        self.lock().metrics.clone()
    }

    /// Records of collector `name` made durable.
    pub fn add_records(&self, name: &str, n: u64) {
        let mut g = self.lock();
        g.metrics.records_ingested += n;
        if let Some(a) = g.doc.actors.iter_mut().find(|a| a.name == name) {
            a.records += n;
            self.bump_quiet(g);
        } else {
            drop(g);
            self.update(name, |a| a.records += n);
        }
    }

    pub fn mark_shutting_down(&self) {
        let mut g = self.lock();
        g.shutting_down = true;
        self.bump(g);
    }

    pub fn shutting_down(&self) -> bool {
        self.lock().shutting_down
    }

    pub fn get(&self, name: &str) -> Option<ActorStatus> {
        self.lock()
            .doc
            .actors
            .iter()
            .find(|a| a.name == name)
            .cloned()
    }

    /// A consistent copy of the document with health computed, and its version.
    pub fn snapshot(&self) -> (StatusDoc, u64) {
        let g = self.lock();
        let mut doc = g.doc.clone();
        let now = Instant::now();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let unsettled = doc
            .actors
            .iter()
            .filter(|a| {
                // A second failure in a row is a crash loop, however short each backoff: no
                // grace for it. A restart that runs again is settled until it fails again.
                matches!(a.state, ActorState::Starting | ActorState::Backoff)
                    && (a.consecutive_failures >= 2
                        || g.entered
                            .get(&a.name)
                            .is_some_and(|at| now.duration_since(*at) > g.limit))
            })
            .map(|a| a.name.clone())
            .collect();
        let wall_ms = crate::clock::wall_ms();
        doc.patience = Patience {
            limit_ms: ms(g.limit),
            lag_age_ms: ms(g.clock.oldest(doc.storage.lag_records, now)),
            unsettled,
            alerts_owed_age_ms: doc
                .alerts
                .oldest_owed_ms
                .map_or(0, |at| wall_ms.saturating_sub(at)),
        };
        doc.health = health::assess(&doc).0;
        (doc, g.version)
    }

    /// Merges counters from the status.json a previous process (or a previous run of the status
    /// actor in this process) wrote. Only the first call per process merges; it reports whether
    /// the previous daemon ended uncleanly, in which case `daemon_recovered` has been incremented.
    pub fn restore_once(&self, old: Option<StatusDoc>) -> Option<Restored> {
        let mut g = self.lock();
        if g.restored {
            return None;
        }
        g.restored = true;
        let Some(old) = old else {
            return Some(Restored {
                unclean: false,
                daemon_recovered: g.doc.daemon_recovered,
            });
        };
        let unclean = !old.clean_shutdown && old.instance != g.doc.instance;
        g.doc.daemon_recovered = old.daemon_recovered + u64::from(unclean);
        for prev in old.actors {
            let idx = match g.doc.actors.iter().position(|a| a.name == prev.name) {
                Some(i) => i,
                None => {
                    let mut fresh = ActorStatus::new(&prev.name);
                    fresh.restart = prev.restart.clone();
                    g.doc.actors.push(fresh);
                    g.doc.actors.len() - 1
                }
            };
            let a = &mut g.doc.actors[idx];
            a.restarts += prev.restarts;
            a.failures += prev.failures;
            a.recovered += prev.recovered;
            a.records += prev.records;
            if a.last_error.is_none() {
                a.last_error = prev.last_error;
            }
        }
        let restored = Restored {
            unclean,
            daemon_recovered: g.doc.daemon_recovered,
        };
        self.bump(g);
        Some(restored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(b: &StatusBoard, name: &str) {
        b.update(name, |a| a.state = ActorState::Running);
    }

    #[tokio::test(start_paused = true)]
    async fn health_rules() {
        let b = StatusBoard::new("n", "prod", "c.toml");
        running(&b, "status");
        assert_eq!(b.snapshot().0.health, Health::Green);
        b.update("collectors/a", |a| a.state = ActorState::Backoff);
        assert_eq!(
            b.snapshot().0.health,
            Health::Green,
            "a backoff within the grace"
        );
        b.set_patience(Duration::ZERO);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(b.snapshot().0.health, Health::Yellow, "beyond it");
        assert_eq!(b.snapshot().0.patience.unsettled, ["collectors/a"]);
        b.update("collectors/a", |a| a.escalated = true);
        assert_eq!(b.snapshot().0.health, Health::Red);
        b.update("collectors/a", |a| {
            a.escalated = false;
            a.state = ActorState::Running
        });
        b.set_config_errors(vec!["bad".into()]);
        assert_eq!(b.snapshot().0.health, Health::Red);
        b.set_config_errors(vec![]);
        b.set_mode("debug", None);
        assert_eq!(b.snapshot().0.health, Health::Yellow);
    }

    #[test]
    fn alerts_owed_for_long_degrade_health_and_say_to_whom() {
        let b = StatusBoard::new("n", "prod", "c.toml");
        running(&b, "status");
        let now = crate::clock::wall_ms();
        let owed = |age_ms: u64| AlertsStatus {
            owed: [("webhook".to_string(), 2)].into(),
            oldest_owed_ms: Some(now - age_ms),
            ..Default::default()
        };
        b.set_alerts(owed(60_000));
        assert_eq!(
            health::assess(&b.snapshot().0),
            (Health::Green, vec![]),
            "a minute of retries is routine"
        );
        b.set_alerts(owed(6 * 60_000));
        let (h, why) = health::assess(&b.snapshot().0);
        assert_eq!(h, Health::Yellow);
        assert!(
            why[0].starts_with("alert messages owed (2 to webhook) for 360s")
                && why[0].contains("a person may not have been told"),
            "{why:?}"
        );
    }

    #[test]
    fn a_standby_is_healthy_with_its_collectors_stopped_and_fenced_or_leaderless_is_not() {
        let b = StatusBoard::new("n", "prod", "c.toml");
        running(&b, "status");
        b.update("collectors/a", |a| {
            a.restart = "permanent".into();
            a.state = ActorState::Stopped;
        });
        let (h, why) = health::assess(&b.snapshot().0);
        assert_eq!(
            h,
            Health::Yellow,
            "without a lease, a stopped collector is news"
        );
        assert_eq!(why, ["collectors/a is stopped"]);
        b.update_leader(|l| {
            l.enabled = true;
            l.role = "standby".into();
        });
        assert_eq!(health::assess(&b.snapshot().0), (Health::Green, vec![]));
        b.update_leader(|l| {
            l.role = "fenced".into();
            l.error = Some("no answer within 3s (primary hung)".into());
        });
        let (h, why) = health::assess(&b.snapshot().0);
        assert_eq!(h, Health::Yellow);
        assert!(
            why[0].starts_with("fenced: this node could not renew")
                && why[0].ends_with("(no answer within 3s (primary hung))"),
            "{why:?}"
        );
        b.update_leader(|l| l.none_since = Some("2026-12-01T10:00:00Z".into()));
        let (h, why) = health::assess(&b.snapshot().0);
        assert_eq!(h, Health::Red);
        assert!(
            why[0].starts_with("no node has led since 2026-12-01T10:00:00Z"),
            "{why:?}"
        );
        b.update_leader(|l| {
            l.role = "leader".into();
            l.none_since = None;
            l.error = None;
        });
        let (h, why) = health::assess(&b.snapshot().0);
        assert_eq!(
            (h, why),
            (Health::Yellow, vec!["collectors/a is stopped".to_string()]),
            "a leader's stopped collector is news again"
        );
    }

    #[test]
    fn a_crash_loop_and_a_stopped_permanent_actor_degrade_without_grace() {
        let b = StatusBoard::new("n", "prod", "c.toml");
        b.update("collectors/a", |a| {
            a.state = ActorState::Backoff;
            a.consecutive_failures = 1
        });
        assert_eq!(
            b.snapshot().0.health,
            Health::Green,
            "one failure, restarting"
        );
        b.update("collectors/a", |a| a.consecutive_failures = 2);
        assert_eq!(
            b.snapshot().0.health,
            Health::Yellow,
            "failing again before stable"
        );
        b.update("collectors/a", |a| a.state = ActorState::Running);
        assert_eq!(b.snapshot().0.health, Health::Green, "running again");
        b.update("collectors/a", |a| a.consecutive_failures = 0);
        b.update("status", |a| a.state = ActorState::Stopped);
        assert_eq!(b.snapshot().0.health, Health::Yellow);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lag_degrades_only_once_its_oldest_record_outlasts_the_limit() {
        let b = StatusBoard::new("n", "prod", "c.toml");
        b.set_patience(Duration::from_millis(300));
        running(&b, "status");
        b.update_storage(|s, _| s.primary = PrimaryState::Up);
        // One record every 20 ms, each forwarded before the next: never late, however many.
        let mut n = 0;
        for _ in 0..30 {
            n += 1;
            b.set_journal(100 * n, n, false);
            assert_eq!(
                b.snapshot().0.health,
                Health::Green,
                "a record waiting its turn"
            );
            b.update_storage(|s, y| {
                s.forwarded = n;
                s.set_lag(0, y);
            });
            tokio::time::advance(Duration::from_millis(20)).await;
        }
        // Forwarding stalls while records keep coming, one every 10 ms: late exactly once the
        // first unforwarded one is older than the limit, give or take the clock's resolution.
        let stalled = Instant::now();
        let late = loop {
            n += 1;
            b.set_journal(100 * n, n, false);
            let doc = b.snapshot().0;
            if doc.health == Health::Yellow {
                break doc;
            }
            assert!(stalled.elapsed() < Duration::from_secs(5), "never late");
            tokio::time::advance(Duration::from_millis(10)).await;
        };
        let waited = stalled.elapsed();
        assert!(
            waited > Duration::from_millis(300) && waited <= Duration::from_millis(320),
            "late after {waited:?}"
        );
        assert!(late.patience.journal_late());
        assert!(late.patience.lag_age_ms >= 300);
        // Part forwarded: the oldest left is younger; all forwarded: nothing waits.
        b.update_storage(|s, y| {
            s.forwarded = n - 1;
            s.set_lag(1, y);
        });
        let doc = b.snapshot().0;
        assert!(doc.patience.lag_age_ms < 100, "{:?}", doc.patience);
        assert_eq!(doc.health, Health::Green);
        b.update_storage(|s, y| {
            s.forwarded = n;
            s.set_lag(0, y);
        });
        assert_eq!(b.snapshot().0.patience.lag_age_ms, 0);
    }

    #[test]
    fn a_release_between_two_sync_counts_keeps_the_lag() {
        let b = StatusBoard::new("n", "prod", "c.toml");
        b.set_journal(15_000, 150, false);
        b.update_storage(|s, y| {
            s.forwarded = 100;
            s.set_lag(50, y);
        });
        // Storage releases the 100 forwarded records' segments mid-tick.
        b.released(100);
        b.set_journal(5_000, 50, false);
        let doc = b.snapshot().0;
        assert_eq!(doc.storage.lag_records, 50, "the 50 still wait");
        assert_eq!(doc.storage.secondary, SecondaryState::Used);
        assert!(doc.sync.pending);
    }

    #[test]
    fn storage_switches_count_as_audited() {
        let b = StatusBoard::new("n", "prod", "c.toml");
        use PrimaryState::{Down, Up};
        for p in [Up, Up, Down, Up] {
            b.update_storage(|s, _| s.primary = p);
        }
        assert_eq!(b.metrics().storage_switches, 2, "unknown → up is no switch");
        let c = StatusBoard::new("n", "prod", "c.toml");
        c.update_storage(|s, _| s.primary = PrimaryState::Down);
        assert_eq!(
            c.metrics().storage_switches,
            1,
            "found down at the first probe"
        );
    }

    #[test]
    fn restore_merges_counters_once_and_counts_unclean_exit() {
        let old = StatusBoard::new("n", "prod", "c.toml");
        old.update("collectors/a", |a| {
            a.restarts = 3;
            a.recovered = 1
        });
        let (mut doc, _) = old.snapshot();
        doc.daemon_recovered = 2;
        let b = StatusBoard::new("n", "prod", "c.toml");
        b.update("collectors/a", |a| a.restarts = 1);
        let r = b.restore_once(Some(doc.clone())).unwrap();
        assert!(r.unclean);
        assert_eq!(r.daemon_recovered, 3);
        assert_eq!(b.get("collectors/a").unwrap().restarts, 4);
        assert_eq!(
            b.restore_once(Some(doc)),
            None,
            "second restore must not double-count"
        );
        assert_eq!(b.get("collectors/a").unwrap().restarts, 4);
    }

    #[test]
    fn counters_change_quietly_and_transitions_wake_the_status_actor() {
        use futures::FutureExt;
        let b = StatusBoard::new("n", "prod", "c.toml");
        running(&b, "collectors/a");
        assert!(b.changed().now_or_never().is_some(), "a transition wakes");
        let v = b.snapshot().1;
        b.add_records("collectors/a", 5);
        b.set_journal(4096, 0, false);
        b.update_storage(|s, _| s.lag_records = 7);
        assert!(
            b.changed().now_or_never().is_none(),
            "counters alone do not wake"
        );
        let (doc, v2) = b.snapshot();
        assert!(
            v2 > v,
            "yet the version moves, so the periodic flush writes them"
        );
        assert_eq!(
            (
                doc.actors[0].records,
                doc.storage.journal_bytes,
                doc.storage.lag_records
            ),
            (5, 4096, 7)
        );
        b.update_storage(|s, _| s.secondary = SecondaryState::Used);
        assert!(
            b.changed().now_or_never().is_some(),
            "secondary idle → used is a transition"
        );
        b.set_journal(4096, 0, true);
        assert!(
            b.changed().now_or_never().is_some(),
            "a full journal is a transition"
        );
    }

    #[test]
    fn the_lag_follows_the_journal_also_while_the_sync_actor_is_away() {
        use futures::FutureExt;
        let b = StatusBoard::new("n", "prod", "c.toml");
        // The sync actor counted 10 records of the journal as on the primary, then stopped.
        b.update_storage(|s, y| {
            s.forwarded = 10;
            s.set_lag(0, y);
        });
        let _ = b.changed().now_or_never();
        b.set_journal(8192, 25, false);
        let doc = b.snapshot().0;
        assert_eq!(doc.storage.lag_records, 15);
        assert_eq!(doc.storage.secondary, SecondaryState::Used);
        assert!(doc.sync.pending);
        assert!(
            b.changed().now_or_never().is_some(),
            "records waiting is a transition"
        );
        b.set_journal(9000, 40, false);
        assert_eq!(b.snapshot().0.storage.lag_records, 30);
        assert!(
            !serde_json::to_string(&b.snapshot().0)
                .unwrap()
                .contains("forwarded"),
            "the count is not part of status.json"
        );
    }

    #[test]
    fn metrics_count_and_bucket() {
        let b = StatusBoard::new("n", "prod", "c.toml");
        b.add_records("collectors/a", 3);
        b.add_records("collectors/a", 2);
        b.count(Counter::RecordsForwarded, 4);
        b.rejected("collectors/a", 1);
        b.quarantined("collectors/a", 2);
        b.observe_ack(std::time::Duration::from_micros(700), 4);
        b.observe_ack(std::time::Duration::from_secs(10), 1);
        let m = b.metrics();
        assert_eq!((m.records_ingested, m.records_forwarded), (5, 4));
        assert_eq!(
            (m.rejected["collectors/a"], m.quarantined["collectors/a"]),
            (1, 2)
        );
        assert_eq!(m.ack_buckets[1], 4, "0.7 ms falls in the 1 ms bucket");
        assert_eq!(m.ack_buckets[ACK_BUCKETS.len()], 1, "beyond the last bound");
        assert_eq!(m.ack_count, 5);
    }

    #[test]
    fn clean_shutdown_is_not_a_crash() {
        let old = StatusBoard::new("n", "prod", "c.toml");
        let (mut doc, _) = old.snapshot();
        doc.clean_shutdown = true;
        let b = StatusBoard::new("n", "prod", "c.toml");
        assert!(!b.restore_once(Some(doc)).unwrap().unclean);
        assert_eq!(b.snapshot().0.daemon_recovered, 0);
    }
}
