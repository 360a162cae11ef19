//! Benchmark: durable ingest through a real `StorageActor` (group commit, one write + one fdatasync per group) from many concurrent producers, beside `fio` writing the same bytes with the same block size and fsync cadence.
//!
//! Ours: a `StorageActor` spawned with ractor (status board, memory audit log, `max_local`
//! unbounded, 16 MiB segments like the daemon) in a scratch directory. Producers are tokio tasks
//! on the daemon's runtime (`fushi_actors::runtime`) calling `StorageHandle::append`, as the listen
//! collector does for each connection. A record is a JSON object whose text is
//! `INGEST_BENCH_RECORD_BYTES` long (256), spread over `INGEST_BENCH_STREAMS` streams, with a fresh
//! RFC 3339 `ts` each. A call returns once its records are fsynced: that is the acknowledgement.
//!
//! Three measurements, each followed at once by its `fio` baseline in the same directory:
//! 1. saturation, one record per call, `INGEST_BENCH_PRODUCERS` (256) producers in a closed loop:
//!    records/s and journal bytes/s acknowledged;
//! 2. saturation, `INGEST_BENCH_BATCH` (64) records per call from `INGEST_BENCH_BATCH_PRODUCERS`
//!    (16) producers (a busy connection whose lines are taken together);
//! 3. a paced, open-loop offered load of `INGEST_BENCH_RATE` (10 000) records/s, one per call, for
//!    `INGEST_BENCH_PACED_SECS` (2): p50/p99 of ack latency (from offer to ack).
//!
//! The baseline is `fio --rw=write --bs=<our mean frame> --size=<our journal bytes>
//! --fdatasync=<G> --fallocate=none` (appending to a fresh file like our journal), where G is the
//! mean group size our writer achieved in that very run: records ÷ groups, a group being one
//! `write` + one `fdatasync` of the writer thread (its `commits` in `JournalInfo`; the thread's
//! `syscw` would also count the eventfd writes that wake the runtime). fio is stopped after 4× our time
//! (`--runtime`; its bandwidth is then that of the part it did), so a disk in a slow spell cannot
//! stretch the run. For the paced load fio also runs at `--rate_iops=<rate>`, and its fdatasync
//! latency is the floor an acknowledgement cannot beat; it is per fdatasync, while ours is per
//! record, so a stall weighs more in ours (every record that queued behind it counts).
//! Each measurement runs `INGEST_BENCH_ROUNDS` (3) rounds of ours then fio, and the summary gives
//! medians of the figures and of the per-round ratios. "CPU µs/rec" is the whole process's CPU
//! over the run (producers building each record and its `ts` included) per record.
//!
//! Knobs (environment): the above, plus `INGEST_BENCH_RECORDS` per saturation round (80 000;
//! the batched variant takes twice as many) and `FUSHI_BENCH_DIR` (see `support::scratch`).
//! Needs `fio` (`apt-get install fio`).

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures real time, beside its baseline measured the same way"
)]

mod support;

use fushi_actors::audit::AuditLog;
use fushi_actors::board::StatusBoard;
use fushi_actors::clock;
use fushi_actors::records::Record;
use fushi_actors::storage::{StorageActor, StorageArgs, StorageHandle, StorageMsg};
use ractor::{Actor, ActorRef};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{env_num, mb_s, median, process_cpu};
use tokio::task::JoinSet;

/// The daemon's segment size (`src/tree.rs`).
const SEGMENT_BYTES: u64 = 16 << 20;

struct Config {
    records: u64,
    producers: usize,
    batch: usize,
    batch_producers: usize,
    rate: u64,
    paced_secs: u64,
    rounds: usize,
}

/// Makes the bench's records: `{"i":N,"p":"xx…"}` exactly `bytes` long as JSON text.
#[derive(Clone)]
struct Gen {
    streams: Arc<Vec<String>>,
    bytes: usize,
}

impl Gen {
    fn make(&self, i: u64) -> Record {
        let head = format!("{{\"i\":{i},\"p\":\"\"}}").len();
        let pad = "x".repeat(self.bytes.saturating_sub(head));
        let data = serde_json::json!({ "i": i, "p": pad });
        Record {
            stream: self.streams[i as usize % self.streams.len()].clone(),
            ts: clock::now_rfc3339(),
            data,
        }
    }
}

/// A `StorageActor` of our own.
struct Storage {
    actor: ActorRef<StorageMsg>,
    join: tokio::task::JoinHandle<()>,
    handle: StorageHandle,
}

