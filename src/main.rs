//! The `fushi` binary: parse the command line, run it, map errors to exit codes (78 for config errors).

mod cli;
mod config;
mod control;
mod ctl;
mod daemon;
mod http;
mod logging;
mod systemd;
mod top;
mod tree;
mod update;
mod verify;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = <cli::Cli as clap::Parser>::parse();
    match cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("fushi: {e:#}");
            let config_error = e.chain().any(|c| c.is::<config::ConfigError>());
            ExitCode::from(if config_error { config::EX_CONFIG } else { 1 })
        }
    }
}
