//! Logging setup: journald-native fields under systemd (or `--log journald`), readable text on stderr otherwise.
//!
//! Events are written fields-first (`actor`, `event`, `attempt`, `delay`, …). The journald layer
//! ([`crate::journald`]) writes them without a prefix, so `actor` becomes `ACTOR=` and
//! `journalctl -u fushi ACTOR=collectors/trades` finds an actor's lines. Neither target can stall
//! the daemon: journald entries are dropped when journald is not reading, text lines when
//! stderr's reader is not.

use anyhow::Context;
use clap::ValueEnum;
use fushi_actors::events;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogTarget {
    /// journald when started by systemd (JOURNAL_STREAM is set), text otherwise.
    #[default]
    Auto,
    /// The systemd journal's native protocol, with structured fields (ACTOR, EVENT, …).
    Journald,
    /// Text lines on stderr (a terminal, a container, a test).
    Text,
}

type ReloadHandle = tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>;

static RELOAD: std::sync::OnceLock<ReloadHandle> = std::sync::OnceLock::new();

fn filter_for(verbose: bool) -> EnvFilter {
    let default = if verbose { "debug" } else { "info" };
    EnvFilter::try_from_env("FUSHI_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},ractor=warn")))
}

/// Switches between the normal and the verbose level at run time (`fushi mode debug`).
pub fn set_verbose(verbose: bool) {
    if let Some(h) = RELOAD.get() {
        if let Err(e) = h.reload(filter_for(verbose)) {
            tracing::warn!(event = events::LOG_RELOAD_FAILED, error = %e, "cannot change the log level");
        }
    }
}

/// Whether `init` chose journald.
static JOURNALD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Where the daemon's log goes: `journald` or `text`.
pub fn target_name() -> &'static str {
    if JOURNALD.load(std::sync::atomic::Ordering::SeqCst) {
        "journald"
    } else {
        "text"
    }
}

/// Keeps the text log's writer thread; dropping it flushes what is still queued.
#[must_use = "dropping the guard stops the text log's writer"]
pub struct LogGuard {
    _writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Lines the text log may queue for a slow reader before it drops new ones.
const TEXT_QUEUE_LINES: usize = 16 * 1024;

/// Installs the global subscriber; `verbose` (mode debug) lowers the default level to debug.
/// Every line also goes to `ring`, from which `fushi tail` reads.
///
/// Text goes to stderr through a writer thread: every actor runs on one thread (see
/// `fushi_actors::runtime`), and a stderr pipe whose reader stalls must not stall them. When
/// its queue is full, new lines are dropped, not waited for.
pub fn init(target: LogTarget, verbose: bool, ring: LogRing) -> anyhow::Result<LogGuard> {
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter_for(verbose));
    let _ = RELOAD.set(handle);
    let journald = match target {
        LogTarget::Journald => true,
        LogTarget::Text => false,
        LogTarget::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
    };
    if journald {
        JOURNALD.store(true, std::sync::atomic::Ordering::SeqCst);
        let layer = crate::journald::JournaldLayer::new(
            std::path::Path::new(crate::journald::SOCKET),
            "fushi",
        )
        .with_context(|| {
            format!(
                "connecting to journald ({}); use --log text to log to stderr",
                crate::journald::SOCKET
            )
        })?;
        tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .with(ring.clone())
            .try_init()?;
        Ok(LogGuard { _writer: None })
    } else {
        let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(TEXT_QUEUE_LINES)
            .thread_name("fushi-log")
            .finish(std::io::stderr());
        // Colours only for a person at a terminal (and not with NO_COLOR): escape codes in a log
        // file or a pipe are noise.
        let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
            && !matches!(std::env::var_os("NO_COLOR"), Some(v) if !v.is_empty());
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(colour)
            .with_target(false);
        tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .with(ring.clone())
            .try_init()?;
        Ok(LogGuard {
            _writer: Some(guard),
        })
    }
}

/// The newest log lines in memory, for `fushi tail` when the daemon does not log to journald.
#[derive(Clone, Default)]
pub struct LogRing {
    lines: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<RingLine>>>,
}

/// A log line and the actor it is about, if any.
type RingLine = (Option<String>, String);

/// Lines kept in the ring.
const RING_LINES: usize = 2000;

impl LogRing {
    fn push(&self, actor: Option<String>, line: String) {
        let mut g = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if g.len() == RING_LINES {
            g.pop_front();
        }
        g.push_back((actor, line));
    }

    /// The newest `n` lines, of one actor (and the actors below it) if given.
    pub fn tail(&self, n: usize, actor: Option<&str>) -> Vec<String> {
        let g = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let keep = |a: &Option<String>| match (actor, a) {
            (None, _) => true,
            (Some(want), Some(a)) => a == want || a.starts_with(&format!("{want}/")),
            (Some(_), None) => false,
        };
        let mut out: Vec<String> = g
            .iter()
            .rev()
            .filter(|(a, _)| keep(a))
            .take(n)
            .map(|(_, l)| l.clone())
            .collect();
        out.reverse();
        out
    }
}

/// Collects an event's message and fields into one line, remembering its `actor`.
#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: String,
    actor: Option<String>,
}

impl tracing::field::Visit for LineVisitor {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "actor" {
            self.actor = Some(value.to_string());
        }
        self.record_debug(field, &value)
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogRing {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut v = LineVisitor::default();
        event.record(&mut v);
        let line = format!(
            "{} {:>5} {}{}",
            fushi_actors::clock::now_rfc3339(),
            event.metadata().level(),
            v.message,
            v.fields
        );
        self.push(v.actor, line);
    }
}

#[cfg(test)]
mod tests {
    use super::LogRing;

    #[test]
    fn ring_keeps_the_newest_lines_and_filters_by_actor_subtree() {
        let ring = LogRing::default();
        for i in 0..(super::RING_LINES + 5) {
            ring.push(
                Some(if i % 2 == 0 {
                    "collectors/a".into()
                } else {
                    "storage".into()
                }),
                format!("l{i}"),
            );
        }
        ring.push(None, "daemon".into());
        let all = ring.tail(3, None);
        assert_eq!(all.len(), 3);
        assert_eq!(all[2], "daemon");
        let a = ring.tail(2, Some("collectors"));
        assert_eq!(
            a,
            [
                format!("l{}", super::RING_LINES + 2),
                format!("l{}", super::RING_LINES + 4)
            ]
        );
        assert!(ring.tail(10, Some("collectors/ab")).is_empty());
    }
}
