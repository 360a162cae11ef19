//! The control commands (`status`, `start`, `stop`, `restart`, `health`, `tail`, `audit`, `check`, …): talk to the daemon and print for people or, with `--json`, for scripts.
//!
//! Exit codes are part of the contract: 0 ok; 1 failure; 3 `status` found a selected actor (or
//! the daemon) not running, like supervisorctl; 7 the daemon is not running (other commands, as
//! LSB init scripts); `health` 0 healthy, 1 degraded, 2 critical; 78 config error.

use anyhow::{bail, Context};
use fushi_actors::audit::AuditEvent;
use fushi_actors::board::health;
use fushi_actors::board::{ActorState, ActorStatus, PrimaryState, StatusDoc};
use fushi_actors::supervisor::Verb;
use serde_json::json;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::control::client::{self, ClientError};
use crate::control::proto::{Request, Response};
use crate::control::socket_candidates;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
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
    let text = std::fs::read_to_string(data_dir.join("fushi.pid")).ok()?;
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
    fn not_running(&self, tried: &[PathBuf]) -> String {
        let none = client::no_answer(tried);
        let data = &self.config.node.data_dir;
        if let Some(pid) = self.socket.is_none().then(|| daemon_on(data)).flatten() {
            return format!(
                "{none}, but fushi pid {pid} runs on data dir {}: its control socket may be restarting \
                 (try again in a moment), or it listens elsewhere (started with another XDG_RUNTIME_DIR \
                 or control.socket?): pass --socket PATH",
                data.display()
            );
        }
        match (&self.config_error, self.config_read) {
            (Some(e), _) => format!(
                "the daemon is not running ({none}); but {} does not load, so the socket was looked for \
                 where its readable part and the defaults put it: {e}",
                self.config_path.display()
            ),
            (None, true) => format!(
                "the daemon is not running ({none}); start it with `fushi run -c {}` or `systemctl start fushi`",
                self.config_path.display()
            ),
            (None, false) => format!(
                "the daemon is not running ({none}); start it with `fushi run -c FILE`, or pass the \
                 running daemon's socket with --socket PATH"
            ),
        }
    }

    fn candidates(&self) -> Vec<PathBuf> {
        match &self.socket {
            Some(s) => vec![s.clone()],
            None => socket_candidates(&self.config),
        }
    }

    fn call(&self, req: &Request) -> Result<Response, ClientError> {
        client::call(&self.candidates(), |tried| self.not_running(tried), req)
    }
}

/// A daemon that is not running is an exit code, not a crash: say so and how to start it.
fn down(e: ClientError, code: u8) -> anyhow::Result<u8> {
    match e {
        ClientError::NotRunning { .. } => {
            eprintln!("fushi: {e}");
            Ok(code)
        }
        other => Err(other.into()),
    }
}

fn status_doc(t: &Target) -> Result<StatusDoc, ClientError> {
    match t.call(&Request::Status)? {
        Response::Json { json } => serde_json::from_str(&json)
            .map_err(|e| ClientError::Daemon(format!("bad status document: {e}"))),
        other => Err(ClientError::Daemon(format!("unexpected answer {other:?}"))),
    }
}

