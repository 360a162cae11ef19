//! Records as collectors emit them (SPEC §4.1) and as storage numbers them, and how an input line becomes one.

use crate::events;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock;

/// A record before storage numbers it: what a collector emits and what the journal is asked
/// to append.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub stream: String,
    pub ts: String,
    pub data: Value,
}

/// A record after storage gave it its id `<epoch>.<seq>`: what the journal holds and what
/// becomes one line of `raw/<stream>/<YYYY-MM-DD>.jsonl` on the primary (fields in SPEC order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub id: String,
    pub epoch: u64,
    pub seq: u64,
    pub ts: String,
    pub stream: String,
    pub node: String,
    pub data: Value,
}

impl StoredRecord {
    pub fn new(
        epoch: u64,
        seq: u64,
        ts: String,
        stream: String,
        node: String,
        data: Value,
    ) -> Self {
        Self {
            id: format!("{epoch}.{seq}"),
            epoch,
            seq,
            ts,
            stream,
            node,
            data,
        }
    }
}

/// The id storage gave a durable record: `<epoch>.<seq>` (SPEC §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordId {
    pub epoch: u64,
    pub seq: u64,
}

/// The stream bad input goes to (SPEC §5): kept, counted and visible, never silently dropped.
pub const QUARANTINE: &str = "_quarantine";

/// One input line as a collector read it: its bytes, or the length of a line over the limit.
pub type Line = Result<Vec<u8>, usize>;

/// The deepest `data` a record may have. serde_json refuses to read a document nested
/// 128 levels deep, and the primary's line wraps `data` in one more object: 126 levels of data
/// make a 127-level line, the deepest that `fushi verify` and the resume scan can still read.
pub const MAX_DEPTH: usize = 126;

/// Whether `v` nests more than `limit` levels (a scalar nests 0, `[]` and `{"a":1}` 1). The
/// recursion ends at `limit`, so a value built in code, with no parser limit, is safe here too.
fn deeper_than(v: &Value, limit: usize) -> bool {
    match v {
        Value::Array(items) => limit == 0 || items.iter().any(|c| deeper_than(c, limit - 1)),
        Value::Object(map) => limit == 0 || map.values().any(|c| deeper_than(c, limit - 1)),
        _ => false,
    }
}

/// Whether `data` can be kept: its line on the primary must read back (see [`MAX_DEPTH`]).
pub fn check_depth(data: &Value) -> Result<(), String> {
    if deeper_than(data, MAX_DEPTH) {
        return Err(format!(
            "nested more than {MAX_DEPTH} levels deep, which the primary's line could not hold"
        ));
    }
    Ok(())
}

/// The record itself, or, when its data cannot be kept (see [`check_depth`]), a
/// [`QUARANTINE`] record holding its text: the backstop for a collector that builds records
/// without [`from_line`].
pub fn keepable(collector: &str, r: Record) -> Record {
    let Err(error) = check_depth(&r.data) else {
        return r;
    };
    tracing::warn!(
        actor = collector,
        event = events::COLLECTOR_QUARANTINE,
        stream = r.stream.as_str(),
        reason = error.as_str(),
        "record quarantined"
    );
    quarantined(collector, &r.stream, &error, Some(r.data.to_string()), r.ts)
}

/// The [`QUARANTINE`] record that stands for refused input of `collector` meant for `stream`:
/// why it was refused and, when there is text worth keeping, the input itself.
pub fn quarantined(
    collector: &str,
    stream: &str,
    error: &str,
    line: Option<String>,
    ts: String,
) -> Record {
    let mut data = serde_json::json!({"collector": collector, "stream": stream, "error": error});
    if let Some(t) = line {
        data["line"] = Value::String(t);
    }
    Record {
        stream: QUARANTINE.into(),
        ts,
        data,
    }
}

/// What kind of JSON value `v` is, as a message names it.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
    }
}

