//! Benchmark: leader failover time of the file backend — `kill -9` of the leader to the standby leading — median, p95 and max over `FAILOVER_BENCH_KILLS` kills, printed beside the configured `stale_after + heartbeat` bound it must stay within.
//!
//! Two real daemons (the release build cargo makes for benchmarks) on one machine, separate
//! data dirs, one shared primary, each with a heartbeat collector. Each round kills the node
//! that leads, times until the other's status.json says `leader` (polled every 2 ms: the
//! figure includes the status actor's 20 ms coalescing), then starts the killed node again and
//! waits until it stands by. The etcd backend runs the same against an etcd the bench starts on
//! loopback (`apt-get install etcd-server`), with `FAILOVER_BENCH_ETCD_STALE_MS` (3000) and
//! `FAILOVER_BENCH_ETCD_HEARTBEAT_MS` (1000): etcd leases are whole seconds (the lease is
//! `stale_after − heartbeat` rounded up) and etcd expires them in a sweep every 500 ms. Knobs:
//! `FAILOVER_BENCH_KILLS` (20), `FAILOVER_BENCH_HEARTBEAT_MS` (200), `FAILOVER_BENCH_STALE_MS`
//! (1000), `FAILOVER_BENCH_BACKENDS` (`file,etcd`); `FUSHI_BENCH_DIR` for the temp dirs.
//!
//! The field's figures are quoted, not measured here (neither runs on this machine):
//! client-go's leader election defaults to a 15 s lease (a standby takes over 15–17 s after the
//! leader dies), and Vault HA on Consul was measured failing over in 30–40 s after a kill
//! (hashicorp/vault#1719, #2949). fushi's bound is the configured `stale_after + heartbeat`.

#![allow(clippy::disallowed_methods, reason = "a benchmark measures real time")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::env_num;

