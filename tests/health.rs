//! Health over a live data path: a record waiting for its sync is routine and keeps `fushi health` healthy in every poll, while a primary that stops taking records turns it degraded within `2 × sync.interval + io_timeout`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::util::*;

/// Sync once a second, I/O timeout 1 s: the journal may hold a record 3 s before health is
/// degraded, while every record waits up to a second for its sync.
const INTERVAL: Duration = Duration::from_secs(1);
const IO_TIMEOUT: Duration = Duration::from_secs(1);

fn health_config() -> String {
    config(&format!(
        "[storage]\nprobe_interval = \"100ms\"\nio_timeout = \"{}ms\"\n\n[sync]\ninterval = \"{}ms\"\n\n\
         [[collector]]\nname = \"in\"\nkind = \"listen\"\nstream = \"test/k\"\naddress = \"unix:in.sock\"\n",
        IO_TIMEOUT.as_millis(),
        INTERVAL.as_millis()
    ))
    .replace("[control]\n", "[control]\nallow_inject = true\n")
}

fn health(env: &Env) -> (i32, String) {
    let out = fushi(env, &["health"]);
    (
        out.status.code().expect("an exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// One record every `every` over one connection, each acknowledged before the next is due.
struct Steady {
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Steady {
    fn start(socket: std::path::PathBuf, every: Duration) -> Self {
        let (acked, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (a, s) = (acked.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let conn = wait_for("the listen socket", || UnixStream::connect(&socket).ok());
            conn.set_read_timeout(Some(TIMEOUT))
                .expect("a read timeout");
            let (mut w, mut r) = (&conn, BufReader::new(&conn));
            let mut due = Instant::now();
            for k in 1.. {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                writeln!(w, "{{\"k\":{k}}}").expect("writing a record");
                let mut ack = String::new();
                r.read_line(&mut ack).expect("reading its ack");
                assert_eq!(ack.trim(), format!("{{\"ack\":{k}}}"));
                a.store(k, Ordering::SeqCst);
                due += every;
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        });
        Self {
            acked,
            stop,
            thread: Some(thread),
        }
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("the steady writer");
        }
        self.acked()
    }
}

#[test]
fn sixty_polls_over_a_steady_stream_are_all_healthy_and_a_stalled_primary_degrades_in_time() {
    let env = Env::new(&health_config());
    let mut d = env.start();
    wait_for("healthy at start", || (health(&env).0 == 0).then_some(()));
    let steady = Steady::start(env.path().join("in.sock"), Duration::from_millis(100));
    wait_for("records flowing", || (steady.acked() >= 5).then_some(()));

    // 60 polls, one every 100 ms: each record waits for the next sync, none for long.
    let mut unhealthy = Vec::new();
    let mut waited_for_sync = false;
    for poll in 0..60 {
        let (code, text) = health(&env);
        if code != 0 {
            unhealthy.push(format!("poll {poll}: exit {code}: {text}"));
        }
        let status = fushi(&env, &["status", "--json"]);
        let s: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
        waited_for_sync |= s["storage"]["lag_records"].as_u64().unwrap_or(0) > 0;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        unhealthy.is_empty(),
        "{} of 60 polls not healthy:\n{}",
        unhealthy.len(),
        unhealthy.join("")
    );
    let sent = steady.acked();
    assert!(sent >= 50, "the stream ran at ~10 records/s: {sent} in 6 s");
    let primary = wait_for("the stream on the primary", || {
        let ks = primary_ks(&env.data().join("primary"), "test/k");
        (ks.len() as u64 >= sent).then_some(ks)
    });
    assert!(primary.len() as u64 >= sent);
    assert!(
        waited_for_sync,
        "records waited for their sync during the polls (what made health flap)"
    );

    // The primary stops taking records: degraded within 2 × interval + io_timeout.
    let limit = INTERVAL * 2 + IO_TIMEOUT;
    let out = fushi(&env, &["inject", "primary-down"]);
    assert!(out.status.success(), "{out:?}");
    let stalled = Instant::now();
    let text = wait_for("degraded", || {
        let (code, text) = health(&env);
        (code == 1).then_some(text)
    });
    let took = stalled.elapsed();
    assert!(
        took <= limit + Duration::from_millis(500),
        "degraded only after {took:?} (limit {limit:?})"
    );
    assert!(text.contains("primary store is down"), "{text}");
    let _ = steady.finish();
    assert!(d.terminate().success());
}
