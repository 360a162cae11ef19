//! The file registry on real files, with the clock passed in: copies told from new files that start alike, copytruncate's lines read from the copy, and a crash's batch mapped back to an offset.

use super::checkpoint::Pending;
use super::files::{Files, Options};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

fn opts(pattern: &Path) -> Options {
    Options {
        collector: "collectors/t".into(),
        stream: "t".into(),
        pattern: pattern.display().to_string(),
        max_record_bytes: 64,
        batch_bytes: 1 << 20,
        partial_after: Duration::from_secs(5),
        rotate_wait: Duration::from_secs(5),
        read_from_end: false,
    }
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn truncate(path: &Path) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

/// Every batch there is now, committed as if durable: each record's text (its `line`, or its
/// JSON).
fn drain(files: &mut Files, now: Instant) -> Vec<String> {
    let mut got = Vec::new();
    while let Some(b) = files.next_batch(now).unwrap() {
        for r in &b.records {
            got.push(match &r.data["line"] {
                Value::String(s) => s.clone(),
                _ => r.data.to_string(),
            });
        }
        files.commit(&b.pending, b.end_sample).unwrap();
    }
    got
}

#[test]
fn a_new_file_that_starts_like_a_followed_one_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut files = Files::new(opts(&dir.path().join("*.csv")));
    append(
        &dir.path().join("a.csv"),
        "ts,level,msg\n1,info,a\n2,info,b\n",
    );
    files.scan(now, true).unwrap();
    assert_eq!(drain(&mut files, now).len(), 3);
    append(&dir.path().join("b.csv"), "ts,level,msg\n9,warn,z\n");
    // Too short to tell from a copy being written: it waits rotate_wait, then is read whole.
    files.scan(now, false).unwrap();
    assert!(drain(&mut files, now).is_empty());
    let later = now + Duration::from_secs(6);
    files.scan(later, false).unwrap();
    assert_eq!(drain(&mut files, later), ["ts,level,msg", "9,warn,z"]);
    // One long enough to compare is told apart at once.
    let long: String = (0..40).map(|i| format!("{i},info,line {i}\n")).collect();
    append(&dir.path().join("c.csv"), &format!("ts,level,msg\n{long}"));
    files.scan(later, false).unwrap();
    assert_eq!(drain(&mut files, later).len(), 41);
}

#[test]
fn copytruncate_reads_the_lines_it_moved_from_the_copy_however_the_scan_falls() {
    for truncation_seen_first in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let now = Instant::now();
        let mut files = Files::new(opts(&dir.path().join("app.log*")));
        append(&log, "a\nb\n");
        files.scan(now, true).unwrap();
        assert_eq!(drain(&mut files, now), ["a", "b"]);
        // Written, not read yet, then rotated: copied, truncated, written again.
        append(&log, "c\nd\n");
        std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
        if !truncation_seen_first {
            files.scan(now, false).unwrap();
        }
        truncate(&log);
        append(&log, "e\n");
        let mut got = drain(&mut files, now);
        files.scan(now, false).unwrap();
        got.extend(drain(&mut files, now));
        got.sort();
        assert_eq!(
            got,
            ["c", "d", "e"],
            "truncation seen first: {truncation_seen_first}"
        );
    }
}

#[test]
fn a_copy_holding_only_lines_already_read_is_not_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let now = Instant::now();
    let mut files = Files::new(opts(&dir.path().join("app.log*")));
    append(&log, "a\nb\n");
    files.scan(now, true).unwrap();
    drain(&mut files, now);
    // The copy is taken; more lines come and are read from the original before it is
    // truncated, and only then does the scan see the copy (now shorter than what was read).
    std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, "c\n");
    assert_eq!(drain(&mut files, now), ["c"]);
    truncate(&log);
    append(&log, "d\n");
    let mut got = drain(&mut files, now);
    files.scan(now, false).unwrap();
    got.extend(drain(&mut files, now));
    assert_eq!(got, ["d"]);
}

