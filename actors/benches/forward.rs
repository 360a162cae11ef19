//! Benchmark: forwarding a pre-filled journal to the primary with the real `SyncActor` until everything is on the primary and fsynced, beside `cp` + `sync` of the same segment files.
//!
//! Per round: a journal is pre-filled (untimed, through `Journal::append` in large groups, 16 MiB
//! segments like the daemon) with `FORWARD_BENCH_MB` (100) MB of frames, each record a JSON
//! object `FORWARD_BENCH_RECORD_BYTES` (256) long, spread round-robin over `FORWARD_BENCH_STREAMS`
//! (4) streams. Then, back to back in one scratch directory:
//! - baseline: `cp` of the segment files into a directory, then `sync` of the copies and of that
//!   directory (fsync each), timed together;
//! - ours: a `StorageActor` over the journal (its recovery scan is reported but not timed), then
//!   a `SyncActor` forwarding to a primary directory with the daemon's settings (`batch` 100 000 from
//!   `FORWARD_BENCH_BATCH`, `io_timeout` 3 s from `FORWARD_BENCH_IO_TIMEOUT_MS`, segments rotated
//!   after 1 MiB), asked to forward at once as `fushi sync --now` does (rather than at its next
//!   tick); timed from spawning it to the status board reporting a sync run done with no lag:
//!   every record appended to `raw/…jsonl` and fsynced, `latest/` replaced, the forwarded closed
//!   segments released. The primary is verified afterwards (untimed).
//!
//! Figures are MB/s of journal bytes (10^6 bytes); the summary gives medians over
//! `FORWARD_BENCH_ROUNDS` (5) rounds. `FUSHI_BENCH_DIR` moves the scratch directory.

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures real time, beside its baseline measured the same way"
)]

mod support;

use fushi_actors::audit::AuditLog;
use fushi_actors::board::StatusBoard;
use fushi_actors::clock;
use fushi_actors::journal::Journal;
use fushi_actors::primary::Primary;
use fushi_actors::records::Record;
use fushi_actors::storage::{StorageActor, StorageArgs, StorageHandle};
use fushi_actors::sync::{PrimaryIo, SyncActor, SyncArgs, SyncMsg};
use ractor::Actor;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use support::{env_num, mb_s, median, process_cpu};

/// The daemon's segment size and rotation threshold (`src/tree.rs`).
const SEGMENT_BYTES: u64 = 16 << 20;
const ROTATE_AFTER: u64 = 1 << 20;
/// Records per journal append while pre-filling.
const FILL_GROUP: u64 = 4096;

struct Config {
    bytes: u64,
    record_bytes: usize,
    streams: u64,
    batch: usize,
    io_timeout: Duration,
    rounds: usize,
}

fn pending(cfg: &Config, i: u64) -> Record {
    let head = format!("{{\"i\":{i},\"p\":\"\"}}").len();
    let pad = "x".repeat(cfg.record_bytes.saturating_sub(head));
    Record {
        stream: format!("bench/s{}", i % cfg.streams),
        ts: clock::now_rfc3339(),
        data: serde_json::json!({ "i": i, "p": pad }),
    }
}

