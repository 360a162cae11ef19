//! Primary outages on real mounts (a frozen, killed, unmounted, read-only or full store) never stop ingest, and once the primary is back every acknowledged record reaches it exactly once, in order.
//!
//! The daemon's `storage.primary` is `<tmp>/mnt/nas`. `mnt` is a mountpoint: a `bindfs` (FUSE)
//! mount of `<tmp>/backing` (itself a tmpfs), or a small tmpfs for the disk-full case. Under the
//! mount, `mnt/nas` is a plain *file* — a tripwire: while nothing is mounted the primary path is
//! not a directory. Without it the daemon would take the bare mountpoint for an empty store (its
//! probe and its appends create a missing root) and forward records to the local disk beneath.
//! The test reads the store only through the backing dir, never through the mount, so a frozen
//! FUSE daemon cannot hang the test.
//!
//! One test freezes a mount under a `command` collector's program instead: the exec hangs, and
//! the daemon on its one scheduler thread must not hang with it.
//!
//! Every wait is on an event (status.json, audit lines, acknowledgements); the mounts are thawed
//! and lazily unmounted by a guard, also when an assertion fails. The tests need root and bindfs
//! (`apt-get install bindfs`) and fail, saying so, without them.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::util::*;

const IO_TIMEOUT: Duration = Duration::from_millis(300);
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// Beyond io_timeout + probe_interval: the status actor's 20 ms coalescing, its write, and
/// scheduling on a loaded two-core CI machine.
const DOWN_MARGIN: Duration = Duration::from_millis(250);
/// Once caught up, the sync actor rotates an active segment this large so that it can be
/// released (`segment_sizes` in src/tree.rs, default `max_local`): a drained journal is smaller.
const ROTATE_AFTER: u64 = 1 << 20;
/// How much the journal must hold during an outage: more than one rotation's worth, so that its
/// cleaning afterwards is visible in `journal_bytes`.
const BACKLOG_BYTES: u64 = 3 * ROTATE_AFTER / 2;
const STREAM: &str = "test/k";

/// The mount tests run one at a time: they measure how fast an outage is noticed.
pub(crate) static SERIAL: Mutex<()> = Mutex::new(());

fn outage_config() -> String {
    listen_config("primary = \"mnt/nas\"\nprobe_interval = \"100ms\"\nio_timeout = \"300ms\"")
}

/// Root, the bindfs binary and /dev/fuse; without them the test fails, saying so.
pub(crate) fn prerequisites(test: &str) {
    let root = nix::unistd::geteuid().is_root();
    let bindfs = Command::new("bindfs")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let fuse = Path::new("/dev/fuse").exists();
    require(
        root && bindfs && fuse,
        test,
        "root, bindfs and /dev/fuse (apt-get install bindfs)",
    );
}

/// How many mounts sit on `path` (from /proc/self/mountinfo: nothing on the mount is touched).
fn mounts_on(path: &Path) -> usize {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("reading mountinfo");
    let want = path.to_str().expect("a UTF-8 temp path");
    info.lines()
        .filter(|l| l.split(' ').nth(4) == Some(want))
        .count()
}

