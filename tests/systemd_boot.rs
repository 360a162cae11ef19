//! The unit under a real systemd: `fushi install-unit --system` against a systemd booted as PID 1 of its own namespaces, then start, journald's fields, `-p crit`, `kill -9` and `Restart=always`, reload and stop.
//!
//! CI runs in a container whose PID 1 is not systemd, so each test boots one: new pid and mount
//! namespaces, an overlay of `/` whose writes land on a tmpfs (systemd's boot units — tmpfiles'
//! `--remove`, sysctl, sysusers — act on that copy, never on this machine's files), fresh `/run`
//! and `/tmp`, and `systemd --system --unit=basic.target`. Every command then runs inside with
//! `nsenter`. Dropping the [`Booted`] kills that PID 1, and with it everything it started.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

const BOOT: &str = r#"set -eu
R=$1
mount -t tmpfs -o size=512m tmpfs "$R"
mkdir "$R/upper" "$R/work" "$R/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$R/upper,workdir=$R/work" "$R/root"
mount --rbind /dev "$R/root/dev"
mount -t proc proc "$R/root/proc"
mount --rbind /sys "$R/root/sys"
mount -t tmpfs tmpfs "$R/root/run"
mount -t tmpfs tmpfs "$R/root/tmp"
# The build's target dir (the binary under test, the tests' files) stays in sight, also when the
# checkout is under /tmp, which the fresh tmpfs would hide.
mkdir -p "$R/root$2"
mount --bind "$2" "$R/root$2"
exec chroot "$R/root" /usr/bin/env container=fushi-test /lib/systemd/systemd --system \
  --unit=basic.target --log-target=console --show-status=no
"#;

/// A systemd booted as PID 1 of namespaces of its own; killed on drop. `tests/package.rs`
/// installs the Debian package into one.
pub(crate) struct Booted {
    unshare: Child,
    pid: u32,
    _sandbox: tempfile::TempDir,
    /// Held until this systemd is dead (fields drop after `Drop::drop`).
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

/// One booted systemd at a time: they share this machine's cgroup tree, so two would each
/// start `fushi.service` in the same cgroup and kill, count and wait for the other's processes
/// (`systemctl kill` failing with EIO on a pid of the other's namespace).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Booted {
    pub(crate) fn boot() -> Self {
        let one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let missing: Vec<&str> = [
            "/lib/systemd/systemd",
            "/usr/bin/unshare",
            "/usr/bin/nsenter",
        ]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
        require(
            nix::unistd::Uid::effective().is_root() && missing.is_empty(),
            "systemd_boot",
            &format!("root, systemd and util-linux (missing: {missing:?})"),
        );
        let sandbox = tempfile::tempdir().expect("creating the sandbox dir");
        // On this side of the mount the sandbox dir stays a plain dir: the log outlives a boot
        // that fails, for the message that says so.
        let log_path = sandbox.path().join("boot.log");
        let log = std::fs::File::create(&log_path).ok();
        let unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--mount", "--propagation", "private"])
            .args(["sh", "-c", BOOT, "boot"])
            .arg(sandbox.path())
            .arg(target_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.map_or(Stdio::null(), Stdio::from))
            .spawn()
            .expect("spawning unshare");
        // unshare --fork's child becomes systemd (sh execs chroot, which execs it).
        let children = format!("/proc/{}/task/{}/children", unshare.id(), unshare.id());
        let pid = wait_for("unshare's child", || {
            std::fs::read_to_string(&children)
                .ok()?
                .split_whitespace()
                .next()?
                .parse::<u32>()
                .ok()
        });
        let mut booted = Self {
            unshare,
            pid,
            _sandbox: sandbox,
            _one_at_a_time: one_at_a_time,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = booted.run(&["systemctl", "is-system-running"]);
            let s = stdout(&state);
            if s.starts_with("running") || s.starts_with("degraded") {
                break;
            }
            if let Ok(Some(st)) = booted.unshare.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("the sandboxed systemd ended ({st}) before it was up:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "systemd did not finish booting in 60 s: {s}\n{}",
                stdout(&booted.run(&["systemctl", "list-jobs", "--no-pager"]))
            );
            // A poll of the event (systemd's own state), not a wait for time: there is no way
            // to be told, and each look is a process (nsenter, systemctl), hence not every 5 ms.
            std::thread::sleep(Duration::from_millis(100));
        }
        booted
    }

    /// `args` inside the sandbox: its mounts, pids and root.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.pid.to_string())
            .args(["-m", "-p", "-r", "-w", "--"])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running nsenter")
    }

    pub(crate) fn journal(&self, args: &[&str]) -> String {
        let mut a = vec!["journalctl", "--no-pager", "-u", "fushi"];
        a.extend_from_slice(args);
        stdout(&self.run(&a))
    }

    pub(crate) fn show(&self, prop: &str) -> String {
        let o = self.run(&["systemctl", "show", "fushi", "-p", prop, "--value"]);
        stdout(&o).trim().to_string()
    }

    pub(crate) fn wait(&self, what: &str, mut f: impl FnMut(&Self) -> bool) {
        wait_for_or(
            what,
            || f(self).then_some(()),
            || {
                let s = self.run(&["systemctl", "status", "fushi", "--no-pager", "-n", "30"]);
                format!("{}{}", stdout(&s), stderr(&s))
            },
        )
    }
}

