//! supervisor.toml: the schema of SPEC §8, its validation, and errors that name the file, line and key.
//!
//! Every section of §8 parses from the start, so a config written for parts that land later
//! already validates. Unknown keys are errors (`deny_unknown_fields`), durations are humantime
//! strings, sizes are bytes or strings with units, and relative paths are relative to the config
//! file. Semantic errors carry the key path, which is mapped back to a line through toml's spanned
//! document, so every error reads `FILE:LINE:COL: KEY: what is wrong; what to do`.

mod find;
mod keys;
mod schema;
mod units;
mod validate;

pub use find::{config_path, NoConfig};
use keys::{key_string, locate};
pub use schema::*;
pub use validate::channel_name;

use std::path::{Path, PathBuf};

/// Exit code for configuration errors (EX_CONFIG).
pub const EX_CONFIG: u8 = 78;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; {}", read_hint(.source))]
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

/// What to do about a config file that cannot be read: "create it" is advice only for a missing
/// one; a file there that is not UTF-8 (a binary, a bad editor save) must be fixed instead.
fn read_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "create it or pass -c FILE",
        std::io::ErrorKind::InvalidData => "a config file is TOML text in UTF-8: fix or replace it",
        std::io::ErrorKind::PermissionDenied => "check its permissions, or run as its owner",
        _ => "check the file and its directory, or pass -c FILE",
    }
}

fn key_prefix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
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

#[cfg(test)]
mod tests {
    use super::units::ByteSize;
    use super::*;
    use fushi_actors::supervisor::RestartPolicy;
    use std::time::Duration;

    fn d(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("supervisor.toml"), Path::new("/etc/fushi"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_config_file_that_cannot_be_read_gets_advice_for_why() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Config::load(&dir.path().join("none.toml"))
            .unwrap_err()
            .to_string();
        assert!(missing.ends_with("create it or pass -c FILE"), "{missing}");
        let binary = dir.path().join("binary.toml");
        std::fs::write(&binary, [0x80u8, 0xff, 0xfe]).unwrap();
        let garbled = Config::load(&binary).unwrap_err().to_string();
        assert!(
            garbled.contains("did not contain valid UTF-8")
                && garbled.ends_with("a config file is TOML text in UTF-8: fix or replace it"),
            "{garbled}"
        );
        assert!(!garbled.contains("create it"), "{garbled}");
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
    fn every_commented_collector_example_of_the_default_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("supervisor.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut kinds = Vec::new();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if line.trim() != "# [[collector]]" {
                continue;
            }
            let mut example = String::from("[[collector]]\n");
            while let Some(l) = lines.next_if(|l| l.starts_with("# ") && !l.trim().is_empty()) {
                example.push_str(&l[2..]);
                example.push('\n');
            }
            let cfg = parse(&example).unwrap_or_else(|e| panic!("{e}\n{example}"));
            kinds.push(cfg.collectors[0].kind);
        }
        for kind in [
            CollectorKind::Command,
            CollectorKind::Listen,
            CollectorKind::Http,
            CollectorKind::Tail,
        ] {
            assert!(
                kinds.contains(&kind),
                "no commented example of {kind:?}: {kinds:?}"
            );
        }
    }