/// Turns an input line into a record for `stream`. A JSON object stays itself; other text
/// (a JSON scalar or array too: a record's data is an object) becomes `{"line": …}` unless
/// `json_only`; an over-long line, invalid UTF-8 or (with `json_only`) anything but a JSON
/// object goes to [`QUARANTINE`] and the reason is returned beside it. JSON nested
/// deeper than [`MAX_DEPTH`] counts as invalid JSON: the primary could not hold it as JSON.
pub fn from_line(
    collector: &str,
    stream: &str,
    line: Line,
    max: usize,
    json_only: bool,
) -> (Record, Option<String>) {
    let ts = clock::now_rfc3339();
    let bad = |error: String, text: Option<String>| {
        (
            quarantined(collector, stream, &error, text, ts.clone()),
            Some(error),
        )
    };
    let bytes = match line {
        Err(len) => {
            return bad(
                format!("line of {len} bytes exceeds max_record_bytes ({max})"),
                None,
            )
        }
        Ok(b) => b,
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            return bad("invalid UTF-8".into(), Some(lossy));
        }
    };
    let parsed = serde_json::from_str::<Value>(&text)
        .map_err(|e| format!("invalid JSON: {e}"))
        .and_then(|data| check_depth(&data).map(|()| data))
        .and_then(|data| match data {
            Value::Object(_) => Ok(data),
            other => Err(format!("JSON {}, not an object", kind(&other))),
        });
    match parsed {
        Ok(data) => (
            Record {
                stream: stream.into(),
                ts,
                data,
            },
            None,
        ),
        Err(e) if json_only => bad(e, Some(text)),
        Err(_) => (
            Record {
                stream: stream.into(),
                ts,
                data: serde_json::json!({ "line": text }),
            },
            None,
        ),
    }
}

