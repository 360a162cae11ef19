//! Benchmark: how long a zero-backoff `SupervisorActor` takes from a child's crash to its replacement handling a first message, beside OTP's `supervisor` measured the same way.
//!
//! Ours: a real [`SupervisorActor`] (status board, memory audit log, alert outbox) with one
//! permanent child and a zero backoff. The child's `pre_start` hands its `ActorRef` to the bench
//! through a channel. Per sample the bench casts `Crash`; the child stores `Instant::now()` and
//! returns `Err` from `handle`. The bench waits for the replacement's `ActorRef`, calls it with
//! `Ping`, and the child answers with the `Instant` at which it handles the ping. Latency = ping
//! handled − crash. OTP: `otp_restart.escript` beside this file does the same with a gen_server
//! under `{one_for_one, 1000000, 1}` and `erlang:monotonic_time(nanosecond)`.
//!
//! Both sides run on one scheduler thread (ours: the daemon's runtime and allocator from
//! [`fushi_actors::runtime`]; OTP: `+S 1:1`), without logging, with samples ~2 ms apart. Ours
//! writes its audit events to the daemon's fsyncing audit file, in a temporary directory. The two
//! sides alternate in rounds, each round warming up first, so a change in machine load hits both
//! alike.
//!
//! Knobs (environment): `RESTART_BENCH_SAMPLES` per side (5000), `RESTART_BENCH_ROUNDS` (5),
//! `RESTART_BENCH_WARMUP` per round (200), `RESTART_BENCH_SPACING_MS` (2),
//! `RESTART_BENCH_RUNTIME` (`daemon` | `multi_thread`: tokio's multi-thread runtime with 2
//! workers, which the daemon ran on before, for comparison), `RESTART_BENCH_AUDIT` (`file` |
//! `memory`: the tests' in-memory audit log, which keeps every event and so grows the heap).

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures real time, beside its baseline measured the same way"
)]

// The daemon's allocator comes with it; of its other helpers this bench uses a few.
#[allow(dead_code)]
mod support;

use fushi_actors::alert::AlertOutbox;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Duration;
use support::restart::{drive, percentile, totals, us, zero_backoff, Ours, Sample};
use support::{env_num, find_in_path};

struct Config {
    rounds: usize,
    warmup: usize,
    samples: usize,
    spacing: Duration,
    multi_thread: bool,
    file_audit: bool,
}

