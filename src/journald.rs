//! A tracing layer that writes journald's native protocol and never blocks: when journald falls behind, an entry is dropped and counted instead of stalling the daemon.
//!
//! Why not `tracing-journald`: it encodes the same protocol but sends with a blocking `send_to`
//! on a socket it keeps to itself. Every actor runs on one thread (`fushi_actors::runtime`), so a
//! journald that stopped reading would stop the daemon at its next log line: the supervisor,
//! ingest and the watchdog ping with it. This layer's socket is non-blocking.
//!
//! The encoding is that of <https://systemd.io/JOURNAL_NATIVE_PROTOCOL/>, every field
//! length-prefixed (`NAME\n`, a little-endian u64 length, the bytes, `\n`) so that values may hold
//! newlines. Names are upper-cased, `.` becomes `_`, any other character outside `[A-Z0-9_]` is
//! left out, leading `_` and digits are stripped (journald refuses them) and the rest is cut at
//! 64 characters: `actor` is `ACTOR=`, so `journalctl ACTOR=collectors/trades` finds an actor's
//! lines. A value is cut at [`MAX_VALUE`] bytes so that an entry always fits in one datagram (no
//! memfd needed). PRIORITY follows the level (error 3, warn 4, info 5, debug 6, trace 7, as
//! tracing-journald maps them) unless the event has a `priority` field of 0 to 7. Entries dropped
//! while journald was not reading are counted in `FUSHI_LOG_DROPPED=` of the next entry that
//! gets through.

use std::fmt::Write as _;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

/// journald's socket for the native protocol.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// The most bytes of one field's value that are sent.
const MAX_VALUE: usize = 32 * 1024;

/// The layer; see the module doc.
pub struct JournaldLayer {
    socket: UnixDatagram,
    path: PathBuf,
    identifier: String,
    dropped: std::sync::Arc<AtomicU64>,
}

impl JournaldLayer {
    /// A layer sending to the journald socket at `path`; fails when nothing listens there.
    pub fn new(path: &Path, identifier: &str) -> io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        // journald discards an empty entry; an error here means it is not there.
        match socket.send_to(&[], path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        Ok(Self {
            socket,
            path: path.to_path_buf(),
            identifier: identifier.to_string(),
            dropped: std::sync::Arc::default(),
        })
    }

    /// Entries dropped so far and not yet reported in a later entry.
    #[cfg(test)]
    fn dropped(&self) -> std::sync::Arc<AtomicU64> {
        self.dropped.clone()
    }

    fn encode(&self, event: &Event<'_>, dropped: u64) -> Vec<u8> {
        let meta = event.metadata();
        let mut buf = Vec::with_capacity(256);
        put(&mut buf, "SYSLOG_IDENTIFIER", self.identifier.as_bytes());
        put(&mut buf, "TARGET", meta.target().as_bytes());
        if let Some(file) = meta.file() {
            put(&mut buf, "CODE_FILE", file.as_bytes());
        }
        if let Some(line) = meta.line() {
            put(&mut buf, "CODE_LINE", line.to_string().as_bytes());
        }
        if dropped > 0 {
            put(
                &mut buf,
                "FUSHI_LOG_DROPPED",
                dropped.to_string().as_bytes(),
            );
        }
        let mut fields = Fields {
            buf: &mut buf,
            text: String::new(),
            priority: None,
        };
        event.record(&mut fields);
        let priority = fields.priority.unwrap_or(match *meta.level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 5,
            Level::DEBUG => 6,
            Level::TRACE => 7,
        });
        put(&mut buf, "PRIORITY", &[b'0' + priority]);
        buf
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for JournaldLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        let entry = self.encode(event, dropped);
        if self.socket.send_to(&entry, &self.path).is_err() {
            // Full (journald behind), gone, or refused: nothing here may wait or log about it.
            self.dropped.fetch_add(dropped + 1, Ordering::Relaxed);
        }
    }
}

