//! `fushi run`: load the config (or the last good one), start the tree, talk to systemd, and
//! handle SIGTERM (ordered shutdown) and SIGHUP (reload) until told to stop.

use anyhow::{bail, Context};
use fushi_actors::alert::mask::Masker;
use fushi_actors::alert::{Alert, AlertOutbox};
use fushi_actors::audit::AuditLog;
use fushi_actors::board::{ActorState, StatusBoard};
use fushi_actors::events;
use fushi_actors::fs::write_atomic;
use fushi_actors::supervisor::{SupervisorActor, TreeContext};
use ractor::Actor;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{base_dir, Config, Mode};
use crate::control::server::{DaemonCmd, Shared};
use crate::logging::{self, LogTarget};
use crate::{systemd, tree, update};

const LAST_GOOD: &str = "config.last-good.toml";

/// A config ready to run, and the errors of the file when it is the last good copy instead.
struct Loaded {
    cfg: Config,
    /// The file's text when it is what runs (saved as the last good copy).
    text: Option<String>,
    errors: Vec<String>,
}

pub fn run(config_path: &Path, log: LogTarget) -> anyhow::Result<()> {
    let loaded = load(config_path)?;
    let ring = logging::LogRing::default();
    let _log = logging::init(log, loaded.cfg.node.mode == Mode::Debug, ring.clone())
        .context("setting up logging")?;
    for e in &loaded.errors {
        tracing::error!(event = events::CONFIG_INVALID, error = %e,
            "config file is invalid; running on the last good copy until it is fixed");
    }
    raise_fd_limit();
    let runtime = fushi_actors::runtime::build().context("starting the async runtime")?;
    let result = runtime.block_on(serve(config_path, loaded, ring));
    // A blocking task stuck on a hung disk (a status.json write) must not hold the exit: nothing
    // it could still do is needed, and the next start recovers from what is on disk.
    runtime.shutdown_timeout(EXIT_GRACE);
    result
}

/// A soft descriptor limit below this is worth a warning: listen collectors get half of it for
/// connections, the rest is shared by the journal, the primary, status and the control socket.
const LOW_FD_LIMIT: u64 = 4096;

/// Raises the soft descriptor limit to the hard one, as systemd expects of a daemon (its
/// default soft limit is 1024), before anything sizes a budget from it; warns if it stays low.
fn raise_fd_limit() {
    match fushi_actors::fdlimit::raise() {
        Ok(r) if r.now.soft < LOW_FD_LIMIT => tracing::warn!(
            event = events::DAEMON_FD_LIMIT_LOW,
            soft = r.now.soft,
            hard = r.now.hard,
            "the open-file limit is {} (hard limit {}): a flood of connections to a listen \
             collector can exhaust it; raise the hard limit (LimitNOFILE=1024:65536 in the unit, or ulimit -Hn)",
            r.now.soft,
            r.now.hard
        ),
        Ok(r) => tracing::info!(
            event = events::DAEMON_FD_LIMIT,
            soft = r.now.soft,
            was = r.before.soft,
            "open-file limit {}",
            r.now.soft
        ),
        Err(e) => tracing::warn!(event = events::DAEMON_FD_LIMIT_UNKNOWN, error = %e,
            "cannot read or raise the open-file limit (RLIMIT_NOFILE)"),
    }
}

/// How long the exit waits for blocking tasks still running.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// The data dir a broken config most likely meant: its `node.data_dir` if that much parses.
fn guess_data_dir(path: &Path) -> PathBuf {
    crate::config::lenient(path).node.data_dir
}

fn load(path: &Path) -> anyhow::Result<Loaded> {
    match Config::load(path) {
        Ok((cfg, text)) => Ok(Loaded {
            cfg,
            text: Some(text),
            errors: Vec::new(),
        }),
        Err(err) => {
            let last_good = guess_data_dir(path).join(LAST_GOOD);
            let fallback = std::fs::read_to_string(&last_good)
                .ok()
                .and_then(|text| Config::parse(&text, &last_good, base_dir(path)).ok());
            match fallback {
                Some(cfg) => {
                    eprintln!(
                        "fushi: {err}\nfushi: running on {} until the file is fixed",
                        last_good.display()
                    );
                    Ok(Loaded {
                        cfg,
                        text: None,
                        errors: vec![err.to_string()],
                    })
                }
                None => Err(err).context(format!("loading config {}", path.display())),
            }
        }
    }
}

pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating data dir {}", dir.display()))
}

/// One line for systemd's STATUS=.
fn summary(board: &StatusBoard) -> String {
    let (doc, _) = board.snapshot();
    let running = doc
        .actors
        .iter()
        .filter(|a| a.state == ActorState::Running)
        .count();
    let restarts: u64 = doc.actors.iter().map(|a| a.restarts).sum();
    format!(
        "health {}; {running}/{} actors running; {restarts} restarts",
        doc.health,
        doc.actors.len()
    )
}

/// The daemon's pid, held locked in its data dir for its life (and read by the CLI when no
/// socket answers).
pub const PID_FILE: &str = "fushi.pid";

/// Holds `<data_dir>/fushi.pid` locked for the daemon's life: one daemon per data dir.
fn lock_data_dir(dir: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(PID_FILE);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut holder = String::new();
    let _ = f.read_to_string(&mut holder);
    let mut lock = match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err(_) => bail!(
            "another fushi (pid {}) is already running on data dir {}; stop it first (fushi shutdown) or give this one another node.data_dir",
            holder.trim(),
            dir.display()
        ),
    };
    lock.set_len(0)?;
    lock.rewind()?;
    write!(lock, "{}", std::process::id())?;
    lock.sync_all()?;
    Ok(lock)
}

