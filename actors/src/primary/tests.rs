//! The primary store's unit tests: appends and their sync, last ids, repair of torn tails, swapped roots, verify.

use super::*;
use crate::records::StoredRecord;
use serde_json::json;
use std::fs::OpenOptions;

/// Records appended as the sync actor does, from their journal frames.
trait AppendRecords {
    fn append_records(&self, records: &[StoredRecord]) -> io::Result<AppendStats>;
}

impl AppendRecords for Primary {
    fn append_records(&self, records: &[StoredRecord]) -> io::Result<AppendStats> {
        let frames = Frames::of(records).unwrap();
        self.append(&frames, &(0..frames.len()).collect::<Vec<_>>())
    }
}

fn rec(stream: &str, epoch: u64, seq: u64, ts: &str) -> StoredRecord {
    StoredRecord::new(
        epoch,
        seq,
        ts.into(),
        stream.into(),
        "node".into(),
        json!({"n": seq}),
    )
}

/// Records `from..=to` of one stream and epoch, all on one day.
fn recs(stream: &str, epoch: u64, from: u64, to: u64, day: &str) -> Vec<StoredRecord> {
    (from..=to)
        .map(|s| rec(stream, epoch, s, &format!("{day}T10:00:00.000Z")))
        .collect()
}

fn line(r: &StoredRecord) -> String {
    serde_json::to_string(r).unwrap() + "\n"
}

fn lines(rs: &[StoredRecord]) -> String {
    rs.iter().map(line).collect()
}

fn store() -> (tempfile::TempDir, Primary) {
    let dir = tempfile::tempdir().unwrap();
    let p = Primary::new(dir.path().join("primary"));
    fs::create_dir(p.root()).unwrap();
    (dir, p)
}

/// Writes a day file by hand, as a foreign hand or a crash would have left it.
fn put(p: &Primary, stream: &str, day: &str, text: &str) {
    let dir = p.root().join(RAW).join(stream);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(format!("{day}.jsonl")), text).unwrap();
}

fn read(p: &Primary, stream: &str, day: &str) -> String {
    fs::read_to_string(p.root().join(RAW).join(stream).join(format!("{day}.jsonl"))).unwrap()
}

fn kinds(report: &VerifyReport) -> Vec<ProblemKind> {
    report.problems.iter().map(|p| p.kind).collect()
}

/// What the sync actor does: forward only what lies above the primary's last id.
fn forward(p: &Primary, records: &[StoredRecord]) -> AppendStats {
    let last = p.last_ids().unwrap();
    let todo: Vec<StoredRecord> = records
        .iter()
        .filter(|r| match last.get(&r.stream) {
            Some(l) => (r.epoch, r.seq) > *l,
            None => true,
        })
        .cloned()
        .collect();
    p.append_records(&todo).unwrap()
}

#[test]
fn lines_follow_the_spec_layout_and_latest_holds_the_newest() {
    let (_d, p) = store();
    let mut batch = recs("binance/trades", 3, 1, 2, "2026-11-20");
    batch.push(rec("binance/trades", 3, 3, "2026-11-21T00:00:00.001Z"));
    // 09:00 in Tokyo on the 21st is still the 20th in UTC.
    batch.push(rec("tokyo", 1, 1, "2026-11-21T08:00:00+09:00"));
    let stats = p.append_records(&batch).unwrap();
    assert_eq!(stats.items, 4);
    assert_eq!(
        stats.bytes,
        batch.iter().map(|r| line(r).len()).sum::<usize>()
    );
    assert_eq!(read(&p, "binance/trades", "2026-11-20"), lines(&batch[..2]));
    assert!(read(&p, "binance/trades", "2026-11-20").starts_with(
        r#"{"id":"3.1","epoch":3,"seq":1,"ts":"2026-11-20T10:00:00.000Z","stream":"binance/trades","node":"node","data":{"n":1}}"#
    ));
    assert_eq!(read(&p, "binance/trades", "2026-11-21"), line(&batch[2]));
    assert_eq!(read(&p, "tokyo", "2026-11-20"), line(&batch[3]));
    let latest: StoredRecord =
        serde_json::from_slice(&fs::read(p.root().join("latest/binance/trades.json")).unwrap())
            .unwrap();
    assert_eq!(latest, batch[2]);
    assert!(p.root().join("latest/tokyo.json").is_file());
    assert!(p.verify().unwrap().is_clean());
}

#[test]
fn writes_merged_into_one_sync_land_like_appends_and_latest_takes_the_newest() {
    let (_d, p) = store();
    let first = recs("a", 1, 1, 3, "2026-11-21");
    let mut second = recs("a", 1, 4, 5, "2026-11-21");
    second.extend(recs("b", 1, 1, 2, "2026-11-22"));
    let (f1, f2) = (Frames::of(&first).unwrap(), Frames::of(&second).unwrap());
    let mut written = p.write(&f1, &[0, 1, 2]).unwrap();
    // Written, not synced: the lines are there for a reader already, latest/ is not.
    assert_eq!(read(&p, "a", "2026-11-21"), lines(&first));
    assert!(!p.root().join("latest/a.json").exists());
    written.merge(p.write(&f2, &[0, 1, 2, 3]).unwrap());
    assert_eq!(written.stats().items, 7);
    let stats = p.sync(written).unwrap();
    assert_eq!(stats.items, 7);
    assert_eq!(
        read(&p, "a", "2026-11-21"),
        lines(&first) + &lines(&second[..2])
    );
    assert_eq!(read(&p, "b", "2026-11-22"), lines(&second[2..]));
    let latest = |s: &str| -> StoredRecord {
        serde_json::from_slice(&fs::read(p.root().join(format!("latest/{s}.json"))).unwrap())
            .unwrap()
    };
    assert_eq!(latest("a"), second[1]);
    assert_eq!(latest("b"), second[3]);
    assert_eq!(p.last_ids().unwrap()["a"], (1, 5));
    assert!(p.verify().unwrap().is_clean());
}

