//! `fushi report`: figures from a scripted audit log and primary whose answers are known, with no daemon; and from a real crashing collector, against its own audit log.

use serde_json::{json, Value};
use std::io::Write as _;

use crate::util::*;

/// A time `ms_ago` before one fixed now, so that differences between scripted lines are exact.
fn at(ms_ago: u64) -> String {
    static NOW: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let now = *NOW.get_or_init(fushi_actors::clock::wall_ms);
    fushi_actors::clock::rfc3339_ms(now - ms_ago)
}

fn line(ms_ago: u64, event: &str, actor: Option<&str>, payload: Value) -> String {
    let mut e = json!({"ts": at(ms_ago), "event": event, "node": "test-node", "payload": payload});
    if let Some(a) = actor {
        e["actor"] = json!(a);
    }
    format!("{e}\n")
}

fn record(stream: &str, node: &str, epoch: u64, seq: u64) -> String {
    let r = json!({"id": format!("{epoch}.{seq}"), "epoch": epoch, "seq": seq,
        "ts": "2026-12-01T10:00:00.000Z", "stream": stream, "node": node, "data": {"n": seq}});
    format!("{r}\n")
}

fn report(env: &Env, args: &[&str]) -> std::process::Output {
    let mut a = vec!["report"];
    a.extend_from_slice(args);
    fushi(env, &a)
}

fn target<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no target {name} in {r:#}"))
}

