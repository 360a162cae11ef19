//! The data path end to end: acknowledged records survive `kill -9` at random moments and reach the primary exactly once, in order.

use rand::Rng;
use std::collections::HashSet;
use std::time::Duration;

use crate::util::*;

fn torture_config() -> String {
    listen_config("probe_interval = \"100ms\"\nio_timeout = \"2s\"")
}

#[test]
fn kill9_torture_every_acknowledged_record_reaches_the_primary_exactly_once_in_order() {
    let env = Env::new(&torture_config());
    let pusher = Pusher::start(env.path().join("in.sock"), 20);
    let mut rng = rand::rng();
    let kills = 30;
    for i in 0..kills {
        let before = pusher.acked_count();
        let mut d = env.start();
        // Kill only once this run acknowledged something, at a random moment after that.
        wait_for(&format!("acks in run {i}"), || {
            (pusher.acked_count() > before).then_some(())
        });
        std::thread::sleep(Duration::from_micros(rng.random_range(0..60_000)));
        d.kill9();
    }
    let mut d = env.start();
    wait_for("acks after the last restart", || {
        (pusher.acked_count() > 0).then_some(())
    });
    let (acked, maybe) = pusher.finish();
    let primary = env.data().join("primary");
    // Everything acknowledged must arrive; wait for sync to drain.
    let acked_set: HashSet<u64> = acked.iter().copied().collect();
    let ks = wait_for("the primary to hold every acknowledged record", || {
        let ks = primary_ks(&primary, "test/k");
        let have: HashSet<u64> = ks.iter().copied().collect();
        acked_set.is_subset(&have).then_some(ks)
    });
    assert!(d.terminate().success());

    eprintln!(
        "torture: {kills} kills, {} acknowledged, {} unacknowledged-maybe, {} on the primary",
        acked.len(),
        maybe.len(),
        ks.len()
    );
    assert!(
        acked.len() > 1000,
        "the torture pushed too little to mean anything: {}",
        acked.len()
    );
    assert_acknowledged_once_in_order(&ks, &acked, &maybe, |_| {});
    let status = env.status().unwrap();
    assert!(
        status["daemon_recovered"].as_u64().unwrap() >= kills as u64 - 1,
        "{status}"
    );
    let audit = env.audit();
    assert!(
        !events(&audit, "journal.recovered", "storage").is_empty(),
        "restarts recover the journal"
    );
}

#[test]
fn a_full_journal_holds_producers_back_turns_health_red_and_loses_nothing() {
    let env = Env::new(&listen_config(
        "probe_interval = \"50ms\"\nio_timeout = \"2s\"\nmax_local = \"16 KiB\"",
    ));
    // A file where the primary directory should be: every probe fails, the primary is down.
    std::fs::create_dir_all(env.data()).unwrap();
    let primary = env.data().join("primary");
    std::fs::write(&primary, b"not a directory").unwrap();
    let mut d = env.start();
    let pusher = Pusher::start(env.path().join("in.sock"), 10);

    // Status follows within its coalescing window: wait for a snapshot where it all shows.
    let full = wait_for("a full journal in status", || {
        let s = env.status()?;
        let st = &s["storage"];
        (st["journal_full"] == true && st["secondary"] == "used" && st["lag_records"].as_u64()? > 0)
            .then_some(s)
    });
    assert_eq!(full["health"], "red", "a full journal is critical");
    assert_eq!(full["storage"]["primary"], "down");
    let held_at = pusher.acked_count();
    // Bounded: one group beyond max_local at most (a group is what one producer chunk adds here).
    let bytes = full["storage"]["journal_bytes"].as_u64().unwrap();
    assert!(
        bytes < 16 * 1024 + 8 * 1024,
        "journal grew past its bound: {bytes}"
    );
    assert!(!events(&env.audit(), "collector.storage.switch", "sync").is_empty());

    // The primary comes back: the journal drains, producers move on, nothing was dropped.
    std::fs::remove_file(&primary).unwrap();
    wait_for("acks to resume", || {
        (pusher.acked_count() > held_at + 100).then_some(())
    });
    let (acked, _) = pusher.finish();
    let ks = wait_for("every acknowledged record on the primary", || {
        let ks = primary_ks(&primary, "test/k");
        (ks.len() >= acked.len()).then_some(ks)
    });
    let on_primary: std::collections::HashSet<u64> = ks.iter().copied().collect();
    assert!(acked.iter().all(|k| on_primary.contains(k)));
    let healthy = wait_for("the journal to drain", || {
        let s = env.status()?;
        (s["storage"]["journal_full"] == false && s["storage"]["lag_records"] == 0).then_some(s)
    });
    assert_eq!(healthy["storage"]["primary"], "up");
    assert!(d.terminate().success());
}

