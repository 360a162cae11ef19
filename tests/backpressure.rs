//! Back-pressure, per collector kind: with the primary down and the journal at its `max_local` (4 MiB), a producer far faster than storage (storage takes nothing at all) is held back: the daemon's memory stays under a stated bound while the journal is full, and once the primary is back every record held back lands, none twice.
//!
//! Each kind is held back where its input comes from: `tail` stops advancing in the file (the
//! file grows, the daemon does not), `listen` stops reading its sockets (the client blocks on a
//! full socket buffer), `command` stops reading the pipe (the child blocks in `write`), and
//! `http` does not poll until the last poll's records are durable, saying how many it skipped.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::http_collector::Server;
use crate::util::*;

/// The daemon's resident memory may not pass this while held back. The idle daemon takes about
/// 10 MiB; a tail collector holds one batch (1 MiB of lines) and its records, a listen connection its
/// 64 KiB buffer and one batch of lines, the journal its group: 64 MiB leaves room for the
/// allocator's own slack. The producers offer far more (tail 40 MB of lines, the others
/// without end), so unbounded buffering would pass it within a second.
const RSS_BOUND_KIB: u64 = 64 * 1024;

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn held_config(collector: &str) -> String {
    config(&format!(
        r#"[storage]
probe_interval = "50ms"
io_timeout = "2s"
max_local = "4 MiB"

[sync]
interval = "100ms"

{collector}
"#
    ))
}