fn run(argv: &[&str]) {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `mount -o remount,bind,<how>`: only this mount's flags change. A mount cannot turn read-only
/// while a file on it is open for writing (EBUSY), so that is retried until it catches the
/// daemon between two appends.
fn remount_bind(mnt: &Path, how: &str) {
    let opts = format!("remount,bind,{how}");
    let mnt = mnt.to_str().unwrap();
    wait_for(&format!("mount -o {opts} {mnt}"), || {
        let out = Command::new("mount")
            .args(["-o", &opts, mnt])
            .stdin(Stdio::null())
            .output()
            .expect("running mount");
        let busy = String::from_utf8_lossy(&out.stderr).contains("busy");
        assert!(
            out.status.success() || busy,
            "mount -o {opts}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.status.success().then_some(())
    });
}

pub(crate) fn signal(pid: u32, sig: Signal) {
    kill(Pid::from_raw(pid as i32), sig).unwrap_or_else(|e| panic!("{sig} to {pid}: {e}"));
}

/// The mounts of one test. Dropping it — also while a failed assertion unwinds — thaws every
/// bindfs, lazily unmounts every mountpoint and kills the bindfs processes, in that order.
#[derive(Default)]
pub(crate) struct Mounts {
    bindfs: Vec<Child>,
    points: Vec<PathBuf>,
}

impl Mounts {
    /// Mounts `src` on `mnt` with a foreground bindfs (so that its pid is ours to freeze and
    /// kill) and waits until the mount is in place; returns the bindfs pid.
    pub(crate) fn bindfs(&mut self, src: &Path, mnt: &Path) -> u32 {
        // The tripwire makes the mountpoint non-empty, which FUSE 2 refuses without `nonempty`
        // and FUSE 3 allows without knowing that option.
        if let Some(pid) = self.try_bindfs(src, mnt, Some("nonempty")) {
            return pid;
        }
        self.try_bindfs(src, mnt, None)
            .unwrap_or_else(|| panic!("bindfs could not mount {}", mnt.display()))
    }

    fn try_bindfs(&mut self, src: &Path, mnt: &Path, opt: Option<&str>) -> Option<u32> {
        let before = mounts_on(mnt);
        let mut cmd = Command::new("bindfs");
        cmd.arg("-f");
        if let Some(o) = opt {
            cmd.arg("-o").arg(o);
        }
        let mut child = cmd
            .arg(src)
            .arg(mnt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning bindfs");
        let pid = child.id();
        // Unmounted by `release` even if the wait below fails.
        self.points.push(mnt.to_path_buf());
        let mounted = wait_for(&format!("bindfs on {}", mnt.display()), || {
            if mounts_on(mnt) > before {
                return Some(true);
            }
            matches!(child.try_wait(), Ok(Some(_))).then_some(false)
        });
        if !mounted {
            return None;
        }
        self.bindfs.push(child);
        Some(pid)
    }

    /// Mounts a tmpfs of `size` on `mnt`.
    fn tmpfs(&mut self, mnt: &Path, size: &str) {
        require(
            nix::unistd::geteuid().is_root(),
            &format!("a test that mounts a tmpfs on {}", mnt.display()),
            "root",
        );
        self.points.push(mnt.to_path_buf());
        let opts = format!("size={size},mode=0755");
        run(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &opts,
            "fushi-test",
            mnt.to_str().unwrap(),
        ]);
    }

    /// A read-only bind mount of `dir` on itself.
    fn bind_ro(&mut self, dir: &Path) {
        let d = dir.to_str().unwrap();
        self.points.push(dir.to_path_buf());
        run(&["mount", "--bind", d, d]);
        remount_bind(dir, "ro");
    }

    /// `kill -9` of a bindfs: its mount stays, answering ENOTCONN.
    fn kill9(&mut self, pid: u32) {
        let child = self
            .bindfs
            .iter_mut()
            .find(|c| c.id() == pid)
            .expect("a bindfs of ours");
        signal(pid, Signal::SIGKILL);
        child.wait().expect("reaping bindfs");
    }

    fn umount_lazy(&self, mnt: &Path) {
        run(&["umount", "-l", mnt.to_str().unwrap()]);
    }

    fn release(&mut self) {
        for c in &self.bindfs {
            // A frozen FUSE daemon keeps the fushi threads it left waiting from ever dying.
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGCONT);
        }
        for p in self.points.iter().rev() {
            for _ in 0..8 {
                if mounts_on(p) == 0 {
                    break;
                }
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(p)
                    .stderr(Stdio::null())
                    .status();
            }
        }
        for mut c in self.bindfs.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.points.clear();
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        self.release();
    }
}

/// Where the store is, how it is mounted, and the running daemon and pusher.
struct Rig {
    test: &'static str,
    daemon: Option<Daemon>,
    pusher: Option<Pusher>,
    mounts: Mounts,
    /// The primary store as seen without the mount in the way (never hangs).
    store: PathBuf,
    /// The mountpoint; the primary is `mnt/nas`.
    mnt: PathBuf,
    env: Env,
}

/// What one outage looked like.
struct Outage {
    /// From breaking the primary to status.json saying `down`.
    down_after: Duration,
    /// From restoring the primary to the `up` switch in the audit log.
    up_after: Duration,
    /// Records acknowledged while the primary was down.
    acked_while_down: usize,
    journal_peak: u64,
    /// The drain's `collector.sync.complete` payload.
    complete: Value,
    /// `collector.storage.switch` events of this outage (down and up).
    switches: usize,
}

impl Rig {
    fn env_and_mnt() -> (Env, PathBuf) {
        let env = Env::new(&outage_config());
        let mnt = env
            .path()
            .canonicalize()
            .expect("canonical temp dir")
            .join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        // The tripwire: with nothing mounted, the primary is a file, not a store.
        std::fs::write(
            mnt.join("nas"),
            "not the NAS: the primary store is not mounted\n",
        )
        .unwrap();
        (env, mnt)
    }

    /// A bindfs mount of `<tmp>/backing` on `<tmp>/mnt`; returns the rig and the bindfs pid.
    ///
    /// The backing dir is a tmpfs: with fsync free there, the disk's latency under load (the
    /// journal fsyncs on the same disk) never trips the 300 ms io_timeout by itself, so the
    /// outage the test acts out is the only thing that fails.
    fn bindfs(test: &'static str) -> (Self, u32) {
        let (env, mnt) = Self::env_and_mnt();
        let backing = mnt.with_file_name("backing");
        std::fs::create_dir(&backing).unwrap();
        let mut mounts = Mounts::default();
        mounts.tmpfs(&backing, "1g");
        std::fs::create_dir(backing.join("nas")).unwrap();
        // Outside the data dir the store must be marked (`fushi check --init-primary`).
        std::fs::write(backing.join("nas").join(".fushi-primary"), b"").unwrap();
        let pid = mounts.bindfs(&backing, &mnt);
        let rig = Self {
            test,
            daemon: None,
            pusher: None,
            mounts,
            store: backing.join("nas"),
            mnt,
            env,
        };
        (rig, pid)
    }

    /// A tmpfs of `size` on `<tmp>/mnt`.
    fn tmpfs(test: &'static str, size: &str) -> Self {
        let (env, mnt) = Self::env_and_mnt();
        let mut mounts = Mounts::default();
        mounts.tmpfs(&mnt, size);
        std::fs::create_dir(mnt.join("nas")).unwrap();
        std::fs::write(mnt.join("nas").join(".fushi-primary"), b"").unwrap();
        Self {
            test,
            daemon: None,
            pusher: None,
            mounts,
            store: mnt.join("nas"),
            mnt,
            env,
        }
    }

    fn pusher(&self) -> &Pusher {
        self.pusher.as_ref().expect("pushing")
    }

    fn status(&mut self) -> Value {
        if let Some(d) = &mut self.daemon {
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("fushi exited ({st}):\n{}", d.log());
            }
        }
        self.env.status().expect("status.json")
    }

    fn storage(&mut self, field: &str) -> Value {
        self.status()["storage"][field].clone()
    }

    /// Starts the daemon and the pusher; returns once records flow to the primary.
    fn start(&mut self) {
        self.daemon = Some(self.env.start());
        self.pusher = Some(Pusher::start(self.env.path().join("in.sock"), 50));
        let store = self.store.clone();
        wait_for("the primary up and records on it", || {
            let up = self
                .env
                .status()
                .is_some_and(|s| s["storage"]["primary"] == "up");
            (up && !store_ks(&store).is_empty()).then_some(())
        });
    }

    /// Breaks the primary, checks how the daemon carries on without it, restores it and waits
    /// until the backlog is drained.
    fn outage(
        &mut self,
        what: &str,
        reasons: &[&str],
        break_it: impl FnOnce(&mut Rig),
        restore: impl FnOnce(&mut Rig),
    ) -> Outage {
        wait_for(&format!("{what}: the primary up before"), || {
            (self.storage("primary") == "up").then_some(())
        });
        let a = self.env.audit();
        let (downs, ups, audit_len) = (switches(&a, "down"), switches(&a, "up"), a.len());

        let t0 = Instant::now();
        break_it(self);
        wait_for(&format!("{what}: primary down in status.json"), || {
            (self.storage("primary") == "down").then_some(())
        });
        let down_after = t0.elapsed();
        let acked_at_down = self.pusher().acked_count();
        let bytes_at_down = self.storage("journal_bytes").as_u64().unwrap();

        // Ingest goes on: acknowledgements keep coming and the journal grows by more than a
        // rotation's worth.
        let journal_peak = wait_for(&format!("{what}: ingest while down"), || {
            let s = self.status();
            let bytes = s["storage"]["journal_bytes"].as_u64().unwrap();
            let acked = self.pusher().acked_count() - acked_at_down;
            (bytes >= bytes_at_down + BACKLOG_BYTES && acked >= 1000).then_some(bytes)
        });
        let s = self.status();
        let st = &s["storage"];
        assert_eq!(st["primary"], "down", "{what}: still down: {s}");
        assert_eq!(st["secondary"], "used", "{what}: {s}");
        assert!(st["lag_records"].as_u64().unwrap() > 0, "{what}: {s}");
        assert_eq!(s["sync"]["pending"], true, "{what}: {s}");
        let not_running: Vec<_> = s["actors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] != "running" || a["restarts"] != 0)
            .collect();
        assert!(
            not_running.is_empty(),
            "{what}: the tree is untouched by the outage: {not_running:?}"
        );
        let a = self.env.audit();
        let down = switches(&a, "down");
        assert_eq!(down.len(), downs.len() + 1, "{what}: one switch to down");
        let payload = &down.last().unwrap()["payload"];
        assert_eq!(payload["from"], "up", "{what}: {payload}");
        let why = payload["reason"].as_str().unwrap();
        assert!(
            reasons.iter().any(|r| why.contains(r)),
            "{what}: reason {why:?}, none of {reasons:?}"
        );
        let acked_while_down = self.pusher().acked_count() - acked_at_down;

        let t1 = Instant::now();
        restore(self);
        let up_at = wait_for(&format!("{what}: the switch back up"), || {
            self.status();
            let a = self.env.audit();
            let mut ups_now = a
                .iter()
                .enumerate()
                .filter(|(_, e)| is_switch(e, "up"))
                .skip(ups.len());
            ups_now.next().map(|(i, e)| {
                assert_eq!(e["payload"]["from"], "down", "{what}: {e}");
                i
            })
        });
        let up_after = t1.elapsed();

        // The drain after the outage: plan, start, complete, in that order, after the switch up.
        // (Should a slow moment interrupt it, the next drain's completion counts.)
        let (plan, start, complete) = wait_for(&format!("{what}: the drain"), || {
            let a = self.env.audit();
            let after = &a[up_at..];
            let find = |ev: &str, from: usize| {
                after[from..]
                    .iter()
                    .position(|e| e["event"] == ev)
                    .map(|i| from + i)
            };
            let p = find("collector.sync.plan", 0)?;
            let s = find("collector.sync.start", p)?;
            let c = find("collector.sync.complete", s)?;
            Some((after[p].clone(), after[s].clone(), after[c].clone()))
        });
        assert!(
            plan["payload"]["items"].as_u64().unwrap() >= acked_while_down as u64,
            "{what}: the plan covers the backlog: {plan}"
        );
        assert!(start["payload"]["items"].as_u64().unwrap() > 0, "{start}");
        let c = &complete["payload"];
        assert!(c["items"].as_u64().unwrap() > 0, "{complete}");
        assert!(c["bytes"].as_u64().unwrap() > 0, "{complete}");
        assert!(c["elapsed_ms"].is_u64(), "{complete}");
        let switches = switches(&self.env.audit()[audit_len..], "").len();
        Outage {
            down_after,
            up_after,
            acked_while_down,
            journal_peak,
            complete: complete["payload"].clone(),
            switches,
        }
    }

    /// Stops pushing and checks the end state: every acknowledged record on the store exactly
    /// once and in order, the journal cleaned, `fushi verify` clean, a clean shutdown.
    fn finish(&mut self, journal_peak: u64) -> usize {
        let (acked, maybe) = self.pusher.take().expect("pushing").finish();
        let acked_set: HashSet<u64> = acked.iter().copied().collect();
        let store = self.store.clone();
        wait_for("every acknowledged record on the primary", || {
            if self.storage("lag_records") != 0 {
                return None;
            }
            let have: HashSet<u64> = store_ks(&store).into_iter().collect();
            acked_set.is_subset(&have).then_some(())
        });
        let ks = primary_ks(&self.store, STREAM);
        assert_acknowledged_once_in_order(&ks, &acked, &maybe, |k| self.explain_duplicate(k));

        let bytes = wait_for("the journal cleaned", || {
            let b = self.storage("journal_bytes").as_u64().unwrap();
            (b < ROTATE_AFTER).then_some(b)
        });
        assert!(bytes < journal_peak, "{bytes} < {journal_peak}");
        let s = self.status();
        assert_eq!(s["storage"]["secondary"], "idle", "{s}");
        assert_eq!(s["sync"]["pending"], false, "{s}");
        // A drain is planned when the primary comes back (or for a backlog found at start),
        // never for the ordinary lag of steady ingest.
        let a = self.env.audit();
        let plans = events(&a, "collector.sync.plan", "sync").len();
        let ups = switches(&a, "up").len();
        assert!(plans <= ups + 1, "{plans} drains planned for {ups} outages");

        assert_verify_clean(&self.env);
        let st = self.daemon.as_mut().unwrap().terminate();
        assert!(st.success(), "fushi stopped cleanly: {st}");
        acked.len()
    }

    /// Shows where `k` sits twice on the store and what sync did.
    fn explain_duplicate(&self, k: u64) {
        let dir = self.store.join("raw").join(STREAM);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, l) in text.lines().enumerate() {
                let v: Value = serde_json::from_str(l).unwrap();
                let kk = v["data"]["k"].as_u64().unwrap();
                if kk.abs_diff(k) <= 2 {
                    eprintln!("{}:{}: id {} k {kk}", f.display(), i + 1, v["id"]);
                }
            }
        }
        for e in self.env.audit() {
            let ev = e["event"].as_str().unwrap_or_default();
            if ev.starts_with("collector.") && ev != "collector.sync.chunk" {
                eprintln!("audit: {e}");
            }
        }
    }

    fn report(&self, outages: &[(&str, Outage)], acked: usize) {
        for (what, o) in outages {
            eprintln!(
                "{} [{what}]: down after {} ms, up {} ms after the restore; {} acknowledged while down, journal peak {} KiB; drain {}; {} switches",
                self.test,
                o.down_after.as_millis(),
                o.up_after.as_millis(),
                o.acked_while_down,
                o.journal_peak / 1024,
                o.complete,
                o.switches,
            );
        }
        eprintln!("{}: {acked} acknowledged in all", self.test);
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // Thaw and unmount first: a fushi thread stuck on the frozen mount could not die.
        self.mounts.release();
        if std::thread::panicking() {
            if let Some(d) = &self.daemon {
                let log = d.log();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- {} daemon log (last lines) ---", self.test);
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        self.daemon.take();
        if let Some(p) = self.pusher.take() {
            if !std::thread::panicking() {
                p.finish();
            }
        }
    }
}

fn is_switch(e: &Value, to: &str) -> bool {
    e["event"] == "collector.storage.switch" && (to.is_empty() || e["payload"]["to"] == to)
}

fn switches<'a>(audit: &'a [Value], to: &str) -> Vec<&'a Value> {
    audit.iter().filter(|e| is_switch(e, to)).collect()
}