    #[test]
    fn every_commented_slo_example_of_the_default_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("supervisor.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut kinds = Vec::new();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if line.trim() != "# [[slo]]" {
                continue;
            }
            let mut example = String::from("[[slo]]\n");
            while let Some(l) = lines.next_if(|l| l.starts_with("# ") && !l.trim().is_empty()) {
                example.push_str(&l[2..]);
                example.push('\n');
            }
            let cfg = parse(&example).unwrap_or_else(|e| panic!("{e}\n{example}"));
            kinds.push(cfg.slos[0].kind);
        }
        for kind in [SloKind::P95, SloKind::ErrorRate, SloKind::Lateness] {
            assert!(
                kinds.contains(&kind),
                "no commented example of {kind:?}: {kinds:?}"
            );
        }
        // Every key of [[slo]] is shown in the examples.
        for key in [
            "name",
            "stream",
            "kind",
            "field",
            "predicate",
            "window",
            "late_after",
            "phase",
            "thresholds",
            "warn_ratio",
            "promote_after",
            "rollback",
            "rollback_timeout",
        ] {
            assert!(
                text.contains(&format!("# {key} = ")),
                "{key} is not documented"
            );
        }
    }

    #[test]
    fn slo_keys_have_their_defaults_and_rules() {
        let cfg = parse("[[slo]]\nname = \"s\"\nstream = \"a\"\nkind = \"lateness\"\nthresholds = { A = 1.0 }\n").unwrap();
        let s = &cfg.slos[0];
        assert_eq!(
            (s.window, s.late_after, s.rollback_timeout),
            (
                DEFAULT_SLO_WINDOW,
                DEFAULT_LATE_AFTER,
                DEFAULT_ROLLBACK_TIMEOUT
            )
        );
        assert_eq!((s.promote_after, s.warn_ratio), (8, 0.8));
        let base = "[[slo]]\nname = \"s\"\nstream = \"a\"\nkind = \"p95\"\nfield = \"x\"\n";
        for (extra, key, says) in [
            (
                "thresholds = { A = -1.0 }\n",
                "slo[0].thresholds",
                "at least 0",
            ),
            (
                "thresholds = { A = 1.0 }\npromote_after = 0\n",
                "slo[0].promote_after",
                "at least 1",
            ),
            (
                "thresholds = { A = 1.0 }\nrollback_timeout = \"0s\"\n",
                "slo[0].rollback_timeout",
                "greater than 0",
            ),
            (
                "thresholds = { A = 1.0 }\nlate_after = \"soon\"\n",
                "",
                "soon",
            ),
            (
                "thresholds = { A = 1.0 }\npredicate = \"e\"\n",
                "slo[0].predicate",
                "only an error_rate",
            ),
            (
                "thresholds = { A = 1.0 }\nrollback = [\"\"]\n",
                "slo[0].rollback",
                "empty",
            ),
        ] {
            let e = err(&format!("{base}{extra}"));
            assert!(e.contains(key) && e.contains(says), "{extra}: {e}");
        }
    }

    #[test]
    fn every_commented_alert_example_of_the_default_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("supervisor.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut kinds = Vec::new();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if let Some(t) = line.strip_prefix("# templates = ") {
                let cfg = parse(&format!("[alert]\ntemplates = {t}\n")).unwrap();
                assert!(cfg.alert.templates.contains_key("escalation"));
            }
            if line.trim() != "# [[alert.channel]]" {
                continue;
            }
            let mut example = String::from("[[alert.channel]]\n");
            while let Some(l) = lines.next_if(|l| l.starts_with("# ") && !l.trim().is_empty()) {
                example.push_str(&l[2..]);
                example.push('\n');
            }
            let cfg = parse(&example).unwrap_or_else(|e| panic!("{e}\n{example}"));
            kinds.push(cfg.alert.channels[0].kind);
        }
        for kind in [
            AlertChannelKind::Webhook,
            AlertChannelKind::Command,
            AlertChannelKind::File,
            AlertChannelKind::Journald,
        ] {
            assert!(kinds.contains(&kind), "no commented example of {kind:?}");
        }
    }

    #[test]
    fn alert_mistakes_are_named_at_their_key_and_say_what_to_do() {
        let e = err("[[alert.channel]]\nkind = \"file\"\npath = \"a.jsonl\"\nurl = \"http://x\"\n");
        assert!(e.contains("supervisor.toml:4:"), "{e}");
        assert!(
            e.contains("url is a key of webhook channels, not of file ones"),
            "{e}"
        );
        let e = err("[[alert.channel]]\nkind = \"webhook\"\nurl = \"hooks.example/x\"\n");
        assert!(e.contains("http:// or https://"), "{e}");
        let e = err("[[alert.channel]]\nkind = \"file\"\npath = \"a\"\nevents = [\"escalation\", \"pager\"]\n");
        assert!(e.contains("alert.channel[0].events[1]"), "{e}");
        assert!(e.contains("known: escalation, recovered, fatal"), "{e}");
        let e = err("[[alert.channel]]\nkind = \"webhook\"\nurl = \"ftp://h/x\"\n");
        assert!(e.contains("it is ftp:, not http:// or https://"), "{e}");
        let e = err("[[alert.channel]]\nkind = \"webhook\"\nurl = \"http://h/x\"\nheaders = { Authorization = \"Bearer a\\nb\" }\n");
        assert!(
            e.contains("alert.channel[0].headers") && e.contains("not a valid header value"),
            "{e}"
        );
        let e = err("[[alert.channel]]\nkind = \"command\"\nargv = [\"\"]\n");
        assert!(
            e.contains("alert.channel[0].argv") && e.contains("its program first"),
            "{e}"
        );
        let e = err("[alert]\nflap_count = 0\n");
        assert!(
            e.contains("alert.flap_count") && e.contains("at least 1"),
            "{e}"
        );
        let e = err("[alert]\nretry = [\"5s\", \"0s\"]\n");
        assert!(e.contains("alert.retry[1]"), "{e}");
        let e = err("[[alert.channel]]\nkind = \"file\"\npath = \"a\"\n[[alert.channel]]\nkind = \"webhook\"\nname = \"file\"\nurl = \"http://h/x\"\n");
        assert!(e.contains("channel name \"file\""), "{e}");
        let e = err(
            "[[alert.channel]]\nkind = \"file\"\npath = \"a\"\ntemplates = { ok = \"{slo\" }\n",
        );
        assert!(
            e.contains("alert.channel[0].templates.ok") && e.contains("closing"),
            "{e}"
        );
        let two = "[[alert.channel]]\nkind = \"webhook\"\nurl = \"http://a/x\"\n[[alert.channel]]\nkind = \"webhook\"\nurl = \"http://b/x\"\n";
        let e = err(two);
        assert!(
            e.contains("alert.channel[1].name") && e.contains("give each a name"),
            "{e}"
        );
        let cfg = parse(&format!("{two}name = \"pager\"\n")).unwrap();
        assert_eq!(
            (channel_name(&cfg.alert, 0), channel_name(&cfg.alert, 1)),
            ("webhook".into(), "pager".into())
        );
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
    fn http_collectors_poll_slower_than_they_wait_and_name_their_secrets_well() {
        let http = |extra: &str| {
            format!("[[collector]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\n{extra}")
        };
        let e = err(&http(""));
        assert!(
            e.contains("collector[0].every") && e.contains("how often it polls"),
            "{e}"
        );
        let e = err(&http("every = \"5s\"\ntimeout = \"5s\""));
        assert!(
            e.contains("collector[0].timeout") && e.contains("must be below every"),
            "{e}"
        );
        let e = err(&http("every = \"5s\"\npoll_jitter = \"6s\""));
        assert!(e.contains("collector[0].poll_jitter"), "{e}");
        let e = err(&http(
            "every = \"5s\"\nheaders = { Authorization = \"Bearer ${TOKEN\" }",
        ));
        assert!(
            e.contains("collector[0].headers") && e.contains("Bearer ${API_TOKEN}"),
            "{e}"
        );
        let e = err(&http("every = \"5s\"\nheaders = { \"Bad Name\" = \"x\" }"));
        assert!(e.contains("not a valid header name"), "{e}");
        let e = err(
            "[[collector]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://\"\nevery = \"5s\"\n",
        );
        assert!(e.contains("collector[0].url"), "{e}");
        let e = err("[[collector]]\nname = \"b\"\nkind = \"heartbeat\"\nsplit = true\n");
        assert!(
            e.contains("collector[0].split") && e.contains("applies to http collectors only"),
            "{e}"
        );
        let cfg = parse(&http("every = \"1m\"")).unwrap();
        let c = &cfg.collectors[0];
        assert_eq!(
            c.http_timeout(),
            Duration::from_secs(10),
            "10 s, below every"
        );
        assert_eq!(
            c.http_poll_jitter(),
            Duration::from_secs(6),
            "a tenth of every"
        );
        let cfg = parse(&http("every = \"4s\"")).unwrap();
        assert_eq!(
            cfg.collectors[0].http_timeout(),
            Duration::from_secs(2),
            "at most half of every"
        );
    }

    #[test]
    fn tail_collectors_need_a_path_own_their_stream_and_keep_their_keys_to_themselves() {
        let tail = |extra: &str| format!("[[collector]]\nname = \"a\"\nkind = \"tail\"\n{extra}");
        let e = err(&tail(""));
        assert!(
            e.contains("collector[0].path") && e.contains("a file or a glob"),
            "{e}"
        );
        let e = err(&tail("path = \"/var/log/[app.log\""));
        assert!(e.contains("is not a valid glob"), "{e}");
        let e = err(&tail("path = \"/var/log/app/\""));
        assert!(
            e.contains("names a directory") && e.contains("*.log"),
            "{e}"
        );
        let e = err(&tail("path = \"/var/log/a.log\"\nread_from = \"middle\""));
        assert!(e.contains("read_from") && e.contains("beginning"), "{e}");
        let e = err(&tail("path = \"/var/log/a.log\"\nglob_interval = \"0s\""));
        assert!(e.contains("collector[0].glob_interval"), "{e}");
        let e = err(&format!(
            "{}\n[[collector]]\nname = \"b\"\nkind = \"heartbeat\"\nstream = \"a\"\n",
            tail("path = \"/var/log/a.log\"")
        ));
        assert!(
            e.contains("collector[0].name") && e.contains("also collector \"b\"'s"),
            "{e}"
        );
        for key in [
            "read_from = \"end\"",
            "partial_after = \"1s\"",
            "rotate_wait = \"1s\"",
            "glob_interval = \"1s\"",
            "path = \"/x\"",
        ] {
            let e = err(&format!(
                "[[collector]]\nname = \"b\"\nkind = \"heartbeat\"\n{key}\n"
            ));
            assert!(e.contains("applies to tail collectors only"), "{key}: {e}");
        }
        let e = err(&tail("path = \"\""));
        assert!(e.contains("path is empty"), "{e}");
        for key in [
            "every = \"1s\"",
            "argv = [\"x\"]",
            "url = \"http://a/\"",
            "address = \"unix:a\"",
        ] {
            let e = err(&tail(&format!("path = \"/var/log/a.log\"\n{key}")));
            assert!(
                e.contains("does not apply to a tail collector (its keys: path"),
                "{key}: {e}"
            );
        }
        let cfg = parse(&tail("path = \"logs/*.log\"\nread_from = \"end\"")).unwrap();
        let c = &cfg.collectors[0];
        assert_eq!(
            c.path.as_deref(),
            Some(Path::new("/etc/fushi/logs/*.log")),
            "relative to the config"
        );
        assert_eq!(c.read_from, Some(ReadFrom::End));
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("512 MiB").unwrap(), ByteSize(512 << 20));
        assert_eq!(ByteSize::parse("1GB").unwrap(), ByteSize(1_000_000_000));
        assert_eq!(ByteSize::parse(" 4kib ").unwrap(), ByteSize(4096));
        assert_eq!(
            ByteSize::parse("9007199254740993B").unwrap(),
            ByteSize(9_007_199_254_740_993),
            "whole numbers exactly"
        );
        assert_eq!(
            ByteSize::parse("1 parsec").unwrap_err(),
            "unknown size unit \"parsec\" in \"1 parsec\": use B, KB, KiB, MB, MiB, GB, GiB, TB or TiB"
        );
        assert!(ByteSize::parse("1.2.3 MB")
            .unwrap_err()
            .starts_with("invalid size \"1.2.3 MB\""));
        assert!(ByteSize::parse("lots")
            .unwrap_err()
            .starts_with("invalid size"));
        assert!(err("[storage]\nmax_local = -1\n").contains("negative"));
        assert_eq!(ByteSize(16 << 10).to_string(), "16 KiB");
        assert_eq!(ByteSize(1 << 30).to_string(), "1 GiB");
        assert_eq!(ByteSize(1000).to_string(), "1000 B");
        assert_eq!(ByteSize(0).to_string(), "0 B");
    }
}