/// Whether `pattern` (`name`, `sub/*`, `all`) selects actor `name`.
fn selects(pattern: &str, name: &str) -> bool {
    pattern == "all"
        || pattern == name
        || pattern
            .strip_suffix("/*")
            .is_some_and(|p| name.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

/// The actor paths `names` mean: a full path, `all` or a glob stays as it is; any other name
/// is the last part(s) of exactly one actor's path (`heartbeat` → `collectors/heartbeat`). An
/// unknown or ambiguous name is an error that lists the known ones.
fn resolve(doc: &StatusDoc, names: Vec<String>) -> anyhow::Result<Vec<String>> {
    let known: Vec<&str> = doc.actors.iter().map(|a| a.name.as_str()).collect();
    names.into_iter().map(|n| resolve_one(&known, n)).collect()
}

fn resolve_one(known: &[&str], n: String) -> anyhow::Result<String> {
    if n == "all" || n.contains('*') || known.contains(&n.as_str()) {
        return Ok(n);
    }
    let suffix = format!("/{n}");
    let matching: Vec<&str> = known
        .iter()
        .copied()
        .filter(|a| a.ends_with(&suffix))
        .collect();
    match matching[..] {
        [one] => Ok(one.to_string()),
        [] => bail!("no actor named {n:?}; known: {}", known.join(", ")),
        _ => bail!(
            "{n:?} is ambiguous: it could be {}; give the full name",
            matching.join(" or ")
        ),
    }
}

/// [`resolve`] against the running daemon, for the commands that send names to it. A daemon
/// that cannot be asked gets the names as given: the command itself then says why. So does an
/// unknown full path (`collectors/zz`): the supervisor answers it with the names of that level.
pub fn resolve_names(t: &Target, names: Vec<String>) -> anyhow::Result<Vec<String>> {
    let Ok(doc) = status_doc(t) else {
        return Ok(names);
    };
    let known: Vec<&str> = doc.actors.iter().map(|a| a.name.as_str()).collect();
    names
        .into_iter()
        .map(|n| {
            let suffix = format!("/{n}");
            let unknown_path =
                n.contains('/') && !known.iter().any(|k| *k == n || k.ends_with(&suffix));
            if unknown_path {
                Ok(n)
            } else {
                resolve_one(&known, n)
            }
        })
        .collect()
}

fn ago(ts: &str) -> Option<Duration> {
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()?;
    let now = time::OffsetDateTime::from(SystemTime::now());
    let d = now - t;
    (d.is_positive() || d.is_zero()).then(|| Duration::from_secs(d.whole_seconds().max(0) as u64))
}

fn until(ts: &str) -> Option<Duration> {
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()?;
    let d = t - time::OffsetDateTime::from(SystemTime::now());
    Some(Duration::from_millis(d.whole_milliseconds().max(0) as u64))
}

fn when(a: &ActorStatus) -> String {
    match a.state {
        ActorState::Running => a
            .since
            .as_deref()
            .and_then(ago)
            .map(|d| format!("up {}", humantime::format_duration(d))),
        ActorState::Backoff => a.next_restart_at.as_deref().and_then(until).map(|d| {
            format!(
                "restart in {}",
                humantime::format_duration(Duration::from_millis(d.as_millis() as u64 / 100 * 100))
            )
        }),
        _ => a
            .since
            .as_deref()
            .and_then(ago)
            .map(|d| format!("for {}", humantime::format_duration(d))),
    }
    .unwrap_or_default()
}

pub fn status(t: &Target, names: &[String], json_out: bool) -> anyhow::Result<u8> {
    let doc = match status_doc(t) {
        Ok(d) => d,
        Err(e) => return down(e, EXIT_NOT_RUNNING),
    };
    let names = resolve(&doc, names.to_vec())?;
    let selected: Vec<&ActorStatus> = if names.is_empty() {
        doc.actors.iter().collect()
    } else {
        for n in &names {
            if !doc.actors.iter().any(|a| selects(n, &a.name)) {
                let known: Vec<&str> = doc.actors.iter().map(|a| a.name.as_str()).collect();
                bail!("no actor named {n:?}; known: {}", known.join(", "));
            }
        }
        doc.actors
            .iter()
            .filter(|a| names.iter().any(|n| selects(n, &a.name)))
            .collect()
    };
    if json_out {
        if names.is_empty() {
            outln!("{}", serde_json::to_string_pretty(&doc)?);
        } else {
            outln!("{}", serde_json::to_string_pretty(&selected)?);
        }
    } else {
        outln!(
            "node {}  health {}  mode {}  primary {}  journal {} B  lag {}  daemon recovered {}",
            doc.node,
            doc.health,
            doc.mode,
            doc.storage.primary,
            doc.storage.journal_bytes,
            doc.storage.lag_records,
            doc.daemon_recovered
        );
        outln!(
            "{:<28} {:<9} {:<24} {:>8} {:>9}  LAST ERROR",
            "NAME",
            "STATE",
            "UPTIME / NEXT",
            "RESTARTS",
            "RECOVERED"
        );
        for a in &selected {
            let state = if a.escalated {
                format!("{}!", a.state.as_str())
            } else {
                a.state.as_str().to_string()
            };
            outln!(
                "{:<28} {:<9} {:<24} {:>8} {:>9}  {}",
                a.name,
                state,
                when(a),
                a.restarts,
                a.recovered,
                a.last_error.as_deref().unwrap_or("-")
            );
        }
        for e in &doc.config.errors {
            outln!("config error: {e}");
        }
    }
    let all_running = selected.iter().all(|a| a.state == ActorState::Running);
    Ok(if all_running {
        EXIT_OK
    } else {
        EXIT_NOT_RUNNING
    })
}

pub fn control(t: &Target, verb: Verb, names: Vec<String>) -> anyhow::Result<u8> {
    match t.call(&Request::Control { verb, names }) {
        Ok(Response::Ok { message }) => {
            outln!("{message}");
            Ok(EXIT_OK)
        }
        Ok(other) => bail!("unexpected answer {other:?}"),
        Err(e) => down(e, EXIT_DAEMON_DOWN),
    }
}

pub fn health(t: &Target, json_out: bool) -> anyhow::Result<u8> {
    let doc = match status_doc(t) {
        Ok(d) => d,
        Err(ClientError::NotRunning { .. }) => {
            if json_out {
                outln!(
                    "{}",
                    json!({"status": "critical", "health": "red", "reasons": ["daemon not running"]})
                );
            } else {
                outln!("critical: the daemon is not running");
            }
            return Ok(2);
        }
        Err(e) => return Err(e.into()),
    };
    let (health, reasons) = health::assess(&doc);
    let (word, code) = (health.word(), health.code());
    if json_out {
        outln!(
            "{}",
            json!({"status": word, "health": health, "reasons": reasons})
        );
    } else {
        outln!("{word}");
        for r in reasons {
            outln!("  {r}");
        }
    }
    Ok(code)
}

pub fn pid(t: &Target) -> anyhow::Result<u8> {
    match t.call(&Request::Pid) {
        Ok(Response::Pid { pid }) => {
            outln!("{pid}");
            Ok(EXIT_OK)
        }
        Ok(other) => bail!("unexpected answer {other:?}"),
        Err(e) => down(e, EXIT_DAEMON_DOWN),
    }
}

/// `fushi mode` alone: the mode the daemon runs in.
pub fn show_mode(t: &Target) -> anyhow::Result<u8> {
    match status_doc(t) {
        Ok(doc) => {
            match doc.mode_until.as_deref() {
                Some(at) => outln!(
                    "{} until {at} (in {}), then the configured mode",
                    doc.mode,
                    humantime::format_duration(Duration::from_secs(
                        until(at).unwrap_or_default().as_secs()
                    ))
                ),
                None => outln!("{}", doc.mode),
            }
            Ok(EXIT_OK)
        }
        Err(e) => down(e, EXIT_DAEMON_DOWN),
    }
}

pub fn simple(t: &Target, req: Request) -> anyhow::Result<u8> {
    match t.call(&req) {
        Ok(Response::Ok { message }) => {
            outln!("{message}");
            Ok(EXIT_OK)
        }
        Ok(other) => bail!("unexpected answer {other:?}"),
        Err(e) => down(e, EXIT_DAEMON_DOWN),
    }
}

/// Prints one log line, as a JSON string with `--json` (JSON Lines, so that `-f` streams).
fn print_line(line: &str, json_out: bool) -> anyhow::Result<()> {
    if json_out {
        outln!("{}", serde_json::to_string(line)?);
    } else {
        outln!("{line}");
    }
    Ok(())
}

pub fn tail(
    t: &Target,
    lines: u32,
    follow: bool,
    actor: Option<String>,
    json_out: bool,
) -> anyhow::Result<u8> {
    let doc = match status_doc(t) {
        Ok(doc) => doc,
        Err(e) => return down(e, EXIT_DAEMON_DOWN),
    };
    let actor = match actor {
        Some(a) => resolve(&doc, vec![a])?.pop(),
        None => None,
    };
    // Under journald the journal is the log: read it there (ACTOR= is a native field).
    if doc.log == "journald" {
        let mut cmd = std::process::Command::new("journalctl");
        cmd.args(["--no-pager", "-n", &lines.to_string()])
            .args(["-o", if json_out { "json" } else { "short-iso" }])
            .arg(format!("_PID={}", doc.pid))
            .arg("SYSLOG_IDENTIFIER=fushi");
        if follow {
            cmd.arg("-f");
        }
        if let Some(a) = &actor {
            cmd.arg(format!("ACTOR={a}"));
        }
        let status = cmd
            .status()
            .context("running journalctl (the daemon logs to journald)")?;
        return Ok(if status.success() {
            EXIT_OK
        } else {
            EXIT_FAILURE
        });
    }
    let fetch = |n: u32| match t.call(&Request::Tail {
        lines: n,
        actor: actor.clone(),
    }) {
        Ok(Response::Lines { lines }) => Ok(lines),
        Ok(other) => Err(ClientError::Daemon(format!("unexpected answer {other:?}"))),
        Err(e) => Err(e),
    };
    // Following needs the newest line as the mark to follow from, even when none is printed
    // (`-n 0 -f`); without the mark everything in the ring would count as new.
    let first = if follow { lines.max(1) } else { lines };
    let mut last = match fetch(first) {
        Ok(ls) => {
            for l in &ls[ls.len().saturating_sub(lines as usize)..] {
                print_line(l, json_out)?;
            }
            ls.last().cloned()
        }
        Err(e) => return down(e, EXIT_DAEMON_DOWN),
    };
    if !follow {
        return Ok(EXIT_OK);
    }
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let ls = match fetch(2000) {
            Ok(ls) => ls,
            Err(ClientError::NotRunning { .. }) => {
                eprintln!(
                    "fushi: the daemon stopped answering (shut down, or its control socket is restarting); \
                     its last lines are in the journal (`journalctl -u fushi`) or `fushi tail` once it is back"
                );
                return Ok(EXIT_DAEMON_DOWN);
            }
            Err(e) => return down(e, EXIT_DAEMON_DOWN),
        };
        let start = last
            .as_ref()
            .and_then(|l| ls.iter().rposition(|x| x == l))
            .map_or(0, |i| i + 1);
        for l in &ls[start..] {
            print_line(l, json_out)?;
        }
        if let Some(l) = ls.last() {
            last = Some(l.clone());
        }
    }
}

/// `*` matches any run of characters, everything else itself.
pub fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            let Some(at) = rest.find(p) else { return false };
            rest = &rest[at + p.len()..];
        }
    }
    true
}