/// Appends one field, length-prefixed, its name made journald-safe and its value cut to
/// [`MAX_VALUE`].
fn put(buf: &mut Vec<u8>, name: &str, value: &[u8]) {
    let start = buf.len();
    buf.extend(
        name.bytes()
            .map(|c| {
                if c == b'.' {
                    b'_'
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .filter(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
            .skip_while(|&c| c == b'_' || c.is_ascii_digit())
            .take(64),
    );
    if buf.len() == start {
        return; // no name left: journald would refuse the whole entry
    }
    let value = &value[..value.len().min(MAX_VALUE)];
    buf.push(b'\n');
    buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    buf.extend_from_slice(value);
    buf.push(b'\n');
}

/// Writes an event's fields; `message` becomes `MESSAGE`.
struct Fields<'a> {
    buf: &'a mut Vec<u8>,
    /// Reused for values that are formatted rather than given as text.
    text: String,
    /// A `priority` field (0 emergency … 7 debug) in place of the level's: journald has more
    /// levels than tracing, and an alert is `critical` (2), which no tracing level maps to.
    priority: Option<u8>,
}

impl Visit for Fields<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match (field.name(), u8::try_from(value)) {
            ("priority", Ok(p @ 0..=7)) => self.priority = Some(p),
            _ => self.record_debug(field, &value),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        match (field.name(), u8::try_from(value)) {
            ("priority", Ok(p @ 0..=7)) => self.priority = Some(p),
            _ => self.record_debug(field, &value),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        put(self.buf, field_name(field), value.as_bytes());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.text.clear();
        let _ = write!(self.text, "{value:?}");
        put(self.buf, field_name(field), self.text.as_bytes());
    }
}

fn field_name(field: &Field) -> &'static str {
    match field.name() {
        "message" => "MESSAGE",
        name => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// Parses a native-protocol entry back into (name, value) pairs.
    fn parse(mut b: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let nl = b
                .iter()
                .position(|&c| c == b'\n')
                .expect("a name ends in \\n");
            let name = String::from_utf8(b[..nl].to_vec()).unwrap();
            let len = u64::from_le_bytes(b[nl + 1..nl + 9].try_into().unwrap()) as usize;
            let value = String::from_utf8(b[nl + 9..nl + 9 + len].to_vec()).unwrap();
            assert_eq!(b[nl + 9 + len], b'\n', "a value ends in \\n");
            out.push((name, value));
            b = &b[nl + 10 + len..];
        }
        out
    }

    fn get<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn an_event_becomes_one_entry_with_upper_case_fields_and_newlines_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sock");
        let journald = UnixDatagram::bind(&path).unwrap();
        let layer = JournaldLayer::new(&path, "fushi").unwrap();
        let mut empty = [0u8; 16];
        assert_eq!(journald.recv(&mut empty).unwrap(), 0, "the probe is empty");
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                actor = "collectors/trades",
                event = "supervisor.child.failed",
                attempt = 3,
                _secret = 1,
                "two\nlines"
            );
        });
        let mut buf = vec![0u8; 64 * 1024];
        let n = journald.recv(&mut buf).unwrap();
        let fields = parse(&buf[..n]);
        assert_eq!(get(&fields, "MESSAGE"), Some("two\nlines"));
        assert_eq!(get(&fields, "ACTOR"), Some("collectors/trades"));
        assert_eq!(get(&fields, "EVENT"), Some("supervisor.child.failed"));
        assert_eq!(get(&fields, "ATTEMPT"), Some("3"));
        assert_eq!(get(&fields, "PRIORITY"), Some("4"));
        assert_eq!(get(&fields, "SYSLOG_IDENTIFIER"), Some("fushi"));
        assert_eq!(get(&fields, "SECRET"), Some("1"), "leading _ is journald's");
        let mut named = Vec::new();
        put(&mut named, "9lives.of-a_cat", b"v");
        assert!(named.starts_with(b"LIVES_OFA_CAT\n"), "{named:?}");
        assert!(get(&fields, "CODE_LINE").is_some());

        // An alert asks for journald's `critical`, which no tracing level is.
        let layer = JournaldLayer::new(&path, "fushi").unwrap();
        assert_eq!(journald.recv(&mut empty).unwrap(), 0, "the probe is empty");
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(
                priority = 2,
                event = "supervisor.child.escalated",
                "escalated"
            );
        });
        let n = journald.recv(&mut buf).unwrap();
        let fields = parse(&buf[..n]);
        assert_eq!(get(&fields, "PRIORITY"), Some("2"));
        assert_eq!(fields.iter().filter(|(n, _)| n == "PRIORITY").count(), 1);
    }

    #[test]
    fn a_journald_that_stops_reading_costs_dropped_entries_not_a_stall() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sock");
        let journald = UnixDatagram::bind(&path).unwrap();
        let layer = JournaldLayer::new(&path, "fushi").unwrap();
        let dropped = layer.dropped();
        let (filled, go) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let logger = std::thread::spawn(move || {
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::with_default(subscriber, || {
                // Far more than a socket queues (net.unix.max_dgram_qlen, 512 by default),
                // with nothing reading: a blocking send would never return.
                for i in 0..5000 {
                    tracing::info!(i, "filler");
                }
                filled.0.send(()).unwrap();
                go.1.recv().unwrap();
                tracing::info!("after");
            });
        });
        filled
            .1
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("logging to a journald that does not read must not block");
        let lost = dropped.load(Ordering::Relaxed);
        assert!(lost > 0, "the socket never filled up");

        // Once journald reads again, the next entry reports how many were lost.
        journald.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        while journald.recv(&mut buf).is_ok() {}
        journald.set_nonblocking(false).unwrap();
        go.0.send(()).unwrap();
        logger.join().unwrap();
        let n = journald.recv(&mut buf).unwrap();
        let fields = parse(&buf[..n]);
        assert_eq!(get(&fields, "MESSAGE"), Some("after"));
        assert_eq!(
            get(&fields, "FUSHI_LOG_DROPPED"),
            Some(lost.to_string().as_str())
        );
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn nothing_listening_is_an_error_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let err = JournaldLayer::new(&dir.path().join("none.sock"), "fushi")
            .err()
            .expect("no journald there");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
