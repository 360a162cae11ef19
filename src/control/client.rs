//! The CLI's side of the control socket: find the daemon, send one request, read one response.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use super::proto::{self, FrameError, Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon answers on any of `tried`; `message` says so and what to do, as the caller
    /// knows best (see `ctl::Target`).
    #[error("{message}")]
    NotRunning {
        tried: Vec<PathBuf>,
        message: String,
    },
    #[error("permission denied on {0}: run this as the daemon's user or root")]
    Denied(PathBuf),
    #[error("talking to the daemon on {path}: {source}")]
    Frame {
        path: PathBuf,
        #[source]
        source: FrameError,
    },
    #[error("{0}")]
    Daemon(String),
}

/// How long a request may take: a restart waits for shutdown timeouts.
const TIMEOUT: Duration = Duration::from_secs(310);

/// "no daemon answers on A or B".
pub fn no_answer(tried: &[PathBuf]) -> String {
    format!(
        "no daemon answers on {}",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    )
}

/// Sends `req` to the first socket in `candidates` that a daemon answers on; when none does,
/// `why` words the error.
pub fn call(
    candidates: &[PathBuf],
    why: impl FnOnce(&[PathBuf]) -> String,
    req: &Request,
) -> Result<Response, ClientError> {
    let mut last_denied = None;
    for path in candidates {
        let conn = match UnixStream::connect(path) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                last_denied = Some(path.clone());
                continue;
            }
            Err(_) => continue,
        };
        let frame_err = |source| ClientError::Frame {
            path: path.clone(),
            source,
        };
        let _ = conn.set_read_timeout(Some(TIMEOUT));
        let mut w = &conn;
        match proto::write_frame(&mut w, req) {
            Ok(()) => {}
            // The daemon may refuse (another uid) before reading: its answer is still there.
            Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => return Err(frame_err(e)),
        }
        let mut r = &conn;
        let content = proto::read_frame(&mut r).map_err(frame_err)?;
        return match proto::decode::<Response>(&content) {
            Ok(Response::Error { message }) => Err(ClientError::Daemon(message)),
            Ok(resp) => Ok(resp),
            // A daemon of another version still sends its refusals as variant 0.
            Err(FrameError::Version { theirs }) => {
                match postcard::from_bytes::<Response>(&content[2..]) {
                    Ok(Response::Error { message }) => Err(ClientError::Daemon(message)),
                    _ => Err(frame_err(FrameError::Version { theirs })),
                }
            }
            Err(e) => Err(frame_err(e)),
        };
    }
    if let Some(p) = last_denied {
        return Err(ClientError::Denied(p));
    }
    Err(ClientError::NotRunning {
        tried: candidates.to_vec(),
        message: why(candidates),
    })
}
