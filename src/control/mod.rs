//! The control plane: the Unix socket protocol, the daemon's side of it, and the client the CLI uses.

pub mod client;
pub mod proto;
pub mod server;

use std::path::PathBuf;

use crate::config::Config;

/// Where the daemon binds its socket: `control.socket`, else `$XDG_RUNTIME_DIR/fushi.sock`, else
/// `<data_dir>/fushi.sock` (SPEC §7).
pub fn socket_path(cfg: &Config) -> PathBuf {
    socket_candidates(cfg).remove(0)
}

/// Where a client looks, in order: the daemon may have started with another environment (a
/// system service has no `XDG_RUNTIME_DIR`), so every place it could have bound is tried.
pub fn socket_candidates(cfg: &Config) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(s) = &cfg.control.socket {
        out.push(s.clone());
        return out;
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        out.push(PathBuf::from(dir).join("fushi.sock"));
    }
    out.push(cfg.node.data_dir.join("fushi.sock"));
    out
}