async fn serve(config_path: &Path, loaded: Loaded, ring: logging::LogRing) -> anyhow::Result<()> {
    // First of all: a SIGTERM that arrives while the tree starts is queued and answered with an
    // ordered stop, instead of the default action killing the process mid-start.
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let cfg = &loaded.cfg;
    let data_dir = cfg.node.data_dir.clone();
    create_private_dir(&data_dir)?;
    let _pid_lock = lock_data_dir(&data_dir)?;
    let last_good = data_dir.join(LAST_GOOD);
    if let Some(text) = &loaded.text {
        write_atomic(&last_good, text.as_bytes())
            .with_context(|| format!("saving {}", last_good.display()))?;
    }
    let node = cfg.node_id();
    let audit_path = data_dir.join("audit.jsonl");
    let audit = AuditLog::open(&audit_path, &node)
        .with_context(|| format!("opening the audit log {}", audit_path.display()))?;
    let board = StatusBoard::new(
        &node,
        cfg.node.mode.as_str(),
        &config_path.display().to_string(),
    );
    board.set_config_errors(loaded.errors.clone());
    board.set_log_target(logging::target_name());
    let alerts = AlertOutbox::default();
    if let Some(error) = loaded.errors.first() {
        alerts.push(Alert::ConfigRejected {
            path: config_path.display().to_string(),
            error: error.clone(),
            running: format!("the last good copy {}", last_good.display()),
        });
    }
    let ctx = TreeContext {
        board: board.clone(),
        audit: audit.clone(),
        alerts: alerts.clone(),
    };
    let socket = crate::control::socket_path(cfg);
    crate::control::server::make_socket_dir(&socket).map_err(|(dir, e)| {
        crate::config::ConfigError::Unsupported {
            message: format!(
                "cannot create the control socket's directory {}: {e}; create it (owned by the user \
                 fushi runs as) or set control.socket to a path in a directory that exists",
                dir.display()
            ),
        }
    })?;
    let (daemon_tx, mut daemon_rx) = tokio::sync::mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        root: OnceLock::new(),
        board: board.clone(),
        audit: audit.clone(),
        daemon: daemon_tx.clone(),
        ring,
        socket,
        allow_inject: cfg.control.allow_inject,
        bound: Default::default(),
    });
    let masker = Masker::new(crate::alert_settings::secrets(cfg));
    let (args, sink) = tree::build(cfg, ctx, shared.clone(), masker.clone())?;
    audit.emit(
        events::DAEMON_STARTED,
        None,
        json!({"pid": std::process::id(), "version": env!("CARGO_PKG_VERSION"),
               "config": config_path.display().to_string(), "last_good": !loaded.errors.is_empty()}),
    );
    tracing::info!(event = events::DAEMON_STARTED, pid = std::process::id(), config = %config_path.display(), "starting");
    let (root, mut root_handle) = SupervisorActor::spawn(None, SupervisorActor, args)
        .await
        .context("starting the supervision tree")?;
    let _ = shared.root.set(root.clone());
    let mut reconfig = Reconfig {
        config_path: config_path.to_path_buf(),
        started: cfg.clone(),
        running: cfg.clone(),
        root: root.clone(),
        sink,
        board: board.clone(),
        audit: audit.clone(),
        alerts,
        masker,
        last_good: last_good.clone(),
    };
    systemd::ready(&summary(&board));
    tracing::info!(event = events::DAEMON_READY, "{}", summary(&board));
    // Where `fushi report` ends the time a crash of the daemon took to recover from.
    audit.emit(
        events::DAEMON_READY,
        None,
        json!({"pid": std::process::id()}),
    );
    let _watchdog = systemd::watchdog_period()
        .map(|p| fushi_actors::AbortOnDrop(tokio::spawn(systemd::watchdog(root.clone(), p))));
    let status_board = board.clone();
    let _status_line = fushi_actors::AbortOnDrop(tokio::spawn(async move {
        let mut last = String::new();
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            let now = summary(&status_board);
            if now != last {
                systemd::status(&now);
                last = now;
            }
        }
    }));

    let mut mode_generation = 0u64;
    let reason = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => {
                // `systemctl reload` or a kill -HUP: a person's order, as `fushi update` is;
                // audited with its outcome, as the control socket's orders are.
                let result = reconfig.run(true).await;
                audit.emit(events::CONTROL_ACTION, None, json!({"action": "reload", "detail": {"via": "SIGHUP"},
                    "ok": result.is_ok(), "error": result.err()}));
            }
            Some(cmd) = daemon_rx.recv() => match cmd {
                DaemonCmd::Shutdown => break "shutdown request",
                DaemonCmd::Config { apply, reply } => {
                    let _ = reply.send(reconfig.run(apply).await);
                }
                DaemonCmd::Mode { mode, for_secs } => {
                    // Every setting starts a new generation: the timer of an earlier `--for`
                    // finds itself outdated and leaves this one alone.
                    mode_generation += 1;
                    let until = for_secs.map(|secs| {
                        let (tx, back, generation) =
                            (daemon_tx.clone(), cfg.node.mode.as_str().to_string(), mode_generation);
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(secs)).await;
                            let _ = tx.send(DaemonCmd::ModeBack { mode: back, generation });
                        });
                        fushi_actors::clock::in_rfc3339(Duration::from_secs(secs))
                    });
                    set_mode(&board, &mode, until);
                }
                DaemonCmd::ModeBack { mode, generation } if generation == mode_generation => {
                    audit.emit(events::MODE_CHANGE, None, json!({"mode": mode, "reason": "the --for period ended"}));
                    set_mode(&board, &mode, None);
                }
                DaemonCmd::ModeBack { .. } => {}
            },
            _ = &mut root_handle => {
                audit.emit(events::DAEMON_STOPPED, None, json!({"reason": "root supervisor failed"}));
                audit.flush();
                bail!("the root supervisor failed; exiting so that systemd restarts the daemon");
            }
        }
    };
    systemd::stopping();
    tracing::info!(
        event = events::DAEMON_STOPPING,
        signal = reason,
        "stopping the tree in order"
    );
    board.mark_shutting_down();
    // Each child already has its own shutdown_timeout; this only guards against a wedged root.
    let budget = cfg.supervisor.shutdown_timeout * (cfg.collectors.len() as u32 + 4)
        + Duration::from_secs(60);
    if root
        .stop_and_wait(Some(reason.into()), Some(budget))
        .await
        .is_err()
    {
        tracing::error!(
            event = events::DAEMON_STOP_TIMEOUT,
            "tree did not stop within {budget:?}; killing it"
        );
        root.kill();
    }
    // A clean stop leaves nothing behind that looks like a daemon: the socket and the pid file
    // go (the lock is held until the function returns, so no successor's file is removed).
    crate::control::server::remove_own_socket(&shared);
    let pid_file = data_dir.join(PID_FILE);
    if let Err(e) = std::fs::remove_file(&pid_file) {
        tracing::warn!(event = events::DAEMON_PID_FILE_LEFT, error = %e, path = %pid_file.display(), "cannot remove the pid file");
    }
    audit.emit(events::DAEMON_STOPPED, None, json!({"signal": reason}));
    audit.flush();
    tracing::info!(event = events::DAEMON_STOPPED, signal = reason, "stopped");
    Ok(())
}

