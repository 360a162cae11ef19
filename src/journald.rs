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
//! lines; an event's field named like one this layer writes itself (`target`, `priority` that is
//! not 0 to 7, …) is sent as `FUSHI_<NAME>`, so journald never gets two. A value is cut at
//! [`MAX_VALUE`] bytes and an entry at [`MAX_ENTRY`], on UTF-8 boundaries, with
//! `FUSHI_LOG_TRUNCATED=1`: an entry always fits in one datagram. PRIORITY follows the level
//! (error 3, warn 4, info 5, debug 6, trace 7, as tracing-journald maps them) unless the event
//! has a `priority` field of 0 to 7. Entries dropped while journald was not reading are counted
//! in `FUSHI_LOG_DROPPED=` of the next entry that gets through. Spans are not sent: fushi logs
//! its context as fields (`actor`, `event`).

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

/// The most bytes of one entry: well below the 208 KiB that Linux allows one datagram by
/// default, so that an entry is never refused for its size (tracing-journald sent such entries
/// through a memfd; nothing of ours is that large).
const MAX_ENTRY: usize = 96 * 1024;

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
            name: String::new(),
            priority: None,
            truncated: false,
        };
        event.record(&mut fields);
        let (priority, truncated) = (fields.priority, fields.truncated);
        let priority = priority.unwrap_or(match *meta.level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 5,
            Level::DEBUG => 6,
            Level::TRACE => 7,
        });
        put(&mut buf, "PRIORITY", &[b'0' + priority]);
        if truncated {
            put(&mut buf, "FUSHI_LOG_TRUNCATED", b"1");
        }
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

/// Fields this layer writes itself; an event's field of the same name is sent as `FUSHI_<name>`
/// so that journald never gets two of them.
const OWN_FIELDS: [&str; 7] = [
    "SYSLOG_IDENTIFIER",
    "TARGET",
    "CODE_FILE",
    "CODE_LINE",
    "PRIORITY",
    "FUSHI_LOG_DROPPED",
    "FUSHI_LOG_TRUNCATED",
];

/// journald's rules for a field name: `[A-Z0-9_]`, not starting with `_` or a digit, at most
/// 64 characters; `.` becomes `_`, lower case is raised, anything else is left out.
fn sanitize(name: &str, out: &mut String) {
    out.extend(
        name.chars()
            .map(|c| {
                if c == '.' {
                    '_'
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .filter(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .skip_while(|&c| c == '_' || c.is_ascii_digit())
            .take(64),
    );
}

/// Appends one field, length-prefixed. `name` is valid for journald already: the layer's own
/// names are, and an event's go through [`sanitize`] first.
fn put(buf: &mut Vec<u8>, name: &str, value: &[u8]) {
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    buf.extend_from_slice(value);
    buf.push(b'\n');
}

/// At most `max` bytes of `value`, not splitting a UTF-8 character.
fn cut(value: &[u8], max: usize) -> &[u8] {
    if value.len() <= max {
        return value;
    }
    let mut end = max;
    while end > 0 && value[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    &value[..end]
}

/// Writes an event's fields; `message` becomes `MESSAGE`.
struct Fields<'a> {
    buf: &'a mut Vec<u8>,
    /// Reused for values that are formatted rather than given as text.
    text: String,
    /// Reused for a field's journald name.
    name: String,
    /// A `priority` field (0 emergency … 7 debug) in place of the level's: journald has more
    /// levels than tracing, and an alert is `critical` (2), which no tracing level maps to.
    priority: Option<u8>,
    /// A value was cut, or a field left out, to keep the entry within [`MAX_ENTRY`].
    truncated: bool,
}

impl Fields<'_> {
    fn field(&mut self, field: &Field, value: &[u8]) {
        self.name.clear();
        match field.name() {
            "message" => self.name.push_str("MESSAGE"),
            name => {
                sanitize(name, &mut self.name);
                // Nothing left of the name: journald would read an empty one as the entry's end.
                if self.name.is_empty() {
                    return;
                }
                if OWN_FIELDS.contains(&self.name.as_str()) {
                    self.name.insert_str(0, "FUSHI_");
                }
            }
        }
        // Room for this field's name and framing, and for what `encode` adds after the fields.
        let room = MAX_ENTRY.saturating_sub(self.buf.len() + self.name.len() + 10 + 128);
        let kept = cut(value, room.min(MAX_VALUE));
        self.truncated |= kept.len() < value.len();
        if kept.is_empty() && !value.is_empty() {
            return;
        }
        put(self.buf, &self.name, kept);
    }

    fn priority(&mut self, field: &Field, value: Option<u8>) -> bool {
        match value {
            Some(p @ 0..=7) if field.name().eq_ignore_ascii_case("priority") => {
                self.priority = Some(p);
                true
            }
            _ => false,
        }
    }
}

impl Visit for Fields<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if !self.priority(field, u8::try_from(value).ok()) {
            self.record_debug(field, &value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if !self.priority(field, u8::try_from(value).ok()) {
            self.record_debug(field, &value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, value.as_bytes());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        let _ = write!(text, "{value:?}");
        self.field(field, text.as_bytes());
        self.text = text;
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
        let mut named = String::new();
        sanitize("9lives.of-a_cat", &mut named);
        assert_eq!(named, "LIVES_OFA_CAT");
        named.clear();
        sanitize("_.-", &mut named);
        assert_eq!(named, "", "nothing left of the name");
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

        // Fields named like the layer's own are kept apart; a huge message is cut, not lost.
        let layer = JournaldLayer::new(&path, "fushi").unwrap();
        assert_eq!(journald.recv(&mut empty).unwrap(), 0, "the probe is empty");
        let huge = "é".repeat(150_000);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(priority = "high", target = "mine", "{huge}");
        });
        let mut buf = vec![0u8; 256 * 1024];
        let n = journald.recv(&mut buf).unwrap();
        assert!(n <= MAX_ENTRY, "{n} bytes");
        let fields = parse(&buf[..n]);
        assert_eq!(get(&fields, "PRIORITY"), Some("5"));
        assert_eq!(get(&fields, "FUSHI_PRIORITY"), Some("high"));
        assert_eq!(get(&fields, "FUSHI_TARGET"), Some("mine"));
        assert_eq!(fields.iter().filter(|(n, _)| n == "TARGET").count(), 1);
        let message = get(&fields, "MESSAGE").unwrap();
        assert!(message.len() <= MAX_VALUE && message.chars().all(|c| c == 'é'));
        assert_eq!(get(&fields, "FUSHI_LOG_TRUNCATED"), Some("1"));
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
                // Far more than a socket queues (net.unix.max_dgram_qlen: 10 by the kernel's
                // default, 512 as systemd sets it), with nothing reading: a blocking send would
                // never return.
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
        let mut received = 0;
        // The layer's empty probe at start is no entry.
        while let Ok(n) = journald.recv(&mut buf) {
            received += u64::from(n > 0);
        }
        assert_eq!(
            received + lost,
            5000,
            "every entry is either received or counted"
        );
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
