//! Leader election on the etcd backend: a real `etcd` (Debian's etcd-server) started by the test on loopback ports, three daemons on one shared primary. One collects; a `kill -9` of it hands collection to exactly one standby within `stale_after + heartbeat` with a higher epoch (etcd's revision); etcd frozen makes the leader fence itself and keep its journal; `fushi check` says whether etcd answers.
//!
//! The tests need the `etcd` binary (`apt-get install etcd-server`) and fail, saying so,
//! without it.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::leader::*;
use crate::util::*;

const HEARTBEAT: Duration = Duration::from_millis(400);
/// etcd leases are whole seconds, at least 1.5 × etcd's election timeout (set to 500 ms below).
const STALE_AFTER: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_millis(800);

/// An etcd of the test's own: one member on two free loopback ports, its data in a temp dir.
struct Etcd {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    fn start(test: &str) -> Self {
        let found = Command::new("etcd")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        require(found, test, "etcd (apt-get install etcd-server)");
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("etcd"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t={peer_url}")])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("etcd.log")).unwrap())
            .spawn()
            .expect("starting etcd");
        let etcd = Self {
            child,
            url,
            _dir: dir,
        };
        wait_for("etcd to serve", || {
            let out = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &etcd.url, "endpoint", "health"])
                .output()
                .ok()?;
            out.status.success().then_some(())
        });
        etcd
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).expect("signalling etcd");
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn etcd_node(name: &str, primary: &Path, etcd: &Etcd) -> Env {
    Env::new(&node_config_with(
        name,
        primary,
        0,
        &format!("backend = \"etcd\"\netcd_endpoints = [\"{}\"]", etcd.url),
        HEARTBEAT,
        STALE_AFTER,
    ))
}

#[test]
#[ignore = "needs etcd (apt-get install etcd-server): scripts/test runs it (--include-ignored)"]
fn etcd_with_three_daemons_one_collects_and_one_standby_takes_over_after_kill_9() {
    let etcd =
        Etcd::start("etcd_with_three_daemons_one_collects_and_one_standby_takes_over_after_kill_9");
    let p = shared();
    let nodes: Vec<Env> = ["a", "b", "c"]
        .iter()
        .map(|n| etcd_node(n, p.path(), &etcd))
        .collect();
    let check = fushi(&nodes[0], &["check"]);
    assert!(
        stdout(&check).contains(&format!(
            "ok   leader: etcd at {} answers; the lease free",
            etcd.url
        )),
        "{}",
        stdout(&check)
    );
    let mut ds: Vec<Daemon> = vec![nodes[0].start()];
    let first = wait_role(&nodes[0], "leader")["epoch"].as_u64().unwrap();
    for n in &nodes[1..] {
        ds.push(n.start());
        wait_role(n, "standby");
    }
    wait_for("the standbys to see a", || {
        nodes[1..]
            .iter()
            .all(|n| leader(n)["node"] == "a")
            .then_some(())
    });
    never_both(&nodes[1], &nodes[2], Duration::from_millis(300));
    beats_of(p.path(), first, 5);
    let check = fushi(&nodes[1], &["check"]);
    assert!(
        stdout(&check).contains("the lease held by a on "),
        "{}",
        stdout(&check)
    );

    let (new, other, took) = kill_the_leader_of_three(&mut ds[0], &nodes);
    // etcd expires a lease within its own 500 ms sweep after its ttl.
    assert!(
        took <= (STALE_AFTER + HEARTBEAT + SLACK).as_millis(),
        "{took} ms to take over (stale_after + heartbeat = {:?})",
        STALE_AFTER + HEARTBEAT
    );
    never_both(&nodes[new], &nodes[other], Duration::from_millis(1000));
    let second = leader(&nodes[new])["epoch"].as_u64().unwrap();
    assert!(second > first, "epoch {second} after {first}");
    wait_for("the other standby to see the new leader", || {
        (leader(&nodes[other])["epoch"] == second).then_some(())
    });
    beats_of(p.path(), second, 5);

    // The killed node comes back as a standby.
    ds[0] = nodes[0].start();
    wait_role(&nodes[0], "standby");
    for d in &mut ds {
        assert!(d.terminate().success());
    }
    let e = one_at_a_time(p.path());
    assert_eq!(e.len(), 2, "{e:?}");
    verified(&nodes[0]);
}

#[test]
#[ignore = "needs etcd (apt-get install etcd-server): scripts/test runs it (--include-ignored)"]
fn etcd_frozen_makes_the_leader_fence_itself_and_keep_its_journal() {
    let etcd = Etcd::start("etcd_frozen_makes_the_leader_fence_itself_and_keep_its_journal");
    let p = shared();
    let (a, b) = (
        etcd_node("a", p.path(), &etcd),
        etcd_node("b", p.path(), &etcd),
    );
    let mut da = a.start();
    let first = wait_role(&a, "leader")["epoch"].as_u64().unwrap();
    let mut db = b.start();
    wait_role(&b, "standby");
    beats_of(p.path(), first, 5);

    etcd.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    let demoted = da.wait_audit("collector.leader.demote", "leader", 1);
    let took = stopped.elapsed();
    let d = events(&demoted, "collector.leader.demote", "leader")[0].clone();
    assert_eq!(d["payload"]["role"], "fenced", "{d}");
    assert!(
        took <= STALE_AFTER,
        "fenced {took:?} after etcd froze; its lease could expire at {STALE_AFTER:?}"
    );
    assert!(!events(&demoted, "collector.leader.unreachable", "leader").is_empty());
    wait_role(&a, "fenced");
    assert!(!collecting(&a), "a fenced node's collectors are stopped");
    let status = json(&fushi(&a, &["status", "--json"]));
    assert_eq!(status["health"], "yellow", "{status}");

    etcd.signal(Signal::SIGCONT);
    // Some node leads again (etcd decides whose lease outlived the freeze), with a new term.
    let leading = wait_for("a leader again", || {
        [&a, &b]
            .into_iter()
            .find(|n| role(n) == "leader")
            .map(leader)
    });
    let second = leading["epoch"].as_u64().unwrap();
    beats_of(p.path(), second, 5);
    never_both(&a, &b, Duration::from_millis(600));
    assert!(da.terminate().success());
    assert!(db.terminate().success());
    // Nothing a collected was lost: its journal kept it and forwarded it.
    one_at_a_time(p.path());
    verified(&a);
}

#[test]
fn check_fails_saying_etcd_does_not_answer() {
    let p = shared();
    let port = free_port();
    let env = Env::new(&node_config_with(
        "a",
        p.path(),
        0,
        &format!("backend = \"etcd\"\netcd_endpoints = [\"http://127.0.0.1:{port}\"]"),
        HEARTBEAT,
        STALE_AFTER,
    ));
    let check = fushi(&env, &["check"]);
    assert_eq!(code(&check), 1);
    let text = stdout(&check);
    assert!(
        text.contains(&format!(
            "FAIL leader: etcd at http://127.0.0.1:{port} does not answer: tcp connect error: Connection refused"
        )) && text.contains("the daemon would stand by (collecting nothing) until etcd answers"),
        "{text}"
    );
}