/// The `k` of every complete line of the store's stream, tolerating a line being appended (or
/// torn by a full disk) at the end of a file; the final check uses `primary_ks`.
fn store_ks(store: &Path) -> Vec<u64> {
    let dir = store.join("raw").join(STREAM);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == "jsonl"));
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            let v: Value = serde_json::from_str(line).expect("complete primary lines are JSON");
            out.push(v["data"]["k"].as_u64().expect("k"));
        }
    }
    out
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn down_within() -> Duration {
    IO_TIMEOUT + PROBE_INTERVAL + DOWN_MARGIN
}

#[test]
#[ignore = "needs root, bindfs and /dev/fuse: scripts/test runs it (--include-ignored)"]
fn a_hung_primary_is_declared_down_in_time_and_drained_once_it_answers_again() {
    const TEST: &str = "outage::hung";
    prerequisites(TEST);
    let _serial = serial();
    let (mut rig, bindfs) = Rig::bindfs(TEST);
    rig.start();
    let o = rig.outage(
        "SIGSTOP bindfs",
        &["primary hung"],
        |_| signal(bindfs, Signal::SIGSTOP),
        |_| signal(bindfs, Signal::SIGCONT),
    );
    assert!(
        o.down_after <= down_within(),
        "a hung primary is down within io_timeout + probe_interval + {DOWN_MARGIN:?}: took {:?}",
        o.down_after
    );
    let acked = rig.finish(o.journal_peak);
    rig.report(&[("hung", o)], acked);
}