fn set_mode(board: &StatusBoard, mode: &str, until: Option<String>) {
    board.set_mode(mode, until);
    logging::set_verbose(mode == "debug");
    tracing::info!(event = events::MODE_CHANGE, mode, "mode changed");
}

/// What `reread`, `update` and SIGHUP share: the running config and the way into the tree.
struct Reconfig {
    config_path: PathBuf,
    /// The config the daemon started with: what every section but the collectors still runs on.
    started: Config,
    /// The collectors as last applied.
    running: Config,
    root: ractor::ActorRef<fushi_actors::supervisor::SupervisorMsg>,
    sink: fushi_actors::sink::RecordSink,
    board: StatusBoard,
    audit: AuditLog,
    alerts: AlertOutbox,
    /// The secrets alert messages mask; a reload brings the new config's.
    masker: Masker,
    last_good: PathBuf,
}

impl Reconfig {
    /// Diffs the file against the running config and, with `apply`, applies the collector
    /// changes. A bad file (or a failed apply) keeps the running config and turns health red.
    async fn run(&mut self, apply: bool) -> Result<String, String> {
        if apply {
            systemd::reloading();
        }
        let result = self.diff_and_apply(apply).await;
        if apply {
            if let Err(e) = &result {
                self.board.set_config_errors(vec![e.clone()]);
                self.audit
                    .emit(events::CONFIG_RELOAD_FAILED, None, json!({"error": e}));
                tracing::error!(event = events::CONFIG_RELOAD_FAILED, error = %e, "config reload failed; keeping the running config");
                self.alerts.push(Alert::ConfigRejected {
                    path: self.config_path.display().to_string(),
                    error: e.clone(),
                    running: "the config it ran before".into(),
                });
            }
            systemd::ready(&summary(&self.board));
        }
        result
    }

    async fn diff_and_apply(&mut self, apply: bool) -> Result<String, String> {
        // Off the runtime's only thread: reading the file may wait on a busy disk.
        let path = self.config_path.clone();
        let (new, text) = tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let mut d = update::diff(&self.started, &self.running, &new);
        if !apply {
            d.failed_reload = self.board.snapshot().0.config.errors;
            return serde_json::to_string(&d).map_err(|e| e.to_string());
        }
        let json = serde_json::to_string(&d).map_err(|e| e.to_string())?;
        update::apply(&self.root, &d, &new, &self.sink).await?;
        if !self.board.snapshot().0.config.errors.is_empty() {
            self.alerts.push(Alert::ConfigFixed {
                path: self.config_path.display().to_string(),
            });
        }
        self.board.set_config_errors(Vec::new());
        let last_good = self.last_good.clone();
        // Its fsyncs share the disk with the journal's: off the runtime's only thread.
        let saved = tokio::task::spawn_blocking(move || write_atomic(&last_good, text.as_bytes()))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Err(e) = saved {
            tracing::warn!(event = events::CONFIG_LAST_GOOD_FAILED, error = %e, "cannot save the last good config");
        }
        self.audit.emit(
            events::CONFIG_RELOAD_OK,
            None,
            json!({"path": self.config_path.display().to_string(), "added": d.added, "removed": d.removed,
                   "changed": d.changed, "restart_needed": d.restart_needed}),
        );
        tracing::info!(event = events::CONFIG_RELOAD_OK, added = ?d.added, removed = ?d.removed, changed = ?d.changed,
            restart_needed = ?d.restart_needed, "config applied");
        self.masker.set(crate::alert_settings::secrets(&new));
        self.running = new;
        Ok(json)
    }
}
