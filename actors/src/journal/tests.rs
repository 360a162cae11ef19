//! The journal's unit tests: ids, torn and corrupt frames, rotation and release, failed writes and fsyncs, rehoming.

use super::read::READ_MIN;
use super::*;
use serde_json::json;

fn pending(stream: &str, i: u64) -> Record {
    Record {
        stream: stream.into(),
        ts: "2026-11-21T10:00:00.000Z".into(),
        data: json!({ "i": i }),
    }
}

fn open(dir: &Path) -> (Journal, Recovery) {
    Journal::open(dir, 1 << 20, Duration::from_secs(1)).unwrap()
}

fn all(j: &Journal) -> Vec<StoredRecord> {
    let (frames, _) = read(j.dir(), j.start(), j.end(), usize::MAX, usize::MAX).unwrap();
    assert_eq!(frames.len() as u64, j.records());
    frames.records()
}

#[test]
fn a_frame_carries_the_primary_line_of_its_record() {
    let rec = StoredRecord::new(
        3,
        1042,
        "2026-11-21T10:00:00.123Z \"\\\u{1}é".into(),
        "binance/trades".into(),
        "pc \"x\"".into(),
        json!({"p": [1, 2.5, null, -7], "s": "\n\u{2028}", "o": {}}),
    );
    let frame = encode_frame(&rec).unwrap();
    let (view, n) = decode_frame(&frame).unwrap();
    assert_eq!(n, frame.len());
    let mut want = serde_json::to_vec(&rec).unwrap();
    want.push(b'\n');
    assert_eq!(
        String::from_utf8_lossy(view.line),
        String::from_utf8_lossy(&want)
    );
    assert_eq!(view.json(), &want[..want.len() - 1]);
    assert_eq!(
        (view.epoch, view.seq, view.stream, view.ts),
        (3, 1042, "binance/trades", rec.ts.as_str())
    );
    assert_eq!(view.record().unwrap(), rec);
}

#[test]
fn ids_are_gap_free_per_stream_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = open(dir.path());
    let got = j
        .append(1, "n", &[pending("a", 0), pending("b", 0), pending("a", 1)])
        .unwrap();
    let ids: Vec<_> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["1.1", "1.1", "1.2"]);
    drop(j);
    let (mut j, rec) = open(dir.path());
    assert_eq!(rec.records, 3);
    let got = j.append(1, "n", &[pending("a", 2)]).unwrap();
    assert_eq!(got[0].id, "1.3");
    let got = j.append(2, "n", &[pending("a", 3)]).unwrap();
    assert_eq!(got[0].id, "2.1", "a new epoch starts at 1");
    assert_eq!(all(&j).len(), 5);
}

#[test]
fn a_torn_last_frame_is_truncated_at_every_byte_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = open(dir.path());
    j.append(1, "n", &[pending("a", 0), pending("a", 1)])
        .unwrap();
    let path = segment_path(dir.path(), 1);
    drop(j);
    let full = fs::read(&path).unwrap();
    let first_len = decode_frame(&full).unwrap().1;
    for cut in first_len..full.len() {
        fs::write(&path, &full[..cut]).unwrap();
        let (j, rec) = open(dir.path());
        assert_eq!(rec.records, 1, "cut at {cut}");
        assert_eq!(
            rec.truncated.len(),
            usize::from(cut > first_len),
            "cut at {cut}"
        );
        assert_eq!(fs::metadata(&path).unwrap().len(), first_len as u64);
        assert_eq!(all(&j).len(), 1);
    }
}

#[test]
fn a_corrupt_frame_is_quarantined_and_every_frame_after_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = open(dir.path());
    let pend: Vec<_> = (0..10).map(|i| pending("a", i)).collect();
    j.append(1, "n", &pend).unwrap();
    drop(j);
    let path = segment_path(dir.path(), 1);
    let mut bytes = fs::read(&path).unwrap();
    let flen = decode_frame(&bytes).unwrap().1;
    bytes[3 * flen + 20] ^= 0x40; // a bit flip inside the 4th frame
    fs::write(&path, &bytes).unwrap();
    let (mut j, rec) = open(dir.path());
    assert_eq!(rec.records, 9);
    assert_eq!(rec.quarantined.len(), 1);
    assert_eq!(rec.quarantined[0].2, flen as u64);
    let seqs: Vec<u64> = all(&j).iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 5, 6, 7, 8, 9, 10]);
    // The damage is gone from the segment: a second open finds nothing to do.
    drop(j);
    let (_, rec) = open(dir.path());
    assert!(rec.quarantined.is_empty() && rec.truncated.is_empty());
    j = open(dir.path()).0;
    assert_eq!(j.append(1, "n", &[pending("a", 11)]).unwrap()[0].seq, 11);
}

