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

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (systemd starts it this way)
    Run,
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

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let config = config_path(cli.config);
    match cli.command {
        Command::Run => crate::daemon::run(&config, cli.log),
        Command::Verify { json } => crate::verify::run(&config, json),
    }
}