#[test]
fn a_torn_tail_is_cut_and_the_resent_records_leave_no_duplicate_or_gap() {
    let all = recs("s", 1, 1, 8, "2026-11-21");
    // Two ways a crash can tear the last line: mid-record, and just before its newline.
    for torn in [
        line(&all[3])[..20].to_string(),
        line(&all[3]).trim_end().to_string(),
    ] {
        let (_d, p) = store();
        forward(&p, &all[..3]);
        let path = p.root().join("raw/s/2026-11-21.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(torn.as_bytes()).unwrap();

        assert_eq!(
            p.last_ids().unwrap()["s"],
            (1, 3),
            "a torn line never counts"
        );
        let report = p.verify().unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.streams[0].torn_tail.as_ref().unwrap().line, 4);

        assert_eq!(forward(&p, &all).items, 5);
        assert_eq!(read(&p, "s", "2026-11-21"), lines(&all));
        assert_eq!(p.last_ids().unwrap()["s"], (1, 8));
        let report = p.verify().unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.records, 8);
        assert_eq!(report.streams[0].torn_tail, None);
    }
}

#[test]
fn a_file_with_only_a_torn_line_is_emptied_and_refilled() {
    let (_d, p) = store();
    let all = recs("s", 1, 1, 2, "2026-11-21");
    put(&p, "s", "2026-11-21", &line(&all[0])[..10]);
    assert!(p.last_ids().unwrap().is_empty());
    forward(&p, &all);
    assert_eq!(read(&p, "s", "2026-11-21"), lines(&all));
}

#[test]
fn last_ids_spans_days_nested_streams_and_empty_or_broken_newest_files() {
    let (_d, p) = store();
    let mut batch = recs("a", 1, 1, 3, "2026-11-19");
    batch.extend(recs("a", 1, 4, 5, "2026-11-20"));
    batch.extend(recs("a/b", 2, 1, 3, "2026-11-19"));
    batch.extend(recs("a/b/c", 1, 1, 1, "2026-11-21"));
    p.append_records(&batch).unwrap();
    // A newest file created just before a crash, and one holding only garbage.
    put(&p, "a", "2026-11-21", "");
    put(&p, "a/b", "2026-11-20", "not json\n");
    let last = p.last_ids().unwrap();
    assert_eq!(
        last,
        BTreeMap::from([
            ("a".to_string(), (1, 5)),
            ("a/b".to_string(), (2, 3)),
            ("a/b/c".to_string(), (1, 1)),
        ])
    );
    // A later line that is broken is skipped back over, not taken as the end.
    put(
        &p,
        "a/b/c",
        "2026-11-21",
        &(lines(&recs("a/b/c", 1, 1, 2, "2026-11-21")) + "{\"id\":\n"),
    );
    assert_eq!(p.last_ids().unwrap()["a/b/c"], (1, 2));
}

#[test]
fn last_ids_reads_long_files_from_the_end() {
    let (_d, p) = store();
    // Lines longer than a read chunk, across several chunks.
    let big: Vec<StoredRecord> = (1..=5)
        .map(|s| {
            let mut r = rec("s", 1, s, "2026-11-21T10:00:00Z");
            r.data = json!({"pad": "x".repeat(100_000)});
            r
        })
        .collect();
    p.append_records(&big).unwrap();
    assert_eq!(p.last_ids().unwrap()["s"], (1, 5));
}

