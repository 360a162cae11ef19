//! The control CLI against the real daemon: every subcommand, its `--json` shape and exit code, and the socket's defences.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use crate::util::*;

fn state(env: &Env, name: &str) -> String {
    let doc = json(&fushi(env, &["status", "--json"]));
    doc["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap()["state"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn status_start_stop_restart_by_name_and_collectors_glob() {
    let env = Env::new(&config(TWO_BEATS));
    let mut d = started(&env);

    let out = fushi(&env, &["status"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    for name in [
        "status",
        "alert",
        "storage",
        "sync",
        "collectors",
        "collectors/a",
        "collectors/b",
        "control",
    ] {
        assert!(
            stdout(&out).lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{}",
            stdout(&out)
        );
    }
    let doc = json(&fushi(&env, &["status", "--json"]));
    for key in [
        "node",
        "mode",
        "health",
        "started_at",
        "daemon_recovered",
        "leader",
        "storage",
        "sync",
        "config",
        "actors",
    ] {
        assert!(doc.get(key).is_some(), "status JSON lacks {key}");
    }
    let a = &doc["actors"][0];
    for key in [
        "name",
        "state",
        "restarts",
        "consecutive_failures",
        "recovered",
        "escalated",
        "last_error",
        "since",
        "next_restart_at",
    ] {
        assert!(a.get(key).is_some(), "actor JSON lacks {key}");
    }

    // Stop a glob: both collectors stop, nothing else; status exits 3 for them.
    let out = fushi(&env, &["stop", "collectors/*"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(state(&env, "collectors/a"), "stopped");
    assert_eq!(state(&env, "collectors/b"), "stopped");
    assert_eq!(state(&env, "collectors"), "running");
    assert_eq!(code(&fushi(&env, &["status", "collectors/a"])), 3);
    assert_eq!(code(&fushi(&env, &["status", "storage"])), 0);
    let sel = json(&fushi(&env, &["status", "collectors/*", "--json"]));
    assert_eq!(sel.as_array().unwrap().len(), 2);

    // Start one: it runs, the other stays stopped.
    assert_eq!(code(&fushi(&env, &["start", "collectors/a"])), 0);
    assert_eq!(state(&env, "collectors/a"), "running");
    assert_eq!(state(&env, "collectors/b"), "stopped");

    // Restart counts as a restart.
    assert_eq!(code(&fushi(&env, &["restart", "collectors/a"])), 0);
    d.wait_audit("supervisor.child.restarted", "collectors/a", 1);

    // Unknown names list the known ones, and change nothing.
    let out = fushi(&env, &["stop", "collectors/zz"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("known: a, b"), "{}", stderr(&out));
    let out = fushi(&env, &["status", "nope"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("known: status, alert"),
        "{}",
        stderr(&out)
    );

    // health: degraded (a permanent collector is stopped) → exit 1 with reasons.
    let out = fushi(&env, &["health", "--json"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let h = json(&out);
    assert_eq!(h["status"], "degraded");
    assert!(
        h["reasons"][0].as_str().unwrap().contains("collectors/b"),
        "{h}"
    );
    assert_eq!(code(&fushi(&env, &["start", "collectors/b"])), 0);
    wait_for("healthy", || {
        (code(&fushi(&env, &["health"])) == 0).then_some(())
    });

    let pid: u32 = stdout(&fushi(&env, &["pid"])).trim().parse().unwrap();
    assert_eq!(pid, d.child.id());

    let tail = fushi(&env, &["tail", "-n", "5", "collectors/a"]);
    assert_eq!(code(&tail), 0);
    let tail_out = stdout(&tail);
    let lines: Vec<&str> = tail_out.lines().collect();
    assert!(!lines.is_empty() && lines.len() <= 5, "{lines:?}");
    assert!(
        lines.iter().all(|l| l.contains("collectors/a")),
        "{lines:?}"
    );

    let audit = json(&fushi(
        &env,
        &["audit", "--event", "supervisor.child.stop*", "--json"],
    ));
    let names: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"collectors/a") && names.contains(&"collectors/b"),
        "{names:?}"
    );
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["event"] == "supervisor.child.stopped"));
    let recent = json(&fushi(&env, &["audit", "--since", "1h", "--json"]));
    assert!(recent.as_array().unwrap().len() >= audit.as_array().unwrap().len());

    let out = fushi(&env, &["mode", "debug", "--for", "1h"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    wait_for("mode debug in status", || {
        (json(&fushi(&env, &["status", "--json"]))["mode"] == "debug").then_some(())
    });
    assert_eq!(code(&fushi(&env, &["health"])), 1, "debug mode is degraded");
    // Without an argument, the mode is shown.
    let out = fushi(&env, &["mode"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).starts_with("debug until "), "{}", stdout(&out));
    assert_eq!(code(&fushi(&env, &["mode", "loud"])), 1);
    assert_eq!(code(&fushi(&env, &["mode", "prod"])), 0);
    wait_for("mode prod shown", || {
        (stdout(&fushi(&env, &["mode"])).trim() == "prod").then_some(())
    });

    let out = fushi(&env, &["shutdown"]);
    assert_eq!(code(&out), 0);
    assert!(d.wait_exit().success());
    assert_eq!(env.status().unwrap()["clean_shutdown"], true);

    // With the daemon gone: status 3, control commands 7, health 2 — each says how to start it.
    let out = fushi(&env, &["status"]);
    assert_eq!(code(&out), 3);
    assert!(
        stderr(&out).contains("the daemon is not running") && stderr(&out).contains("fushi run -c"),
        "{}",
        stderr(&out)
    );
    assert_eq!(code(&fushi(&env, &["stop", "collectors/a"])), 7);
    assert_eq!(code(&fushi(&env, &["pid"])), 7);
    assert_eq!(code(&fushi(&env, &["health"])), 2);
    // The audit log is read directly: it works without the daemon.
    assert_eq!(code(&fushi(&env, &["audit"])), 0);
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    let env = Env::new(&config(TWO_BEATS));
    let _d = started(&env);
    for args in [&["status"][..], &["status", "--json"], &["audit"]] {
        // `fushi status | head -0`: the pipe's reader is gone before anything is written.
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let out = std::process::Command::new(bin())
            .args(args)
            .arg("-c")
            .arg(env.config())
            .env_remove("XDG_RUNTIME_DIR")
            .stdout(writer)
            .output()
            .expect("running fushi");
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}: nothing on stderr, no panic");
    }
}

#[test]
fn check_reports_each_preflight_item() {
    let env = Env::new(&config(TWO_BEATS));
    let out = fushi(&env, &["check"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    for item in ["config", "data dir", "primary", "socket"] {
        assert!(
            stdout(&out)
                .lines()
                .any(|l| l.starts_with("ok") && l.contains(item)),
            "{item}:\n{}",
            stdout(&out)
        );
    }
    let mut d = started(&env);
    let out = fushi(&env, &["check"]);
    assert_eq!(
        code(&out),
        0,
        "a running daemon is no failure: {}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains(&format!("running, pid {}", d.child.id())),
        "{}",
        stdout(&out)
    );
    assert!(d.terminate().success());
    env.write_config("[node]\nbad_key = 1\n");
    let out = fushi(&env, &["check"]);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("FAIL config") && stdout(&out).contains("bad_key"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_second_daemon_on_the_same_data_dir_refuses_and_a_stale_socket_is_replaced() {
    let env = Env::new(&config(TWO_BEATS));
    let mut d = started(&env);
    let out = env.command().output().unwrap();
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains(&format!("another fushi (pid {})", d.child.id())),
        "{}",
        stderr(&out)
    );
    // The first daemon is undisturbed.
    assert_eq!(code(&fushi(&env, &["status", "collectors/*"])), 0);
    d.kill9();
    assert!(
        env.data().join("fushi.sock").exists(),
        "kill -9 leaves the socket file behind"
    );
    let mut d = started(&env);
    assert_eq!(code(&fushi(&env, &["status", "storage"])), 0);
    assert!(d.terminate().success());
}

/// Sends raw bytes and returns the daemon's answer (its frame), or nothing if it closed.
fn raw(socket: &std::path::Path, bytes: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(socket).unwrap();
    s.write_all(bytes).unwrap();
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn text(frame: &[u8]) -> String {
    String::from_utf8_lossy(frame).into_owned()
}

#[test]
fn garbage_truncated_oversized_and_wrong_version_frames_get_clear_errors_and_harm_nothing() {
    let env = Env::new(&config(TWO_BEATS));
    let mut d = started(&env);
    let sock = env.data().join("fushi.sock");

    // A slow client that never sends its request does not hold anyone else up.
    let _slow = UnixStream::connect(&sock).unwrap();
    assert_eq!(code(&fushi(&env, &["status", "storage"])), 0);

    let garbage = raw(&sock, &[5, 0, 0, 0, 1, 0, 0xff, 0xff, 0xff]);
    assert!(text(&garbage).contains("malformed"), "{}", text(&garbage));
    let oversized = raw(&sock, &(u32::MAX).to_le_bytes());
    assert!(
        text(&oversized).contains("exceeds the limit"),
        "{}",
        text(&oversized)
    );
    let wrong_version = raw(&sock, &[3, 0, 0, 0, 99, 0, 0]);
    assert!(
        text(&wrong_version).contains("protocol version 99"),
        "{}",
        text(&wrong_version)
    );
    // Truncated: promises 100 bytes, sends 3, then closes.
    let truncated = raw(&sock, &[100, 0, 0, 0, 1, 0, 7]);
    assert!(
        text(&truncated).contains("failed to fill whole buffer")
            || text(&truncated).contains("early eof"),
        "{}",
        text(&truncated)
    );
    let empty = raw(&sock, &[]);
    assert!(
        !text(&empty).contains("fushi"),
        "an empty connection gets at most an error frame"
    );

    // Still serving, nothing restarted.
    let out = fushi(&env, &["status", "--json"]);
    assert_eq!(code(&out), 0);
    let doc = json(&out);
    let control = doc["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "control")
        .unwrap();
    assert_eq!(control["restarts"], 0);
    assert!(d.terminate().success());
}

#[test]
#[ignore = "needs root (a client as another uid): scripts/test runs it (--include-ignored)"]
fn another_uid_cannot_use_the_socket() {
    require(
        nix::unistd::Uid::effective().is_root(),
        "another_uid_cannot_use_the_socket",
        "root to run a client as nobody",
    );
    let env = Env::new(&config(TWO_BEATS));
    let mut d = started(&env);
    let sock = env.data().join("fushi.sock");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions())
            & 0o777;
    assert_eq!(mode, 0o600, "socket mode");
    let dmode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(env.data()).unwrap().permissions(),
    ) & 0o777;
    assert_eq!(dmode, 0o700, "data dir mode");
    // Open the file permissions up on purpose: the peer-uid check alone must refuse nobody.
    std::fs::set_permissions(
        env.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(
        env.data(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin())
        .args(["stop", "collectors/a", "--socket"])
        .arg(&sock)
        .arg("-c")
        .arg(env.config())
        .output()
        .expect("running setpriv (util-linux)");
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("permission denied: uid 65534"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        state(&env, "collectors/a"),
        "running",
        "nobody changed nothing"
    );
    assert!(d.terminate().success());
}

fn beats(names_every: &[(&str, &str)]) -> String {
    names_every
        .iter()
        .map(|(n, e)| {
            format!("[[collector]]\nname = \"{n}\"\nkind = \"heartbeat\"\nevery = \"{e}\"\n\n")
        })
        .collect()
}

#[test]
fn update_adds_removes_and_restarts_only_the_changed_collectors() {
    let env = Env::new(&config(&beats(&[
        ("keep", "1h"),
        ("change", "1h"),
        ("drop", "1h"),
    ])));
    let mut d = started(&env);
    wait_for("three collectors running", || {
        (["keep", "change", "drop"]
            .iter()
            .all(|n| state(&env, &format!("collectors/{n}")) == "running"))
        .then_some(())
    });

    env.write_config(&config(&beats(&[
        ("keep", "1h"),
        ("change", "2h"),
        ("new", "1h"),
    ])));
    let out = fushi(&env, &["reread", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let diff = json(&out);
    assert_eq!(diff["added"], serde_json::json!(["new"]));
    assert_eq!(diff["removed"], serde_json::json!(["drop"]));
    assert_eq!(diff["changed"], serde_json::json!(["change"]));
    assert_eq!(
        state(&env, "collectors/drop"),
        "running",
        "reread changes nothing"
    );

    let out = fushi(&env, &["update"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("applied: added new; removed drop; changed change"),
        "{}",
        stdout(&out)
    );
    let audit = d.wait_audit("config.reload.ok", "", 1);
    assert_eq!(state(&env, "collectors/new"), "running");
    assert_eq!(state(&env, "collectors/change"), "running");
    let doc = json(&fushi(&env, &["status", "--json"]));
    assert!(
        !doc["actors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "collectors/drop"),
        "removed from status"
    );
    // Only the changed and removed collectors were stopped; keep was not touched.
    let stopped: Vec<&str> = events(&audit, "supervisor.child.stopped", "")
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(stopped, ["collectors/drop", "collectors/change"]);
    let reasons: Vec<&str> = events(&audit, "supervisor.child.stopped", "")
        .iter()
        .map(|e| e["payload"]["reason"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        reasons,
        ["removed from the config", "changed in the config: replaced"]
    );
    // A changed collector keeps its place in the tree.
    let names: Vec<String> = json(&fushi(&env, &["status", "--json"]))["actors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str().map(str::to_string))
        .filter(|n| n.starts_with("collectors/"))
        .collect();
    assert_eq!(
        names,
        ["collectors/keep", "collectors/change", "collectors/new"]
    );
    assert_eq!(
        events(&audit, "supervisor.child.started", "collectors/keep").len(),
        1
    );
    assert_eq!(
        json(&fushi(&env, &["reread", "--json"]))["changed"],
        serde_json::json!([])
    );

    // A bad file: update refuses, names the line, keeps everything running, health goes red.
    env.write_config(&config(
        "[[collector]]\nname = \"keep\"\nkind = \"heartbeat\"\nevery = \"often\"\n",
    ));
    let out = fushi(&env, &["update"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("supervisor.toml:") && stderr(&out).contains("often"),
        "{}",
        stderr(&out)
    );
    d.wait_audit("config.reload.failed", "", 1);
    assert_eq!(state(&env, "collectors/new"), "running");
    wait_for("red health", || {
        (json(&fushi(&env, &["status", "--json"]))["health"] == "red").then_some(())
    });
    assert_eq!(code(&fushi(&env, &["health"])), 2);

    env.write_config(&config(&beats(&[
        ("keep", "1h"),
        ("change", "2h"),
        ("new", "1h"),
    ])));
    assert_eq!(code(&fushi(&env, &["update"])), 0);
    wait_for("green again", || {
        (code(&fushi(&env, &["health"])) == 0).then_some(())
    });
    assert!(d.terminate().success());
}

#[test]
fn inject_needs_allow_inject_and_a_crash_is_a_failure_the_supervisor_restarts() {
    let env = Env::new(&config(&beats(&[("a", "1h")])));
    let mut d = started(&env);
    let out = fushi(&env, &["inject", "crash", "collectors/a"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("allow_inject = true"),
        "{}",
        stderr(&out)
    );
    // A typo is named as such, also while injection is disabled.
    let out = fushi(&env, &["inject", "flood"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("cannot inject \"flood\""),
        "{}",
        stderr(&out)
    );
    let out = fushi(&env, &["inject", "crash"]);
    assert!(
        stderr(&out).contains("needs the actor's name"),
        "{}",
        stderr(&out)
    );
    // The harness config ends with [control]; allow_inject goes into that section.
    let allowed =
        config(&beats(&[("a", "1h")])).replace("[control]\n", "[control]\nallow_inject = true\n");
    assert!(allowed.contains("allow_inject = true"), "{allowed}");
    env.write_config(&allowed);
    // Set in the file, not yet in the running daemon: the refusal says what is missing.
    let out = fushi(&env, &["inject", "crash", "collectors/a"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("running config") && stderr(&out).contains("restart the daemon"),
        "{}",
        stderr(&out)
    );
    assert!(d.terminate().success());
    let mut d = started(&env);
    let out = fushi(&env, &["inject", "crash", "collectors/a"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let audit = d.wait_audit("supervisor.child.restarted", "collectors/a", 1);
    assert_eq!(events(&audit, "inject.crash", "collectors/a").len(), 1);
    assert!(!events(&audit, "supervisor.child.failed", "collectors/a").is_empty());
    // LAST ERROR says it was killed, not that it "stopped by itself".
    let doc = json(&fushi(&env, &["status", "--json", "collectors/a"]));
    let last = doc[0]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(last.contains("killed from outside its supervisor"), "{doc}");
    let out = fushi(&env, &["inject", "crash", "collectors/nope"]);
    assert_eq!(code(&out), 1);
    assert_eq!(code(&fushi(&env, &["inject", "flood"])), 1);

    assert_eq!(code(&fushi(&env, &["inject", "primary-down"])), 0);
    wait_for("primary down", || {
        (json(&fushi(&env, &["status", "--json"]))["storage"]["primary"] == "down").then_some(())
    });
    let audit = d.wait_audit("collector.storage.switch", "sync", 1);
    let reason = events(&audit, "collector.storage.switch", "sync")
        .last()
        .unwrap()["payload"]["reason"]
        .to_string();
    assert!(reason.contains("injected"), "{reason}");
    assert_eq!(code(&fushi(&env, &["inject", "primary-up"])), 0);
    wait_for("primary up", || {
        (json(&fushi(&env, &["status", "--json"]))["storage"]["primary"] == "up").then_some(())
    });

    let plan = fushi(&env, &["sync", "--plan"]);
    assert_eq!(code(&plan), 0, "{}", stderr(&plan));
    assert!(
        stdout(&plan).contains("not yet on the primary"),
        "{}",
        stdout(&plan)
    );
    let now = fushi(&env, &["sync", "--now"]);
    assert_eq!(code(&now), 0, "{}{}", stdout(&now), stderr(&now));
    assert!(stdout(&now).contains("journal drained"), "{}", stdout(&now));
    assert!(d.terminate().success());
}

#[test]
fn audit_skips_and_counts_unreadable_lines_and_shows_the_rest() {
    let env = Env::new(&config(""));
    std::fs::create_dir_all(env.data()).unwrap();
    let event = |n: u32, extra: &str| {
        format!(
            "{{\"ts\":\"2026-01-01T00:00:0{n}.000Z\",\"event\":\"daemon.started\",\"node\":\"n\",\"payload\":{{\"n\":{n}{extra}}}}}\n"
        )
        .into_bytes()
    };
    let mut log = event(1, "");
    log.extend_from_slice(b"\xff\xfe garbage, not even text\n");
    // A stray byte inside a payload string: still an event worth showing.
    let mut stray = event(2, ",\"note\":\"a\"");
    let at = stray.windows(3).position(|w| w == b"\"a\"").unwrap() + 1;
    stray[at] = 0xff;
    log.extend_from_slice(&stray);
    log.extend_from_slice(b"{\"ts\": cut by a crash\n");
    log.extend_from_slice(&event(3, ""));
    log.extend_from_slice(b"{\"ts\":\"2026-01-01T00:00:04.000Z\",\"eve");
    std::fs::write(env.data().join("audit.jsonl"), &log).unwrap();

    let out = fushi(&env, &["audit"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 3, "{text}");
    for n in 1..=3 {
        assert!(text.contains(&format!("\"n\":{n}")), "{text}");
    }
    assert!(text.contains('\u{fffd}'), "{text}");
    let err = stderr(&out);
    assert!(
        err.contains("2 unreadable line(s)") && err.contains("(line 2, 4)"),
        "{err}"
    );
    assert!(err.contains("1 line(s)") && err.contains("U+FFFD"), "{err}");

    let out = fushi(&env, &["audit", "--json", "--event", "daemon.*"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let events = json(&out);
    let ns: Vec<u64> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, [1, 2, 3]);
}

#[test]
fn a_command_collectors_secrets_stay_out_of_the_log() {
    let env = Env::new(&config(
        r#"[[collector]]
name = "poll"
kind = "command"
argv = ["sh", "-c", "sleep 300", "--token=s3cr3t-token", "https://bob:hunter2@nas.example/x", "--password", "pa55word"]
"#,
    ));
    let mut d = started(&env);
    d.wait_audit("supervisor.child.started", "collectors/poll", 1);
    let log = wait_for("the spawned line in the log", || {
        let log = d.log();
        log.lines()
            .find(|l| l.contains("collector.command.spawned"))
            .map(str::to_string)
    });
    let tail = stdout(&fushi(&env, &["tail", "-n", "100", "collectors/poll"]));
    let audit = std::fs::read_to_string(env.data().join("audit.jsonl")).unwrap();
    for (what, text) in [("log", &d.log()), ("tail", &tail), ("audit", &audit)] {
        for secret in ["s3cr3t-token", "hunter2", "pa55word"] {
            assert!(!text.contains(secret), "{secret} in the {what}:\n{text}");
        }
    }
    assert!(
        log.contains("--token=***")
            && log.contains("bob:***@nas.example")
            && log.contains("\"***\""),
        "{log}"
    );
    assert!(tail.contains("collector.command.spawned"), "{tail}");
}
