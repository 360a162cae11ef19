//! A journal frame (magic, length, checksum, postcard head, the primary's line) encoded and decoded, positions in the journal, and a batch of frames read back (`Frames`).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use crate::records::StoredRecord;

use super::error::JournalError;

/// `FSJ2`: frames carry the primary line (`FSJ1`, before any release, carried the fields).
pub const MAGIC: [u8; 4] = *b"FSJ2";
/// `FSJ3`: a copy of an earlier frame under a new id ([`Journal::rehome`]); its head also says
/// which id it was and how many copies of the same group follow it.
pub const MAGIC_COPY: [u8; 4] = *b"FSJ3";
const HEADER: usize = 12;
/// No frame is larger; a length field beyond it is damage, not a frame.
pub const MAX_FRAME: usize = 64 << 20;

/// What a frame says about its record besides the line itself: enough to number, file and
/// check it without parsing JSON.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct FrameHead<'a> {
    pub(super) epoch: u64,
    pub(super) seq: u64,
    pub(super) stream: &'a str,
    pub(super) ts: &'a str,
}

/// The head of a copy frame: a [`FrameHead`] and what it is a copy of.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct CopyHead<'a> {
    pub(super) epoch: u64,
    pub(super) seq: u64,
    pub(super) stream: &'a str,
    pub(super) ts: &'a str,
    /// The (epoch, seq) of the frame this copies, for the record.
    pub(super) was: (u64, u64),
    /// Where the frame this copies ends (segment, offset): the frame it supersedes. Not its
    /// id, which the copy itself may reuse.
    pub(super) at: (u64, u64),
    /// Copies of the same group after this one: 0 ends the group, so that recovery can tell
    /// a group a crash cut short (and drop all of it) from a whole one.
    pub(super) left: u32,
}

/// One frame's record, borrowed from the bytes it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameView<'a> {
    pub epoch: u64,
    pub seq: u64,
    pub stream: &'a str,
    pub ts: &'a str,
    /// The record's line on the primary, `\n` included.
    pub line: &'a [u8],
    /// For a copy ([`Journal::rehome`]): what it copies.
    pub copy_of: Option<CopyOf>,
}

/// What a copy frame copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOf {
    /// The (epoch, seq) the record was first stored under.
    pub was: (u64, u64),
    /// Where the original frame ends in the journal: the one this supersedes.
    pub at: Position,
    /// Copies of the same group after this one.
    pub left: u32,
}

impl FrameView<'_> {
    /// The record, parsed from its line (for tests and tools; forwarding copies the line).
    pub fn record(&self) -> Option<StoredRecord> {
        serde_json::from_slice(self.line).ok()
    }

    /// The line without its `\n`: the JSON object of `latest/<stream>.json`.
    pub fn json(&self) -> &[u8] {
        self.line.strip_suffix(b"\n").unwrap_or(self.line)
    }
}

/// A place in the journal: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash, Serialize)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// Appends the frame of `rec` to `out`; on error `out` is left as it was.
pub(super) fn encode_into(out: &mut Vec<u8>, rec: &StoredRecord) -> Result<(), JournalError> {
    encode_parts(
        out,
        rec.epoch,
        rec.seq,
        &rec.stream,
        &rec.ts,
        &rec.node,
        &rec.data,
        None,
    )
}