#[test]
#[ignore = "needs root, bindfs and /dev/fuse: scripts/test runs it (--include-ignored)"]
fn a_vanished_primary_killed_or_unmounted_is_down_until_remounted_then_drained() {
    const TEST: &str = "outage::vanished";
    prerequisites(TEST);
    let _serial = serial();
    let (mut rig, first) = Rig::bindfs(TEST);
    let backing = rig.store.parent().unwrap().to_path_buf();
    let remount = |rig: &mut Rig| {
        let mnt = rig.mnt.clone();
        rig.mounts.bindfs(&backing, &mnt);
    };
    rig.start();
    let killed = rig.outage(
        "kill -9 bindfs",
        // ECONNABORTED for requests in flight when the FUSE connection died, ENOTCONN after.
        &[
            "Software caused connection abort",
            "Transport endpoint is not connected",
        ],
        |rig| rig.mounts.kill9(first),
        |rig| {
            let mnt = rig.mnt.clone();
            rig.mounts.umount_lazy(&mnt);
            remount(rig);
        },
    );
    assert!(
        killed.down_after <= down_within(),
        "{:?}",
        killed.down_after
    );
    let unmounted = rig.outage(
        "umount -l",
        // The tripwire file where the store was.
        &["Not a directory", "File exists", "is not a directory"],
        |rig| {
            let mnt = rig.mnt.clone();
            rig.mounts.umount_lazy(&mnt);
        },
        remount,
    );
    assert!(
        unmounted.down_after <= down_within(),
        "{:?}",
        unmounted.down_after
    );
    let peak = killed.journal_peak.min(unmounted.journal_peak);
    let acked = rig.finish(peak);
    rig.report(&[("kill -9", killed), ("umount -l", unmounted)], acked);
}

