//! What the CLI says is so: `check` checks what it claims and knows a running daemon, `--socket`
//! alone reaches the daemon from anywhere, a missing config says where it was looked for, and
//! names resolve (short names, unknown names listed, `tail -n 0 -f`, `tail --json`).

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use crate::util::*;

/// A config whose `[control]` section is `control` (the shared `config` helper ends in its own).
fn config_with(extra: &str, control: &str) -> String {
    format!(
        "[node]\nid = \"test-node\"\ndata_dir = \"data\"\n\n[supervisor]\nshutdown_timeout = \"2s\"\n\n\
         {extra}\n\n[control]\n{control}\n"
    )
}

/// The line of `check`'s report about `item`.
fn item<'a>(out: &'a str, item: &str) -> &'a str {
    out.lines()
        .find(|l| l[4..].trim_start().starts_with(&format!("{item}:")))
        .unwrap_or_else(|| panic!("no {item:?} line in:\n{out}"))
}

#[test]
fn check_fails_a_command_whose_program_is_missing_or_not_executable() {
    let env = Env::new(&config_with(
        r#"[[collector]]
name = "gone"
kind = "command"
argv = ["fushi-no-such-program", "--flag"]

[[collector]]
name = "noexec"
kind = "command"
argv = ["./plain.txt"]

[[collector]]
name = "fine"
kind = "command"
argv = ["sh", "-c", "echo {}"]

[[collector]]
name = "shelled"
kind = "command"
shell = true
argv = ["fushi-no-such-program | cat"]
"#,
        "http = \"\"",
    ));
    std::fs::write(env.path().join("plain.txt"), "not a program\n").unwrap();
    let out = fushi(&env, &["check"]);
    let text = stdout(&out);
    assert_eq!(code(&out), 1, "{text}");
    let gone = item(&text, "program collectors/gone");
    assert!(
        gone.starts_with("FAIL") && gone.contains("fushi-no-such-program"),
        "{text}"
    );
    assert!(
        item(&text, "program collectors/noexec").starts_with("FAIL"),
        "{text}"
    );
    assert!(
        item(&text, "program collectors/fine").starts_with("ok"),
        "{text}"
    );
    assert!(
        item(&text, "program collectors/shelled").starts_with("ok"),
        "{text}"
    );
}

