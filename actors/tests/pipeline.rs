//! The sync actor's forwarding pipeline: a backlog drains as soon as the primary is up, a primary that hangs in the middle of a drain is declared down in time and, once it answers again, gets every record exactly once, in order, `latest/` is written even when the sync that carried it failed, and a collision with the primary that cannot be moved to new ids stops forwarding red without losing a record.
//!
//! The hang is acted out without a mount: a job that waits on a gate is queued first on the
//! `PrimaryIo` lane that makes written batches durable, so the actor's first group fsync waits
//! behind it for as long as the test wants, exactly as behind a frozen NAS. By then batches
//! are written and not synced, and more are being written: the pipeline is full.
//!
//! These tests run on the real clock with a short `io_timeout`, as the daemon's integration
//! tests do: the primary's I/O runs on threads of its own, and with tokio's clock paused the
//! runtime is idle while they work, so it would jump to every call's deadline at once. No
//! assertion bounds a duration: every wait is on an event, and what is timed (the hung call
//! given up on after exactly `io_timeout`) is shown on the paused clock by `sync::io`'s tests.
//!
//! "Drained" is the audit's `collector.sync.complete` (every record of the backlog durable on
//! the primary), not `lag_records == 0` in status: after a drain was cut short, status can show
//! a lag of 0 while the next one still runs (a released segment takes its records off the
//! journal's count at once, off the forwarded count only at the end of the sync actor's tick).

use fushi_actors::audit::{AuditEvent, AuditLog};
use fushi_actors::board::{PrimaryState, StatusBoard};
use fushi_actors::journal::Journal;
use fushi_actors::primary::Primary;
use fushi_actors::records::Record;
use fushi_actors::storage::{StorageActor, StorageArgs, StorageHandle};
use fushi_actors::sync::{Lane, PrimaryIo, SyncActor, SyncArgs};
use ractor::Actor;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_millis(300);
const PROBE_INTERVAL: Duration = Duration::from_millis(50);
const SEGMENT_BYTES: u64 = 1 << 20;
const RECORDS: u64 = 40_000;
const STREAMS: u64 = 3;
/// A backlog the sync actor reads, writes and fsyncs as one batch (`batch` is 500 records).
const ONE_BATCH: u64 = 300;

/// A journal holding `records` records of about 300 bytes over `STREAMS` streams; `RECORDS` of
/// them make ~12 MB, so that the drain takes many batches of 500 records, several fsync groups
/// and segments.
fn backlog(dir: &Path, records: u64) {
    let (mut journal, _) = Journal::open(dir, SEGMENT_BYTES, Duration::from_secs(1)).unwrap();
    let pad = "x".repeat(200);
    for chunk in (0..records).collect::<Vec<_>>().chunks(1000) {
        let group: Vec<Record> = chunk
            .iter()
            .map(|i| Record {
                stream: format!("s/{}", i % STREAMS),
                ts: "2026-11-21T10:00:00.000Z".into(),
                data: serde_json::json!({ "i": i, "p": pad }),
            })
            .collect();
        journal.append(1, "node", &group).unwrap();
    }
}

/// Waits until `f` returns Some, checking it again at each status transition on `board` and
/// at least every 10 ms, for at most 30 s. The audit events waited for come with no transition
/// of their own, and a transition that would follow them may have come before: a lag shown as
/// 0 too early leaves none for the end of the drain.
async fn wait_for<T>(board: &StatusBoard, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        let _ = tokio::time::timeout(Duration::from_millis(10), board.changed()).await;
    }
}

/// When the actor emitted `e` (audit times have millisecond resolution).
fn at(e: &AuditEvent) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(&e.ts, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|err| panic!("audit ts {:?}: {err}", e.ts))
}

/// The first of `events` named `event` from position `from` on, with its position.
fn first(events: &[AuditEvent], from: usize, event: &str) -> Option<(usize, AuditEvent)> {
    events
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, e)| e.event == event)
        .map(|(i, e)| (i, e.clone()))
}

/// A storage actor over the journal in `jdir` and a sync actor forwarding it to `pdir`.
struct Rig {
    board: StatusBoard,
    audit: AuditLog,
    actors: Vec<(ractor::ActorCell, tokio::task::JoinHandle<()>)>,
}

