//! Logging setup: journald-native fields under systemd (or `--log journald`), readable text on stderr otherwise.
//!
//! Events are written fields-first (`actor`, `event`, `attempt`, `delay`, …). The journald layer
//! is configured without a field prefix, so `actor` becomes `ACTOR=` and
//! `journalctl -u fushi ACTOR=collectors/trades` finds an actor's lines.

use anyhow::Context;
use clap::ValueEnum;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogTarget {
    /// journald when started by systemd (JOURNAL_STREAM is set), text otherwise.
    #[default]
    Auto,
    Journald,
    Text,
}

/// Installs the global subscriber; `verbose` (mode debug) lowers the default level to debug.
pub fn init(target: LogTarget, verbose: bool) -> anyhow::Result<()> {
    let default = if verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env("FUSHI_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},ractor=warn")));
    let journald = match target {
        LogTarget::Journald => true,
        LogTarget::Text => false,
        LogTarget::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
    };
    if journald {
        let layer = tracing_journald::layer()
            .context("connecting to journald (/run/systemd/journal/socket); use --log text to log to stderr")?
            .with_field_prefix(None)
            .with_syslog_identifier("fushi".into());
        tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .try_init()?;
    } else {
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false);
        tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .try_init()?;
    }
    Ok(())
}