/// Unmounts on drop, also when an assertion fails.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The disk under the journal fills up (ENOSPC): nothing is acknowledged that is not durable,
/// producers wait, health is red; once space is back, ingest resumes and nothing is lost.
#[test]
#[ignore = "needs root (mounts a tmpfs): scripts/test runs it (--include-ignored)"]
fn a_full_disk_under_the_journal_holds_producers_back_and_loses_nothing() {
    require(
        nix::unistd::Uid::effective().is_root(),
        "a_full_disk_under_the_journal",
        "root to mount a small tmpfs",
    );
    let env = Env::new(&torture_config());
    let journal = env.data().join("journal");
    std::fs::create_dir_all(&journal).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&journal)
        .status()
        .expect("running mount");
    assert!(
        ok.success(),
        "cannot mount a tmpfs on {}",
        journal.display()
    );
    let _mount = Mount(journal.clone());
    let filler = journal.join("filler");
    std::fs::write(&filler, vec![0u8; 200 << 10]).unwrap();
    // Keep the primary down so that nothing is released while the disk is full.
    let primary = env.data().join("primary");
    std::fs::write(&primary, b"not a directory").unwrap();

    let mut d = env.start();
    let pusher = Pusher::start(env.path().join("in.sock"), 10);
    let full = wait_for("the journal's disk to be full", || {
        let s = env.status()?;
        (s["storage"]["journal_full"] == true).then_some(s)
    });
    assert_eq!(full["health"], "red");
    assert!(
        d.log().contains("journal.write_failed"),
        "the disk-full condition is logged"
    );
    let held_at = pusher.acked_count();
    // Free space; the writer retries the held group and producers move on.
    std::fs::remove_file(&filler).unwrap();
    wait_for("acks to resume after space is back", || {
        (pusher.acked_count() > held_at + 50).then_some(())
    });
    std::fs::remove_file(&primary).unwrap();
    let (acked, _) = pusher.finish();
    let ks = wait_for("every acknowledged record on the primary", || {
        let ks = primary_ks(&primary, "test/k");
        let have: HashSet<u64> = ks.iter().copied().collect();
        acked.iter().all(|k| have.contains(k)).then_some(ks)
    });
    let unique: HashSet<u64> = ks.iter().copied().collect();
    assert_eq!(unique.len(), ks.len(), "no record twice");
    assert!(d.terminate().success());
}

/// An unmounted NAS leaves an empty local directory at its mountpoint: fushi must not take it
/// for the store, or records would pile up on the local disk and leave a gap on the NAS.
#[test]
fn an_unmarked_primary_outside_the_data_dir_is_down_and_never_written() {
    let env = Env::new(&listen_config(
        "primary = \"nas\"\nprobe_interval = \"50ms\"",
    ));
    let nas = env.path().join("nas");
    std::fs::create_dir(&nas).unwrap();
    let mut d = env.start();
    let pusher = Pusher::start(env.path().join("in.sock"), 10);
    let down = wait_for("primary down with records waiting", || {
        let s = env.status()?;
        (s["storage"]["primary"] == "down" && s["storage"]["lag_records"].as_u64()? > 0)
            .then_some(s)
    });
    assert_eq!(down["storage"]["secondary"], "used");
    let switch = d.wait_audit("collector.storage.switch", "sync", 1);
    let reason =
        events(&switch, "collector.storage.switch", "sync")[0]["payload"]["reason"].to_string();
    assert!(reason.contains(".fushi-primary"), "{reason}");
    assert_eq!(
        std::fs::read_dir(&nas).unwrap().count(),
        0,
        "nothing written under the mountpoint"
    );

    // Marking the real store once brings it up; everything acknowledged arrives.
    let out = std::process::Command::new(bin())
        .args(["check", "--init-primary", "-c"])
        .arg(env.config())
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok   primary"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (acked, _) = pusher.finish();
    wait_for("every acknowledged record on the marked store", || {
        let have: HashSet<u64> = primary_ks(&nas, "test/k").into_iter().collect();
        acked.iter().all(|k| have.contains(k)).then_some(())
    });
    assert!(d.terminate().success());
}

#[test]
fn the_lag_keeps_growing_while_sync_is_down_and_drains_once_it_runs_again() {
    // A crash of sync leaves it in an hour's backoff: nothing forwards until `restart sync`.
    let env = Env::new(
        &listen_config("probe_interval = \"50ms\"")
            .replace("[supervisor]\n", "[supervisor]\nbackoff = [\"1h\"]\n")
            .replace("[control]\n", "[control]\nallow_inject = true\n"),
    );
    let mut d = started(&env);
    wait_for("the primary up", || {
        (env.status()?["storage"]["primary"] == "up").then_some(())
    });
    let ctl = |args: &[&str]| {
        let out = fushi(&env, args);
        assert_eq!(code(&out), 0, "fushi {args:?}: {}", stderr(&out));
    };
    // Not through the socket: sync is one of the daemon's own actors.
    let out = fushi(&env, &["stop", "sync"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    ctl(&["inject", "crash", "sync"]);
    wait_for("sync in backoff", || {
        (json(&fushi(&env, &["status", "--json", "sync"]))[0]["state"] == "backoff").then_some(())
    });
    let pusher = Pusher::start(env.path().join("in.sock"), 50);
    wait_for("records acknowledged", || {
        (pusher.acked_count() >= 500).then_some(())
    });
    let acked = pusher.acked_count() as u64;
    // Nothing forwards them: the lag says so, though the sync actor that counts it is down.
    wait_for("the lag in status.json", || {
        let s = env.status()?;
        let st = &s["storage"];
        (st["lag_records"].as_u64()? >= acked && st["secondary"] == "used").then_some(())
    });
    ctl(&["restart", "sync"]);
    let (acked, maybe) = pusher.finish();
    wait_for("the journal drained", || {
        let s = env.status()?;
        (s["storage"]["lag_records"] == 0).then_some(())
    });
    let ks = primary_ks(&env.data().join("primary"), "test/k");
    assert_acknowledged_once_in_order(&ks, &acked, &maybe, |_| {});
    assert!(d.terminate().success());
}
