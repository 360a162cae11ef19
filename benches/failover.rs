//! Benchmark: leader failover time of the file backend — `kill -9` of the leader to the standby leading — median, p95 and max over `FAILOVER_BENCH_KILLS` kills, printed beside the configured `stale_after + heartbeat` bound it must stay within.
//!
//! Two real daemons (the release build cargo makes for benchmarks) on one machine, separate
//! data dirs, one shared primary, each with a heartbeat collector. Each round kills the node
//! that leads, times until the other's status.json says `leader` (polled every 2 ms: the
//! figure includes the status actor's 20 ms coalescing), then starts the killed node again and
//! waits until it stands by. Knobs: `FAILOVER_BENCH_KILLS` (20), `FAILOVER_BENCH_HEARTBEAT_MS`
//! (200), `FAILOVER_BENCH_STALE_MS` (1000); `FUSHI_BENCH_DIR` for the temp dirs.
//!
//! The field's figures are quoted, not measured here (neither runs on this machine):
//! client-go's leader election defaults to a 15 s lease (a standby takes over 15–17 s after the
//! leader dies), and Vault HA on Consul was measured failing over in 30–40 s after a kill
//! (hashicorp/vault#1719, #2949). fushi's bound is the configured `stale_after + heartbeat`.

#![allow(clippy::disallowed_methods, reason = "a benchmark measures real time")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

struct Node {
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn new(root: &Path, name: &str, primary: &Path, heartbeat: u64, stale: u64) -> Self {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("creating a node dir");
        std::fs::write(
            dir.join("supervisor.toml"),
            format!(
                "[node]\nid = \"{name}\"\ndata_dir = \"data\"\n\n[storage]\nprimary = \"{}\"\n\
                 io_timeout = \"300ms\"\nprobe_interval = \"100ms\"\n\n[sync]\ninterval = \"100ms\"\n\n\
                 [leader]\nenabled = true\nheartbeat = \"{heartbeat}ms\"\nstale_after = \"{stale}ms\"\n\n\
                 [[collector]]\nname = \"beat\"\nkind = \"heartbeat\"\nevery = \"100ms\"\n\n\
                 [control]\nhttp = \"\"\n",
                primary.display()
            ),
        )
        .expect("writing a config");
        Self { dir, child: None }
    }

    fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_fushi"))
            .args(["run", "-c", "supervisor.toml", "--log", "text"])
            .current_dir(&self.dir)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting fushi");
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn role(&self) -> String {
        std::fs::read(self.dir.join("data/status.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["leader"]["role"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    fn wait_role(&self, want: &str, limit: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if self.role() == want {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> ExitCode {
    let kills = env_num("FAILOVER_BENCH_KILLS", 20) as usize;
    let heartbeat = env_num("FAILOVER_BENCH_HEARTBEAT_MS", 200);
    let stale = env_num("FAILOVER_BENCH_STALE_MS", 1000);
    let base = std::env::var_os("FUSHI_BENCH_DIR").map(PathBuf::from);
    let tmp = match &base {
        Some(b) => tempfile::tempdir_in(b),
        None => tempfile::tempdir(),
    }
    .expect("creating a temp dir");
    let primary = tmp.path().join("primary");
    std::fs::create_dir_all(&primary).expect("creating the primary");
    std::fs::write(primary.join(".fushi-primary"), b"").expect("marking the primary");
    let mut nodes = [
        Node::new(tmp.path(), "a", &primary, heartbeat, stale),
        Node::new(tmp.path(), "b", &primary, heartbeat, stale),
    ];
    let limit = Duration::from_millis((stale + heartbeat) * 10);
    nodes[0].start();
    if nodes[0].wait_role("leader", limit).is_none() {
        eprintln!("failover: node a never led");
        return ExitCode::FAILURE;
    }
    nodes[1].start();
    if nodes[1].wait_role("standby", limit).is_none() {
        eprintln!("failover: node b never stood by");
        return ExitCode::FAILURE;
    }
    let mut leader = 0;
    let mut took = Vec::with_capacity(kills);
    for round in 0..kills {
        let standby = 1 - leader;
        // A settled standby: it has watched the lock for a while, as in production.
        std::thread::sleep(Duration::from_millis(heartbeat * 3));
        nodes[leader].kill9();
        let Some(t) = nodes[standby].wait_role("leader", limit) else {
            eprintln!("failover: round {round}: no takeover within {limit:?}");
            return ExitCode::FAILURE;
        };
        took.push(t);
        nodes[leader].start();
        if nodes[leader].wait_role("standby", limit).is_none() {
            eprintln!("failover: round {round}: the killed node did not come back as standby");
            return ExitCode::FAILURE;
        }
        leader = standby;
    }
    took.sort();
    let bound = Duration::from_millis(stale + heartbeat);
    let median = took[took.len() / 2];
    let p95 = took[(took.len() * 95 / 100).min(took.len() - 1)];
    let max = *took.last().expect("at least one kill");
    println!(
        "failover (file backend, {kills} kills of the leader, heartbeat {heartbeat} ms, stale_after {stale} ms):"
    );
    println!(
        "  median {:.0} ms  p95 {:.0} ms  max {:.0} ms  min {:.0} ms",
        ms(median),
        ms(p95),
        ms(max),
        ms(took[0])
    );
    println!(
        "  bound stale_after + heartbeat = {:.0} ms: median/bound {:.2}, max/bound {:.2}{}",
        ms(bound),
        median.as_secs_f64() / bound.as_secs_f64(),
        max.as_secs_f64() / bound.as_secs_f64(),
        if max <= bound + Duration::from_millis(100) {
            ""
        } else {
            "  (max beyond the bound + 100 ms of polling and status writes)"
        }
    );
    println!(
        "  the field, quoted: client-go leader election 15 s lease (takeover 15-17 s after a kill); \
         Vault HA on Consul 30-40 s (vault#1719, #2949)"
    );
    ExitCode::SUCCESS
}
