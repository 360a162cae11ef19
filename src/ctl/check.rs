//! `check`: the pre-flight of a config — paths, permissions, programs, the primary's mark, the socket and the HTTP port — that creates nothing and knows a running daemon.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::target::*;
use crate::config::Config;
use crate::control::client::{self, ClientError};
use crate::control::proto::{Request, Response};

/// Where the daemon would find `program`: a path with a `/` as it is (against `cwd` if
/// relative), any other name on `search` (the child's PATH, as `Command` looks it up); it must
/// be a file this user may execute.
pub(super) fn find_program(
    program: &str,
    cwd: Option<&Path>,
    search: &OsStr,
) -> Result<PathBuf, String> {
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
pub(super) fn dir_state(dir: &Path) -> Result<String, String> {
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
pub(super) fn http_pid(addr: &str, token: Option<&str>, timeout: Duration) -> Option<u32> {
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
    if cfg.leader.enabled {
        match cfg.leader.backend {
            crate::config::LeaderBackend::Etcd => {
                let (ok, line) = etcd_line(&cfg.leader, cfg.storage.io_timeout);
                report(ok, "leader", line)
            }
            crate::config::LeaderBackend::File => {
                let (ok, line) = leader_line(&cfg.storage.primary, &cfg.leader, &cfg.node_id());
                report(ok, "leader", line)
            }
        }
    }
    let inherited = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    for c in cfg.collectors.iter().filter(|c| c.enabled) {
        if c.kind == crate::config::CollectorKind::Tail {
            let pattern = c.path.as_deref().unwrap_or(Path::new("")).to_string_lossy();
            let (readable, unreadable) = fushi_actors::collectors::tail::survey(&pattern);
            let what = format!("files collectors/{}", c.name);
            for (p, e) in &unreadable {
                let why = if e.starts_with("a directory") {
                    format!("{} is {e}", p.display())
                } else {
                    format!("{} cannot be read by this user: {e}", p.display())
                };
                report(false, &what, why);
            }
            match readable.len() {
                0 if unreadable.is_empty() => report(
                    true,
                    &what,
                    format!("{pattern} matches no file yet; the collector waits for one"),
                ),
                0 => {}
                n => report(
                    true,
                    &what,
                    format!(
                        "{pattern} matches {n} readable file{} ({}{})",
                        if n == 1 { "" } else { "s" },
                        readable[0].display(),
                        if n > 1 { ", …" } else { "" }
                    ),
                ),
            }
            continue;
        }
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
        if ch.kind == crate::config::AlertChannelKind::File {
            // The file is created at the first alert; its directory must take it.
            let path = ch.path.as_deref().unwrap_or(Path::new(""));
            let dir = path.parent().unwrap_or(Path::new("."));
            let what = format!("file alert.channel[{i}]");
            use nix::unistd::{access, AccessFlags};
            let writable = if path.exists() {
                access(path, AccessFlags::W_OK)
                    .map_err(|e| format!("{} is not writable: {e}", path.display()))
            } else if dir.is_dir() {
                access(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
                    format!(
                        "{} cannot be created: {} is not writable: {e}",
                        path.display(),
                        dir.display()
                    )
                })
            } else {
                Err(format!(
                    "{} does not exist: create it, or the file channel fails every alert",
                    dir.display()
                ))
            };
            match writable {
                Ok(()) => report(true, &what, format!("{} can be written", path.display())),
                Err(e) => report(false, &what, e),
            }
            continue;
        }
        if ch.kind != crate::config::AlertChannelKind::Command {
            continue;
        }
        let what = format!("program alert.channel[{i}]");
        if ch.shell {
            report(
                true,
                &what,
                "shell = true: /bin/sh resolves the command line when it runs".into(),
            );
            continue;
        }
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

/// What the file backend's lock says now, read once (the primary may be a hung NAS: this is
/// the CLI, which may block, and says what it found).
fn leader_line(primary: &Path, l: &crate::config::LeaderConfig, node: &str) -> (bool, String) {
    let locks = fushi_actors::leader::lock::LockDir::of(primary);
    let here = gethostname::gethostname().to_string_lossy().into_owned();
    let (ok, holder) = match locks.read() {
        Ok(Some((h, _))) if h.node == node && h.host == here => (
            true,
            if Path::new(&format!("/proc/{}", h.pid)).exists() {
                format!("held by this node (pid {}, epoch {})", h.pid, h.epoch)
            } else {
                format!(
                    "left by this node's earlier process (pid {}, gone; epoch {}): the next start \
                     takes it back at once",
                    h.pid, h.epoch
                )
            },
        ),
        Ok(Some((h, _))) if h.node == node => (
            true,
            format!(
                "held under this node's name by host {} (pid {}, epoch {}): if that is another \
                 daemon, give each its own [node] id",
                h.host, h.pid, h.epoch
            ),
        ),
        Ok(Some((h, _))) => (
            true,
            format!("held by {} on {} (epoch {})", h.node, h.host, h.epoch),
        ),
        Ok(None) => (true, "free: the first node to start takes it".into()),
        Err(e) => (false, format!("unreadable now ({e})")),
    };
    (
        ok,
        format!(
            "file lock {} {holder}; renewed every {}, taken over after {} unchanged; priority {}",
            locks.lock_path().display(),
            humantime::format_duration(l.heartbeat),
            humantime::format_duration(l.stale_after),
            l.priority
        ),
    )
}

/// Whether etcd answers at `etcd_endpoints`, and who holds the leader key there.
fn etcd_line(l: &crate::config::LeaderConfig, timeout: Duration) -> (bool, String) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return (false, format!("cannot start a runtime to ask etcd: {e}")),
    };
    let endpoints = l.etcd_endpoints.join(",");
    let mut backend = fushi_actors::leader::backend::Backend::etcd(
        l.etcd_endpoints.clone(),
        l.stale_after,
        l.heartbeat,
        timeout,
    );
    match rt.block_on(backend.look()) {
        Ok(look) => {
            let holder = match look.lock {
                Some((h, _)) => format!("held by {} on {} (epoch {})", h.node, h.host, h.epoch),
                None => "free: the first node to start takes it".into(),
            };
            (
                true,
                format!(
                    "etcd at {endpoints} answers; the lease {holder}; renewed every {}, taken \
                     over within {} of the holder's death; priority {}",
                    humantime::format_duration(l.heartbeat),
                    humantime::format_duration(l.stale_after + l.heartbeat),
                    l.priority
                ),
            )
        }
        Err(e) => (
            false,
            format!("{e}: the daemon would stand by (collecting nothing) until etcd answers"),
        ),
    }
}
