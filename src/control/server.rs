//! The control actor: serves the Unix control socket for the CLI, one request per connection.
//!
//! The socket is created mode 0600 (its directory is the 0700 data dir or `$XDG_RUNTIME_DIR`)
//! and every peer's uid is checked (SO_PEERCRED): only the daemon's own user or root is served.
//! A client that sends nothing within [`READ_TIMEOUT`], an oversized frame, garbage or another
//! protocol version gets a clear error and is dropped; none of it reaches the rest of the daemon.

use fushi_actors::accept::{self, Labels, Policy};
use fushi_actors::audit::AuditLog;
use fushi_actors::board::StatusBoard;
use fushi_actors::events;
use fushi_actors::supervisor::SupervisorMsg;
use fushi_actors::AbortOnDrop;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{json, Value};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::proto::{self, FrameError, Request, Response};
use crate::logging::LogRing;

/// How long a client may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a start/stop/restart may take (shutdown timeouts included) before the CLI is told.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(300);
/// Clients served at once; more wait until one is done. The CLI opens one per command.
const MAX_CONNECTIONS: usize = 64;

/// What the control actor asks of the daemon's main loop.
#[derive(Debug)]
pub enum DaemonCmd {
    Shutdown,
    Mode {
        mode: String,
        for_secs: Option<u64>,
    },
    /// A `--for` period ended: back to `mode`, unless the mode was set again since (`generation`).
    ModeBack {
        mode: String,
        generation: u64,
    },
    /// Diff the config file against the running config (and apply it when `apply`); the
    /// answer is the diff as JSON, or why the file cannot be used.
    Config {
        apply: bool,
        reply: tokio::sync::oneshot::Sender<Result<String, String>>,
    },
}

/// Everything a request may need; shared by every incarnation of the control actor.
pub struct Shared {
    /// Set by the daemon once the tree is up.
    pub root: OnceLock<ActorRef<SupervisorMsg>>,
    pub board: StatusBoard,
    pub audit: AuditLog,
    pub daemon: mpsc::UnboundedSender<DaemonCmd>,
    pub ring: LogRing,
    pub socket: PathBuf,
    /// `control.allow_inject`: failure injection is refused unless the config allows it.
    pub allow_inject: bool,
    /// Device and inode of the socket file this process bound last: a restarted control actor
    /// finds its own socket there, not another fushi's.
    pub bound: Mutex<Option<(u64, u64)>>,
}

#[derive(Clone)]
pub struct ControlActor;

#[derive(Clone)]
pub struct ControlArgs {
    pub shared: Arc<Shared>,
}

pub enum ControlMsg {}

pub struct ControlState {
    _acceptor: AbortOnDrop,
}

/// Creates the directory the socket lives in when nobody made it yet (`/run/fushi` after a
/// reboot), private like the data dir. The daemon calls it before the tree starts, so that a
/// directory it cannot create stops it with a config error instead of crash-looping control.
pub fn make_socket_dir(path: &Path) -> Result<(), (PathBuf, std::io::Error)> {
    use std::os::unix::fs::DirBuilderExt;
    match path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        Some(dir) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| (dir.to_path_buf(), e)),
        None => Ok(()),
    }
}

