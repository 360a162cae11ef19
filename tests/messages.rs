//! One truthful message per outcome: `update` says what it applied and what waits for a daemon
//! restart (and a later `reread` still says so), a changed collector the operator stopped stays
//! stopped, `reread` after a failed reload says how to clear it, and `sync` says whether the
//! journal keeps up (its exit code too), with `--plan` listing what waits per stream.

use crate::util::*;

/// Heartbeats `a` and `b` (`b` every `b_every`) and a `[control]` section `control`.
fn conf(b_every: &str, control: &str) -> String {
    format!(
        "[node]\nid = \"test-node\"\ndata_dir = \"data\"\n\n[supervisor]\nshutdown_timeout = \"2s\"\n\n\
         [[collector]]\nname = \"a\"\nkind = \"heartbeat\"\nevery = \"1h\"\n\n\
         [[collector]]\nname = \"b\"\nkind = \"heartbeat\"\nevery = \"{b_every}\"\n\n\
         [control]\nhttp = \"\"\n{control}\n"
    )
}

#[test]
fn update_says_what_it_applied_and_what_waits_for_a_restart_and_keeps_a_stopped_collector_stopped()
{
    let env = Env::new(&conf("1h", ""));
    let mut d = started(&env);
    assert_eq!(code(&fushi(&env, &["stop", "b"])), 0);
    wait_for("b stopped", || {
        (json(&fushi(&env, &["status", "--json", "b"]))[0]["state"] == "stopped").then_some(())
    });

    env.write_config(&conf("2h", "allow_inject = true"));
    let out = fushi(&env, &["reread"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("`fushi update` would apply: changed b"),
        "{text}"
    );
    assert!(text.contains("takes a daemon restart: control"), "{text}");
    assert!(!text.contains("applied:"), "reread applies nothing: {text}");

    let out = fushi(&env, &["update"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("applied: changed b"), "{text}");
    assert!(
        text.contains("not applied, takes a daemon restart: control"),
        "{text}"
    );
    d.wait_audit("config.reload.ok", "", 1);
    // The replacement of a collector the operator stopped is stopped too, until `fushi start`.
    let b = json(&fushi(&env, &["status", "--json", "b"]));
    assert_eq!(b[0]["state"], "stopped", "{b}");
    assert!(
        events(&env.audit(), "supervisor.child.started", "collectors/b").len() == 1,
        "b was started again by update"
    );

    // What update did not apply is still pending, not forgotten.
    let text = stdout(&fushi(&env, &["reread"]));
    assert!(text.contains("takes a daemon restart: control"), "{text}");
    assert!(!text.contains("would apply"), "{text}");
    assert!(!text.contains("no changes"), "{text}");
    // The daemon still runs the old [control]: injection stays refused.
    assert_eq!(code(&fushi(&env, &["inject", "crash", "a"])), 1);

    assert_eq!(code(&fushi(&env, &["start", "b"])), 0);
    d.wait_audit("supervisor.child.started", "collectors/b", 2);
    assert!(d.terminate().success());
}

#[test]
fn reread_after_a_failed_reload_says_the_file_loads_again_and_update_clears_the_red() {
    let env = Env::new(&conf("1h", ""));
    let mut d = started(&env);
    env.write_config(&conf("often", ""));
    assert_eq!(code(&fushi(&env, &["update"])), 1);
    d.wait_audit("config.reload.failed", "", 1);
    assert_eq!(code(&fushi(&env, &["health"])), 2);

    // Fixed back to what runs: no difference, but health stays red until an update says so.
    env.write_config(&conf("1h", ""));
    let text = stdout(&fushi(&env, &["reread"]));
    assert!(
        text.contains("the last reload failed") && text.contains("`fushi update`"),
        "{text}"
    );
    let text = stdout(&fushi(&env, &["update"]));
    assert!(
        text.contains("no changes: the file matches the running config"),
        "{text}"
    );
    assert!(!text.contains("applied"), "{text}");
    wait_for("green again", || {
        (code(&fushi(&env, &["health"])) == 0).then_some(())
    });
    let text = stdout(&fushi(&env, &["reread"]));
    assert_eq!(
        text.trim(),
        "no changes: the file matches the running config"
    );
    assert!(d.terminate().success());
}

/// Pushes `{"k": from..from+n}` to the `listen` collector at `socket` and waits for every ack.
fn push(socket: &std::path::Path, from: u64, n: u64) {
    use std::io::{BufRead, BufReader, Write};
    let conn = std::os::unix::net::UnixStream::connect(socket).expect("connecting to in.sock");
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    let lines: String = (from..from + n)
        .map(|k| format!("{{\"k\":{k}}}\n"))
        .collect();
    (&conn).write_all(lines.as_bytes()).expect("pushing");
    let mut r = BufReader::new(&conn);
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).expect("reading acks") > 0, "no ack");
        let v: serde_json::Value = serde_json::from_str(&line).expect("an ack line");
        if v["ack"].as_u64() == Some(n) {
            return;
        }
    }
}