#[test]
fn a_renamed_file_is_read_to_its_end_first_and_released_after_rotate_wait() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let now = Instant::now();
    let mut files = Files::new(opts(&log));
    append(&log, "a\n");
    files.scan(now, true).unwrap();
    drain(&mut files, now);
    append(&log, "b\n");
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, "c\n");
    files.scan(now, false).unwrap();
    assert_eq!(
        drain(&mut files, now),
        ["b", "c"],
        "the old file's rest first"
    );
    files.scan(now + Duration::from_secs(1), false).unwrap();
    assert_eq!(files.marks().0.len(), 2, "kept while it may still grow");
    files.scan(now + Duration::from_secs(6), false).unwrap();
    let (marks, _, _) = files.marks();
    assert_eq!(marks.len(), 1);
    assert_eq!(marks[0].path, log);
}

#[test]
fn after_a_crash_the_durable_count_maps_to_the_offset_past_the_last_durable_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let long = "x".repeat(100);
    append(&log, &format!("one\n{long}\ntwo\nthree\n"));
    for (durable, expect) in [(0, 0), (1, 4), (2, 4 + 101 + 4), (3, 4 + 101 + 4 + 6)] {
        let now = Instant::now();
        let mut before = Files::new(opts(&log));
        before.scan(now, true).unwrap();
        let b = before.next_batch(now).unwrap().unwrap();
        assert_eq!((b.pending.records, b.rejected), (3, 1));
        let p: Pending = b.pending;
        // The crash: a new incarnation starts from the marks the batch was read at.
        let mut files = Files::new(opts(&log));
        files.restore(before.marks().0, Vec::new(), now).unwrap();
        let at = files.resume(&p, durable).unwrap();
        assert_eq!(at.unwrap_or(0), expect, "{durable} durable");
        // The quarantined line before a durable record is not read again; one after the last
        // is (its own durability cannot be told).
        let rest = drain(&mut files, now);
        assert_eq!(
            rest.len() as u64,
            4 - durable - u64::from(durable >= 2),
            "{rest:?}"
        );
    }
}

#[test]
fn a_matching_file_that_cannot_be_read_fails_the_scan_only_when_nothing_else_is_followed() {
    use crate::faults::{arm, disarm, Op};
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    append(&dir.path().join("a.log"), "a\n");
    arm(Op::Open, dir.path(), 0, u32::MAX, nix::libc::EACCES);
    let mut files = Files::new(opts(&dir.path().join("*.log")));
    let e = files.scan(now, true).unwrap_err().to_string();
    assert!(
        e.contains("a.log matches but cannot be read (Permission denied"),
        "{e}"
    );
    assert!(e.contains("give the daemon's user read access"), "{e}");
    disarm(dir.path());
    files.scan(now, false).unwrap();
    assert_eq!(drain(&mut files, now), ["a"]);
    // With one file followed, another unreadable one is a warning, not a failure.
    arm(
        Op::Open,
        &dir.path().join("b.log"),
        0,
        u32::MAX,
        nix::libc::EACCES,
    );
    append(&dir.path().join("b.log"), "b\n");
    files.scan(now, false).unwrap();
    assert!(drain(&mut files, now).is_empty());
    disarm(&dir.path().join("b.log"));
    files.scan(now, false).unwrap();
    assert_eq!(drain(&mut files, now), ["b"]);
}

#[test]
fn a_batch_in_flight_belongs_to_its_lines_even_when_a_copytruncate_came_before_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let now = Instant::now();
    let mut before = Files::new(opts(&dir.path().join("app.log*")));
    append(&log, "a\nb\n");
    before.scan(now, true).unwrap();
    // Read, sent, durable; then the crash, before the checkpoint says so.
    let p = before.next_batch(now).unwrap().unwrap().pending;
    let (marks, ghosts, _) = before.marks();
    drop(before);
    // While down: copytruncate, and new lines in the original's inode.
    std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    truncate(&log);
    append(&log, "c\nd\ne\n");
    let mut files = Files::new(opts(&dir.path().join("app.log*")));
    files.restore(marks, ghosts, now).unwrap();
    // The batch's lines are in the copy now; the original's inode holds other lines.
    let at = files.resume(&p, 2).unwrap();
    assert_eq!(at, Some(4), "resumed in the copy, past the durable lines");
    let mut got = drain(&mut files, now);
    got.sort();
    assert_eq!(got, ["c", "d", "e"], "nothing read twice, nothing skipped");
}

