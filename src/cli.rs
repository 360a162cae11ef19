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

    /// Where logs go
    #[arg(long, global = true, value_enum, default_value_t = LogTarget::Auto)]
    pub log: LogTarget,

    /// Control socket of the daemon [default: from the config]
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
        /// Actors to show: NAME, collectors/*, all [default: all]
        names: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Start stopped actors (NAME, collectors/*, all)
    Start {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop actors; a stopped actor stays stopped until started (NAME, collectors/*, all)
    Stop {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop then start actors (NAME, collectors/*, all)
    Restart {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Health: exit 0 healthy, 1 degraded, 2 critical
    Health {
        #[arg(long)]
        json: bool,
    },
    /// The daemon's log: the newest lines, of one actor if NAME is given
    Tail {
        /// Keep printing new lines
        #[arg(short, long)]
        follow: bool,
        /// How many lines
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
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
        #[arg(long)]
        json: bool,
    },
    /// Switch the daemon's mode: prod, debug (verbose logs) or diag
    Mode {
        mode: String,
        /// Return to the configured mode after this long, e.g. 30m
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        for_: Option<std::time::Duration>,
    },
    /// Show how the config file differs from the running config
    Reread {
        #[arg(long)]
        json: bool,
    },
    /// Apply the config file: add, remove and restart only the changed collectors
    Update {
        #[arg(long)]
        json: bool,
    },
    /// Forwarding to the primary: --now retries at once (with progress), --plan shows what waits
    Sync {
        #[arg(long, conflicts_with = "plan")]
        now: bool,
        #[arg(long)]
        plan: bool,
    },
    /// Failure injection (only with control.allow_inject = true): crash NAME
    Inject {
        /// crash
        what: String,
        /// The actor, for crash
        name: Option<String>,
    },
    /// The daemon's process id
    Pid,
    /// Stop the daemon: the tree stops in order
    Shutdown,
    /// Pre-flight: config, paths, permissions, primary writable, socket free
    Check {
        /// Mark the primary store (a NAS) as fushi's, once: a store outside the data dir is only
        /// used when it carries this mark, so an unmounted NAS is never mistaken for it
        #[arg(long)]
        init_primary: bool,
    },
    /// The dashboard: health dot, actor tree, storage, sync, leader, alerts (q quits, r restarts)
    Top,
    /// Check the primary store for gaps, duplicates and out-of-order ids (exit 1 if any)
    Verify {
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
}

/// The config file to use: `-c`, else the first of the default locations that exists.
pub fn config_path(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p;
    }
    let mut candidates = vec![PathBuf::from("supervisor.toml")];
    if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME") {
        candidates.push(PathBuf::from(xdg).join("fushi/supervisor.toml"));
    } else if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".config/fushi/supervisor.toml"));
    }
    candidates.push(PathBuf::from("/etc/fushi/supervisor.toml"));
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| candidates.swap_remove(0))
}

/// Runs the command; the exit code is part of each command's contract (see `ctl`).
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    use crate::control::proto::Request;
    use crate::ctl::{self, Target};
    use fushi_actors::supervisor::Verb;

    let config = config_path(cli.config);
    let target = || Target::load(config.clone(), cli.socket.clone());
    match cli.command {
        Command::Run => crate::daemon::run(&config, cli.log).map(|()| 0),
        Command::Verify { json } => crate::verify::run(&config, json).map(|()| 0),
        Command::Check { init_primary } => ctl::check(&config, init_primary),
        Command::Status { names, json } => ctl::status(&target()?, &names, json),
        Command::Start { names } => ctl::control(&target()?, Verb::Start, names),
        Command::Stop { names } => ctl::control(&target()?, Verb::Stop, names),
        Command::Restart { names } => ctl::control(&target()?, Verb::Restart, names),
        Command::Health { json } => ctl::health(&target()?, json),
        Command::Tail {
            follow,
            lines,
            name,
        } => ctl::tail(&target()?, lines, follow, name),
        Command::Audit { since, event, json } => ctl::audit(&target()?, since, event, json),
        Command::Mode { mode, for_ } => ctl::simple(
            &target()?,
            Request::Mode {
                mode,
                for_secs: for_.map(|d| d.as_secs()),
            },
        ),
        Command::Pid => ctl::pid(&target()?),
        Command::Sync { now, plan: _ } => ctl::sync(&target()?, now),
        Command::Inject { what, name } => ctl::simple(&target()?, Request::Inject { what, name }),
        Command::Reread { json } => ctl::config_diff(&target()?, false, json),
        Command::Update { json } => ctl::config_diff(&target()?, true, json),
        Command::Top => crate::top::run(&target()?),
        Command::Shutdown => ctl::simple(&target()?, Request::Shutdown),
    }
}