#[test]
fn last_ids_of_a_missing_root_is_an_error_and_of_an_empty_store_empty() {
    let (d, _) = store();
    let external = Primary::external(d.path().join("absent"));
    assert_eq!(
        external.last_ids().unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    let p = Primary::new(d.path().join("absent"));
    assert_eq!(p.verify().unwrap_err().kind(), io::ErrorKind::NotFound);
    p.probe().unwrap();
    assert!(p.last_ids().unwrap().is_empty());
    assert!(p.verify().unwrap().is_clean());
}

#[test]
fn a_ts_that_goes_back_across_midnight_stays_in_the_newest_file() {
    let (_d, p) = store();
    let batch = [
        rec("s", 1, 1, "2026-11-20T23:59:59.990Z"),
        rec("s", 1, 2, "2026-11-21T00:00:00.001Z"),
        rec("s", 1, 3, "2026-11-20T23:59:59.999Z"),
        rec("s", 1, 4, "not a time"),
    ];
    p.append_records(&batch[..2]).unwrap();
    p.append_records(&batch[2..]).unwrap();
    assert_eq!(read(&p, "s", "2026-11-20"), line(&batch[0]));
    assert_eq!(read(&p, "s", "2026-11-21"), lines(&batch[1..]));
    assert_eq!(p.last_ids().unwrap()["s"], (1, 4));
    assert!(p.verify().unwrap().is_clean());
}

#[test]
fn filing_by_the_cached_day_agrees_with_parsing_every_ts() {
    use rand::{Rng, SeedableRng};
    let today = OffsetDateTime::now_utc().date();
    let tomorrow = day_file(today.next_day().unwrap()).replace(".jsonl", "");
    let times = [
        "2026-11-20T23:59:59.990Z".to_string(),
        "2026-11-21T00:00:00.001Z".into(),
        "2026-11-21T10:00:00Z".into(),
        "2026-11-21Tgarbage Z".into(),
        "2026-11-21T23:00:00-05:00".into(),
        "2026-11-22T01:00:00+05:00".into(),
        "2026-11-21".into(),
        "garbage".into(),
        "é".into(),
        "2999-01-01T00:00:00Z".into(),
        format!("{tomorrow}T12:00:00Z"),
        format!("{tomorrow}Tbad Z"),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for _ in 0..2000 {
        let start = [
            None,
            Some(Date::from_calendar_date(2026, time::Month::November, 21).unwrap()),
        ][rng.random_range(0..2)];
        let mut cached = StreamDays::new(start);
        let mut newest = start;
        for _ in 0..rng.random_range(1..12) {
            let ts = &times[rng.random_range(0..times.len())];
            let want = file_day(ts, newest, today);
            newest = Some(want);
            assert_eq!(
                cached.file_day(ts.as_bytes(), today),
                want,
                "{ts} after {start:?}"
            );
        }
    }
}

#[test]
fn untrusted_times_go_to_today_for_a_new_stream() {
    let (_d, p) = store();
    let today = day_file(OffsetDateTime::now_utc().date());
    p.append_records(&[
        rec("s", 1, 1, "garbage"),
        rec("s", 1, 2, "2999-01-01T00:00:00Z"),
    ])
    .unwrap();
    let files: Vec<_> = fs::read_dir(p.root().join("raw/s"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, [today]);
}

#[test]
fn append_rejects_streams_that_could_leave_the_root_or_collide() {
    let (d, p) = store();
    for bad in [
        "../x",
        "a/../../x",
        "/x",
        "a/2026-11-21.jsonl",
        "a.json/b",
        "",
    ] {
        let mut batch = recs("ok", 1, 1, 1, "2026-11-21");
        batch.push(rec(bad, 1, 1, "2026-11-21T10:00:00Z"));
        let err = p.append_records(&batch).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
    }
    // Nothing written at all, inside the root (but its marker) or beside it.
    assert_eq!(fs::read_dir(p.root()).unwrap().count(), 1);
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    assert!(storable_stream("a.json"));
    assert!(storable_stream("2026-11-21.jsonl"));
}

#[test]
fn probe_creates_the_root_and_leaves_nothing_behind() {
    let (d, _) = store();
    let p = Primary::new(d.path().join("nas/fushi"));
    p.probe().unwrap();
    p.probe().unwrap();
    assert!(p.root().is_dir());
    let left: Vec<_> = fs::read_dir(p.root())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [MARKER], "only the marker stays");
}

#[test]
fn an_external_store_without_its_marker_is_never_written() {
    let (d, _) = store();
    // An unmounted NAS: the mountpoint is an empty local directory.
    let mountpoint = d.path().join("mnt/nas");
    fs::create_dir_all(&mountpoint).unwrap();
    let p = Primary::external(&mountpoint);
    let err = p.probe().unwrap_err();
    assert!(err.to_string().contains("is the NAS mounted?"), "{err}");
    assert!(p
        .append_records(&[rec("s", 1, 1, "2026-11-21T10:00:00.000Z")])
        .is_err());
    assert!(p.last_ids().is_err());
    assert_eq!(
        fs::read_dir(&mountpoint).unwrap().count(),
        0,
        "nothing written under the mountpoint"
    );
    let absent = Primary::external(d.path().join("absent"));
    assert!(absent.probe().is_err());
    assert!(
        !d.path().join("absent").exists(),
        "an external root is never created"
    );
    p.init().unwrap();
    p.probe().unwrap();
    assert_eq!(
        p.append_records(&[rec("s", 1, 1, "2026-11-21T10:00:00.000Z")])
            .unwrap()
            .items,
        1
    );
}

/// Issue 9, case 3: the marker was checked once by path and everything after went by path,
/// so a NAS unmounted under a batch had the rest of it land in the bare mountpoint. Now one
/// verified handle carries the whole batch, its sync and its `latest/` entries.
#[test]
fn a_store_swapped_under_a_batch_never_gets_its_writes_and_is_another_store_after() {
    let (d, _) = store();
    let mnt = d.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let p = Primary::external(&mnt);
    p.init().unwrap();
    let batch = recs("s", 1, 1, 3, "2026-11-21");
    let frames = Frames::of(&batch).unwrap();
    let written = p.write(&frames, &[0, 1, 2]).unwrap();
    // "Unmounted": the store moves away and an empty directory is left at its path.
    let nas = d.path().join("nas");
    fs::rename(&mnt, &nas).unwrap();
    fs::create_dir(&mnt).unwrap();
    p.sync(written).unwrap();
    assert_eq!(
        fs::read_dir(&mnt).unwrap().count(),
        0,
        "nothing in the mountpoint"
    );
    let on_nas = Primary::external(&nas);
    assert_eq!(on_nas.last_ids().unwrap()["s"], (1, 3));
    assert!(
        nas.join("latest/s.json").is_file(),
        "latest/ went with the batch"
    );
    let err = p.write(&frames, &[0]).unwrap_err();
    assert!(err.to_string().contains("is the NAS mounted?"), "{err}");
    assert!(p.probe().is_err() && p.last_ids().is_err());
    assert_eq!(fs::read_dir(&mnt).unwrap().count(), 0, "still nothing");
    // Mounted again: the same store is the same store.
    fs::remove_dir(&mnt).unwrap();
    fs::rename(&nas, &mnt).unwrap();
    p.probe().unwrap();
    assert_eq!(p.last_ids().unwrap()["s"], (1, 3));
    // Another marked store in its place is refused once, so that its ids are read again.
    let other = d.path().join("other");
    Primary::external(&other).init().unwrap();
    fs::rename(&mnt, &nas).unwrap();
    fs::rename(&other, &mnt).unwrap();
    let err = p.probe().unwrap_err();
    assert!(
        err.to_string().contains("another directory than before"),
        "{err}"
    );
    p.probe().unwrap();
    assert!(p.last_ids().unwrap().is_empty());
}

/// Issue 9, case 2: a frame at or below the primary's last id is only "already sent" when the
/// primary holds that very line; a reused id with other data is a conflict, never skipped.
#[test]
fn not_held_tells_a_resend_from_a_reused_id() {
    let (_d, p) = store();
    let mut on_primary = recs("s", 1, 1, 3, "2026-11-20");
    on_primary.extend(recs("s", 1, 4, 6, "2026-11-21"));
    on_primary.push({
        let mut r = rec("s", 1, 7, "2026-11-21T10:00:00Z");
        r.data = json!({"pad": "y".repeat(3 * CHUNK as usize)});
        r
    });
    p.append_records(&on_primary).unwrap();
    put(
        &p,
        "s",
        "2026-11-21",
        &(lines(&on_primary[3..]) + "{\"id\":\"1.8\""),
    );
    // The same records: a resend after a crash.
    let frames = Frames::of(&on_primary).unwrap();
    let all: Vec<usize> = (0..frames.len()).collect();
    assert!(p.not_held(&frames, &all).unwrap().is_empty());
    // A fresh journal numbering from 1.1 again: other data under ids the primary holds.
    let mut reused = on_primary.clone();
    reused[1].data = json!({"other": true});
    reused[5].data = json!({"other": true});
    let mut t = rec("t", 1, 1, "2026-11-21T10:00:00Z");
    t.data = json!("never forwarded");
    reused.push(t);
    let frames = Frames::of(&reused).unwrap();
    let all: Vec<usize> = (0..frames.len()).collect();
    assert_eq!(p.not_held(&frames, &all).unwrap(), [1, 5, 7]);
    // A record the primary holds under a higher id (moved there by a rehome) is held.
    let mut moved = on_primary[6].clone();
    moved.id = "1.2".into();
    moved.seq = 2;
    let frames = Frames::of(&[moved]).unwrap();
    assert!(p.not_held(&frames, &[0]).unwrap().is_empty());
}

/// A line is held only once durable: the write that put it there may have timed out before
/// its fsync, so the answer "held" fsyncs the files (and their directories) it found it in,
/// and a failing fsync is an error, not "held".
#[test]
fn not_held_makes_what_it_finds_durable_before_calling_it_held() {
    use crate::faults::{self, Op};
    let (d, p) = store();
    let on_primary = recs("s/x", 1, 1, 3, "2026-11-20");
    p.append_records(&on_primary).unwrap();
    let frames = Frames::of(&on_primary).unwrap();
    let file = p.root().join("raw/s/x/2026-11-20.jsonl");
    faults::arm(Op::Fsync, &file, 0, 1, nix::libc::EIO);
    assert!(
        p.not_held(&frames, &[0, 1, 2]).is_err(),
        "a failed fsync is not 'held'"
    );
    let dir = p.root().join("raw/s");
    faults::arm(Op::Fsync, &dir, 0, 1, nix::libc::EIO);
    assert!(
        p.not_held(&frames, &[2]).is_err(),
        "the stream's directories are made durable too"
    );
    faults::disarm(d.path());
    assert!(p.not_held(&frames, &[0, 1, 2]).unwrap().is_empty());
    // Nothing found, nothing to make durable: a missing record is a conflict, no fsync.
    faults::arm(Op::Fsync, &file, 0, u32::MAX, nix::libc::EIO);
    let other = recs("t", 1, 1, 1, "2026-11-20");
    assert_eq!(p.not_held(&Frames::of(&other).unwrap(), &[0]).unwrap(), [0]);
    faults::disarm(d.path());
}

/// Injected failures reach every step of a batch; a failed one leaves no line counted.
#[test]
fn injected_primary_failures_fail_the_operation_they_hit() {
    use crate::faults::{self, Op};
    for (op, what) in [
        (Op::Open, "open"),
        (Op::Write, "write"),
        (Op::Fsync, "fsync"),
        (Op::Rename, "rename"),
        (Op::Marker, "marker"),
    ] {
        let (_d, p) = store();
        let batch = recs("s", 1, 1, 2, "2026-11-21");
        faults::arm(op, p.root(), 0, 1, nix::libc::EIO);
        let r = p.append_records(&batch);
        assert!(r.is_err(), "{what}: {r:?}");
        faults::disarm(p.root());
        forward(&p, &batch);
        assert_eq!(p.last_ids().unwrap()["s"], (1, 2), "{what}");
        assert!(p.verify().unwrap().is_clean(), "{what}");
    }
}

#[test]
fn verify_summarises_clean_streams() {
    let (_d, p) = store();
    let mut batch = recs("a", 1, 1, 3, "2026-11-20");
    batch.extend(recs("a", 1, 4, 4, "2026-11-21"));
    batch.extend(recs("a", 2, 1, 2, "2026-11-21"));
    batch.extend(recs("a/b", 1, 1, 1, "2026-11-21"));
    p.append_records(&batch).unwrap();
    let report = p.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.records, 7);
    assert_eq!(
        report.streams[0],
        StreamSummary {
            stream: "a".into(),
            files: 2,
            records: 6,
            epochs: vec![1, 2],
            writers: vec![
                EpochWriter {
                    epoch: 1,
                    node: "node".into(),
                    records: 4
                },
                EpochWriter {
                    epoch: 2,
                    node: "node".into(),
                    records: 2
                },
            ],
            first_id: Some("1.1".into()),
            last_id: Some("2.2".into()),
            torn_tail: None,
        }
    );
    assert_eq!(report.streams[1].stream, "a/b");
}

#[test]
fn verify_finds_gaps_in_and_before_an_epoch_and_across_files() {
    let (_d, p) = store();
    let mut one = recs("s", 1, 1, 2, "2026-11-20");
    one.extend(recs("s", 1, 5, 5, "2026-11-20"));
    put(&p, "s", "2026-11-20", &lines(&one));
    let mut two = recs("s", 1, 7, 7, "2026-11-21");
    two.extend(recs("s", 2, 3, 4, "2026-11-21"));
    put(&p, "s", "2026-11-21", &lines(&two));
    let report = p.verify().unwrap();
    let gaps: Vec<_> = report
        .problems
        .iter()
        .map(|p| (p.kind, p.file.as_str(), p.line, p.count))
        .collect();
    assert_eq!(
        gaps,
        [
            (ProblemKind::Gap, "raw/s/2026-11-20.jsonl", 3, 2),
            (ProblemKind::Gap, "raw/s/2026-11-21.jsonl", 1, 1),
            (ProblemKind::Gap, "raw/s/2026-11-21.jsonl", 2, 2),
        ]
    );
    assert_eq!(
        report.problems[0].message,
        "epoch 1: seqs 3..4 missing (2 records) between 1.2 (raw/s/2026-11-20.jsonl:2) and 1.5"
    );
    assert!(report.problems[2].message.contains("seqs 1..2 missing"));
    assert!(report.problems[2].message.contains("before 2.3"));
}

#[test]
fn verify_finds_duplicates_and_reports_a_resent_run_once() {
    let (_d, p) = store();
    let all = recs("s", 1, 1, 6, "2026-11-21");
    let mut text = lines(&all[..4]);
    text += &lines(&all[1..4]); // a batch sent twice
    text += &lines(&all[4..]);
    text += &line(&all[0]); // and a lone old one
    put(&p, "s", "2026-11-21", &text);
    let report = p.verify().unwrap();
    assert_eq!(
        kinds(&report),
        [ProblemKind::Duplicate, ProblemKind::Duplicate]
    );
    let (a, b) = (&report.problems[0], &report.problems[1]);
    assert_eq!((a.line, a.count), (5, 3));
    assert_eq!(a.message, "ids 1.2..1.4 (3 records) seen before");
    assert_eq!((b.line, b.count), (10, 1));
    assert_eq!(b.message, "id 1.1 seen before");
}

/// A seq that goes backwards within its epoch is out of order; an epoch lower than an earlier
/// line's is not (a fenced leader's late records follow the new leader's).
#[test]
fn verify_finds_out_of_order_seqs_but_not_a_lower_epoch() {
    let (_d, p) = store();
    let r = |e, s| rec("s", e, s, "2026-11-21T10:00:00Z");
    let text = lines(&[
        r(1, 1),
        r(1, 3),
        r(1, 2),
        r(1, 4),
        r(2, 1),
        r(1, 5),
        r(2, 2),
    ]);
    put(&p, "s", "2026-11-21", &text);
    let report = p.verify().unwrap();
    assert_eq!(kinds(&report), [ProblemKind::OutOfOrder]);
    assert_eq!(report.problems[0].line, 3);
    assert_eq!(
        report.problems[0].message,
        "id 1.2 after 1.3 (the seq goes backwards)"
    );
}

#[test]
fn verify_finds_unparseable_mismatched_and_torn_lines() {
    let (_d, p) = store();
    let all = recs("s", 1, 1, 4, "2026-11-20");
    let mut wrong_id = all[1].clone();
    wrong_id.id = "1.9".into();
    let mut wrong_stream = all[2].clone();
    wrong_stream.stream = "t".into();
    let text = line(&all[0])
        + "garbage\n\n"
        + &line(&wrong_id)
        + &line(&wrong_stream)
        + &line(&all[3])[..15];
    put(&p, "s", "2026-11-20", &text);
    put(
        &p,
        "s",
        "2026-11-21",
        &lines(&recs("s", 1, 5, 5, "2026-11-21")),
    );
    let report = p.verify().unwrap();
    let found: Vec<_> = report
        .problems
        .iter()
        .map(|p| (p.kind, p.line, p.count))
        .collect();
    assert_eq!(
        found,
        [
            (ProblemKind::Unparseable, 2, 2),
            (ProblemKind::Mismatch, 4, 1),
            (ProblemKind::Mismatch, 5, 1),
            (ProblemKind::Torn, 6, 1),
            // The torn record 1.4 never made it: a gap too.
            (ProblemKind::Gap, 1, 1),
        ]
    );
    assert!(report.problems[0].message.starts_with("not a record: "));
    assert!(report.problems[0].message.ends_with("(and the next line)"));
    assert_eq!(
        report.problems[1].message,
        "id \"1.9\" does not match epoch 1 and seq 2"
    );
    assert_eq!(report.problems[2].message, "record 1.3 says stream \"t\"");
    assert!(report.problems[4]
        .message
        .contains("seq 4 missing (1 record)"));
    assert_eq!(report.problems[4].file, "raw/s/2026-11-21.jsonl");
}

#[test]
fn report_serialises_for_json_output() {
    let (_d, p) = store();
    put(
        &p,
        "s",
        "2026-11-21",
        &lines(&recs("s", 1, 2, 2, "2026-11-21")),
    );
    let v = serde_json::to_value(p.verify().unwrap()).unwrap();
    assert_eq!(v["records"], 1);
    assert_eq!(v["streams"][0]["epochs"], json!([1]));
    assert_eq!(v["problems"][0]["kind"], "gap");
    assert_eq!(v["problems"][0]["file"], "raw/s/2026-11-21.jsonl");
    assert!(v["streams"][0].get("torn_tail").is_none());
}

/// A record of `node`'s.
fn rec_by(node: &str, stream: &str, epoch: u64, seq: u64, day: &str) -> StoredRecord {
    let mut r = rec(stream, epoch, seq, &format!("{day}T10:00:00.000Z"));
    r.node = node.into();
    r
}

/// The store `p` as forwarded for `node`, with nothing cached: what a node's sync actor opens.
fn as_node(p: &Primary, node: &str) -> Primary {
    Primary::new(p.root()).for_node(node)
}

fn hint_of(p: &Primary, node: &str) -> Option<serde_json::Value> {
    let path = p.root().join(hint::NODES).join(hint::file_name(node));
    fs::read(path)
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap())
}

