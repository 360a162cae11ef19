//! The ways acknowledged records used to be lost (issue 9), each acted out on the real binary against the acknowledged-records oracle: every acked record on the primary exactly once, in order, and `fushi verify` clean.
//!
//! - a journal whose filesystem runs out of inodes when its active segment rotates;
//! - a data dir wiped (a reinstall, a new disk) or a journal zeroed, under a primary that holds
//!   ids already;
//! - a data dir on a disk that fills up, with the primary on the same disk (the default layout).
//!
//! The disks are small tmpfs mounts (root, as in CI); every wait is on status.json, the audit log
//! or the acknowledgements.

use std::collections::HashSet;
use std::path::Path;

use crate::util::*;

const STREAM: &str = "test/k";

/// Waits until every record of `acked` is on the primary at `primary`; returns its records.
fn primary_holds(primary: &Path, acked: &[u64]) -> Vec<u64> {
    wait_for("the primary to hold every acknowledged record", || {
        let ks = primary_ks(primary, STREAM);
        let have: HashSet<u64> = ks.iter().copied().collect();
        acked.iter().all(|k| have.contains(k)).then_some(ks)
    })
}

/// The oracle across several pushers: every record acknowledged, and every one sent but not.
#[derive(Default)]
struct Sent {
    acked: Vec<u64>,
    maybe: Vec<u64>,
}

impl Sent {
    /// Pushes records numbered after every one sent so far until `n` more are acknowledged.
    fn push(&mut self, env: &Env, n: usize) {
        let last = self
            .acked
            .iter()
            .chain(&self.maybe)
            .copied()
            .max()
            .unwrap_or(0);
        let pusher = Pusher::start_after(env.path().join("in.sock"), 20, last);
        wait_for(&format!("{n} acknowledgements"), || {
            (pusher.acked_count() >= n).then_some(())
        });
        let (a, m) = pusher.finish();
        self.acked.extend(a);
        self.maybe.extend(m);
    }
}

fn storage(env: &Env) -> Option<serde_json::Value> {
    Some(env.status()?["storage"].clone())
}

/// Case 1: segment n+1 used to count before its `open` succeeded, so with no inode left the
/// journal kept appending to file n under n+1's name, and the next release deleted file n.
#[test]
#[ignore = "needs root (mounts a tmpfs): scripts/test runs it (--include-ignored)"]
fn a_journal_out_of_inodes_at_rotation_loses_no_acknowledged_record() {
    // Segments of 128 KiB: a few thousand records rotate several times.
    let env = Env::new(&listen_config(
        "max_local = \"1 MiB\"\nprobe_interval = \"100ms\"\nio_timeout = \"2s\"",
    ));
    let journal = env.data().join("journal");
    let _mount = mount_tmpfs(&journal, "size=64m,nr_inodes=64");
    let mut d = env.start();
    d.wait_audit("daemon.started", "", 1);
    wait_for("the journal's first segment", || {
        journal
            .join("00000000000000000001.seg")
            .exists()
            .then_some(())
    });
    // Take every inode left: the next segment cannot be created.
    let mut fillers = Vec::new();
    for i in 0.. {
        let path = journal.join(format!("filler-{i}"));
        match std::fs::File::create(&path) {
            Ok(_) => fillers.push(path),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(nix::libc::ENOSPC), "{e}");
                break;
            }
        }
    }
    let pusher = Pusher::start(env.path().join("in.sock"), 20);
    let red = wait_for("the failed rotation in status", || {
        let s = env.status()?;
        let e = s["storage"]["journal_error"].as_str()?.to_string();
        e.contains("cannot start a new segment").then_some(s)
    });
    assert_eq!(red["health"], "red", "{red}");
    // Well past a segment's worth, all acknowledged while no segment could be opened.
    wait_for("acks past a segment", || {
        (pusher.acked_count() > 2000).then_some(())
    });
    let a = env.audit();
    assert!(
        events(&a, "journal.write_failed", "storage")
            .iter()
            .any(|e| e["payload"]["error"]
                .as_str()
                .unwrap_or("")
                .contains("cannot start a new segment")),
        "the failed rotation is audited"
    );
    for f in &fillers {
        std::fs::remove_file(f).unwrap();
    }
    let (acked, maybe) = pusher.finish();
    let ks = primary_holds(&env.data().join("primary"), &acked);
    assert_acknowledged_once_in_order(&ks, &acked, &maybe, |_| {});
    wait_for("the journal error to clear", || {
        storage(&env)?["journal_error"].is_null().then_some(())
    });
    d.wait_audit("journal.writable", "storage", 1);
    assert!(d.terminate().success());
    assert_verify_clean(&env);
}