#[test]
#[ignore = "needs root, bindfs and /dev/fuse: scripts/test runs it (--include-ignored)"]
fn a_read_only_primary_is_down_until_writable_again_then_drained() {
    const TEST: &str = "outage::read_only";
    prerequisites(TEST);
    let _serial = serial();
    let (mut rig, _) = Rig::bindfs(TEST);
    rig.start();
    let remount = |how: &'static str| move |rig: &mut Rig| remount_bind(&rig.mnt, how);
    let o = rig.outage(
        "remount read-only",
        &["Read-only file system"],
        remount("ro"),
        remount("rw"),
    );
    assert!(o.down_after <= down_within(), "{:?}", o.down_after);
    let acked = rig.finish(o.journal_peak);
    rig.report(&[("read-only", o)], acked);
}

#[test]
#[ignore = "needs root (mounts a tmpfs): scripts/test runs it (--include-ignored)"]
fn a_full_primary_keeps_records_in_the_journal_until_there_is_room_then_drains() {
    const TEST: &str = "outage::full";
    // Only a tmpfs: `Mounts::tmpfs` requires root, and nothing here needs bindfs.
    let _serial = serial();
    let mut rig = Rig::tmpfs(TEST, "16m");
    rig.start();
    let filler = rig.mnt.join("filler");
    let o = rig.outage(
        "tmpfs full",
        &["No space left on device"],
        |_| {
            // Take every free page; the daemon's next write needs one.
            let mut f = std::fs::File::create(&filler).expect("creating the filler");
            let chunk = vec![0u8; 4096];
            loop {
                if let Err(e) = f.write_all(&chunk) {
                    assert_eq!(e.raw_os_error(), Some(nix::libc::ENOSPC), "{e}");
                    break;
                }
            }
        },
        |rig| {
            let opts = "remount,size=64m";
            run(&["mount", "-o", opts, rig.mnt.to_str().unwrap()]);
        },
    );
    assert!(o.down_after <= down_within(), "{:?}", o.down_after);
    let acked = rig.finish(o.journal_peak);
    rig.report(&[("full", o)], acked);
}

