//! Config errors at start and on reload: exit 78 naming the line, last-good fallback, SIGHUP keeping the running config.

use nix::sys::signal::Signal;

use crate::util::*;

const GOOD: &str = r#"[[collector]]
name = "beat"
kind = "heartbeat"
every = "1h"
"#;

#[test]
fn broken_config_exits_78_naming_file_line_and_key() {
    let env = Env::new("[node]\ndata_dir = \"data\"\n[supervisor]\nbackof = [\"5s\"]\n");
    let out = env.command().output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("supervisor.toml:4:"), "{err}");
    assert!(err.contains("backof"), "{err}");

    let env = Env::new("[[collector]]\nname = \"x\"\nkind = \"command\"\n");
    let out = env.command().output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("supervisor.toml:1:1: collector[0].argv"),
        "{err}"
    );
}

#[test]
fn missing_config_exits_78_and_says_what_to_do() {
    let env = Env::new("");
    std::fs::remove_file(env.config()).unwrap();
    let out = env.command().output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read config file") && err.contains("-c FILE"),
        "{err}"
    );
}

#[test]
fn broken_config_with_a_last_good_copy_runs_on_it_with_red_health() {
    let env = Env::new(&config(GOOD));
    let mut d = env.start();
    d.wait_audit("supervisor.child.started", "collectors", 1);
    assert!(d.terminate().success());
    assert!(env.data().join("config.last-good.toml").exists());

    env.write_config(&config(
        "[[collector]]\nname = \"beat\"\nkind = \"heartbeat\"\nevery = \"often\"\n",
    ));
    let mut d = env.start();
    d.wait_audit("supervisor.child.started", "collectors/beat", 2);
    let status = wait_for("status with config errors", || {
        let s = env.status()?;
        (!s["config"]["errors"].as_array()?.is_empty()).then_some(s)
    });
    assert_eq!(status["health"], "red");
    assert!(
        status["config"]["errors"][0]
            .as_str()
            .unwrap()
            .contains(":11:"),
        "{status}"
    );
    assert!(d.terminate().success());
}

