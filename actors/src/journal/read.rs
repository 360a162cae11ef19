//! Reading the journal from a position to another into a batch of frames, in bounded reads, reusing an earlier batch's buffers.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::error::{io_err, JournalError};
use super::frame::*;

pub(super) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.seg"))
}

/// The first read of a segment by [`read`]; each further one doubles, up to [`READ_MAX`], so
/// that a small batch does not read the rest of a whole segment (quadratic over a backlog) and a
/// large one takes few reads.
pub(super) const READ_MIN: usize = 64 << 10;
const READ_MAX: usize = 8 << 20;
/// The most [`read`] reserves up front for a batch's bytes.
const RESERVE_MAX: usize = 64 << 20;

/// Reads up to `want` bytes of `file` at `at` onto the end of `buf`; fewer only at end of file.
/// `read_to_end` fills the spare capacity directly, so the buffer is never zeroed first.
fn read_onto(file: &File, buf: &mut Vec<u8>, at: u64, want: usize) -> io::Result<usize> {
    use std::io::Read;
    let mut f = file;
    f.seek(SeekFrom::Start(at))?;
    buf.reserve(want);
    f.take(want as u64).read_to_end(buf)
}

/// Reads durable frames from `from` up to `end`: at most `max` of them, and no more once they
/// reach `max_bytes` (the first frame is always taken, however large). Returns them and the
/// position after the last, skipping anything that does not decode (recovery already moved
/// damage aside, so that only happens to a reader racing a rotation, which then simply moves on).
pub fn read(
    dir: &Path,
    from: Position,
    end: Position,
    max: usize,
    max_bytes: usize,
) -> Result<(Frames, Position), JournalError> {
    read_into(Frames::default(), dir, from, end, max, max_bytes)
}

/// [`read`] into the buffers of an earlier batch: a fresh buffer of many megabytes costs a page
/// fault (and the kernel zeroing a page) every 4 KiB before the first byte is read into it.
pub fn read_into(
    mut out: Frames,
    dir: &Path,
    from: Position,
    end: Position,
    max: usize,
    max_bytes: usize,
) -> Result<(Frames, Position), JournalError> {
    out.clear();
    // Reserved, not touched: a small read costs no more than it did.
    out.bytes
        .reserve(max_bytes.saturating_add(READ_MIN).min(RESERVE_MAX));
    let mut pos = from;
    let mut taken = 0usize;
    let full =
        |out: &Frames, taken: usize| out.len() >= max || (taken >= max_bytes && !out.is_empty());
    while !full(&out, taken) && pos < end {
        let path = segment_path(dir, pos.segment);
        let limit = if pos.segment == end.segment {
            end.offset
        } else {
            u64::MAX
        };
        let file = match File::open(&path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("opening", &path)(e)),
        };
        // This segment's bytes from `pos.offset` on go to `out.bytes` from `base` on, read as
        // far as needed; `off` of them are decoded.
        let base = out.bytes.len();
        let mut off = 0usize;
        let mut at_end = file.is_none();
        let mut chunk = READ_MIN;
        loop {
            while !full(&out, taken) {
                match out.take_at(base + off, pos.segment, pos.offset + off as u64) {
                    Some(n) => {
                        off += n;
                        taken += n;
                    }
                    None => break,
                }
            }
            let Some(f) = file.as_ref().filter(|_| !full(&out, taken) && !at_end) else {
                break;
            };
            // More is needed: the rest of a partly read frame, or the next frames; not much
            // more than the byte budget has room for.
            let at = pos.offset + (out.bytes.len() - base) as u64;
            let room = max_bytes.saturating_sub(out.bytes.len()).max(READ_MIN);
            let want = limit.saturating_sub(at).min(chunk.min(room) as u64) as usize;
            let got = read_onto(f, &mut out.bytes, at, want).map_err(io_err("reading", &path))?;
            at_end = got < want || at + got as u64 >= limit;
            chunk = (chunk * 2).min(READ_MAX);
        }
        let consumed_all = at_end && base + off == out.bytes.len();
        // A partly read frame is read again next time; the next segment's bytes follow the last frame.
        out.bytes.truncate(base + off);
        pos.offset += off as u64;
        if full(&out, taken) {
            break;
        }
        if pos.segment < end.segment && consumed_all {
            pos = Position {
                segment: pos.segment + 1,
                offset: 0,
            };
        } else {
            break;
        }
    }
    Ok((out, pos))
}

/// The numbers of the segments in `dir`, in order.
pub(super) fn segment_numbers(dir: &Path) -> Result<Vec<u64>, JournalError> {
    let entries = std::fs::read_dir(dir).map_err(io_err("listing", dir))?;
    let mut numbers = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("listing", dir))?;
        if let Some(n) = super::segment_number(&entry.path()) {
            numbers.push(n);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Calls `f(stream, epoch, seq)` for every durable frame in the journal's segments, oldest
/// first, without the journal's lock: `fushi report` reads it beside a running daemon, which
/// may release a segment meanwhile (its frames are then simply not seen: they were forwarded)
/// or append to the last one (a frame still being written is not read).
pub fn each_held(dir: &Path, mut f: impl FnMut(&str, u64, u64)) -> Result<(), JournalError> {
    let numbers = segment_numbers(dir)?;
    let (Some(&first), Some(&last)) = (numbers.first(), numbers.last()) else {
        return Ok(());
    };
    let end = Position {
        segment: last,
        offset: u64::MAX,
    };
    let mut pos = Position {
        segment: first,
        offset: 0,
    };
    let mut frames = Frames::default();
    loop {
        let (batch, next) = read_into(frames, dir, pos, end, 65_536, 16 << 20)?;
        for i in 0..batch.len() {
            let (epoch, seq) = batch.id(i);
            f(&batch.streams()[batch.stream_of(i)], epoch, seq);
        }
        if batch.is_empty() || next == pos {
            return Ok(());
        }
        (frames, pos) = (batch, next);
    }
}
