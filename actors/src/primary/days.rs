//! Day files: which `raw/<stream>/<YYYY-MM-DD>.jsonl` a record goes to, and the streams and days a store holds.

use std::collections::BTreeMap;

use crate::records::valid_stream;
use std::fs::{self};
use std::io::{self};
use std::path::{Path, PathBuf};
use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Date, OffsetDateTime, UtcOffset};

/// The directory of every stream's day files.
pub(super) const RAW: &str = "raw";
pub(super) const DAY: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// The newest date of a stream's files, if it has any.
pub(super) fn newest_day(root: &Path, stream: &str) -> io::Result<Option<Date>> {
    let dir = root.join(RAW).join(stream);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut newest = None;
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        if let Some(day) = entry.file_name().to_str().and_then(date_of_file) {
            newest = newest.max(Some(day));
        }
    }
    Ok(newest)
}

/// Every stream under `raw/` of the root at `root` that has date files, with them oldest first;
/// a missing `raw/` is an empty store.
pub(super) fn streams(root: &Path) -> io::Result<BTreeMap<String, Vec<(Date, PathBuf)>>> {
    let mut out = BTreeMap::new();
    let raw = root.join(RAW);
    if !raw.is_dir() {
        return Ok(out);
    }
    let mut stack = vec![(raw, String::new())];
    while let Some((dir, stream)) = stack.pop() {
        let mut files = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            // file_type does not follow symlinks: the walk stays inside the root.
            let kind = entry.file_type()?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if kind.is_dir() {
                let child = if stream.is_empty() {
                    name.to_string()
                } else {
                    format!("{stream}/{name}")
                };
                // Anything that is not a stream name (a stray hidden dir) is not ours.
                if valid_stream(&child) {
                    stack.push((entry.path(), child));
                }
            } else if kind.is_file() && !stream.is_empty() {
                if let Some(day) = date_of_file(name) {
                    files.push((day, entry.path()));
                }
            }
        }
        if !files.is_empty() {
            files.sort();
            out.insert(stream, files);
        }
    }
    Ok(out)
}

pub(super) fn date_of_file(name: &str) -> Option<Date> {
    let stem = name.strip_suffix(".jsonl")?;
    if stem.len() != 10 || !stem.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return None;
    }
    Date::parse(stem, DAY).ok()
}

pub(super) fn day_file(day: Date) -> String {
    // Formatting a four-digit year cannot fail; the fallback only keeps this free of unwrap.
    let name = day.format(DAY).unwrap_or_else(|_| day.to_string());
    format!("{name}.jsonl")
}

/// The UTC day of `ts`, if it parses and lies no more than a day ahead of `today` (see `append`).
pub(super) fn ts_day(ts: &str, today: Date) -> Option<Date> {
    OffsetDateTime::parse(ts, &Rfc3339)
        .ok()
        .map(|t| t.to_offset(UtcOffset::UTC).date())
        .filter(|d| Some(*d) <= today.next_day())
}

/// The day a record with `ts` is filed under, given the stream's newest file (see `append`).
pub(super) fn file_day(ts: &str, newest: Option<Date>, today: Date) -> Date {
    match (ts_day(ts, today), newest) {
        (Some(d), n) => n.map_or(d, |n| d.max(n)),
        (None, Some(n)) => n,
        (None, None) => today,
    }
}

/// Files one stream's records of a batch by day: [`file_day`], without parsing every `ts`.
pub(super) struct StreamDays<'a> {
    pub(super) newest: Option<Date>,
    /// The date part of the last UTC (`Z`) `ts` that parsed, and its day.
    pub(super) seen: Option<(&'a [u8], Date)>,
}

/// `ts` as text, for parsing; what is not UTF-8 does not parse either.
pub(super) fn ts_str(ts: &[u8]) -> &str {
    std::str::from_utf8(ts).unwrap_or("")
}

impl<'a> StreamDays<'a> {
    pub(super) fn new(newest: Option<Date>) -> Self {
        Self { newest, seen: None }
    }

    pub(super) fn file_day(&mut self, ts: &'a [u8], today: Date) -> Date {
        // A UTC `ts` names its day in its first ten bytes, and a stream's records mostly share
        // it. Should the rest of such a `ts` not parse, `file_day` would file it under the
        // newest day, which is the same day (or a later one) as `seen` once a record of that
        // day went in: either way the answer is the max of the two.
        let prefix = ts.get(..10).filter(|_| ts.ends_with(b"Z"));
        let day = match (prefix, self.seen) {
            (Some(p), Some((seen, d))) if p == seen => self.newest.map_or(d, |n| d.max(n)),
            _ => {
                let ts = ts_str(ts);
                let own = ts_day(ts, today);
                if let (Some(p), Some(d)) = (prefix, own) {
                    self.seen = Some((p, d));
                }
                file_day(ts, self.newest, today)
            }
        };
        self.newest = Some(day);
        day
    }
}