#[test]
fn sync_says_whether_forwarding_keeps_up_and_its_plan_lists_what_waits_per_stream() {
    let env =
        Env::new(&listen_config("").replace("[control]\n", "[control]\nallow_inject = true\n"));
    let mut d = started(&env);
    d.wait_audit("supervisor.child.started", "collectors/in", 1);
    let sock = env.path().join("in.sock");
    push(&sock, 1, 50);
    wait_for("the journal drained", || {
        (json(&fushi(&env, &["status", "--json"]))["storage"]["lag_records"] == 0).then_some(())
    });
    let out = fushi(&env, &["sync"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(stdout(&out).contains("journal drained"), "{}", stdout(&out));
    let out = fushi(&env, &["sync", "--plan"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("the next sync sends nothing"),
        "{}",
        stdout(&out)
    );

    // The primary goes away: what arrives now waits, and sync says so with exit 1.
    assert_eq!(code(&fushi(&env, &["inject", "primary-down"])), 0);
    wait_for("primary down", || {
        (json(&fushi(&env, &["status", "--json"]))["storage"]["primary"] == "down").then_some(())
    });
    push(&sock, 51, 30);
    wait_for("30 records waiting", || {
        (json(&fushi(&env, &["status", "--json"]))["storage"]["lag_records"] == 30).then_some(())
    });
    let out = fushi(&env, &["sync"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("30 records wait: the primary is down"),
        "{}",
        stdout(&out)
    );
    let out = fushi(&env, &["sync", "--plan"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let text = stdout(&out);
    let row = text
        .lines()
        .find(|l| l.starts_with("test/k "))
        .unwrap_or_else(|| panic!("no row for test/k:\n{text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "30", "{text}");
    let plan = json(&fushi(&env, &["sync", "--plan", "--json"]));
    let s = &plan["plan"]["streams"][0];
    assert_eq!(
        (s["stream"].as_str(), s["records"].as_u64()),
        (Some("test/k"), Some(30)),
        "{plan}"
    );
    // The first waiting record follows the last one on the primary.
    let seq = |id: &serde_json::Value| -> u64 {
        id.as_str()
            .and_then(|i| i.split('.').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap()
    };
    assert_eq!(seq(&s["first"]), seq(&s["on_primary"]) + 1, "{plan}");
    assert_eq!(seq(&s["last"]), seq(&s["first"]) + 29, "{plan}");
    assert_eq!(plan["keeps_up"], false, "{plan}");

    assert_eq!(code(&fushi(&env, &["inject", "primary-up"])), 0);
    let out = fushi(&env, &["sync", "--now"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("journal drained"), "{}", stdout(&out));
    assert_eq!(
        primary_ks(&env.data().join("primary"), "test/k"),
        (1..=80).collect::<Vec<_>>()
    );
    assert!(d.terminate().success());
}

#[test]
fn a_mode_set_for_a_while_returns_once_and_an_earlier_timer_does_not_undo_a_later_mode() {
    let env = Env::new(&conf("1h", ""));
    let mut d = started(&env);
    let out = fushi(&env, &["mode", "debug", "--for", "0s"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stderr(&out).contains("longer than 0s"), "{}", stderr(&out));
    assert_eq!(code(&fushi(&env, &["mode", "debug", "--for", "1s"])), 0);
    assert_eq!(code(&fushi(&env, &["mode", "diag", "--for", "3s"])), 0);
    let text = stdout(&fushi(&env, &["mode"]));
    assert!(
        text.starts_with("diag until ") && text.contains("then the configured mode"),
        "{text}"
    );
    // The first timer fires first and must leave diag alone; only the second returns to prod.
    let audit = d.wait_audit("mode.change", "", 3);
    let back: Vec<_> = events(&audit, "mode.change", "")
        .into_iter()
        .filter(|e| e["payload"]["reason"] == "the --for period ended")
        .collect();
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(back[0]["payload"]["mode"], "prod");
    let ms = |e: &serde_json::Value| {
        time::OffsetDateTime::parse(
            e["ts"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let set = events(&audit, "mode.change", "")[1];
    assert!(
        ms(back[0]) - ms(set) >= time::Duration::milliseconds(2900),
        "returned {} after diag was set for 3s",
        ms(back[0]) - ms(set)
    );
    assert_eq!(stdout(&fushi(&env, &["mode"])).trim(), "prod");
    assert!(d.terminate().success());
}

#[test]
fn reread_and_update_refuse_a_config_file_the_daemon_does_not_read() {
    let env = Env::new(&conf("1h", ""));
    let mut d = started(&env);
    let other = env.path().join("other.toml");
    std::fs::write(&other, conf("2h", "")).unwrap();
    for cmd in ["reread", "update"] {
        let out = bare(&[cmd, "-c"])
            .arg(&other)
            .current_dir(env.path())
            .output()
            .unwrap();
        assert_eq!(code(&out), 1, "{cmd}: {}", stdout(&out));
        let text = stderr(&out);
        assert!(
            text.contains(&format!("reads its config from {}", env.config().display()))
                && text.contains("other.toml"),
            "{cmd}: {text}"
        );
    }
    // Nothing was applied; the same file by another spelling is the daemon's own.
    let out = bare(&["reread", "-c", "./supervisor.toml"])
        .current_dir(env.path())
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        events(&env.audit(), "config.reload.ok", "").is_empty(),
        "update applied a file the daemon does not read"
    );
    assert!(d.terminate().success());
}

#[test]
fn no_answer_from_a_daemon_that_runs_says_so_and_a_broken_file_is_named() {
    let env = Env::new(&conf("1h", ""));
    // The daemon listens elsewhere: its socket is not where the config's defaults put it.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut d = env.start_with(|c| {
        c.env("XDG_RUNTIME_DIR", elsewhere.path());
    });
    let sock = elsewhere.path().join("fushi.sock");
    wait_for("the daemon on XDG_RUNTIME_DIR", || {
        sock.exists().then_some(())
    });
    let out = fushi(&env, &["pid"]);
    assert_eq!(code(&out), 7, "{}", stdout(&out));
    let text = stderr(&out);
    assert!(
        text.contains(&format!("fushi pid {} runs on data dir", d.pid()))
            && text.contains("--socket")
            && !text.contains("not running"),
        "{text}"
    );
    let out = fushi(&env, &["check"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!("does not answer, but fushi pid {} runs", d.pid())),
        "{}",
        stdout(&out)
    );
    assert!(d.terminate().success());

    // A file that does not parse: the error says so, and does not claim the daemon is down
    // (the socket was only looked for where the defaults put it).
    env.write_config("garbage [[[\n");
    let out = fushi(&env, &["status"]);
    assert_eq!(code(&out), 3);
    let text = stderr(&out);
    assert!(
        text.contains("no daemon answers on")
            && text.contains("does not load")
            && !text.contains("not running"),
        "{text}"
    );
    let out = fushi(&env, &["health", "--json"]);
    let health = json(&out);
    assert_eq!(health["health"], "red");
    assert!(
        health["reasons"][0]
            .as_str()
            .unwrap_or_default()
            .contains("does not load"),
        "{health}"
    );
}

#[test]
fn check_creates_nothing_and_says_a_missing_data_dir_is_made_at_start() {
    let env = Env::new(&conf("1h", "").replace("data_dir = \"data\"", "data_dir = \"mydataa\""));
    let out = fushi(&env, &["check"]);
    let text = stdout(&out);
    assert!(
        text.contains("data dir: ")
            && text.contains("mydataa does not exist; the daemon creates it"),
        "{text}"
    );
    assert!(
        !env.path().join("mydataa").exists(),
        "check made the data dir"
    );
}
