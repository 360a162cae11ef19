//! systemd integration and logging: sd_notify messages on a NOTIFY_SOCKET the test owns, journald fields, and a text log that cannot stall the daemon.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::util::*;

fn recv_until(sock: &UnixDatagram, want: &str, seen: &mut Vec<String>) {
    let mut buf = [0u8; 4096];
    wait_for(&format!("{want} on NOTIFY_SOCKET (seen: {seen:?})"), || {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        seen.iter()
            .any(|m| m.lines().any(|l| l == want))
            .then_some(())
    });
}

#[test]
fn sd_notify_ready_status_watchdog_stopping() {
    let env = Env::new(&config(
        "[[collector]]\nname = \"beat\"\nkind = \"heartbeat\"\n",
    ));
    let sock_path = env.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut d = env.start_with(|c| {
        c.env("NOTIFY_SOCKET", &sock_path)
            .env("WATCHDOG_USEC", "200000");
    });
    let mut seen = Vec::new();
    recv_until(&sock, "READY=1", &mut seen);
    let ready = seen.iter().find(|m| m.contains("READY=1")).unwrap();
    assert!(ready.contains("STATUS=health "), "{ready}");
    recv_until(&sock, "WATCHDOG=1", &mut seen);
    d.signal(nix::sys::signal::Signal::SIGTERM);
    recv_until(&sock, "STOPPING=1", &mut seen);
    assert!(d.wait_exit().success());
}

fn journal(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// journald runs standalone here: the test starts its own in a private mount namespace (tmpfs over
/// its socket and storage dirs), so it needs root; without root it fails, saying so.
#[test]
#[ignore = "needs root and systemd-journald (a mount namespace): scripts/test runs it (--include-ignored)"]
fn journalctl_finds_an_actors_lines_by_native_fields() {
    require(
        nix::unistd::Uid::effective().is_root(),
        "journalctl_finds_an_actors_lines_by_native_fields",
        "root for a mount namespace",
    );
    let env = Env::new(&config(
        r#"[[collector]]
name = "beat"
kind = "heartbeat"
every = "50ms"
[[collector]]
name = "crash"
kind = "command"
argv = ["false"]
backoff = ["100ms"]
jitter = "0s"
escalate_after = 2
"#,
    ));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/journald.sh");
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "bash"])
        .arg(&script)
        .arg(bin())
        .arg(env.config())
        .arg(env.path())
        .output()
        .expect("running unshare (util-linux)");
    assert!(
        out.status.success(),
        "journald script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let beat = journal(&env.path().join("beat.json"));
    let heartbeat = beat
        .iter()
        .find(|e| e["EVENT"] == "collector.heartbeat")
        .expect("a heartbeat line");
    assert_eq!(heartbeat["ACTOR"], "collectors/beat");
    assert_eq!(heartbeat["SYSLOG_IDENTIFIER"], "fushi");
    assert_eq!(
        heartbeat["STREAM"], "beat",
        "stream defaults to the collector name"
    );
    assert_eq!(
        heartbeat["PRIORITY"], "5",
        "INFO is journald's notice, as tracing-journald maps it too"
    );
    assert!(beat
        .iter()
        .any(|e| e["EVENT"] == "supervisor.child.started"));

    let tail = std::fs::read_to_string(env.path().join("tail.txt")).unwrap();
    assert_eq!(
        tail.lines().count(),
        3,
        "fushi tail -n 3 through journalctl:\n{tail}"
    );
    assert!(tail.lines().all(|l| l.contains("fushi[")), "{tail}");

    let crash = journal(&env.path().join("crash.json"));
    let escalated: Vec<_> = crash
        .iter()
        .filter(|e| e["EVENT"] == "supervisor.child.escalated")
        .collect();
    assert_eq!(escalated.len(), 1, "one escalation per streak");
    assert_eq!(
        escalated[0]["PRIORITY"], "2",
        "the journald alert channel is critical (SPEC §6)"
    );
    assert_eq!(escalated[0]["FAILURES"], "2");
    assert!(crash
        .iter()
        .any(|e| e["EVENT"] == "supervisor.child.restart_scheduled" && e["ATTEMPT"] == "1"));
}

