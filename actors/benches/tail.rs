//! Benchmark: a tail collector moving a large file of 200-byte JSON lines into the journal (each batch fsynced, then checkpointed), beside rsyslog's `imfile` → `omfile` moving the same file in the same run.
//!
//! Ours: a real `StorageActor` (16 MiB segments, as the daemon) and a real `TailActor` on the
//! daemon's runtime, in a scratch directory, reading `TAIL_BENCH_MB` (1 000) MB of lines
//! `{"k":N,"msg":"xx…"}` (200 bytes with the newline), spread over each number of files of
//! `TAIL_BENCH_FILES` (1 and 100: how the cost grows with the files, not only the bytes). Timed from the collector's start until
//! its checkpoint says the whole file is read: every line then is durable in the journal (a
//! batch is checkpointed as done only after its append's fdatasync) and the offset durable too.
//!
//! Baseline: `rsyslogd -n` with only `imfile` (its default inotify mode, the same file, read from the start)
//! and `omfile` writing each message as it came (`%msg%\n`) to a file, timed from its start until
//! that file holds every line. rsyslog does not fsync (`omfile` has no per-batch sync unless
//! `flushOnTXEnd` with a sync, which its docs advise against for speed) and parses nothing: it
//! moves text. Ours parses each line as JSON, numbers it, frames it with a checksum, fsyncs, and
//! writes a checkpoint with its own fsync per batch. Vector's published file → TCP figure,
//! 76.7 MiB/s (its own harness, other hardware), is context only.
//!
//! Knobs: `TAIL_BENCH_MB` (1000), `TAIL_BENCH_ROUNDS` (3), `TAIL_BENCH_FILES` (`1,100`),
//! `FUSHI_BENCH_DIR` (see
//! `support::scratch`). Needs `rsyslogd` (`apt-get install rsyslog`).

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures real time, beside its baseline measured the same way"
)]

mod support;

use fushi_actors::audit::AuditLog;
use fushi_actors::board::StatusBoard;
use fushi_actors::collectors::tail::{TailActor, TailArgs};
use fushi_actors::sink::RecordSink;
use fushi_actors::storage::{StorageActor, StorageArgs, StorageHandle};
use ractor::Actor;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use support::{env_num, mb_s, median, process_cpu};

const LINE: usize = 200;

/// Writes `lines` lines of exactly [`LINE`] bytes over `files` files `<dir>/fNNNN.log`
/// (numbered across them, so each line is once in the set).
fn make_files(dir: &Path, lines: u64, files: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let per = lines / files;
    for n in 0..files {
        let path = dir.join(format!("f{n:04}.log"));
        let mut f =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
        for k in n * per..(n + 1) * per {
            let head = format!("{{\"k\":{k},\"msg\":\"");
            let pad = "x".repeat(LINE - head.len() - 3);
            writeln!(f, "{head}{pad}\"}}").unwrap();
        }
        f.flush().unwrap();
        f.get_ref().sync_all().unwrap();
    }
}

/// Ours: until the checkpoint marks every file read to its end.
fn ours(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    pattern: &str,
    files: u64,
    size: u64,
) -> (Duration, Duration) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let checkpoint = dir.join("tail").join("bench.json");
    let cpu0 = process_cpu();
    let took = rt.block_on(async {
        let board = StatusBoard::new("node", "prod", "");
        let handle = StorageHandle::new(dir.join("journal"));
        let args = StorageArgs::unbounded(handle.clone(), board.clone(), AuditLog::memory("node"));
        let (storage, _) = Actor::spawn(None, StorageActor, args).await.unwrap();
        let start = Instant::now();
        let (tail, _) = Actor::spawn(
            None,
            TailActor,
            TailArgs {
                path: "collectors/bench".into(),
                stream: "bench".into(),
                pattern: pattern.to_string(),
                checkpoint: checkpoint.clone(),
                glob_interval: Duration::from_secs(1),
                read_from_end: false,
                partial_after: Duration::from_secs(5),
                rotate_wait: Duration::from_secs(5),
                max_record_bytes: 1 << 20,
                sink: RecordSink::new(board, handle),
            },
        )
        .await
        .unwrap();
        loop {
            let done = std::fs::read(&checkpoint)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|cp| {
                    let marks = cp["files"].as_array().map_or(&[][..], |v| v.as_slice());
                    let read: u64 = marks.iter().filter_map(|m| m["offset"].as_u64()).sum();
                    cp["pending"].is_null() && marks.len() as u64 == files && read == size
                });
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let took = start.elapsed();
        tail.stop(None);
        storage.stop(None);
        took
    });
    (took, process_cpu().saturating_sub(cpu0))
}