/// The config file the running daemon reads: as it names it, against its working dir if relative.
fn daemon_config_path(doc: &StatusDoc) -> PathBuf {
    let path = PathBuf::from(&doc.config.path);
    if path.is_relative() {
        if let Ok(cwd) = std::fs::read_link(format!("/proc/{}/cwd", doc.pid)) {
            return cwd.join(path);
        }
    }
    path
}

/// Whether two paths name one file (or, if either cannot be resolved, are spelled alike).
fn same_file(a: &Path, b: &Path) -> bool {
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

/// Reads the audit log directly, so it works with the daemon stopped too. One bad line (a stray
/// byte, a line a crash cut short) must not hide the rest: a line with bytes that are not UTF-8
/// is shown with U+FFFD for them if it is JSON then, any other unreadable line is skipped, and
/// stderr says how many and where. A last line without its newline is an append in progress.
pub fn audit(
    t: &Target,
    since: Option<Duration>,
    event: Option<String>,
    json_out: bool,
) -> anyhow::Result<u8> {
    use std::io::Write as _;
    let path = audit_dir(t)?.join("audit.jsonl");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "fushi: no audit log at {}: no daemon has run on this data dir yet (is -c the daemon's config?)",
                path.display()
            );
            return Ok(EXIT_FAILURE);
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let (mut events, mut unreadable, mut replaced) = (Vec::new(), Vec::new(), 0usize);
    for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        let parsed = serde_json::from_slice::<AuditEvent>(line).ok().or_else(|| {
            let std::borrow::Cow::Owned(text) = String::from_utf8_lossy(line) else {
                return None;
            };
            let e = serde_json::from_str::<AuditEvent>(&text).ok()?;
            replaced += 1;
            Some(e)
        });
        match parsed {
            Some(e) => events.push(e),
            None if !line.ends_with(b"\n") || line.trim_ascii().is_empty() => {}
            None => unreadable.push((i + 1).to_string()),
        }
    }
    let mut stderr = std::io::stderr().lock();
    if !unreadable.is_empty() {
        let more = if unreadable.len() > 5 { ", …" } else { "" };
        let _ = writeln!(
            stderr,
            "fushi: {} unreadable line(s) of {} skipped (line {}{more})",
            unreadable.len(),
            path.display(),
            unreadable[..unreadable.len().min(5)].join(", ")
        );
    }
    if replaced > 0 {
        let _ = writeln!(
            stderr,
            "fushi: {replaced} line(s) of {} hold bytes that are not UTF-8, shown as U+FFFD",
            path.display()
        );
    }
    drop(stderr);
    let cutoff = since.map(|d| fushi_actors::clock::rfc3339(SystemTime::now() - d));
    let picked: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| cutoff.as_ref().is_none_or(|c| e.ts.as_str() >= c.as_str()))
        .filter(|e| event.as_ref().is_none_or(|g| glob(g, &e.event)))
        .collect();
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&picked)?);
    } else {
        for e in picked {
            outln!(
                "{} {:<36} {:<24} {}",
                e.ts,
                e.event,
                e.actor.as_deref().unwrap_or("-"),
                e.payload
            );
        }
    }
    Ok(EXIT_OK)
}

