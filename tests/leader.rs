//! Leader election on the file backend with real daemons on one machine: separate data dirs, one shared primary. Exactly one node collects; a standby takes over within `stale_after + heartbeat` of the leader's death with a higher epoch; a frozen or cut-off leader fences itself; a node of higher priority gets the lease handed over; the primary verifies clean per epoch.
//!
//! Every node runs a heartbeat collector on one stream (`beat`) every 50 ms, so the primary
//! shows who collected when: each record carries its node, its epoch and the time it was made.
//! That is the oracle for "never two collecting at once": where the time ranges of two epochs'
//! records overlap, two nodes collected at once.

use nix::sys::signal::Signal;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::outage::{prerequisites, Mounts};
use crate::util::*;

const HEARTBEAT: Duration = Duration::from_millis(200);
const STALE_AFTER: Duration = Duration::from_millis(1000);

/// What the daemon's own take-over adds to `stale_after + heartbeat`: a few file operations, and
/// its ticks running late on a loaded two-core machine.
const IO: Duration = Duration::from_millis(300);

/// A shared primary: a marked directory outside every node's data dir.
pub(crate) fn shared() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".fushi-primary"), b"").unwrap();
    dir
}

pub(crate) fn node_config(name: &str, primary: &Path, priority: i32) -> String {
    node_config_with(name, primary, priority, "", HEARTBEAT, STALE_AFTER)
}

/// A node's config, with more `[leader]` keys (`leader`) and its own timing.
pub(crate) fn node_config_with(
    name: &str,
    primary: &Path,
    priority: i32,
    leader: &str,
    heartbeat: Duration,
    stale_after: Duration,
) -> String {
    format!(
        r#"[node]
id = "{name}"
data_dir = "data"

[supervisor]
shutdown_timeout = "2s"

[storage]
primary = "{}"
probe_interval = "100ms"
io_timeout = "300ms"

[sync]
interval = "100ms"

[leader]
enabled = true
heartbeat = "{}ms"
stale_after = "{}ms"
priority = {priority}
{leader}

[[collector]]
name = "beat"
kind = "heartbeat"
every = "50ms"

[control]
http = ""
"#,
        primary.display(),
        heartbeat.as_millis(),
        stale_after.as_millis()
    )
}

fn node(name: &str, primary: &Path, priority: i32) -> Env {
    Env::new(&node_config(name, primary, priority))
}

/// The leader section of a node's status.json.
pub(crate) fn leader(env: &Env) -> Value {
    env.status()
        .map(|s| s["leader"].clone())
        .unwrap_or(Value::Null)
}

pub(crate) fn role(env: &Env) -> String {
    leader(env)["role"].as_str().unwrap_or("").to_string()
}

pub(crate) fn wait_role(env: &Env, want: &str) -> Value {
    wait_for(&format!("role {want}"), || {
        let l = leader(env);
        (l["role"] == want).then_some(l)
    })
}

/// Whether the node's heartbeat collector runs, as its status says.
pub(crate) fn collecting(env: &Env) -> bool {
    env.status().is_some_and(|s| {
        s["actors"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["name"] == "collectors/beat" && a["state"] == "running")
    })
}

/// Milliseconds from the wall-clock moment `t0` to an audit record's `ts` (one machine, one clock):
/// the daemon's own moment, free of the test's polling.
pub(crate) fn ms_after(t0: std::time::SystemTime, e: &Value) -> u128 {
    let ts = e["ts"].as_str().expect("ts");
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .expect("an RFC 3339 ts");
    let t0 = time::OffsetDateTime::from(t0);
    (t - t0).whole_milliseconds().max(0) as u128
}

/// Kills `d`, the leader of three (`nodes[0]`), and waits for exactly one of the other two to
/// lead. Returns its index, the other standby's, and how long after the kill it took over by its
/// own audit record.
pub(crate) fn kill_the_leader_of_three(d: &mut Daemon, nodes: &[Env]) -> (usize, usize, u128) {
    let killed = std::time::SystemTime::now();
    d.kill9();
    let new = wait_for("a new leader", || {
        let leading: Vec<usize> = (1..3).filter(|&i| role(&nodes[i]) == "leader").collect();
        (!leading.is_empty()).then_some(leading)
    });
    assert_eq!(new.len(), 1, "two standbys took over: {new:?}");
    let acquired = audit(&nodes[new[0]].data());
    let took = ms_after(
        killed,
        events(&acquired, "collector.leader.acquire", "leader")[0],
    );
    (new[0], 3 - new[0], took)
}

