//! The Debian package installed for real: cargo-deb packages the binary under test, apt-get installs, upgrades, removes and purges it (a backup of its data dir restored on the way) in a private copy-on-write view of this machine, and its fushi user runs the daemon from the installed files.
//!
//! What this cannot show: this container has no systemd as PID 1, so the package's maintainer
//! scripts skip `systemctl start` (they start the unit only where `/run/systemd/system` exists),
//! and nothing here runs the unit itself: its `User=`, `StateDirectory=` and hardening are
//! checked by `systemd-analyze` (here and in `tests/systemd.rs`), and the daemon is started the
//! way the unit would start it (`/usr/bin/fushi run -c /etc/fushi/supervisor.toml` as user fushi
//! from `/var/lib/fushi`).

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::util::*;

/// A mount and network namespace in which /etc, /usr and /var are overlays on this machine's
/// own (their changes on a tmpfs that ends with the namespace) and only loopback exists. The
/// package is installed, run and purged there for real, while the rest of the machine and the
/// tests running beside this one (which look for /etc/fushi/supervisor.toml and bind ports)
/// see none of it.
struct Sandbox {
    holder: Child,
    _upper: tempfile::TempDir,
}

/// Run by `unshare` with the tmpfs's mount point; prints `ready`, then holds the namespace
/// until its stdin closes.
const SETUP: &str = r#"set -eu
upper=$1
mount -t tmpfs tmpfs "$upper"
for d in etc usr var; do
  mkdir -p "$upper/$d/upper" "$upper/$d/work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$upper/$d/upper,workdir=$upper/$d/work" "/$d"
done
ip link set lo up
echo ready
exec cat
"#;

impl Sandbox {
    fn new() -> Self {
        let upper = tempfile::tempdir().unwrap();
        let mut holder = Command::new("unshare")
            .args(["--mount", "--net", "--propagation", "private"])
            .args(["bash", "-c", SETUP, "sandbox"])
            .arg(upper.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running unshare (util-linux)");
        let mut line = String::new();
        let _ = std::io::BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line);
        if line.trim() != "ready" {
            let mut err = String::new();
            let _ = holder.stderr.take().unwrap().read_to_string(&mut err);
            panic!("setting up the overlays of /etc, /usr and /var (overlayfs, iproute2's ip) failed: {err}");
        }
        Self {
            holder,
            _upper: upper,
        }
    }