/// rsyslog: until its output holds every line.
fn rsyslog(bin: &Path, dir: &Path, pattern: &str, size: u64) -> (Duration, Duration) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join("out.log");
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{work}" maxMessageSize="8k")
module(load="imfile")
template(name="raw" type="string" string="%msg%\n")
input(type="imfile" File="{file}" Tag="bench" freshStartTail="off" readMode="0")
action(type="omfile" file="{out}" template="raw")
"#,
            work = dir.display(),
            file = pattern,
            out = out.display()
        ),
    )
    .unwrap();
    let cpu_child0 = children_cpu();
    let start = Instant::now();
    let mut child = Command::new(bin)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting rsyslogd");
    // Its output drops nothing of a line but what `%msg%` leaves out: wait for the same size.
    loop {
        let got = std::fs::metadata(&out).map_or(0, |m| m.len());
        if got >= size {
            break;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("rsyslogd exited ({st}) having written {got} of {size} bytes");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    let moved = std::fs::read(&out).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
    assert_eq!(
        moved as u64,
        size / LINE as u64,
        "rsyslog moved every line, once"
    );
    (took, children_cpu().saturating_sub(cpu_child0))
}

/// CPU time of this process's waited-for children.
fn children_cpu() -> Duration {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(u.user_time()) + tv(u.system_time())
}

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        return ExitCode::SUCCESS;
    }
    let Some(rsyslogd) = support::find_in_path("rsyslogd")
        .or_else(|| Some(PathBuf::from("/usr/sbin/rsyslogd")).filter(|p| p.is_file()))
    else {
        eprintln!(
            "tail: `rsyslogd` not found; the baseline needs it.\n\
             Install it with `sudo apt-get install rsyslog` (Debian/Ubuntu) and run again."
        );
        return ExitCode::from(2);
    };
    let mb = env_num("TAIL_BENCH_MB", 1000).max(1);
    let rounds = env_num("TAIL_BENCH_ROUNDS", 3).max(1) as usize;
    let sizes: Vec<u64> = std::env::var("TAIL_BENCH_FILES")
        .unwrap_or_else(|_| "1,100".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("TAIL_BENCH_FILES: numbers, e.g. 1,100")
        })
        .collect();
    let lines = mb * 1_000_000 / LINE as u64;
    let scratch = support::scratch("tail");
    let rt = fushi_actors::runtime::build().expect("building the daemon's runtime");
    for files in sizes {
        let files = files.max(1);
        let logs = scratch.path().join(format!("logs-{files}"));
        make_files(&logs, lines, files);
        let lines = lines / files * files;
        let size = lines * LINE as u64;
        let pattern = format!("{}/*.log", logs.display());
        println!(
            "tail throughput: {lines} lines of {LINE} bytes ({} MB) in {files} file(s), {rounds} rounds of ours then rsyslog imfile → omfile",
            size / 1_000_000
        );
        let (mut ours_mb, mut theirs_mb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=rounds {
            let (t, cpu) = ours(&rt, &scratch.path().join("ours"), &pattern, files, size);
            let (r, rcpu) = rsyslog(&rsyslogd, &scratch.path().join("rsyslog"), &pattern, size);
            let (a, b) = (mb_s(size, t), mb_s(size, r));
            println!(
                "round {round}: fushi tail {:>8.0} lines/s {a:>7.1} MB/s (CPU {:.2} s) | rsyslog {:>8.0} lines/s {b:>7.1} MB/s (CPU {:.2} s) | ratio {:.2}",
                lines as f64 / t.as_secs_f64(),
                cpu.as_secs_f64(),
                lines as f64 / r.as_secs_f64(),
                rcpu.as_secs_f64(),
                a / b
            );
            ours_mb.push(a);
            theirs_mb.push(b);
            ratios.push(a / b);
        }
        println!(
            "tail, {files} file(s): fushi {:.1} MB/s (fsynced and checkpointed) vs rsyslog imfile→omfile {:.1} MB/s (no fsync): ratio {:.2} (target ≥ 1.00); Vector's published file→TCP 76.7 MiB/s is context only",
            median(&ours_mb),
            median(&theirs_mb),
            median(&ratios)
        );
        let _ = std::fs::remove_dir_all(&logs);
    }
    ExitCode::SUCCESS
}
