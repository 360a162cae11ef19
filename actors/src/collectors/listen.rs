//! The listen collector: newline-delimited JSON over TCP (`127.0.0.1:PORT`) or a Unix socket (`unix:PATH`), acknowledged once durable.
//!
//! Protocol (SPEC §5): a client writes JSON lines; after lines of its connection are durable in
//! the journal the collector writes `{"ack":N}\n`, N = lines of this connection durable so far.
//! A bad line (over `max_record_bytes`, invalid UTF-8, invalid JSON) gets
//! `{"error":"…","line":K}\n` (K counts from 1) and is kept on the `_quarantine` stream; it
//! counts towards N, since it is durable too. Lines already buffered are taken together into
//! one append, so concurrent connections share fsyncs (group commit).
//!
//! Connections are accepted by the daemon's accept policy ([`crate::accept`]); every listen
//! collector takes its connections from one budget sized from the descriptor limit, so a flood
//! of idle connections leaves descriptors for the journal, status and control socket.

use crate::events;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, UnixListener, UnixSocket};
use tokio::sync::Semaphore;

use super::read_line;
use crate::accept::{self, Labels, Policy};
use crate::records::from_line;
use crate::sink::RecordSink;
use crate::AbortOnDrop;

#[derive(Clone)]
pub struct ListenActor;

#[derive(Clone)]
pub struct ListenArgs {
    pub path: String,
    pub stream: String,
    /// `127.0.0.1:PORT` or `unix:PATH`.
    pub address: String,
    pub max_record_bytes: usize,
    pub sink: RecordSink,
}

pub enum ListenMsg {}

pub struct ListenState {
    _acceptor: AbortOnDrop,
}

/// Lines taken into one append at most.
const BATCH_LINES: usize = 4096;

/// Connections the kernel holds for us while every slot is taken (std and tokio ask for 128):
/// they cost no descriptor of ours, and a client among them is served when a slot frees.
const BACKLOG: u32 = 1024;

/// Bytes of read buffer per connection.
const READ_BUFFER: usize = 64 * 1024;

/// Connections all listen collectors hold at most, whatever the descriptor limit: 1024 read
/// buffers are 64 MiB, an eighth of the unit's `MemoryMax`.
const MAX_CONNECTIONS: usize = 1024;

/// The policy every listen collector accepts by: the connection budget of all of them together
/// is half the soft descriptor limit (read once, after the daemon raised it), at least 16 and
/// at most [`MAX_CONNECTIONS`]; the other half is the journal's, the status writer's, the
/// control socket's and the runtime's. Each incarnation's connections give their slots back
/// when they are dropped with it.
fn policy() -> Policy {
    static BUDGET: OnceLock<(Arc<Semaphore>, usize)> = OnceLock::new();
    let (slots, n) = BUDGET.get_or_init(|| {
        let soft = crate::fdlimit::get().map_or(1024, |l| l.soft);
        let n = usize::try_from(soft / 2).map_or(MAX_CONNECTIONS, |n| n.clamp(16, MAX_CONNECTIONS));
        (Arc::new(Semaphore::new(n)), n)
    });
    Policy::sharing(slots.clone(), *n)
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

async fn bind(address: &str) -> std::io::Result<Listener> {
    match address.strip_prefix("unix:") {
        Some(path) => {
            let path = PathBuf::from(path);
            // A socket file left by a killed daemon would make bind fail with EADDRINUSE.
            match std::fs::symlink_metadata(&path) {
                Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
                    std::fs::remove_file(&path)?
                }
                Ok(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!("{} exists and is not a socket", path.display()),
                    ))
                }
                Err(_) => {}
            }
            // The file stays on stop: the old incarnation's state is dropped after its successor
            // may already have bound here, and the next bind replaces a stale file anyway.
            let socket = UnixSocket::new_stream()?;
            socket.bind(&path)?;
            Ok(Listener::Unix(socket.listen(BACKLOG)?))
        }
        None => {
            let addr = tokio::net::lookup_host(address)
                .await?
                .next()
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "the address resolves to nothing",
                    )
                })?;
            let socket = match addr {
                std::net::SocketAddr::V4(_) => TcpSocket::new_v4()?,
                std::net::SocketAddr::V6(_) => TcpSocket::new_v6()?,
            };
            // As std and tokio do: a restarted collector rebinds while old connections linger.
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            Ok(Listener::Tcp(socket.listen(BACKLOG)?))
        }
    }
}

