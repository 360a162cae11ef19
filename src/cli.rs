//! The command line: global options and subcommands, each dispatched to the module that does the work.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use crate::logging::LogTarget;

#[derive(Debug, Parser)]
#[command(
    name = "fushi",
    version,
    about = "Crash-only, zero-ops data-collection daemon"
)]
pub struct Cli {
    /// Config file [default: ./supervisor.toml, then $XDG_CONFIG_HOME/fushi/supervisor.toml, then /etc/fushi/supervisor.toml]
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where the daemon's logs go (`fushi run`; other commands print to stdout and stderr)
    #[arg(long, global = true, value_enum, default_value_t = LogTarget::Auto)]
    pub log: LogTarget,

    /// Control socket of the daemon; with it, commands that talk to the daemon need no config
    /// file [default: from the config]
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (systemd starts it this way)
    Run,
    /// Show actors: state, uptime or time to next restart, restarts, recovered, last error (exit 3 if a selected one is not running)
    Status {
        /// Actors to show: NAME (a full path or an unambiguous last part), collectors/*, all
        /// [default: all]
        names: Vec<String>,
        /// Print as JSON (one document; stable keys)
        #[arg(long)]
        json: bool,
    },
    /// Start stopped actors (NAME, collectors/*, all)
    Start {
        /// Actors to start: NAME (a full path or an unambiguous last part), collectors/*, all (every collector)
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop actors; a stopped actor stays stopped until started (NAME, collectors/*, all)
    Stop {
        /// Collectors to stop: NAME, collectors/*, all (the daemon's own actors are not stopped)
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop then start actors (NAME, collectors/*, all)
    Restart {
        /// Actors to restart: NAME, collectors/*, all (the daemon's own actors one at a time)
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Health: exit 0 healthy, 1 degraded, 2 critical
    Health {
        /// Print as JSON (one document; stable keys)
        #[arg(long)]
        json: bool,
    },
    /// The daemon's log: the newest lines, of one actor if NAME is given
    Tail {
        /// Keep printing new lines
        #[arg(short, long)]
        follow: bool,
        /// How many of the newest lines to print first (0 with -f: only new ones)
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
        /// Print each line as a JSON string, one per line (JSON Lines, also with -f)
        #[arg(long)]
        json: bool,
        /// The actor (and its children): a full path or an unambiguous last part, e.g. heartbeat
        name: Option<String>,
    },
    /// Audit events from <data_dir>/audit.jsonl (works with the daemon stopped)
    Audit {
        /// Only events newer than this, e.g. 1h, 30m
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// Only events matching this glob, e.g. 'supervisor.child.*'
        #[arg(long)]
        event: Option<String>,
        /// Print as JSON (one document; stable keys)
        #[arg(long)]
        json: bool,
    },
    /// Show the daemon's mode, or switch it: prod, debug (verbose logs) or diag
    Mode {
        /// The mode to switch to; without it, the mode the daemon runs in is shown
        mode: Option<String>,
        /// Return to the configured mode after this long, e.g. 30m
        #[arg(long = "for", value_parser = humantime::parse_duration, requires = "mode")]
        for_: Option<std::time::Duration>,
    },
    /// Show how the config file differs from the running config
    Reread {
        /// Print as JSON (one document; stable keys)
        #[arg(long)]
        json: bool,
    },
    /// Apply the config file: add, remove and restart only the changed collectors
    Update {
        /// Print as JSON (one document; stable keys)
        #[arg(long)]
        json: bool,
    },
    /// Leader election: the holder, its epoch, the age of its last renewal and this node's role
    /// (exit 0 when a node leads)
    Leader {
        /// Hand the lease over now: collectors stop, the lock is released, another node takes it
        #[arg(long, conflicts_with = "json")]
        release: bool,
        /// Print as JSON (one document; stable keys)
        #[arg(long)]
        json: bool,
    },
    /// Forwarding to the primary: whether it keeps up (exit 0) or records wait longer than
    /// health allows (exit 1)
    Sync {
        /// Retry at once, ignoring the backoff, and show the journal draining (exit 0 once drained)
        #[arg(long, conflicts_with_all = ["plan", "json"])]
        now: bool,
        /// List what the next sync sends, per stream: records, bytes, first and last id, the
        /// last id on the primary, the oldest record's time
        #[arg(long)]
        plan: bool,
        /// Print the state (and with --plan the list) as JSON
        #[arg(long)]
        json: bool,
    },
    /// Failure injection (only with control.allow_inject = true): crash NAME, primary-down, primary-up
    Inject {
        /// What to inject: crash (kill an actor, as a crash would), primary-down or primary-up
        /// (act out an outage of the primary and its end)
        what: String,
        /// The actor to crash: a full path or an unambiguous last part, e.g. collectors/trades
        name: Option<String>,
    },
    /// The daemon's process id
    Pid,
    /// Stop the daemon: the tree stops in order
    Shutdown,
    /// Pre-flight: config, paths, permissions, command programs, primary marked, socket dir and
    /// socket, HTTP port; a daemon already running on this config is reported, not a failure
    Check {
        /// Mark the primary store (a NAS) as fushi's, once: a store outside the data dir is only
        /// used when it carries this mark, so an unmounted NAS is never mistaken for it
        #[arg(long)]
        init_primary: bool,
        /// With --init-primary: create the store's directory if it does not exist (without
        /// it a missing path is refused: it is more often an unmounted NAS than a new store)
        #[arg(long, requires = "init_primary")]
        create: bool,
    },
    /// The dashboard: health dot, actor tree, storage, sync, leader, alerts (q quits, r restarts)
    Top,
    /// The systemd unit for this binary and config: written and enabled (`systemctl enable
    /// --now`), or with --print only printed. Root gets the system unit, anyone else a user unit
    InstallUnit {
        /// A user unit (~/.config/systemd/user, data in ~/.local/state/fushi)
        #[arg(long, conflicts_with = "system")]
        user: bool,
        /// The system unit (/etc/systemd/system, hardened, data in /var/lib/fushi)
        #[arg(long)]
        system: bool,
        /// Print the unit instead of installing it
        #[arg(long)]
        print: bool,
        /// With --print: the binary the unit runs instead of this one (a unit for another
        /// machine: the Debian package's, scripts/fushi.service)
        #[arg(long, hide = true, value_name = "PATH", requires = "print")]
        exe: Option<PathBuf>,
        /// With --print: the config's path on that machine (the file read is -c's)
        #[arg(long, hide = true, value_name = "PATH", requires = "print")]
        config_as: Option<PathBuf>,
        /// With --print --system: the system user (and group) the unit runs as
        #[arg(
            long,
            hide = true,
            value_name = "USER",
            requires = "print",
            requires = "system",
            conflicts_with = "user"
        )]
        run_as: Option<String>,
    },
    /// SLO gates: each one's phase, whether it may be promoted, its current and past windows
    /// (value, threshold, verdict); exit 1 while one is in an open incident
    Slo {
        #[command(subcommand)]
        action: Option<SloAction>,
        /// Evaluate a file offline with the config's [[slo]], without a daemon and without
        /// running any rollback (exit 1 when a window violates, 2 when a line or --phase
        /// cannot be used)
        #[arg(long, requires = "fixture")]
        dry_run: bool,
        /// With --dry-run: lines in the primary's raw format (the lines of raw/<stream>/<day>.jsonl)
        #[arg(long, value_name = "FILE.jsonl", requires = "dry_run")]
        fixture: Option<PathBuf>,
        /// With --dry-run: judge in this phase (A, B or C) instead of the config's
        #[arg(long, requires = "dry_run")]
        phase: Option<String>,
        /// Print as JSON (one document; stable keys)
        #[arg(long, global = true)]
        json: bool,
    },
    /// Write a diagnostic handover archive, fushi-bundle-<node>-<YYYYmmdd-HHMM>.tar.gz (UTC):
    /// manifest, status, the config with every secret masked, audit tail, recent logs, verify
    /// and report output, journal statistics and handover.md; audited as handover.bundle.create
    Bundle {
        /// The directory to write it in
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// How far back the audit tail, the logs and the report reach, e.g. 24h, 7d
        #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
        since: std::time::Duration,
        /// How long each step may take (verify, report, journalctl, each answer of the
        /// daemon) before it is given up, and the part says so
        #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
        timeout: std::time::Duration,
        /// Print the archive's path, size, sha256 and the parts not gathered as JSON
        #[arg(long)]
        json: bool,
    },
    /// Check the primary store for gaps, duplicates and out-of-order ids (exit 1 if any)
    Verify {
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Resilience figures from the audit log, journal and primary (works with the daemon
    /// stopped): restarts, failures, time to recover, operators' orders, records lost; each
    /// target passed or failed (exit 0 all pass, 1 one fails)
    Report {
        /// The window, back from now, e.g. 1h, 7d
        #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
        since: std::time::Duration,
        /// Print as JSON (one document; stable keys)
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SloAction {
    /// Move a promotable SLO gate on one phase (A → B → C); audited as slo.promote
    Promote {
        /// The [[slo]] name
        name: String,
    },
}

/// Runs the command; the exit code is part of each command's contract (see `ctl`).
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    use crate::control::proto::Request;
    use crate::ctl::{self, Target};
    use fushi_actors::supervisor::Verb;

    let found = crate::config::config_path(cli.config);
    let config = || found.clone();
    let target = || Target::load(found.clone(), cli.socket.clone());
    match cli.command {
        Command::Run => crate::daemon::run(&config()?, cli.log).map(|()| 0),
        Command::Verify { json } => crate::verify::run(&config()?, json).map(|()| 0),
        Command::Report { since, json } => crate::report::run(&config()?, since, json),
        Command::Check {
            init_primary,
            create,
        } => ctl::check(&config()?, init_primary, create),
        Command::Status { names, json } => ctl::status(&target()?, &names, json),
        Command::Start { names } => {
            let t = target()?;
            ctl::control(&t, Verb::Start, ctl::resolve_names(&t, names)?)
        }
        Command::Stop { names } => {
            let t = target()?;
            ctl::control(&t, Verb::Stop, ctl::resolve_names(&t, names)?)
        }
        Command::Restart { names } => {
            let t = target()?;
            ctl::control(&t, Verb::Restart, ctl::resolve_names(&t, names)?)
        }
        Command::Health { json } => ctl::health(&target()?, json),
        Command::Tail {
            follow,
            lines,
            json,
            name,
        } => ctl::tail(&target()?, lines, follow, name, json),
        Command::Audit { since, event, json } => ctl::audit(&target()?, since, event, json),
        Command::Mode { mode: None, .. } => ctl::show_mode(&target()?),
        Command::Mode {
            mode: Some(mode),
            for_,
        } => ctl::simple(
            &target()?,
            Request::Mode {
                mode,
                for_secs: for_.map(|d| d.as_secs()),
            },
        ),
        Command::Pid => ctl::pid(&target()?),
        Command::Sync { now, plan, json } => {
            let action = match (now, plan) {
                (true, _) => ctl::SyncAction::Now,
                (_, true) => ctl::SyncAction::Plan,
                _ => ctl::SyncAction::Show,
            };
            ctl::sync(&target()?, action, json)
        }
        Command::Leader { release, json } => ctl::leader(&target()?, release, json),
        Command::Inject { what, name } => {
            let t = target()?;
            let name = match name {
                Some(n) if what == "crash" => ctl::resolve_names(&t, vec![n])?.pop(),
                other => other,
            };
            ctl::simple(&t, Request::Inject { what, name })
        }
        Command::Reread { json } => ctl::config_diff(&target()?, false, json),
        Command::Update { json } => ctl::config_diff(&target()?, true, json),
        Command::Top => crate::top::run(&target()?),
        Command::InstallUnit {
            user,
            system,
            print,
            exe,
            config_as,
            run_as,
        } => ctl::install_unit(
            &config()?,
            user,
            system,
            print,
            ctl::Elsewhere {
                exe,
                config_as,
                run_as,
            },
        ),
        Command::Slo {
            action: Some(SloAction::Promote { name }),
            ..
        } => ctl::slo_promote(&target()?, name),
        Command::Slo {
            dry_run: true,
            fixture: Some(fixture),
            phase,
            json,
            ..
        } => ctl::slo_dry_run(&config()?, &fixture, phase.as_deref(), json),
        Command::Slo { json, .. } => ctl::slo_show(&target()?, json),
        Command::Shutdown => ctl::simple(&target()?, Request::Shutdown),
        Command::Bundle {
            out,
            since,
            timeout,
            json,
        } => {
            anyhow::ensure!(
                !timeout.is_zero(),
                "--timeout must be longer than 0s, e.g. --timeout 60s"
            );
            ctl::bundle(
                target()?,
                ctl::BundleOptions {
                    out,
                    since,
                    timeout,
                    json,
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every subcommand, argument and value has a help text: `fushi X --help` never shows a
    /// bare flag to guess at.
    #[test]
    fn every_command_flag_and_value_says_what_it_does() {
        let mut missing = Vec::new();
        let root = Cli::command();
        for cmd in std::iter::once(&root).chain(root.get_subcommands()) {
            if cmd.get_about().is_none() {
                missing.push(format!("fushi {}", cmd.get_name()));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("fushi {} {id}", cmd.get_name()));
                }
                let values = if arg.get_action().takes_values() {
                    arg.get_possible_values()
                } else {
                    Vec::new()
                };
                for v in values {
                    if v.get_help().is_none() && !v.is_hide_set() {
                        missing.push(format!("fushi {} {id}={}", cmd.get_name(), v.get_name()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