/// Whether `s` is a valid stream name: `/`-joined segments of `[A-Za-z0-9._-]`, ≤ 128 bytes,
/// no `.` or `..` segment (no path escapes).
pub fn valid_stream(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_records_or_quarantine() {
        let (r, e) = from_line("c", "s", Ok(br#"{"a":1}"#.to_vec()), 100, true);
        assert_eq!(
            (r.stream.as_str(), r.data["a"].as_i64(), e),
            ("s", Some(1), None)
        );
        let (r, e) = from_line("c", "s", Ok(b"plain text".to_vec()), 100, false);
        assert_eq!(
            (r.stream.as_str(), r.data["line"].as_str(), e),
            ("s", Some("plain text"), None)
        );
        let (r, e) = from_line("c", "s", Ok(b"plain text".to_vec()), 100, true);
        assert_eq!(r.stream, QUARANTINE);
        assert!(e.unwrap().starts_with("invalid JSON"));
        assert_eq!(r.data["line"], "plain text");
        let (r, e) = from_line("c", "s", Ok(vec![b'"', 0xff, b'"']), 100, false);
        assert_eq!(
            (r.stream.as_str(), e.as_deref()),
            (QUARANTINE, Some("invalid UTF-8"))
        );
        let (r, e) = from_line("c", "s", Err(5000), 100, false);
        assert_eq!(r.stream, QUARANTINE);
        assert_eq!(
            e.unwrap(),
            "line of 5000 bytes exceeds max_record_bytes (100)"
        );
        assert!(valid_stream(QUARANTINE));
    }

    /// A JSON line nesting `levels` deep, objects and arrays in turn: `{"a":[{"a":…}]}`.
    fn nested(levels: usize) -> Vec<u8> {
        let mut line = String::from("1");
        for i in 0..levels {
            line = match i % 2 {
                0 => format!("[{line}]"),
                _ => format!("{{\"a\":{line}}}"),
            };
        }
        line.into_bytes()
    }

    /// The record's line on the primary, exactly as the journal renders it.
    fn primary_line(r: &Record) -> Vec<u8> {
        let stored = StoredRecord::new(
            1,
            1,
            r.ts.clone(),
            r.stream.clone(),
            "n".into(),
            r.data.clone(),
        );
        let frame = crate::journal::encode_frame(&stored).unwrap();
        let (view, _) = crate::journal::decode_frame(&frame).unwrap();
        view.line.to_vec()
    }

    #[test]
    fn the_deepest_accepted_record_reads_back_from_the_primary_and_one_deeper_is_quarantined() {
        let (r, e) = from_line("c", "s", Ok(nested(MAX_DEPTH)), 1 << 20, true);
        assert_eq!((r.stream.as_str(), e), ("s", None));
        let line = primary_line(&r);
        let back: StoredRecord = serde_json::from_slice(&line).expect("the primary line parses");
        assert_eq!(back.data, r.data);

        // One level deeper still parses as input, but its primary line would not read back.
        let deeper = nested(MAX_DEPTH + 1);
        assert!(serde_json::from_slice::<Value>(&deeper).is_ok());
        let too_deep = StoredRecord::new(
            1,
            1,
            "t".into(),
            "s".into(),
            "n".into(),
            serde_json::from_slice(&deeper).unwrap(),
        );
        assert!(serde_json::from_str::<Value>(&serde_json::to_string(&too_deep).unwrap()).is_err());
        let (r, e) = from_line("c", "s", Ok(deeper.clone()), 1 << 20, true);
        assert_eq!(r.stream, QUARANTINE);
        assert!(e.unwrap().contains("nested more than 126 levels"));
        assert_eq!(r.data["line"].as_str().unwrap().as_bytes(), deeper);
        assert!(serde_json::from_slice::<Value>(&primary_line(&r)).is_ok());
        // A command's line that cannot be kept as JSON is kept as text, like any other.
        let (r, e) = from_line("c", "s", Ok(deeper.clone()), 1 << 20, false);
        assert_eq!((r.stream.as_str(), e), ("s", None));
        assert_eq!(r.data["line"].as_str().unwrap().as_bytes(), deeper);
    }

    #[test]
    fn depth_is_counted_in_containers() {
        assert!(check_depth(&serde_json::json!(1)).is_ok());
        for levels in [1, 2, MAX_DEPTH - 1, MAX_DEPTH] {
            let v: Value = serde_json::from_slice(&nested(levels)).unwrap();
            assert!(check_depth(&v).is_ok(), "{levels}");
        }
        let v: Value = serde_json::from_slice(&nested(MAX_DEPTH + 1)).unwrap();
        assert!(check_depth(&v).is_err());
        // Only the deepest branch counts, wherever it is.
        let v = serde_json::json!({"flat": 1, "deep": serde_json::from_slice::<Value>(&nested(MAX_DEPTH)).unwrap()});
        assert!(check_depth(&v).is_err());
        assert!(check_depth(&serde_json::json!([[], {}, [1, [2]]])).is_ok());
    }

    #[test]
    fn a_record_built_too_deep_is_quarantined_with_its_text() {
        let mut data = serde_json::json!(1);
        for _ in 0..200 {
            data = serde_json::json!([data]);
        }
        let r = keepable(
            "c",
            Record {
                stream: "s".into(),
                ts: "t".into(),
                data: data.clone(),
            },
        );
        assert_eq!(r.stream, QUARANTINE);
        assert_eq!(r.data["stream"], "s");
        assert_eq!(r.data["line"], data.to_string());
        let ok = Record {
            stream: "s".into(),
            ts: "t".into(),
            data: serde_json::json!({"a": [1]}),
        };
        assert_eq!(keepable("c", ok.clone()), ok);
    }

    #[test]
    fn stream_names() {
        for ok in ["binance/trades", "a", "a.b-c_d/e", &"x".repeat(128)] {
            assert!(valid_stream(ok), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "../etc",
            "a/./b",
            "a b",
            "ä",
            &"x".repeat(129),
        ] {
            assert!(!valid_stream(bad), "{bad}");
        }
    }
}