/// Leader election: node a led epoch 1, node b leads epoch 2, and a, fenced, still forwards its
/// late epoch-1 records after b's, into the same day files. Each node's last ids are its own
/// last lines', whatever the other wrote after them; a node that never wrote a stream has no id
/// there; and the store verifies clean.
#[test]
fn each_node_reads_back_its_own_last_ids_from_interleaved_lines() {
    let (_d, p) = store();
    let (a, b) = (as_node(&p, "a"), as_node(&p, "b"));
    a.append_records(&[
        rec_by("a", "s", 1, 1, "2026-11-20"),
        rec_by("a", "s", 1, 2, "2026-11-20"),
    ])
    .unwrap();
    b.append_records(&[
        rec_by("b", "s", 2, 1, "2026-11-21"),
        rec_by("b", "t", 2, 1, "2026-11-21"),
    ])
    .unwrap();
    // a's late records carry an older ts; they join the stream's newest file all the same.
    a.append_records(&[
        rec_by("a", "s", 1, 3, "2026-11-20"),
        rec_by("a", "s", 1, 4, "2026-11-20"),
    ])
    .unwrap();
    b.append_records(&[rec_by("b", "s", 2, 2, "2026-11-21")])
        .unwrap();
    let text = read(&p, "s", "2026-11-21");
    let ids: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<StoredRecord>(l).unwrap().id)
        .collect();
    assert_eq!(ids, ["2.1", "1.3", "1.4", "2.2"], "interleaved in one file");

    for (node, want) in [
        ("a", BTreeMap::from([("s".to_string(), (1, 4))])),
        (
            "b",
            BTreeMap::from([("s".to_string(), (2, 2)), ("t".to_string(), (2, 1))]),
        ),
        ("c", BTreeMap::new()),
    ] {
        assert_eq!(as_node(&p, node).last_ids().unwrap(), want, "node {node}");
        // And the same from a process that already holds the hint in memory.
        let warm = as_node(&p, node);
        warm.last_ids().unwrap();
        assert_eq!(warm.last_ids().unwrap(), want, "node {node}, warm");
    }
    // Read as one writer (no node), the newest line is the stream's last id, as before.
    assert_eq!(p.last_ids().unwrap()["s"], (2, 2));
    let report = p.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    let s = &report.streams[0];
    assert_eq!(s.epochs, [1, 2]);
    assert_eq!(
        s.writers,
        [
            EpochWriter {
                epoch: 1,
                node: "a".into(),
                records: 4
            },
            EpochWriter {
                epoch: 2,
                node: "b".into(),
                records: 2
            }
        ]
    );
}

