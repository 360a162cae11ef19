//! The control protocol between `fushi` commands and the daemon: length-prefixed postcard frames with a version header.
//!
//! A frame is `len: u32 LE | version: u16 LE | postcard(body)`, `len` counting version and body.
//! One request and one response per connection. The version travels in every frame so that
//! either side can say exactly what is wrong when they differ; [`Response::Error`] is variant 0
//! and must stay so, because it is the one message every version can decode.

use fushi_actors::supervisor::Verb;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

pub const VERSION: u16 = 1;
/// Requests are small; responses carry at most a status document, log or audit tail.
pub const MAX_FRAME: usize = 8 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// The status document (SPEC §7.1).
    Status,
    Control {
        verb: Verb,
        names: Vec<String>,
    },
    Pid,
    Shutdown,
    /// The newest `lines` log lines of the daemon's in-memory ring, optionally of one actor.
    Tail {
        lines: u32,
        actor: Option<String>,
    },
    Mode {
        mode: String,
        for_secs: Option<u64>,
    },
    SyncNow,
    /// The difference between the config file and the running config.
    Reread,
    /// Apply that difference: add, remove and restart only the changed collectors.
    Update,
    Inject {
        what: String,
        name: Option<String>,
    },
    /// What the next sync would send, per stream ([`fushi_actors::sync::Backlog`] as JSON).
    /// Last, so that the variants before keep their numbers.
    SyncPlan,
    /// `fushi leader --release`: hand the lease over now. Appended, like every new request.
    LeaderRelease,
    /// `fushi slo`: every SLO gate, its phase and windows, as JSON. Appended.
    Slo,
    /// `fushi slo promote NAME`: move the gate on one phase. Appended.
    SloPromote {
        name: String,
    },
}

impl Request {
    /// The operator's order this request carries, by the name `fushi report` counts as a manual
    /// intervention (`control.action`), or `None` for one that only reads.
    pub fn action(&self) -> Option<&'static str> {
        Some(match self {
            Request::Control { verb, .. } => match verb {
                Verb::Start => "start",
                Verb::Stop => "stop",
                Verb::Restart => "restart",
            },
            Request::Shutdown => "shutdown",
            Request::Mode { .. } => "mode",
            Request::SyncNow => "sync",
            Request::Update => "update",
            Request::Inject { .. } => "inject",
            Request::LeaderRelease => "leader_release",
            Request::SloPromote { .. } => "slo_promote",
            Request::Status
            | Request::Pid
            | Request::Tail { .. }
            | Request::Reread
            | Request::SyncPlan
            | Request::Slo => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Variant 0 forever: the refusal any client version can decode.
    Error {
        message: String,
    },
    Ok {
        message: String,
    },
    /// A JSON document (status, config diff…), as text: postcard cannot carry free-form JSON.
    Json {
        json: String,
    },
    Pid {
        pid: u32,
    },
    Lines {
        lines: Vec<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME} bytes")]
    TooLarge(usize),
    #[error("frame too short to hold a version")]
    Short,
    #[error("protocol version {theirs} is not {VERSION}, the version of this fushi; use the same fushi binary for the daemon and the command")]
    Version { theirs: u16 },
    #[error("malformed frame: {0}")]
    Malformed(#[from] postcard::Error),
    #[error(transparent)]
    Io(#[from] io::Error),
}

pub fn encode<T: Serialize>(body: &T) -> Result<Vec<u8>, FrameError> {
    let payload = postcard::to_stdvec(body)?;
    let len = payload.len() + 2;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Splits a frame's content (after the length) into version and body.
pub fn decode<T: for<'de> Deserialize<'de>>(content: &[u8]) -> Result<T, FrameError> {
    if content.len() < 2 {
        return Err(FrameError::Short);
    }
    let version = u16::from_le_bytes([content[0], content[1]]);
    if version != VERSION {
        return Err(FrameError::Version { theirs: version });
    }
    Ok(postcard::from_bytes(&content[2..])?)
}

/// The length a frame's 4-byte prefix announces, refused over the limit before anything is
/// allocated for it.
fn content_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// Reads one frame's content (the CLI's blocking side).
pub fn read_frame(r: &mut impl Read) -> Result<Vec<u8>, FrameError> {
    let mut prefix = [0u8; 4];
    r.read_exact(&mut prefix)?;
    let mut buf = vec![0u8; content_len(prefix)?];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// Reads one frame's content (the daemon's async side): the same frame as [`read_frame`].
pub async fn read_frame_async(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Result<Vec<u8>, FrameError> {
    use tokio::io::AsyncReadExt;
    let mut prefix = [0u8; 4];
    r.read_exact(&mut prefix).await?;
    let mut buf = vec![0u8; content_len(prefix)?];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

pub fn write_frame<T: Serialize>(w: &mut impl Write, body: &T) -> Result<(), FrameError> {
    w.write_all(&encode(body)?)?;
    Ok(w.flush()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let req = Request::Control {
            verb: Verb::Restart,
            names: vec!["collectors/*".into()],
        };
        let frame = encode(&req).unwrap();
        let content = read_frame(&mut &frame[..]).unwrap();
        assert_eq!(decode::<Request>(&content).unwrap(), req);

        let mut other = content.clone();
        other[0] = 9;
        assert!(matches!(
            decode::<Request>(&other),
            Err(FrameError::Version { theirs: 9 })
        ));
        let huge = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert!(matches!(
            read_frame(&mut &huge[..]),
            Err(FrameError::TooLarge(_))
        ));
        let garbage = [4u8, 0, 0, 0, 1, 0, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut &garbage[..]).map(|c| decode::<Request>(&c)),
            Ok(Err(FrameError::Malformed(_)))
        ));
        // The error response keeps variant 0: its encoding starts with a zero tag.
        let err = postcard::to_stdvec(&Response::Error {
            message: "x".into(),
        })
        .unwrap();
        assert_eq!(err[0], 0);
    }
}