#[test]
#[ignore = "needs root, bindfs and /dev/fuse: scripts/test runs it (--include-ignored)"]
fn a_primary_that_takes_probes_but_refuses_appends_is_retried_with_backoff_not_at_every_probe() {
    const TEST: &str = "outage::refuses_appends";
    prerequisites(TEST);
    let _serial = serial();
    let (mut rig, _) = Rig::bindfs(TEST);
    rig.start();
    let failed_before = events(&rig.env.audit(), "collector.sync.failed", "sync").len();
    let bytes_before = rig.storage("journal_bytes").as_u64().unwrap();
    // Only `raw/` turns read-only: the probe (in the root) still succeeds, every append fails.
    let raw = rig.store.join("raw");
    rig.mounts.bind_ro(&raw);
    const FAILURES: usize = 3;
    let a = rig.daemon.as_mut().unwrap().wait_audit(
        "collector.sync.failed",
        "sync",
        failed_before + FAILURES,
    );
    let failed = &events(&a, "collector.sync.failed", "sync")[failed_before..];
    let at = |e: &Value| {
        let ts = e["ts"].as_str().unwrap();
        time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("audit ts {ts:?}: {e}"))
    };
    let mut retry = Vec::new();
    for pair in failed.windows(2).take(FAILURES - 1) {
        let (f, next) = (pair[0], pair[1]);
        assert!(
            f["payload"]["error"]
                .as_str()
                .unwrap()
                .contains("Read-only file system"),
            "{f}"
        );
        let announced = f["payload"]["retry_in_ms"].as_u64().unwrap();
        let gap = (at(next) - at(f)).whole_milliseconds() as u64;
        // Audit times have millisecond resolution and are taken a moment after the retry time
        // is set; without the backoff the retry came at the next probe, ~100 ms later.
        assert!(
            gap + 25 >= announced,
            "retried after {gap} ms, announced {announced} ms: {failed:?}"
        );
        retry.push((announced, gap));
    }
    assert!(retry[1].0 > retry[0].0, "the retry delay grows: {retry:?}");
    // Each retry costs one switch down (and one up when the probe passes), not one per probe.
    let a = rig.env.audit();
    let flips = switches(&a, "down").len();
    assert!(
        flips <= FAILURES + 1,
        "{flips} switches to down for {FAILURES} failures"
    );

    // Ingest went on meanwhile.
    let peak = wait_for("the journal to grow", || {
        let b = rig.storage("journal_bytes").as_u64().unwrap();
        (b >= bytes_before + BACKLOG_BYTES).then_some(b)
    });

    let t = Instant::now();
    rig.mounts.umount_lazy(&raw);
    wait_for("forwarding again", || {
        (rig.status()["sync"]["last"]["ok"] == true).then_some(())
    });
    eprintln!(
        "{TEST}: retries (announced ms, actual gap ms) {retry:?}; forwarding again {} ms after the repair",
        t.elapsed().as_millis()
    );
    let acked = rig.finish(peak);
    eprintln!("{TEST}: {acked} acknowledged in all");
}