/// Where the daemon would find `program`: a path with a `/` as it is (against `cwd` if
/// relative), any other name on `search` (the child's PATH, as `Command` looks it up); it must
/// be a file this user may execute.
fn find_program(program: &str, cwd: Option<&Path>, search: &OsStr) -> Result<PathBuf, String> {
    use nix::unistd::{access, AccessFlags};
    let executable = |p: &Path| p.is_file() && access(p, AccessFlags::X_OK).is_ok();
    if program.contains('/') {
        let p = match cwd {
            Some(dir) if Path::new(program).is_relative() => dir.join(program),
            _ => PathBuf::from(program),
        };
        return if executable(&p) {
            Ok(p)
        } else if p.exists() {
            Err(format!("{} is not an executable file", p.display()))
        } else {
            Err(format!("{} does not exist", p.display()))
        };
    }
    std::env::split_paths(search)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
        .ok_or_else(|| {
            format!(
                "{program:?} is not an executable on PATH ({})",
                search.to_string_lossy()
            )
        })
}

/// Whether the daemon can bind its socket in `dir`: there, or created (0700) under the
/// nearest existing ancestor, as the control actor does.
/// Whether the daemon can use directory `dir`: it exists and is writable, or it can be made.
fn dir_state(dir: &Path) -> Result<String, String> {
    use nix::unistd::{access, AccessFlags};
    let wx = AccessFlags::W_OK | AccessFlags::X_OK;
    if dir.is_dir() {
        return match access(dir, wx) {
            Ok(()) => Ok(format!("{} exists", dir.display())),
            Err(e) => Err(format!("{} is not writable: {e}", dir.display())),
        };
    }
    if dir.exists() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let mut up = dir;
    while let Some(parent) = up.parent().filter(|p| !p.as_os_str().is_empty()) {
        if parent.exists() {
            return if parent.is_dir() && access(parent, wx).is_ok() {
                Ok(format!(
                    "{} does not exist; the daemon creates it (mode 700)",
                    dir.display()
                ))
            } else {
                Err(format!(
                    "{} does not exist and cannot be created: {} is not a writable directory",
                    dir.display(),
                    parent.display()
                ))
            };
        }
        up = parent;
    }
    Err(format!("{} does not exist", dir.display()))
}

/// The pid in `GET /status` of whatever serves HTTP on `addr`, if it is a fushi.
fn http_pid(addr: &str, token: Option<&str>, timeout: Duration) -> Option<u32> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let sock = addr.to_socket_addrs().ok()?.next()?;
    let mut conn = std::net::TcpStream::connect_timeout(&sock, timeout).ok()?;
    conn.set_read_timeout(Some(timeout)).ok()?;
    let auth = token
        .filter(|t| !t.is_empty())
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    // HTTP/1.0: the answer ends with the connection, so reading to the end is reading it all.
    write!(conn, "GET /status HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n").ok()?;
    let mut answer = Vec::new();
    conn.take(16 << 20).read_to_end(&mut answer).ok()?;
    let body = answer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let doc: serde_json::Value = serde_json::from_slice(&answer[body..]).ok()?;
    doc["pid"].as_u64().and_then(|p| u32::try_from(p).ok())
}

