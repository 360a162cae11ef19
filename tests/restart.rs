//! Restart behaviour seen from outside: audit trail of a crashing `command` collector, ordered shutdown, process groups.

use serde_json::Value;

use crate::util::*;

fn ms(e: &Value) -> u64 {
    e["payload"]["delay_ms"].as_u64().expect("delay_ms")
}

#[test]
fn false_command_shows_its_restart_schedule_in_audit() {
    let env = Env::new(&config(
        r#"[[collector]]
name = "crash"
kind = "command"
argv = ["false"]
backoff = ["100ms", "150ms", "200ms"]
jitter = "0s"
escalate_after = 4
"#,
    ));
    let mut d = env.start();
    // Five scheduled restarts show every step, the last one repeated, and the escalation.
    let audit = d.wait_audit("supervisor.child.restart_scheduled", "collectors/crash", 5);
    let scheduled = events(
        &audit,
        "supervisor.child.restart_scheduled",
        "collectors/crash",
    );
    let delays: Vec<u64> = scheduled.iter().take(5).map(|e| ms(e)).collect();
    assert_eq!(delays, [100, 150, 200, 200, 200]);
    let attempts: Vec<u64> = scheduled
        .iter()
        .take(5)
        .map(|e| e["payload"]["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2, 3, 4, 5]);

    // Exactly one escalation, right after the 4th consecutive failure.
    let escalated = events(&audit, "supervisor.child.escalated", "collectors/crash");
    assert_eq!(escalated.len(), 1, "{escalated:?}");
    assert_eq!(escalated[0]["payload"]["failures"], 4);
    let pos = |e: &Value| audit.iter().position(|x| x == e).unwrap();
    let failed = events(&audit, "supervisor.child.failed", "collectors/crash");
    assert!(pos(failed[3]) < pos(escalated[0]) && pos(escalated[0]) < pos(scheduled[3]));
    let sent = events(&audit, "alert.sent", "collectors/crash");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["payload"]["channel"], "journald");

    // Each restart happened no earlier than its scheduled delay.
    let restarted = events(&audit, "supervisor.child.restarted", "collectors/crash");
    for (s, r) in scheduled.iter().zip(restarted.iter()).take(4) {
        let at = |e: &Value| {
            time::OffsetDateTime::parse(
                e["ts"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        };
        let gap = (at(r) - at(s)).whole_milliseconds() as u64;
        assert!(
            gap + 2 >= ms(s),
            "restart after {gap} ms, scheduled {} ms",
            ms(s)
        );
    }
    let status = env.status().expect("status.json");
    let crash = status["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "collectors/crash")
        .unwrap()
        .clone();
    assert!(crash["restarts"].as_u64().unwrap() >= 3, "{crash}");
    assert_eq!(
        status["health"], "red",
        "an escalated actor makes health red"
    );
    assert!(d.terminate().success());
}

#[test]
fn sigterm_stops_the_tree_in_reverse_order_and_marks_a_clean_shutdown() {
    let env = Env::new(&config(
        r#"[[collector]]
name = "a"
kind = "heartbeat"
every = "1h"
[[collector]]
name = "b"
kind = "command"
argv = ["sleep", "1000"]
"#,
    ));
    let mut d = env.start();
    d.wait_audit("supervisor.child.started", "collectors", 1);
    assert!(d.terminate().success(), "{}", d.log());
    // The log file gets plain text: colours are for a terminal.
    let log = d.log();
    assert!(log.contains("daemon.started"), "{log}");
    assert!(!log.contains('\x1b'), "escape codes in a log file:\n{log}");
    let audit = env.audit();
    let stopped: Vec<&str> = events(&audit, "supervisor.child.stopped", "")
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(
        stopped,
        [
            "control",
            "collectors/b",
            "collectors/a",
            "collectors",
            "sync",
            "storage",
            "alert",
            "status"
        ]
    );
    assert_eq!(audit.last().unwrap()["event"], "daemon.stopped");
    let status = env.status().unwrap();
    assert_eq!(status["clean_shutdown"], true);

    // A clean stop is not a crash: the next start does not count a recovery.
    let mut d = env.start();
    d.wait_audit("daemon.started", "", 2);
    d.wait_audit("supervisor.child.started", "collectors", 2);
    assert!(d.terminate().success());
    assert!(events(&env.audit(), "daemon.recovered", "").is_empty());
}

#[test]
fn stopping_a_command_collector_kills_its_whole_process_group() {
    let env = Env::new(&config(
        r#"[[collector]]
name = "family"
kind = "command"
shell = true
argv = ["sleep 1000 & echo $! > grandchild.pid; wait"]
"#,
    ));
    let mut d = env.start();
    let pidfile = env.path().join("grandchild.pid");
    let pid: i32 = wait_for("grandchild pid", || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    });
    let alive = |pid: i32| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    assert!(alive(pid));
    let status = d.terminate();
    assert!(status.success(), "{status}: {}", d.log());
    // The grandchild was in the collector's process group; it is reaped by init once killed.
    wait_for("the grandchild to die", || (!alive(pid)).then_some(()));
}

#[test]
fn periodic_commands_run_every_period_and_only_timeouts_and_failed_runs_are_failures() {
    let env = Env::new(&config(
        r#"[[collector]]
name = "tick"
kind = "command"
argv = ["echo", "{\"n\": 1}"]
every = "30ms"

[[collector]]
name = "slow"
kind = "command"
argv = ["sleep", "10"]
every = "30ms"
timeout = "100ms"
backoff = ["100ms"]
jitter = "0s"

[[collector]]
name = "bad"
kind = "command"
argv = ["sh", "-c", "exit 7"]
every = "30ms"
backoff = ["100ms"]
jitter = "0s"
"#,
    ));
    let mut d = env.start();
    let audit = d.wait_audit("supervisor.child.failed", "collectors/slow", 1);
    let slow = events(&audit, "supervisor.child.failed", "collectors/slow");
    assert_eq!(
        slow[0]["payload"]["error"],
        "periodic run timed out after 100ms"
    );
    let audit = d.wait_audit("supervisor.child.failed", "collectors/bad", 1);
    let bad = events(&audit, "supervisor.child.failed", "collectors/bad");
    assert_eq!(
        bad[0]["payload"]["error"],
        "periodic run failed (exit status: 7)"
    );
    let tick = wait_for("5 records from the periodic echo", || {
        let s = env.status()?;
        let t = s["actors"]
            .as_array()?
            .iter()
            .find(|a| a["name"] == "collectors/tick")?
            .clone();
        (t["records"].as_u64()? >= 5).then_some(t)
    });
    assert_eq!(
        tick["failures"], 0,
        "a zero exit of a periodic run is not a failure: {tick}"
    );
    assert_eq!(tick["state"], "running");
    assert!(events(&env.audit(), "supervisor.child.failed", "collectors/tick").is_empty());
    assert!(d.terminate().success());
}