impl Rig {
    async fn spawn(
        jdir: &Path,
        pdir: &Path,
        io: PrimaryIo,
        interval: Duration,
        forced_down: Arc<AtomicBool>,
    ) -> Rig {
        let board = StatusBoard::new("node", "single", "test");
        let audit = AuditLog::memory("node");
        let handle = StorageHandle::new(jdir.to_path_buf());
        let (storage, storage_join) = Actor::spawn(
            None,
            StorageActor,
            StorageArgs {
                handle: handle.clone(),
                node: "node".into(),
                epoch: 1,
                max_local: u64::MAX,
                segment_max: SEGMENT_BYTES,
                board: board.clone(),
                audit: audit.clone(),
                seed_wait: Duration::from_secs(5),
            },
        )
        .await
        .unwrap();
        let (sync, sync_join) = Actor::spawn(
            None,
            SyncActor,
            SyncArgs {
                primary: pdir.to_path_buf(),
                primary_is_local: true,
                node: "node".into(),
                forced_down,
                storage: handle,
                interval,
                probe_interval: PROBE_INTERVAL,
                io_timeout: IO_TIMEOUT,
                batch: 500,
                rotate_after: SEGMENT_BYTES,
                board: board.clone(),
                alerts: Default::default(),
                audit: audit.clone(),
                io,
            },
        )
        .await
        .unwrap();
        Rig {
            board,
            audit,
            actors: vec![
                (sync.get_cell(), sync_join),
                (storage.get_cell(), storage_join),
            ],
        }
    }

    async fn stop(self) {
        for (cell, join) in self.actors {
            cell.stop(None);
            join.await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_backlog_drains_as_soon_as_the_primary_is_up_not_at_the_next_tick() {
    let tmp = tempfile::tempdir().unwrap();
    let (jdir, pdir) = (tmp.path().join("journal"), tmp.path().join("primary"));
    backlog(&jdir, RECORDS);
    // The primary is down at start (as `fushi inject primary-down` makes it), so the first
    // tick finds nothing to do; the next is an hour away. Only the probe that finds the
    // primary back can start the drain.
    let down = Arc::new(AtomicBool::new(true));
    let rig = Rig::spawn(
        &jdir,
        &pdir,
        PrimaryIo::default(),
        Duration::from_secs(3600),
        down.clone(),
    )
    .await;
    wait_for(&rig.board, "the primary down", || {
        (rig.board.snapshot().0.storage.primary == PrimaryState::Down).then_some(())
    })
    .await;
    down.store(false, Ordering::SeqCst);
    wait_for(&rig.board, "the backlog drained", || {
        first(&rig.audit.events(), 0, "collector.sync.complete")
    })
    .await;
    rig.stop().await;
    assert_eq!(Primary::new(&pdir).verify().unwrap().records, RECORDS);
}

#[tokio::test]
async fn a_primary_that_hangs_mid_drain_is_down_in_time_and_then_gets_every_record_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (jdir, pdir) = (tmp.path().join("journal"), tmp.path().join("primary"));
    backlog(&jdir, RECORDS);

    // The gate: the sync lane's worker is busy until the test opens it.
    let io = PrimaryIo::default();
    let (open_gate, gate) = std::sync::mpsc::channel::<()>();
    let blocker = {
        let io = io.clone();
        tokio::spawn(async move {
            io.run_on(Lane::Sync, Duration::from_secs(3600), move || {
                let _ = gate.recv();
                Ok(())
            })
            .await
        })
    };

    let rig = Rig::spawn(
        &jdir,
        &pdir,
        io.clone(),
        Duration::from_millis(20),
        Default::default(),
    )
    .await;
    let (board, audit) = (rig.board.clone(), rig.audit.clone());

    // The switch to down is read from the audit log, not from the status board: here only the
    // sync lane hangs, so the next probe (on the other lane) finds the primary up again at
    // once, and a poll of the board can miss the short down.
    let (start, down) = wait_for(&board, "the primary down behind the hung sync", || {
        let events = audit.events();
        let (i, start) = first(&events, 0, "collector.sync.start")?;
        let down = events[i..]
            .iter()
            .find(|e| e.event == "collector.storage.switch" && e.payload["to"] == "down")?;
        Some((start, down.clone()))
    })
    .await;
    // The time from the drain's start to the switch is the machine's (recovering and writing
    // batches on threads of their own), so it is printed, not bounded: what is asserted is
    // that the switch is the direct consequence of the hung call given up on after exactly
    // io_timeout (shown on the paused clock by `sync::io`'s tests), with no retry, probe or
    // tick in between to delay it.
    let events = audit.events();
    let from = events.iter().position(|e| e == &start).unwrap();
    let to = events.iter().position(|e| e == &down).unwrap();
    eprintln!(
        "down {} ms after the drain started",
        (at(&down) - at(&start)).whole_milliseconds()
    );
    let between: Vec<&str> = events[from + 1..to]
        .iter()
        .map(|e| e.event.as_str())
        .filter(|e| e.starts_with("collector.sync") || e.starts_with("collector.storage"))
        .collect();
    assert!(
        between
            .iter()
            .all(|e| *e == "collector.sync.chunk" || *e == "collector.sync.failed")
            && between
                .iter()
                .filter(|e| **e == "collector.sync.failed")
                .count()
                == 1,
        "one failure between the drain's start and the switch: {between:?}"
    );
    let failed = events[from..to]
        .iter()
        .find(|e| e.event == "collector.sync.failed")
        .expect("the failed sync is audited");
    // Given up on after io_timeout exactly, not after some multiple of it, and that is what
    // switched the primary down.
    let hung = format!("no answer within {IO_TIMEOUT:?} (primary hung)");
    assert_eq!(failed.payload["error"], hung.as_str(), "{failed:?}");
    assert_eq!(down.payload["reason"], hung.as_str(), "{down:?}");
    let lag = board.snapshot().0.storage.lag_records;
    assert!(
        lag > 0 && lag < RECORDS + 1,
        "lag {lag} while the drain is held up"
    );
    // Mid-drain: batches were written while the fsync hung, but what is written and not
    // synced is bounded, so the pipeline did not run through the whole backlog meanwhile.
    // Nothing is written while the hung operation may still land (see below), so this count
    // stands still.
    let written = Primary::new(&pdir).verify().unwrap().records;
    assert!(
        written > 0 && written < RECORDS,
        "{written} records written to the primary while its fsync hung"
    );
    // Nothing goes forward while an operation given up on may still land.
    assert_eq!(io.stuck(), 1);

    open_gate.send(()).unwrap();
    blocker.await.unwrap().unwrap();
    // The drain completes (every record durable on the primary), which it can only once the
    // abandoned fsync has landed; and the count of stuck operations is back to zero.
    wait_for(&board, "every record forwarded", || {
        let (doc, _) = board.snapshot();
        let ok = doc.sync.last.as_ref().is_some_and(|l| l.ok);
        let complete = first(&audit.events(), 0, "collector.sync.complete").is_some();
        (complete && ok && doc.storage.primary == PrimaryState::Up && io.stuck() == 0).then_some(())
    })
    .await;

    rig.stop().await;

    let report = Primary::new(&pdir).verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.records, RECORDS, "every record once: {report:?}");
    let mut ks = Vec::new();
    for s in 0..STREAMS {
        let dir = pdir.join("raw/s").join(s.to_string());
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                ks.push(v["data"]["i"].as_u64().unwrap());
            }
        }
    }
    ks.sort_unstable();
    assert_eq!(ks, (0..RECORDS).collect::<Vec<_>>());
    // latest/ holds each stream's newest record once the drain is over.
    for s in 0..STREAMS {
        let text = std::fs::read(pdir.join(format!("latest/s/{s}.json"))).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        let newest = (0..RECORDS).filter(|i| i % STREAMS == s).max().unwrap();
        assert_eq!(v["data"]["i"], newest, "latest/s/{s}.json");
    }
}