/// Case 2: ids were seeded only from the journal's own `last-ids.json`, so a new data dir
/// numbered from 1.1 again and sync skipped every record at or below the primary's last id as
/// already forwarded, then deleted it.
#[test]
fn a_wiped_data_dir_continues_the_ids_on_the_primary_instead_of_reusing_them() {
    // The primary outside the data dir, as a NAS is: it outlives the wipe.
    let env = Env::new(&listen_config(
        "primary = \"nas\"\nprobe_interval = \"100ms\"\nio_timeout = \"2s\"",
    ));
    let nas = env.path().join("nas");
    std::fs::create_dir(&nas).unwrap();
    std::fs::write(nas.join(".fushi-primary"), b"").unwrap();
    let mut sent = Sent::default();
    for round in 0..3 {
        let mut d = env.start();
        sent.push(&env, 300);
        primary_holds(&nas, &sent.acked);
        assert!(d.terminate().success());
        // A reinstall, a new disk: nothing of the node's own state is left.
        std::fs::remove_dir_all(env.data()).unwrap();
        eprintln!("round {round}: {} acknowledged so far", sent.acked.len());
    }
    let ks = primary_ks(&nas, STREAM);
    assert_acknowledged_once_in_order(&ks, &sent.acked, &sent.maybe, |_| {});
    assert_verify_clean(&env);
}

/// Case 2, damaged instead of wiped: a journal whose segments were zeroed (and, the second
/// time, whose saved ids are gone too) after its records were forwarded.
#[test]
fn a_zeroed_journal_continues_the_ids_instead_of_reusing_them() {
    let env = Env::new(&listen_config(
        "probe_interval = \"100ms\"\nio_timeout = \"2s\"",
    ));
    let primary = env.data().join("primary");
    let journal = env.data().join("journal");
    let mut sent = Sent::default();
    for round in 0..3 {
        let mut d = env.start();
        sent.push(&env, 300);
        primary_holds(&primary, &sent.acked);
        d.kill9();
        for e in std::fs::read_dir(&journal).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "seg") {
                let len = std::fs::metadata(&path).unwrap().len() as usize;
                std::fs::write(&path, vec![0u8; len]).unwrap();
            }
        }
        if round == 1 {
            let _ = std::fs::remove_file(journal.join("last-ids.json"));
        }
    }
    let mut d = env.start();
    d.wait_audit("daemon.started", "", 4);
    wait_for("the primary up, nothing left to forward", || {
        let st = storage(&env)?;
        (st["primary"] == "up" && st["lag_records"] == 0).then_some(())
    });
    assert!(d.terminate().success());
    let ks = primary_ks(&primary, STREAM);
    assert_acknowledged_once_in_order(&ks, &sent.acked, &sent.maybe, |_| {});
    assert_verify_clean(&env);
    let a = env.audit();
    assert!(
        !events(&a, "journal.recovered", "storage").is_empty(),
        "the zeroed segments are audited"
    );
}

