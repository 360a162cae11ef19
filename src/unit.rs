//! The systemd unit of SPEC §10 for this binary and this config: what `fushi install-unit` prints and installs.
//!
//! A system unit is hardened (`systemd-analyze security` exposure about 2): the file system is
//! read-only but for the state directory and the paths the config writes (its data dir, a
//! primary outside it, alert files), `/home` is read-only, and there are no capabilities. What
//! command collectors need keeps working: they may read anything the daemon may, run programs,
//! and use the network. A user unit cannot set up those namespaces (a user manager has no
//! privileges), so it keeps `NoNewPrivileges=` and `UMask=` only. A system unit may run as a
//! system user of its own (`User=`, `Group=`): the Debian package's runs as `fushi`.

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
    /// The system user (and group of that name) a system unit runs as; `None`: root.
    pub run_as: Option<String>,
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

/// Where `StateDirectory=fushi` puts a system unit's state.
pub const SYSTEM_STATE_DIR: &str = "/var/lib/fushi";

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
    line(
        "# Descriptors: the daemon raises its soft limit to the hard one at start (a flood of idle",
    );
    line("# connections to a listen collector must not exhaust 1024) and gives its children the soft");
    line("# 1024 back, which programs built on select(2) need.");
    line("LimitNOFILE=1024:65536");
    if let (Scope::System, Some(user)) = (u.scope, &u.run_as) {
        line("# systemd gives the state directory to this user at each start.");
        line(&format!("User={user}"));
        line(&format!("Group={user}"));
    }
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
            // `-`: a path missing at start (a NAS not mounted yet) is no reason not to start;
            // the daemon then finds the primary down and says so. The state directory is
            // writable already.
            let paths: Vec<String> = u
                .writable
                .iter()
                .filter(|p| !p.starts_with(SYSTEM_STATE_DIR))
                .map(|p| format!("-{}", path_word(p)))
                .collect();
            if !paths.is_empty() {
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
            run_as: None,
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

    #[test]
    fn a_system_unit_runs_as_root_unless_given_a_user_and_a_user_unit_never_names_one() {
        let root = render(&spec(Scope::System));
        assert!(
            !root
                .lines()
                .any(|l| l.starts_with("User=") || l.starts_with("Group=")),
            "{root}"
        );
        let mut s = spec(Scope::System);
        s.run_as = Some("fushi".into());
        let packaged = render(&s);
        for l in ["User=fushi", "Group=fushi", "StateDirectory=fushi"] {
            assert!(packaged.lines().any(|x| x == l), "no {l:?} in\n{packaged}");
        }
        s.scope = Scope::User;
        let user = render(&s);
        assert!(!user.contains("User="), "{user}");
    }

    #[test]
    fn paths_in_the_state_directory_need_no_read_write_line() {
        let mut s = spec(Scope::System);
        s.writable = vec!["/var/lib/fushi".into(), "/var/lib/fushi/primary".into()];
        let u = render(&s);
        assert!(!u.contains("ReadWritePaths"), "{u}");
        s.writable.push("/mnt/nas/fushi".into());
        let u = render(&s);
        assert!(
            u.lines().any(|l| l == "ReadWritePaths=-/mnt/nas/fushi"),
            "{u}"
        );
    }

    /// The Debian package's config (`debian/supervisor.toml`, written by `scripts/units`):
    /// the config loader takes it, its paths are absolute (an installed config's relative paths
    /// would land in /etc/fushi), and every other line is the committed supervisor.toml's.
    #[test]
    fn the_packaged_config_loads_with_absolute_paths_and_is_otherwise_the_committed_one() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = root.join("debian/supervisor.toml");
        let (cfg, packaged) = crate::config::Config::load(&path)
            .unwrap_or_else(|e| panic!("debian/supervisor.toml does not load: {e}"));
        let fix = "debian/supervisor.toml is written by scripts/units: run it";
        let state = std::path::Path::new(SYSTEM_STATE_DIR);
        assert_eq!(cfg.node.data_dir, state, "data_dir: {fix}");
        assert_eq!(cfg.storage.primary, state.join("primary"), "primary: {fix}");
        let committed = std::fs::read_to_string(root.join("supervisor.toml")).unwrap();
        assert_eq!(committed.lines().count(), packaged.lines().count(), "{fix}");
        let mut changed = Vec::new();
        for (n, (c, p)) in committed.lines().zip(packaged.lines()).enumerate() {
            if c == p {
                continue;
            }
            let key = |l: &str| l.split(" = ").next().unwrap_or("").to_string();
            let value = |l: &str| {
                l.split('"')
                    .nth(1)
                    .unwrap_or_else(|| panic!("line {}: no quoted value: {l}", n + 1))
                    .to_string()
            };
            assert!(
                ["data_dir", "primary"].contains(&key(c).as_str()) && key(c) == key(p),
                "line {}: {c:?} became {p:?}; only data_dir and primary may differ. {fix}",
                n + 1
            );
            assert!(
                std::path::Path::new(&value(p)).is_absolute()
                    && !std::path::Path::new(&value(c)).is_absolute(),
                "line {}: {p:?} must be the absolute form of {c:?}. {fix}",
                n + 1
            );
            changed.push(key(c));
        }
        assert_eq!(changed, ["data_dir", "primary"], "{fix}");
    }
}