/// `scripts/units`, run with the binary under test, writes exactly the committed units and the
/// packaged config: a unit or config edited by hand, or code that changed what it writes, fails
/// here until the script has written them again.
#[test]
fn the_committed_units_and_packaged_config_are_what_the_code_writes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(root.join("scripts/units"))
        .arg(out.path())
        .env("FUSHI", bin())
        .output()
        .expect("running scripts/units");
    assert!(
        run.status.success(),
        "scripts/units failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    for file in [
        "debian/fushi.service",
        "debian/supervisor.toml",
        "scripts/fushi.service",
    ] {
        let written = out.path().join(file);
        let diff = std::process::Command::new("diff")
            .arg("-u")
            .arg(root.join(file))
            .arg(&written)
            .output()
            .expect("running diff");
        assert!(
            diff.status.success(),
            "{file} is not what the code writes; run scripts/units to write it again:\n{}",
            String::from_utf8_lossy(&diff.stdout)
        );
    }
}

/// Both committed system units carry SPEC §10's settings, verify, and stay hardened; the
/// package's runs as its system user.
#[test]
fn the_committed_units_verify_and_carry_the_spec_settings() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for (file, exe, user) in [
        ("scripts/fushi.service", "/usr/local/bin/fushi", None),
        ("debian/fushi.service", "/usr/bin/fushi", Some("fushi")),
    ] {
        let unit = std::fs::read_to_string(root.join(file)).unwrap();
        for line in [
            format!("ExecStart={exe} run -c /etc/fushi/supervisor.toml"),
            "Type=notify".into(),
            "Restart=always".into(),
            "RestartSec=5s".into(),
            "WatchdogSec=30s".into(),
            "MemoryMax=512M".into(),
            "CPUQuota=20%".into(),
            "StateDirectory=fushi".into(),
            "WorkingDirectory=/var/lib/fushi".into(),
            "WantedBy=multi-user.target".into(),
            "ExecReload=/bin/kill -HUP $MAINPID".into(),
        ] {
            assert!(unit.lines().any(|l| l == line), "{file} lacks {line}");
        }
        let named: Vec<_> = unit
            .lines()
            .filter(|l| l.starts_with("User=") || l.starts_with("Group="))
            .collect();
        match user {
            Some(u) => assert_eq!(named, [format!("User={u}"), format!("Group={u}")], "{file}"),
            None => assert!(named.is_empty(), "{file} runs as root: {named:?}"),
        }
        // systemd-analyze wants the binary to exist.
        let path = dir.path().join("fushi.service");
        std::fs::write(&path, unit.replace(exe, bin().to_str().unwrap())).unwrap();
        verified(&path);
        let e = exposure(&path);
        assert!(e <= 5.0, "{file}: exposure {e} > 5.0");
    }
}

/// A text log whose reader stalls (a full stderr pipe) drops lines instead of stalling the
/// daemon: a heartbeat every millisecond fills the 64 KiB pipe within a second, and its records
/// must keep coming long after.
#[test]
fn a_stalled_stderr_reader_does_not_stall_the_daemon() {
    let env = Env::new(&config(
        "[[collector]]\nname = \"beat\"\nkind = \"heartbeat\"\nevery = \"1ms\"\n",
    ));
    // The pipe's read end is held and never read.
    let mut d = env.start_with(|cmd| {
        cmd.stderr(std::process::Stdio::piped());
    });
    let _unread = d.child.stderr.take().expect("the stderr pipe");
    let beats = || {
        env.status()?["actors"]
            .as_array()?
            .iter()
            .find(|a| a["name"] == "collectors/beat")?["records"]
            .as_u64()
    };
    // Each beat logs a line of over 100 bytes: 2000 beats are several pipes full.
    wait_for("2000 heartbeats with nobody reading stderr", || {
        beats().filter(|&n| n >= 2000)
    });
    let st = d.terminate();
    assert!(st.success(), "fushi stopped cleanly: {st}");
}

/// `systemd-analyze verify` of a unit file: it warns (exit 0) on unknown keys, so any output is
/// a failure too.
fn verified(unit: &std::path::Path) {
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(unit)
        .output()
        .expect("systemd-analyze (package systemd) must be installed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

/// `systemd-analyze security --offline` of a unit file: its overall exposure (0 to 10).
fn exposure(unit: &std::path::Path) -> f64 {
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit)
        .output()
        .expect("systemd-analyze security");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.split("Overall exposure level for fushi.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"))
}