#[test]
fn check_fails_a_socket_dir_that_cannot_be_made_and_passes_one_the_daemon_makes() {
    // A regular file where a directory of the socket's path should be: no uid can create it.
    let env = Env::new(&config_with(
        TWO_BEATS,
        "http = \"\"\nsocket = \"blocked/run/fushi.sock\"",
    ));
    std::fs::write(env.path().join("blocked"), "a file\n").unwrap();
    let out = fushi(&env, &["check"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        item(&stdout(&out), "socket dir").starts_with("FAIL"),
        "{}",
        stdout(&out)
    );

    env.write_config(&config_with(
        TWO_BEATS,
        "http = \"\"\nsocket = \"run/sub/fushi.sock\"",
    ));
    let out = fushi(&env, &["check"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let line = item(&stdout(&out), "socket dir").to_string();
    assert!(
        line.starts_with("ok") && line.contains("creates it"),
        "{line}"
    );
    assert!(!env.path().join("run").exists(), "check creates nothing");
}

#[test]
fn the_daemon_creates_a_missing_socket_dir_0700_instead_of_crash_looping() {
    let env = Env::new(&config_with(
        TWO_BEATS,
        "http = \"\"\nsocket = \"run/sub/fushi.sock\"",
    ));
    let mut d = env.start();
    d.wait_audit("supervisor.child.started", "control", 1);
    let socket = env.path().join("run/sub/fushi.sock");
    let out = wait_for("the daemon on the new socket dir", || {
        let o = bare(&["status", "control", "--json", "--socket"])
            .arg(&socket)
            .current_dir("/")
            .output()
            .expect("running fushi");
        (code(&o) == 0).then_some(o)
    });
    let actors: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(actors[0]["restarts"], 0, "control never failed: {actors}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.path().join("run/sub"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "socket dir mode");
    assert!(d.terminate().success());
    // A clean stop removes what the daemon made to be found by: its socket and its pid file.
    assert!(!socket.exists(), "the socket is left after a clean stop");
    assert!(
        !env.data().join("fushi.pid").exists(),
        "the pid file is left after a clean stop"
    );
}

#[test]
fn a_socket_dir_the_daemon_cannot_create_is_a_config_error_not_a_crash_loop() {
    let env = Env::new(&config_with(
        TWO_BEATS,
        "http = \"\"\nsocket = \"blocked/run/fushi.sock\"",
    ));
    std::fs::write(env.path().join("blocked"), "a file\n").unwrap();
    let mut d = env.start();
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(78), "{}", d.log());
    let log = d.log();
    assert!(
        log.contains("cannot create the control socket's directory")
            && log.contains("blocked/run")
            && log.contains("control.socket"),
        "{log}"
    );
    assert!(
        events(&env.audit(), "supervisor.child.failed", "control").is_empty(),
        "control never started, so it never failed"
    );
}

#[test]
fn check_fails_a_busy_http_port() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let addr = busy.local_addr().unwrap();
    let env = Env::new(&config_with(TWO_BEATS, &format!("http = \"{addr}\"")));
    let out = fushi(&env, &["check"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let line = item(&stdout(&out), "http").to_string();
    assert!(
        line.starts_with("FAIL") && line.contains(&addr.to_string()),
        "{}",
        stdout(&out)
    );
    drop(busy);
    let out = fushi(&env, &["check"]);
    assert_eq!(code(&out), 0, "a free port passes:\n{}", stdout(&out));
}

#[test]
fn check_against_a_running_daemon_reports_it_instead_of_failing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("picking a free port")
        .port();
    let env = Env::new(&config_with(
        TWO_BEATS,
        &format!("http = \"127.0.0.1:{port}\""),
    ));
    let mut d = started(&env);
    d.wait_audit("supervisor.child.started", "http", 1);
    let out = fushi(&env, &["check"]);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}");
    let socket = item(&text, "socket");
    assert!(
        socket.starts_with("ok") && socket.contains(&format!("running, pid {}", d.pid())),
        "{text}"
    );
    let http = item(&text, "http");
    assert!(
        http.starts_with("ok") && http.contains(&format!("pid {}", d.pid())),
        "{text}"
    );
    assert!(d.terminate().success());
}

#[test]
fn init_primary_refuses_a_missing_path_unless_told_to_create_it() {
    let env = Env::new(&config_with(
        &format!("{TWO_BEATS}\n[storage]\nprimary = \"nas/store\"\n"),
        "http = \"\"",
    ));
    let store = env.path().join("nas/store");
    let out = fushi(&env, &["check", "--init-primary"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let line = item(&stdout(&out), "primary").to_string();
    assert!(
        line.starts_with("FAIL") && line.contains("--create"),
        "{line}"
    );
    assert!(
        !env.path().join("nas").exists(),
        "nothing is created under a missing store"
    );

    let out = fushi(&env, &["check", "--init-primary", "--create"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(store.join(".fushi-primary").exists(), "the store is marked");
    // Marked once: a plain check now finds the marker.
    let out = fushi(&env, &["check"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        item(&stdout(&out), "primary").contains("marked"),
        "{}",
        stdout(&out)
    );
    // --create means nothing without --init-primary.
    assert_eq!(code(&fushi(&env, &["check", "--create"])), 2);
}

/// A HOME without a config in it, so that only the paths given count.
fn empty_home() -> tempfile::TempDir {
    tempfile::tempdir().expect("creating a temp HOME")
}

#[test]
fn socket_alone_is_enough_from_any_directory() {
    let env = Env::new(&config_with(TWO_BEATS, "http = \"\""));
    let mut d = started(&env);
    let home = empty_home();
    let socket = env.data().join("fushi.sock");
    let run = |args: &[&str]| {
        bare(args)
            .arg("--socket")
            .arg(&socket)
            .env("HOME", home.path())
            .current_dir("/")
            .output()
            .expect("running fushi")
    };
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["pid"],
        &["tail", "-n", "3"],
        &["reread"],
        &["audit", "--event", "daemon.*"],
        &["restart", "collectors/a"],
    ] {
        let out = run(args);
        assert_eq!(code(&out), 0, "{args:?}: {}{}", stdout(&out), stderr(&out));
    }
    // Degraded for a moment while heartbeats wait for the primary, but never "not running".
    let health = run(&["health"]);
    assert!(code(&health) <= 1, "{}", stdout(&health));
    let pid = stdout(&run(&["pid"]));
    assert_eq!(pid.trim(), d.pid().to_string());
    // The audit log is found through the daemon's own config.
    assert!(
        stdout(&run(&["audit", "--event", "daemon.started"])).contains("daemon.started"),
        "audit with --socket alone"
    );
    assert_eq!(code(&run(&["shutdown"])), 0);
    assert!(d.wait_exit().success());
}

#[test]
fn a_missing_config_lists_the_paths_searched_once() {
    let home = empty_home();
    let out = bare(&["status"])
        .env("HOME", home.path())
        .current_dir("/")
        .output()
        .expect("running fushi");
    let err = stderr(&out);
    assert_eq!(code(&out), 78, "{err}");
    let xdg = home.path().join(".config/fushi/supervisor.toml");
    for path in [&xdg.display().to_string(), "/etc/fushi/supervisor.toml"] {
        assert_eq!(err.matches(path).count(), 1, "{path} once in: {err}");
    }
    // Those two and ./supervisor.toml, each once.
    assert_eq!(err.matches("supervisor.toml").count(), 3, "{err}");
    assert_eq!(err.lines().count(), 1, "one message: {err}");
    assert!(!err.contains("os error"), "{err}");

    // A missing -c FILE: its errno once, not once per layer of the message.
    let missing = home.path().join("nope.toml");
    let out = bare(&["status", "-c"])
        .arg(&missing)
        .current_dir("/")
        .output()
        .expect("running fushi");
    let err = stderr(&out);
    assert_eq!(code(&out), 78, "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

#[test]
fn short_names_resolve_and_unknown_names_list_the_known_ones() {
    let env = Env::new(&config_with(TWO_BEATS, "http = \"\""));
    let mut d = started(&env);

    let out = fushi(&env, &["status", "a", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let actors: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(actors.as_array().unwrap().len(), 1, "{actors}");
    assert_eq!(actors[0]["name"], "collectors/a");

    let tail = fushi(&env, &["tail", "-n", "5", "a"]);
    assert_eq!(code(&tail), 0, "{}", stderr(&tail));
    let lines = stdout(&tail);
    assert!(
        !lines.is_empty() && lines.lines().all(|l| l.contains("collectors/a")),
        "{lines}"
    );

    let out = fushi(&env, &["stop", "b"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    wait_for("collectors/b stopped", || {
        let s: Value = serde_json::from_slice(&fushi(&env, &["status", "b", "--json"]).stdout)
            .unwrap_or(Value::Null);
        (s[0]["state"] == "stopped").then_some(())
    });
    assert_eq!(code(&fushi(&env, &["start", "b"])), 0);

    for args in [
        &["status", "nosuch"][..],
        &["tail", "nosuch"],
        &["restart", "nosuch"],
        &["inject", "crash", "nosuch"],
    ] {
        let out = fushi(&env, args);
        assert_eq!(code(&out), 1, "{args:?}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains("\"nosuch\"") && err.contains("known:") && err.contains("collectors/a"),
            "{args:?}: {err}"
        );
    }
    assert!(d.terminate().success());
}

#[test]
fn tail_takes_json() {
    let env = Env::new(&config_with(TWO_BEATS, "http = \"\""));
    let mut d = started(&env);
    let out = fushi(&env, &["tail", "--json", "-n", "5", "collectors/a"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.is_empty(), "lines of collectors/a");
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(
            v.as_str().is_some_and(|s| s.contains("collectors/a")),
            "{l}"
        );
    }
    assert!(d.terminate().success());
}

#[test]
fn tail_n_0_f_follows_only_new_lines() {
    let env = Env::new(&config_with(TWO_BEATS, "http = \"\""));
    let mut d = started(&env);
    let old: Vec<String> = stdout(&fushi(&env, &["tail", "-n", "10000"]))
        .lines()
        .map(str::to_string)
        .collect();
    assert!(!old.is_empty());
    let mut follower = bare(&["tail", "-n", "0", "-f", "-c"])
        .arg(env.config())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running fushi tail -f");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = BufReader::new(follower.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // New lines come of each restart; the follower may not have taken its mark before the
    // first, so restart until it shows one.
    let mut first = None;
    for _ in 0..30 {
        assert_eq!(code(&fushi(&env, &["restart", "collectors/a"])), 0);
        if let Ok(l) = rx.recv_timeout(Duration::from_secs(1)) {
            first = Some(l);
            break;
        }
    }
    let first = first.expect("tail -f shows the lines of a restart");
    let mut shown = vec![first];
    shown.extend(rx.try_iter());
    for l in &shown {
        assert!(!old.contains(l), "an old line was shown: {l}");
    }
    // The daemon stops: the follower ends saying so, not that it never ran.
    assert!(d.terminate().success());
    let status = wait_for("tail -f to end", || follower.try_wait().expect("waiting"));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut follower.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(7), "{err}");
    assert!(err.contains("the daemon stopped answering"), "{err}");
}
