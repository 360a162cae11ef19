//! `fushi install-unit [--user|--system] [--print]`: the unit for this binary and config, printed, or written and enabled with systemctl.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::target::*;
use crate::config::{AlertChannelKind, Config};
use crate::unit::{render, Scope, UnitSpec};

/// The paths the daemon writes besides its state directory: the data dir, a primary outside
/// it, the directories of file alert channels.
fn writable(cfg: &Config) -> Vec<PathBuf> {
    let mut out = vec![cfg.node.data_dir.clone()];
    if !cfg.storage.primary.starts_with(&cfg.node.data_dir) {
        out.push(cfg.storage.primary.clone());
    }
    for ch in &cfg.alert.channels {
        if ch.kind == AlertChannelKind::File {
            if let Some(dir) = ch.path.as_deref().and_then(Path::parent) {
                if !out.iter().any(|p| dir.starts_with(p)) {
                    out.push(dir.to_path_buf());
                }
            }
        }
    }
    out
}

/// Where a unit of `scope` is installed.
fn unit_path(scope: Scope) -> anyhow::Result<PathBuf> {
    Ok(match scope {
        Scope::System => PathBuf::from("/etc/systemd/system/fushi.service"),
        Scope::User => {
            let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
                Some(d) => PathBuf::from(d),
                None => PathBuf::from(std::env::var_os("HOME").context(
                    "finding the user's config directory: neither XDG_CONFIG_HOME nor HOME is set",
                )?)
                .join(".config"),
            };
            base.join("systemd/user/fushi.service")
        }
    })
}

/// Runs `systemctl [--user] args…`; its error output when it fails.
fn systemctl(scope: Scope, args: &[&str]) -> Result<(), String> {
    let mut cmd = Command::new("systemctl");
    if scope == Scope::User {
        cmd.arg("--user");
    }
    let out = cmd
        .args(args)
        .output()
        .map_err(|e| format!("cannot run systemctl: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(if err.is_empty() {
        format!("systemctl {} exited {}", args.join(" "), out.status)
    } else {
        err
    })
}

/// A unit printed for another machine than this one (the Debian package's, the committed
/// `scripts/fushi.service`): what it names instead of this binary and this config's path, and
/// the system user it runs as. `scripts/units` writes the committed units with these.
#[derive(Debug, Default)]
pub struct Elsewhere {
    /// The binary the unit runs.
    pub exe: Option<PathBuf>,
    /// The config's path on that machine; the file read (its paths, for `ReadWritePaths=`) is `-c`'s.
    pub config_as: Option<PathBuf>,
    /// The system user and group the unit runs as.
    pub run_as: Option<String>,
}

/// A user name systemd's `User=` takes as a name (its strict rule, which `useradd` and
/// `systemd-sysusers` accept too).
fn valid_user_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= 31
}

/// An absolute path for `what`, or the error that says why not.
fn absolute(what: &str, p: Option<PathBuf>) -> anyhow::Result<Option<PathBuf>> {
    match p {
        Some(p) if !p.is_absolute() => anyhow::bail!(
            "{what} {}: a unit names it by an absolute path (systemd runs it from no particular directory)",
            p.display()
        ),
        p => Ok(p),
    }
}

pub fn install_unit(
    config: &Path,
    user: bool,
    system: bool,
    print: bool,
    elsewhere: Elsewhere,
) -> anyhow::Result<u8> {
    let exe_as = absolute("--exe", elsewhere.exe)?;
    let config_as = absolute("--config-as", elsewhere.config_as)?;
    if let Some(name) = &elsewhere.run_as {
        if !valid_user_name(name) {
            anyhow::bail!(
                "--run-as {name:?}: not a user name systemd takes (a letter or `_`, then letters, digits, `_` or `-`; at most 31)"
            );
        }
    }
    let scope = match (user, system) {
        (true, _) => Scope::User,
        (_, true) => Scope::System,
        // Root installs the system's unit, anyone else their own.
        _ if nix::unistd::geteuid().is_root() => Scope::System,
        _ => Scope::User,
    };
    let (cfg, _) = Config::load(config)?;
    let config = match config_as {
        Some(p) => p,
        None => std::fs::canonicalize(config)
            .with_context(|| format!("resolving {}", config.display()))?,
    };
    let exe = match exe_as {
        Some(p) => p,
        None => std::env::current_exe()
            .and_then(std::fs::canonicalize)
            .context("finding this fushi binary")?,
    };
    let text = render(&UnitSpec {
        scope,
        exe,
        config,
        writable: writable(&cfg),
        run_as: elsewhere.run_as,
    });
    if print {
        outln!("{}", text.trim_end());
        return Ok(EXIT_OK);
    }
    let path = unit_path(scope)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fushi_actors::fs::write_atomic(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    // ProtectSystem=strict makes everything outside ReadWritePaths read-only, so the daemon
    // could not create its data dir itself: made now, as it would make it (mode 700).
    if !cfg.node.data_dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.node.data_dir)
            .with_context(|| format!("creating the data dir {}", cfg.node.data_dir.display()))?;
    }
    let user_flag = if scope == Scope::User { "--user " } else { "" };
    for args in [
        &["daemon-reload"][..],
        &["enable", "--now", "fushi.service"],
    ] {
        if let Err(e) = systemctl(scope, args) {
            eprintln!(
                "fushi: wrote {}, but `systemctl {user_flag}{}` failed: {e}\n\
                 fushi: once a {} manager runs, start it with `systemctl {user_flag}daemon-reload && systemctl {user_flag}enable --now fushi`",
                path.display(),
                args.join(" "),
                if scope == Scope::User { "user" } else { "system" }
            );
            return Ok(EXIT_FAILURE);
        }
    }
    outln!(
        "installed {}; fushi.service is enabled and started",
        path.display()
    );
    if scope == Scope::User {
        outln!(
            "a user unit runs while you are logged in; to keep it running without a login: loginctl enable-linger {}",
            std::env::var("USER").unwrap_or_else(|_| "$USER".into())
        );
    }
    Ok(EXIT_OK)
}