/// Pre-flight: config, data dir, command programs, primary (marked), socket dir and socket,
/// HTTP port. A daemon already running on this config is reported, not a failure: its socket
/// and port are then in use by the very daemon this config describes.
pub fn check(config_path: &Path, init_primary: bool, create: bool) -> anyhow::Result<u8> {
    let mut failed = false;
    let mut report = |ok: bool, what: &str, detail: String| {
        outln!("{} {what}: {detail}", if ok { "ok  " } else { "FAIL" });
        failed |= !ok;
    };
    let cfg = match Config::load(config_path) {
        Ok((cfg, _)) => {
            report(true, "config", config_path.display().to_string());
            cfg
        }
        Err(e) => {
            report(false, "config", e.to_string());
            return Ok(EXIT_FAILURE);
        }
    };
    let data = &cfg.node.data_dir;
    // Checked, not made: a check that creates a mistyped data dir says "ok" about a typo.
    match dir_state(data) {
        Ok(detail) if data.is_dir() => {
            report(true, "data dir", format!("{detail} and is writable"))
        }
        Ok(detail) => report(true, "data dir", detail),
        Err(detail) => report(false, "data dir", detail),
    }
    if let Ok(meta) = std::fs::metadata(data) {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        report(
            mode & 0o077 == 0,
            "data dir permissions",
            format!("{mode:o} (want 700: status, audit and the socket live here)"),
        );
    }
    let inherited = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    for c in cfg.collectors.iter().filter(|c| c.enabled) {
        if c.kind != crate::config::CollectorKind::Command {
            continue;
        }
        let what = format!("program collectors/{}", c.name);
        if c.shell {
            report(
                true,
                &what,
                "shell = true: /bin/sh resolves the command line when it runs".into(),
            );
            continue;
        }
        let Some(program) = c.argv.first() else {
            report(false, &what, "argv is empty".into());
            continue;
        };
        let search = c.env.get("PATH").map_or(inherited.clone(), Into::into);
        match find_program(program, c.cwd.as_deref(), &search) {
            Ok(p) => report(true, &what, format!("{}", p.display())),
            Err(e) => report(false, &what, e),
        }
    }
    for (i, ch) in cfg.alert.channels.iter().enumerate() {
        if ch.kind != crate::config::AlertChannelKind::Command {
            continue;
        }
        let what = format!("program alert.channel[{i}]");
        match ch.argv.first() {
            Some(program) => {
                let search = ch.env.get("PATH").map_or(inherited.clone(), Into::into);
                match find_program(program, None, &search) {
                    Ok(p) => report(true, &what, format!("{}", p.display())),
                    Err(e) => report(false, &what, e),
                }
            }
            None => report(false, &what, "argv is empty".into()),
        }
    }
    let primary = cfg.storage.primary.clone();
    let local = primary.starts_with(data);
    if init_primary && !create && !primary.exists() {
        report(
            false,
            "primary",
            format!(
                "{} does not exist, so it is not marked: is the NAS mounted? \
                 (`fushi check --init-primary --create` creates and marks a new store)",
                primary.display()
            ),
        );
    } else if local && !init_primary && !cfg.storage.primary.exists() {
        // Not probed: the probe would create it, and a check creates nothing.
        report(
            true,
            "primary",
            format!(
                "{} does not exist yet; the daemon creates it in the data dir",
                cfg.storage.primary.display()
            ),
        );
    } else {
        // The probe runs on a thread: a hung NAS must not hang the check.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use fushi_actors::primary::Primary;
            // Same rule as the daemon: only a store inside the data dir is created on demand.
            let p = if local {
                Primary::new(primary)
            } else {
                Primary::external(primary)
            };
            let r = if init_primary {
                p.init().and_then(|()| p.probe())
            } else {
                p.probe()
            };
            let _ = tx.send(r);
        });
        let timeout = cfg.storage.io_timeout;
        let shown = cfg.storage.primary.display();
        match rx.recv_timeout(timeout) {
            Ok(Ok(())) if local => report(true, "primary", format!("{shown} is writable")),
            Ok(Ok(())) => report(
                true,
                "primary",
                format!(
                    "{shown} is marked ({}) and writable",
                    fushi_actors::primary::MARKER
                ),
            ),
            Ok(Err(e)) if !local && e.kind() == std::io::ErrorKind::NotFound => report(
                false,
                "primary",
                format!(
                    "{shown}: {e}: is the NAS mounted? A store outside the data dir must exist and \
                     carry fushi's mark (`fushi check --init-primary` marks it once)"
                ),
            ),
            Ok(Err(e)) => report(false, "primary", format!("{shown}: {e}")),
            Err(_) => report(
                false,
                "primary",
                format!("{shown} did not answer within {timeout:?} (hung NAS?)"),
            ),
        }
    }
    let socket = crate::control::socket_path(&cfg);
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        match dir_state(dir) {
            Ok(detail) => report(true, "socket dir", detail),
            Err(detail) => report(false, "socket dir", detail),
        }
    }
    let mut running = None;
    let holder = daemon_on(data);
    match client::call(
        std::slice::from_ref(&socket),
        client::no_answer,
        &Request::Pid,
    ) {
        Ok(Response::Pid { pid }) => {
            running = Some(pid);
            report(
                true,
                "socket",
                format!("{}: fushi is running, pid {pid}", socket.display()),
            );
        }
        Ok(other) => report(
            false,
            "socket",
            format!("{}: unexpected answer {other:?}", socket.display()),
        ),
        Err(ClientError::NotRunning { .. }) if holder.is_some() => report(
            false,
            "socket",
            format!(
                "{} does not answer, but fushi pid {} runs on this data dir: its socket is elsewhere \
                 (started with another XDG_RUNTIME_DIR or control.socket?) or its control actor is restarting",
                socket.display(),
                holder.unwrap_or_default()
            ),
        ),
        Err(ClientError::Denied(p)) => report(
            false,
            "socket",
            format!(
                "{} belongs to a daemon of another user (mode 0600): run `fushi check` as that user or root",
                p.display()
            ),
        ),
        Err(ClientError::NotRunning { .. }) if std::fs::symlink_metadata(&socket).is_ok() => {
            report(
                true,
                "socket",
                format!(
                    "{} is left over from a daemon that is gone; the next one replaces it",
                    socket.display()
                ),
            )
        }
        Err(ClientError::NotRunning { .. }) => {
            report(true, "socket", format!("{} is free", socket.display()))
        }
        Err(e) => report(
            false,
            "socket",
            format!("{} is in use: {e}", socket.display()),
        ),
    }
    let addr = cfg.control.http.as_str();
    if addr.is_empty() {
        report(true, "http", "disabled (control.http = \"\")".into());
    } else {
        match std::net::TcpListener::bind(addr) {
            Ok(_) => report(true, "http", format!("{addr} is free")),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let holder = http_pid(
                    addr,
                    cfg.control.http_token.as_deref(),
                    cfg.storage.io_timeout,
                );
                match (holder, running) {
                    (Some(h), Some(r)) if h == r => {
                        report(true, "http", format!("{addr} is served by this fushi, pid {r}"))
                    }
                    (Some(h), _) => report(
                        false,
                        "http",
                        format!("{addr} is in use by another fushi (pid {h}); give this one its own control.http"),
                    ),
                    (None, _) => report(
                        false,
                        "http",
                        format!("{addr} is in use by another program; free it or set control.http"),
                    ),
                }
            }
            Err(e) => report(false, "http", format!("cannot bind {addr}: {e}")),
        }
    }
    Ok(if failed { EXIT_FAILURE } else { EXIT_OK })
}