#[test]
fn a_copy_still_being_written_is_read_only_past_what_the_original_gave() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let copy = dir.path().join("app.log.1");
    let now = Instant::now();
    let mut files = Files::new(opts(&dir.path().join("app.log*")));
    append(&log, "a\nb\n");
    files.scan(now, true).unwrap();
    drain(&mut files, now);
    append(&log, "c\n");
    // The scan catches the copy half-written, and the original truncated.
    append(&copy, "a\n");
    truncate(&log);
    files.scan(now, false).unwrap();
    assert!(drain(&mut files, now).is_empty());
    // The copy is finished: only the line the original never gave is read from it.
    append(&copy, "b\nc\n");
    files.scan(now, false).unwrap();
    let got = drain(&mut files, now);
    assert_eq!(got, ["c"]);
}

#[test]
fn a_new_file_holding_only_a_first_line_like_a_followed_ones_waits_rotate_wait_then_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut files = Files::new(opts(&dir.path().join("*.csv")));
    append(&dir.path().join("a.csv"), "ts,level,msg\n1,info,a\n");
    files.scan(now, true).unwrap();
    drain(&mut files, now);
    append(&dir.path().join("b.csv"), "ts,level,msg\n");
    files.scan(now, false).unwrap();
    assert!(
        drain(&mut files, now).is_empty(),
        "a copy being written, or a new file?"
    );
    files.scan(now + Duration::from_secs(6), false).unwrap();
    assert_eq!(
        drain(&mut files, now + Duration::from_secs(6)),
        ["ts,level,msg"]
    );
}

#[test]
fn a_file_rewritten_before_its_first_read_is_known_by_what_it_holds_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let now = Instant::now();
    let mut files = Files::new(opts(&log));
    append(&log, "old\n");
    files.scan(now, false).unwrap();
    // Truncated and rewritten before a line of it was read.
    truncate(&log);
    append(&log, "new1\nnew2\n");
    assert_eq!(drain(&mut files, now), ["new1", "new2"]);
    // After a restart its mark still names it: nothing is read again.
    let (marks, ghosts, _) = files.marks();
    let mut again = Files::new(opts(&log));
    again.restore(marks, ghosts, now).unwrap();
    assert!(drain(&mut again, now).is_empty());
}

#[test]
fn a_new_file_sharing_two_first_lines_with_a_followed_one_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut files = Files::new(opts(&dir.path().join("*.csv")));
    append(
        &dir.path().join("a.csv"),
        "# gen by x\nts,level,msg\n1,info,a\n",
    );
    files.scan(now, true).unwrap();
    assert_eq!(drain(&mut files, now).len(), 3);
    // b.csv is new: its writer put down the same two header lines, then its own.
    append(&dir.path().join("b.csv"), "# gen by x\nts,level,msg\n");
    files.scan(now, false).unwrap();
    append(&dir.path().join("b.csv"), "9,warn,z\n");
    let later = now + Duration::from_secs(60);
    files.scan(later, false).unwrap();
    let got = drain(&mut files, later);
    assert_eq!(got, ["# gen by x", "ts,level,msg", "9,warn,z"]);
}

#[test]
fn a_new_file_like_a_ghost_up_to_a_batch_end_is_read_after_rotate_wait() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let now = Instant::now();
    let mut files = Files::new(opts(&dir.path().join("app.log*")));
    append(&log, "banner\nversion 1\n");
    files.scan(now, true).unwrap();
    drain(&mut files, now); // batch end at the banner's end
    append(&log, "1 a\n2 b\n3 c\n");
    drain(&mut files, now);
    // The app restarts with O_TRUNC: the old content becomes a ghost.
    truncate(&log);
    append(&log, "banner\nversion 1\nx\n");
    let got0 = drain(&mut files, now);
    // Rename rotation; the app opens a new app.log and writes its banner and a line.
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, "banner\nversion 1\nnew\n");
    let mut got = Vec::new();
    for s in [1u64, 10, 100, 1000] {
        let t = now + Duration::from_secs(s);
        files.scan(t, false).unwrap();
        got.extend(drain(&mut files, t));
    }
    assert_eq!(got0, ["banner", "version 1", "x"]);
    assert_eq!(got, ["banner", "version 1", "new"]);
}