/// Forwarding as each node's sync actor does, a resend after a crash included: with the old
/// "newest line is the stream's last id", a's late 1.3 would compare below b's 2.1 and be
/// skipped for good; per node nothing is skipped and nothing is sent twice.
#[test]
fn two_nodes_forwarding_one_stream_lose_and_duplicate_nothing() {
    let (_d, p) = store();
    let (a, b) = (as_node(&p, "a"), as_node(&p, "b"));
    let a_all: Vec<_> = (1..=4)
        .map(|s| rec_by("a", "s", 1, s, "2026-11-21"))
        .collect();
    let b_all: Vec<_> = (1..=3)
        .map(|s| rec_by("b", "s", 2, s, "2026-11-21"))
        .collect();
    forward(&a, &a_all[..2]);
    forward(&b, &b_all[..2]);
    forward(&a, &a_all); // 1.1 and 1.2 again, after a crash: only 1.3 and 1.4 go
    forward(&b, &b_all);
    forward(&a, &a_all);
    let report = p.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.records, 7);
    // Everything each node skipped is held, as it is.
    for (node, recs) in [(&a, &a_all), (&b, &b_all)] {
        let frames = Frames::of(recs).unwrap();
        let all: Vec<usize> = (0..frames.len()).collect();
        assert!(node.not_held(&frames, &all).unwrap().is_empty());
    }
}