/// Appends the frame of a record given by its parts, so the writer never has to build (and
/// copy into) a `StoredRecord` just to encode it; on error `out` is left as it was.
#[allow(clippy::too_many_arguments)]
pub(super) fn encode_parts(
    out: &mut Vec<u8>,
    epoch: u64,
    seq: u64,
    stream: &str,
    ts: &str,
    node: &str,
    data: &serde_json::Value,
    copy_of: Option<CopyOf>,
) -> Result<(), JournalError> {
    let start = out.len();
    let failed = |out: &mut Vec<u8>, reason: String| {
        out.truncate(start);
        JournalError::Encode {
            stream: stream.to_string(),
            reason,
        }
    };
    out.extend_from_slice(&[0; HEADER]);
    let head = match copy_of {
        None => postcard::to_io(
            &FrameHead {
                epoch,
                seq,
                stream,
                ts,
            },
            &mut *out,
        ),
        Some(c) => postcard::to_io(
            &CopyHead {
                epoch,
                seq,
                stream,
                ts,
                was: c.was,
                at: (c.at.segment, c.at.offset),
                left: c.left,
            },
            &mut *out,
        ),
    };
    if let Err(e) = head {
        return Err(failed(out, e.to_string()));
    }
    if let Err(e) = render_line(out, epoch, seq, ts, stream, node, data) {
        return Err(failed(out, e.to_string()));
    }
    let payload = start + HEADER;
    let len = (out.len() - payload) as u32;
    let crc = checksum(copy_of.is_some(), &out[payload..]);
    let magic = if copy_of.is_some() { MAGIC_COPY } else { MAGIC };
    out[start..start + 4].copy_from_slice(&magic);
    out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
    out[start + 8..payload].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Appends the primary's line for a record: the JSON of [`StoredRecord`] (fields in SPEC order)
/// and `\n`, written field by field so that `data` is serialised straight into the frame.
pub(super) fn render_line(
    out: &mut Vec<u8>,
    epoch: u64,
    seq: u64,
    ts: &str,
    stream: &str,
    node: &str,
    data: &serde_json::Value,
) -> serde_json::Result<()> {
    use std::fmt::Write as _;
    struct Bytes<'a>(&'a mut Vec<u8>);
    impl std::fmt::Write for Bytes<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }
    // Writing into a Vec cannot fail.
    let _ = write!(
        Bytes(out),
        "{{\"id\":\"{epoch}.{seq}\",\"epoch\":{epoch},\"seq\":{seq},\"ts\":"
    );
    serde_json::to_writer(&mut *out, ts)?;
    out.extend_from_slice(b",\"stream\":");
    serde_json::to_writer(&mut *out, stream)?;
    out.extend_from_slice(b",\"node\":");
    serde_json::to_writer(&mut *out, node)?;
    out.extend_from_slice(b",\"data\":");
    serde_json::to_writer(&mut *out, data)?;
    out.extend_from_slice(b"}\n");
    Ok(())
}

pub fn encode_frame(rec: &StoredRecord) -> Result<Vec<u8>, JournalError> {
    let mut out = Vec::new();
    encode_into(&mut out, rec)?;
    Ok(out)
}

/// A frame's checksum. A copy's also covers its magic: `FSJ2` and `FSJ3` are one bit apart, and a
/// flip must not turn a frame into a copy that parses (or a copy into a frame).
pub(super) fn checksum(copy: bool, payload: &[u8]) -> u32 {
    if copy {
        crc32c::crc32c_append(crc32c::crc32c(&MAGIC_COPY), payload)
    } else {
        crc32c::crc32c(payload)
    }
}

/// Decodes the frame at the start of `buf`: `Some((record, frame length))` only for a whole,
/// checksummed, decodable frame.
pub fn decode_frame(buf: &[u8]) -> Option<(FrameView<'_>, usize)> {
    if buf.len() < HEADER || (buf[..4] != MAGIC && buf[..4] != MAGIC_COPY) {
        return None;
    }
    let len = u32::from_le_bytes(buf[4..8].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(buf[8..12].try_into().ok()?);
    if len > MAX_FRAME || buf.len() < HEADER + len {
        return None;
    }
    let copy = buf[..4] == MAGIC_COPY;
    if checksum(copy, &buf[HEADER..HEADER + len]) != crc {
        return None;
    }
    Some((
        parse_payload(&buf[HEADER..HEADER + len], copy)?,
        HEADER + len,
    ))
}

/// The record of a frame's payload (checksum already checked).
pub(super) fn parse_payload(payload: &[u8], copy: bool) -> Option<FrameView<'_>> {
    let (epoch, seq, stream, ts, copy_of, line) = if copy {
        let (h, line): (CopyHead, _) = postcard::take_from_bytes(payload).ok()?;
        let copy = CopyOf {
            was: h.was,
            at: Position {
                segment: h.at.0,
                offset: h.at.1,
            },
            left: h.left,
        };
        (h.epoch, h.seq, h.stream, h.ts, Some(copy), line)
    } else {
        let (h, line): (FrameHead, _) = postcard::take_from_bytes(payload).ok()?;
        (h.epoch, h.seq, h.stream, h.ts, None, line)
    };
    if !line.ends_with(b"\n") {
        return None;
    }
    Some(FrameView {
        epoch,
        seq,
        stream,
        ts,
        line,
        copy_of,
    })
}

/// Frames read from the journal: the bytes they were read from, where each frame's parts lie in
/// them, and the batch's stream names, each held once, so that planning and filing a batch
/// index by stream instead of hashing every record's name again.
#[derive(Debug, Default)]
pub struct Frames {
    pub(super) bytes: Vec<u8>,
    pub(super) locs: Vec<Loc>,
    pub(super) streams: Vec<String>,
    pub(super) stream_index: HashMap<String, usize>,
}

/// One frame of [`Frames`]: ranges are into `Frames::bytes`.
#[derive(Debug, Clone)]
pub(super) struct Loc {
    pub(super) after: Position,
    pub(super) size: usize,
    pub(super) epoch: u64,
    pub(super) seq: u64,
    pub(super) stream: usize,
    pub(super) ts: std::ops::Range<usize>,
    pub(super) line: std::ops::Range<usize>,
    pub(super) copy_of: Option<CopyOf>,
}