struct Node {
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn new(
        root: &Path,
        name: &str,
        primary: &Path,
        heartbeat: u64,
        stale: u64,
        backend: &str,
    ) -> Self {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("creating a node dir");
        std::fs::write(
            dir.join("supervisor.toml"),
            format!(
                "[node]\nid = \"{name}\"\ndata_dir = \"data\"\n\n[storage]\nprimary = \"{}\"\n\
                 io_timeout = \"300ms\"\nprobe_interval = \"100ms\"\n\n[sync]\ninterval = \"100ms\"\n\n\
                                  [leader]\nenabled = true\nheartbeat = \"{heartbeat}ms\"\nstale_after = \"{stale}ms\"\n{backend}\n\n\
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

/// An etcd of the bench's own on two free loopback ports.
struct Etcd {
    child: Child,
    url: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_etcd(dir: &Path) -> Option<Etcd> {
    let (client, peer) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .args(["--name", "b", "--data-dir"])
        .arg(dir.join("etcd"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args(["--initial-cluster", &format!("b={peer_url}")])
        .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let etcd = Etcd { child, url };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if std::net::TcpStream::connect(("127.0.0.1", client)).is_ok() {
            return Some(etcd);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Kills the leader `kills` times; the takeover times, sorted.
fn run(
    root: &Path,
    kills: usize,
    heartbeat: u64,
    stale: u64,
    backend: &str,
) -> Result<Vec<Duration>, String> {
    let primary = root.join("primary");
    std::fs::create_dir_all(&primary).expect("creating the primary");
    std::fs::write(primary.join(".fushi-primary"), b"").expect("marking the primary");
    let mut nodes = [
        Node::new(root, "a", &primary, heartbeat, stale, backend),
        Node::new(root, "b", &primary, heartbeat, stale, backend),
    ];
    let limit = Duration::from_millis((stale + heartbeat) * 10);
    nodes[0].start();
    nodes[0]
        .wait_role("leader", limit)
        .ok_or("node a never led")?;
    nodes[1].start();
    nodes[1]
        .wait_role("standby", limit)
        .ok_or("node b never stood by")?;
    let mut leader = 0;
    let mut took = Vec::with_capacity(kills);
    for round in 0..kills {
        let standby = 1 - leader;
        // A settled standby: it has watched the lease for a while, as in production.
        std::thread::sleep(Duration::from_millis(heartbeat * 3));
        nodes[leader].kill9();
        let t = nodes[standby]
            .wait_role("leader", limit)
            .ok_or(format!("round {round}: no takeover within {limit:?}"))?;
        took.push(t);
        nodes[leader].start();
        nodes[leader].wait_role("standby", limit).ok_or(format!(
            "round {round}: the killed node did not come back as standby"
        ))?;
        leader = standby;
    }
    took.sort();
    Ok(took)
}

fn report(name: &str, took: &[Duration], heartbeat: u64, stale: u64) {
    let bound = Duration::from_millis(stale + heartbeat);
    let median = took[took.len() / 2];
    let p95 = took[(took.len() * 95 / 100).min(took.len() - 1)];
    let max = *took.last().expect("at least one kill");
    println!(
        "failover ({name} backend, {} kills of the leader, heartbeat {heartbeat} ms, stale_after {stale} ms):",
        took.len()
    );
    println!(
        "  median {:.0} ms  p95 {:.0} ms  max {:.0} ms  min {:.0} ms",
        ms(median),
        ms(p95),
        ms(max),
        ms(took[0])
    );
    println!(
        "  bound stale_after + heartbeat = {:.0} ms: median/bound {:.2}, max/bound {:.2}",
        ms(bound),
        median.as_secs_f64() / bound.as_secs_f64(),
        max.as_secs_f64() / bound.as_secs_f64(),
    );
}

fn main() -> ExitCode {
    let kills = env_num("FAILOVER_BENCH_KILLS", 20) as usize;
    let heartbeat = env_num("FAILOVER_BENCH_HEARTBEAT_MS", 200);
    let stale = env_num("FAILOVER_BENCH_STALE_MS", 1000);
    let etcd_stale = env_num("FAILOVER_BENCH_ETCD_STALE_MS", 3000);
    let etcd_heartbeat = env_num("FAILOVER_BENCH_ETCD_HEARTBEAT_MS", 1000);
    let backends = std::env::var("FAILOVER_BENCH_BACKENDS").unwrap_or_else(|_| "file,etcd".into());
    let base = std::env::var_os("FUSHI_BENCH_DIR").map(PathBuf::from);
    let mut failed = false;
    for backend in backends.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        let tmp = match &base {
            Some(b) => tempfile::tempdir_in(b),
            None => tempfile::tempdir(),
        }
        .expect("creating a temp dir");
        let (result, heartbeat, stale) = match backend {
            "file" => (
                run(tmp.path(), kills, heartbeat, stale, ""),
                heartbeat,
                stale,
            ),
            "etcd" => {
                let Some(etcd) = start_etcd(tmp.path()) else {
                    eprintln!("failover: etcd did not start (apt-get install etcd-server)");
                    failed = true;
                    continue;
                };
                let keys = format!("backend = \"etcd\"\netcd_endpoints = [\"{}\"]", etcd.url);
                let r = run(tmp.path(), kills, etcd_heartbeat, etcd_stale, &keys);
                drop(etcd);
                (r, etcd_heartbeat, etcd_stale)
            }
            other => {
                eprintln!("failover: unknown backend {other:?} (file, etcd)");
                failed = true;
                continue;
            }
        };
        match result {
            Ok(took) => report(backend, &took, heartbeat, stale),
            Err(e) => {
                eprintln!("failover ({backend}): {e}");
                failed = true;
            }
        }
    }
    println!(
        "the field, quoted: client-go leader election 15 s lease (takeover 15-17 s after a kill); \
         Vault HA on Consul 30-40 s (vault#1719, #2949)"
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