/// Runs `fushi ARGS -c <config>`, which must succeed however long it takes (a hang fails the
/// test at the harness's timeout); returns its stdout.
fn ask(env: &Env, args: &[&str]) -> String {
    let mut child = Command::new(bin())
        .args(args)
        .arg("-c")
        .arg(env.config())
        .current_dir(env.path())
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running fushi");
    wait_for(&format!("`fushi {}` to answer", args.join(" ")), || {
        child.try_wait().expect("waiting for fushi")
    });
    let out = child.wait_with_output().expect("fushi's output");
    assert!(
        out.status.success(),
        "fushi {}: {}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The children of process `pid`, each with what it runs (`/proc/<child>/exe`; none once it
/// exited). A child still running the `fushi` binary was forked and has not exec'd yet.
fn children_of(pid: i32) -> Vec<(u32, Option<PathBuf>)> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            // Field 4 of /proc/<p>/stat is the parent; the name before it may hold spaces.
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
            ppid == Some(pid)
        })
        .map(|p| (p, std::fs::read_link(format!("/proc/{p}/exe")).ok()))
        .collect()
}

/// A `command` collector whose program lies on a frozen mount hangs in exec; the daemon, on its
/// one scheduler thread, must not hang with it: `fushi pid` and `fushi status` answer.
///
/// The mount is frozen while nothing of the collector's is on it: its program, a script on the
/// mount, has handed over to `sh` and `sleep` from the root filesystem, and says so with a line
/// of output. A freeze while a process works on the mount could catch bindfs holding one of
/// its requests, and a process waiting on an answer that bindfs has read cannot die, not even
/// of SIGKILL, until bindfs answers: the collector could then never restart. Killed after the
/// freeze, the program is restarted, and that restart's exec is what hangs on the mount.
#[test]
#[ignore = "needs root, bindfs and /dev/fuse: scripts/test runs it (--include-ignored)"]
fn a_command_on_a_frozen_mount_hangs_alone_not_the_daemon() {
    const TEST: &str = "outage::frozen_exec";
    prerequisites(TEST);
    let _serial = serial();
    let env = Env::new(&config(""));
    let root = env.path().canonicalize().expect("canonical temp dir");
    let (backing, mnt) = (root.join("backing"), root.join("mnt"));
    std::fs::create_dir(&backing).unwrap();
    std::fs::create_dir(&mnt).unwrap();
    let prog = backing.join("prog");
    // The script's descriptor is close-on-exec in sh: it is closed (and flushed) by the exec.
    std::fs::write(
        &prog,
        "#!/bin/sh\nexec /bin/sh -c 'echo ready; exec sleep 3600'\n",
    )
    .unwrap();
    std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.write_config(&config(&format!(
        "[[collector]]\nname = \"onnas\"\nkind = \"command\"\nargv = [\"{}\"]\n\
         backoff = [\"100ms\"]\njitter = \"0s\"\n\n\
         [[collector]]\nname = \"beat\"\nkind = \"heartbeat\"\n",
        mnt.join("prog").display()
    )));
    let mut mounts = Mounts::default();
    let bindfs = mounts.bindfs(&backing, &mnt);

    let mut d = env.start();
    // It runs from the mount: its line is a record, written once the script has exec'd away.
    wait_for("the program on the mount to say it runs", || {
        if let Ok(Some(st)) = d.child.try_wait() {
            panic!("fushi exited ({st}):\n{}", d.log());
        }
        let s = env.status()?;
        let onnas = s["actors"]
            .as_array()?
            .iter()
            .find(|a| a["name"] == "collectors/onnas")?
            .clone();
        (onnas["records"].as_u64()? >= 1).then_some(())
    });
    let me = bin().canonicalize().expect("the fushi binary");
    let running = children_of(d.pid());
    let [(program, Some(exe))] = running.as_slice() else {
        panic!("one child of fushi, running from the root filesystem: {running:?}");
    };
    assert!(!exe.starts_with(&root), "{exe:?} is not on the mount");
    signal(bindfs, Signal::SIGSTOP);
    let a = env.audit();
    let restarted = events(&a, "supervisor.child.restarted", "collectors/onnas").len();
    signal(*program, Signal::SIGKILL);
    let hung = wait_for(
        "a restart of `onnas` hanging in exec on the frozen mount",
        || {
            let hung: Vec<u32> = children_of(d.pid())
                .into_iter()
                .filter(|(_, exe)| exe.as_ref() == Some(&me))
                .map(|(p, _)| p)
                .collect();
            (!hung.is_empty()).then_some(hung)
        },
    );

    // Both answers come from the daemon over its socket, served on the runtime's thread.
    let pid = ask(&env, &["pid"]);
    assert_eq!(pid.trim(), d.pid().to_string());
    let s: Value =
        serde_json::from_str(&ask(&env, &["status", "--json", "collectors/beat"])).expect("JSON");
    let beat = s
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == "collectors/beat"))
        .unwrap_or_else(|| panic!("collectors/beat in {s}"));
    assert_eq!(beat["state"], "running", "{beat}");

    // Thawed, the exec goes on, and the restart that hung in it completes.
    let a = env.audit();
    assert_eq!(
        events(&a, "supervisor.child.restarted", "collectors/onnas").len(),
        restarted,
        "no restart of `onnas` completes while its exec hangs"
    );
    signal(bindfs, Signal::SIGCONT);
    d.wait_audit(
        "supervisor.child.restarted",
        "collectors/onnas",
        restarted + 1,
    );
    let st = d.terminate();
    assert!(st.success(), "fushi stopped cleanly: {st}");
    println!("{TEST}: exec hung in {hung:?} while `fushi pid` and `fushi status` answered");
}