    /// `args` inside the namespace, from `dir` (a path as the namespace sees it).
    fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        // `env --chdir`: nsenter's own --wd opens the directory before it enters.
        c.args([
            "-t",
            &self.holder.id().to_string(),
            "--mount",
            "--net",
            "--",
        ])
        .arg("env")
        .arg(format!("--chdir={}", dir.display()))
        .args(args)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null());
        c
    }

    fn run_in(&self, dir: &Path, args: &[&str]) -> Output {
        self.command(dir, args).output().expect("running nsenter")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_in(Path::new("/"), args)
    }

    /// `args` must succeed; their stdout.
    fn ok_in(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.run_in(dir, args);
        assert!(
            out.status.success(),
            "`{}` failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_in(Path::new("/"), args)
    }

    fn exists(&self, path: &str) -> bool {
        self.run(&["test", "-e", path]).status.success()
    }

    /// `args` run as the fushi user (nsenter, env and setpriv exec, so a child's pid is the
    /// program's own).
    fn as_fushi(&self, dir: &Path, args: &[&str]) -> Command {
        let mut all = vec![
            "setpriv",
            "--reuid=fushi",
            "--regid=fushi",
            "--init-groups",
            "--",
        ];
        all.extend_from_slice(args);
        self.command(dir, &all)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        drop(self.holder.stdin.take());
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Builds the package of the binary under test into `out` as version `version`: cargo-deb
/// packages the debug binary cargo just built for these tests (`--no-build --profile dev`,
/// which cargo-deb warns it does not mean for releases) rather than making a release build.
fn build_deb(out: &Path, version: &str) -> PathBuf {
    let built = Command::new("cargo-deb")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--no-build", "--profile", "dev", "--fast", "--quiet"])
        .args(["--deb-version", version, "--output"])
        .arg(out)
        .output()
        .expect("running cargo-deb");
    assert!(
        built.status.success(),
        "cargo-deb failed: {}",
        stderr(&built)
    );
    let deb = out.join(format!("fushi_{version}_amd64.deb"));
    assert!(
        deb.is_file(),
        "cargo-deb made no {}: {}",
        deb.display(),
        stdout(&built)
    );
    deb
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .expect("running dpkg-deb");
    assert!(out.status.success(), "dpkg-deb {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// Starts the installed daemon as the unit would, waits until `fushi status` (as root, from a
/// directory without a config, so through /etc/fushi/supervisor.toml) says every actor runs,
/// and returns it with that status.
fn start_installed(sb: &Sandbox, work: &Path) -> (Daemon, String) {
    let log = work.join("fushi.log");
    let child = sb
        .as_fushi(
            Path::new("/var/lib/fushi"),
            &["/usr/bin/fushi", "run", "-c", "/etc/fushi/supervisor.toml"],
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("starting the installed fushi");
    let mut d = Daemon {
        child,
        data: PathBuf::from("/var/lib/fushi"),
        log: log.clone(),
    };
    let child = &mut d.child;
    let status = wait_for_or(
        "`fushi status` to say every actor of the installed daemon runs",
        || {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "the installed fushi exited ({st}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let out = sb
                .command(work, &["/usr/bin/fushi", "status"])
                .env("XDG_CONFIG_HOME", work)
                .output()
                .expect("running nsenter");
            (code(&out) == 0).then(|| stdout(&out))
        },
        || std::fs::read_to_string(&log).unwrap_or_default(),
    );
    (d, status)
}

/// `fushi shutdown` (as root, through the installed config) and the daemon's clean exit.
fn stop_installed(sb: &Sandbox, mut d: Daemon) {
    sb.ok(&[
        "/usr/bin/fushi",
        "-c",
        "/etc/fushi/supervisor.toml",
        "shutdown",
    ]);
    assert!(d.wait_exit().success(), "{}", d.log());
}

/// The `daemon.started` lines of the installed daemon's audit log.
fn daemon_starts(sb: &Sandbox) -> Vec<serde_json::Value> {
    sb.ok(&["cat", "/var/lib/fushi/audit.jsonl"])
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "daemon.started")
        .collect()
}

/// The uid a process runs as (the real one, from /proc).
fn uid_of(pid: i32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("no Uid in /proc/{pid}/status:\n{status}"))
}

#[test]
#[ignore = "needs root, cargo-deb, apt-get, overlayfs and iproute2 (a mount and network namespace): scripts/test runs it (--include-ignored)"]
fn the_debian_package_installs_runs_as_its_user_upgrades_and_purges_as_the_readme_says() {
    let test =
        "the_debian_package_installs_runs_as_its_user_upgrades_and_purges_as_the_readme_says";
    require(
        nix::unistd::Uid::effective().is_root(),
        test,
        "root for a mount namespace and apt-get",
    );
    require(
        Command::new("cargo-deb")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        test,
        "cargo-deb (`cargo install cargo-deb --locked`, which .ci/run does)",
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let deb = build_deb(work.path(), "0.1.0-1");

    // What the package holds, before anything is installed.
    let fields = dpkg_deb(&["--field"], &deb);
    assert!(fields.lines().any(|l| l == "Package: fushi"), "{fields}");
    let depends = fields
        .lines()
        .find_map(|l| l.strip_prefix("Depends: "))
        .unwrap_or_else(|| panic!("no Depends in:\n{fields}"));
    assert!(
        depends.split(", ").any(|d| d == "systemd"),
        "systemd-sysusers makes the user: {depends}"
    );
    assert_eq!(
        dpkg_deb(&["--info"], &deb)
            .lines()
            .filter(|l| l.contains("conffiles"))
            .count(),
        1,
        "a conffiles member"
    );
    let listing = dpkg_deb(&["--contents"], &deb);
    for path in [
        "./usr/bin/fushi",
        "./etc/fushi/supervisor.toml",
        "./usr/lib/systemd/system/fushi.service",
        "./usr/lib/sysusers.d/fushi.conf",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(&format!(" {path}"))),
            "no {path} in:\n{listing}"
        );
    }

    let sb = Sandbox::new();
    assert!(
        !sb.run(&["dpkg-query", "-W", "fushi"]).status.success()
            && !sb.run(&["getent", "passwd", "fushi"]).status.success()
            && !sb.exists("/var/lib/fushi"),
        "this machine has a fushi package, user or /var/lib/fushi already: the test installs the package on a machine without them"
    );
    let deb_name = format!("./{}", deb.file_name().unwrap().to_string_lossy());
    sb.ok_in(work.path(), &["apt-get", "install", "-y", &deb_name]);

    // Installed as built.
    let version = stdout(&bare(&["--version"]).output().unwrap());
    assert_eq!(sb.ok(&["/usr/bin/fushi", "--version"]), version);
    let passwd = sb.ok(&["getent", "passwd", "fushi"]);
    let f: Vec<&str> = passwd.trim().split(':').collect();
    let uid: u32 = f[2].parse().unwrap();
    assert!(uid < 1000, "a system user: {passwd}");
    assert_eq!(f[5], "/var/lib/fushi", "home: {passwd}");
    assert!(f[6].ends_with("nologin"), "no login shell: {passwd}");
    sb.ok(&["getent", "group", "fushi"]);
    let conffiles = sb.ok(&["dpkg-query", "-W", "-f=${Conffiles}", "fushi"]);
    assert!(
        conffiles.contains(" /etc/fushi/supervisor.toml "),
        "a conffile: {conffiles:?}"
    );
    let packaged_config = std::fs::read_to_string(root.join("debian/supervisor.toml")).unwrap();
    assert_eq!(
        sb.ok(&["cat", "/etc/fushi/supervisor.toml"]),
        packaged_config
    );
    assert_eq!(
        sb.ok(&["cat", "/usr/lib/systemd/system/fushi.service"]),
        std::fs::read_to_string(root.join("debian/fushi.service")).unwrap()
    );
    let wants = "/etc/systemd/system/multi-user.target.wants/fushi.service";
    assert!(sb.exists(wants), "the unit is enabled: no {wants}");
    assert_eq!(
        sb.ok(&["stat", "-c", "%U:%G %a", "/var/lib/fushi"]).trim(),
        "fushi:fushi 700"
    );
    let verify = sb.run(&[
        "systemd-analyze",
        "verify",
        "--man=no",
        "/usr/lib/systemd/system/fushi.service",
    ]);
    assert!(
        verify.status.success() && stderr(&verify).trim().is_empty(),
        "systemd-analyze verify of the installed unit: {}",
        stderr(&verify)
    );

    // The fushi user's pre-flight of the installed config.
    let check = sb
        .as_fushi(
            Path::new("/var/lib/fushi"),
            &[
                "/usr/bin/fushi",
                "check",
                "-c",
                "/etc/fushi/supervisor.toml",
            ],
        )
        .output()
        .unwrap();
    let said = stdout(&check);
    assert_eq!(code(&check), 0, "{said}{}", stderr(&check));
    for line in [
        "ok   config: /etc/fushi/supervisor.toml",
        "ok   data dir: /var/lib/fushi exists and is writable",
        "ok   data dir permissions: 700 (want 700: status, audit and the socket live here)",
        "ok   socket: /var/lib/fushi/fushi.sock is free",
        "ok   http: 127.0.0.1:9752 is free",
    ] {
        assert!(said.lines().any(|l| l == line), "no {line:?} in:\n{said}");
    }

    // The daemon from the installed files, as user fushi.
    let (d, status) = start_installed(&sb, work.path());
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("collectors/heartbeat") && l.contains("running")),
        "{status}"
    );
    let pid = sb.ok_in(work.path(), &["/usr/bin/fushi", "pid"]);
    assert_eq!(pid.trim(), d.pid().to_string(), "the daemon's own pid");
    assert_eq!(uid_of(d.pid()), uid, "the daemon runs as fushi");
    stop_installed(&sb, d);
    let owners = sb.ok(&[
        "stat",
        "-c",
        "%U %n",
        "/var/lib/fushi/status.json",
        "/var/lib/fushi/audit.jsonl",
        "/var/lib/fushi/journal",
        "/var/lib/fushi/config.last-good.toml",
    ]);
    assert!(owners.lines().all(|l| l.starts_with("fushi ")), "{owners}");
    sb.ok(&[
        "/usr/bin/fushi",
        "-c",
        "/etc/fushi/supervisor.toml",
        "verify",
    ]);

    // README "Backup and restore": with the daemon stopped, the whole data dir.
    let backup = work.path().join("fushi-data.tar.gz");
    sb.ok(&[
        "tar",
        "-C",
        "/var/lib",
        "-czf",
        backup.to_str().unwrap(),
        "fushi",
    ]);

    // An upgrade keeps an edited conffile and the data, and the daemon goes on from them.
    sb.ok(&[
        "sed",
        "-i",
        "s/^# id = \"collector-pc\"/id = \"packaged-node\"/",
        "/etc/fushi/supervisor.toml",
    ]);
    let edited = sb.ok(&["cat", "/etc/fushi/supervisor.toml"]);
    assert_ne!(edited, packaged_config, "the sed edited the config");
    let deb2 = build_deb(work.path(), "0.1.0-2");
    let deb2_name = format!("./{}", deb2.file_name().unwrap().to_string_lossy());
    sb.ok_in(work.path(), &["apt-get", "install", "-y", &deb2_name]);
    assert_eq!(
        sb.ok(&["dpkg-query", "-W", "-f=${Version}", "fushi"]),
        "0.1.0-2"
    );
    assert_eq!(
        sb.ok(&["cat", "/etc/fushi/supervisor.toml"]),
        edited,
        "the edited conffile is kept"
    );
    let (d, _) = start_installed(&sb, work.path());
    let started = daemon_starts(&sb);
    assert_eq!(started.len(), 2, "the audit log goes on: {started:?}");
    assert_eq!(
        started[1]["node"], "packaged-node",
        "the edited config runs"
    );
    stop_installed(&sb, d);

    // The restore: the data dir moved aside, the copy unpacked with its owners, verified, run.
    sb.ok(&["mv", "/var/lib/fushi", "/var/lib/fushi.old"]);
    sb.ok(&["tar", "-C", "/var/lib", "-xpzf", backup.to_str().unwrap()]);
    assert_eq!(
        sb.ok(&["stat", "-c", "%U:%G %a", "/var/lib/fushi"]).trim(),
        "fushi:fushi 700"
    );
    sb.ok(&[
        "/usr/bin/fushi",
        "-c",
        "/etc/fushi/supervisor.toml",
        "verify",
    ]);
    let (d, _) = start_installed(&sb, work.path());
    assert_eq!(
        daemon_starts(&sb).len(),
        2,
        "the restored audit log (one start before the backup, this one)"
    );
    stop_installed(&sb, d);
    sb.ok(&["rm", "-rf", "/var/lib/fushi.old"]);

    // Removed: the program goes, the config, the user and the data stay.
    sb.ok(&["apt-get", "remove", "-y", "fushi"]);
    assert!(!sb.exists("/usr/bin/fushi"));
    assert!(!sb.exists("/usr/lib/systemd/system/fushi.service"));
    assert_eq!(
        sb.ok(&["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "fushi"]),
        "rc "
    );
    assert_eq!(sb.ok(&["cat", "/etc/fushi/supervisor.toml"]), edited);
    sb.ok(&["getent", "passwd", "fushi"]);
    assert!(sb.exists("/var/lib/fushi/journal"));

    // Purged: the config goes too; the user and the data stay (README "Deploy").
    sb.ok(&["apt-get", "purge", "-y", "fushi"]);
    assert!(!sb.exists("/etc/fushi"), "purge removes /etc/fushi");
    assert!(!sb.run(&["dpkg-query", "-W", "fushi"]).status.success());
    assert!(!sb.exists(wants), "purge leaves no {wants}");
    assert!(
        !sb.exists("/etc/systemd/system/fushi.service"),
        "purge leaves no mask"
    );
    sb.ok(&["getent", "passwd", "fushi"]);
    for kept in [
        "/var/lib/fushi/status.json",
        "/var/lib/fushi/audit.jsonl",
        "/var/lib/fushi/journal",
    ] {
        assert!(sb.exists(kept), "purge keeps {kept}");
    }
    // The README's last step, by hand.
    sb.ok(&["rm", "-rf", "/var/lib/fushi"]);
    sb.ok(&["userdel", "fushi"]);
    assert!(!sb.run(&["getent", "group", "fushi"]).status.success());
}
