//! `pid`, `mode` and the commands whose answer is one line (`shutdown`, `inject`).

use anyhow::bail;
use std::time::Duration;

use super::target::*;
use super::words::*;
use crate::control::proto::{Request, Response};

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

/// Sends an order and prints the daemon's answer: exit 0 when done, 1 when refused (the
/// daemon's reason on stderr), 7 when the daemon does not answer.
pub fn simple(t: &Target, req: Request) -> anyhow::Result<u8> {
    match t.call(&req) {
        Ok(Response::Ok { message }) => {
            outln!("{message}");
            Ok(EXIT_OK)
        }
        Ok(Response::Error { message }) => {
            eprintln!("fushi: {message}");
            Ok(EXIT_FAILURE)
        }
        Ok(other) => bail!("unexpected answer {other:?}"),
        Err(e) => down(e, EXIT_DAEMON_DOWN),
    }
}