impl Frames {
    /// Frames encoded from `records`, as if read from a journal (tests and tools).
    pub fn of(records: &[StoredRecord]) -> Result<Frames, JournalError> {
        let mut f = Frames::default();
        for (i, r) in records.iter().enumerate() {
            let start = f.bytes.len();
            encode_into(&mut f.bytes, r)?;
            let after = Position {
                segment: 0,
                offset: i as u64 + 1,
            };
            f.take(start, after);
        }
        Ok(f)
    }

    /// Records the frame that starts at `start` of `bytes` (decoding it, checksum and all);
    /// returns its length, or None if there is no whole frame there.
    pub(super) fn take_at(
        &mut self,
        start: usize,
        segment: u64,
        segment_offset: u64,
    ) -> Option<usize> {
        let (view, n) = decode_frame(&self.bytes[start..])?;
        let base = self.bytes.as_ptr() as usize;
        let at = |part: &[u8]| {
            let from = part.as_ptr() as usize - base;
            from..from + part.len()
        };
        let (ts, line) = (at(view.ts.as_bytes()), at(view.line));
        // A batch mostly holds a few streams: comparing with each costs less than hashing.
        let known = if self.streams.len() <= 8 {
            self.streams.iter().position(|s| s == view.stream)
        } else {
            self.stream_index.get(view.stream).copied()
        };
        let stream = known.unwrap_or_else(|| {
            self.streams.push(view.stream.to_string());
            self.stream_index
                .insert(view.stream.to_string(), self.streams.len() - 1);
            self.streams.len() - 1
        });
        self.locs.push(Loc {
            after: Position {
                segment,
                offset: segment_offset + n as u64,
            },
            size: n,
            epoch: view.epoch,
            seq: view.seq,
            stream,
            ts,
            line,
            copy_of: view.copy_of,
        });
        Some(n)
    }

    pub(super) fn take(&mut self, start: usize, after: Position) {
        let n = self
            .take_at(start, after.segment, 0)
            .expect("a frame just encoded");
        self.locs.last_mut().expect("just pushed").after = after;
        debug_assert_eq!(start + n, self.bytes.len());
    }

    /// Keeps only the first `n` frames.
    pub fn truncate(&mut self, n: usize) {
        self.locs.truncate(n);
    }

    /// Empties this, keeping the memory for another batch.
    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.locs.clear();
        self.streams.clear();
        self.stream_index.clear();
    }

    pub fn len(&self) -> usize {
        self.locs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.locs.is_empty()
    }

    /// The frames' bytes in the journal.
    pub fn size(&self) -> usize {
        self.locs.iter().map(|l| l.size).sum()
    }

    /// The batch's stream names; [`Frames::stream_of`] indexes them.
    pub fn streams(&self) -> &[String] {
        &self.streams
    }

    /// The index in [`Frames::streams`] of frame `i`'s stream.
    pub fn stream_of(&self, i: usize) -> usize {
        self.locs[i].stream
    }

    /// Frame `i`'s (epoch, seq).
    pub fn id(&self, i: usize) -> (u64, u64) {
        (self.locs[i].epoch, self.locs[i].seq)
    }

    /// Frame `i`.
    pub fn get(&self, i: usize) -> FrameView<'_> {
        let l = &self.locs[i];
        FrameView {
            epoch: l.epoch,
            seq: l.seq,
            stream: &self.streams[l.stream],
            // It was a str when the frame was decoded.
            ts: std::str::from_utf8(&self.bytes[l.ts.clone()]).unwrap_or_default(),
            line: &self.bytes[l.line.clone()],
            copy_of: l.copy_of,
        }
    }

    /// Frame `i`'s line (as [`FrameView::line`]).
    pub fn line(&self, i: usize) -> &[u8] {
        &self.bytes[self.locs[i].line.clone()]
    }

    /// Frame `i`'s `ts`, as bytes: filing by day needs no UTF-8 check for most records.
    pub fn ts_bytes(&self, i: usize) -> &[u8] {
        &self.bytes[self.locs[i].ts.clone()]
    }

    /// The journal position just after frame `i`.
    pub fn after(&self, i: usize) -> Position {
        self.locs[i].after
    }

    pub fn iter(&self) -> impl Iterator<Item = FrameView<'_>> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Every frame's record, parsed (tests and tools).
    pub fn records(&self) -> Vec<StoredRecord> {
        self.iter()
            .map(|v| v.record().expect("a journal line is a record"))
            .collect()
    }
}
