//! SLO gates (SPEC §6): `fushi slo --dry-run` on fixtures (ok, warn, violation, no_data, lateness, bad lines), and the analyzer in a real daemon: a violation's rollback runs exactly once, also across a `kill -9` in the middle of it, stepping back one phase only; promotion after N good windows.

use serde_json::{json, Value};
use std::path::Path;

use crate::util::*;

const P95: &str = r#"[[slo]]
name = "save"
stream = "app/save"
kind = "p95"
field = "latency_ms"
window = "15m"
late_after = "5m"
phase = "B"
thresholds = { A = 2500.0, B = 2000.0, C = 1800.0 }
"#;

/// A raw line of the primary for `app/save`.
fn line(seq: u64, ts: &str, data: Value) -> String {
    json!({"id": format!("1.{seq}"), "epoch": 1, "seq": seq, "ts": ts, "stream": "app/save",
           "node": "pc", "data": data})
    .to_string()
}

fn fixture(dir: &Path, name: &str, lines: &[String]) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    path.display().to_string()
}

fn dry_run(env: &Env, fixture: &str) -> (i32, Value) {
    let o = fushi(env, &["slo", "--dry-run", "--fixture", fixture, "--json"]);
    (code(&o), json(&o))
}

fn verdicts(doc: &Value) -> Vec<(Value, String)> {
    doc["slos"][0]["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["value"].clone(),
                w["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn dry_run_judges_fixtures_ok_warn_violation_no_data_and_lateness() {
    let env = Env::new(&config(P95));
    let at = |m: u32, s: u32| format!("2026-11-21T10:{m:02}:{s:02}.000Z");
    // 10:00 window: twenty values 1..=20 × 50 ms: nearest-rank p95 is the 19th, 950 → ok.
    let mut lines: Vec<String> = (1..=20)
        .map(|i| line(i, &at(1, i as u32), json!({"latency_ms": i * 50})))
        .collect();
    // 10:15: 1700 is 85 % of B's 2000 → warn. 10:30: nothing → no_data. 10:45: 2100 → violation.
    lines.push(line(21, &at(16, 0), json!({"latency_ms": 1700})));
    lines.push(line(22, &at(46, 0), json!({"latency_ms": 2100})));
    let f = fixture(env.path(), "mixed.jsonl", &lines);
    let (rc, doc) = dry_run(&env, &f);
    assert_eq!(rc, 1, "a violating window fails the dry run: {doc}");
    let slo = &doc["slos"][0];
    assert_eq!(
        (&slo["name"], &slo["stream"], &slo["kind"], &slo["phase"]),
        (
            &json!("save"),
            &json!("app/save"),
            &json!("p95"),
            &json!("B")
        )
    );
    assert_eq!(
        verdicts(&doc),
        vec![
            (json!(950.0), "ok".to_string()),
            (json!(1700.0), "warn".into()),
            (Value::Null, "no_data".into()),
            (json!(2100.0), "violation".into()),
        ]
    );
    let w0 = &slo["windows"][0];
    let keys: Vec<&str> = w0.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["start", "end", "value", "threshold", "verdict"]);
    assert_eq!(
        (&w0["start"], &w0["end"], &w0["threshold"]),
        (
            &json!("2026-11-21T10:00:00.000Z"),
            &json!("2026-11-21T10:15:00.000Z"),
            &json!(2000.0)
        )
    );

    // Records the gate cannot measure are counted, not silently dropped.
    let f = fixture(
        env.path(),
        "odd.jsonl",
        &[
            line(1, &at(1, 1), json!({"latency_ms": 100})),
            line(2, &at(1, 2), json!({"latency_ms": "slow"})),
            line(3, &at(1, 3), json!({"other": 1})),
        ],
    );
    let (_, doc) = dry_run(&env, &f);
    assert_eq!(doc["slos"][0]["windows"][0]["skipped"], 2, "{doc}");
    let o = fushi(&env, &["slo", "--dry-run", "--fixture", &f]);
    assert!(
        stdout(&o).contains("2 records without a numeric latency_ms skipped"),
        "{}",
        stdout(&o)
    );

    // All within the threshold: exit 0. --phase judges another phase's threshold.
    let f = fixture(
        env.path(),
        "ok.jsonl",
        &[line(1, &at(1, 0), json!({"latency_ms": 1900}))],
    );
    let (rc, doc) = dry_run(&env, &f);
    assert_eq!((rc, verdicts(&doc)[0].1.as_str()), (0, "warn"));
    let o = fushi(
        &env,
        &[
            "slo",
            "--dry-run",
            "--fixture",
            &f,
            "--phase",
            "A",
            "--json",
        ],
    );
    assert_eq!(json(&o)["slos"][0]["windows"][0]["verdict"], "ok");
    assert_eq!(json(&o)["slos"][0]["phase"], "A");

    // Lateness: a record stored after one 6 minutes newer arrived at least 6 minutes late.
    let f = fixture(
        env.path(),
        "late.jsonl",
        &[
            line(1, &at(7, 0), json!({"latency_ms": 100})),
            line(2, &at(0, 30), json!({"latency_ms": 100})),
        ],
    );
    let o = fushi(&env, &["slo", "--dry-run", "--fixture", &f]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("warn") && stdout(&o).contains("collection delay: 1 of 2 records arrived up to 390s after their ts (late_after 300s)"),
        "{}",
        stdout(&o)
    );

    // An empty fixture, or one without the stream: no_data, no crash.
    let f = fixture(env.path(), "empty.jsonl", &[]);
    let (rc, doc) = dry_run(&env, &f);
    assert_eq!(rc, 0);
    assert_eq!(verdicts(&doc), vec![(Value::Null, "no_data".to_string())]);

    // A bad line names the file and its line.
    let f = fixture(
        env.path(),
        "bad.jsonl",
        &[line(1, &at(1, 0), json!({})), "{\"id\": 1".into()],
    );
    let o = fushi(&env, &["slo", "--dry-run", "--fixture", &f]);
    assert_eq!(code(&o), 2, "bad input is told apart from a violation (1)");
    assert!(
        stderr(&o).contains("bad.jsonl:2: not a record line"),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("at line 1 column"),
        "serde's own line count is not the file's: {}",
        stderr(&o)
    );
    let o = fushi(&env, &["slo", "--dry-run", "--fixture", &f, "--phase", "D"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("use A, B or C"), "{}", stderr(&o));
    let f = fixture(
        env.path(),
        "badts.jsonl",
        &[line(1, "10 o'clock", json!({}))],
    );
    let o = fushi(&env, &["slo", "--dry-run", "--fixture", &f]);
    assert!(
        stderr(&o).contains("badts.jsonl:1: ts \"10 o'clock\" is not an RFC 3339"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn error_rate_and_lateness_gates_in_a_dry_run() {
    let env = Env::new(&config(
        r#"[[slo]]
name = "errors"
stream = "app/save"
kind = "error_rate"
predicate = "error"
window = "15m"
thresholds = { A = 1.0 }

[[slo]]
name = "delay"
stream = "app/save"
kind = "lateness"
window = "15m"
late_after = "10m"
thresholds = { A = 180.0 }
"#,
    ));
    // 1 error in 200 records: 0.5 % of A's 1 % → ok; the last record comes 200 s late.
    let mut lines: Vec<String> = (0..200u64)
        .map(|i| {
            let ts = format!("2026-11-21T10:{:02}:{:02}.000Z", 1 + i / 60, i % 60);
            line(i + 1, &ts, json!({"error": i == 7}))
        })
        .collect();
    lines.push(line(201, "2026-11-21T10:01:00.000Z", json!({})));
    let f = fixture(env.path(), "f.jsonl", &lines);
    let (rc, doc) = dry_run(&env, &f);
    assert_eq!(rc, 1, "{doc}");
    let errors = &doc["slos"][0]["windows"][0];
    assert_eq!(
        (&errors["verdict"], errors["value"].as_f64().unwrap()),
        (&json!("ok"), 100.0 / 201.0)
    );
    let delay = &doc["slos"][1];
    assert_eq!(delay["kind"], "lateness");
    assert_eq!(
        (
            &delay["windows"][0]["value"],
            &delay["windows"][0]["verdict"]
        ),
        (&json!(199.0), &json!("violation"))
    );
}

/// A command collector writing `{"latency_ms": ms}` five times a second on app/save, and a
/// p95 gate over it with 1 s windows.
fn daemon_config(ms: u32, phase: &str, rollback: &str, promote_after: u32) -> String {
    config(&format!(
        r#"[[collector]]
name = "saver"
kind = "command"
stream = "app/save"
argv = ["sh", "-c", "while true; do echo '{{\"latency_ms\": {ms}}}'; sleep 0.2; done"]

[[slo]]
name = "save"
stream = "app/save"
kind = "p95"
field = "latency_ms"
window = "1s"
late_after = "300ms"
phase = "{phase}"
thresholds = {{ A = 10000.0, B = 100.0, C = 100.0 }}
promote_after = {promote_after}
rollback_timeout = "30s"
{rollback}
"#
    ))
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_violation_runs_its_rollback_once_also_across_a_kill_9_and_steps_back_one_phase() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("rollback.log");
    // The rollback notes its run, then takes its time: the daemon is killed while it runs.
    let rollback = format!(
        "rollback = [\"sh\", \"-c\", \"echo \\\"$FUSHI_SLO $FUSHI_SLO_INCIDENT $FUSHI_SLO_PHASE $FUSHI_SLO_PHASE_TO\\\" >> {}; sleep 3\"]",
        log.display()
    );
    let env = Env::new(&daemon_config(5000, "C", &rollback, 3));
    let mut d = started(&env);
    let audit = d.wait_audit("slo.violation", "analyzer", 1);
    let v = events(&audit, "slo.violation", "analyzer")[0]["payload"].clone();
    assert_eq!(
        (
            &v["incident"],
            &v["phase_from"],
            &v["phase_to"],
            &v["rollback_required"]
        ),
        (&json!("save-1"), &json!("C"), &json!("B"), &json!(true)),
        "{v}"
    );
    wait_for("the rollback to start", || {
        (!lines_of(&log).is_empty()).then_some(())
    });
    d.kill9();
    assert_eq!(lines_of(&log), ["save save-1 C B"]);

    // The restart finds the intent without an outcome: said, audited, not run again.
    let mut d = env.start();
    let audit = d.wait_audit("slo.rollback", "analyzer", 1);
    let r = events(&audit, "slo.rollback", "analyzer")[0]["payload"].clone();
    assert_eq!(
        (&r["outcome"], &r["rerun"], &r["incident"]),
        (&json!("interrupted"), &json!(false), &json!("save-1")),
        "{r}"
    );
    // The windows go on violating in B: the same incident, no second step back, no rerun.
    let before = events(&audit, "slo.violation", "analyzer").len();
    let audit = d.wait_audit("slo.violation", "analyzer", before + 3);
    let later: Vec<_> = events(&audit, "slo.violation", "analyzer")[before..].to_vec();
    for v in &later {
        assert_eq!(
            (&v["payload"]["incident"], &v["payload"]["phase"]),
            (&json!("save-1"), &json!("B")),
            "{v}"
        );
    }
    assert_eq!(events(&audit, "slo.rollback", "analyzer").len(), 1);
    assert_eq!(
        lines_of(&log),
        ["save save-1 C B"],
        "the rollback ran exactly once"
    );
    let o = fushi(&env, &["slo", "--json"]);
    assert_eq!(code(&o), 1, "an open incident: {}", stdout(&o));
    let s = &json(&o)["slos"][0];
    assert_eq!(
        (&s["phase"], &s["incident"]["id"]),
        (&json!("B"), &json!("save-1"))
    );
    assert_eq!(s["incident"]["rollback"]["interrupted"], true);
    let status = env.status().unwrap();
    assert_eq!(status["slos"][0]["incident"], "save-1");
    d.terminate();
    let o = fushi(&env, &["slo"]);
    assert_eq!(code(&o), 7, "{}", stderr(&o));
    assert!(stderr(&o).contains("not running"), "{}", stderr(&o));
}

#[test]
fn a_completed_rollback_is_audited_with_its_exit_code_and_good_windows_make_a_gate_promotable() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("rollback.log");
    let rollback = format!(
        "rollback = [\"sh\", \"-c\", \"echo \\\"$FUSHI_SLO_INCIDENT\\\" >> {}; exit 4\"]",
        log.display()
    );
    // B violates at 5000; stepped back to A (threshold 10000) the windows are ok. The gate's
    // alerts go to a file channel, as a person's pager would get them.
    let alerts = dir.path().join("alerts.jsonl");
    let env = Env::new(&daemon_config(5000, "B", &rollback, 2).replace(
        "[[slo]]",
        &format!(
            "[alert]\ngroup_wait = \"0s\"\n\n[[alert.channel]]\nkind = \"file\"\npath = \"{}\"\nevents = [\"slo\"]\n\n[[slo]]",
            alerts.display()
        ),
    ));
    let mut d = started(&env);
    let audit = d.wait_audit("slo.rollback", "analyzer", 1);
    let r = events(&audit, "slo.rollback", "analyzer")[0]["payload"].clone();
    assert_eq!(
        (&r["exit_code"], &r["outcome"]),
        (&json!(4), &json!("failed")),
        "{r}"
    );
    assert!(
        r["error"].as_str().unwrap().contains("exited with code 4"),
        "{r}"
    );
    // Ok in A closes the incident; two of them make it promotable (audited once as such).
    let audit = d.wait_audit("slo.ok", "analyzer", 2);
    let ok = events(&audit, "slo.ok", "analyzer");
    assert_eq!(
        (&ok[1]["payload"]["promotable"], &ok[1]["payload"]["phase"]),
        (&json!(true), &json!("A")),
        "{:?}",
        ok
    );
    assert_eq!(lines_of(&log), ["save-1"]);
    let texts = wait_for(
        "the incident, its rollback and ok again on the alert channel",
        || {
            let texts: Vec<String> = lines_of(&alerts)
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .map(|v| v["text"].as_str().unwrap_or_default().to_string())
                .collect();
            (texts.len() >= 3).then_some(texts)
        },
    );
    assert!(
        texts[0]
            .starts_with("SLO save on test-node is violated: incident save-1, rollback required"),
        "{texts:#?}"
    );
    assert!(
        texts[1].starts_with("SLO save on test-node rolled back") && texts[1].contains("exit"),
        "{texts:#?}"
    );
    assert!(
        texts[2].starts_with("SLO save on test-node is ok again"),
        "{texts:#?}"
    );
    let o = fushi(&env, &["slo", "--json"]);
    let s = &json(&o)["slos"][0];
    assert_eq!(
        (code(&o), &s["promotable"], &s["incident"]),
        (0, &json!(true), &Value::Null),
        "{s}"
    );
    let windows = s["windows"].as_array().unwrap();
    assert!(
        windows
            .iter()
            .any(|w| w["verdict"] == "violation" && w["threshold"] == 100.0),
        "{s}"
    );
    assert!(
        windows
            .iter()
            .any(|w| w["verdict"] == "ok" && w["threshold"] == 10000.0),
        "{s}"
    );
    let o = fushi(&env, &["slo"]);
    assert!(
        stdout(&o).contains("save  phase A") && stdout(&o).contains("promotable"),
        "{}",
        stdout(&o)
    );

    let o = fushi(&env, &["slo", "promote", "save"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("promoted to phase B"), "{}", stdout(&o));
    let audit = d.wait_audit("slo.promote", "analyzer", 1);
    let p = &events(&audit, "slo.promote", "analyzer")[0]["payload"];
    assert_eq!((&p["from"], &p["to"]), (&json!("A"), &json!("B")));
    // Not promotable again until B has its own good windows (it has none: 5000 > 100).
    let o = fushi(&env, &["slo", "promote", "save"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("not promotable yet"), "{}", stderr(&o));
    let o = fushi(&env, &["slo", "promote", "nosuch"]);
    assert!(
        stderr(&o).contains("no SLO named \"nosuch\" (known: save)"),
        "{}",
        stderr(&o)
    );
    d.terminate();
}

#[test]
fn slo_without_gates_says_so() {
    let env = Env::new(&config(""));
    let mut d = started(&env);
    let o = fushi(&env, &["slo"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("config has no [[slo]]"),
        "{}",
        stderr(&o)
    );
    d.terminate();
}