/// Starts the daemon with its primary blocked (a file where the directory goes), waits until the
/// journal is full, samples memory for a while as the producer keeps pushing, then unblocks the
/// primary. Returns the daemon and the highest RSS seen.
fn hold_back(env: &Env, kind: &str) -> (Daemon, u64) {
    std::fs::create_dir_all(env.data()).unwrap();
    let primary = env.data().join("primary");
    std::fs::write(&primary, b"not a directory").unwrap();
    let mut d = env.start();
    let log = d.log.clone();
    wait_for_or(
        &format!("{kind}: a full journal in status"),
        || {
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!(
                    "{kind}: fushi exited ({st}) before its journal filled:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let s = env.status()?;
            (s["storage"]["journal_full"] == true).then_some(())
        },
        || {
            format!(
                "{:#?}\n{}",
                env.status(),
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        },
    );
    let mut highest = 0;
    let mut samples = Vec::new();
    // A measurement over time, not a wait for an event: memory that grows without bound while
    // the producer keeps pushing shows as growth across these two seconds of samples.
    for _ in 0..20 {
        let rss = rss_kib(d.pid());
        highest = highest.max(rss);
        samples.push(rss / 1024);
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = env.status().unwrap();
    assert_eq!(
        s["storage"]["journal_full"], true,
        "{kind}: still held back"
    );
    let bytes = s["storage"]["journal_bytes"].as_u64().unwrap();
    // One group beyond the bound at most: a tail batch is 1 MiB of lines, which the journal
    // holds with their ids and timestamps.
    assert!(
        bytes < 6 << 20,
        "{kind}: the journal passed max_local by more than a group: {bytes}"
    );
    eprintln!("{kind}: RSS while held back (MiB): {samples:?}");
    assert!(
        highest < RSS_BOUND_KIB,
        "{kind}: the daemon grew to {highest} KiB while held back (bound {RSS_BOUND_KIB} KiB): {samples:?}"
    );
    std::fs::remove_file(&primary).unwrap();
    (d, highest)
}

/// Waits until the journal holds nothing the primary does not.
fn drained(env: &Env) {
    wait_for("the journal to drain", || {
        let s = env.status()?;
        (s["storage"]["lag_records"] == 0 && s["storage"]["journal_full"] == false).then_some(())
    });
}

fn line(k: u64) -> String {
    format!("{{\"k\":{k},\"pad\":\"{}\"}}\n", "x".repeat(180))
}

/// How many times each `k` of `stream` is on the primary.
fn counts(env: &Env, stream: &str) -> BTreeMap<u64, usize> {
    let mut c = BTreeMap::new();
    for v in primary_lines(&env.data().join("primary"), stream) {
        if let Some(k) = v["data"]["k"].as_u64().or_else(|| v["data"]["n"].as_u64()) {
            *c.entry(k).or_insert(0) += 1;
        }
    }
    c
}

fn assert_once(kind: &str, c: &BTreeMap<u64, usize>) {
    let twice: Vec<_> = c.iter().filter(|(_, &n)| n > 1).take(5).collect();
    assert!(twice.is_empty(), "{kind}: stored twice: {twice:?}");
}

#[test]
fn tail_stops_advancing_in_the_file_and_reads_on_once_storage_takes_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("fast.log");
    let env = Env::new(&held_config(&format!(
        "[[collector]]\nname = \"app\"\nkind = \"tail\"\npath = \"{}\"\nglob_interval = \"100ms\"\n",
        log.display()
    )));
    // A writer far faster than a full journal: 40 MB of lines (ten times max_local), in a file
    // the collector is behind on.
    let n = 200_000u64;
    let mut f = std::fs::File::create(&log).unwrap();
    let mut text = String::new();
    for k in 0..n {
        text.push_str(&line(k));
    }
    f.write_all(text.as_bytes()).unwrap();
    drop(text);
    let (mut d, _) = hold_back(&env, "tail");
    // Status says when all is forwarded; the primary's files are read once then.
    wait_for("every line read and forwarded", || {
        let s = env.status()?;
        let app = s["actors"]
            .as_array()?
            .iter()
            .find(|a| a["name"] == "collectors/app")?;
        (app["records"].as_u64()? >= n && s["storage"]["lag_records"] == 0).then_some(())
    });
    let c = counts(&env, "app");
    assert_eq!(c.len() as u64, n, "every line on the primary");
    assert_once("tail", &c);
    assert!(d.terminate().success());
}

#[test]
fn listen_stops_reading_its_sockets_and_every_acknowledged_line_lands_once() {
    let env = Env::new(&held_config(
        "[[collector]]\nname = \"in\"\nkind = \"listen\"\nstream = \"test/k\"\naddress = \"unix:in.sock\"\n",
    ));
    // Eight clients, each pushing 1 000 lines between reads of its acks.
    let pushers: Vec<Pusher> = (0..8)
        .map(|i| Pusher::start_after(env.path().join("in.sock"), 1000, i * 100_000_000))
        .collect();
    let (mut d, _) = hold_back(&env, "listen");
    let held: usize = pushers.iter().map(Pusher::acked_count).sum();
    wait_for("acks to resume", || {
        (pushers.iter().map(Pusher::acked_count).sum::<usize>() > held + 8000).then_some(())
    });
    let mut acked = Vec::new();
    for p in pushers {
        acked.extend(p.finish().0);
    }
    let c = wait_for("every acknowledged line on the primary", || {
        let c = counts(&env, "test/k");
        acked.iter().all(|k| c.contains_key(k)).then_some(c)
    });
    assert_once("listen", &c);
    assert!(d.terminate().success());
}

#[test]
fn command_stops_reading_its_pipe_and_the_lines_it_read_land_once_without_a_gap() {
    // An endless producer: the child blocks in write(2) once the pipe is full.
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("gen.awk");
    std::fs::write(
        &program,
        format!(
            "BEGIN {{ for (i = 0; ; i++) printf \"{{\\\"k\\\":%d,\\\"pad\\\":\\\"{}\\\"}}\\n\", i }}\n",
            "x".repeat(180)
        ),
    )
    .unwrap();
    let env = Env::new(&held_config(&format!(
        "[[collector]]\nname = \"gen\"\nkind = \"command\"\nargv = [\"awk\", \"-f\", \"{}\"]\n",
        program.display()
    )));
    let (mut d, _) = hold_back(&env, "command");
    let before = counts(&env, "gen").len();
    wait_for("lines to flow again", || {
        (counts(&env, "gen").len() > before + 10_000).then_some(())
    });
    assert_eq!(code(&fushi(&env, &["stop", "gen"])), 0);
    drained(&env);
    let c = counts(&env, "gen");
    assert_once("command", &c);
    // Read in order from one pipe: what landed is a prefix of what the child wrote.
    let last = *c.keys().last().unwrap();
    assert_eq!(c.len() as u64, last + 1, "a gap in what the child wrote");
    assert!(d.terminate().success());
}

#[test]
fn http_skips_polls_while_storage_holds_records_back_and_says_so() {
    let served = Arc::new(AtomicU64::new(0));
    let s = served.clone();
    let pad = "x".repeat(64 * 1024);
    let server = Server::start(move |n| {
        s.fetch_max(n as u64 + 1, Ordering::SeqCst);
        (200, vec![], format!("{{\"n\":{n},\"pad\":\"{pad}\"}}"))
    });
    let env = Env::new(&held_config(&format!(
        "[[collector]]\nname = \"api\"\nkind = \"http\"\nurl = \"http://{}/\"\nevery = \"40ms\"\npoll_jitter = \"0s\"\ntimeout = \"30ms\"\nbackoff = [\"100ms\"]\njitter = \"0s\"\n",
        server.addr
    )));
    let (mut d, _) = hold_back(&env, "http");
    let polls_held = served.load(Ordering::SeqCst);
    // Held back for two seconds at 25 polls a second: a queue would have 50 polls waiting.
    wait_for("the skipped polls said", || {
        d.log().contains("collector.http.skipped").then_some(())
    });
    assert!(
        d.log().contains("polls skipped, none queued"),
        "{}",
        d.log()
    );
    // A loaded machine may read a 64 KiB body slower than `timeout`: that poll fails, and the
    // short backoff above has the next ones go on instead of waiting out 5 s, 10 s, 15 s.
    wait_for("polls to go on", || {
        (served.load(Ordering::SeqCst) > polls_held + 20).then_some(())
    });
    assert_eq!(code(&fushi(&env, &["stop", "api"])), 0);
    drained(&env);
    let c = counts(&env, "api");
    assert_once("http", &c);
    // The server counts a poll when the request arrives, but fushi takes a poll in only once
    // its whole body came within `timeout`: a poll that timed out (a loaded machine reading
    // 64 KiB) was never acknowledged, and shows as the collector's failure. Every other answered
    // poll but the one in flight at the stop is on the primary.
    let answered = served.load(Ordering::SeqCst);
    let missing: Vec<u64> = (0..answered.saturating_sub(1))
        .filter(|n| !c.contains_key(n))
        .collect();
    let audit = env.audit();
    let failed = events(&audit, "supervisor.child.failed", "collectors/api");
    assert!(
        missing.len() <= failed.len(),
        "answered polls missing: {missing:?}, polls failed: {failed:?}"
    );
    assert!(d.terminate().success());
}
