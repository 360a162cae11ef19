//! The schema of supervisor.toml (SPEC §8): every section and key, with its default.

use fushi_actors::supervisor::{RestartKind, RestartPolicy, Strategy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use std::path::PathBuf;
use std::time::Duration;

use super::units::{durations, opt_durations, ByteSize};

fn d(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node: NodeConfig,
    pub supervisor: SupervisorConfig,
    pub storage: StorageConfig,
    pub sync: SyncConfig,
    pub leader: LeaderConfig,
    pub control: ControlConfig,
    pub alert: AlertConfig,
    #[serde(rename = "collector")]
    pub collectors: Vec<CollectorConfig>,
    #[serde(rename = "slo")]
    pub slos: Vec<SloConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Prod,
    Debug,
    Diag,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Prod => "prod",
            Mode::Debug => "debug",
            Mode::Diag => "diag",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Defaults to the host name.
    pub id: Option<String>,
    pub data_dir: PathBuf,
    pub mode: Mode,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            id: None,
            data_dir: "data".into(),
            mode: Mode::Prod,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorConfig {
    #[serde(with = "durations")]
    pub backoff: Vec<Duration>,
    #[serde(with = "humantime_serde")]
    pub jitter: Duration,
    pub escalate_after: u32,
    #[serde(with = "humantime_serde")]
    pub stable_after: Duration,
    pub give_up_after: u32,
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Strategy of the `collectors` sub-supervisor.
    pub strategy: Strategy,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        let p = RestartPolicy::default();
        Self {
            backoff: p.backoff,
            jitter: p.jitter,
            escalate_after: p.escalate_after,
            stable_after: p.stable_after,
            give_up_after: p.give_up_after,
            shutdown_timeout: d(5),
            strategy: Strategy::OneForOne,
        }
    }
}

impl SupervisorConfig {
    pub fn policy(&self) -> RestartPolicy {
        RestartPolicy {
            backoff: self.backoff.clone(),
            jitter: self.jitter,
            escalate_after: self.escalate_after,
            stable_after: self.stable_after,
            give_up_after: self.give_up_after,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub primary: PathBuf,
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub io_timeout: Duration,
    pub max_local: ByteSize,
    pub max_record_bytes: ByteSize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            primary: "data/primary".into(),
            probe_interval: d(5),
            io_timeout: d(3),
            max_local: ByteSize(1 << 30),
            max_record_bytes: ByteSize(1 << 20),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    pub batch: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            interval: d(1),
            batch: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LeaderBackend {
    #[default]
    File,
    Etcd,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaderConfig {
    pub enabled: bool,
    pub backend: LeaderBackend,
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
    pub priority: i32,
    pub etcd_endpoints: Vec<String>,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            backend: LeaderBackend::File,
            heartbeat: d(5),
            stale_after: d(30),
            priority: 0,
            etcd_endpoints: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Defaults to `$XDG_RUNTIME_DIR/fushi.sock`, else `<data_dir>/fushi.sock`.
    pub socket: Option<PathBuf>,
    /// `IP:PORT` of the HTTP endpoint (/health, /metrics, /status); `""` disables it.
    pub http: String,
    pub http_token: Option<String>,
    pub allow_inject: bool,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            socket: None,
            http: "127.0.0.1:9752".into(),
            http_token: None,
            allow_inject: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertConfig {
    /// The same alert (kind + actor) within this is held back and counted.
    #[serde(with = "humantime_serde")]
    pub repeat_after: Duration,
    /// Alerts raised within this of the first go out as one message.
    #[serde(with = "humantime_serde")]
    pub group_wait: Duration,
    /// More escalations than this within `flap_window` report the actor once as flapping.
    pub flap_count: u32,
    #[serde(with = "humantime_serde")]
    pub flap_window: Duration,
    /// A flapping actor's alerts are held until it has been quiet this long.
    #[serde(with = "humantime_serde")]
    pub stable_after: Duration,
    /// Waits between a failed delivery and the next attempt; then `alert.failed`.
    #[serde(with = "durations")]
    pub retry: Vec<Duration>,
    #[serde(rename = "channel")]
    pub channels: Vec<AlertChannelConfig>,
    /// Message templates by name: escalation, recovered, fatal, ok, warn, incident, rollback.
    pub templates: BTreeMap<String, String>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            repeat_after: d(30 * 60),
            group_wait: d(10),
            flap_count: 3,
            flap_window: d(30 * 60),
            stable_after: d(10 * 60),
            retry: vec![d(5), d(10), d(15)],
            channels: Vec::new(),
            templates: BTreeMap::new(),
        }
    }
}

pub use fushi_actors::alert::template::NAMES as TEMPLATE_NAMES;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertChannelKind {
    Journald,
    Webhook,
    Command,
    File,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertChannelConfig {
    pub kind: AlertChannelKind,
    /// Its name in audit records and status (default: the kind, numbered from the second on).
    #[serde(default)]
    pub name: Option<String>,
    /// webhook: where to POST.
    #[serde(default)]
    pub url: Option<String>,
    /// webhook: `slack` (`{"text": …}`, the default) or `alertmanager` (v4 payload).
    #[serde(default)]
    pub format: Option<WebhookFormat>,
    /// webhook: extra request headers (an `Authorization`, say); masked in every message.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// command: the program and its arguments.
    #[serde(default)]
    pub argv: Vec<String>,
    /// command: run `argv[0]` by `/bin/sh -c`.
    #[serde(default)]
    pub shell: bool,
    /// command: extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// file: the JSONL file to append to.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// One attempt's bound.
    #[serde(default = "default_channel_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// The least time between two attempts (default 1 s for a webhook, else none).
    #[serde(default, with = "humantime_serde")]
    pub min_interval: Option<Duration>,
    /// The classes it takes (default all): escalation, recovered, fatal, daemon, config,
    /// storage, leader, slo.
    #[serde(default)]
    pub events: Vec<String>,
    /// Templates for this channel alone, over `[alert] templates`.
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
}

fn default_channel_timeout() -> Duration {
    d(10)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    Slack,
    Alertmanager,
}

/// tail: where a file seen for the first time is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    Beginning,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectorKind {
    Heartbeat,
    Command,
    Http,
    Tail,
    Listen,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    pub name: String,
    pub kind: CollectorKind,
    /// Defaults to the collector's name.
    #[serde(default)]
    pub stream: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub argv: Vec<String>,
    #[serde(default)]
    pub shell: bool,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    #[serde(default)]
    pub url: Option<String>,
    /// http: header values, literal, `"${VAR}"` from the environment or `"@FILE"` from a file.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// http: a top-level JSON array is one record per element.
    #[serde(default)]
    pub split: bool,
    /// http: each poll comes up to this much after `every` (default a tenth of `every`), so
    /// that collectors started together do not poll together. Not `jitter`: that is the
    /// restart delay's, as on every collector.
    #[serde(default, with = "humantime_serde")]
    pub poll_jitter: Option<Duration>,
    /// tail: a file or a glob (`/var/log/app/*.log*`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// tail: how often the glob is looked at for new, renamed and vanished files.
    #[serde(default, with = "humantime_serde")]
    pub glob_interval: Option<Duration>,
    /// tail: where a file found at the collector's very first start is read from.
    #[serde(default)]
    pub read_from: Option<ReadFrom>,
    /// tail: a last line without its newline is kept as it is after the file has not grown
    /// for this long.
    #[serde(default, with = "humantime_serde")]
    pub partial_after: Option<Duration>,
    /// tail: a file renamed out of the glob's reach or deleted is released once read to its
    /// end and not grown for this long (a writer may still be writing to it).
    #[serde(default, with = "humantime_serde")]
    pub rotate_wait: Option<Duration>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub every: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub restart: Option<RestartKind>,
    #[serde(default, with = "opt_durations")]
    pub backoff: Option<Vec<Duration>>,
    #[serde(default, with = "humantime_serde")]
    pub jitter: Option<Duration>,
    #[serde(default)]
    pub escalate_after: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub stable_after: Option<Duration>,
    #[serde(default)]
    pub give_up_after: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub shutdown_timeout: Option<Duration>,
}

fn yes() -> bool {
    true
}

/// The heartbeat collector's period when `every` is not set.
pub const DEFAULT_HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// The longest an http poll waits for its answer when `timeout` is not set (and at most half
/// of `every`, so that a slow answer still leaves room before the next poll).
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// tail: how often the glob is looked at when `glob_interval` is not set.
pub const DEFAULT_GLOB_INTERVAL: Duration = Duration::from_secs(1);
/// tail: how long an unterminated last line waits for its newline.
pub const DEFAULT_PARTIAL_AFTER: Duration = Duration::from_secs(5);
/// tail: how long a rotated-away file is read after its last growth (Fluent Bit's
/// `Rotate_Wait` is 5 s too).
pub const DEFAULT_ROTATE_WAIT: Duration = Duration::from_secs(5);

impl CollectorConfig {
    pub fn stream(&self) -> &str {
        self.stream.as_deref().unwrap_or(&self.name)
    }

    /// http: how long a poll waits for its answer.
    pub fn http_timeout(&self) -> Duration {
        self.timeout
            .unwrap_or_else(|| DEFAULT_HTTP_TIMEOUT.min(self.every.unwrap_or_default() / 2))
    }

    /// http: the random part added to each poll's period.
    pub fn http_poll_jitter(&self) -> Duration {
        self.poll_jitter
            .unwrap_or_else(|| self.every.unwrap_or_default() / 10)
    }

    /// The tree's defaults with this collector's overrides applied.
    pub fn policy(&self, defaults: &SupervisorConfig) -> RestartPolicy {
        let mut p = defaults.policy();
        if let Some(b) = &self.backoff {
            p.backoff = b.clone();
        }
        if let Some(j) = self.jitter {
            p.jitter = j;
        }
        if let Some(e) = self.escalate_after {
            p.escalate_after = e;
        }
        if let Some(s) = self.stable_after {
            p.stable_after = s;
        }
        if let Some(g) = self.give_up_after {
            p.give_up_after = g;
        }
        p
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SloKind {
    P95,
    ErrorRate,
    Lateness,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    pub name: String,
    pub stream: String,
    pub kind: SloKind,
    #[serde(default)]
    pub field: Option<String>,
    /// For `error_rate`: a record is an error when this field is truthy.
    #[serde(default)]
    pub predicate: Option<String>,
    #[serde(default = "default_window", with = "humantime_serde")]
    pub window: Duration,
    /// The rollout phase in force: A, B or C.
    #[serde(default = "default_phase")]
    pub phase: String,
    /// Threshold per phase: `thresholds = { A = 250.0, B = 200.0, C = 150.0 }`.
    pub thresholds: BTreeMap<String, f64>,
    #[serde(default = "default_warn_ratio")]
    pub warn_ratio: f64,
    /// Consecutive good windows before a phase may be promoted.
    #[serde(default = "default_promote_after")]
    pub promote_after: u32,
    /// argv of the command an incident runs once (no shell), e.g. `["/usr/local/bin/rollback", "--target=autosave"]`.
    #[serde(default)]
    pub rollback: Vec<String>,
    /// How long the rollback may run before its process group is killed.
    #[serde(default = "default_rollback_timeout", with = "humantime_serde")]
    pub rollback_timeout: Duration,
    /// A record stored more than this after its `ts` arrived late: a collection delay (warn).
    #[serde(default = "default_late_after", with = "humantime_serde")]
    pub late_after: Duration,
}

/// How long a window lasts when `window` is not set (seed 003's 15-minute collection cycle).
pub const DEFAULT_SLO_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Seed 003: a collection more than 5 minutes late raises a collection-delay event.
pub const DEFAULT_LATE_AFTER: Duration = Duration::from_secs(5 * 60);
/// How long a rollback command may run when `rollback_timeout` is not set.
pub const DEFAULT_ROLLBACK_TIMEOUT: Duration = Duration::from_secs(60);

impl SloConfig {
    /// The gate as the analyzer and `fushi slo --dry-run` apply it (the config is validated:
    /// phases are A, B or C).
    pub fn spec(&self) -> fushi_actors::slo::SloSpec {
        use fushi_actors::slo::{Phase, SloKind as K};
        fushi_actors::slo::SloSpec {
            name: self.name.clone(),
            stream: self.stream.clone(),
            kind: match self.kind {
                SloKind::P95 => K::P95,
                SloKind::ErrorRate => K::ErrorRate,
                SloKind::Lateness => K::Lateness,
            },
            field: self.field.clone(),
            predicate: self.predicate.clone(),
            window: self.window,
            late_after: self.late_after,
            phase: Phase::parse(&self.phase).unwrap_or(Phase::A),
            thresholds: self
                .thresholds
                .iter()
                .filter_map(|(k, v)| Some((Phase::parse(k)?, *v)))
                .collect(),
            warn_ratio: self.warn_ratio,
            promote_after: self.promote_after,
            rollback: self.rollback.clone(),
            rollback_timeout: self.rollback_timeout,
        }
    }
}

fn default_window() -> Duration {
    DEFAULT_SLO_WINDOW
}
fn default_late_after() -> Duration {
    DEFAULT_LATE_AFTER
}
fn default_rollback_timeout() -> Duration {
    DEFAULT_ROLLBACK_TIMEOUT
}
fn default_phase() -> String {
    "A".into()
}
fn default_warn_ratio() -> f64 {
    0.8
}
fn default_promote_after() -> u32 {
    8
}