#[test]
fn bad_sighup_reload_keeps_the_running_config_and_turns_health_red() {
    let env = Env::new(&config(GOOD));
    let mut d = env.start();
    d.wait_audit("supervisor.child.started", "collectors/beat", 1);
    wait_for("green health", || {
        (env.status()?["health"] == "green").then_some(())
    });

    env.write_config("this is not toml");
    d.signal(Signal::SIGHUP);
    let audit = d.wait_audit("config.reload.failed", "", 1);
    assert!(
        events(&audit, "config.reload.failed", "")[0]["payload"]["error"]
            .as_str()
            .unwrap()
            .contains("supervisor.toml:1:")
    );
    let status = wait_for("red health", || {
        let s = env.status()?;
        (s["health"] == "red").then_some(s)
    });
    let beat = status["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "collectors/beat")
        .unwrap()
        .clone();
    assert_eq!(
        beat["state"], "running",
        "the running config stays in force"
    );

    env.write_config(&config(GOOD));
    d.signal(Signal::SIGHUP);
    d.wait_audit("config.reload.ok", "", 1);
    wait_for("green health again", || {
        (env.status()?["health"] == "green").then_some(())
    });
    assert!(d.terminate().success());
}

/// A config whose `extra` starts on line 4, with no HTTP endpoint (tests run in parallel).
fn lines_from_4(extra: &str) -> String {
    format!("[node]\ndata_dir = \"data\"\n\n{extra}\n[control]\nhttp = \"\"\n")
}

/// Runs `cmd` to its end and returns its exit code, stdout and stderr. A daemon that accepts
/// the config never ends by itself: it is killed (dropped) once the wait times out.
fn finish(env: &Env, mut cmd: std::process::Command) -> (Option<i32>, String, String) {
    let (out, err) = (env.path().join("out.txt"), env.path().join("err.txt"));
    cmd.stdout(std::fs::File::create(&out).expect("creating out.txt"))
        .stderr(std::fs::File::create(&err).expect("creating err.txt"));
    let mut d = Daemon {
        child: cmd.spawn().expect("spawning fushi"),
        data: env.data(),
        log: err.clone(),
    };
    let child = &mut d.child;
    let status = wait_for("fushi to refuse the config and exit", || {
        child.try_wait().expect("waiting for fushi")
    });
    let read = |p| std::fs::read_to_string(p).unwrap_or_default();
    (status.code(), read(&out), read(&err))
}

/// `fushi check` reports the config as failed and `fushi run` exits 78, both naming the file,
/// `line` and `key`, with `says` in the message.
fn refused(extra: &str, line: usize, key: &str, says: &str) {
    let env = Env::new(&lines_from_4(extra));
    let at = format!("supervisor.toml:{line}:");

    let mut check = std::process::Command::new(bin());
    check
        .arg("check")
        .arg("-c")
        .arg(env.config())
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(std::process::Stdio::null());
    let (code, out, _) = finish(&env, check);
    let failed = out.lines().find(|l| l.starts_with("FAIL config"));
    assert!(
        failed.is_some_and(|l| l.contains(&at) && l.contains(&format!(" {key}: "))),
        "fushi check on {extra:?} names {at} {key}:\n{out}"
    );
    assert_eq!(code, Some(1), "fushi check on {extra:?}:\n{out}");

    let (code, _, err) = finish(&env, env.command());
    assert_eq!(code, Some(78), "fushi run on {extra:?}:\n{err}");
    assert!(
        err.contains(&at) && err.contains(&format!(" {key}: ")) && err.contains(says),
        "fushi run on {extra:?} names {at} {key} and says {says:?}:\n{err}"
    );
}

#[test]
fn zero_periods_exit_78_naming_the_key() {
    let zero = "must be greater than 0";
    refused("[sync]\ninterval = \"0s\"\n", 5, "sync.interval", zero);
    refused(
        "[storage]\nprobe_interval = \"0s\"\n",
        5,
        "storage.probe_interval",
        zero,
    );
    refused(
        "[storage]\nio_timeout = \"0ms\"\n",
        5,
        "storage.io_timeout",
        zero,
    );
    refused(
        "[supervisor]\nstable_after = \"0s\"\n",
        5,
        "supervisor.stable_after",
        zero,
    );
    refused(
        "[[collector]]\nname = \"p\"\nkind = \"command\"\nargv = [\"true\"]\nevery = \"1s\"\ntimeout = \"0s\"\n",
        9,
        "collector[0].timeout",
        zero,
    );
}

#[test]
fn journal_and_record_sizes_that_cannot_work_exit_78_naming_the_key() {
    refused(
        "[storage]\nmax_local = \"0\"\n",
        5,
        "storage.max_local",
        "below the minimum of 16 KiB",
    );
    refused(
        "[storage]\nmax_local = \"1 MiB\"\nmax_record_bytes = \"4 MiB\"\n",
        6,
        "storage.max_record_bytes",
        "above max_local",
    );
}

#[test]
fn restart_schedules_that_spin_or_stall_exit_78_naming_the_key() {
    refused(
        "[supervisor]\njitter = \"1000h\"\n",
        5,
        "supervisor.jitter",
        "above the largest backoff step (15s)",
    );
    refused(
        "[supervisor]\nbackoff = [\"0s\"]\njitter = \"0s\"\n",
        5,
        "supervisor.backoff[0]",
        "below the minimum restart delay",
    );
    // 50 ms passed the old 5 ms floor; a child failing at once would restart 20 times a second.
    refused(
        "[supervisor]\nbackoff = [\"50ms\"]\njitter = \"0s\"\n",
        5,
        "supervisor.backoff[0]",
        "minimum restart delay of 100ms, which holds a child that fails at once to at most 10 \
         restarts a second",
    );
    let flaky = "[[collector]]\nname = \"flaky\"\nkind = \"command\"\nargv = [\"false\"]\n";
    refused(
        &format!("{flaky}backoff = [\"0s\"]\njitter = \"0s\"\n"),
        8,
        "collector[0].backoff[0]",
        "below the minimum restart delay",
    );
    refused(
        &format!("{flaky}backoff = [\"100ms\"]\n"),
        8,
        "collector[0].backoff",
        "jitter (from [supervisor]) (1s)",
    );
}

#[test]
fn the_quarantine_stream_is_no_collectors_and_exits_78() {
    refused(
        "[[collector]]\nname = \"beat\"\nkind = \"heartbeat\"\nstream = \"_quarantine\"\n",
        7,
        "collector[0].stream",
        "reserved",
    );
}

#[test]
fn a_bad_value_with_a_last_good_copy_runs_on_it_with_red_health() {
    let env = Env::new(&config(GOOD));
    let mut d = env.start();
    d.wait_audit("supervisor.child.started", "collectors/beat", 1);
    assert!(d.terminate().success());
    assert!(env.data().join("config.last-good.toml").exists());

    // `[sync]` on line 8, its zero interval on line 9.
    env.write_config(&config(&format!("[sync]\ninterval = \"0s\"\n\n{GOOD}")));
    let mut d = env.start();
    d.wait_audit("supervisor.child.started", "collectors/beat", 2);
    let status = wait_for("status with config errors", || {
        let s = env.status()?;
        (!s["config"]["errors"].as_array()?.is_empty()).then_some(s)
    });
    assert_eq!(status["health"], "red", "{status}");
    let error = status["config"]["errors"][0].as_str().unwrap_or_default();
    assert!(
        error.contains("supervisor.toml:9:") && error.contains("sync.interval: "),
        "{status}"
    );
    // On the last good copy sync ticks and completes a run (a zero period panicked its ticker).
    let pid = d.pid();
    wait_for("a sync run of this daemon on the last good config", || {
        let s = env.status()?;
        (s["pid"] == pid && s["sync"]["last"]["ok"] == true).then_some(())
    });
    assert!(d.terminate().success());
}

#[test]
fn an_unreachable_etcd_keeps_the_daemon_standing_by_and_says_why() {
    let port = free_port();
    let env = Env::new(&config(&format!(
        "[leader]\nenabled = true\nbackend = \"etcd\"\netcd_endpoints = [\"http://127.0.0.1:{port}\"]\nheartbeat = \"200ms\"\nstale_after = \"1s\"\n\n[[collector]]\nname = \"beat\"\nkind = \"heartbeat\"\nevery = \"50ms\"\n",
    )));
    let mut d = started(&env);
    // It runs, collects nothing, and says what stands in the way; past stale_after + heartbeat
    // without a leader anywhere it is red.
    let status = wait_for("no leader, red", || {
        let s = env.status()?;
        (s["health"] == "red").then_some(s)
    });
    assert_eq!(status["leader"]["role"], "standby", "{status}");
    let err = status["leader"]["error"].as_str().unwrap_or("");
    assert!(
        err.contains(&format!("etcd at http://127.0.0.1:{port} does not answer")),
        "{status}"
    );
    assert!(status["leader"]["none_since"].is_string(), "{status}");
    let beat = status["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "collectors/beat")
        .unwrap();
    assert_eq!(beat["state"], "stopped", "{beat}");
    let audit = env.audit();
    assert!(!events(&audit, "collector.leader.none", "leader").is_empty());
    let out = fushi(&env, &["leader"]);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("holder unknown: the lease cannot be read from this node"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("no node has led since "),
        "{}",
        stdout(&out)
    );
    assert!(d.terminate().success());
}

#[test]
fn the_file_backend_is_checked_and_a_heartbeat_over_half_of_stale_after_is_refused() {
    let env = Env::new(&config("[leader]\nenabled = true\n"));
    let check = fushi(&env, &["check"]);
    assert_eq!(code(&check), 0, "{}", stdout(&check));
    let text = stdout(&check);
    assert!(
        text.contains("ok   leader: file lock ")
            && text.contains("locks/collector.leader free: the first node to start takes it")
            && text.contains("renewed every 5s, taken over after 30s unchanged; priority 0"),
        "{text}"
    );
    let env = Env::new(&config(
        "[leader]\nenabled = true\nheartbeat = \"6s\"\nstale_after = \"10s\"\n",
    ));
    let check = fushi(&env, &["check"]);
    assert_eq!(code(&check), 1);
    let text = stdout(&check);
    assert!(
        text.starts_with("FAIL config: ")
            && text.contains("supervisor.toml:10:1: leader.heartbeat: heartbeat (6s) must be at most half of stale_after (10s)"),
        "{text}"
    );
    // And the daemon refuses to start on it, as on every config error.
    let out = std::process::Command::new(bin())
        .args(["run", "-c"])
        .arg(env.config())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
}
