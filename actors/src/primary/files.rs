//! Appending lines to a day file and reading it from its end: cut a torn tail, write in large gathers, find the last ids without reading the whole file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// How much of a file is read at a time when looking backwards for a line's start.
pub(super) const CHUNK: u64 = 64 * 1024;

/// Opens `path` to append (creating it), cutting away a torn tail; returns whether the file
/// was created (its directory entry then needs an fsync too).
pub(super) fn open_for_append(path: &Path) -> io::Result<(File, bool)> {
    let (file, created) = match OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => (f, true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => (
            OpenOptions::new().read(true).append(true).open(path)?,
            false,
        ),
        Err(e) => return Err(e),
    };
    if !created {
        repair_tail(&file)?;
    }
    Ok((file, created))
}

/// Writes `lines` at the end of `file`, gathered into large writes: copying a few hundred bytes
/// at a time costs less in user space than as many `writev` segments in the kernel.
pub(super) fn write_lines(file: &File, lines: &[&[u8]]) -> io::Result<()> {
    const GATHER: usize = 1 << 20;
    let mut out = io::BufWriter::with_capacity(GATHER, file);
    for line in lines {
        out.write_all(line)?;
    }
    out.flush()
}

/// Truncates a last line that has no `\n`: a crash mid-append. `last_ids` never counted it, so
/// the sync actor sends its record again; keeping it would make a duplicate or a broken line.
pub(super) fn repair_tail(file: &File) -> io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8];
    file.read_exact_at(&mut last, len - 1)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    let keep = rfind_newline(file, len)?.map_or(0, |p| p + 1);
    file.set_len(keep)?;
    file.sync_all()
}

/// A primary line without its id fields (`id`, `epoch`, `seq` come first, then `ts`): what a
/// record is wherever it was numbered.
pub(super) fn without_id(line: &[u8]) -> Option<&[u8]> {
    let at = line.windows(6).position(|w| w == b",\"ts\":")?;
    Some(&line[at..])
}

/// Calls `f` with each complete line of `file` (without its `\n`), last first, while it returns
/// true. A torn last line is skipped. Reads [`CHUNK`]s from the end, so a long scan costs one
/// read per chunk, not one per line.
pub(super) fn each_line_backwards(file: &File, mut f: impl FnMut(&[u8]) -> bool) -> io::Result<()> {
    let len = file.metadata()?.len();
    let Some(last_nl) = rfind_newline(file, len)? else {
        return Ok(());
    };
    // `data` holds the file's bytes from `lo` to just after a line's `\n`.
    let mut hi = last_nl + 1;
    let mut data: Vec<u8> = Vec::new();
    loop {
        let lo = hi.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; (hi - lo) as usize];
        file.read_exact_at(&mut chunk, lo)?;
        chunk.extend_from_slice(&data);
        data = chunk;
        // `end` is the index of the `\n` ending the line being cut out.
        let mut end = data.len() - 1;
        loop {
            match data[..end].iter().rposition(|&b| b == b'\n') {
                Some(p) => {
                    if !f(&data[p + 1..end]) {
                        return Ok(());
                    }
                    end = p;
                }
                None if lo == 0 => {
                    f(&data[..end]);
                    return Ok(());
                }
                None => break,
            }
        }
        data.truncate(end + 1);
        hi = lo;
    }
}

/// The offset of the last `\n` before `end`.
pub(super) fn rfind_newline(file: &File, end: u64) -> io::Result<Option<u64>> {
    let mut buf = vec![0u8; CHUNK as usize];
    let mut hi = end;
    while hi > 0 {
        let lo = hi.saturating_sub(CHUNK);
        let chunk = &mut buf[..(hi - lo) as usize];
        file.read_exact_at(chunk, lo)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(lo + i as u64));
        }
        hi = lo;
    }
    Ok(None)
}
