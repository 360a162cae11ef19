//! The Debian package installed for real: cargo-deb packages the binary under test, and apt-get installs, upgrades, removes and purges it on a systemd booted in namespaces of its own, which runs the packaged unit as the fushi user; a backup of the data dir is restored on the way.
//!
//! The systemd is the one of `tests/systemd_boot.rs`: PID 1 of its own pid and mount namespaces,
//! its root an overlay of this machine's `/` whose writes land on a tmpfs. The package, its user
//! and its data exist only there, so the tests running beside this one (which look for
//! `/etc/fushi/supervisor.toml`) never see them. It shares this machine's network: the packaged
//! config's `127.0.0.1:9752` must be free.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::systemd_boot::Booted;
use crate::util::*;

/// `args` inside, as root from `/`, with nothing of this process's environment that would
/// point the CLI elsewhere.
fn run(sd: &Booted, args: &[&str]) -> Output {
    sd.command(args)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .expect("running nsenter")
}

/// `args` must succeed; their stdout.
fn ok(sd: &Booted, args: &[&str]) -> String {
    let out = run(sd, args);
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

/// A README command line, through `sh -c`.
fn sh(sd: &Booted, line: &str) -> String {
    ok(sd, &["sh", "-c", line])
}

fn exists(sd: &Booted, path: &str) -> bool {
    run(sd, &["test", "-e", path]).status.success()
}

/// Waits for the unit to be active with a main pid other than `old`, and returns that pid.
fn active(sd: &Booted, what: &str, old: &str) -> String {
    sd.wait(what, |sd| {
        let pid = sd.show("MainPID");
        pid != old && pid != "0" && sd.show("ActiveState") == "active"
    });
    sd.show("MainPID")
}

/// The `daemon.started` lines of the installed daemon's audit log.
fn daemon_starts(sd: &Booted) -> Vec<serde_json::Value> {
    ok(sd, &["cat", "/var/lib/fushi/audit.jsonl"])
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "daemon.started")
        .collect()
}

