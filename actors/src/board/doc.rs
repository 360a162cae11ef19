//! The status document of SPEC §7.1 (status.json, `fushi status --json`, `GET /status`): its types, and what each state means.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::clock;

/// States of SPEC §3.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorState {
    Starting,
    Running,
    Backoff,
    Stopping,
    Stopped,
    Fatal,
}

impl ActorState {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorState::Starting => "starting",
            ActorState::Running => "running",
            ActorState::Backoff => "backoff",
            ActorState::Stopping => "stopping",
            ActorState::Stopped => "stopped",
            ActorState::Fatal => "fatal",
        }
    }
}

/// One actor's entry of status.json (SPEC §7.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActorStatus {
    pub name: String,
    pub state: ActorState,
    #[serde(default)]
    pub restart: String,
    #[serde(default)]
    pub restarts: u64,
    #[serde(default)]
    pub failures: u64,
    #[serde(default)]
    pub consecutive_failures: u32,
    #[serde(default)]
    pub recovered: u64,
    #[serde(default)]
    pub escalated: bool,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub since: Option<String>,
    #[serde(default)]
    pub next_restart_at: Option<String>,
    #[serde(default)]
    pub records: u64,
    /// Of `records`, those kept on `_quarantine` (bad input: too long, not UTF-8, not JSON).
    #[serde(default)]
    pub quarantined: u64,
}

impl ActorStatus {
    pub(super) fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            state: ActorState::Stopped,
            restart: "permanent".into(),
            restarts: 0,
            failures: 0,
            consecutive_failures: 0,
            recovered: 0,
            escalated: false,
            last_error: None,
            since: Some(clock::now_rfc3339()),
            next_restart_at: None,
            records: 0,
            quarantined: 0,
        }
    }
}

/// This node's part in leader election (SPEC §4.4), and the holder as this node last saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderStatus {
    pub enabled: bool,
    /// The holder's host, as its lock says (this node's own while it leads).
    pub host: Option<String>,
    /// The holder's epoch; without a lease, 1 (SPEC §4.1).
    pub epoch: u64,
    /// Since when the holder has held this epoch.
    pub since: Option<String>,
    /// `leader`, `standby` or `fenced` (could not renew, stopped collecting); `disabled` without
    /// `[leader] enabled`.
    #[serde(default = "disabled")]
    pub role: String,
    /// The holder's node name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// When the holder's lock last changed as this node saw it (its own renewal while leading):
    /// `fushi leader` shows the age of its last renewal from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed_at: Option<String>,
    /// Leases this node took over from another holder (a stale lock), since the daemon started.
    #[serde(default)]
    pub failovers: u64,
    /// What stands in the way right now (the lock unreachable, a lock fushi did not write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Since when no node has been seen leading, once that outlasted `stale_after + heartbeat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub none_since: Option<String>,
    /// The configured `stale_after`: a holder whose lock has not changed for longer is not
    /// leading any more, as far as this node can tell.
    #[serde(default)]
    pub stale_after_ms: u64,
}

fn disabled() -> String {
    "disabled".into()
}