#[test]
fn empty_and_zero_filled_segments_recover() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(segment_path(dir.path(), 1), b"").unwrap();
    fs::write(segment_path(dir.path(), 2), vec![0u8; 4096]).unwrap();
    let (mut j, rec) = open(dir.path());
    assert_eq!(rec.records, 0);
    assert_eq!(rec.truncated.len(), 1);
    // The empty segment before the last is removed, and reported for storage to audit.
    assert_eq!(rec.removed, [segment_path(dir.path(), 1)]);
    assert_eq!(j.append(1, "n", &[pending("a", 0)]).unwrap()[0].seq, 1);
    assert_eq!(all(&j).len(), 1);
}

#[test]
fn random_bit_flips_never_crash_and_never_lose_an_undamaged_frame() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..200 {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = open(dir.path());
        let pend: Vec<_> = (0..20).map(|i| pending("s", i)).collect();
        j.append(1, "n", &pend).unwrap();
        drop(j);
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        let frames: Vec<(usize, usize)> = {
            let mut v = Vec::new();
            let mut off = 0;
            while let Some((_, n)) = decode_frame(&bytes[off..]) {
                v.push((off, n));
                off += n;
            }
            v
        };
        let flips = rng.random_range(1..4);
        let mut hit = std::collections::BTreeSet::new();
        for _ in 0..flips {
            let at = rng.random_range(0..bytes.len());
            bytes[at] ^= 1 << rng.random_range(0..8);
            hit.insert(
                frames
                    .iter()
                    .position(|&(o, n)| at >= o && at < o + n)
                    .unwrap(),
            );
        }
        fs::write(&path, &bytes).unwrap();
        let (j, _) = open(dir.path());
        let seqs: Vec<u64> = all(&j).iter().map(|r| r.seq).collect();
        let want: Vec<u64> = (0..20)
            .filter(|i| !hit.contains(&(*i as usize)))
            .map(|i| i + 1)
            .collect();
        // A flip can turn a frame into garbage but never invent one: every untouched frame survives.
        for w in &want {
            assert!(
                seqs.contains(w),
                "round {round}: lost seq {w}; got {seqs:?}"
            );
        }
    }
}

#[test]
fn segments_rotate_and_forwarded_ones_are_released() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), 100, Duration::from_secs(1)).unwrap();
    for i in 0..10 {
        j.append(1, "n", &[pending("a", i)]).unwrap();
    }
    assert!(j.segments.len() > 3);
    let end = j.end();
    let (recs, pos) = read(dir.path(), j.start(), end, usize::MAX, usize::MAX).unwrap();
    assert_eq!(recs.len(), 10);
    assert_eq!(pos, end);
    let before = j.bytes();
    let freed = j.release_before(end.segment).unwrap();
    assert!(freed > 0 && j.bytes() == before - freed);
    assert_eq!(j.segments.len(), 1);
    drop(j);
    let (mut j, rec) = open(dir.path());
    assert_eq!(rec.records, 0);
    j.seed_last_ids(&BTreeMap::from([("a".to_string(), (1, 10))]));
    assert_eq!(j.append(1, "n", &[pending("a", 10)]).unwrap()[0].seq, 11);
}

#[test]
fn reading_in_small_batches_sees_every_frame_once_across_reads_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), 256 << 10, Duration::from_secs(1)).unwrap();
    // Frames larger than the first read, and many small ones, over several segments.
    let big = "y".repeat(READ_MIN * 3);
    let mut want = Vec::new();
    for i in 0..3000u64 {
        let mut p = pending(["a", "b"][i as usize % 2], i);
        if i % 500 == 7 {
            p.data = json!({ "i": i, "big": big });
        }
        want.extend(j.append(1, "n", [&p]).unwrap());
    }
    assert!(j.segments.len() > 2);
    let end = j.end();
    let limits = [1, 7, 1000, usize::MAX]
        .map(|n| (n, usize::MAX))
        .into_iter()
        .chain([1, 4096, READ_MIN + 1, 1 << 20].map(|b| (usize::MAX, b)));
    for (batch, bytes) in limits {
        let (mut got, mut pos) = (Vec::new(), j.start());
        while pos < end {
            let (frames, next) = read(dir.path(), pos, end, batch, bytes).unwrap();
            assert!(!frames.is_empty() && frames.len() <= batch, "batch {batch}");
            let size = frames.size();
            let last = frames.locs.last().map_or(0, |l| l.size);
            assert!(
                size - last < bytes,
                "{size} bytes read for a limit of {bytes}"
            );
            assert_eq!(frames.after(frames.len() - 1), next);
            assert!(next > pos);
            got.extend(frames.records());
            pos = next;
        }
        assert_eq!(pos, end);
        assert_eq!(got, want, "batch {batch}, bytes {bytes}");
    }
}