/// A history written by hand, as the daemon would have: every figure is known in advance.
#[test]
fn a_scripted_history_reports_the_figures_it_was_written_with() {
    let env = Env::new(&config("[storage]\nprimary = \"data/primary\"\n"));
    std::fs::create_dir_all(env.data()).unwrap();
    let x = Some("collectors/x");
    let h = 3_600_000;
    let audit: String = [
        // Outside the window: not counted.
        line(2 * h, "supervisor.child.failed", x, json!({})),
        line(2 * h - 100, "supervisor.child.restarted", x, json!({})),
        line(600_000, "daemon.started", None, json!({})),
        line(599_000, "daemon.ready", None, json!({})),
        line(500_000, "supervisor.child.failed", x, json!({})),
        line(495_000, "supervisor.child.restarted", x, json!({})),
        line(400_000, "supervisor.child.failed", x, json!({})),
        line(390_000, "supervisor.child.failed", x, json!({})),
        line(390_000, "supervisor.child.escalated", x, json!({})),
        line(380_000, "supervisor.child.restarted", x, json!({})),
        line(
            300_000,
            "collector.storage.switch",
            Some("sync"),
            json!({"from": "up", "to": "down"}),
        ),
        line(
            288_000,
            "collector.storage.switch",
            Some("sync"),
            json!({"from": "down", "to": "up"}),
        ),
        line(200_000, "daemon.started", None, json!({})),
        line(
            200_000,
            "daemon.recovered",
            None,
            json!({"last_seen": at(203_000)}),
        ),
        line(199_000, "daemon.ready", None, json!({})),
        line(
            100_000,
            "control.action",
            None,
            json!({"action": "stop", "ok": true}),
        ),
        line(
            99_000,
            "control.action",
            None,
            json!({"action": "reload", "ok": true}),
        ),
    ]
    .concat();
    std::fs::write(env.data().join("audit.jsonl"), audit).unwrap();
    // The primary holds 1.1–1.5 of this node but 1.3, and 1.4 twice: one lost, one duplicated.
    let raw = env.data().join("primary/raw/s");
    std::fs::create_dir_all(&raw).unwrap();
    let lines: String = [1, 2, 4, 4, 5]
        .iter()
        .map(|&s| record("s", "test-node", 1, s))
        .chain([record("s", "other-node", 2, 1)])
        .collect();
    std::fs::write(raw.join("2026-12-01.jsonl"), lines).unwrap();

    let o = report(&env, &["--json", "--since", "1h"]);
    assert_eq!(
        code(&o),
        1,
        "a lost record fails the report\n{}",
        stderr(&o)
    );
    let r = json(&o);
    assert_eq!(r["node"], "test-node");
    assert_eq!(r["window_ms"], 3_600_000);
    // Two lines are older than the hour.
    assert_eq!(r["audit_events"], 15);
    let t = &r["total"];
    assert_eq!(
        (
            &t["failures"],
            &t["restarts"],
            &t["escalations"],
            &t["fatal_stops"]
        ),
        (&json!(3), &json!(2), &json!(1), &json!(0))
    );
    assert_eq!(t["mttr_ms"]["samples"], 2);
    assert_eq!(t["mttr_ms"]["p50"], 5_000);
    assert_eq!(t["mttr_ms"]["max"], 20_000);
    assert_eq!(r["actors"][0]["name"], "collectors/x");
    assert_eq!(r["daemon"]["starts"], 2);
    assert_eq!(r["daemon"]["crashes_recovered"], 1);
    assert_eq!(r["daemon"]["mttr_ms"]["max"], 4_000);
    assert_eq!(r["manual_interventions"]["total"], 2);
    assert_eq!(
        r["manual_interventions"]["by_action"],
        json!({"reload": 1, "stop": 1})
    );
    assert_eq!(r["storage"], json!({"switches": 2, "secondary_ms": 12_000}));
    let rec = &r["records"];
    assert_eq!(
        (
            &rec["durable"],
            &rec["forwarded"],
            &rec["pending"],
            &rec["lost"],
            &rec["duplicated"]
        ),
        (&json!(5), &json!(4), &json!(0), &json!(1), &json!(1)),
        "{rec:#}"
    );
    assert_eq!(rec["lost_ids"], json!(["s 1.3"]));
    // Every failure is averaged with the daemon's crash: (5 + 20 + 4) / 3 s.
    assert_eq!(target(&r, "mttr_mean_ms")["value"], 9_666);
    assert_eq!(target(&r, "mttr_mean_ms")["pass"], true);
    assert_eq!(target(&r, "records_lost")["pass"], false);
    assert_eq!(target(&r, "records_duplicated")["pass"], false);
    assert_eq!(target(&r, "manual_interventions")["pass"], false);
    assert_eq!(target(&r, "fatal_stops")["pass"], true);

    let text = stdout(&report(&env, &["--since", "1h"]));
    for want in [
        "records lost           0          1            FAIL",
        "fatal stops            0          0            pass",
        "reload 1, stop 1",
        "lost: s 1.3",
        "1 crash(es) recovered",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
}

/// A primary that cannot be read is said, and the targets that need it fail: never "0 lost"
/// about records nobody counted.
#[test]
fn an_unreadable_primary_fails_the_record_targets_saying_why() {
    let env = Env::new(&config("[storage]\nprimary = \"data/primary\"\n"));
    std::fs::create_dir_all(env.data()).unwrap();
    std::fs::File::create(env.data().join("audit.jsonl"))
        .unwrap()
        .write_all(line(1000, "daemon.started", None, json!({})).as_bytes())
        .unwrap();
    let o = report(&env, &["--json"]);
    assert_eq!(code(&o), 1);
    let r = json(&o);
    assert_eq!(r["records"]["lost"], Value::Null);
    let lost = target(&r, "records_lost");
    assert_eq!(lost["pass"], false);
    let note = lost["note"].as_str().unwrap();
    assert!(
        note.contains("not measured") && note.contains("primary"),
        "{note}"
    );
    // A config error is 78, naming the file.
    std::fs::write(env.config(), "[nod]\n").unwrap();
    let o = report(&env, &[]);
    assert_eq!(code(&o), 78, "{}", stderr(&o));
    assert!(stderr(&o).contains("supervisor.toml"), "{}", stderr(&o));
}

/// A real collector that crashes: the report's figures are the audit log's, its times to
/// recover the configured backoff, and the records the heartbeat made are all accounted for.
#[test]
fn a_crashing_collector_is_reported_as_its_audit_log_tells_it() {
    let env = Env::new(&config(
        r#"[storage]
primary = "data/primary"

[sync]
interval = "100ms"

[[collector]]
name = "crash"
kind = "command"
argv = ["false"]
backoff = ["300ms"]
jitter = "0s"
escalate_after = 3

[[collector]]
name = "beat"
kind = "heartbeat"
stream = "beat"
every = "50ms"
"#,
    ));
    let mut d = started(&env);
    d.wait_audit("supervisor.child.restarted", "collectors/crash", 4);
    assert!(code(&fushi(&env, &["stop", "crash"])) == 0);
    // Stopped: what the primary holds is all the journal had.
    wait_for("the heartbeat's records on the primary", || {
        (primary_lines(&env.data().join("primary"), "beat").len() >= 5).then_some(())
    });
    assert!(d.terminate().success(), "{}", d.log());
    let audit = env.audit();
    let count = |ev: &str| events(&audit, ev, "collectors/crash").len() as u64;

    let o = report(&env, &["--json"]);
    let r = json(&o);
    let crash = r["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "collectors/crash")
        .expect("the crashing collector is in the report");
    assert_eq!(crash["failures"], count("supervisor.child.failed"));
    assert_eq!(crash["restarts"], count("supervisor.child.restarted"));
    assert_eq!(crash["escalations"], count("supervisor.child.escalated"));
    assert!(crash["escalations"].as_u64().unwrap() >= 1, "{crash:#}");
    // Each recovery took the backoff and the start: not less, and not much more.
    let m = &crash["mttr_ms"];
    assert_eq!(m["samples"], crash["restarts"]);
    assert!(m["p50"].as_u64().unwrap() >= 300, "{m}");
    assert!(m["max"].as_u64().unwrap() < 3_000, "{m}");
    assert_eq!(r["manual_interventions"]["by_action"], json!({"stop": 1}));
    let rec = &r["records"];
    assert_eq!(rec["lost"], 0, "{rec:#}");
    assert_eq!(rec["duplicated"], 0, "{rec:#}");
    let n = |k: &str| rec[k].as_u64().unwrap();
    assert!(n("durable") >= 5, "{rec:#}");
    assert_eq!(n("forwarded") + n("pending"), n("durable"), "{rec:#}");
    assert_eq!(
        n("forwarded") as usize,
        primary_lines(&env.data().join("primary"), "beat").len()
    );
    // One manual order: only that target fails, so the report exits 1.
    assert_eq!(code(&o), 1);
    assert_eq!(target(&r, "manual_interventions")["value"], 1);
    assert_eq!(target(&r, "fatal_stops")["pass"], true);
}
