//! The listen collector: newline-delimited JSON over TCP (`127.0.0.1:PORT`) or a Unix socket (`unix:PATH`), acknowledged once durable.
//!
//! Protocol (SPEC §5): a client writes JSON lines; after lines of its connection are durable in
//! the journal the collector writes `{"ack":N}\n`, N = lines of this connection durable so far.
//! A bad line (over `max_record_bytes`, invalid UTF-8, invalid JSON) gets
//! `{"error":"…","line":K}\n` (K counts from 1) and is kept on the `_quarantine` stream; it
//! counts towards N, since it is durable too. Lines already buffered are taken together into
//! one append, so concurrent connections share fsyncs (group commit).

use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinSet;

use super::read_line;
use crate::records::{from_line, RecordSink};
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
            Ok(Listener::Unix(UnixListener::bind(&path)?))
        }
        None => Ok(Listener::Tcp(TcpListener::bind(address).await?)),
    }
}

async fn serve<S: AsyncRead + AsyncWrite>(conn: S, args: Arc<ListenArgs>) -> std::io::Result<()> {
    let (r, mut w) = tokio::io::split(conn);
    let mut r = BufReader::with_capacity(64 * 1024, r);
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
        for line in lines {
            line_no += 1;
            let (record, problem) =
                from_line(&args.path, &args.stream, line, args.max_record_bytes, true);
            if let Some(error) = problem {
                tracing::warn!(
                    actor = args.path.as_str(),
                    event = "collector.quarantine",
                    line = line_no,
                    reason = error.as_str(),
                    "line quarantined"
                );
                reply.push_str(&serde_json::json!({"error": error, "line": line_no}).to_string());
                reply.push('\n');
            }
            records.push(record);
        }
        durable += records.len() as u64;
        args.sink.submit(&args.path, records).await;
        reply.push_str(&format!("{{\"ack\":{durable}}}\n"));
        w.write_all(reply.as_bytes()).await?;
    }
    w.flush().await
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
            event = "collector.listen",
            address = args.address.as_str(),
            "listening"
        );
        let args = Arc::new(args);
        let acceptor = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every connection with it.
            let mut conns = JoinSet::new();
            loop {
                let accepted = match &listener {
                    Listener::Tcp(l) => l.accept().await.map(|(s, _)| {
                        let _ = s.set_nodelay(true);
                        conns.spawn(serve(s, args.clone()));
                    }),
                    Listener::Unix(l) => l.accept().await.map(|(s, _)| {
                        conns.spawn(serve(s, args.clone()));
                    }),
                };
                if let Err(e) = accepted {
                    tracing::warn!(actor = args.path.as_str(), event = "collector.listen.accept_failed", error = %e, "accept failed");
                }
                while let Some(done) = conns.try_join_next() {
                    if let Ok(Err(e)) = done {
                        tracing::debug!(actor = args.path.as_str(), error = %e, "connection ended with an error");
                    }
                }
            }
        });
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