/// Fills a journal in `dir` with about `cfg.bytes` of frames; returns (records, bytes, segment files).
fn prefill(cfg: &Config, dir: &Path) -> (u64, u64, Vec<PathBuf>) {
    let (mut journal, _) = Journal::open(dir, SEGMENT_BYTES, Duration::from_secs(1))
        .expect("opening the journal to fill");
    let mut i = 0;
    while journal.bytes() < cfg.bytes {
        let group: Vec<Record> = (i..i + FILL_GROUP).map(|n| pending(cfg, n)).collect();
        journal
            .append(1, "bench-node", &group)
            .expect("filling the journal");
        i += FILL_GROUP;
    }
    let (records, bytes) = (journal.records(), journal.bytes());
    drop(journal);
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("listing the journal")
        .map(|e| e.expect("a journal entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    (records, bytes, segments)
}

/// `cp` of the segment files into `to`, then `sync` of the copies and the directory.
fn cp_and_sync(segments: &[PathBuf], to: &Path) -> Duration {
    std::fs::create_dir_all(to).expect("creating the cp target");
    let start = Instant::now();
    let ok = Command::new("cp")
        .arg("--")
        .args(segments)
        .arg(to)
        .status()
        .expect("running cp")
        .success();
    assert!(ok, "cp failed");
    let copies: Vec<PathBuf> = segments
        .iter()
        .map(|s| to.join(s.file_name().expect("a segment name")))
        .collect();
    let ok = Command::new("sync")
        .arg("--")
        .args(&copies)
        .arg(to)
        .status()
        .expect("running sync")
        .success();
    assert!(ok, "sync failed");
    start.elapsed()
}

/// What our forwarding took: wall time, CPU, recovery time, bytes on the primary.
struct Ours {
    took: Duration,
    cpu: Duration,
    recovery: Duration,
    primary_bytes: u64,
}

async fn forward(cfg: &Config, journal_dir: &Path, primary_dir: &Path) -> Ours {
    let board = StatusBoard::new("bench-node", "single", "bench");
    let audit = AuditLog::memory("bench-node");
    let handle = StorageHandle::new(journal_dir.to_path_buf());
    let started = Instant::now();
    let (storage, storage_join) = Actor::spawn(
        None,
        StorageActor,
        StorageArgs {
            handle: handle.clone(),
            node: "bench-node".into(),
            epoch: 1,
            max_local: u64::MAX,
            segment_max: SEGMENT_BYTES,
            board: board.clone(),
            audit: audit.clone(),
            seed_wait: std::time::Duration::from_secs(5),
        },
    )
    .await
    .expect("spawning the storage actor");
    let recovery = started.elapsed();

    let cpu0 = process_cpu();
    let start = Instant::now();
    let (sync, sync_join) = Actor::spawn(
        None,
        SyncActor,
        SyncArgs {
            primary: primary_dir.to_path_buf(),
            primary_is_local: true,
            node: "bench-node".into(),
            forced_down: Default::default(),
            storage: handle,
            interval: Duration::from_secs(1),
            probe_interval: Duration::from_secs(5),
            io_timeout: cfg.io_timeout,
            batch: cfg.batch,
            rotate_after: ROTATE_AFTER,
            board: board.clone(),
            alerts: Default::default(),
            audit: audit.clone(),
            io: PrimaryIo::default(),
        },
    )
    .await
    .expect("spawning the sync actor");
    // As `fushi sync --now`: probe and drain at once rather than at the next tick (1 s away).
    sync.call(SyncMsg::Now, None)
        .await
        .expect("asking the sync actor to forward now");
    // Lag is published at the end of a tick, once the journal is drained.
    let took = loop {
        let (doc, _) = board.snapshot();
        if let Some(last) = &doc.sync.last {
            if !last.ok {
                panic!("forwarding failed; audit: {:?}", audit.events());
            }
            if doc.storage.lag_records == 0 {
                break start.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let cpu = process_cpu() - cpu0;
    sync.stop(None);
    let _ = sync_join.await;
    storage.stop(None);
    let _ = storage_join.await;
    let primary_bytes = dir_bytes(&primary_dir.join("raw"));
    Ours {
        took,
        cpu,
        recovery,
        primary_bytes,
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

fn main() -> ExitCode {
    // `cargo test --all-targets` runs benches too, without `--bench`: measure only when asked.
    if !std::env::args().any(|a| a == "--bench") {
        return ExitCode::SUCCESS;
    }
    for tool in ["cp", "sync"] {
        if support::find_in_path(tool).is_none() {
            eprintln!("forward: `{tool}` not found on PATH (coreutils); the baseline needs it.");
            return ExitCode::from(2);
        }
    }
    let cfg = Config {
        bytes: env_num("FORWARD_BENCH_MB", 100).max(1) * 1_000_000,
        record_bytes: env_num("FORWARD_BENCH_RECORD_BYTES", 256) as usize,
        streams: env_num("FORWARD_BENCH_STREAMS", 4).max(1),
        batch: env_num("FORWARD_BENCH_BATCH", 100_000).max(1) as usize,
        io_timeout: Duration::from_millis(env_num("FORWARD_BENCH_IO_TIMEOUT_MS", 3000)),
        rounds: env_num("FORWARD_BENCH_ROUNDS", 5).max(1) as usize,
    };
    let scratch = support::scratch("forward");
    println!(
        "forwarding: {} MB journal of {}-byte JSON records over {} streams, sync batch {}, {} rounds of cp+sync then ours",
        cfg.bytes / 1_000_000,
        cfg.record_bytes,
        cfg.streams,
        cfg.batch,
        cfg.rounds
    );
    let rt = fushi_actors::runtime::build().expect("building the daemon's runtime");
    let (mut ours, mut base, mut ratios) = (vec![], vec![], vec![]);
    for round in 1..=cfg.rounds {
        let dir = scratch.path().join(format!("round-{round}"));
        let journal = dir.join("journal");
        let fill = Instant::now();
        let (records, bytes, segments) = prefill(&cfg, &journal);
        let fill = fill.elapsed();
        let cp = cp_and_sync(&segments, &dir.join("cp"));
        let primary = dir.join("primary");
        let run = rt.block_on(forward(&cfg, &journal, &primary));
        let report = Primary::new(&primary)
            .verify()
            .expect("verifying the primary");
        assert!(
            report.records == records && report.problems.is_empty(),
            "primary holds {} of {records} records, problems: {:?}",
            report.records,
            report.problems
        );
        std::fs::remove_dir_all(&dir).expect("removing the round's directory");
        let (o, b) = (mb_s(bytes, run.took), mb_s(bytes, cp));
        println!(
            "round {round}: {records} records, {bytes} journal bytes in {} segments (filled in {:.1} s); \
             ours {o:.1} MB/s ({:.2} s, {:.0} rec/s, CPU {:.2} s = {:.1} µs/rec, {:.0} MB JSON on the primary, \
             recovery scan before it {:.2} s); cp+sync {b:.1} MB/s ({:.2} s); ratio {:.2}",
            segments.len(),
            fill.as_secs_f64(),
            run.took.as_secs_f64(),
            records as f64 / run.took.as_secs_f64(),
            run.cpu.as_secs_f64(),
            run.cpu.as_secs_f64() * 1e6 / records as f64,
            run.primary_bytes as f64 / 1e6,
            run.recovery.as_secs_f64(),
            cp.as_secs_f64(),
            o / b
        );
        ours.push(o);
        base.push(b);
        ratios.push(o / b);
    }
    drop(rt);
    let ratio = median(&ratios);
    println!(
        "forwarding: ours {:.1} MB/s, cp+sync {:.1} MB/s, ratio {ratio:.2} (target >= 0.80: {})",
        median(&ours),
        median(&base),
        if ratio >= 0.8 { "met" } else { "MISSED" }
    );
    drop(scratch);
    ExitCode::SUCCESS
}