impl Storage {
    async fn start(dir: &Path) -> Storage {
        let handle = StorageHandle::new(dir.join("journal"));
        let args = StorageArgs {
            handle: handle.clone(),
            node: "bench-node".into(),
            epoch: 1,
            max_local: u64::MAX,
            segment_max: SEGMENT_BYTES,
            board: StatusBoard::new("bench-node", "single", "bench"),
            audit: AuditLog::memory("bench-node"),
            seed_wait: std::time::Duration::ZERO,
        };
        let (actor, join) = Actor::spawn(None, StorageActor, args)
            .await
            .expect("spawning the storage actor");
        Storage {
            actor,
            join,
            handle,
        }
    }

    fn groups(&self) -> u64 {
        self.handle.info().borrow().commits
    }

    fn bytes(&self) -> u64 {
        self.handle.info().borrow().bytes
    }

    async fn stop(self) {
        self.actor.stop(None);
        let _ = self.join.await;
    }
}

/// What one of our runs did.
struct Run {
    records: u64,
    bytes: u64,
    groups: u64,
    took: Duration,
    /// CPU of the whole process (producers, runtime, writer) during the run.
    cpu: Duration,
    /// Per call, offer (or call) to ack, in ns.
    latencies: Vec<u64>,
}

impl Run {
    fn group_size(&self) -> f64 {
        self.records as f64 / self.groups.max(1) as f64
    }

    fn cpu_per_record_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.records.max(1) as f64
    }

    fn frame(&self) -> u64 {
        (self.bytes as f64 / self.records.max(1) as f64).round() as u64
    }
}

/// Closed loop: `producers` tasks each append `per_call` records at a time until `total` are acked.
async fn saturate(gen: &Gen, dir: &Path, producers: usize, per_call: usize, total: u64) -> Run {
    let storage = Storage::start(dir).await;
    let (bytes0, groups0, cpu0) = (storage.bytes(), storage.groups(), process_cpu());
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..producers {
        let (next, gen, handle) = (next.clone(), gen.clone(), storage.handle.clone());
        set.spawn(async move {
            let mut lat = Vec::new();
            loop {
                let first = next.fetch_add(per_call as u64, Ordering::Relaxed);
                if first >= total {
                    return lat;
                }
                let last = (first + per_call as u64).min(total);
                let recs: Vec<Record> = (first..last).map(|i| gen.make(i)).collect();
                let t0 = Instant::now();
                let stored = handle.append(recs).await;
                lat.push(t0.elapsed().as_nanos() as u64);
                assert_eq!(stored.len() as u64, last - first);
            }
        });
    }
    let latencies = set.join_all().await.concat();
    let took = start.elapsed();
    let run = Run {
        records: total,
        bytes: storage.bytes() - bytes0,
        groups: storage.groups() - groups0,
        took,
        cpu: process_cpu() - cpu0,
        latencies,
    };
    storage.stop().await;
    run
}