async fn serve<S: AsyncRead + AsyncWrite>(conn: S, args: Arc<ListenArgs>) -> std::io::Result<()> {
    let (r, mut w) = tokio::io::split(conn);
    let mut r = BufReader::with_capacity(READ_BUFFER, r);
    let (mut line_no, mut durable) = (0u64, 0u64);
    while let Some(first) = read_line(&mut r, args.max_record_bytes).await? {
        let mut lines = vec![first];
        while lines.len() < BATCH_LINES && r.buffer().contains(&b'\n') {
            match read_line(&mut r, args.max_record_bytes).await? {
                Some(l) => lines.push(l),
                None => break,
            }
        }
        let mut records = Vec::with_capacity(lines.len());
        let mut reply = String::new();
        let mut rejected = 0;
        for line in lines {
            line_no += 1;
            let (record, problem) =
                from_line(&args.path, &args.stream, line, args.max_record_bytes, true);
            if let Some(error) = problem {
                tracing::warn!(
                    actor = args.path.as_str(),
                    event = events::COLLECTOR_QUARANTINE,
                    line = line_no,
                    reason = error.as_str(),
                    "line quarantined"
                );
                reply.push_str(&serde_json::json!({"error": error, "line": line_no}).to_string());
                reply.push('\n');
                rejected += 1;
            }
            records.push(record);
        }
        if rejected > 0 {
            args.sink.board().rejected(&args.path, rejected);
        }
        let n_records = records.len() as u64;
        if let Err(e) = args.sink.submit(&args.path, records).await {
            // Not acknowledged, so the client sends them again (to whichever node leads).
            let refusal = serde_json::json!({"error": e.to_string(), "acked": durable});
            w.write_all(format!("{reply}{refusal}\n").as_bytes())
                .await?;
            w.flush().await?;
            return Err(std::io::Error::other(e));
        }
        durable += n_records;
        reply.push_str(&format!("{{\"ack\":{durable}}}\n"));
        w.write_all(reply.as_bytes()).await?;
    }
    w.flush().await
}

/// One connection served to its end; how it ended matters to nobody but a debugging reader.
async fn served<S: AsyncRead + AsyncWrite>(conn: S, args: Arc<ListenArgs>) {
    if let Err(e) = serve(conn, args.clone()).await {
        tracing::debug!(actor = args.path.as_str(), error = %e, "connection ended with an error");
    }
}

impl Actor for ListenActor {
    type Msg = ListenMsg;
    type State = ListenState;
    type Arguments = ListenArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<ListenMsg>,
        args: ListenArgs,
    ) -> Result<ListenState, ActorProcessingErr> {
        let listener = bind(&args.address)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.address))?;
        tracing::info!(
            actor = args.path.as_str(),
            event = events::COLLECTOR_LISTEN,
            address = args.address.as_str(),
            "listening"
        );
        let args = Arc::new(args);
        let labels = Labels {
            actor: args.path.clone(),
            events: events::COLLECTOR_LISTEN.into(),
        };
        let acceptor = match listener {
            Listener::Tcp(l) => tokio::spawn(accept::run(l, policy(), labels, move |s| {
                let _ = s.set_nodelay(true);
                served(s, args.clone())
            })),
            Listener::Unix(l) => tokio::spawn(accept::run(l, policy(), labels, move |s| {
                served(s, args.clone())
            })),
        };
        Ok(ListenState {
            _acceptor: AbortOnDrop(acceptor),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ListenMsg>,
        msg: ListenMsg,
        _state: &mut ListenState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {}
    }
}
