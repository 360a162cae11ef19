//! The daemon a command talks to (`Target`: its config, its socket, why it does not answer), and the exit codes every command shares.

use anyhow::Context;
use fushi_actors::board::StatusDoc;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::control::client::{self, ClientError};
use crate::control::proto::{Request, Response};
use crate::control::socket_candidates;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
/// Input the command cannot use (a fixture line that is no record, an unknown phase): told
/// apart from a verdict of 1, so that a script knows a gate failed from a typo.
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NOT_RUNNING: u8 = 3;
pub const EXIT_DAEMON_DOWN: u8 = 7;

/// Where to find the daemon: `--socket`, or the config's candidates.
pub struct Target {
    pub config_path: PathBuf,
    pub config: Config,
    pub socket: Option<PathBuf>,
    /// Whether `config` was read from `config_path`: with `--socket` the daemon is reached
    /// without a config file, and then `config` holds only defaults.
    pub config_read: bool,
    /// Why `config_path` does not load, if it does not (then `config` is what could be read).
    pub config_error: Option<String>,
}

/// The pid of a fushi that holds `data_dir` (its `fushi.pid` names a live fushi process): a
/// clean stop removes the file, so one left names a daemon that runs or one killed.
pub(crate) fn daemon_on(data_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data_dir.join(crate::daemon::PID_FILE)).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv0 = cmdline.split(|&b| b == 0).next()?;
    (pid != std::process::id() && argv0.ends_with(b"fushi")).then_some(pid)
}

impl Target {
    /// A broken config file must not lock the user out of the running daemon (that is when
    /// they need `status` and `update` most): then only the socket's whereabouts are read.
    /// With `--socket` no config file is needed at all.
    pub fn load(
        found: Result<PathBuf, crate::config::NoConfig>,
        socket: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let without_config = |config_path: PathBuf| Self {
            config_path,
            config: Config::default(),
            socket: socket.clone(),
            config_read: false,
            config_error: None,
        };
        let config_path = match found {
            Ok(p) => p,
            Err(no) if socket.is_some() => {
                return Ok(without_config(no.searched[0].clone()));
            }
            Err(no) => return Err(no.into()),
        };
        let (config, config_error) = match Config::load(&config_path) {
            Ok((config, _)) => (config, None),
            Err(e @ crate::config::ConfigError::Invalid { .. }) => {
                (crate::config::lenient(&config_path), Some(e.to_string()))
            }
            Err(crate::config::ConfigError::Read { .. }) if socket.is_some() => {
                return Ok(without_config(config_path));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            config_path,
            config,
            socket,
            config_read: true,
            config_error,
        })
    }

    /// Why no daemon answered, and what to do: a daemon may hold the data dir all the same (its
    /// control actor restarting, or its socket elsewhere), or the config may not have said
    /// where to look.
    pub(super) fn not_running(&self, tried: &[PathBuf]) -> String {
        let none = client::no_answer(tried);
        let data = &self.config.node.data_dir;
        // Only a data dir the config names says anything: with `--socket` alone it is a default.
        if let Some(pid) = self.config_read.then(|| daemon_on(data)).flatten() {
            return format!(
                "{none}, but fushi pid {pid} runs on data dir {}: its control socket may be restarting \
                 (try again in a moment), or it listens elsewhere (started with another XDG_RUNTIME_DIR \
                 or control.socket?): pass --socket PATH",
                data.display()
            );
        }
        // "Not running" is said only where it is known: no daemon holds the data dir the config
        // names. A broken config or a bare --socket only tells where nobody answers.
        match (&self.config_error, self.config_read) {
            (Some(e), _) => format!(
                "{none}; {} does not load, so the socket was looked for where its readable part and \
                 the defaults put it (fix the file, or pass --socket PATH): {e}",
                self.config_path.display()
            ),
            (None, true) => format!(
                "the daemon is not running ({none}, and no fushi holds data dir {}); start it with \
                 `fushi run -c {}` or `systemctl start fushi`",
                data.display(),
                self.config_path.display()
            ),
            (None, false) => format!(
                "{none}: the daemon is not running, or listens elsewhere; start it with \
                 `fushi run -c FILE`, or pass the running daemon's socket with --socket PATH"
            ),
        }
    }

    pub(super) fn candidates(&self) -> Vec<PathBuf> {
        match &self.socket {
            Some(s) => vec![s.clone()],
            None => socket_candidates(&self.config),
        }
    }

    pub(super) fn call(&self, req: &Request) -> Result<Response, ClientError> {
        client::call(&self.candidates(), |tried| self.not_running(tried), req)
    }
}

/// A daemon that is not running is an exit code, not a crash: say so and how to start it.
pub(super) fn down(e: ClientError, code: u8) -> anyhow::Result<u8> {
    match e {
        ClientError::NotRunning { .. } => {
            eprintln!("fushi: {e}");
            Ok(code)
        }
        other => Err(other.into()),
    }
}

pub(super) fn status_doc(t: &Target) -> Result<StatusDoc, ClientError> {
    match t.call(&Request::Status)? {
        Response::Json { json } => serde_json::from_str(&json)
            .map_err(|e| ClientError::Daemon(format!("bad status document: {e}"))),
        other => Err(ClientError::Daemon(format!("unexpected answer {other:?}"))),
    }
}

/// The config file the running daemon reads: as it names it, against its working dir if relative.
pub(super) fn daemon_config_path(doc: &StatusDoc) -> PathBuf {
    let path = PathBuf::from(&doc.config.path);
    if path.is_relative() {
        if let Ok(cwd) = std::fs::read_link(format!("/proc/{}/cwd", doc.pid)) {
            return cwd.join(path);
        }
    }
    path
}

/// Whether two paths name one file (or, if either cannot be resolved, are spelled alike).
pub(super) fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => std::path::absolute(a).ok() == std::path::absolute(b).ok(),
    }
}

/// The daemon's data dir, where audit.jsonl is: from the config file, or with `--socket` alone
/// from the config the running daemon names (`fushi audit`, `fushi top`).
pub(crate) fn audit_dir(t: &Target) -> anyhow::Result<PathBuf> {
    if t.config_read {
        return Ok(t.config.node.data_dir.clone());
    }
    let doc = status_doc(t).context(
        "finding the audit log without a config file (pass -c FILE to read it directly)",
    )?;
    Ok(crate::config::lenient(&daemon_config_path(&doc))
        .node
        .data_dir)
}
