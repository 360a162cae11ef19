//! The systemd unit of SPEC §10 for this binary and this config: what `fushi install-unit` prints and installs.
//!
//! A system unit is hardened (`systemd-analyze security` exposure about 2): the file system is
//! read-only but for the state directory and the paths the config writes (its data dir, a
//! primary outside it, alert files), `/home` is read-only, and there are no capabilities. What
//! command collectors need keeps working: they may read anything the daemon may, run programs,
//! and use the network. A user unit cannot set up those namespaces (a user manager has no
//! privileges), so it keeps `NoNewPrivileges=` and `UMask=` only.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    System,
    User,
}

/// What a unit is made of.
pub struct UnitSpec {
    pub scope: Scope,
    /// The fushi binary, absolute.
    pub exe: PathBuf,
    /// The config, absolute.
    pub config: PathBuf,
    /// Paths the daemon writes, besides its state directory.
    pub writable: Vec<PathBuf>,
}

/// `s` as one word of a unit's command line: quoted when it holds a space or a quote, `%` and
/// `$` doubled (systemd would expand them as specifiers and variables).
fn word(s: &str) -> String {
    let s = s.replace('%', "%%").replace('$', "$$");
    if s.chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '\\')
    {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s
    }
}

fn path_word(p: &Path) -> String {
    word(&p.to_string_lossy())
}

/// The hardening of a system unit; each line keeps command collectors working.
const HARDENING: &[&str] = &[
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "PrivateTmp=yes",
    "ProtectHome=read-only",
    "PrivateDevices=yes",
    "DevicePolicy=closed",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "ProtectProc=invisible",
    "RestrictSUIDSGID=yes",
    "RestrictRealtime=yes",
    "RestrictNamespaces=yes",
    "LockPersonality=yes",
    "KeyringMode=private",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallErrorNumber=EPERM",
    // journald and sd_notify (unix), collectors and the HTTP endpoint (inet), getaddrinfo's
    // netlink.
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    "CapabilityBoundingSet=",
    "AmbientCapabilities=",
];

pub fn render(u: &UnitSpec) -> String {
    let mut s = String::new();
    let mut line = |l: &str| {
        s.push_str(l);
        s.push('\n');
    };
    line("# fushi, as `fushi install-unit` wrote it for this binary and config.");
    line("[Unit]");
    line("Description=fushi crash-only data-collection daemon");
    if u.scope == Scope::System {
        line("After=network-online.target remote-fs.target");
        line("Wants=network-online.target");
    }
    line("");
    line("[Service]");
    line("Type=notify");
    line("NotifyAccess=main");
    line(&format!(
        "ExecStart={} run -c {}",
        path_word(&u.exe),
        path_word(&u.config)
    ));
    line("ExecReload=/bin/kill -HUP $MAINPID");
    line("# The daemon stops its tree in order on SIGTERM; only what is left after the timeout is killed.");
    line("KillMode=mixed");
    line("TimeoutStopSec=90s");
    line("Restart=always");
    line("RestartSec=5s");
    line("WatchdogSec=30s");
    line("MemoryMax=512M");
    line("CPUQuota=20%");
    line("LimitNOFILE=1024:65536");
    line("StateDirectory=fushi");
    line("StateDirectoryMode=0700");
    line(match u.scope {
        Scope::System => "WorkingDirectory=/var/lib/fushi",
        Scope::User => "WorkingDirectory=%S/fushi",
    });
    line("UMask=0077");
    match u.scope {
        Scope::System => {
            for h in HARDENING {
                line(h);
            }
            if !u.writable.is_empty() {
                // `-`: a path missing at start (a NAS not mounted yet) is no reason not to start;
                // the daemon then finds the primary down and says so.
                let paths: Vec<String> = u
                    .writable
                    .iter()
                    .map(|p| format!("-{}", path_word(p)))
                    .collect();
                line(&format!("ReadWritePaths={}", paths.join(" ")));
            }
        }
        Scope::User => line("NoNewPrivileges=yes"),
    }
    line("");
    line("[Install]");
    line(match u.scope {
        Scope::System => "WantedBy=multi-user.target",
        Scope::User => "WantedBy=default.target",
    });
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(scope: Scope) -> UnitSpec {
        UnitSpec {
            scope,
            exe: "/opt/fushi 1/fushi".into(),
            config: "/etc/fushi/supervisor.toml".into(),
            writable: vec!["/srv/fushi/data".into(), "/mnt/nas/100%".into()],
        }
    }

    #[test]
    fn a_system_unit_carries_the_spec_settings_its_hardening_and_its_paths_quoted() {
        let u = render(&spec(Scope::System));
        for l in [
            "Type=notify",
            "Restart=always",
            "RestartSec=5s",
            "WatchdogSec=30s",
            "MemoryMax=512M",
            "CPUQuota=20%",
            "WantedBy=multi-user.target",
            "ProtectSystem=strict",
            "ProtectHome=read-only",
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "WorkingDirectory=/var/lib/fushi",
            "ExecStart=\"/opt/fushi 1/fushi\" run -c /etc/fushi/supervisor.toml",
            "ReadWritePaths=-/srv/fushi/data -/mnt/nas/100%%",
        ] {
            assert!(u.lines().any(|x| x == l), "no {l:?} in\n{u}");
        }
    }

    #[test]
    fn a_user_unit_lands_in_the_users_state_directory_and_is_wanted_by_default() {
        let u = render(&spec(Scope::User));
        assert!(u.lines().any(|l| l == "WorkingDirectory=%S/fushi"), "{u}");
        assert!(u.lines().any(|l| l == "WantedBy=default.target"), "{u}");
        assert!(!u.contains("ProtectSystem"), "{u}");
    }
}