#[test]
fn install_unit_prints_the_spec_unit_for_this_binary_and_config_verified_and_hardened() {
    let env = Env::new(&config(""));
    let out = fushi(&env, &["install-unit", "--system", "--print"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let unit = stdout(&out);
    let exe = std::fs::canonicalize(bin()).unwrap();
    let cfg = std::fs::canonicalize(env.config()).unwrap();
    let data = std::fs::canonicalize(env.path()).unwrap().join("data");
    for line in [
        format!("ExecStart={} run -c {}", exe.display(), cfg.display()),
        "Type=notify".into(),
        "Restart=always".into(),
        "RestartSec=5s".into(),
        "WatchdogSec=30s".into(),
        "MemoryMax=512M".into(),
        "CPUQuota=20%".into(),
        "StateDirectory=fushi".into(),
        "WorkingDirectory=/var/lib/fushi".into(),
        "WantedBy=multi-user.target".into(),
        format!("ReadWritePaths=-{}", data.display()),
    ] {
        assert!(unit.lines().any(|l| l == line), "no {line:?} in\n{unit}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fushi.service");
    std::fs::write(&path, &unit).unwrap();
    verified(&path);
    let e = exposure(&path);
    assert!(e <= 5.0, "exposure {e} > 5.0");

    let out = fushi(&env, &["install-unit", "--user", "--print"]);
    let unit = stdout(&out);
    assert!(
        unit.lines().any(|l| l == "WantedBy=default.target"),
        "{unit}"
    );
    assert!(
        unit.lines().any(|l| l == "WorkingDirectory=%S/fushi"),
        "{unit}"
    );
    std::fs::write(&path, &unit).unwrap();
    verified(&path);
}

#[test]
fn install_unit_writes_the_user_unit_and_says_what_systemctl_said_when_it_cannot_start_it() {
    let env = Env::new(&config(""));
    let home = tempfile::tempdir().unwrap();
    let out = bare(&["install-unit", "--user"])
        .arg("-c")
        .arg(env.config())
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .unwrap();
    let path = home.path().join("systemd/user/fushi.service");
    let printed = stdout(&fushi(&env, &["install-unit", "--user", "--print"]));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().trim_end(),
        printed.trim_end(),
        "the unit written is the one printed"
    );
    assert!(env.data().is_dir(), "the data dir is made for the unit");
    if code(&out) == 0 {
        // A user manager runs here: it is enabled and started, and the advice for a life
        // without a login is given.
        assert!(
            stdout(&out).contains("loginctl enable-linger"),
            "{}",
            stdout(&out)
        );
        let _ = std::process::Command::new("systemctl")
            .args(["--user", "disable", "--now", "fushi.service"])
            .status();
    } else {
        let err = stderr(&out);
        assert_eq!(code(&out), 1, "{err}");
        assert!(
            err.contains(&format!(
                "wrote {}, but `systemctl --user daemon-reload` failed",
                path.display()
            )),
            "{err}"
        );
        assert!(
            err.contains("systemctl --user daemon-reload && systemctl --user enable --now fushi"),
            "what to do once a user manager runs: {err}"
        );
    }
}

/// The options that print a unit for another machine (the package's) name what they need and
/// refuse what a unit cannot hold.
#[test]
fn install_unit_for_another_machine_prints_its_paths_and_user_and_refuses_what_a_unit_cannot_name()
{
    let env = Env::new(&config(""));
    let out = fushi(
        &env,
        &[
            "install-unit",
            "--system",
            "--print",
            "--exe",
            "/opt/fushi/bin/fushi",
            "--config-as",
            "/etc/fushi/supervisor.toml",
            "--run-as",
            "collector",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let unit = stdout(&out);
    for line in [
        "ExecStart=/opt/fushi/bin/fushi run -c /etc/fushi/supervisor.toml",
        "User=collector",
        "Group=collector",
    ] {
        assert!(unit.lines().any(|l| l == line), "no {line:?} in\n{unit}");
    }

    for (args, says) in [
        (
            &["--system", "--print", "--exe", "bin/fushi"][..],
            "--exe bin/fushi: a unit names it by an absolute path",
        ),
        (
            &["--system", "--print", "--config-as", "supervisor.toml"],
            "--config-as supervisor.toml: a unit names it by an absolute path",
        ),
        (
            &["--system", "--print", "--run-as", "fu shi"],
            "--run-as \"fu shi\": not a user name systemd takes",
        ),
        (
            &["--system", "--exe", "/usr/bin/fushi"],
            "the following required arguments were not provided:\n  --print",
        ),
        (
            &["--print", "--user", "--run-as", "fushi"],
            "the argument '--user' cannot be used with '--run-as <USER>'",
        ),
        (
            &["--print", "--run-as", "fushi"],
            "the following required arguments were not provided:\n  --system",
        ),
    ] {
        let mut all = vec!["install-unit"];
        all.extend_from_slice(args);
        let out = fushi(&env, &all);
        let err = stderr(&out);
        assert_ne!(code(&out), 0, "{args:?} accepted:\n{}", stdout(&out));
        assert!(stdout(&out).is_empty(), "{args:?} printed a unit anyway");
        assert!(err.contains(says), "{args:?}: {says:?} not in: {err}");
    }
}