/// The sync that writes `latest/` can fail after its records are durable (here: `latest` is a
/// file, so the records land and `latest/` cannot be written). Those records are then on the
/// primary and never sent again, so the entries that sync carried must be kept for a later one,
/// not lost with it.
///
/// The backlog is one batch, so that whichever sync first carries `latest/` carries each
/// stream's newest record, however long the drain takes: a drain longer than a second (a
/// loaded machine) also replaces `latest/` on its way, and with a long backlog that sync fails
/// mid-drain, the batches after it bring newer entries of their own, and the test would prove
/// nothing.
#[tokio::test]
async fn latest_entries_outlive_a_failed_sync_that_carried_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (jdir, pdir) = (tmp.path().join("journal"), tmp.path().join("primary"));
    backlog(&jdir, ONE_BATCH);
    std::fs::create_dir_all(&pdir).unwrap();
    let blocker = pdir.join("latest");
    std::fs::write(&blocker, "not a directory\n").unwrap();

    let rig = Rig::spawn(
        &jdir,
        &pdir,
        PrimaryIo::default(),
        Duration::from_millis(20),
        Default::default(),
    )
    .await;
    let (board, audit) = (rig.board.clone(), rig.audit.clone());
    // A timeout (a loaded disk) is not the failure this is about.
    wait_for(&board, "a sync failing on latest/", || {
        audit
            .events()
            .iter()
            .any(|e| {
                e.event == "collector.sync.failed"
                    && e.payload["error"]
                        .as_str()
                        .is_some_and(|m| m.contains("Not a directory"))
            })
            .then_some(())
    })
    .await;
    std::fs::remove_file(&blocker).unwrap();

    // Each stream's newest record: the largest i with i % STREAMS == s.
    let newest = |s: u64| (0..ONE_BATCH).rev().find(|i| i % STREAMS == s).unwrap();
    let latest = |s: u64| -> Option<serde_json::Value> {
        let path = pdir.join("latest/s").join(format!("{s}.json"));
        Some(serde_json::from_slice(&std::fs::read(path).ok()?).unwrap())
    };
    // The tick that writes latest/ again ends the failure in status (`sync.last` ok): the
    // transition after which the entries must be there. Every record was durable before it, so
    // no batch forwarded on the way sets `sync.last` first.
    wait_for(&board, "a run after the failure, latest/ written", || {
        let (doc, _) = board.snapshot();
        doc.sync.last.as_ref().is_some_and(|l| l.ok).then_some(())
    })
    .await;
    for s in 0..STREAMS {
        let record = latest(s).unwrap_or_else(|| panic!("latest/s/{s}.json is written"));
        assert_eq!(record["data"]["i"].as_u64(), Some(newest(s)), "{record}");
    }
    rig.stop().await;
    let report = Primary::new(&pdir).verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.records, ONE_BATCH, "every record once: {report:?}");
}

