//! What makes a followed file the same file: a checksum of its head (its first line, or its first bytes up to a newline) and a checksum of the bytes just before the read offset.
//!
//! Device and inode say which file a path names now; they cannot say whether it still holds what
//! was read (ext4 and tmpfs hand a deleted file's inode to the next file created), nor that a
//! file under another inode is a copy (copytruncate, `cp`). The head tells files apart from the
//! first newline on, however short they are (Filebeat's 1 024-byte fingerprint cannot see a
//! shorter file); but log files often begin alike (a CSV header, a banner), so the head alone
//! would take a new file for a copy of the old one and skip its beginning. The *sample*, the
//! last bytes before the offset already read, settles it: a copy holds the same bytes there, a
//! new file with the same first line does not, and a file truncated and rewritten past the
//! offset between two looks has other bytes there too.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The head is at most this long: a first line longer than this is identified by its start.
pub const HEAD_MAX: u64 = 4096;
/// The sample is at most this many bytes before the offset.
pub const SAMPLE_MAX: u64 = 256;

/// A checksum of a file's first bytes up to and including its first newline (at most
/// [`HEAD_MAX`]); `len` 0 for an empty file. A head without a newline shorter than
/// [`HEAD_MAX`] is provisional: it grows with the file until its newline comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub len: u32,
    pub crc: u32,
    /// Whether the head reached its newline (or [`HEAD_MAX`]) and so is final.
    pub complete: bool,
}

/// A checksum of the up to [`SAMPLE_MAX`] bytes before an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Sample {
    pub len: u32,
    pub crc: u32,
}

/// Reads `len` bytes at `at`; fewer when the file ends first.
fn read_at(f: &File, at: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// The head of `f` as it is now.
pub fn head(f: &File) -> io::Result<Head> {
    let bytes = read_at(f, 0, HEAD_MAX)?;
    let (len, complete) = match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => (i + 1, true),
        None => (bytes.len(), bytes.len() as u64 == HEAD_MAX),
    };
    Ok(Head {
        len: len as u32,
        crc: crc32c::crc32c(&bytes[..len]),
        complete,
    })
}

/// The compression format `f` is in, by its magic bytes (gzip, bzip2, xz, zstd, lz4): what a
/// glob like `*.log*` also matches once logrotate's `compress` has run. Such a file holds no
/// lines to read.
pub fn compressed(f: &File) -> io::Result<Option<&'static str>> {
    let b = read_at(f, 0, 6)?;
    const MAGIC: [(&[u8], &str); 5] = [
        (&[0x1f, 0x8b], "gzip"),
        (b"BZh", "bzip2"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], "xz"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (&[0x04, 0x22, 0x4d, 0x18], "lz4"),
    ];
    Ok(MAGIC
        .iter()
        .find(|(m, _)| b.starts_with(m))
        .map(|(_, name)| *name))
}

/// Whether `f` begins with the bytes `h` was taken from.
pub fn head_matches(f: &File, h: Head) -> io::Result<bool> {
    let bytes = read_at(f, 0, u64::from(h.len))?;
    Ok(bytes.len() == h.len as usize && crc32c::crc32c(&bytes) == h.crc)
}

/// The sample of `f` before `offset`.
pub fn sample(f: &File, offset: u64) -> io::Result<Sample> {
    let len = offset.min(SAMPLE_MAX);
    let bytes = read_at(f, offset - len, len)?;
    Ok(Sample {
        len: bytes.len() as u32,
        crc: crc32c::crc32c(&bytes),
    })
}

/// Whether `f` holds, before `offset`, the bytes `s` was taken from.
pub fn sample_matches(f: &File, offset: u64, s: Sample) -> io::Result<bool> {
    if offset < u64::from(s.len) {
        return Ok(false);
    }
    let bytes = read_at(f, offset - u64::from(s.len), u64::from(s.len))?;
    Ok(bytes.len() == s.len as usize && crc32c::crc32c(&bytes) == s.crc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut t = tempfile::NamedTempFile::new().unwrap();
        t.write_all(bytes).unwrap();
        let f = File::open(t.path()).unwrap();
        (t, f)
    }

    #[test]
    fn a_head_ends_at_the_first_newline_and_is_provisional_before_it() {
        let (_t, f) = file(b"ts,level,msg\n1,info,a\n");
        let h = head(&f).unwrap();
        assert_eq!((h.len, h.complete), (13, true));
        let (_t2, g) = file(b"ts,level,msg\n2,warn,b\n");
        assert!(head_matches(&g, h).unwrap(), "same first line, same head");
        let (_t3, p) = file(b"no newline yet");
        let h = head(&p).unwrap();
        assert_eq!((h.len, h.complete), (14, false));
        let (_t4, e) = file(b"");
        assert_eq!(head(&e).unwrap().len, 0);
    }

    #[test]
    fn the_sample_tells_a_copy_from_a_new_file_with_the_same_first_line() {
        let (_a, orig) = file(b"ts,level,msg\n1,info,a\n2,info,b\n");
        let (_b, copy) = file(b"ts,level,msg\n1,info,a\n2,info,b\n3,info,c\n");
        let (_c, other) = file(b"ts,level,msg\n9,info,z\n8,info,y\n");
        let s = sample(&orig, 31).unwrap();
        assert!(sample_matches(&copy, 31, s).unwrap());
        assert!(!sample_matches(&other, 31, s).unwrap());
        assert!(!sample_matches(&orig, 400, s).unwrap(), "past the end");
        assert_eq!(sample(&orig, 0).unwrap(), Sample { len: 0, crc: 0 });
    }
}
