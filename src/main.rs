//! The `fushi` binary: parse the command line, run it, map errors to exit codes (78 for config errors).

/// `println!` for a command's output. Should the reader go away (`fushi status | head -1`),
/// the command ends quietly with success, as ripgrep does, instead of panicking in `println!`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::output_failed(e);
        }
    }};
}

/// `print!` for a command's output; see [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = write!(stdout, $($arg)*).and_then(|()| stdout.flush()) {
            $crate::output_failed(e);
        }
    }};
}

/// The daemon's allocator (see `fushi_actors::runtime`); the CLI side shares the binary.
#[global_allocator]
static ALLOC: fushi_actors::runtime::Allocator = fushi_actors::runtime::Allocator;

mod alert_settings;
mod audit_file;
mod cli;
mod config;
mod control;
mod ctl;
mod daemon;
mod http;
mod journald;
mod logging;
mod report;
mod systemd;
mod top;
mod tree;
mod unit;
mod update;
mod verify;

use std::process::ExitCode;

/// Ends the command after its output could not be written: quietly when nobody reads it any
/// more (a closed pipe), with the error otherwise (a full disk under a redirection).
fn output_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("fushi: writing the output: {e}");
    std::process::exit(1);
}

/// The error and its causes, each said once: a message that already quotes its cause (as
/// "cannot read config file …: <errno>; …" does) is not followed by it again.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain().map(ToString::to_string) {
        if out.contains(&cause) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&cause);
    }
    out
}

fn main() -> ExitCode {
    let cli = <cli::Cli as clap::Parser>::parse();
    match cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("fushi: {}", message(&e));
            let config_error = e
                .chain()
                .any(|c| c.is::<config::ConfigError>() || c.is::<config::NoConfig>());
            ExitCode::from(if config_error { config::EX_CONFIG } else { 1 })
        }
    }
}