/// `reread` (show) and `update` (apply) the difference between the config file and the daemon's running config.
pub fn config_diff(t: &Target, apply: bool, json_out: bool) -> anyhow::Result<u8> {
    let req = if apply {
        Request::Update
    } else {
        Request::Reread
    };
    // The daemon reads the file it was started with, whatever -c says here: a -c that names
    // another file would have the user believe that file was checked or applied.
    let doc = match status_doc(t) {
        Ok(d) => d,
        Err(e) => return down(e, EXIT_DAEMON_DOWN),
    };
    let theirs = daemon_config_path(&doc);
    if t.config_read && !same_file(&t.config_path, &theirs) {
        eprintln!(
            "fushi: the daemon reads its config from {}, not {}: edit that file and run `fushi {}` again, \
             or restart the daemon with -c {}",
            theirs.display(),
            t.config_path.display(),
            if apply { "update" } else { "reread" },
            t.config_path.display()
        );
        return Ok(EXIT_FAILURE);
    }
    let json = match t.call(&req) {
        Ok(Response::Json { json }) => json,
        Ok(other) => bail!("unexpected answer {other:?}"),
        Err(e) => return down(e, EXIT_DAEMON_DOWN),
    };
    if json_out {
        outln!("{json}");
        return Ok(EXIT_OK);
    }
    let d: serde_json::Value = serde_json::from_str(&json)?;
    let list = |k: &str| -> Vec<String> {
        d[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (added, removed, changed) = (list("added"), list("removed"), list("changed"));
    let restart = list("restart_needed");
    let collectors = [
        ("added", &added),
        ("removed", &removed),
        ("changed", &changed),
    ]
    .iter()
    .filter(|(_, l)| !l.is_empty())
    .map(|(k, l)| format!("{k} {}", l.join(", ")))
    .collect::<Vec<_>>();
    if !apply {
        for e in list("failed_reload") {
            outln!(
                "the last reload failed ({e}); the file loads now: `fushi update` applies it and clears the error"
            );
        }
    }
    match (collectors.is_empty(), apply) {
        (true, _) if restart.is_empty() => {
            outln!("no changes: the file matches the running config")
        }
        (true, _) => {}
        (false, true) => outln!("applied: {}", collectors.join("; ")),
        (false, false) => outln!("`fushi update` would apply: {}", collectors.join("; ")),
    }
    if !restart.is_empty() {
        outln!(
            "{}: {} (read at start only; restart the daemon, e.g. `systemctl restart fushi`)",
            if apply {
                "not applied, takes a daemon restart"
            } else {
                "takes a daemon restart"
            },
            restart.join(", ")
        );
    }
    Ok(EXIT_OK)
}

/// "1 record", "2 records".
pub(crate) fn records(n: u64) -> String {
    if n == 1 {
        "1 record".into()
    } else {
        format!("{n} records")
    }
}

/// What `fushi sync` does besides saying where forwarding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncAction {
    Show,
    /// List what the next sync sends, per stream.
    Plan,
    /// Retry at once and show the journal draining.
    Now,
}

/// Whether forwarding keeps up, by health's rule (SPEC §7): nothing waits, or what waits is
/// younger than the patience limit, with the primary up and no conflict. One sentence either way.
/// `tried_now` when `sync --now` tries: it then does not suggest itself.
fn sync_verdict(doc: &StatusDoc, tried_now: bool) -> (bool, String) {
    let st = &doc.storage;
    let p = &doc.patience;
    let limit = humantime::format_duration(Duration::from_secs(p.limit_ms.div_ceil(1000)));
    let age = humantime::format_duration(Duration::from_secs(p.lag_age_ms / 1000));
    let lag = st.lag_records;
    let (lag, wait) = (records(lag), if lag == 1 { "waits" } else { "wait" });
    if let Some(c) = &doc.sync.conflict {
        return (false, format!("forwarding stopped: {c}"));
    }
    if st.lag_records == 0 {
        return (
            true,
            "journal drained: nothing waits for the primary".into(),
        );
    }
    if st.primary == PrimaryState::Down {
        return (
            false,
            format!(
                "{lag} {wait}: the primary is down; they go when it is back (sync retries on \
                 its own{})",
                if tried_now {
                    ""
                } else {
                    ", `fushi sync --now` at once"
                }
            ),
        );
    }
    if p.journal_late() {
        return (
            false,
            format!(
                "{lag} {wait}, the oldest for {age}: longer than the {limit} in which sync \
                 keeps up (2 × sync.interval + io_timeout); see `fushi sync --plan` and `fushi tail sync`"
            ),
        );
    }
    (
        true,
        format!("{lag} {wait}, the oldest for {age}: sync keeps up (they go within {limit})"),
    )
}

/// `fushi sync`: where forwarding stands, exit 0 when it keeps up and 1 when records wait
/// longer than health allows; `--plan` lists what waits per stream; `--now` retries at once and
/// shows the journal draining.
pub fn sync(t: &Target, action: SyncAction, json_out: bool) -> anyhow::Result<u8> {
    let doc = match status_doc(t) {
        Ok(d) => d,
        Err(e) => return down(e, EXIT_DAEMON_DOWN),
    };
    let st = &doc.storage;
    let (keeps_up, verdict) = sync_verdict(&doc, action == SyncAction::Now);
    let plan = if action == SyncAction::Plan {
        match t.call(&Request::SyncPlan) {
            Ok(Response::Json { json }) => {
                Some(serde_json::from_str::<fushi_actors::sync::Backlog>(&json)?)
            }
            Ok(Response::Error { message }) => bail!("{message}"),
            Ok(other) => bail!("unexpected answer {other:?}"),
            Err(e) => return down(e, EXIT_DAEMON_DOWN),
        }
    } else {
        None
    };
    let code = if keeps_up { EXIT_OK } else { EXIT_FAILURE };
    if json_out && action != SyncAction::Now {
        let out = json!({
            "primary": st.primary,
            "lag_records": st.lag_records,
            "journal_bytes": st.journal_bytes,
            "lag_age_ms": doc.patience.lag_age_ms,
            "limit_ms": doc.patience.limit_ms,
            "keeps_up": keeps_up,
            "conflict": doc.sync.conflict,
            "last": doc.sync.last,
            "plan": plan,
        });
        outln!("{out}");
        return Ok(code);
    }
    outln!(
        "primary {}; {} not yet on the primary; journal {} on disk; last sync: {}",
        st.primary,
        records(st.lag_records),
        bytesize::ByteSize::b(st.journal_bytes).display().iec(),
        doc.sync
            .last
            .as_ref()
            .map_or("never".to_string(), |l| format!(
                "{} ({}, {})",
                l.at,
                records(l.items),
                if l.ok { "ok" } else { "failed" }
            ))
    );
    outln!("{verdict}");
    if let Some(plan) = plan {
        print_plan(&plan);
    }
    if action != SyncAction::Now {
        return Ok(code);
    }
    sync_now(t, st.lag_records)
}

fn print_plan(plan: &fushi_actors::sync::Backlog) {
    if !plan.primary_ids_known {
        outln!(
            "primary {}: ON PRIMARY is the last id it was known to hold (it is read again once it is back)",
            plan.primary
        );
    }
    if plan.streams.is_empty() {
        outln!("the next sync sends nothing");
    } else {
        let w = plan
            .streams
            .iter()
            .map(|s| s.stream.len())
            .max()
            .unwrap_or(0)
            .max("STREAM".len());
        outln!(
            "{:<w$}  {:>9}  {:>10}  {:<14} {:<14} {:<14} OLDEST",
            "STREAM",
            "RECORDS",
            "BYTES",
            "FIRST",
            "LAST",
            "ON PRIMARY"
        );
        for s in &plan.streams {
            outln!(
                "{:<w$}  {:>9}  {:>10}  {:<14} {:<14} {:<14} {}",
                s.stream,
                s.records,
                bytesize::ByteSize::b(s.bytes).display().iec().to_string(),
                s.first,
                s.last,
                s.on_primary.as_deref().unwrap_or("-"),
                s.oldest_ts
            );
        }
    }
    if plan.already_there > 0 {
        outln!(
            "{} on the primary already (sent before a restart): skipped",
            records(plan.already_there)
        );
    }
    if plan.superseded > 0 {
        outln!(
            "{} moved to new ids (a rehome): their copies go instead",
            records(plan.superseded)
        );
    }
    match plan.next_attempt_ms {
        0 => outln!("next attempt: with the next sync, within sync.interval"),
        ms => outln!(
            "next attempt: in {} (backing off after a failure; `fushi sync --now` retries at once)",
            humantime::format_duration(Duration::from_millis(ms / 100 * 100))
        ),
    }
}

/// `sync --now`: asks for a retry at once, then shows the journal draining until it is empty,
/// stalls, or the primary is down.
fn sync_now(t: &Target, lag_at_start: u64) -> anyhow::Result<u8> {
    let total = lag_at_start.max(1);
    if let Err(e) = t.call(&Request::SyncNow) {
        return down(e, EXIT_DAEMON_DOWN);
    }
    if lag_at_start == 0 {
        return Ok(EXIT_OK);
    }
    let mut stalled = 0;
    let mut last = u64::MAX;
    // On stderr, and only when it is a terminal (indicatif hides it otherwise).
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template("[{bar:30}] {pos}/{len} records forwarded")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    loop {
        let doc = match status_doc(t) {
            Ok(d) => d,
            Err(e) => return down(e, EXIT_DAEMON_DOWN),
        };
        let lag = doc.storage.lag_records;
        bar.set_position(total.saturating_sub(lag.min(total)));
        if lag == 0 {
            bar.finish();
            outln!("journal drained; primary {}", doc.storage.primary);
            return Ok(EXIT_OK);
        }
        stalled = if lag >= last { stalled + 1 } else { 0 };
        last = lag;
        if stalled >= 20 || doc.storage.primary == PrimaryState::Down || doc.sync.conflict.is_some()
        {
            bar.abandon();
            let (_, verdict) = sync_verdict(&doc, true);
            outln!("{verdict}");
            return Ok(EXIT_FAILURE);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_and_globs() {
        assert!(selects("collectors/*", "collectors/a"));
        assert!(!selects("collectors/*", "collectors"));
        assert!(!selects("collectors/*", "collectorsx/a"));
        assert!(selects("all", "storage"));
        assert!(glob("supervisor.child.*", "supervisor.child.failed"));
        assert!(glob("*.switch", "collector.storage.switch"));
        assert!(glob("a*b*c", "a-x-b-y-c"));
        assert!(!glob("supervisor.*", "daemon.started"));
        assert!(glob("daemon.started", "daemon.started"));
    }

    #[test]
    fn sync_keeps_up_until_the_oldest_record_outwaits_the_patience_limit() {
        let board = fushi_actors::board::StatusBoard::new("n", "prod", "c.toml");
        let mut doc = board.snapshot().0;
        doc.storage.primary = PrimaryState::Up;
        assert!(sync_verdict(&doc, false).0, "nothing waits");
        doc.storage.lag_records = 12;
        doc.patience.limit_ms = 23_000;
        doc.patience.lag_age_ms = 1_000;
        let (ok, text) = sync_verdict(&doc, false);
        assert!(
            ok && text.contains("12 records wait") && text.contains("keeps up"),
            "{text}"
        );
        doc.patience.lag_age_ms = 24_000;
        let (ok, text) = sync_verdict(&doc, false);
        assert!(
            !ok && text.contains("the oldest for 24s") && text.contains("23s"),
            "{text}"
        );
        doc.storage.primary = PrimaryState::Down;
        let (ok, text) = sync_verdict(&doc, false);
        assert!(!ok && text.contains("the primary is down"), "{text}");
        doc.sync.conflict = Some("record 1.3 of a/b differs".into());
        let (ok, text) = sync_verdict(&doc, false);
        assert!(
            !ok && text.contains("forwarding stopped: record 1.3"),
            "{text}"
        );
    }

    #[test]
    fn short_names_resolve_when_unambiguous() {
        let known = [
            "collectors",
            "collectors/a",
            "collectors/web/a",
            "collectors/web/b",
        ];
        let one = |n: &str| resolve_one(&known, n.to_string()).map_err(|e| e.to_string());
        assert_eq!(one("b").unwrap(), "collectors/web/b");
        assert_eq!(one("web/a").unwrap(), "collectors/web/a");
        assert_eq!(one("collectors/a").unwrap(), "collectors/a");
        assert_eq!(one("collectors/*").unwrap(), "collectors/*");
        assert_eq!(one("all").unwrap(), "all");
        let e = one("a").unwrap_err();
        assert!(
            e.contains("ambiguous") && e.contains("collectors/web/a"),
            "{e}"
        );
        let e = one("nosuch").unwrap_err();
        assert!(e.contains("known: collectors, collectors/a"), "{e}");
        // A name is a whole part: "b" is not the end of "web".
        assert!(one("eb/b").is_err());
    }
}