/// Binds the socket, replacing a stale one left by a killed daemon but never a live one.
async fn bind(path: &PathBuf) -> Result<UnixListener, String> {
    make_socket_dir(path)
        .map_err(|(dir, e)| format!("creating socket dir {}: {e}", dir.display()))?;
    if std::fs::symlink_metadata(path).is_ok() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(format!(
                "{} is in use by another fushi; stop it, or give this one its own control.socket",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("removing stale socket {}: {e}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("binding {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("restricting {}: {e}", path.display()))?;
    Ok(listener)
}

/// The identity of the file at `path`, if there is one.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Removes the socket file this process bound before if it is still there (not a successor's):
/// at a clean stop, and when a new incarnation of this actor starts, since [`bind`] would
/// otherwise probe it, and a listener not closed yet would pass for another fushi, which failed
/// the restart and put the daemon out of reach for a backoff.
pub fn remove_own_socket(shared: &Shared) {
    let mine = *shared.bound.lock().unwrap_or_else(|e| e.into_inner());
    if mine.is_some() && file_id(&shared.socket) == mine {
        if let Err(e) = std::fs::remove_file(&shared.socket) {
            tracing::warn!(actor = "control", event = events::CONTROL_UNLINK_FAILED, error = %e,
                socket = %shared.socket.display(), "cannot remove this daemon's previous socket");
        }
    }
}

/// `all` means every collector, as in supervisorctl: the daemon's own actors are only ever named
/// one by one, and a request that swept them up stopped the socket it came in on.
fn every_collector(names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            if n == "all" {
                "collectors/*".to_string()
            } else {
                n.clone()
            }
        })
        .collect()
}

async fn read_request(conn: &mut UnixStream) -> Result<Request, FrameError> {
    proto::decode(&proto::read_frame_async(conn).await?)
}

async fn respond(conn: &mut UnixStream, resp: &Response) {
    if let Ok(bytes) = proto::encode(resp) {
        let _ = conn.write_all(&bytes).await;
        let _ = conn.shutdown().await;
    }
}

async fn serve(mut conn: UnixStream, shared: Arc<Shared>) {
    let me = nix::unistd::Uid::effective().as_raw();
    let uid = match conn.peer_cred() {
        Ok(cred) if cred.uid() == me || cred.uid() == 0 => cred.uid(),
        Ok(cred) => {
            tracing::warn!(
                actor = "control",
                event = events::CONTROL_REFUSED,
                uid = cred.uid(),
                "refused a client of another user"
            );
            let message = format!(
                "permission denied: uid {} may not control a fushi run by uid {me}",
                cred.uid()
            );
            respond(&mut conn, &Response::Error { message }).await;
            return;
        }
        Err(e) => {
            tracing::warn!(actor = "control", event = events::CONTROL_REFUSED, error = %e, "cannot read the peer's credentials");
            return;
        }
    };
    let req = match tokio::time::timeout(READ_TIMEOUT, read_request(&mut conn)).await {
        Err(_) => {
            let message = format!("no request within {READ_TIMEOUT:?}; closing");
            respond(&mut conn, &Response::Error { message }).await;
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!(actor = "control", event = events::CONTROL_BAD_REQUEST, error = %e, "bad request");
            respond(
                &mut conn,
                &Response::Error {
                    message: e.to_string(),
                },
            )
            .await;
            return;
        }
        Ok(Ok(req)) => req,
    };
    // Taken before `handle` consumes the request: what a person ordered, for `fushi report`.
    let order = req.action().map(|action| (action, order_detail(&req)));
    let resp = handle(req, &shared).await;
    if let Some((action, detail)) = order {
        let (ok, message) = match &resp {
            Response::Error { message } => (false, Some(message.clone())),
            _ => (true, None),
        };
        shared.audit.emit(
            events::CONTROL_ACTION,
            None,
            json!({"action": action, "detail": detail, "ok": ok, "error": message,
                   "uid": uid}),
        );
    }
    respond(&mut conn, &resp).await;
}

/// What an order was about, in the words of its command line.
fn order_detail(req: &Request) -> Value {
    match req {
        Request::Control { names, .. } => json!({"names": names}),
        Request::Mode { mode, for_secs } => json!({"mode": mode, "for_secs": for_secs}),
        Request::Inject { what, name } => json!({"what": what, "name": name}),
        Request::SloPromote { name } => json!({"name": name}),
        _ => json!({}),
    }
}

/// The live actor at a tree path, asked of the root supervisor.
async fn cell(shared: &Shared, path: &str) -> Option<ractor::ActorCell> {
    let root = shared.root.get()?;
    ractor::call!(root, |r| SupervisorMsg::Cell(path.to_string(), r))
        .ok()
        .flatten()
}

fn error(message: impl Into<String>) -> Response {
    Response::Error {
        message: message.into(),
    }
}

/// The live analyzer, or why there is none: no `[[slo]]` in the running config, or it is
/// restarting.
async fn analyzer_actor(
    shared: &Shared,
) -> Result<ActorRef<fushi_actors::slo::AnalyzerMsg>, Response> {
    match cell(shared, "analyzer").await {
        Some(c) => Ok(c.into()),
        None if shared.board.get("analyzer").is_some() => Err(error(
            "the analyzer is not running right now (restarting after a failure: see `fushi status \
             analyzer`)",
        )),
        None => Err(error(
            "this daemon runs no SLO gates: its config has no [[slo]] (add one and restart it; \
             `fushi slo --dry-run --fixture FILE` evaluates a file without a daemon)",
        )),
    }
}

/// The live sync actor, or the refusal that says why there is none right now (it is never
/// stopped through the socket, so it is restarting).
async fn sync_actor(shared: &Shared) -> Result<ActorRef<fushi_actors::sync::SyncMsg>, Response> {
    match cell(shared, "sync").await {
        Some(c) => Ok(c.into()),
        None => Err(error(
            "the sync actor is not running right now (restarting after a failure: see \
             `fushi status sync`; `fushi restart sync` starts it at once)",
        )),
    }
}

async fn handle(req: Request, shared: &Shared) -> Response {
    match req {
        Request::Status => {
            let (doc, _) = shared.board.snapshot();
            match serde_json::to_string(&doc) {
                Ok(json) => Response::Json { json },
                Err(e) => error(format!("cannot encode status: {e}")),
            }
        }
        Request::Pid => Response::Pid {
            pid: std::process::id(),
        },
        Request::Control { verb, names } => {
            let Some(root) = shared.root.get() else {
                return error("the daemon is still starting; try again in a moment");
            };
            let targets = every_collector(&names);
            let call = ractor::call_t!(
                root,
                |reply| SupervisorMsg::Control(verb, targets.clone(), reply),
                CONTROL_TIMEOUT.as_millis() as u64
            );
            match call {
                Ok(Ok(())) => Response::Ok {
                    message: format!("{verb:?} {}: ok", names.join(" ")).to_lowercase(),
                },
                Ok(Err(e)) => error(e.to_string()),
                Err(e) => error(format!("the supervisor did not answer: {e}")),
            }
        }
        Request::Shutdown => {
            let _ = shared.daemon.send(DaemonCmd::Shutdown);
            Response::Ok {
                message: "shutting down: the tree stops in order".into(),
            }
        }
        Request::Tail { lines, actor } => Response::Lines {
            lines: shared.ring.tail(lines as usize, actor.as_deref()),
        },
        Request::Mode { mode, for_secs } => {
            if !matches!(mode.as_str(), "prod" | "debug" | "diag") {
                return error(format!("unknown mode {mode:?}: use prod, debug or diag"));
            }
            if for_secs == Some(0) {
                return error("--for must be longer than 0s, e.g. --for 30m");
            }
            shared.audit.emit(
                events::MODE_CHANGE,
                None,
                json!({"mode": mode, "for_secs": for_secs}),
            );
            let _ = shared.daemon.send(DaemonCmd::Mode {
                mode: mode.clone(),
                for_secs,
            });
            Response::Ok {
                message: match for_secs {
                    Some(s) => format!(
                        "mode {mode} for {}",
                        humantime::format_duration(Duration::from_secs(s))
                    ),
                    None => format!("mode {mode}"),
                },
            }
        }
        Request::Reread | Request::Update => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let apply = matches!(req, Request::Update);
            if shared
                .daemon
                .send(DaemonCmd::Config { apply, reply: tx })
                .is_err()
            {
                return error("the daemon is shutting down");
            }
            match tokio::time::timeout(CONTROL_TIMEOUT, rx).await {
                Ok(Ok(Ok(json))) => Response::Json { json },
                Ok(Ok(Err(e))) => error(e),
                _ => error("the daemon did not answer the config request"),
            }
        }
        Request::SyncNow => {
            let sync = match sync_actor(shared).await {
                Ok(s) => s,
                Err(refusal) => return refusal,
            };
            match ractor::call_t!(
                sync,
                fushi_actors::sync::SyncMsg::Now,
                CONTROL_TIMEOUT.as_millis() as u64
            ) {
                Ok(()) => Response::Ok {
                    message: "sync attempted".into(),
                },
                Err(e) => error(format!("the sync actor did not answer: {e}")),
            }
        }
        Request::SyncPlan => {
            let sync = match sync_actor(shared).await {
                Ok(s) => s,
                Err(refusal) => return refusal,
            };
            match ractor::call_t!(
                sync,
                fushi_actors::sync::SyncMsg::Backlog,
                CONTROL_TIMEOUT.as_millis() as u64
            ) {
                Ok(Ok(b)) => match serde_json::to_string(&b) {
                    Ok(json) => Response::Json { json },
                    Err(e) => error(format!("encoding the backlog: {e}")),
                },
                Ok(Err(e)) => error(e),
                Err(e) => error(format!("the sync actor did not answer: {e}")),
            }
        }
        Request::Slo | Request::SloPromote { .. } => {
            let analyzer = match analyzer_actor(shared).await {
                Ok(a) => a,
                Err(refusal) => return refusal,
            };
            if let Request::SloPromote { name } = req {
                return match ractor::call_t!(
                    analyzer,
                    |r| fushi_actors::slo::AnalyzerMsg::Promote(name.clone(), r),
                    CONTROL_TIMEOUT.as_millis() as u64
                ) {
                    Ok(Ok(message)) => Response::Ok { message },
                    Ok(Err(e)) => error(e),
                    Err(e) => error(format!("the analyzer did not answer: {e}")),
                };
            }
            match ractor::call_t!(
                analyzer,
                fushi_actors::slo::AnalyzerMsg::Snapshot,
                CONTROL_TIMEOUT.as_millis() as u64
            ) {
                Ok(doc) => Response::Json {
                    json: doc.to_string(),
                },
                Err(e) => error(format!("the analyzer did not answer: {e}")),
            }
        }
        Request::LeaderRelease => {
            let Some(leader) = cell(shared, "leader").await else {
                let (doc, _) = shared.board.snapshot();
                return error(if doc.leader.enabled {
                    "the leader actor is not running right now (restarting after a failure: see \
                     `fushi status leader`)"
                } else {
                    "leader election is off in this daemon's config ([leader] enabled = false): \
                     there is no lease to release"
                });
            };
            let leader: ActorRef<fushi_actors::leader::LeaderMsg> = leader.into();
            match ractor::call_t!(
                leader,
                fushi_actors::leader::LeaderMsg::Release,
                CONTROL_TIMEOUT.as_millis() as u64
            ) {
                Ok(Ok(message)) => Response::Ok { message },
                Ok(Err(e)) => error(e),
                Err(e) => error(format!("the leader actor did not answer: {e}")),
            }
        }
        Request::Inject { what, name } => {
            // What is asked is checked first: a refusal for being disabled would hide a typo.
            match (what.as_str(), &name) {
                ("crash", None) => {
                    return error("inject crash needs the actor's name, e.g. collectors/trades")
                }
                ("crash" | "primary-down" | "primary-up", _) => {}
                (other, _) => {
                    return error(format!(
                        "cannot inject {other:?}: use `crash NAME`, `primary-down` or `primary-up`"
                    ))
                }
            }
            if !shared.allow_inject {
                // The running config's value, which may differ from the file's: [control] is
                // read at start only, so saying "set it" to someone who did would be no help.
                return error(
                    "failure injection is disabled in the running config; set control.allow_inject = true \
                     in the config file and restart the daemon ([control] changes take effect at a restart, \
                     not with `fushi update`)",
                );
            }
            match (what.as_str(), name) {
                ("crash", Some(name)) => match cell(shared, &name).await {
                    Some(c) => {
                        shared
                            .audit
                            .emit(events::INJECT_CRASH, Some(&name), json!({}));
                        tracing::warn!(
                            actor = name.as_str(),
                            event = events::INJECT_CRASH,
                            "injected crash"
                        );
                        c.kill();
                        Response::Ok {
                            message: format!("crashed {name}"),
                        }
                    }
                    None => error(format!("no running actor at {name:?}; see `fushi status`")),
                },
                ("crash", None) => {
                    error("inject crash needs the actor's name, e.g. collectors/trades")
                }
                (w @ ("primary-down" | "primary-up"), _) => {
                    let down = w == "primary-down";
                    let sync = match sync_actor(shared).await {
                        Ok(s) => s,
                        Err(refusal) => return refusal,
                    };
                    shared
                        .audit
                        .emit(&format!("inject.{w}"), Some("sync"), json!({}));
                    match ractor::call_t!(
                        sync,
                        |r| fushi_actors::sync::SyncMsg::Force(down, r),
                        CONTROL_TIMEOUT.as_millis() as u64
                    ) {
                        Ok(()) => Response::Ok {
                            message: format!("{w} injected"),
                        },
                        Err(e) => error(format!("the sync actor did not answer: {e}")),
                    }
                }
                (other, _) => error(format!(
                    "cannot inject {other:?}: use `crash NAME`, `primary-down` or `primary-up`"
                )),
            }
        }
    }
}