/// Issue 9, case 1: with the data dir out of inodes at a rotation, segment n+1 used to be
/// registered before its open succeeded, so appends went on into file n under n+1's name
/// and the next release deleted file n with every record in it.
#[test]
fn a_failed_segment_open_at_rotation_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), 100, Duration::from_secs(1)).unwrap();
    faults::arm(faults::Op::Open, dir.path(), 0, u32::MAX, nix::libc::ENOSPC);
    let mut acked = Vec::new();
    for i in 0..10 {
        acked.extend(j.append(1, "n", &[pending("a", i)]).unwrap());
    }
    assert!(
        j.rotate_error().unwrap().contains("No space"),
        "{:?}",
        j.rotate_error()
    );
    assert!(j.rotate().is_err());
    assert_eq!(
        j.segments.len(),
        1,
        "no segment counts before its file exists"
    );
    // Everything is forwarded: a release deletes the closed segments, and there are none.
    assert_eq!(j.release_before(j.end().segment + 1).unwrap(), 0);
    assert_eq!(all(&j), acked);
    faults::disarm(dir.path());
    acked.extend(j.append(1, "n", &[pending("a", 10)]).unwrap());
    assert_eq!(j.rotate_error(), None, "the next group rotates");
    assert_eq!(j.segments.len(), 2);
    assert_eq!(all(&j), acked);
    drop(j);
    let (j, rec) = open(dir.path());
    assert_eq!(rec.records, 11);
    assert_eq!(all(&j), acked);
}

/// After a failed fsync the segment is never written again; while no new one can be opened
/// nothing is acknowledged, and the ids of the failed groups are not consumed.
#[test]
fn after_a_failed_fsync_nothing_is_acknowledged_until_a_new_segment_opens() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = open(dir.path());
    let mut acked = j.append(1, "n", &[pending("a", 0)]).unwrap();
    let first = segment_path(dir.path(), 1);
    faults::arm(faults::Op::Fsync, &first, 0, 1, nix::libc::EIO);
    faults::arm(faults::Op::Open, dir.path(), 0, u32::MAX, nix::libc::EMFILE);
    let err = j.append(1, "n", &[pending("a", 1)]).unwrap_err();
    assert!(err.to_string().contains("fsyncing"), "{err}");
    assert!(j.poisoned());
    for _ in 0..3 {
        let err = j.append(1, "n", &[pending("a", 1)]).unwrap_err();
        assert!(err.to_string().contains("opening"), "{err}");
    }
    assert_eq!(fs::metadata(&first).unwrap().len(), j.end().offset);
    faults::disarm(dir.path());
    let got = j.append(1, "n", &[pending("a", 1)]).unwrap();
    assert_eq!(got[0].seq, 2, "failed groups consumed no id");
    assert!(!j.poisoned() && j.end().segment == 2);
    acked.extend(got);
    assert_eq!(all(&j), acked);
    drop(j);
    let (j, _) = open(dir.path());
    assert_eq!(all(&j), acked);
}

/// A write that fails leaves nothing of its group, and the segment goes on taking records.
#[test]
fn a_failed_write_acknowledges_nothing_and_the_next_one_continues() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = open(dir.path());
    let mut acked = j.append(1, "n", &[pending("a", 0)]).unwrap();
    faults::arm(faults::Op::Write, dir.path(), 0, 2, nix::libc::ENOSPC);
    for _ in 0..2 {
        let err = j.append(1, "n", &[pending("a", 1)]).unwrap_err();
        assert!(err.is_disk_full(), "{err}");
    }
    acked.extend(j.append(1, "n", &[pending("a", 1)]).unwrap());
    assert_eq!(acked[1].seq, 2);
    assert_eq!(j.end().segment, 1);
    assert_eq!(all(&j), acked);
}

/// The records forwarding would send, in order: every frame but the superseded ones.
fn live(j: &Journal) -> Vec<(String, u64, serde_json::Value)> {
    let (frames, _) = read(j.dir(), j.start(), j.end(), usize::MAX, usize::MAX).unwrap();
    (0..frames.len())
        .filter(|&i| !j.superseded().contains(&frames.after(i)))
        .map(|i| {
            let r = frames.get(i).record().unwrap();
            (r.stream, r.seq, r.data)
        })
        .collect()
}