#[test]
fn a_crash_between_copy_and_truncate_reads_the_lines_only_the_copy_holds() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let now = Instant::now();
    let mut files = Files::new(opts(&dir.path().join("app.log*")));
    append(&log, "a\nb\n");
    files.scan(now, true).unwrap();
    assert_eq!(drain(&mut files, now), ["a", "b"]);
    append(&log, "c\n");
    // copytruncate's copy is seen, then kill -9 before the truncation is seen.
    std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    files.scan(now, false).unwrap();
    let (marks, ghosts, _) = files.marks();
    drop(files);
    truncate(&log);
    append(&log, "d\n");
    let mut files = Files::new(opts(&dir.path().join("app.log*")));
    files.restore(marks, ghosts, now).unwrap();
    let mut got = Vec::new();
    for s in [0u64, 10, 100] {
        let t = now + Duration::from_secs(s);
        files.scan(t, false).unwrap();
        got.extend(drain(&mut files, t));
    }
    got.sort();
    assert_eq!(got, ["c", "d"]);
}

#[test]
fn an_original_deleted_while_down_leaves_its_copy_reading_on_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let now = Instant::now();
    let mut files = Files::new(opts(&dir.path().join("app.log*")));
    append(&log, "a\nb\n");
    files.scan(now, true).unwrap();
    assert_eq!(drain(&mut files, now), ["a", "b"]);
    append(&log, "c\n");
    std::fs::copy(&log, dir.path().join("app.log.bak")).unwrap();
    files.scan(now, false).unwrap(); // copy found at offset 4
    assert_eq!(drain(&mut files, now), ["c"]); // read from the original
    let (marks, ghosts, _) = files.marks();
    drop(files);
    std::fs::remove_file(&log).unwrap();
    let mut files = Files::new(opts(&dir.path().join("app.log*")));
    files.restore(marks, ghosts, now).unwrap();
    let got = drain(&mut files, now);
    assert!(got.is_empty(), "read again: {got:?}");
}

#[test]
fn a_released_file_that_comes_back_within_reach_is_read_on_not_again() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let link = dir.path().join("current.log");
    let now = Instant::now();
    append(&a, "a1\n");
    append(&dir.path().join("b.log"), "b1\n");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let mut files = Files::new(opts(&link));
    files.scan(now, true).unwrap();
    assert_eq!(drain(&mut files, now), ["a1"]);
    // The link moves to b.log: a.log is out of reach, read to its end and released.
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(dir.path().join("b.log"), &link).unwrap();
    files.scan(now, false).unwrap();
    assert_eq!(drain(&mut files, now), ["b1"]);
    let later = now + Duration::from_secs(6);
    files.scan(later, false).unwrap();
    // Back to a.log, which has grown: only the new line.
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&a, &link).unwrap();
    append(&a, "a2\n");
    let later = later + Duration::from_secs(6);
    files.scan(later, false).unwrap();
    assert_eq!(drain(&mut files, later), ["a2"]);
}

#[test]
fn a_compressed_rotation_matching_the_glob_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    append(&dir.path().join("app.log"), "a\n");
    std::fs::write(
        dir.path().join("app.log.1.gz"),
        [0x1f, 0x8b, 8, 0, 0, 0, b'\n', 1, 2],
    )
    .unwrap();
    let mut files = Files::new(opts(&dir.path().join("app.log*")));
    files.scan(now, true).unwrap();
    assert_eq!(drain(&mut files, now), ["a"]);
    assert_eq!(files.marks().0.len(), 1, "the .gz is not followed");
}