/// `not_held` reads back over our lines only: another node's lower ids after ours (a fenced
/// leader's late records) do not end the scan, and ours below the lowest asked for do.
#[test]
fn not_held_passes_over_other_nodes_lines_and_stops_at_our_own() {
    use crate::faults::{self, Op};
    let (d, p) = store();
    // b led epoch 1 on the 20th; a leads epoch 2 from the 21st, b's late records in between.
    put(
        &p,
        "s",
        "2026-11-20",
        &lines(&[
            rec_by("b", "s", 1, 1, "2026-11-20"),
            rec_by("b", "s", 1, 2, "2026-11-20"),
        ]),
    );
    let a_recs = [
        rec_by("a", "s", 2, 1, "2026-11-21"),
        rec_by("a", "s", 2, 2, "2026-11-21"),
    ];
    let b_late = [
        rec_by("b", "s", 1, 3, "2026-11-21"),
        rec_by("b", "s", 1, 4, "2026-11-21"),
    ];
    put(
        &p,
        "s",
        "2026-11-21",
        &lines(&[
            a_recs[0].clone(),
            b_late[0].clone(),
            a_recs[1].clone(),
            b_late[1].clone(),
        ]),
    );
    let (a, b) = (as_node(&p, "a"), as_node(&p, "b"));
    // Opening the older file fails: a scan that reaches it is an error, not an answer.
    let older = p.root().join("raw/s/2026-11-20.jsonl");
    faults::arm(Op::Open, &older, 0, u32::MAX, nix::libc::EIO);
    let frames = Frames::of(&a_recs).unwrap();
    assert!(
        a.not_held(&frames, &[0, 1]).unwrap().is_empty(),
        "b's 1.4 after a's 2.2 is no stop: both of a's are found"
    );
    // Another record under a's 2.2: a conflict, found without reading the older file, since
    // a's 2.1 below it ends the scan.
    let mut reused = a_recs[1].clone();
    reused.data = json!({"other": true});
    assert_eq!(
        a.not_held(&Frames::of(&[reused]).unwrap(), &[0]).unwrap(),
        [0]
    );
    let frames = Frames::of(&b_late).unwrap();
    assert!(b.not_held(&frames, &[0, 1]).unwrap().is_empty());
    // b's 1.2 is in the older file: the scan goes there (and fails while it cannot open it).
    let b_old = [rec_by("b", "s", 1, 2, "2026-11-20")];
    let frames = Frames::of(&b_old).unwrap();
    assert!(
        b.not_held(&frames, &[0]).is_err(),
        "the scan reached the older file"
    );
    faults::disarm(d.path());
    assert!(b.not_held(&frames, &[0]).unwrap().is_empty());
    // a's record is never held as b's, nor b's as a's: a line is matched with its node.
    assert_eq!(a.not_held(&frames, &[0]).unwrap(), [0]);
}