/// The build's target dir: the binary under test is in it, and `CARGO_TARGET_TMPDIR`.
fn target_dir() -> PathBuf {
    let exe = std::fs::canonicalize(bin()).expect("the binary under test");
    exe.ancestors()
        .nth(2)
        .expect("target/<profile>/fushi")
        .to_path_buf()
}

impl Drop for Booted {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.unshare.wait();
    }
}

impl Booted {
    /// Writes `bytes` to `path` inside the sandbox (its overlay's tmpfs, not this machine).
    fn put(&self, path: &str, bytes: &[u8], mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let outside = PathBuf::from(format!("/proc/{}/root{path}", self.pid));
        std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
        std::fs::write(&outside, bytes).unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

#[test]
#[ignore = "needs root to boot a systemd in namespaces of its own: scripts/test runs it (--include-ignored)"]
fn install_unit_starts_under_systemd_and_journald_restart_reload_and_stop_work() {
    let config_text = r#"[node]
id = "boot-node"
data_dir = "data"

[control]
http = ""

[[collector]]
name = "heartbeat"
kind = "heartbeat"
every = "200ms"

[[collector]]
name = "broken"
kind = "command"
argv = ["false"]
backoff = ["100ms"]
jitter = "0s"
escalate_after = 2
give_up_after = 3
"#;
    let sd = Booted::boot();
    // Both inside the sandbox and outside /tmp: the unit's PrivateTmp would hide a checkout
    // under /tmp from the daemon, and install-unit names the binary it runs from.
    let (bin, config_s) = (
        "/usr/local/bin/fushi",
        "/var/lib/fushi-boot/supervisor.toml",
    );
    sd.put(bin, &std::fs::read(crate::util::bin()).unwrap(), 0o755);
    sd.put(config_s, config_text.as_bytes(), 0o644);
    let config = PathBuf::from(config_s);
    let o = sd.run(&[bin, "install-unit", "--system", "-c", config_s]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("enabled and started"), "{}", stdout(&o));
    // Type=notify: active only once READY=1 came, with the daemon's STATUS= line.
    sd.wait("fushi.service active with its STATUS=", |sd| {
        sd.show("ActiveState") == "active" && sd.show("StatusText").contains("actors running")
    });
    assert_eq!(sd.show("MemoryMax"), (512u64 << 20).to_string());
    assert_eq!(sd.show("Restart"), "always");
    assert_eq!(sd.show("WatchdogUSec"), "30s");
    assert_eq!(sd.show("UnitFileState"), "enabled");
    let main_pid = sd.show("MainPID");

    // journald's native fields, as the README's patterns use them.
    sd.wait("the heartbeat's lines by ACTOR=", |sd| {
        sd.journal(&["ACTOR=collectors/heartbeat", "-o", "verbose", "-n", "1"])
            .contains("EVENT=collector.heartbeat")
    });
    sd.wait("the escalation and the giving up at -p crit", |sd| {
        let crit = sd.journal(&["-p", "crit", "-o", "verbose"]);
        crit.contains("EVENT=supervisor.child.escalated")
            && crit.contains("EVENT=supervisor.child.fatal")
            && crit.contains("ACTOR=collectors/broken")
    });
    // The CLI reaches the daemon systemd started.
    let st = sd.run(&[bin, "-c", config_s, "status", "heartbeat"]);
    assert_eq!(code(&st), 0, "{}{}", stdout(&st), stderr(&st));

    // kill -9: Restart=always brings it back after RestartSec=5s, and it says it recovered.
    let k = sd.run(&["systemctl", "kill", "-s", "KILL", "fushi"]);
    assert_eq!(code(&k), 0, "{}", stderr(&k));
    sd.wait("a new main pid, active again", |sd| {
        let pid = sd.show("MainPID");
        pid != main_pid && pid != "0" && sd.show("ActiveState") == "active"
    });
    assert_eq!(sd.show("NRestarts"), "1");
    sd.wait("the recovered crash in the journal", |sd| {
        !sd.journal(&["EVENT=daemon.recovered"]).trim().is_empty()
    });

    // systemctl reload is SIGHUP: the config is read again.
    let r = sd.run(&["systemctl", "reload", "fushi"]);
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    sd.wait("config.reload.ok in the journal", |sd| {
        !sd.journal(&["EVENT=config.reload.ok"]).trim().is_empty()
    });

    // stop: an ordered shutdown, status.json marked clean.
    let s = sd.run(&["systemctl", "stop", "fushi"]);
    assert_eq!(code(&s), 0, "{}", stderr(&s));
    assert_eq!(sd.show("ActiveState"), "inactive");
    let data = config.parent().unwrap().join("data/status.json");
    let status = sd.run(&["cat", data.to_str().unwrap()]);
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout)
        .unwrap_or_else(|e| panic!("status.json ({e}): {}", stdout(&status)));
    assert_eq!(doc["clean_shutdown"], true, "{doc:#}");
    assert_eq!(doc["daemon_recovered"], 1, "{doc:#}");
}