/// Case 6: with the primary on the journal's disk (the default layout), a full disk used to
/// deadlock: sync filled what was freed with primary copies while the active segment, never
/// rotated, could not be released. The journal now keeps one segment free for forwarding and
/// rotates when it is held back, so freeing a couple of MiB recovers.
#[test]
#[ignore = "needs root (mounts a tmpfs): scripts/test runs it (--include-ignored)"]
fn a_full_disk_shared_with_the_primary_recovers_once_a_little_space_is_freed() {
    let env = Env::new(&listen_config(
        "probe_interval = \"100ms\"\nio_timeout = \"2s\"",
    ));
    let data = env.data();
    let _mount = mount_tmpfs(&data, "size=16m");
    let mut d = env.start();
    d.wait_audit("daemon.started", "", 1);
    // Leave about 3 MiB: the journal's reserve on a 16 MiB disk is 1 MiB.
    let filler = env.path().join("data").join("filler");
    let st = nix::sys::statvfs::statvfs(&data).unwrap();
    let free = st.blocks_available() as u64 * st.fragment_size() as u64;
    std::fs::write(&filler, vec![7u8; (free - (3 << 20)) as usize]).unwrap();

    let pusher = Pusher::start(env.path().join("in.sock"), 20);
    let full = wait_for("the disk full, everything on it forwarded", || {
        let s = env.status()?;
        let st = &s["storage"];
        (st["journal_full"] == true && st["lag_records"] == 0).then_some(s)
    });
    assert_eq!(full["health"], "red", "{full}");
    let why = full["storage"]["journal_error"].as_str().unwrap_or("");
    assert!(why.contains("disk nearly full"), "{full}");
    let held = pusher.acked_count();

    // Free 2 MiB: ingest resumes and everything acknowledged reaches the primary.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    f.set_len(std::fs::metadata(&filler).unwrap().len() - (2 << 20))
        .unwrap();
    wait_for("acks to resume after freeing 2 MiB", || {
        (pusher.acked_count() > held + 500).then_some(())
    });
    let (acked, maybe) = pusher.finish();
    let ks = primary_holds(&data.join("primary"), &acked);
    assert_acknowledged_once_in_order(&ks, &acked, &maybe, |_| {});
    assert!(d.terminate().success());
    assert_verify_clean(&env);
}

/// The case the start-up wait for the primary's ids cannot cover: a journal restored from an old
/// copy, started while the primary is away for longer than that wait, numbers from its stale ids
/// under ids the primary already holds. Forwarding must not skip those records as already sent:
/// it finds the collision (`journal.conflict`), moves the stream's records from there on to new
/// ids above the primary's, in order (`journal.rehomed`), and forwards them, also across a
/// `kill -9` right after.
#[test]
fn a_journal_restored_from_an_old_copy_moves_its_colliding_records_to_new_ids() {
    let env = Env::new(&listen_config(
        "primary = \"nas\"\nprobe_interval = \"100ms\"\nio_timeout = \"300ms\"",
    ));
    let nas = env.path().join("nas");
    std::fs::create_dir(&nas).unwrap();
    let marker = nas.join(".fushi-primary");
    std::fs::write(&marker, b"").unwrap();
    let journal = env.data().join("journal");
    let copy = env.path().join("journal-copy");
    let mut sent = Sent::default();
    for round in 0..2 {
        let mut d = env.start();
        sent.push(&env, 300);
        primary_holds(&nas, &sent.acked);
        assert!(d.terminate().success());
        if round == 0 {
            // The backup, taken after the first run.
            let status = std::process::Command::new("cp")
                .arg("-a")
                .arg(&journal)
                .arg(&copy)
                .status()
                .unwrap();
            assert!(status.success());
        }
    }
    let held_by_primary = primary_ks(&nas, STREAM).len();
    std::fs::remove_dir_all(&journal).unwrap();
    std::fs::rename(&copy, &journal).unwrap();
    // The store is away (unmarked) past the start-up wait: numbering goes on from the copy.
    std::fs::rename(&marker, nas.join("marker-away")).unwrap();
    let mut d = env.start();
    d.wait_audit("journal.seeded", "storage", 3);
    sent.push(&env, 300);
    std::fs::rename(nas.join("marker-away"), &marker).unwrap();
    let a = d.wait_audit("journal.rehomed", "sync", 1);
    let conflict = &events(&a, "journal.conflict", "sync")[0]["payload"];
    assert_eq!(conflict["stream"], STREAM, "{conflict}");
    let moved = &events(&a, "journal.rehomed", "sync")[0]["payload"];
    assert_eq!(
        moved["to"],
        format!("1.{}", held_by_primary + 1),
        "the moved records continue the primary's ids: {moved}"
    );
    // A crash at once: the move is durable, nothing goes twice.
    d.kill9();
    let mut d = env.start();
    sent.push(&env, 100);
    let ks = primary_holds(&nas, &sent.acked);
    wait_for("health green again", || {
        let s = env.status()?;
        (s["health"] == "green" && s["pid"] == d.pid()).then_some(())
    });
    assert!(d.terminate().success());
    assert_acknowledged_once_in_order(&ks, &sent.acked, &sent.maybe, |_| {});
    assert_verify_clean(&env);
}