/// Open loop: one record per call offered at `rate`/s for `secs`, each call its own task.
async fn paced(gen: &Gen, dir: &Path, rate: u64, secs: u64) -> Run {
    let storage = Storage::start(dir).await;
    let (bytes0, groups0, cpu0) = (storage.bytes(), storage.groups(), process_cpu());
    let total = rate * secs;
    let mut set = JoinSet::new();
    let start = Instant::now();
    let mut issued = 0;
    while issued < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(total);
        while issued < due {
            let (p, handle) = (gen.make(issued), storage.handle.clone());
            let offered = Instant::now();
            set.spawn(async move {
                handle.append(vec![p]).await;
                offered.elapsed().as_nanos() as u64
            });
            issued += 1;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let latencies = set.join_all().await;
    let took = start.elapsed();
    let run = Run {
        records: total,
        bytes: storage.bytes() - bytes0,
        groups: storage.groups() - groups0,
        took,
        cpu: process_cpu() - cpu0,
        latencies,
    };
    storage.stop().await;
    run
}

/// How fio is held: an offered rate, and a time limit so that a slow disk cannot stretch the run.
struct Pace {
    rate_iops: Option<u64>,
    cap: Duration,
}

/// What fio reported.
struct Fio {
    bytes_per_s: f64,
    sync_p50_ns: f64,
    sync_p99_ns: f64,
    syncs: u64,
}

/// fio appending `size` bytes to a fresh file in `dir` in `bs` writes, fdatasync every `every`.
/// At most `cap` long (its bandwidth is then that of the part it did).
fn fio(fio: &Path, dir: &Path, bs: u64, size: u64, every: u64, pace: Pace) -> Fio {
    let file = dir.join("fio-ingest.dat");
    let size = (size / bs).max(1) * bs;
    let mut cmd = Command::new(fio);
    cmd.arg("--name=fushi-ingest")
        .arg(format!("--filename={}", file.display()))
        .args(["--rw=write", "--ioengine=psync", "--fallocate=none"])
        .arg(format!("--bs={bs}"))
        .arg(format!("--size={size}"))
        .arg(format!("--fdatasync={}", every.max(1)))
        .arg("--output-format=json");
    if let Some(r) = pace.rate_iops {
        cmd.arg(format!("--rate_iops={r}"));
    }
    cmd.arg(format!("--runtime={}ms", pace.cap.as_millis().max(1)));
    let out = cmd.output().expect("running fio");
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fio failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = &text[text.find('{').expect("fio's JSON output")..];
    let doc: Value = serde_json::from_str(json).expect("parsing fio's JSON output");
    let job = &doc["jobs"][0];
    let pct = |p: &str| {
        job["sync"]["lat_ns"]["percentile"][p]
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    Fio {
        bytes_per_s: job["write"]["bw_bytes"]
            .as_f64()
            .expect("fio write bw_bytes"),
        sync_p50_ns: pct("50.000000"),
        sync_p99_ns: pct("99.000000"),
        syncs: job["sync"]["lat_ns"]["N"].as_u64().unwrap_or(0),
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64
}

fn ms(ns: f64) -> f64 {
    ns / 1e6
}

/// What every measurement needs.
struct Bench {
    rt: tokio::runtime::Runtime,
    cfg: Config,
    fio: PathBuf,
    gen: Gen,
    root: PathBuf,
}

/// Saturation rounds of ours then fio, each round's figures and the medians printed.
fn saturation(bench: &Bench, label: &str, producers: usize, per_call: usize, total: u64) {
    let Bench {
        rt,
        cfg,
        fio: fio_bin,
        gen,
        root,
    } = bench;
    println!(
        "\n== durable ingest, {label}: {producers} producers, {per_call} record(s) per call, {total} records per round"
    );
    let (mut ours, mut recs, mut base, mut ratios) = (vec![], vec![], vec![], vec![]);
    for round in 1..=cfg.rounds {
        let dir = root.join(format!("{label}-{round}"));
        std::fs::create_dir_all(&dir).expect("creating the round's directory");
        let run = rt.block_on(saturate(gen, &dir, producers, per_call, total));
        let f = fio(
            fio_bin,
            &dir,
            run.frame(),
            run.bytes,
            run.group_size().round() as u64,
            Pace {
                rate_iops: None,
                cap: run.took * 4 + Duration::from_secs(1),
            },
        );
        std::fs::remove_dir_all(&dir).expect("removing the round's directory");
        let mut lat = run.latencies.clone();
        lat.sort_unstable();
        let o = mb_s(run.bytes, run.took);
        let b = f.bytes_per_s / 1e6;
        println!(
            "round {round}: ours {o:.1} MB/s ({:.0} rec/s, CPU {:.1} µs/rec, {} B frames, {} groups of {:.1} records, ack p50 {:.2} ms p99 {:.2} ms); \
             fio {b:.1} MB/s ({} fdatasyncs, p50 {:.2} ms); ratio {:.2}",
            run.records as f64 / run.took.as_secs_f64(),
            run.cpu_per_record_us(),
            run.frame(),
            run.groups,
            run.group_size(),
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
            f.syncs,
            ms(f.sync_p50_ns),
            o / b
        );
        ours.push(o);
        recs.push(run.records as f64 / run.took.as_secs_f64());
        base.push(b);
        ratios.push(o / b);
    }
    let ratio = median(&ratios);
    println!(
        "durable ingest ({label}): ours {:.1} MB/s ({:.0}k rec/s), fio {:.1} MB/s, ratio {ratio:.2} (target >= 0.50: {})",
        median(&ours),
        median(&recs) / 1e3,
        median(&base),
        if ratio >= 0.5 { "met" } else { "MISSED" }
    );
}

fn main() -> ExitCode {
    // `cargo test --all-targets` runs benches too, without `--bench`: measure only when asked.
    if !std::env::args().any(|a| a == "--bench") {
        return ExitCode::SUCCESS;
    }
    let Some(fio_bin) = support::find_in_path("fio") else {
        eprintln!(
            "ingest: `fio` not found on PATH; the baseline needs it.\n\
             Install it with `sudo apt-get install fio` (Debian/Ubuntu) and run again."
        );
        return ExitCode::from(2);
    };
    let cfg = Config {
        records: env_num("INGEST_BENCH_RECORDS", 80_000).max(1),
        producers: env_num("INGEST_BENCH_PRODUCERS", 256).max(1) as usize,
        batch: env_num("INGEST_BENCH_BATCH", 64) as usize,
        batch_producers: env_num("INGEST_BENCH_BATCH_PRODUCERS", 16).max(1) as usize,
        rate: env_num("INGEST_BENCH_RATE", 10_000).max(1),
        paced_secs: env_num("INGEST_BENCH_PACED_SECS", 2).max(1),
        rounds: env_num("INGEST_BENCH_ROUNDS", 3).max(1) as usize,
    };
    let streams = env_num("INGEST_BENCH_STREAMS", 4).max(1);
    let gen = Gen {
        streams: Arc::new((0..streams).map(|s| format!("bench/s{s}")).collect()),
        bytes: env_num("INGEST_BENCH_RECORD_BYTES", 256) as usize,
    };
    let scratch = support::scratch("ingest");
    let root: PathBuf = scratch.path().to_path_buf();
    println!(
        "durable ingest: {}-byte JSON records over {streams} streams, on the daemon's runtime, {} rounds of ours then fio",
        gen.bytes, cfg.rounds
    );
    let rt = fushi_actors::runtime::build().expect("building the daemon's runtime");

    let bench = Bench {
        rt,
        cfg,
        fio: fio_bin,
        gen,
        root,
    };
    let cfg = &bench.cfg;
    saturation(&bench, "one record per call", cfg.producers, 1, cfg.records);
    if cfg.batch > 0 {
        saturation(
            &bench,
            "batched",
            cfg.batch_producers,
            cfg.batch,
            cfg.records * 2,
        );
    }
    let Bench {
        rt,
        fio: fio_bin,
        gen,
        root,
        ..
    } = &bench;

    println!(
        "\n== ack latency at a paced {} records/s, one record per call, {} s per round",
        cfg.rate, cfg.paced_secs
    );
    let (mut p50s, mut p99s, mut f50s, mut f99s) = (vec![], vec![], vec![], vec![]);
    for round in 1..=cfg.rounds {
        let dir = root.join(format!("paced-{round}"));
        std::fs::create_dir_all(&dir).expect("creating the round's directory");
        let run = rt.block_on(paced(gen, &dir, cfg.rate, cfg.paced_secs));
        let f = fio(
            fio_bin,
            &dir,
            run.frame(),
            run.bytes,
            run.group_size().round() as u64,
            Pace {
                rate_iops: Some(cfg.rate),
                cap: run.took * 2 + Duration::from_secs(1),
            },
        );
        std::fs::remove_dir_all(&dir).expect("removing the round's directory");
        let mut lat = run.latencies.clone();
        lat.sort_unstable();
        let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
        println!(
            "round {round}: ours ack p50 {:.2} ms p99 {:.2} ms ({:.0} rec/s achieved, CPU {:.1} µs/rec, {} groups of {:.1}); \
             fio fdatasync p50 {:.2} ms p99 {:.2} ms at the same cadence",
            ms(p50),
            ms(p99),
            run.records as f64 / run.took.as_secs_f64(),
            run.cpu_per_record_us(),
            run.groups,
            run.group_size(),
            ms(f.sync_p50_ns),
            ms(f.sync_p99_ns)
        );
        p50s.push(p50);
        p99s.push(p99);
        f50s.push(f.sync_p50_ns);
        f99s.push(f.sync_p99_ns);
    }
    for (label, ours, floor) in [("p50", &p50s, &f50s), ("p99", &p99s, &f99s)] {
        let (o, f) = (median(ours), median(floor));
        println!(
            "ack latency {label} at {} rec/s: ours {:.2} ms, fio fdatasync {:.2} ms, ratio {:.2} (no target; an ack waits for at least one fdatasync, often the one in flight too)",
            cfg.rate,
            ms(o),
            ms(f),
            o / f
        );
    }
    drop(bench);
    drop(scratch);
    ExitCode::SUCCESS
}
