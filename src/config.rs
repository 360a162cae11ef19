//! supervisor.toml: the schema of SPEC §8, its validation, and errors that name the file, line and key.
//!
//! Every section of §8 parses from the start, so a config written for parts that land later
//! already validates. Unknown keys are errors (`deny_unknown_fields`), durations are humantime
//! strings, sizes are bytes or strings with units, and relative paths are relative to the config
//! file. Semantic errors carry the key path, which is mapped back to a line through toml's spanned
//! document, so every error reads `FILE:LINE:COL: KEY: what is wrong; what to do`.

use fushi_actors::primary::storable_stream;
use fushi_actors::records::QUARANTINE;
use fushi_actors::supervisor::{RestartKind, RestartPolicy, Strategy};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Exit code for configuration errors (EX_CONFIG).
pub const EX_CONFIG: u8 = 78;

/// The shortest restart delay a backoff step may ask for: at most 10 restarts a second per
/// child. A zero step takes the supervisor's immediate path (a restart in microseconds), so a
/// command that fails at once is restarted in a busy loop, each restart audited (~800 a second
/// and ~400 KB/s of audit, issue 9); a 5 ms step still spins (~100 a second, ~55 KB/s). At
/// 100 ms a failing `false` is restarted 9.5 times a second, ~5 KB/s of audit (measured on the
/// debug binary). The integration tests' crash loops use this floor too, with few restarts.
pub const MIN_RESTART_DELAY: Duration = Duration::from_millis(100);

/// The smallest journal bound. Segments are `max_local / 8` but at least 4 KiB (`segment_sizes`
/// in src/tree.rs), and only closed segments can be released: at 16 KiB the active segment is
/// still at most a quarter of the bound, below it a full journal could be mostly one segment
/// that never frees a byte, and at 0 every append waits forever.
pub const MIN_MAX_LOCAL: u64 = 16 << 10;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; create it or pass -c FILE")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{message}")]
    Unsupported { message: String },
    #[error("{}:{line}:{col}: {key}{message}\n  {line} | {text}", path.display(), key = key_prefix(.key))]
    Invalid {
        path: PathBuf,
        line: usize,
        col: usize,
        key: String,
        message: String,
        text: String,
    },
}

fn key_prefix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

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
    #[serde(with = "humantime_serde")]
    pub repeat_after: Duration,
    #[serde(rename = "channel")]
    pub channels: Vec<AlertChannelConfig>,
    /// Message templates by name: escalation, recovered, ok, warn, incident, rollback.
    pub templates: BTreeMap<String, String>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            repeat_after: d(30 * 60),
            channels: Vec::new(),
            templates: BTreeMap::new(),
        }
    }
}

pub const TEMPLATE_NAMES: &[&str] = &[
    "escalation",
    "recovered",
    "ok",
    "warn",
    "incident",
    "rollback",
];

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
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub argv: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub template: Option<String>,
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
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub path: Option<PathBuf>,
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

impl CollectorConfig {
    pub fn stream(&self) -> &str {
        self.stream.as_deref().unwrap_or(&self.name)
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
    #[serde(default)]
    pub rollback: Vec<String>,
}

fn default_window() -> Duration {
    d(15 * 60)
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

/// A byte count: an integer, or a string such as `"512 MiB"` or `"1GB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = (s[..split].trim(), s[split..].trim());
        let n: f64 = num.parse().map_err(|_| {
            format!("invalid size {s:?}: expected e.g. 1048576, \"512 MiB\" or \"1GB\"")
        })?;
        let mult: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            other => {
                return Err(format!(
                "unknown size unit {other:?} in {s:?}: use B, KB, KiB, MB, MiB, GB, GiB, TB or TiB"
            ))
            }
        };
        Ok(ByteSize((n * mult as f64) as u64))
    }
}

impl fmt::Display for ByteSize {
    /// In the largest binary unit that divides it, so that errors echo what a config would say.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let n = self.0;
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if n != 0 && n.trailing_zeros() >= shift {
                return write!(f, "{} {unit}", n >> shift);
            }
        }
        write!(f, "{n} B")
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte count such as 1048576 or \"512 MiB\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        de.deserialize_any(V)
    }
}

/// `["5s", "10s"]` ⇄ `Vec<Duration>` (humantime_serde covers single durations only).
mod durations {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<String>::deserialize(de)?
            .iter()
            .map(|s| humantime::parse_duration(s).map_err(serde::de::Error::custom))
            .collect()
    }

    pub fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|d| humantime::format_duration(*d).to_string()))
    }
}