/// One round of OTP's supervisor, from the escript; returns its info lines too.
fn measure_otp(
    escript: &Path,
    warmup: usize,
    samples: usize,
    spacing: Duration,
) -> (Vec<Sample>, Vec<String>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/otp_restart.escript");
    let out = Command::new(escript)
        .arg(&script)
        .arg(warmup.to_string())
        .arg(samples.to_string())
        .arg(spacing.as_millis().to_string())
        .output()
        .expect("running escript");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        panic!(
            "{} failed ({}):\n{stdout}{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut info = Vec::new();
    let mut samples_out = Vec::with_capacity(samples);
    for line in stdout.lines() {
        if let Some(i) = line.strip_prefix('#') {
            info.push(i.trim().to_string());
            continue;
        }
        let nums: Vec<u64> = line
            .split_whitespace()
            .map(|n| n.parse().expect("escript sample is not a number"))
            .collect();
        if let [to_start, to_bench, to_ping] = nums[..] {
            samples_out.push(Sample {
                to_start,
                to_bench,
                to_ping,
            });
        }
    }
    assert_eq!(samples_out.len(), samples, "escript output:\n{stdout}");
    (samples_out, info)
}

fn summary(name: &str, samples: &[Sample]) {
    let t = totals(samples);
    let mean = t.iter().sum::<u64>() as f64 / t.len() as f64;
    println!(
        "{name:>4}: n {} min {:.1} µs p10 {:.1} p50 {:.1} p90 {:.1} p99 {:.1} max {:.1} mean {:.1}",
        t.len(),
        us(percentile(&t, 0.0)),
        us(percentile(&t, 0.10)),
        us(percentile(&t, 0.50)),
        us(percentile(&t, 0.90)),
        us(percentile(&t, 0.99)),
        us(percentile(&t, 1.0)),
        mean / 1000.0,
    );
    let phase = |f: fn(&Sample) -> u64| {
        let v: Vec<u64> = samples.iter().map(f).collect();
        (us(percentile(&v, 0.5)), us(percentile(&v, 0.99)))
    };
    let (a, b, c) = (
        phase(|s| s.to_start),
        phase(|s| s.to_bench),
        phase(|s| s.to_ping),
    );
    println!(
        "      phases p50/p99 µs: crash→replacement start {:.1}/{:.1}, start→bench has ref {:.1}/{:.1}, →ping handled {:.1}/{:.1}",
        a.0, a.1, b.0, b.1, c.0, c.1
    );
}

fn main() -> ExitCode {
    // `cargo test --all-targets` runs benches too, without `--bench`: measure only when asked.
    if !std::env::args().any(|a| a == "--bench") {
        return ExitCode::SUCCESS;
    }
    let Some(escript) = find_in_path("escript") else {
        eprintln!(
            "restart_latency: `escript` not found on PATH; the OTP baseline needs Erlang.\n\
             Install it with `sudo apt-get install erlang-base` (Debian/Ubuntu) and run again."
        );
        return ExitCode::from(2);
    };
    let runtime = std::env::var("RESTART_BENCH_RUNTIME").unwrap_or_else(|_| "daemon".into());
    let cfg = Config {
        rounds: env_num("RESTART_BENCH_ROUNDS", 5).max(1) as usize,
        warmup: env_num("RESTART_BENCH_WARMUP", 200) as usize,
        samples: env_num("RESTART_BENCH_SAMPLES", 5000).max(1) as usize,
        spacing: Duration::from_millis(env_num("RESTART_BENCH_SPACING_MS", 2)),
        multi_thread: match runtime.as_str() {
            "daemon" => false,
            "multi_thread" => true,
            other => panic!("RESTART_BENCH_RUNTIME={other:?}: use daemon or multi_thread"),
        },
        file_audit: match std::env::var("RESTART_BENCH_AUDIT").as_deref() {
            Err(_) | Ok("file") => true,
            Ok("memory") => false,
            Ok(other) => panic!("RESTART_BENCH_AUDIT={other:?}: use file or memory"),
        },
    };
    println!(
        "restart latency: {} samples per side in {} alternating rounds, each after {} warm-up \
         restarts, {:?} apart; ours on tokio {}, audit log in {}",
        cfg.samples,
        cfg.rounds,
        cfg.warmup,
        cfg.spacing,
        if cfg.multi_thread {
            "multi_thread with 2 workers (not the daemon's)"
        } else {
            "current_thread (the daemon's runtime)"
        },
        if cfg.file_audit {
            "a file (fsynced by its writer thread)"
        } else {
            "memory"
        }
    );

    let rt = if cfg.multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        fushi_actors::runtime::build()
    }
    .expect("building the tokio runtime");

    let mut tree = drive(
        &rt,
        Ours::start(cfg.file_audit, zero_backoff(), AlertOutbox::default()),
    );
    let (mut ours, mut otp) = (Vec::new(), Vec::new());
    let mut otp_info = Vec::new();
    for round in 0..cfg.rounds {
        // Spread the samples over the rounds; the first rounds take the remainder.
        let n = cfg.samples / cfg.rounds + usize::from(round < cfg.samples % cfg.rounds);
        if n == 0 {
            continue;
        }
        let (w, s) = (cfg.warmup, cfg.spacing);
        let (back, got) = drive(&rt, tree.run(w, n, s));
        tree = back;
        // Our runtime is idle (its workers parked) while the Erlang VM runs.
        let (o, info) = measure_otp(&escript, w, n, s);
        println!(
            "round {}: p50 ours {:.1} µs, OTP {:.1} µs",
            round + 1,
            us(percentile(&totals(&got), 0.5)),
            us(percentile(&totals(&o), 0.5))
        );
        ours.extend(got);
        otp.extend(o);
        otp_info = info;
    }
    drive(&rt, tree.stop());
    drop(rt);

    if !otp_info.is_empty() {
        println!("OTP: {}", otp_info.join("; "));
    }
    summary("ours", &ours);
    summary("OTP", &otp);
    let (ours_t, otp_t) = (totals(&ours), totals(&otp));
    for (label, p, target) in [("p50", 0.50, "target <= 0.50"), ("p99", 0.99, "no target")] {
        let (a, b) = (percentile(&ours_t, p), percentile(&otp_t, p));
        println!(
            "restart latency {label}: ours {:.1} µs, OTP {:.1} µs, ratio {:.2} ({target})",
            us(a),
            us(b),
            a as f64 / b as f64
        );
    }
    ExitCode::SUCCESS
}
