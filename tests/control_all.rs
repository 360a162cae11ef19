//! `all` and the daemon's own actors through the control socket: `all` is every collector, the daemon's own actors restart but never stop, and a manual stop outlives a restart of its parent.

use serde_json::Value;
use std::process::Output;

use crate::util::*;

/// The actors that keep the daemon reachable and its data safe.
const OWN: [&str; 5] = ["status", "alert", "storage", "sync", "control"];

fn said(o: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The status document as the daemon answers it right now (not status.json on disk).
fn doc(env: &Env) -> Value {
    let out = fushi(env, &["status", "--json"]);
    assert!(
        matches!(code(&out), 0 | 3),
        "status must answer: {}",
        said(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", said(&out)))
}

fn actor(doc: &Value, name: &str) -> Value {
    doc["actors"]
        .as_array()
        .expect("actors")
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing from {doc}"))
        .clone()
}

fn state(doc: &Value, name: &str) -> String {
    actor(doc, name)["state"].as_str().unwrap_or("").to_string()
}

fn count(env: &Env, event: &str, actor: &str) -> usize {
    events(&env.audit(), event, actor).len()
}

#[test]
fn stop_all_stops_every_collector_and_leaves_the_daemon_answering() {
    let env = Env::new(&config(TWO_BEATS));
    let mut d = started(&env);

    let out = fushi(&env, &["stop", "all"]);
    assert_eq!(code(&out), 0, "{}", said(&out));
    let now = doc(&env);
    for c in ["collectors/a", "collectors/b"] {
        assert_eq!(state(&now, c), "stopped", "{c}: {now}");
    }
    for own in OWN.iter().chain(&["collectors"]) {
        assert_eq!(state(&now, own), "running", "{own}: {now}");
    }
    // Like supervisorctl: a stopped program makes `status` exit 3, but it answers.
    let out = fushi(&env, &["status"]);
    assert_eq!(code(&out), 3, "{}", said(&out));

    let out = fushi(&env, &["start", "all"]);
    assert_eq!(code(&out), 0, "{}", said(&out));
    let now = doc(&env);
    for c in ["collectors/a", "collectors/b"] {
        assert_eq!(state(&now, c), "running", "{c}: {now}");
    }

    // `restart all` restarts the collectors and nothing of the daemon's own.
    let out = fushi(&env, &["restart", "all"]);
    assert_eq!(code(&out), 0, "{}", said(&out));
    assert_eq!(code(&fushi(&env, &["status"])), 0);
    // The audit log is written in order: once these are in, a stop of any other would be too.
    d.wait_audit("supervisor.child.restarted", "collectors/a", 1);
    d.wait_audit("supervisor.child.restarted", "collectors/b", 1);
    for own in OWN {
        assert_eq!(count(&env, "supervisor.child.stopped", own), 0, "{own}");
    }

    let out = fushi(&env, &["shutdown"]);
    assert_eq!(code(&out), 0, "{}", said(&out));
    assert!(d.wait_exit().success(), "{}", d.log());
}

#[test]
fn the_daemons_own_actors_are_refused_a_stop_and_restart_one_at_a_time() {
    let env = Env::new(&config(TWO_BEATS));
    let mut d = started(&env);

    for own in ["control", "storage", "sync", "collectors"] {
        let out = fushi(&env, &["stop", own]);
        assert_eq!(code(&out), 1, "{}", said(&out));
        let text = said(&out);
        assert!(
            text.contains(own) && text.contains("fushi restart") && text.contains("shutdown"),
            "the refusal says why and what to do instead: {text}"
        );
    }
    // A refused name in a request changes nothing of the others.
    let out = fushi(&env, &["stop", "collectors/a", "storage"]);
    assert_eq!(code(&out), 1, "{}", said(&out));
    let out = fushi(&env, &["restart", "storage", "alert"]);
    assert_eq!(code(&out), 1, "{}", said(&out));
    assert!(said(&out).contains("one at a time"), "{}", said(&out));

    let out = fushi(&env, &["status"]);
    assert_eq!(code(&out), 0, "everything still runs: {}", said(&out));

    let out = fushi(&env, &["restart", "storage"]);
    assert_eq!(code(&out), 0, "{}", said(&out));
    // The audit log is written in order: any stop refused above would be in before this.
    d.wait_audit("supervisor.child.restarted", "storage", 1);
    for (actor, stops) in [
        ("status", 0),
        ("alert", 0),
        ("control", 0),
        ("storage", 1),
        ("collectors/a", 0),
    ] {
        assert_eq!(
            count(&env, "supervisor.child.stopped", actor),
            stops,
            "{actor}"
        );
    }
    assert!(d.terminate().success());
}

#[test]
fn restart_control_keeps_the_socket_and_the_cli_working() {
    let env = Env::new(&config(TWO_BEATS));
    let mut d = started(&env);

    for round in 1..=3 {
        let out = fushi(&env, &["restart", "control"]);
        assert_eq!(code(&out), 0, "round {round}: {}", said(&out));
        // At once: no wait for a backoff, no "not running".
        let out = fushi(&env, &["status"]);
        assert_eq!(code(&out), 0, "round {round}: {}", said(&out));
        let control = actor(&doc(&env), "control");
        assert_eq!(control["state"], "running", "{control}");
        assert_eq!(control["last_error"], Value::Null, "{control}");
        d.wait_audit("supervisor.child.restarted", "control", round);
    }
    assert_eq!(count(&env, "supervisor.child.failed", "control"), 0);
    let out = fushi(&env, &["shutdown"]);
    assert_eq!(code(&out), 0, "{}", said(&out));
    assert!(d.wait_exit().success(), "{}", d.log());
}

#[test]
fn a_stopped_collector_stays_stopped_across_a_restart_of_collectors() {
    let env = Env::new(&config(TWO_BEATS));
    let mut d = started(&env);

    assert_eq!(code(&fushi(&env, &["stop", "collectors/a"])), 0);
    let out = fushi(&env, &["restart", "collectors"]);
    assert_eq!(code(&out), 0, "{}", said(&out));
    d.wait_audit("supervisor.child.restarted", "collectors", 1);
    let now = doc(&env);
    assert_eq!(state(&now, "collectors"), "running", "{now}");
    assert_eq!(state(&now, "collectors/a"), "stopped", "{now}");
    assert_eq!(state(&now, "collectors/b"), "running", "{now}");
    assert_eq!(count(&env, "supervisor.child.started", "collectors/a"), 1);
    assert_eq!(count(&env, "supervisor.child.started", "collectors/b"), 2);

    // A manual start ends it: the next restart of the parent brings it back too.
    assert_eq!(code(&fushi(&env, &["start", "collectors/a"])), 0);
    assert_eq!(code(&fushi(&env, &["restart", "collectors"])), 0);
    let now = doc(&env);
    assert_eq!(state(&now, "collectors/a"), "running", "{now}");
    assert_eq!(state(&now, "collectors/b"), "running", "{now}");
    assert!(d.terminate().success());
}