mod opt_durations {
    use serde::{Deserializer, Serializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        de: D,
    ) -> Result<Option<Vec<Duration>>, D::Error> {
        super::durations::deserialize(de).map(Some)
    }

    pub fn serialize<S: Serializer>(v: &Option<Vec<Duration>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::durations::serialize(v, s),
            None => s.serialize_none(),
        }
    }
}

/// One step of a key path, for mapping a semantic error back to a line.
#[derive(Debug, Clone)]
enum Seg {
    Key(&'static str),
    Index(usize),
}

struct Problem {
    at: Vec<Seg>,
    message: String,
}

fn key_string(at: &[Seg]) -> String {
    let mut s = String::new();
    for seg in at {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

impl Config {
    /// Reads and validates a config file; returns the text too, to be kept as the last good copy.
    pub fn load(path: &Path) -> Result<(Config, String), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg = Self::parse(&text, path, base_dir(path))?;
        Ok((cfg, text))
    }

    /// Parses `text` (shown as `path` in errors) with relative paths resolved against `base`.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            invalid(path, text, offset, String::new(), e.message().to_string())
        })?;
        // max_record_bytes defaults to 1 MiB, or to max_local when the journal is bounded below
        // that: a default must not make a small journal invalid, only a value set above it.
        let st = &mut cfg.storage;
        if st.max_record_bytes.0 > st.max_local.0 && !is_set(text, "storage", "max_record_bytes") {
            st.max_record_bytes = st.max_local;
        }
        if let Some(p) = cfg.validate().into_iter().next() {
            let offset = locate(text, &p.at).unwrap_or(0);
            return Err(invalid(path, text, offset, key_string(&p.at), p.message));
        }
        cfg.resolve_paths(base);
        Ok(cfg)
    }

    pub fn node_id(&self) -> String {
        self.node
            .id
            .clone()
            .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.node.data_dir);
        abs(&mut self.storage.primary);
        if let Some(s) = &mut self.control.socket {
            abs(s);
        }
        for c in &mut self.collectors {
            if let Some(p) = &mut c.path {
                abs(p);
            }
            if let Some(p) = &mut c.cwd {
                abs(p);
            }
            if let Some(sock) = c.address.as_deref().and_then(|a| a.strip_prefix("unix:")) {
                let mut p = PathBuf::from(sock);
                abs(&mut p);
                c.address = Some(format!("unix:{}", p.display()));
            }
        }
        for ch in &mut self.alert.channels {
            if let Some(p) = &mut ch.path {
                abs(p);
            }
        }
    }

    fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |at: Vec<Seg>, message: String| out.push(Problem { at, message });
        use Seg::{Index, Key};

        if let Some(id) = &self.node.id {
            if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c == '/') {
                bad(
                    vec![Key("node"), Key("id")],
                    format!("invalid node id {id:?}: use a name without spaces or slashes"),
                );
            }
        }
        let s = &self.supervisor;
        let sup = |k| vec![Key("supervisor"), Key(k)];
        if let Some((i, m)) = backoff_problem(&s.backoff) {
            bad(indexed(sup("backoff"), i), m);
        } else if let Some(m) = jitter_problem(s.jitter, &s.backoff, false) {
            bad(sup("jitter"), m);
        }
        if s.escalate_after == 0 {
            bad(sup("escalate_after"), "must be at least 1".into());
        }
        let periods = [
            (sup("stable_after"), s.stable_after, STABLE_AFTER_WHY),
            (sup("shutdown_timeout"), s.shutdown_timeout, SHUTDOWN_WHY),
            (
                vec![Key("storage"), Key("probe_interval")],
                self.storage.probe_interval,
                "the primary would never be probed, so it would never be found up",
            ),
            (
                vec![Key("storage"), Key("io_timeout")],
                self.storage.io_timeout,
                "every operation on the primary would time out",
            ),
            (
                vec![Key("sync"), Key("interval")],
                self.sync.interval,
                "nothing would ever be forwarded to the primary",
            ),
            (
                vec![Key("leader"), Key("heartbeat")],
                self.leader.heartbeat,
                "the lease would be renewed in a busy loop",
            ),
            (
                vec![Key("alert"), Key("repeat_after")],
                self.alert.repeat_after,
                "the same alert would be sent again at every occurrence",
            ),
        ];
        for (at, value, why) in periods {
            if let Some(m) = zero_problem(value, why) {
                bad(at, m);
            }
        }
        let st = &self.storage;
        if st.max_local.0 < MIN_MAX_LOCAL {
            bad(
                vec![Key("storage"), Key("max_local")],
                format!(
                    "{} is below the minimum of {}: the journal keeps records in segments of at \
                     least 4 KiB and can free only closed ones, so it needs room for four; use at \
                     least \"16 KiB\"",
                    st.max_local,
                    ByteSize(MIN_MAX_LOCAL)
                ),
            );
        }
        if st.max_record_bytes.0 == 0 {
            bad(
                vec![Key("storage"), Key("max_record_bytes")],
                "must be greater than 0".into(),
            );
        } else if st.max_record_bytes.0 > st.max_local.0 {
            bad(
                vec![Key("storage"), Key("max_record_bytes")],
                format!(
                    "{} is above max_local ({}): one record would not fit in the journal; \
                     lower it or raise max_local",
                    st.max_record_bytes, st.max_local
                ),
            );
        }
        if self.sync.batch == 0 {
            bad(vec![Key("sync"), Key("batch")], "must be at least 1".into());
        }
        if self.leader.enabled
            && self.leader.backend == LeaderBackend::Etcd
            && self.leader.etcd_endpoints.is_empty()
        {
            bad(
                vec![Key("leader"), Key("etcd_endpoints")],
                "backend = \"etcd\" needs at least one endpoint, e.g. [\"http://127.0.0.1:2379\"]"
                    .into(),
            );
        }
        if self.leader.heartbeat >= self.leader.stale_after {
            bad(
                vec![Key("leader"), Key("heartbeat")],
                format!(
                    "heartbeat ({}) must be shorter than stale_after ({})",
                    humantime::format_duration(self.leader.heartbeat),
                    humantime::format_duration(self.leader.stale_after)
                ),
            );
        }
        match self.control.http.parse::<SocketAddr>() {
            // No HTTP endpoint at all.
            Err(_) if self.control.http.is_empty() => {}
            Err(_) => bad(
                vec![Key("control"), Key("http")],
                format!(
                    "invalid address {:?}: expected IP:PORT such as \"127.0.0.1:9752\", or \"\" for no HTTP endpoint",
                    self.control.http
                ),
            ),
            Ok(addr)
                if !addr.ip().is_loopback()
                    && self.control.http_token.as_deref().unwrap_or("").is_empty() =>
            {
                bad(vec![Key("control"), Key("http")], format!("{addr} is not a loopback address: set control.http_token, or bind to 127.0.0.1"));
            }
            Ok(_) => {}
        }
        for name in self.alert.templates.keys() {
            if !TEMPLATE_NAMES.contains(&name.as_str()) {
                bad(
                    vec![Key("alert"), Key("templates")],
                    format!(
                        "unknown template {name:?}; known: {}",
                        TEMPLATE_NAMES.join(", ")
                    ),
                );
            }
        }
        for (i, ch) in self.alert.channels.iter().enumerate() {
            let at = |k| vec![Key("alert"), Key("channel"), Index(i), Key(k)];
            match ch.kind {
                AlertChannelKind::Webhook if ch.url.is_none() => {
                    bad(at("url"), "a webhook channel needs url".into())
                }
                AlertChannelKind::Command if ch.argv.is_empty() => {
                    bad(at("argv"), "a command channel needs argv".into())
                }
                AlertChannelKind::File if ch.path.is_none() => {
                    bad(at("path"), "a file channel needs path".into())
                }
                _ => {}
            }
        }
        let mut seen = BTreeMap::new();
        for (i, c) in self.collectors.iter().enumerate() {
            let at = |k| vec![Key("collector"), Index(i), Key(k)];
            if c.name.is_empty()
                || !c
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
                || c.name == "."
                || c.name == ".."
            {
                bad(
                    at("name"),
                    format!(
                        "invalid collector name {:?}: use letters, digits, '.', '_' and '-'",
                        c.name
                    ),
                );
            }
            if let Some(first) = seen.insert(c.name.clone(), i) {
                bad(
                    at("name"),
                    format!(
                        "duplicate collector name {:?} (also collector[{first}])",
                        c.name
                    ),
                );
            }
            let stream_key = if c.stream.is_some() { "stream" } else { "name" };
            if !storable_stream(c.stream()) {
                bad(at(stream_key), format!(
                    "invalid stream {:?}: segments of [A-Za-z0-9._-] joined by '/', at most 128 bytes, no '.' or '..', \
                     no segment after the first named like a day file (YYYY-MM-DD.jsonl), none before the last ending in .json", c.stream()));
            } else if reserved_stream(c.stream()) {
                bad(
                    at(stream_key),
                    format!(
                        "stream {:?} is reserved: the listen collector keeps rejected input lines \
                         on {QUARANTINE:?}; set another stream",
                        c.stream()
                    ),
                );
            }
            // The policy this collector runs with is the tree's defaults under its overrides: an
            // override can break a rule the defaults keep (a short backoff under the default jitter).
            let backoff = c.backoff.as_ref().unwrap_or(&s.backoff);
            let jitter = c.jitter.unwrap_or(s.jitter);
            if let Some(b) = &c.backoff {
                if let Some((i, m)) = backoff_problem(b) {
                    bad(indexed(at("backoff"), i), m);
                }
            }
            if c.backoff.is_some() || c.jitter.is_some() {
                // Blame the key this collector set: its jitter, else its backoff under the
                // tree's jitter.
                let (key, inherited) = match c.jitter {
                    Some(_) => ("jitter", false),
                    None => ("backoff", true),
                };
                if backoff_problem(backoff).is_none() {
                    if let Some(m) = jitter_problem(jitter, backoff, inherited) {
                        bad(at(key), m);
                    }
                }
            }
            if c.escalate_after == Some(0) {
                bad(at("escalate_after"), "must be at least 1".into());
            }
            let periods = [
                ("every", c.every, "the collector could not be scheduled"),
                (
                    "timeout",
                    c.timeout,
                    "every periodic run would time out at once",
                ),
                ("stable_after", c.stable_after, STABLE_AFTER_WHY),
                ("shutdown_timeout", c.shutdown_timeout, SHUTDOWN_WHY),
            ];
            for (key, value, why) in periods {
                if let Some(m) = value.and_then(|v| zero_problem(v, why)) {
                    bad(at(key), m);
                }
            }
            match c.kind {
                CollectorKind::Command if c.argv.is_empty() => bad(
                    at("argv"),
                    "a command collector needs argv, e.g. argv = [\"my-poller\", \"--json\"]"
                        .into(),
                ),
                CollectorKind::Command if c.timeout.is_some() && c.every.is_none() => bad(
                    at("timeout"),
                    "timeout applies to periodic commands: set every too".into(),
                ),
                CollectorKind::Http => match &c.url {
                    None => bad(at("url"), "an http collector needs url".into()),
                    Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => bad(
                        at("url"),
                        format!("{u:?} is not an http:// or https:// URL"),
                    ),
                    _ => {}
                },
                CollectorKind::Tail if c.path.is_none() => {
                    bad(at("path"), "a tail collector needs path".into())
                }
                CollectorKind::Listen => match c.address.as_deref() {
                    None => bad(
                        at("address"),
                        "a listen collector needs address, \"127.0.0.1:PORT\" or \"unix:PATH\""
                            .into(),
                    ),
                    Some(a) if !a.starts_with("unix:") && a.parse::<SocketAddr>().is_err() => bad(
                        at("address"),
                        format!(
                            "invalid address {a:?}: expected \"127.0.0.1:PORT\" or \"unix:PATH\""
                        ),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
        let mut slo_names = BTreeMap::new();
        for (i, slo) in self.slos.iter().enumerate() {
            let at = |k| vec![Key("slo"), Index(i), Key(k)];
            if slo_names.insert(slo.name.clone(), i).is_some() {
                bad(at("name"), format!("duplicate slo name {:?}", slo.name));
            }
            if !storable_stream(&slo.stream) {
                bad(at("stream"), format!("invalid stream {:?}", slo.stream));
            }
            if slo.kind == SloKind::P95 && slo.field.is_none() {
                bad(at("field"), "a p95 SLO needs the field to measure".into());
            }
            if slo.kind == SloKind::ErrorRate && slo.predicate.is_none() {
                bad(
                    at("predicate"),
                    "an error_rate SLO needs a predicate field".into(),
                );
            }
            for phase in slo.thresholds.keys() {
                if !matches!(phase.as_str(), "A" | "B" | "C") {
                    bad(
                        at("thresholds"),
                        format!("unknown phase {phase:?}: use A, B or C"),
                    );
                }
            }
            if !slo.thresholds.contains_key(&slo.phase) {
                bad(
                    at("phase"),
                    format!("phase {:?} has no threshold in thresholds", slo.phase),
                );
            }
            if let Some(m) = zero_problem(slo.window, "a window must hold some time") {
                bad(at("window"), m);
            }
            if !(slo.warn_ratio > 0.0 && slo.warn_ratio <= 1.0) {
                bad(at("warn_ratio"), "must be in (0, 1]".into());
            }
        }
        out
    }
}

const STABLE_AFTER_WHY: &str =
    "every start would count as stable, so failure streaks would never grow and never escalate";
const SHUTDOWN_WHY: &str = "every stop would kill the child without letting it finish";

/// `at` with the index of an offending list element, when there is one.
fn indexed(mut at: Vec<Seg>, i: Option<usize>) -> Vec<Seg> {
    if let Some(i) = i {
        at.push(Seg::Index(i));
    }
    at
}

/// What is wrong with a period or timeout that must not be zero.
fn zero_problem(value: Duration, why: &str) -> Option<String> {
    value
        .is_zero()
        .then(|| format!("must be greater than 0: with 0, {why}"))
}

/// What is wrong with a list of backoff steps, and at which step.
fn backoff_problem(backoff: &[Duration]) -> Option<(Option<usize>, String)> {
    if backoff.is_empty() {
        return Some((
            None,
            "must list at least one delay, e.g. [\"5s\", \"10s\", \"15s\"]".into(),
        ));
    }
    let (i, step) = backoff
        .iter()
        .enumerate()
        .find(|(_, step)| **step < MIN_RESTART_DELAY)?;
    Some((
        Some(i),
        format!(
            "{} is below the minimum restart delay of {}, which holds a child that fails at once \
             to at most {} restarts a second, each one audited (a zero step restarts it hundreds \
             of times a second, a busy loop); use at least \"{}\"",
            fmt_duration(*step),
            fmt_duration(MIN_RESTART_DELAY),
            Duration::from_secs(1).as_nanos() / MIN_RESTART_DELAY.as_nanos(),
            fmt_duration(MIN_RESTART_DELAY)
        ),
    ))
}

/// What is wrong with a jitter over `backoff`; `inherited` when the jitter is the tree's and
/// the backoff a collector's own. Jitter spreads the restarts of many children over a fraction
/// of their delay; above the largest step it dominates the schedule (`"1000h"` puts a restart
/// days away), which is never what a backoff list means.
fn jitter_problem(jitter: Duration, backoff: &[Duration], inherited: bool) -> Option<String> {
    let largest = *backoff.iter().max()?;
    (jitter > largest).then(|| {
        let (whose, fix) = if inherited {
            (" (from [supervisor])", "set this collector's jitter")
        } else {
            ("", "use a jitter")
        };
        format!(
            "jitter{whose} ({}) is above the largest backoff step ({}): the random part would \
             outweigh the backoff and could put a restart far away; {fix} of at most \"{}\"",
            fmt_duration(jitter),
            fmt_duration(largest),
            fmt_duration(largest)
        )
    })
}

fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Whether a collector may not write to `stream`: [`QUARANTINE`] (and streams under it) holds
/// the input lines the listen collector rejected, and must hold nothing else.
fn reserved_stream(stream: &str) -> bool {
    stream
        .strip_prefix(QUARANTINE)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The defaults with only `node.data_dir` and `control.socket` taken from a file that does not
/// validate: enough to find a running daemon (and its last good copy) despite the damage.
pub fn lenient(path: &Path) -> Config {
    let table = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .unwrap_or_default();
    let get = |section: &str, key: &str| {
        table
            .get(section)
            .and_then(|s| s.get(key))
            .and_then(|v| v.as_str())
            .map(PathBuf::from)
    };
    let mut cfg = Config::default();
    if let Some(d) = get("node", "data_dir") {
        cfg.node.data_dir = d;
    }
    cfg.control.socket = get("control", "socket");
    cfg.resolve_paths(base_dir(path));
    cfg
}

/// The directory relative paths of `config` are resolved against.
pub fn base_dir(config: &Path) -> &Path {
    match config.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn invalid(path: &Path, text: &str, offset: usize, key: String, message: String) -> ConfigError {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    let text_line = text[line_start..].lines().next().unwrap_or("").to_string();
    let message = message.trim_end().to_string();
    let message = if message.contains("; ") || message.ends_with("FILE") {
        message
    } else {
        format!("{message}; fix this line and run again")
    };
    ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        col,
        key,
        message,
        text: text_line,
    }
}

/// Whether `[section]` of `text` (which parsed already) sets `key`.
fn is_set(text: &str, section: &str, key: &str) -> bool {
    text.parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get(section)?.get(key).map(|_| ()))
        .is_some()
}

/// The byte offset of the key at `at` in `text` (the key itself, or its table when absent).
fn locate(text: &str, at: &[Seg]) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut value: Option<&toml::Spanned<DeValue>> = None;
    let mut best = None;
    for seg in at {
        match seg {
            Seg::Key(k) => {
                let t = match value.map(|v| v.get_ref()) {
                    None => table,
                    Some(DeValue::Table(t)) => t,
                    Some(_) => return best,
                };
                let Some((key, v)) = t.iter().find(|(key, _)| key.get_ref() == k) else {
                    return best;
                };
                best = Some(key.span().start);
                table = t;
                value = Some(v);
            }
            Seg::Index(i) => match value.map(|v| v.get_ref()) {
                Some(DeValue::Array(items)) => {
                    let v = items.get(*i)?;
                    best = Some(v.span().start);
                    value = Some(v);
                }
                _ => return best,
            },
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("supervisor.toml"), Path::new("/etc/fushi"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn committed_default_config_is_valid_and_commented() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("supervisor.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let (cfg, _) = Config::load(&path).unwrap();
        assert!(
            text.lines()
                .filter(|l| l.trim_start().starts_with('#'))
                .count()
                > 20,
            "the default config explains itself"
        );
        assert!(
            cfg.collectors
                .iter()
                .any(|c| c.kind == CollectorKind::Heartbeat),
            "the default config does something visible"
        );
        assert_eq!(cfg.supervisor.backoff, vec![d(5), d(10), d(15)]);
        assert_eq!(cfg.supervisor.escalate_after, 4);
        assert!(cfg.node.data_dir.is_absolute());
    }

    #[test]
    fn empty_config_gets_spec_defaults() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg.supervisor.policy(), RestartPolicy::default());
        assert_eq!(cfg.storage.io_timeout, d(3));
        assert_eq!(cfg.storage.max_record_bytes, ByteSize(1 << 20));
        assert_eq!(cfg.control.http, "127.0.0.1:9752");
        assert_eq!(cfg.alert.repeat_after, d(1800));
        assert_eq!(cfg.node.data_dir, Path::new("/etc/fushi/data"));
    }

    #[test]
    fn every_section_of_the_spec_parses() {
        let cfg = parse(
            r#"
[node]
id = "collector-pc"
data_dir = "/var/lib/fushi"
mode = "debug"
[supervisor]
backoff = ["1s", "2s"]
jitter = "0s"
escalate_after = 3
stable_after = "30s"
give_up_after = 10
shutdown_timeout = "2s"
strategy = "rest_for_one"
[storage]
primary = "/mnt/nas/fushi"
probe_interval = "2s"
io_timeout = "1s"
max_local = "2 GiB"
max_record_bytes = 65536
[sync]
interval = "500ms"
batch = 100
[leader]
enabled = true
backend = "etcd"
heartbeat = "2s"
stale_after = "10s"
priority = 5
etcd_endpoints = ["http://127.0.0.1:2379"]
[control]
socket = "run/fushi.sock"
http = "0.0.0.0:9752"
http_token = "s3cret"
allow_inject = true
[alert]
repeat_after = "10m"
templates = { escalation = "{actor} failed {failures} times" }
[[alert.channel]]
kind = "webhook"
url = "https://hooks.example/x"
[[alert.channel]]
kind = "file"
path = "alerts.jsonl"
[[collector]]
name = "trades"
kind = "command"
stream = "binance/trades"
argv = ["poller", "--json"]
restart = "transient"
backoff = ["100ms"]
escalate_after = 2
[[collector]]
name = "api"
kind = "http"
url = "https://api.example/x"
every = "1m"
timeout = "5s"
[[collector]]
name = "log"
kind = "tail"
path = "/var/log/app.log"
[[collector]]
name = "in"
kind = "listen"
address = "127.0.0.1:7000"
[[slo]]
name = "latency"
stream = "binance/trades"
kind = "p95"
field = "latency_ms"
window = "15m"
phase = "B"
thresholds = { A = 300.0, B = 250.0, C = 200.0 }
rollback = ["rollback.sh"]
"#,
        )
        .unwrap();
        assert_eq!(cfg.storage.max_local, ByteSize(2 << 30));
        assert_eq!(
            cfg.control.socket.as_deref(),
            Some(Path::new("/etc/fushi/run/fushi.sock"))
        );
        let trades = &cfg.collectors[0];
        assert_eq!(
            trades.policy(&cfg.supervisor).backoff,
            vec![Duration::from_millis(100)]
        );
        assert_eq!(trades.policy(&cfg.supervisor).escalate_after, 2);
        assert_eq!(trades.policy(&cfg.supervisor).stable_after, d(30));
        assert_eq!(cfg.slos[0].warn_ratio, 0.8);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err("[node]\nid = \"a\"\n\n[supervisor]\nbackof = [\"5s\"]\n");
        assert!(e.starts_with("supervisor.toml:5:"), "{e}");
        assert!(e.contains("backof"), "{e}");
    }

    #[test]
    fn bad_duration_names_its_line() {
        let e = err("[supervisor]\njitter = \"soon\"\n");
        assert!(e.starts_with("supervisor.toml:2:"), "{e}");
    }

    #[test]
    fn semantic_errors_point_at_the_key() {
        let e = err("[[collector]]\nname = \"a\"\nkind = \"heartbeat\"\n\n[[collector]]\nname = \"b\"\nkind = \"command\"\n");
        assert!(e.starts_with("supervisor.toml:5:"), "{e}");
        assert!(e.contains("collector[1].argv"), "{e}");
        let e = err("[[collector]]\nname = \"a\"\nkind = \"heartbeat\"\n[[collector]]\nname = \"a\"\nkind = \"heartbeat\"\n");
        assert!(
            e.starts_with("supervisor.toml:5:1: collector[1].name: duplicate"),
            "{e}"
        );
        let e = err("[[collector]]\nname = \"a\"\nkind = \"heartbeat\"\nstream = \"../etc\"\n");
        assert!(
            e.starts_with("supervisor.toml:4:1: collector[0].stream"),
            "{e}"
        );
        let e = err(
            "[[collector]]\nname = \"a\"\nkind = \"heartbeat\"\nstream = \"a/2026-11-21.jsonl\"\n",
        );
        assert!(
            e.starts_with("supervisor.toml:4:1: collector[0].stream"),
            "{e}"
        );
        let e = err("[control]\nhttp = \"localhost\"\n");
        assert!(e.contains("control.http") && e.contains("IP:PORT"), "{e}");
        let cfg = parse("[control]\nhttp = \"\"\n").expect("an empty control.http disables HTTP");
        assert_eq!(cfg.control.http, "");
        let e = err("[control]\nhttp = \"0.0.0.0:9752\"\n");
        assert!(
            e.contains("control.http") && e.contains("http_token"),
            "{e}"
        );
        let e = err("[supervisor]\nbackoff = []\n");
        assert!(
            e.starts_with("supervisor.toml:2:1: supervisor.backoff"),
            "{e}"
        );
    }

    /// `text` fails at `line` on `key` with a message containing `says`.
    fn refused(text: &str, line: usize, key: &str, says: &str) {
        let e = err(text);
        let head = e.lines().next().unwrap_or_default();
        assert!(
            head.starts_with(&format!("supervisor.toml:{line}:")),
            "line {line}: {e}"
        );
        assert!(head.contains(&format!(" {key}: ")), "key {key}: {e}");
        assert!(e.contains(says), "{says:?}: {e}");
    }

    #[test]
    fn zero_periods_and_timeouts_are_refused() {
        for (section, key) in [
            ("supervisor", "stable_after"),
            ("supervisor", "shutdown_timeout"),
            ("storage", "probe_interval"),
            ("storage", "io_timeout"),
            ("sync", "interval"),
            ("leader", "heartbeat"),
            ("alert", "repeat_after"),
        ] {
            refused(
                &format!("[node]\nid = \"n\"\n[{section}]\n{key} = \"0s\"\n"),
                4,
                &format!("{section}.{key}"),
                "must be greater than 0",
            );
        }
        let beat = "[[collector]]\nname = \"a\"\nkind = \"command\"\nargv = [\"x\"]\n";
        for (key, extra) in [
            ("every", ""),
            ("timeout", "every = \"1s\"\n"),
            ("stable_after", ""),
            ("shutdown_timeout", ""),
        ] {
            refused(
                &format!("{beat}{extra}{key} = \"0s\"\n"),
                5 + extra.lines().count(),
                &format!("collector[0].{key}"),
                "must be greater than 0",
            );
        }
        refused(
            "[[slo]]\nname = \"s\"\nstream = \"a\"\nkind = \"lateness\"\nwindow = \"0s\"\n\
             thresholds = { A = 1.0 }\n",
            5,
            "slo[0].window",
            "must be greater than 0",
        );
    }

    #[test]
    fn a_journal_bound_below_four_segments_is_refused() {
        refused(
            "[storage]\nmax_local = \"0\"\n",
            2,
            "storage.max_local",
            "0 B is below the minimum of 16 KiB",
        );
        refused(
            "[storage]\nmax_local = \"16383\"\n",
            2,
            "storage.max_local",
            "below the minimum",
        );
        let cfg = parse("[storage]\nmax_local = \"16 KiB\"\n").expect("16 KiB is enough");
        assert_eq!(
            cfg.storage.max_record_bytes,
            ByteSize(16 << 10),
            "the default record limit follows a journal bound below it"
        );
    }

    #[test]
    fn a_record_limit_of_zero_or_above_the_journal_bound_is_refused() {
        refused(
            "[storage]\nmax_record_bytes = 0\n",
            2,
            "storage.max_record_bytes",
            "must be greater than 0",
        );
        refused(
            "[storage]\nmax_local = \"1 MiB\"\nmax_record_bytes = \"2 MiB\"\n",
            3,
            "storage.max_record_bytes",
            "2 MiB is above max_local (1 MiB)",
        );
        parse("[storage]\nmax_local = \"1 MiB\"\nmax_record_bytes = \"1 MiB\"\n")
            .expect("a record as large as the journal bound");
    }

    #[test]
    fn restart_delays_below_the_floor_are_refused() {
        refused(
            "[supervisor]\nbackoff = [\"0s\"]\njitter = \"0s\"\n",
            2,
            "supervisor.backoff[0]",
            "below the minimum restart delay of 100ms, which holds a child that fails at once \
             to at most 10 restarts a second",
        );
        let e = err("[supervisor]\nbackoff = [\"1s\", \"99ms\"]\n");
        assert!(
            e.starts_with("supervisor.toml:2:18: supervisor.backoff[1]: 99ms is below"),
            "{e}"
        );
        // 5 ms, the floor before, still let a failing child spin at ~100 restarts a second.
        refused(
            "[supervisor]\nbackoff = [\"5ms\"]\njitter = \"0s\"\n",
            2,
            "supervisor.backoff[0]",
            "use at least \"100ms\"",
        );
        refused(
            "[[collector]]\nname = \"a\"\nkind = \"command\"\nargv = [\"false\"]\n\
             backoff = [\"0s\"]\njitter = \"0s\"\n",
            5,
            "collector[0].backoff[0]",
            "busy loop",
        );
        parse("[supervisor]\nbackoff = [\"100ms\"]\njitter = \"0s\"\n").expect("the floor itself");
    }

    #[test]
    fn jitter_above_the_largest_backoff_step_is_refused() {
        refused(
            "[supervisor]\njitter = \"1000h\"\n",
            2,
            "supervisor.jitter",
            "is above the largest backoff step (15s)",
        );
        let beat = "[[collector]]\nname = \"a\"\nkind = \"command\"\nargv = [\"false\"]\n";
        refused(
            &format!("{beat}jitter = \"16s\"\n"),
            5,
            "collector[0].jitter",
            "above the largest backoff step (15s)",
        );
        // The collector's own backoff under the tree's default jitter of 1 s.
        refused(
            &format!("{beat}backoff = [\"100ms\"]\n"),
            5,
            "collector[0].backoff",
            "jitter (from [supervisor]) (1s) is above the largest backoff step (100ms)",
        );
        parse(&format!(
            "{beat}backoff = [\"100ms\"]\njitter = \"100ms\"\n"
        ))
        .expect("jitter up to the largest step");
        parse("[supervisor]\nbackoff = [\"1s\"]\n").expect("the default jitter of 1s");
    }

    #[test]
    fn the_quarantine_stream_is_reserved() {
        refused(
            "[[collector]]\nname = \"a\"\nkind = \"heartbeat\"\nstream = \"_quarantine\"\n",
            4,
            "collector[0].stream",
            "\"_quarantine\" is reserved",
        );
        refused(
            "[[collector]]\nname = \"a\"\nkind = \"heartbeat\"\nstream = \"_quarantine/x\"\n",
            4,
            "collector[0].stream",
            "reserved",
        );
        refused(
            "[[collector]]\nname = \"_quarantine\"\nkind = \"heartbeat\"\n",
            2,
            "collector[0].name",
            "reserved",
        );
        parse("[[collector]]\nname = \"a\"\nkind = \"heartbeat\"\nstream = \"_quarantined\"\n")
            .expect("only the quarantine stream itself is reserved");
        parse("[[slo]]\nname = \"q\"\nstream = \"_quarantine\"\nkind = \"lateness\"\nthresholds = { A = 1.0 }\n")
            .expect("an SLO may watch the quarantine");
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("512 MiB").unwrap(), ByteSize(512 << 20));
        assert_eq!(ByteSize::parse("1GB").unwrap(), ByteSize(1_000_000_000));
        assert!(ByteSize::parse("1 parsec").unwrap_err().contains("unit"));
        assert!(err("[storage]\nmax_local = -1\n").contains("negative"));
        assert_eq!(ByteSize(16 << 10).to_string(), "16 KiB");
        assert_eq!(ByteSize(1 << 30).to_string(), "1 GiB");
        assert_eq!(ByteSize(1000).to_string(), "1000 B");
        assert_eq!(ByteSize(0).to_string(), "0 B");
    }
}