/// The hint bounds the scan: a node absent from a stream's hint never opens its files, however
/// many (an armed fault on opening them proves it: it fails every reader that tries, and a node
/// that did write there does).
#[test]
fn a_node_absent_from_a_streams_hint_never_reads_that_stream() {
    use crate::faults::{self, Op};
    let (d, p) = store();
    let (a, b) = (as_node(&p, "a"), as_node(&p, "b"));
    for (i, day) in ["2026-11-18", "2026-11-19", "2026-11-20"]
        .iter()
        .enumerate()
    {
        let from = i as u64 * 100 + 1;
        let big: Vec<_> = (from..from + 100)
            .map(|s| rec_by("a", "big", 1, s, day))
            .collect();
        a.append_records(&big).unwrap();
    }
    b.append_records(&[rec_by("b", "small", 1, 1, "2026-11-20")])
        .unwrap();
    assert_eq!(
        hint_of(&p, "a").unwrap()["streams"],
        json!({"big": "2026-11-20"})
    );
    assert_eq!(
        hint_of(&p, "b").unwrap()["streams"],
        json!({"small": "2026-11-20"})
    );
    faults::arm(
        Op::Open,
        &p.root().join("raw/big"),
        0,
        u32::MAX,
        nix::libc::EIO,
    );
    assert_eq!(
        as_node(&p, "b").last_ids().unwrap(),
        BTreeMap::from([("small".to_string(), (1, 1))])
    );
    assert!(
        as_node(&p, "a").last_ids().is_err(),
        "the fault bites a reader of big"
    );
    faults::disarm(d.path());
    assert_eq!(as_node(&p, "a").last_ids().unwrap()["big"], (1, 300));
}

/// Without a hint (a store written before hints, or a node's first run on it) every stream is
/// read once, and the hint is written from what was found: the next start is bounded. A hint
/// that does not parse counts as none. A write with no hint yet keeps what was found too.
#[test]
fn without_a_hint_every_stream_is_read_once_and_the_hint_written() {
    use crate::faults::{self, Op};
    let (d, p) = store();
    put(
        &p,
        "old",
        "2026-11-19",
        &lines(&[rec_by("a", "old", 1, 7, "2026-11-19")]),
    );
    put(
        &p,
        "theirs",
        "2026-11-19",
        &lines(&[rec_by("b", "theirs", 1, 1, "2026-11-19")]),
    );
    // A first start reads "theirs" too: failing to open it fails the start.
    let theirs = p.root().join("raw/theirs");
    faults::arm(Op::Open, &theirs, 0, u32::MAX, nix::libc::EIO);
    assert!(as_node(&p, "a").last_ids().is_err());
    assert!(hint_of(&p, "a").is_none(), "no hint from a failed scan");
    faults::disarm(d.path());
    assert_eq!(
        as_node(&p, "a").last_ids().unwrap(),
        BTreeMap::from([("old".to_string(), (1, 7))])
    );
    assert_eq!(
        hint_of(&p, "a").unwrap(),
        json!({"node": "a", "streams": {"old": "2026-11-19"}})
    );
    // The next start does not read "theirs" any more.
    faults::arm(Op::Open, &theirs, 0, u32::MAX, nix::libc::EIO);
    assert_eq!(as_node(&p, "a").last_ids().unwrap()["old"], (1, 7));
    // A node with no line anywhere gets an empty hint, and reads nothing the next time.
    faults::disarm(d.path());
    assert!(as_node(&p, "c").last_ids().unwrap().is_empty());
    assert_eq!(hint_of(&p, "c").unwrap()["streams"], json!({}));
    faults::arm(Op::Open, &p.root().join(RAW), 0, u32::MAX, nix::libc::EIO);
    assert!(as_node(&p, "c").last_ids().unwrap().is_empty());
    faults::disarm(d.path());
    // A garbled hint is no hint: everything is read again, and the hint rewritten.
    let hint_path = p.root().join("nodes/a.json");
    fs::write(&hint_path, "{garbage").unwrap();
    assert_eq!(as_node(&p, "a").last_ids().unwrap()["old"], (1, 7));
    assert_eq!(
        hint_of(&p, "a").unwrap()["streams"],
        json!({"old": "2026-11-19"})
    );
    // A write before any last_ids, on a store without a hint: what was there is kept.
    fs::remove_file(&hint_path).unwrap();
    as_node(&p, "a")
        .append_records(&[rec_by("a", "new", 1, 1, "2026-11-21")])
        .unwrap();
    assert_eq!(
        hint_of(&p, "a").unwrap()["streams"],
        json!({"new": "2026-11-21", "old": "2026-11-19"})
    );
}

