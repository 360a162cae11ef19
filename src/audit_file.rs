//! Reading `audit.jsonl` from disk for `fushi audit`, `report` and `bundle`, so they work with the daemon stopped and one bad line never hides the rest.

use anyhow::Context;
use fushi_actors::audit::AuditEvent;
use std::io::Write as _;
use std::path::Path;

/// Every event of the audit log at `path`, in file order; `None` (said on stderr) when there is
/// no log yet. A line with bytes that are not UTF-8 is taken with U+FFFD for them if it is JSON
/// then; any other unreadable line is skipped, and stderr says how many and where. A last line
/// without its newline is an append in progress, not damage.
pub fn read(path: &Path) -> anyhow::Result<Option<Vec<AuditEvent>>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "fushi: no audit log at {}: no daemon has run on this data dir yet (is -c the daemon's config?)",
                path.display()
            );
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let (mut events, mut unreadable, mut replaced) = (Vec::new(), Vec::new(), 0usize);
    for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        let parsed = serde_json::from_slice::<AuditEvent>(line).ok().or_else(|| {
            let std::borrow::Cow::Owned(text) = String::from_utf8_lossy(line) else {
                return None;
            };
            let e = serde_json::from_str::<AuditEvent>(&text).ok()?;
            replaced += 1;
            Some(e)
        });
        match parsed {
            Some(e) => events.push(e),
            None if !line.ends_with(b"\n") || line.trim_ascii().is_empty() => {}
            None => unreadable.push((i + 1).to_string()),
        }
    }
    let mut stderr = std::io::stderr().lock();
    if !unreadable.is_empty() {
        let more = if unreadable.len() > 5 { ", …" } else { "" };
        let _ = writeln!(
            stderr,
            "fushi: {} unreadable line(s) of {} skipped (line {}{more})",
            unreadable.len(),
            path.display(),
            unreadable[..unreadable.len().min(5)].join(", ")
        );
    }
    if replaced > 0 {
        let _ = writeln!(
            stderr,
            "fushi: {replaced} line(s) of {} hold bytes that are not UTF-8, shown as U+FFFD",
            path.display()
        );
    }
    Ok(Some(events))
}