/// A rehome moves every frame of its stream from a position on to ids following the
/// primary's, in one group, in order, other streams untouched; the originals are
/// superseded, also after a reopen. The copies may reuse ids of the frames they supersede
/// (a stale journal numbered past the primary's last id): the primary gets no gap.
#[test]
fn rehome_moves_a_stream_from_a_position_on_to_ids_after_the_primarys() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = open(dir.path());
    j.append(1, "n", &[pending("a", 0), pending("b", 0)])
        .unwrap();
    let at = j.end();
    // Numbered from a stale copy: a's 1.2..1.6, of which the primary holds 1.2..1.3 from
    // another writer.
    let stale: Vec<_> = (1..=5).map(|i| pending("a", i)).collect();
    let mut moving = j.append(1, "n", &stale[..2]).unwrap();
    j.append(1, "n", &[pending("b", 1)]).unwrap();
    moving.extend(j.append(1, "n", &stale[2..]).unwrap());
    let moved = j.rehome(1, "a", at, Some((1, 3))).unwrap();
    let ids: Vec<_> = moved.iter().map(|m| m.1 .1).collect();
    assert_eq!(ids, [4, 5, 6, 7, 8]);
    assert_eq!(moved[0].0, (1, 2));
    assert_eq!(j.last_ids()["a"], (1, 8));
    assert_eq!(j.append(1, "n", &[pending("a", 9)]).unwrap()[0].seq, 9);
    let mut want = vec![
        ("a".to_string(), 1, json!({"i": 0})),
        ("b".to_string(), 1, json!({"i": 0})),
        ("b".to_string(), 2, json!({"i": 1})),
    ];
    want.extend(
        moving
            .iter()
            .zip(4..)
            .map(|(r, seq)| ("a".to_string(), seq, r.data.clone())),
    );
    want.push(("a".to_string(), 9, json!({"i": 9})));
    assert_eq!(live(&j), want);
    let gone = j.superseded().clone();
    assert_eq!(gone.len(), 5);
    drop(j);
    let (j, rec) = open(dir.path());
    assert_eq!(
        j.superseded(),
        &gone,
        "recovery finds the copies' originals"
    );
    assert_eq!(j.last_ids()["a"], (1, 9));
    assert_eq!(rec.duplicates, 0, "a copy reusing an id is no duplicate");
    assert!(rec.truncated.is_empty());
    assert_eq!(live(&j), want);
}

/// `FSJ2` and `FSJ3` are one bit apart: the flip is damage, not a copy (nor the reverse).
#[test]
fn a_bit_flip_between_frame_and_copy_magic_is_damage() {
    let rec = StoredRecord::new(1, 1, "t".into(), "s".into(), "n".into(), json!({}));
    let mut frame = encode_frame(&rec).unwrap();
    assert!(decode_frame(&frame).is_some());
    frame[3] ^= 0x01;
    assert_eq!(&frame[..4], &MAGIC_COPY);
    assert!(decode_frame(&frame).is_none());
    let mut copy = Vec::new();
    let of = CopyOf {
        was: (1, 1),
        at: Position {
            segment: 3,
            offset: 99,
        },
        left: 0,
    };
    encode_parts(&mut copy, 1, 2, "s", "t", "n", &json!({}), Some(of)).unwrap();
    assert_eq!(decode_frame(&copy).unwrap().0.copy_of, Some(of));
    copy[3] ^= 0x01;
    assert!(decode_frame(&copy).is_none());
}

/// A group of copies cut short by a crash is dropped whole: the originals stay live and a
/// second rehome moves them again, so nothing is lost and nothing is there twice.
#[test]
fn a_rehome_torn_by_a_crash_is_dropped_whole_and_done_again() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = open(dir.path());
    let from = j.start();
    let pend: Vec<_> = (0..5).map(|i| pending("a", i)).collect();
    j.append(1, "n", &pend).unwrap();
    let before = j.end();
    j.seed_last_ids(&BTreeMap::from([("a".to_string(), (1, 100))]));
    assert_eq!(j.rehome(1, "a", from, None).unwrap().len(), 5);
    drop(j);
    let path = segment_path(dir.path(), 1);
    let bytes = fs::read(&path).unwrap();
    let first_copy = decode_frame(&bytes[before.offset as usize..]).unwrap().1;
    // Cut after two whole copies and a half.
    let cut = before.offset as usize + 2 * first_copy + first_copy / 2;
    fs::write(&path, &bytes[..cut]).unwrap();
    let (mut j, rec) = open(dir.path());
    assert_eq!(
        rec.truncated,
        [(path.clone(), before.offset, (cut as u64) - before.offset)]
    );
    assert!(j.superseded().is_empty());
    assert_eq!(j.last_ids()["a"], (1, 5));
    assert_eq!(j.end(), before);
    j.seed_last_ids(&BTreeMap::from([("a".to_string(), (1, 100))]));
    let moved = j.rehome(1, "a", from, None).unwrap();
    assert_eq!(moved.len(), 5);
    assert_eq!(moved[0], ((1, 1), (1, 101)));
}

#[test]
fn a_second_journal_on_the_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_j, _) = open(dir.path());
    let err = Journal::open(dir.path(), 1 << 20, Duration::from_millis(30))
        .err()
        .unwrap();
    assert!(matches!(err, JournalError::Locked(_)), "{err}");
}