/// Issue 9, case 3: the store's marker used to be checked once per batch by path, and the
/// batch's directories and files then created by path too, so a NAS unmounted during a drain
/// had the rest of a batch land on the local disk in the bare mountpoint (and vanish from the
/// NAS's history once it was mounted again). The primary here is the mountpoint itself, with no
/// tripwire under it; it is unmounted three times, each time as soon as a drain has landed its
/// first batch.
#[test]
#[ignore = "needs root, bindfs and /dev/fuse: scripts/test runs it (--include-ignored)"]
fn a_store_unmounted_during_a_drain_gets_nothing_in_the_bare_mountpoint() {
    const TEST: &str = "outage::unmounted_mid_drain";
    prerequisites(TEST);
    let _serial = serial();
    let env = Env::new(&listen_config(
        "primary = \"mnt\"\nprobe_interval = \"100ms\"\nio_timeout = \"300ms\"",
    ));
    let root = env.path().canonicalize().expect("canonical temp dir");
    let (mnt, backing) = (root.join("mnt"), root.join("backing"));
    std::fs::create_dir(&mnt).unwrap();
    std::fs::create_dir(&backing).unwrap();
    let mut mounts = Mounts::default();
    mounts.tmpfs(&backing, "1g");
    std::fs::write(backing.join(".fushi-primary"), b"").unwrap();
    let mut d = env.start();
    let pusher = Pusher::start(env.path().join("in.sock"), 50);
    let chunks = |env: &Env| events(&env.audit(), "collector.sync.chunk", "sync").len();
    for round in 0..3 {
        // A backlog while the store is away: the bare mountpoint has no marker, so it is down.
        let before = pusher.acked_count();
        wait_for(&format!("round {round}: a backlog"), || {
            (pusher.acked_count() >= before + 20_000).then_some(())
        });
        let landed = chunks(&env);
        mounts.bindfs(&backing, &mnt);
        wait_for(&format!("round {round}: the drain's first batch"), || {
            (chunks(&env) > landed).then_some(())
        });
        mounts.umount_lazy(&mnt);
        wait_for(&format!("round {round}: the primary down"), || {
            (env.status()?["storage"]["primary"] == "down").then_some(())
        });
        let stray: Vec<_> = std::fs::read_dir(&mnt)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(
            stray.is_empty(),
            "round {round}: written into the bare mountpoint: {stray:?}"
        );
    }
    mounts.bindfs(&backing, &mnt);
    let (acked, maybe) = pusher.finish();
    let acked_set: HashSet<u64> = acked.iter().copied().collect();
    wait_for("every acknowledged record on the store", || {
        let have: HashSet<u64> = store_ks(&backing).into_iter().collect();
        acked_set.is_subset(&have).then_some(())
    });
    assert!(d.terminate().success());
    let ks = primary_ks(&backing, STREAM);
    assert_acknowledged_once_in_order(&ks, &acked, &maybe, |_| {});
    assert_verify_clean(&env);
}
