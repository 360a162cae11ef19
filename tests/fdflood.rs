//! A flood of idle connections to a listen collector under a low descriptor limit: the daemon keeps descriptors, CPU and a quiet log, its control socket and status answer, and an honest client is served once idle ones close.

use fushi_actors::fdlimit::{self, Limits};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::util::*;

/// The daemon's open-file limit, soft and hard, so that it cannot raise it.
const LIMIT: u64 = 256;
/// Idle connections: more than the limit.
const IDLE: usize = 300;

fn flood_config(port: u16) -> String {
    config(&format!(
        "[[collector]]\nname = \"in\"\nkind = \"listen\"\nstream = \"test/in\"\naddress = \"127.0.0.1:{port}\"\n\n\
         [[collector]]\nname = \"beat\"\nkind = \"heartbeat\"\nevery = \"1h\"\n"
    ))
}

/// A daemon limited to [`LIMIT`] descriptors with its listen collector up on a free port.
fn start() -> (Env, Daemon, SocketAddr) {
    let (env, d, port) = start_on_free_port("collectors/in", flood_config, |cmd| {
        let limits = Limits {
            soft: LIMIT,
            hard: LIMIT,
        };
        // SAFETY: setrlimit(2) alone, async-signal-safe, between fork and exec.
        unsafe {
            cmd.pre_exec(move || fdlimit::set(limits));
        }
    });
    (env, d, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Runs `fushi ARGS` with a deadline: a daemon out of descriptors never answers at all.
fn fushi_within(env: &Env, args: &[&str], limit: Duration) -> Option<Output> {
    let mut child = Command::new(bin())
        .args(args)
        .arg("-c")
        .arg(env.config())
        .env_remove("XDG_RUNTIME_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running fushi");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("waiting for fushi").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Some(child.wait_with_output().expect("fushi's output"))
}

fn fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// CPU seconds the process has used, user and system.
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat(5), 11 and 12 after the name; 100 Hz.
    (ticks(11) + ticks(12)) / 100.0
}

fn status_actor(env: &Env) -> Value {
    let doc = env.status().expect("status.json");
    doc["actors"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == "status").cloned())
        .expect("the status actor in status.json")
}

#[test]
fn idle_connections_beyond_the_fd_limit_cost_no_cpu_log_or_descriptors_and_honest_clients_are_served(
) {
    let (env, mut d, addr) = start();
    let pid = d.pid();
    wait_for("the warning about the low limit", || {
        d.log().contains("daemon.fd_limit_low").then_some(())
    });
    let lines_before = d.log().lines().count();

    let mut idle: Vec<TcpStream> = (0..IDLE)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("idle connection {i}: {e}")))
        .collect();
    // The daemon is saturated once it says so: the connection limit (or, without one, the
    // first failed accept of a process out of descriptors).
    wait_for("the daemon to reach its limit", || {
        let log = d.log();
        (log.contains("collector.listen.connections_full")
            || log.contains("collector.listen.accept_failed"))
        .then_some(())
    });
    let (cpu_before, flood_start) = (cpu_seconds(pid), Instant::now());
    let held = fds(pid);
    let mut honest = TcpStream::connect(addr).expect("the honest client connects");
    honest
        .write_all(b"{\"honest\":1}\n{\"honest\":2}\n{\"honest\":3}\n")
        .unwrap();
    honest.set_read_timeout(Some(TIMEOUT)).unwrap();

    // While the flood holds, the operator still reaches the daemon, and status still writes.
    let status = fushi_within(&env, &["status", "--json"], Duration::from_secs(10));
    assert!(
        status.as_ref().is_some_and(|o| o.status.code() == Some(0)),
        "fushi status during the flood: {status:?}"
    );
    let restart = fushi_within(
        &env,
        &["restart", "collectors/beat"],
        Duration::from_secs(10),
    );
    assert!(
        restart.as_ref().is_some_and(|o| o.status.code() == Some(0)),
        "fushi restart during the flood: {restart:?}"
    );
    wait_for("status.json to show the restart", || {
        let doc = env.status()?;
        doc["actors"]
            .as_array()?
            .iter()
            .any(|a| a["name"] == "collectors/beat" && a["restarts"].as_u64() >= Some(1))
            .then_some(())
    });
    let (cpu, wall) = (
        cpu_seconds(pid) - cpu_before,
        flood_start.elapsed().as_secs_f64(),
    );
    let logged = d.log().lines().count() - lines_before;
    eprintln!(
        "flood: {IDLE} idle connections, limit {LIMIT}: {held} descriptors held, \
         {cpu:.2} s CPU in {wall:.2} s, {logged} log lines"
    );
    assert!(
        held < LIMIT as usize - 32,
        "{held} of {LIMIT} descriptors held by the daemon"
    );
    assert!(logged < 50, "{logged} log lines during the flood");
    assert!(
        cpu < 0.1 + wall / 2.0,
        "{cpu:.2} s CPU in {wall:.2} s of flood"
    );

    // Once most idle connections close, the honest one is taken from the backlog and acked.
    idle.drain(..IDLE * 3 / 4);
    let mut r = BufReader::new(&honest);
    let mut acked = 0;
    while acked < 3 {
        let mut line = String::new();
        r.read_line(&mut line)
            .expect("the honest client gets its acks");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        acked = v["ack"].as_u64().expect("an ack") as usize;
    }

    let status = status_actor(&env);
    assert_eq!(
        (status["state"].as_str(), status["restarts"].as_u64()),
        (Some("running"), Some(0)),
        "{status}"
    );
    assert!(events(&env.audit(), "supervisor.child.failed", "status").is_empty());
    // The acknowledged records reach the primary, once each and in order.
    let stream_dir = env.data().join("primary/raw/test/in");
    let honest = wait_for("the honest records on the primary", || {
        let mut got = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(&stream_dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).ok()?;
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).ok()?;
                got.extend(v["data"]["honest"].as_u64());
            }
        }
        (got.len() >= 3).then_some(got)
    });
    assert_eq!(honest, [1, 2, 3]);
    drop(idle);
    assert!(d.terminate().success(), "{}", d.log());
    assert_verify_clean(&env);
}

#[test]
fn the_unit_sets_a_descriptor_limit_the_daemon_raises_its_soft_limit_to() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fushi.service"),
    )
    .unwrap();
    let hard = unit
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .map(|v| v.rsplit(':').next().unwrap_or(v).parse::<u64>().unwrap());
    assert!(hard >= Some(65536), "LimitNOFILE in the unit: {hard:?}");
}