/// The lines of `stream` on the primary at `pdir`, in file order.
fn primary_lines(pdir: &Path, stream: &str) -> Vec<serde_json::Value> {
    let dir = pdir.join("raw").join(stream);
    let mut days: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    days.sort();
    days.iter()
        .flat_map(|d| {
            std::fs::read_to_string(d)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn journal_of(jdir: &Path, v: &str, n: u64) {
    let (mut journal, _) = Journal::open(jdir, SEGMENT_BYTES, Duration::from_secs(1)).unwrap();
    let group: Vec<Record> = (1..=n)
        .map(|i| Record {
            stream: "s/c".into(),
            ts: "2026-11-21T10:00:00.000Z".into(),
            data: serde_json::json!({ "i": i, "v": v }),
        })
        .collect();
    journal.append(1, "node", &group).unwrap();
}

/// A journal whose ids the primary holds with other data (a restored copy, a second writer)
/// and that cannot be moved to new ids (its disk refuses the write): forwarding stops before
/// the colliding records, health goes red saying why, and nothing on the primary is replaced
/// or lost; once the disk takes writes again, the records move and go under new ids.
#[tokio::test]
async fn a_collision_that_cannot_be_rehomed_stops_forwarding_red_and_loses_nothing() {
    use fushi_actors::board::Health;
    use fushi_actors::faults::{self, Op};
    let tmp = tempfile::tempdir().unwrap();
    let pdir = tmp.path().join("primary");
    // The primary holds 1.1..1.5 of s/c with v = "a".
    let first = tmp.path().join("first");
    journal_of(&first, "a", 5);
    let rig = Rig::spawn(
        &first,
        &pdir,
        PrimaryIo::default(),
        Duration::from_millis(20),
        Default::default(),
    )
    .await;
    wait_for(&rig.board, "the first journal forwarded", || {
        let (doc, _) = rig.board.snapshot();
        (doc.storage.primary == PrimaryState::Up && doc.storage.lag_records == 0).then_some(())
    })
    .await;
    rig.stop().await;
    assert_eq!(primary_lines(&pdir, "s/c").len(), 5);

    // Another journal numbered 1.1..1.5 too, with v = "b"; its disk refuses every write.
    let second = tmp.path().join("second");
    journal_of(&second, "b", 5);
    faults::arm(Op::Write, &second, 0, u32::MAX, nix::libc::EIO);
    let rig = Rig::spawn(
        &second,
        &pdir,
        PrimaryIo::default(),
        Duration::from_millis(20),
        Default::default(),
    )
    .await;
    let conflict = wait_for(&rig.board, "the conflict on the board", || {
        rig.board.snapshot().0.sync.conflict
    })
    .await;
    assert!(
        conflict.contains("journal record 1.1 of stream \"s/c\"")
            && conflict.contains("forwarding stops before it"),
        "{conflict}"
    );
    assert_eq!(rig.board.snapshot().0.health, Health::Red);
    let held = primary_lines(&pdir, "s/c");
    assert_eq!(held.len(), 5, "nothing forwarded past the collision");
    assert!(held.iter().all(|l| l["data"]["v"] == "a"), "{held:?}");
    assert!(rig
        .audit
        .events()
        .iter()
        .any(|e| e.event == "journal.conflict"));

    // The disk takes writes again: the records move to 1.6..1.10 and go; the red clears.
    faults::disarm(&second);
    wait_for(&rig.board, "the moved records forwarded", || {
        let (doc, _) = rig.board.snapshot();
        (doc.sync.conflict.is_none() && doc.storage.lag_records == 0).then_some(())
    })
    .await;
    rig.stop().await;
    let held = primary_lines(&pdir, "s/c");
    let ids: Vec<&str> = held.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.8", "1.9", "1.10"]
    );
    assert!(held[5..].iter().all(|l| l["data"]["v"] == "b"), "{held:?}");
}