/// Samples both nodes' status for `d`: never both leading with their collectors running. A
/// measurement over time, not a wait for an event, so it sleeps between samples; it only sees
/// overlaps longer than a sample, which is why every test also checks the primary's records
/// with [`one_at_a_time`].
pub(crate) fn never_both(a: &Env, b: &Env, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        let both = role(a) == "leader" && role(b) == "leader" && collecting(a) && collecting(b);
        assert!(
            !both,
            "two nodes collect at once: {} {}",
            leader(a),
            leader(b)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first and last `ts` of each epoch's records on the primary, with the node that wrote them.
pub(crate) fn epochs(primary: &Path) -> BTreeMap<u64, (String, String, String, usize)> {
    let mut out: BTreeMap<u64, (String, String, String, usize)> = BTreeMap::new();
    for l in primary_lines(primary, "beat") {
        let e = l["epoch"].as_u64().unwrap();
        let ts = l["ts"].as_str().unwrap().to_string();
        let node = l["node"].as_str().unwrap().to_string();
        let entry = out
            .entry(e)
            .or_insert_with(|| (node.clone(), ts.clone(), ts.clone(), 0));
        assert_eq!(entry.0, node, "two nodes wrote epoch {e}");
        entry.1 = entry.1.clone().min(ts.clone());
        entry.2 = entry.2.clone().max(ts);
        entry.3 += 1;
    }
    out
}

/// No two epochs' records overlap in time: one node collected at a time.
pub(crate) fn one_at_a_time(primary: &Path) -> BTreeMap<u64, (String, String, String, usize)> {
    let e = epochs(primary);
    let spans: Vec<_> = e.values().collect();
    for w in spans.windows(2) {
        assert!(
            w[0].2 < w[1].1,
            "epochs overlap in time (two nodes collected at once): {e:?}"
        );
    }
    e
}

/// `fushi verify` of the shared primary, through one node's config: clean, per epoch.
pub(crate) fn verified(env: &Env) -> Value {
    let out = fushi(env, &["verify", "--json"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// Waits until the primary holds `n` beats of `epoch`.
pub(crate) fn beats_of(primary: &Path, epoch: u64, n: usize) {
    wait_for(
        &format!("{n} beats of epoch {epoch} on the primary"),
        || (epochs(primary).get(&epoch).is_some_and(|e| e.3 >= n)).then_some(()),
    );
}

#[test]
fn kill_9_of_the_leader_hands_collection_to_a_standby_within_stale_after_plus_heartbeat() {
    let p = shared();
    let (a, b) = (node("a", p.path(), 0), node("b", p.path(), 0));
    let mut da = a.start();
    let la = wait_role(&a, "leader");
    let first = la["epoch"].as_u64().unwrap();
    let mut db = b.start();
    let lb = wait_role(&b, "standby");
    wait_for("b to see a as the holder", || {
        (leader(&b)["node"] == "a").then_some(())
    });
    assert_eq!(lb["enabled"], true);
    // Standing by, its collectors stopped, is healthy.
    wait_for("the standby green", || {
        (b.status()?["health"] == "green").then_some(())
    });
    let st = fushi(&b, &["status"]);
    assert!(
        stdout(&st).contains("leader standby  holder a  epoch"),
        "{}",
        stdout(&st)
    );
    never_both(&a, &b, Duration::from_millis(600));
    beats_of(p.path(), first, 5);

    let killed = std::time::SystemTime::now();
    da.kill9();
    let lb = wait_role(&b, "leader");
    let acquired = db.wait_audit("collector.leader.acquire", "leader", 1);
    let took = ms_after(
        killed,
        events(&acquired, "collector.leader.acquire", "leader")[0],
    );
    // The daemon's own moment of taking over (its audit record), not the test's view of it.
    assert!(
        took <= (STALE_AFTER + HEARTBEAT + IO).as_millis(),
        "the standby took {took} ms to take over (stale_after + heartbeat = {:?})",
        STALE_AFTER + HEARTBEAT
    );
    let second = lb["epoch"].as_u64().unwrap();
    assert!(second > first, "epoch {second} after {first}");
    let acq = events(&acquired, "collector.leader.acquire", "leader")[0].clone();
    assert_eq!(acq["payload"]["from"]["node"], "a", "{acq}");
    assert!(!events(&acquired, "collector.leader.stale_detected", "leader").is_empty());
    assert_eq!(lb["failovers"], 1);

    // The old leader comes back as a standby: the lease is b's now.
    let mut da = a.start();
    wait_role(&a, "standby");
    wait_for("a to see b as the holder", || {
        (leader(&a)["node"] == "b").then_some(())
    });
    never_both(&a, &b, Duration::from_millis(600));
    beats_of(p.path(), second, 5);
    let leader_out = fushi(&a, &["leader"]);
    assert_eq!(code(&leader_out), 0);
    let text = stdout(&leader_out);
    assert!(
        text.contains("holder b on ") && text.contains(&format!("epoch {second}")),
        "{text}"
    );
    assert!(text.contains("this node (a) is standby"), "{text}");

    assert!(da.terminate().success());
    assert!(db.terminate().success());
    let e = one_at_a_time(p.path());
    assert_eq!(e[&first].0, "a");
    assert_eq!(e[&second].0, "b");
    let report = verified(&a);
    assert_eq!(report["problems"].as_array().unwrap().len(), 0, "{report}");
}

#[test]
fn a_leader_frozen_past_stale_after_demotes_itself_when_it_wakes_and_its_late_records_keep_their_epoch(
) {
    let p = shared();
    let (a, b) = (node("a", p.path(), 0), node("b", p.path(), 0));
    let mut da = a.start();
    let first = wait_role(&a, "leader")["epoch"].as_u64().unwrap();
    let mut db = b.start();
    wait_role(&b, "standby");
    beats_of(p.path(), first, 5);

    da.signal(Signal::SIGSTOP);
    let second = wait_role(&b, "leader")["epoch"].as_u64().unwrap();
    assert!(second > first);
    beats_of(p.path(), second, 5);
    let woke = std::time::SystemTime::now();
    da.signal(Signal::SIGCONT);
    let demoted = da.wait_audit("collector.leader.demote", "leader", 1);
    let d = events(&demoted, "collector.leader.demote", "leader")[0].clone();
    // By its own audit record: its deadline passed while it was frozen, so it fences on waking.
    let took = ms_after(woke, &d);
    assert!(
        took <= (HEARTBEAT + IO).as_millis(),
        "a took {took} ms to demote itself after waking"
    );
    assert_eq!(d["payload"]["epoch"], first, "{d}");
    wait_for("a to stand by", || (role(&a) != "leader").then_some(()));
    never_both(&a, &b, Duration::from_millis(400));

    assert!(da.terminate().success());
    assert!(db.terminate().success());
    // What a made before its deadline is on the primary under its old epoch; what its
    // collectors made on waking, past the deadline, the sink refused: the epochs never overlap.
    let e = one_at_a_time(p.path());
    assert_eq!(e[&first].0, "a");
    assert_eq!(e[&second].0, "b");
    assert_eq!(e.len(), 2, "{e:?}");
    let report = verified(&a);
    assert_eq!(report["problems"].as_array().unwrap().len(), 0, "{report}");
}

#[test]
fn a_node_of_higher_priority_gets_the_lease_handed_over_and_release_hands_it_on() {
    let p = shared();
    let (a, c) = (node("a", p.path(), 0), node("c", p.path(), 5));
    let mut da = a.start();
    let first = wait_role(&a, "leader")["epoch"].as_u64().unwrap();
    beats_of(p.path(), first, 5);
    // c comes (back) with a higher priority: it asks, and a hands over at a clean point.
    let mut dc = c.start();
    let second = wait_role(&c, "leader")["epoch"].as_u64().unwrap();
    assert!(second > first);
    let released = da.wait_audit("collector.leader.release", "leader", 1);
    let r = events(&released, "collector.leader.release", "leader")[0].clone();
    assert!(
        r["payload"]["reason"]
            .as_str()
            .unwrap()
            .contains("c (priority 5) asks"),
        "{r}"
    );
    assert_eq!(r["payload"]["collectors_stopped"], true, "{r}");
    wait_role(&a, "standby");
    beats_of(p.path(), second, 5);

    // An operator's release: c hands over, and, holding off, lets a take it.
    let out = fushi(&c, &["leader", "--release"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("released the lease"),
        "{}",
        stdout(&out)
    );
    let third = wait_role(&a, "leader")["epoch"].as_u64().unwrap();
    assert!(third > second);
    beats_of(p.path(), third, 3);
    let json = json(&fushi(&a, &["leader", "--json"]));
    assert_eq!(json["role"], "leader", "{json}");
    assert_eq!(json["holder"]["node"], "a", "{json}");
    // Not leading, there is nothing to release.
    let out = fushi(&c, &["leader", "--release"]);
    assert_eq!(code(&out), 1);

    assert!(da.terminate().success());
    assert!(dc.terminate().success());
    // Hand-overs at a clean point: the epochs' records never overlap in time.
    let e = one_at_a_time(p.path());
    assert_eq!(
        e.values().map(|v| v.0.as_str()).collect::<Vec<_>>(),
        ["a", "c", "a"]
    );
    verified(&a);
}

#[test]
fn with_three_nodes_one_standby_takes_over_and_never_two_collect() {
    let p = shared();
    let nodes: Vec<Env> = ["a", "b", "c"]
        .iter()
        .map(|n| node(n, p.path(), 0))
        .collect();
    let mut ds: Vec<Option<Daemon>> = Vec::new();
    ds.push(Some(nodes[0].start()));
    let first = wait_role(&nodes[0], "leader")["epoch"].as_u64().unwrap();
    for n in &nodes[1..] {
        ds.push(Some(n.start()));
        wait_role(n, "standby");
    }
    beats_of(p.path(), first, 5);
    let (new, other, took) = kill_the_leader_of_three(ds[0].as_mut().unwrap(), &nodes);
    assert!(
        took <= (STALE_AFTER + HEARTBEAT + IO).as_millis(),
        "{took} ms to take over (stale_after + heartbeat = {:?})",
        STALE_AFTER + HEARTBEAT
    );
    never_both(&nodes[new], &nodes[other], Duration::from_millis(1500));
    let second = leader(&nodes[new])["epoch"].as_u64().unwrap();
    assert!(second > first);
    beats_of(p.path(), second, 5);
    for d in ds.iter_mut().skip(1) {
        assert!(d.as_mut().unwrap().terminate().success());
    }
    let e = one_at_a_time(p.path());
    assert_eq!(e.len(), 2, "{e:?}");
    verified(&nodes[1]);
}

/// Node a reaches the primary through its own bindfs mount; freezing that bindfs cuts a off
/// (every lock and sync operation hangs) while b's view works.
#[test]
#[ignore = "needs root, bindfs and /dev/fuse: scripts/test runs it (--include-ignored)"]
fn a_leader_cut_off_from_the_primary_fences_itself_before_the_standby_takes_over() {
    prerequisites("a_leader_cut_off_from_the_primary_fences_itself_before_the_standby_takes_over");
    let _serial = crate::outage::SERIAL
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let p = shared();
    let tmp = tempfile::tempdir().unwrap();
    let mnt: PathBuf = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mut mounts = Mounts::default();
    let fuse = mounts.bindfs(p.path(), &mnt);
    let (a, b) = (node("a", &mnt, 0), node("b", p.path(), 0));
    let mut da = a.start();
    let first = wait_role(&a, "leader")["epoch"].as_u64().unwrap();
    let mut db = b.start();
    wait_role(&b, "standby");
    beats_of(p.path(), first, 5);

    crate::outage::signal(fuse, Signal::SIGSTOP);
    let fenced = da.wait_audit("collector.leader.demote", "leader", 1);
    let fenced_at = events(&fenced, "collector.leader.demote", "leader")[0]["ts"]
        .as_str()
        .unwrap()
        .to_string();
    wait_role(&a, "fenced");
    let took = db.wait_audit("collector.leader.acquire", "leader", 1);
    let took_at = events(&took, "collector.leader.acquire", "leader")[0]["ts"]
        .as_str()
        .unwrap()
        .to_string();
    // One clock (one machine): a stopped collecting before b started.
    assert!(
        fenced_at < took_at,
        "a fenced at {fenced_at}, b took over at {took_at}"
    );
    let second = wait_role(&b, "leader")["epoch"].as_u64().unwrap();
    beats_of(p.path(), second, 5);
    let health = json(&fushi(&a, &["status", "--json"]));
    assert_eq!(health["health"], "yellow", "{health}");

    // The mount thaws: a stands by, and forwards what it collected before it fenced.
    crate::outage::signal(fuse, Signal::SIGCONT);
    wait_for_or(
        "a to stand by behind b",
        || {
            let l = leader(&a);
            (l["role"] == "standby" && l["node"] == "b").then_some(())
        },
        || format!("a: {}\n{}", leader(&a), da.log()),
    );
    wait_for("a's journal drained", || {
        let s = a.status()?;
        (s["storage"]["lag_records"] == 0).then_some(())
    });
    assert!(da.terminate().success());
    assert!(db.terminate().success());
    let e = one_at_a_time(p.path());
    assert_eq!(e.len(), 2, "{e:?}");
    verified(&b);
    drop(mounts);
}

#[test]
fn leader_says_when_election_is_off_and_when_the_daemon_is_down() {
    let env = Env::new(&config(""));
    let mut d = started(&env);
    let out = fushi(&env, &["leader"]);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("leader election is off ([leader] enabled = false)"),
        "{}",
        stdout(&out)
    );
    let out = fushi(&env, &["leader", "--release"]);
    assert_eq!(code(&out), 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("there is no lease to release"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(d.terminate().success());
    let out = fushi(&env, &["leader"]);
    assert_eq!(code(&out), 7);
}

#[test]
fn a_lock_under_this_nodes_name_from_another_host_is_said_and_taken_over_once_stale() {
    let p = shared();
    let locks = p.path().join("locks");
    std::fs::create_dir(&locks).unwrap();
    // This node's lock as a container that was re-created (another hostname) left it.
    std::fs::write(
        locks.join("collector.leader"),
        r#"{"host":"old-container","node":"a","pid":1,"epoch":3,"started_at":"2026-12-01T00:00:00Z","heartbeat_ms":200,"beat":9,"priority":0}"#,
    )
    .unwrap();
    std::fs::write(locks.join("collector.epoch"), "3\n").unwrap();
    let a = node("a", p.path(), 0);
    let check = fushi(&a, &["check"]);
    assert!(
        stdout(&check)
            .contains("held under this node's name by host old-container (pid 1, epoch 3)"),
        "{}",
        stdout(&check)
    );
    let mut da = a.start();
    let said = wait_for("the shared name said", || {
        let l = leader(&a);
        l["error"]
            .as_str()
            .is_some_and(|e| e.contains("two daemons share one node name"))
            .then_some(l)
    });
    assert_eq!(said["role"], "standby", "{said}");
    let l = wait_role(&a, "leader");
    assert_eq!(l["epoch"], 4, "{l}");
    assert!(l["error"].is_null(), "{l}");
    assert!(da.terminate().success());
}

#[test]
fn a_lock_left_by_this_nodes_killed_process_is_said_and_taken_back_at_once() {
    let p = shared();
    let locks = p.path().join("locks");
    std::fs::create_dir(&locks).unwrap();
    // A pid that surely ran and is gone: a child reaped right here.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    std::fs::write(
        locks.join("collector.leader"),
        format!(
            r#"{{"host":"{host}","node":"a","pid":{pid},"epoch":3,"started_at":"2026-12-01T00:00:00Z","heartbeat_ms":200,"beat":9,"priority":0}}"#
        ),
    )
    .unwrap();
    std::fs::write(locks.join("collector.epoch"), "3\n").unwrap();
    let a = node("a", p.path(), 0);
    let check = fushi(&a, &["check"]);
    assert!(
        stdout(&check).contains(&format!(
            "left by this node's earlier process (pid {pid}, gone; epoch 3)"
        )),
        "{}",
        stdout(&check)
    );
    let mut da = a.start();
    let l = wait_role(&a, "leader");
    assert_eq!(l["epoch"], 4, "{l}");
    // At once: taken back without judging it stale first.
    let audit = a.audit();
    assert!(
        events(&audit, "collector.leader.stale_detected", "leader").is_empty(),
        "{audit:?}"
    );
    assert!(da.terminate().success());
}