impl Default for LeaderStatus {
    fn default() -> Self {
        Self {
            enabled: false,
            host: None,
            epoch: 1,
            since: None,
            role: disabled(),
            node: None,
            renewed_at: None,
            failovers: 0,
            error: None,
            none_since: None,
            stale_after_ms: 0,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigStatus {
    pub path: String,
    pub errors: Vec<String>,
}

/// The primary store as the sync actor last probed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrimaryState {
    Up,
    Down,
    /// Before the first probe.
    #[default]
    Unknown,
}

impl PrimaryState {
    /// What a probe found: `Some(up)`, or `None` before the first.
    pub fn probed(up: Option<bool>) -> Self {
        match up {
            Some(true) => PrimaryState::Up,
            Some(false) => PrimaryState::Down,
            None => PrimaryState::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PrimaryState::Up => "up",
            PrimaryState::Down => "down",
            PrimaryState::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for PrimaryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The local journal in its role of secondary store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecondaryState {
    /// Nothing waits in it for the primary.
    #[default]
    Idle,
    /// It holds records not yet on the primary.
    Used,
}

impl SecondaryState {
    pub fn as_str(self) -> &'static str {
        match self {
            SecondaryState::Idle => "idle",
            SecondaryState::Used => "used",
        }
    }
}

impl std::fmt::Display for SecondaryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The storage section of SPEC §7.1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageStatus {
    pub primary: PrimaryState,
    pub secondary: SecondaryState,
    pub journal_bytes: u64,
    pub lag_records: u64,
    /// The journal reached `max_local` (or the disk refuses writes): producers are held back.
    #[serde(default)]
    pub journal_full: bool,
    /// What is wrong with the journal's disk while it is (a write, fsync or open that fails;
    /// ids waiting for the primary's): health is red until it clears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_error: Option<String>,
    /// Records of the journal already on the primary, as the sync actor last counted them.
    /// Every change of the journal derives the lag from it, so the lag keeps growing while the
    /// sync actor is stopped or restarting instead of showing its last value.
    #[serde(skip)]
    pub forwarded: u64,
}

impl StorageStatus {
    /// Sets the lag and what follows from it.
    pub fn set_lag(&mut self, lag: u64, sync: &mut SyncStatus) {
        self.lag_records = lag;
        self.secondary = if lag > 0 {
            SecondaryState::Used
        } else {
            SecondaryState::Idle
        };
        sync.pending = lag > 0;
    }
}

impl Default for StorageStatus {
    fn default() -> Self {
        Self {
            primary: PrimaryState::Unknown,
            secondary: SecondaryState::Idle,
            journal_bytes: 0,
            lag_records: 0,
            journal_full: false,
            journal_error: None,
            forwarded: 0,
        }
    }
}

/// The last forwarding run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRun {
    pub at: String,
    pub items: u64,
    pub bytes: u64,
    pub ok: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    pub pending: bool,
    pub last: Option<SyncRun>,
    /// A journal record whose id the primary holds with other data: forwarding stops before it
    /// (skipping it would lose it) and health is red until it is resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
}

/// One SLO gate as the analyzer last left it (`slos` of the status document, `fushi top`,
/// the `fushi_slo_*` metrics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloStatus {
    pub name: String,
    pub stream: String,
    /// `p95`, `error_rate` or `lateness`.
    pub kind: String,
    pub metric: String,
    /// The rollout phase in force: A, B or C.
    pub phase: String,
    pub promotable: bool,
    /// Consecutive ok windows in this phase, and how many make it promotable.
    pub good_windows: u32,
    pub promote_after: u32,
    /// The window records are counted into now, and how many it holds so far.
    pub current: Option<SloWindowNow>,
    /// The last judged window.
    pub last: Option<SloWindowLast>,
    /// The open incident's id.
    pub incident: Option<String>,
    /// Windows judged per verdict (`ok`, `warn`, `violation`, `no_data`), ever.
    #[serde(default)]
    pub verdicts: std::collections::BTreeMap<String, u64>,
    /// Records that arrived after their window was judged, counted in none.
    #[serde(default)]
    pub too_late: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloWindowNow {
    pub start: String,
    pub end: String,
    pub records: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloWindowLast {
    pub start: String,
    pub end: String,
    pub value: Option<f64>,
    pub threshold: f64,
    pub verdict: String,
}

/// The whole status document: status.json, `fushi status --json` and `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusDoc {
    pub node: String,
    pub mode: String,
    /// When a mode set `--for` a while returns to the configured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_until: Option<String>,
    pub health: Health,
    pub started_at: String,
    pub pid: u32,
    /// Distinguishes this daemon process from the one that wrote an older status.json.
    pub instance: String,
    pub daemon_recovered: u64,
    /// Written `true` only by the status actor's final write of an ordered shutdown.
    pub clean_shutdown: bool,
    /// Where the daemon logs: `journald` or `text` (stderr); `fushi tail` reads accordingly.
    #[serde(default)]
    pub log: String,
    pub leader: LeaderStatus,
    #[serde(default)]
    pub storage: StorageStatus,
    #[serde(default)]
    pub sync: SyncStatus,
    pub config: ConfigStatus,
    /// The alert outbox: what is still owed to a person (SPEC §6).
    #[serde(default)]
    pub alerts: AlertsStatus,
    pub actors: Vec<ActorStatus>,
    /// SLO gates (with `[[slo]]` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slos: Vec<SloStatus>,
    /// What the time rules of health measured at this snapshot.
    #[serde(default)]
    pub patience: Patience,
}

/// The alert actor's outbox as of its last commit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertsStatus {
    /// Messages each channel still has to deliver (retrying or rate-limited among them).
    pub owed: BTreeMap<String, usize>,
    /// Alerts accepted and waiting for their group (`group_wait`) to close.
    pub pending: usize,
    /// Actors whose alerts are held because they flap.
    pub flapping: Vec<String>,
    /// Conditions a person was told of and has not heard the end of (`kind:actor`).
    pub open: Vec<String>,
    /// When the oldest message still owed was made (RFC 3339), if one is owed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_owed_at: Option<String>,
    /// The same, in ms since the Unix epoch, for health's time rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_owed_ms: Option<u64>,
}

/// The figures health's time rules (SPEC §7) were applied to, measured once at the snapshot, so
/// that every reader (`health`, `status`, `GET /health`, `top`, `STATUS=`) judges the same
/// figures by the same rule instead of each measuring again at its own moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Patience {
    /// How long a record may wait in the journal, and an actor start or back off, before health
    /// is degraded: `2 × sync.interval + io_timeout`, one sync that misses its turn and one
    /// that times out. A record waits for the next sync as a matter of course.
    pub limit_ms: u64,
    /// Age of the oldest journal record not yet on the primary; 0 when none waits.
    pub lag_age_ms: u64,
    /// Actors starting or in backoff for longer than `limit_ms`, or after failing twice in a row
    /// (a crash loop whose every backoff is short).
    pub unsettled: Vec<String>,
    /// Age of the oldest alert message a channel still owes; 0 when none is owed.
    #[serde(default)]
    pub alerts_owed_age_ms: u64,
}

impl Patience {
    /// The journal is not drained in time: its oldest record waits longer than the limit.
    pub fn journal_late(&self) -> bool {
        self.lag_age_ms > self.limit_ms
    }
}

/// Green (healthy), yellow (degraded) or red (critical); red beats yellow beats green.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Green,
    /// Before the first snapshot: nothing is known to be well yet.
    #[default]
    Yellow,
    Red,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Green => "green",
            Health::Yellow => "yellow",
            Health::Red => "red",
        }
    }

    /// What `fushi health` and `GET /health` call it.
    pub fn word(self) -> &'static str {
        match self {
            Health::Green => "healthy",
            Health::Yellow => "degraded",
            Health::Red => "critical",
        }
    }

    /// `fushi health`'s exit code, and the `fushi_health` gauge.
    pub fn code(self) -> u8 {
        match self {
            Health::Green => 0,
            Health::Yellow => 1,
            Health::Red => 2,
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permanent actor stopped (by hand, or on its way there): no grace, it is not coming back.
pub fn stopped_permanent(a: &ActorStatus) -> bool {
    a.restart == "permanent" && matches!(a.state, ActorState::Stopping | ActorState::Stopped)
}
