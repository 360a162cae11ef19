//! A node's write-intent hint, `nodes/<node>.json`: the streams it may have written to and the newest day file of each, so that reading back its last ids skips every stream it never wrote.
//!
//! The hint is written (atomically, and durable) before the lines it announces, so it always
//! holds at least what the node wrote: a stream missing from it holds no line of the node's.
//! It may hold more (an intent whose lines never landed); readers of it allow for that.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use time::Date;

use super::days::DAY;
use super::root::{ensure_dir, Root};
use crate::faults;
use crate::fs::write_atomic;

/// The directory of the nodes' hint files.
pub(super) const NODES: &str = "nodes";

/// Stream → the newest day file the node may have written lines to.
pub(super) type Hint = BTreeMap<String, Date>;

#[derive(Serialize, Deserialize)]
struct HintFile {
    /// The node's name as configured; the file name may be an encoding of it.
    node: String,
    /// Stream → `YYYY-MM-DD`.
    streams: BTreeMap<String, String>,
}

/// The hint file's name for `node`. Node ids are only kept free of whitespace and `/` by the
/// config, so `.`, `..`, a `%` or a NUL could still reach here: every byte but
/// `[A-Za-z0-9_-]` (and a `.` that does not lead) is written as `%XX`, which is reversible,
/// so two nodes never share a file.
pub(super) fn file_name(node: &str) -> String {
    let mut out = String::with_capacity(node.len() + 5);
    for (i, b) in node.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        // No encoded name is a lone `%`: the empty name gets it.
        out.push('%');
    }
    out + ".json"
}

fn path(root: &Root, node: &str) -> PathBuf {
    root.path.join(NODES).join(file_name(node))
}

/// The node's hint, None when it has none (a store written before hints existed, or the node's
/// first run). A hint that does not parse (a foreign hand) counts as none: the caller then
/// reads every stream, which is always right, only slower.
pub(super) fn read(root: &Root, node: &str) -> io::Result<Option<Hint>> {
    let path = path(root, node);
    root.fault(faults::Op::Open, &path)?;
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // Counted on only once durable: the write that put it there may have died before the
    // entries were (its content was fsynced before the rename).
    let dir = root.path.join(NODES);
    root.fault(faults::Op::Fsync, &dir)?;
    crate::fs::sync_dir(&dir)?;
    crate::fs::sync_dir(&root.path)?;
    let parsed: Option<Hint> = serde_json::from_slice::<HintFile>(&bytes)
        .ok()
        .and_then(|f| {
            f.streams
                .into_iter()
                .map(|(s, d)| Date::parse(&d, DAY).ok().map(|d| (s, d)))
                .collect()
        });
    if parsed.is_none() {
        tracing::warn!(
            actor = "sync",
            file = %root.logical.join(NODES).join(file_name(node)).display(),
            "the node's hint file on the primary does not parse; every stream is read for its last ids"
        );
    }
    Ok(parsed)
}

/// Replaces the node's hint with `hint`, durably (the file and the entries up to the root).
pub(super) fn write(root: &Root, node: &str, hint: &Hint) -> io::Result<()> {
    let mut dirty = Default::default();
    let dir = ensure_dir(root, Path::new(NODES), &mut dirty)?;
    let file = HintFile {
        node: node.to_string(),
        streams: hint
            .iter()
            .map(|(s, d)| {
                // Formatting a four-digit year cannot fail; the fallback keeps this free of unwrap.
                let day = d.format(DAY).unwrap_or_else(|_| d.to_string());
                (s.clone(), day)
            })
            .collect(),
    };
    let bytes = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
    let path = dir.join(file_name(node));
    root.fault(faults::Op::Rename, &path)?;
    write_atomic(&path, &bytes)?;
    // A new `nodes/` exists for sure only once the root's entry is durable too.
    for d in dirty {
        root.fault(faults::Op::Fsync, &d)?;
        crate::fs::sync_dir(&d)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn hint_file_names_are_safe_and_distinct() {
        assert_eq!(file_name("collector-pc"), "collector-pc.json");
        assert_eq!(file_name("a.b_c"), "a.b_c.json");
        assert_eq!(file_name("."), "%2E.json");
        assert_eq!(file_name(".."), "%2E..json");
        assert_eq!(file_name("a%2F"), "a%252F.json");
        assert_eq!(file_name("é"), "%C3%A9.json");
        assert_eq!(file_name(""), "%.json");
        assert_ne!(file_name("a/b"), file_name("a%2Fb"));
        for name in [".", "..", "a/b", "\0", "x\"y"] {
            let f = file_name(name);
            assert!(
                !f.contains('/') && !f.contains('\0') && !f.starts_with('.'),
                "{f}"
            );
        }
    }
}
