//! Writing the bundle: a tar.gz built in a temp file of the output dir, fsynced, renamed to its name, the dir fsynced; then its audit record appended.

use anyhow::Context;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A writer that hashes and counts what passes through it: the archive's sha256 is that of
/// the bytes written, with no second read of the file.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The archive as it ended up on disk.
#[derive(Debug)]
pub(super) struct Written {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

/// Writes `files` (name, content) under the directory `<name>/` of `out/<name>.tar.gz`, the
/// name being `stem`, or `stem-2`, `stem-3`, … when taken already (two bundles in one minute).
///
/// Nothing named `fushi-bundle-*.tar.gz` exists until the archive is whole and durable: it is
/// written to a hidden temp file in `out` (removed on any failure), fsynced, renamed without
/// replacing anything, and the rename made durable.
pub(super) fn write(
    out: &Path,
    stem: &str,
    files: &[(String, Vec<u8>)],
) -> anyhow::Result<Written> {
    match std::fs::metadata(out) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => anyhow::bail!(
            "cannot write the bundle in {}: it is not a directory; pass --out DIR",
            out.display()
        ),
        Err(e) => anyhow::bail!(
            "cannot write the bundle in {}: {e}; create it or pass --out DIR",
            out.display()
        ),
    }
    let tmp = tempfile::Builder::new()
        .prefix(".fushi-bundle-")
        .suffix(".tmp")
        .tempfile_in(out)
        .with_context(|| {
            format!(
                "cannot write the bundle in {}: creating a file there failed; pass --out with a \
                 directory you can write to",
                out.display()
            )
        })?;
    let file = tmp.as_file().try_clone().with_context(|| {
        format!(
            "writing the bundle in {}: duplicating the temp file's handle",
            out.display()
        )
    })?;
    // Chosen before writing: the archive's top directory carries the same name.
    let name = (1..100)
        .map(|n| match n {
            1 => stem.to_string(),
            n => format!("{stem}-{n}"),
        })
        .find(|n| !out.join(format!("{n}.tar.gz")).exists())
        .unwrap_or_else(|| stem.to_string());
    let path = out.join(format!("{name}.tar.gz"));
    let writing = |what: &str| format!("writing the bundle in {} ({what})", out.display());
    let gz = flate2::write::GzEncoder::new(
        Hashing {
            inner: io::BufWriter::new(file),
            hash: Sha256::new(),
            bytes: 0,
        },
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    let mtime = fushi_actors::clock::wall()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for (file, body) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, format!("{name}/{file}"), body.as_slice())
            .with_context(|| writing(file))?;
    }
    let gz = tar
        .into_inner()
        .with_context(|| writing("the tar trailer"))?;
    let mut hashing = gz.finish().with_context(|| writing("the gzip trailer"))?;
    hashing.flush().with_context(|| writing("flushing"))?;
    let Hashing { inner, hash, bytes } = hashing;
    let file = inner
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| writing("flushing"))?;
    file.sync_all().with_context(|| writing("fsync"))?;
    let sha256 = format!("{:x}", hash.finalize());
    // Without replacing: a bundle of this name made meanwhile is kept, and this one fails.
    tmp.persist_noclobber(&path)
        .map_err(|e| e.error)
        .with_context(|| {
            format!(
                "renaming the bundle to {} (run again for another name)",
                path.display()
            )
        })?;
    fushi_actors::fs::sync_dir(out)
        .with_context(|| format!("fsyncing {} after the bundle's rename", out.display()))?;
    Ok(Written {
        path,
        bytes,
        sha256,
    })
}

/// Appends one audit line to `<data_dir>/audit.jsonl` beside a daemon that may be running.
///
/// Not through the daemon: a bundle is made when the daemon may be down or stuck, and the
/// record must not depend on it. The daemon's writer appends with O_APPEND in single writes
/// too, and on a local file system each O_APPEND `write` lands whole at the end of the file,
/// so one `write` of the whole line cannot interleave inside a line of the daemon's. A short
/// write (a full disk) is reported, not retried: a second write could land after another line.
pub(super) fn audit(data_dir: &Path, line: &str) -> anyhow::Result<PathBuf> {
    let path = data_dir.join("audit.jsonl");
    if !data_dir.is_dir() {
        anyhow::bail!(
            "data dir {} does not exist (no daemon has run on this config), so there is no audit \
             log to record the bundle in",
            data_dir.display()
        );
    }
    let mut f: File = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {} to record the bundle", path.display()))?;
    let mut buf = line.as_bytes().to_vec();
    buf.push(b'\n');
    let n = f
        .write(&buf)
        .with_context(|| format!("appending to {}", path.display()))?;
    if n != buf.len() {
        anyhow::bail!(
            "appending to {}: only {n} of {} bytes were written (is its disk full?)",
            path.display(),
            buf.len()
        );
    }
    f.sync_data()
        .with_context(|| format!("fsyncing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_holds_the_files_and_its_hash_is_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![
            ("a.txt".to_string(), b"alpha\n".to_vec()),
            ("b.json".to_string(), b"{}".to_vec()),
        ];
        let w = write(dir.path(), "fushi-bundle-n-20261202-1030", &files).unwrap();
        assert_eq!(
            w.path,
            dir.path().join("fushi-bundle-n-20261202-1030.tar.gz")
        );
        let bytes = std::fs::read(&w.path).unwrap();
        assert_eq!(w.bytes, bytes.len() as u64);
        assert_eq!(w.sha256, format!("{:x}", Sha256::digest(&bytes)));
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let mut s = String::new();
            io::Read::read_to_string(&mut e, &mut s).unwrap();
            seen.push((e.path().unwrap().display().to_string(), s));
        }
        assert_eq!(
            seen,
            vec![
                (
                    "fushi-bundle-n-20261202-1030/a.txt".to_string(),
                    "alpha\n".to_string()
                ),
                (
                    "fushi-bundle-n-20261202-1030/b.json".to_string(),
                    "{}".to_string()
                ),
            ]
        );
        // A second bundle in the same minute keeps the first.
        let w2 = write(dir.path(), "fushi-bundle-n-20261202-1030", &files).unwrap();
        assert_eq!(
            w2.path,
            dir.path().join("fushi-bundle-n-20261202-1030-2.tar.gz")
        );
        let bytes = std::fs::read(&w2.path).unwrap();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let first = ar.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(
            first.path().unwrap().display().to_string(),
            "fushi-bundle-n-20261202-1030-2/a.txt",
            "the top directory is named as the archive"
        );
        assert!(w.path.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn an_output_dir_that_is_not_there_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = format!("{:#}", write(&missing, "x", &[]).unwrap_err());
        assert!(
            e.contains(&format!("cannot write the bundle in {}", missing.display()))
                && e.contains("create it or pass --out DIR"),
            "{e}"
        );
    }
}