/// Builds the package of the binary under test into `out` as version `version`: cargo-deb
/// packages that very file (`--no-build --profile dev`, which cargo-deb warns it does not mean
/// for releases) rather than making a release build. It looks for it in a target dir of the
/// test's own, where `bin()` is linked, because it also deletes the other versions' packages
/// in its target dir's `debian/`, and a developer's `target/debian` is not the test's.
fn build_deb(out: &Path, version: &str) -> PathBuf {
    let target = out.join("target");
    let exe = target.join("debug/fushi");
    if !exe.exists() {
        std::fs::create_dir_all(target.join("debug")).unwrap();
        // A copy where the build's temp dir is on another file system than the binary.
        std::fs::hard_link(bin(), &exe)
            .or_else(|_| std::fs::copy(bin(), &exe).map(|_| ()))
            .expect("linking the binary under test into the package's target dir");
    }
    let built = Command::new("cargo-deb")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", &target)
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

#[test]
#[ignore = "needs root to boot a systemd in namespaces of its own, and cargo-deb: scripts/test runs it (--include-ignored)"]
fn the_debian_package_runs_as_its_user_under_systemd_upgrades_restores_and_purges_as_the_readme_says(
) {
    let test = "the_debian_package_runs_as_its_user_under_systemd_upgrades_restores_and_purges_as_the_readme_says";
    require(
        Command::new("cargo-deb")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        test,
        "cargo-deb (`cargo install cargo-deb --locked`, which .ci/run does)",
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Under the build's own temp dir, which the booted systemd's overlay shows (its /tmp is
    // a fresh tmpfs); both packages are built before it boots.
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let deb = build_deb(work.path(), "0.1.0-1");
    let deb2 = build_deb(work.path(), "0.1.0-2");
    let (deb, deb2) = (deb.to_str().unwrap(), deb2.to_str().unwrap());

    // What the package holds, before anything is installed.
    let fields = dpkg_deb(&["--field"], Path::new(deb));
    assert!(fields.lines().any(|l| l == "Package: fushi"), "{fields}");
    let depends = fields
        .lines()
        .find_map(|l| l.strip_prefix("Depends: "))
        .unwrap_or_else(|| panic!("no Depends in:\n{fields}"));
    assert!(
        depends.split(", ").any(|d| d == "systemd"),
        "systemd-sysusers makes the user: {depends}"
    );
    let listing = dpkg_deb(&["--contents"], Path::new(deb));
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

    let sd = Booted::boot();
    assert!(
        !run(&sd, &["dpkg-query", "-W", "fushi"]).status.success()
            && !run(&sd, &["getent", "passwd", "fushi"]).status.success()
            && !exists(&sd, "/var/lib/fushi"),
        "this machine has a fushi package, user or /var/lib/fushi already: the test installs the package where there is none"
    );
    // Docker's images forbid maintainer scripts to start services (a policy-rc.d that exits
    // 101, which deb-systemd-invoke obeys); a machine has none, so the sandbox's copy goes.
    ok(&sd, &["rm", "-f", "/usr/sbin/policy-rc.d"]);
    ok(&sd, &["apt-get", "install", "-y", deb]);

    // Installed as built.
    let version = stdout(&bare(&["--version"]).output().unwrap());
    assert_eq!(ok(&sd, &["/usr/bin/fushi", "--version"]), version);
    let passwd = ok(&sd, &["getent", "passwd", "fushi"]);
    let f: Vec<&str> = passwd.trim().split(':').collect();
    assert!(
        f[2].parse::<u32>().is_ok_and(|uid| uid < 1000),
        "a system user: {passwd}"
    );
    assert_eq!(f[5], "/var/lib/fushi", "home: {passwd}");
    assert!(f[6].ends_with("nologin"), "no login shell: {passwd}");
    ok(&sd, &["getent", "group", "fushi"]);
    let conffiles = ok(&sd, &["dpkg-query", "-W", "-f=${Conffiles}", "fushi"]);
    assert!(
        conffiles.contains(" /etc/fushi/supervisor.toml "),
        "a conffile: {conffiles:?}"
    );
    let packaged_config = std::fs::read_to_string(root.join("debian/supervisor.toml")).unwrap();
    assert_eq!(
        ok(&sd, &["cat", "/etc/fushi/supervisor.toml"]),
        packaged_config
    );
    assert_eq!(
        ok(&sd, &["cat", "/usr/lib/systemd/system/fushi.service"]),
        std::fs::read_to_string(root.join("debian/fushi.service")).unwrap()
    );
    let wants = "/etc/systemd/system/multi-user.target.wants/fushi.service";
    assert!(exists(&sd, wants), "the unit is enabled: no {wants}");
    assert_eq!(
        ok(&sd, &["stat", "-c", "%U:%G %a", "/var/lib/fushi"]).trim(),
        "fushi:fushi 700"
    );
    let verify = run(
        &sd,
        &[
            "systemd-analyze",
            "verify",
            "--man=no",
            "/usr/lib/systemd/system/fushi.service",
        ],
    );
    assert!(
        verify.status.success() && stderr(&verify).trim().is_empty(),
        "systemd-analyze verify of the installed unit: {}",
        stderr(&verify)
    );

    // The package started its unit, and systemd runs it as fushi.
    let pid = active(&sd, "fushi.service active after the install", "0");
    assert!(sd.show("StatusText").contains("actors running"));
    assert_eq!(sd.show("User"), "fushi");
    assert_eq!(
        ok(&sd, &["stat", "-c", "%U", &format!("/proc/{pid}")]).trim(),
        "fushi",
        "the main process's owner"
    );
    // README "Deploy": root's `fushi status` from a directory without a config, and the
    // fushi user's pre-flight, which finds the daemon the unit runs.
    let status = ok(&sd, &["/usr/bin/fushi", "status"]);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("collectors/heartbeat") && l.contains("running")),
        "{status}"
    );
    let check = ok(
        &sd,
        &[
            "setpriv",
            "--reuid=fushi",
            "--regid=fushi",
            "--init-groups",
            "--",
            "/usr/bin/fushi",
            "-c",
            "/etc/fushi/supervisor.toml",
            "check",
        ],
    );
    for line in [
        "ok   config: /etc/fushi/supervisor.toml".to_string(),
        "ok   data dir: /var/lib/fushi exists and is writable".into(),
        "ok   data dir permissions: 700 (want 700: status, audit and the socket live here)".into(),
        format!("ok   socket: /var/lib/fushi/fushi.sock: fushi is running, pid {pid}"),
        format!("ok   http: 127.0.0.1:9752 is served by this fushi, pid {pid}"),
    ] {
        assert!(check.lines().any(|l| l == line), "no {line:?} in:\n{check}");
    }
    sd.wait(
        "the heartbeat's lines in journalctl -u fushi ACTOR=",
        |sd| {
            sd.journal(&["ACTOR=collectors/heartbeat", "-o", "verbose", "-n", "1"])
                .contains("EVENT=collector.heartbeat")
        },
    );

    // README "Backup and restore": the whole data dir, the daemon stopped.
    sh(
        &sd,
        "systemctl stop fushi && tar -C /var/lib -czf /root/fushi-data.tar.gz fushi && systemctl start fushi",
    );
    let pid = active(&sd, "fushi.service active after the backup", &pid);

    // README "Upgrade": an edited conffile and the data are kept, the unit is restarted and
    // the new daemon goes on from them.
    ok(
        &sd,
        &[
            "sed",
            "-i",
            "s/^# id = \"collector-pc\"/id = \"packaged-node\"/",
            "/etc/fushi/supervisor.toml",
        ],
    );
    let edited = ok(&sd, &["cat", "/etc/fushi/supervisor.toml"]);
    assert_ne!(edited, packaged_config, "the sed edited the config");
    ok(&sd, &["apt-get", "install", "-y", deb2]);
    assert_eq!(
        ok(&sd, &["dpkg-query", "-W", "-f=${Version}", "fushi"]),
        "0.1.0-2"
    );
    assert_eq!(
        ok(&sd, &["cat", "/etc/fushi/supervisor.toml"]),
        edited,
        "the edited conffile is kept"
    );
    let pid = active(&sd, "fushi.service restarted by the upgrade", &pid);
    let starts = daemon_starts(&sd);
    assert_eq!(starts.len(), 3, "the audit log goes on: {starts:?}");
    assert_eq!(starts[2]["node"], "packaged-node", "the edited config runs");

    // The restore, as the README runs it.
    sh(
        &sd,
        "systemctl stop fushi && mv /var/lib/fushi /var/lib/fushi.old && tar -C /var/lib -xpzf /root/fushi-data.tar.gz",
    );
    assert_eq!(
        ok(&sd, &["stat", "-c", "%U:%G %a", "/var/lib/fushi"]).trim(),
        "fushi:fushi 700"
    );
    let said = sh(
        &sd,
        "fushi -c /etc/fushi/supervisor.toml verify && systemctl start fushi && fushi status",
    );
    assert!(
        said.contains("no gaps, duplicates or out-of-order ids"),
        "{said}"
    );
    active(&sd, "fushi.service active after the restore", &pid);
    assert_eq!(
        daemon_starts(&sd).len(),
        2,
        "the restored audit log: the start before the backup and this one"
    );

    // Removed: the unit is stopped, the program goes; the config, the user and the data stay.
    ok(&sd, &["apt-get", "remove", "-y", "fushi"]);
    assert_eq!(sd.show("ActiveState"), "inactive", "removal stops the unit");
    assert!(!exists(&sd, "/usr/bin/fushi"));
    assert!(!exists(&sd, "/usr/lib/systemd/system/fushi.service"));
    assert_eq!(
        ok(
            &sd,
            &["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "fushi"]
        ),
        "rc "
    );
    assert_eq!(ok(&sd, &["cat", "/etc/fushi/supervisor.toml"]), edited);
    ok(&sd, &["getent", "passwd", "fushi"]);
    assert!(exists(&sd, "/var/lib/fushi/journal"));

    // Purged: the config goes too; the user and the data stay (README "Deploy").
    ok(&sd, &["apt-get", "purge", "-y", "fushi"]);
    assert!(!exists(&sd, "/etc/fushi"), "purge removes /etc/fushi");
    assert!(!run(&sd, &["dpkg-query", "-W", "fushi"]).status.success());
    assert!(!exists(&sd, wants), "purge leaves no {wants}");
    assert!(
        !exists(&sd, "/etc/systemd/system/fushi.service"),
        "purge leaves no mask"
    );
    ok(&sd, &["getent", "passwd", "fushi"]);
    for kept in [
        "/var/lib/fushi/status.json",
        "/var/lib/fushi/audit.jsonl",
        "/var/lib/fushi/journal",
    ] {
        assert!(exists(&sd, kept), "purge keeps {kept}");
    }
    // The README's last step, by hand.
    sh(&sd, "rm -rf /var/lib/fushi && userdel fushi");
    assert!(!run(&sd, &["getent", "group", "fushi"]).status.success());
}