impl Actor for ControlActor {
    type Msg = ControlMsg;
    type State = ControlState;
    type Arguments = ControlArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<ControlMsg>,
        args: ControlArgs,
    ) -> Result<ControlState, ActorProcessingErr> {
        let shared = args.shared;
        remove_own_socket(&shared);
        let listener = bind(&shared.socket).await?;
        *shared.bound.lock().unwrap_or_else(|e| e.into_inner()) = file_id(&shared.socket);
        tracing::info!(actor = "control", event = events::CONTROL_LISTENING, socket = %shared.socket.display(), "control socket ready");
        let labels = Labels {
            actor: "control".into(),
            events: "control".into(),
        };
        let policy = Policy::new(MAX_CONNECTIONS);
        let acceptor = tokio::spawn(accept::run(listener, policy, labels, move |conn| {
            // A request outlives the incarnation that took it (`restart control` gets its
            // answer); only its slot goes with the accept loop.
            let request = tokio::spawn(serve(conn, shared.clone()));
            async move {
                let _ = request.await;
            }
        }));
        Ok(ControlState {
            _acceptor: AbortOnDrop(acceptor),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ControlMsg>,
        msg: ControlMsg,
        _state: &mut ControlState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {}
    }

    /// Closes the listener before the actor counts as stopped: a replacement started right after
    /// (`fushi restart control`) must not find it still accepting.
    async fn post_stop(
        &self,
        _myself: ActorRef<ControlMsg>,
        state: &mut ControlState,
    ) -> Result<(), ActorProcessingErr> {
        state._acceptor.stop().await;
        Ok(())
    }
}