/// The hint is an intent, recorded before the lines: a crash after it and before the append
/// leaves a hint that holds more than the truth, and the ids read back are still right (the
/// scan goes on past the hint's day when nothing of ours is there). A hint that cannot be
/// written stops the write before any line.
#[test]
fn the_hint_is_written_before_the_lines_it_announces() {
    use crate::faults::{self, Op};
    let (d, p) = store();
    let a = as_node(&p, "a");
    a.append_records(&[rec_by("a", "s", 1, 1, "2026-11-20")])
        .unwrap();
    // The append to the 22nd is cut off after the hint went out: a crash in between.
    let day = p.root().join("raw/s/2026-11-22.jsonl");
    faults::arm(Op::Open, &day, 0, u32::MAX, nix::libc::EIO);
    let fresh = p.root().join("raw/fresh");
    faults::arm(Op::Open, &fresh, 0, u32::MAX, nix::libc::EIO);
    assert!(a
        .append_records(&[
            rec_by("a", "s", 1, 2, "2026-11-22"),
            rec_by("a", "fresh", 1, 1, "2026-11-22")
        ])
        .is_err());
    faults::disarm(d.path());
    assert!(!day.exists() && !fresh.exists(), "no line landed");
    assert_eq!(
        hint_of(&p, "a").unwrap()["streams"],
        json!({"fresh": "2026-11-22", "s": "2026-11-22"}),
        "the intent was recorded first"
    );
    // Another node writes a newer day meanwhile.
    as_node(&p, "b")
        .append_records(&[rec_by("b", "s", 2, 1, "2026-11-23")])
        .unwrap();
    assert_eq!(
        as_node(&p, "a").last_ids().unwrap(),
        BTreeMap::from([("s".to_string(), (1, 1))])
    );
    // A hint that cannot be replaced: nothing is appended.
    faults::arm(
        Op::Rename,
        &p.root().join("nodes"),
        0,
        u32::MAX,
        nix::libc::EIO,
    );
    let err = a.append_records(&[rec_by("a", "other", 1, 1, "2026-11-23")]);
    assert!(err.is_err());
    faults::disarm(d.path());
    assert!(!p.root().join("raw/other").exists());
    // Once it can, the write goes through, and the next batch to the same day costs no hint write.
    a.append_records(&[rec_by("a", "other", 1, 1, "2026-11-23")])
        .unwrap();
    faults::arm(
        Op::Rename,
        &p.root().join("nodes"),
        0,
        u32::MAX,
        nix::libc::EIO,
    );
    a.append_records(&[rec_by("a", "other", 1, 2, "2026-11-23")])
        .unwrap();
    faults::disarm(d.path());
    assert_eq!(as_node(&p, "a").last_ids().unwrap()["other"], (1, 2));
}

#[test]
fn verify_takes_two_nodes_interleaved_by_epoch_as_clean_and_finds_what_is_wrong() {
    let (_d, p) = store();
    let (a, b) = (
        |e, s| rec_by("a", "s", e, s, "2026-11-21"),
        |e, s| rec_by("b", "s", e, s, "2026-11-21"),
    );
    let clean = lines(&[
        a(1, 1),
        a(1, 2),
        b(2, 1),
        a(1, 3),
        b(2, 2),
        a(1, 4),
        b(2, 3),
    ]);
    put(&p, "s", "2026-11-21", &clean);
    let report = p.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    // A gap in a's epoch among b's lines, a duplicate of b's, and a writing in b's epoch.
    let bad = lines(&[
        a(1, 1),
        b(2, 1),
        a(1, 3),
        b(2, 2),
        b(2, 2),
        a(2, 3),
        a(2, 4),
        b(2, 3),
    ]);
    put(&p, "s", "2026-11-21", &bad);
    let report = p.verify().unwrap();
    let found: Vec<_> = report
        .problems
        .iter()
        .map(|p| (p.kind, p.file.as_str(), p.line, p.count))
        .collect();
    let file = "raw/s/2026-11-21.jsonl";
    assert_eq!(
        found,
        [
            (ProblemKind::Gap, file, 3, 1),
            (ProblemKind::Duplicate, file, 5, 1),
            (ProblemKind::TwoWriters, file, 6, 2),
        ],
        "{report:#?}"
    );
    assert_eq!(
        report.problems[0].message,
        "epoch 1: seq 2 missing (1 record) between 1.1 (raw/s/2026-11-21.jsonl:1) and 1.3"
    );
    assert_eq!(report.problems[1].message, "id 2.2 seen before");
    assert_eq!(
        report.problems[2].message,
        "ids 2.3..2.4 (2 records) from node \"a\" in epoch 2, whose first record here is node \"b\"'s (raw/s/2026-11-21.jsonl:2): two writers in one epoch"
    );
    let v = serde_json::to_value(&report).unwrap();
    assert_eq!(v["problems"][2]["kind"], "two_writers");
    assert_eq!(
        v["streams"][0]["writers"][1],
        json!({"epoch": 2, "node": "b", "records": 3})
    );
}
