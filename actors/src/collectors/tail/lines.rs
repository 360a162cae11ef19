//! Lines of a file between two offsets, read with bounded memory, and the record each line becomes.
//!
//! Reads go through `pread` at explicit offsets rather than a file's cursor: the same file is
//! read for a batch, replayed after a crash and sampled for its identity, and none of them may
//! move another's position. A read never goes past the size the caller saw, so a line still
//! being written is seen as unterminated rather than cut where the writer happened to be.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::os::unix::fs::FileExt;

use crate::clock;
use crate::records::{from_line, quarantined, Line, Record};

/// A [`Read`] over `file` from `pos` up to `end`.
pub struct At<'a> {
    pub file: &'a File,
    pub pos: u64,
    pub end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Bytes read from the file at a time.
pub const READ_BUFFER: usize = 256 * 1024;

/// One line as read: the line (without its `\n` and a `\r` before it; or the length of a line
/// over `max`), the bytes it took up in the file, and whether a newline ended it (a line
/// without one is the file's unterminated last line).
pub struct Read1 {
    pub line: Line,
    pub bytes: u64,
    pub terminated: bool,
}

/// The next line from `r`, keeping at most `max` bytes of it; None at the end.
pub fn next_line<R: BufRead>(r: &mut R, max: usize) -> io::Result<Option<Read1>> {
    let mut line = Vec::new();
    let mut len = 0usize;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if len == 0 {
                return Ok(None);
            }
            return Ok(Some(finish(line, len, max, false)));
        }
        let (chunk, used, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        len += chunk.len();
        if len <= max + 1 {
            line.extend_from_slice(chunk);
        } else {
            line.clear();
        }
        r.consume(used);
        if found {
            return Ok(Some(finish(line, len, max, true)));
        }
    }
}

fn finish(mut line: Vec<u8>, len: usize, max: usize, terminated: bool) -> Read1 {
    let bytes = (len + usize::from(terminated)) as u64;
    // A CRLF line's `\r` is not part of the text (and does not count against the limit).
    let mut text_len = len;
    if terminated && line.last() == Some(&b'\r') && len <= max + 1 {
        line.pop();
        text_len -= 1;
    }
    Read1 {
        line: if text_len > max {
            Err(text_len)
        } else {
            Ok(line)
        },
        bytes,
        terminated,
    }
}

/// The record a line becomes: JSON objects are themselves, other text `{"line": …}`; an
/// unterminated last line emitted after `partial_after` is text flagged `"partial": true`
/// (its rest, should it come, is the next line). Over-long lines and invalid UTF-8 go to
/// `_quarantine`, and the reason is returned beside the record.
pub fn to_record(
    collector: &str,
    stream: &str,
    line: Line,
    partial: bool,
    max: usize,
) -> (Record, Option<String>) {
    if !partial {
        return from_line(collector, stream, line, max, false);
    }
    let ts = clock::now_rfc3339();
    let bad = |error: String, text: Option<String>| {
        (
            quarantined(collector, stream, &error, text, ts.clone()),
            Some(error),
        )
    };
    match line {
        Err(len) => bad(
            format!("unterminated last line of {len} bytes exceeds max_record_bytes ({max})"),
            None,
        ),
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => (
                Record {
                    stream: stream.into(),
                    ts,
                    data: serde_json::json!({"line": text, "partial": true}),
                },
                None,
            ),
            Err(e) => {
                let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
                bad("invalid UTF-8 (unterminated last line)".into(), Some(lossy))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<(Line, u64, bool)> {
        let mut r = io::BufReader::with_capacity(4, input);
        let mut got = Vec::new();
        while let Some(l) = next_line(&mut r, max).unwrap() {
            got.push((l.line, l.bytes, l.terminated));
        }
        got
    }

    #[test]
    fn lines_are_bounded_and_know_their_length_in_the_file() {
        assert_eq!(
            lines(b"short\r\nthis-line-is-too-long\n\nlast", 10),
            vec![
                (Ok(b"short".to_vec()), 7, true),
                (Err(21), 22, true),
                (Ok(Vec::new()), 1, true),
                (Ok(b"last".to_vec()), 4, false),
            ]
        );
        // Exactly max bytes of text, with or without a `\r`, is kept.
        assert_eq!(
            lines(b"0123456789\r\n", 10),
            vec![(Ok(b"0123456789".to_vec()), 12, true)]
        );
    }

    #[test]
    fn a_partial_line_is_flagged_text() {
        let (r, e) = to_record("collectors/t", "t", Ok(b"{\"half\":".to_vec()), true, 100);
        assert!(e.is_none());
        assert_eq!(
            r.data,
            serde_json::json!({"line": "{\"half\":", "partial": true})
        );
        let (r, e) = to_record("collectors/t", "t", Err(500), true, 100);
        assert_eq!(r.stream, crate::records::QUARANTINE);
        assert!(e.unwrap().contains("500 bytes"));
    }
}
