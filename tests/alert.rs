//! Alerts reaching a person, against a real local HTTP receiver: templates filled, retries on 503, `Retry-After` on 429, repeats held back (also across `kill -9`), one recovered notice, a storm as one message, flapping held, a hung receiver slowing nothing, and the command and file channels.

use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::http_collector::{Answer, Seen, Server};
use crate::util::*;

fn ok() -> Answer {
    answer(200)
}

fn answer(status: u16) -> Answer {
    Answer {
        status,
        headers: vec![],
        body: String::new(),
        after: Duration::ZERO,
    }
}

/// A config with one webhook channel to `server` (path `/hooks/T0/SECRETPATH`, a chat
/// webhook's secret), `alert` keys added to `[alert]`, then `rest`.
fn with_webhook(server: &Server, alert: &str, channel: &str, rest: &str) -> String {
    config(&format!(
        r#"[alert]
group_wait = "0s"
retry = ["200ms", "400ms"]
{alert}

[[alert.channel]]
kind = "webhook"
url = "http://{}/hooks/T0/SECRETPATH"
min_interval = "10ms"
timeout = "2s"
{channel}

{rest}"#,
        server.addr
    ))
}

/// A command collector that fails at once, escalating at its 2nd failure.
fn crashing(name: &str) -> String {
    format!(
        r#"[[collector]]
name = "{name}"
kind = "command"
argv = ["false"]
backoff = ["100ms"]
jitter = "0s"
escalate_after = 2
"#
    )
}

fn text(seen: &Seen) -> String {
    let v: Value = serde_json::from_str(&seen.body).unwrap_or(Value::Null);
    v["text"].as_str().unwrap_or_default().to_string()
}

fn requests(server: &Server, n: usize, d: &Daemon) -> Vec<Seen> {
    wait_for_or(
        &format!("{n} webhook requests"),
        || {
            let s = server.seen();
            (s.len() >= n).then_some(s)
        },
        || d.log(),
    )
}

fn webhook_events<'a>(audit: &'a [Value], event: &str) -> Vec<&'a Value> {
    audit
        .iter()
        .filter(|e| e["event"] == event && e["payload"]["channel"] == "webhook")
        .collect()
}

fn wait_webhook(d: &Daemon, event: &str, n: usize) -> Vec<Value> {
    let data = d.data.clone();
    wait_for_or(
        &format!("{n} × {event} on the webhook channel"),
        || {
            let a = audit(&data);
            (webhook_events(&a, event).len() >= n).then_some(a)
        },
        || d.log(),
    )
}

#[test]
fn an_escalation_reaches_the_webhook_with_its_template_filled_and_its_secret_url_never_shows() {
    let server = Server::start(|_| (200, vec![], String::new()));
    let env = Env::new(&with_webhook(
        &server,
        r#"templates = { escalation = "{actor} on {node}: {failures} failures since {since}; last: {last_error} ({phase})" }"#,
        "",
        &crashing("crash"),
    ));
    let d = env.start();
    let seen = requests(&server, 1, &d);
    let t = text(&seen[0]);
    assert!(
        t.starts_with("collectors/crash on test-node: 2 failures since 20"),
        "{t}"
    );
    assert!(t.contains("; last: ") && !t.contains("{last_error}"), "{t}");
    assert!(t.ends_with("(-)"), "a placeholder without a value: {t}");
    let body: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "Slack's shape: {body}");
    assert!(seen[0]
        .header("x-fushi-alert-id")
        .is_some_and(|id| id.starts_with("test-node-")));
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    let a = wait_webhook(&d, "alert.sent", 1);
    assert_eq!(
        webhook_events(&a, "alert.sent")[0]["payload"]["attempts"],
        1
    );
    let text_of_audit = std::fs::read_to_string(env.data().join("audit.jsonl")).unwrap();
    assert!(!text_of_audit.contains("SECRETPATH"));
    assert!(!d.log().contains("SECRETPATH"), "{}", d.log());
}

#[test]
fn a_503_is_retried_after_each_step_and_a_receiver_that_never_recovers_is_given_up_saying_why() {
    let server = Server::answering(|n| if n < 2 { answer(503) } else { ok() });
    let env = Env::new(&with_webhook(&server, "", "", &crashing("crash")));
    let d = env.start();
    let a = wait_webhook(&d, "alert.sent", 1);
    assert_eq!(
        webhook_events(&a, "alert.sent")[0]["payload"]["attempts"],
        3
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        gaps[0] >= Duration::from_millis(200) && gaps[1] >= Duration::from_millis(400),
        "retried after 200 ms then 400 ms: {gaps:?}"
    );
    assert!(d.log().contains("alert delivery failed; retrying"));
    drop(d);

    let server = Server::answering(|_| answer(503));
    let env = Env::new(&with_webhook(&server, "", "", &crashing("crash")));
    let d = env.start();
    let a = wait_webhook(&d, "alert.failed", 1);
    let failed = webhook_events(&a, "alert.failed")[0];
    assert_eq!(failed["payload"]["attempts"], 3, "{failed}");
    let error = failed["payload"]["error"].as_str().unwrap();
    assert!(error.contains("HTTP 503"), "{error}");
    assert!(
        !error.contains("SECRETPATH") && error.contains("/***"),
        "the webhook's secret path is masked: {error}"
    );
    // Nothing is owed once given up (status.json follows within its 100 ms).
    wait_for_or(
        "status to show nothing owed",
        || {
            let s = env.status()?;
            s["alerts"]["owed"]["webhook"].is_null().then_some(())
        },
        || format!("{:?}", env.status()),
    );
}

#[test]
fn a_429_waits_as_long_as_retry_after_says_without_using_up_a_retry() {
    let server = Server::answering(|n| match n {
        0 | 1 => Answer {
            status: 429,
            headers: vec![("retry-after", "1".into())],
            body: "slow down".into(),
            after: Duration::ZERO,
        },
        _ => ok(),
    });
    let env = Env::new(
        &with_webhook(&server, "", "", &crashing("crash"))
            .replace(r#"retry = ["200ms", "400ms"]"#, r#"retry = ["100ms"]"#),
    );
    let d = env.start();
    let a = wait_webhook(&d, "alert.sent", 1);
    assert_eq!(
        webhook_events(&a, "alert.sent")[0]["payload"]["attempts"],
        3,
        "two 429s did not use up the one retry"
    );
    let seen = server.seen();
    for w in seen.windows(2) {
        assert!(
            w[1].at - w[0].at >= Duration::from_millis(990),
            "Retry-After: 1 honoured: {:?}",
            w[1].at - w[0].at
        );
    }
    assert!(webhook_events(&a, "alert.failed").is_empty());
}

#[test]
fn an_alert_accepted_before_a_kill_9_is_delivered_once_after_the_restart_and_its_repeat_is_held_back(
) {
    let up = Arc::new(AtomicBool::new(false));
    let is_up = up.clone();
    let server = Server::answering(move |_| {
        if is_up.load(Ordering::SeqCst) {
            ok()
        } else {
            answer(503)
        }
    });
    let cfg = with_webhook(
        &server,
        "",
        r#"events = ["escalation", "recovered"]"#,
        &crashing("crash"),
    )
    .replace(r#"retry = ["200ms", "400ms"]"#, r#"retry = ["1h"]"#);
    let env = Env::new(&cfg);
    let mut d = env.start();
    let first = requests(&server, 1, &d);
    let id = first[0].header("x-fushi-alert-id").unwrap().to_string();
    d.kill9();
    up.store(true, Ordering::SeqCst);

    let mut d = env.start();
    let a = wait_webhook(&d, "alert.sent", 1);
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].header("x-fushi-alert-id"), Some(id.as_str()));
    assert_eq!(text(&seen[1]), text(&first[0]), "the same message");
    assert_eq!(webhook_events(&a, "alert.sent").len(), 1);

    // The new incarnation's collector escalates again: the same key, within repeat_after.
    let a = d.wait_audit("alert.suppressed", "collectors/crash", 1);
    let held = events(&a, "alert.suppressed", "collectors/crash");
    assert_eq!(held[0]["payload"]["reason"], "repeat");
    assert_eq!(held[0]["payload"]["count"], 1);
    assert_eq!(server.seen().len(), 2, "held back, not sent");
    d.terminate();
}

#[test]
fn a_recovery_sends_one_notice_saying_how_long_it_lasted() {
    let server = Server::start(|_| (200, vec![], String::new()));
    let env = Env::new("");
    let ok_file = env.path().join("ok");
    env.write_config(&with_webhook(
        &server,
        "",
        "",
        &format!(
            r#"[[collector]]
name = "flaky"
kind = "command"
argv = ["sh", "-c", "test -f {} || exit 3; exec sleep 600"]
backoff = ["100ms"]
jitter = "0s"
escalate_after = 2
stable_after = "300ms"
"#,
            ok_file.display()
        ),
    ));
    let mut d = env.start();
    requests(&server, 1, &d);
    std::fs::write(&ok_file, "").unwrap();
    d.wait_audit("supervisor.child.recovered", "collectors/flaky", 1);
    let seen = requests(&server, 2, &d);
    let t = text(&seen[1]);
    assert!(
        t.starts_with("collectors/flaky on test-node recovered after "),
        "{t}"
    );
    assert!(t.contains("consecutive failures since 20"), "{t}");
    let a = wait_webhook(&d, "alert.sent", 2);
    assert_eq!(webhook_events(&a, "alert.sent").len(), 2);
    assert_eq!(server.seen().len(), 2, "one escalation, one notice");
    d.terminate();
}

#[test]
fn alerts_raised_within_group_wait_go_out_as_one_message_listing_the_actors() {
    let server = Server::start(|_| (200, vec![], String::new()));
    let env = Env::new(
        &with_webhook(
            &server,
            "",
            "",
            &format!("{}\n{}", crashing("a"), crashing("b")),
        )
        .replace(r#"group_wait = "0s""#, r#"group_wait = "2s""#),
    );
    let mut d = env.start();
    let a = d.wait_audit("supervisor.child.escalated", "collectors/b", 1);
    assert_eq!(
        events(&a, "supervisor.child.escalated", "collectors/a").len(),
        1
    );
    let seen = requests(&server, 1, &d);
    let t = text(&seen[0]);
    assert!(t.starts_with("fushi on test-node: 2 alerts ("), "{t}");
    assert!(
        t.contains("collectors/a") && t.contains("collectors/b"),
        "{t}"
    );
    assert_eq!(t.lines().count(), 3, "a headline and a line each: {t}");
    wait_webhook(&d, "alert.sent", 1);
    assert_eq!(server.seen().len(), 1);
    d.terminate();
}

#[test]
fn an_actor_that_flaps_is_reported_once_then_held_until_it_settles() {
    let server = Server::start(|_| (200, vec![], String::new()));
    let env = Env::new("");
    let steady = env.path().join("steady");
    env.write_config(&with_webhook(
        &server,
        "flap_count = 2\nflap_window = \"1m\"\nstable_after = \"1500ms\"",
        "",
        &format!(
            r#"[[collector]]
name = "flappy"
kind = "command"
argv = ["sh", "-c", "sleep 0.8; test -f {} || exit 3; exec sleep 600"]
backoff = ["100ms"]
jitter = "0s"
escalate_after = 1
stable_after = "200ms"
"#,
            steady.display()
        ),
    ));
    let mut d = env.start();
    // Each run outlives stable_after (a recovery) by 600 ms, so that a loaded machine still
    // sees each recovery before the next failure, then fails (an escalation).
    requests(&server, 5, &d);
    d.wait_audit("supervisor.child.escalated", "collectors/flappy", 5);
    let seen = server.seen();
    let texts: Vec<String> = seen.iter().map(text).collect();
    assert_eq!(texts.len(), 5, "{texts:#?}");
    assert!(
        texts[4].contains("is flapping: it escalated 3 times within 1m"),
        "{texts:#?}"
    );
    let a = d.wait_audit("alert.suppressed", "collectors/flappy", 2);
    assert!(events(&a, "alert.suppressed", "collectors/flappy")
        .iter()
        .all(|e| e["payload"]["reason"] == "flapping"));

    std::fs::write(&steady, "").unwrap();
    let seen = requests(&server, 6, &d);
    let t = text(&seen[5]);
    assert!(t.contains("has been stable for 1.5s after flapping"), "{t}");
    d.terminate();
}

#[test]
fn a_receiver_that_hangs_slows_neither_restarts_nor_the_other_channels() {
    let server = Server::answering(|_| Answer {
        after: Duration::from_secs(60),
        ..ok()
    });
    let env = Env::new("");
    let file = env.path().join("alerts.jsonl");
    let cfg = with_webhook(
        &server,
        "",
        &format!(
            "\n[[alert.channel]]\nkind = \"file\"\npath = \"{}\"\n",
            file.display()
        ),
        &crashing("crash"),
    )
    .replace(r#"timeout = "2s""#, r#"timeout = "60s""#);
    env.write_config(&cfg);
    let mut d = env.start();
    requests(&server, 1, &d);
    let line: Value = wait_for("the file channel's line", || {
        let t = std::fs::read_to_string(&file).ok()?;
        serde_json::from_str(t.lines().next()?).ok()
    });
    assert!(line["text"]
        .as_str()
        .unwrap()
        .contains("collectors/crash on test-node failed 2 times"));
    assert_eq!(line["status"], "firing");
    let before = events(
        &env.audit(),
        "supervisor.child.restarted",
        "collectors/crash",
    )
    .len();
    d.wait_audit(
        "supervisor.child.restarted",
        "collectors/crash",
        before + 10,
    );
    assert_eq!(
        server.seen().len(),
        1,
        "the webhook's one request still hangs"
    );
    wait_for_or(
        "status to show the one message the webhook owes",
        || (env.status()?["alerts"]["owed"]["webhook"] == 1).then_some(()),
        || format!("{:?}", env.status()),
    );
    assert!(webhook_events(&env.audit(), "alert.sent").is_empty());
    let out = fushi(&env, &["status"]);
    assert!(
        stdout(&out).contains("alerts owed: webhook 1"),
        "fushi status says what the outbox still owes:\n{}",
        stdout(&out)
    );
    d.terminate();
}

#[test]
fn the_command_channel_gets_the_message_in_its_environment_and_on_stdin_with_secrets_masked() {
    let env = Env::new("");
    let out = env.path().join("out");
    let cfg = config(&format!(
        r#"[alert]
group_wait = "0s"
templates = {{ escalation = "{{actor}} failed; token tok-secret-1234 must not show" }}

[[alert.channel]]
kind = "command"
argv = ["sh", "-c", "printf '%s|%s|%s\n' \"$FUSHI_ALERT_TEXT\" \"$FUSHI_ALERT_KIND\" \"$FUSHI_ALERT_STATUS\" >> {out}.env; cat >> {out}.json; echo >> {out}.json"]

[[collector]]
name = "crash"
kind = "command"
argv = ["false"]
backoff = ["100ms"]
jitter = "0s"
escalate_after = 2
env = {{ API_TOKEN = "tok-secret-1234" }}
"#,
        out = out.display()
    ));
    env.write_config(&cfg);
    let mut d = env.start();
    d.wait_audit("alert.sent", "", 2);
    let envs = wait_for("the command's output", || {
        std::fs::read_to_string(out.with_extension("env")).ok()
    });
    assert_eq!(
        envs.lines().next().unwrap(),
        "collectors/crash failed; token *** must not show|escalation|firing"
    );
    let json: Value = serde_json::from_str(
        std::fs::read_to_string(out.with_extension("json"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["alerts"][0]["actor"], "collectors/crash");
    assert!(!json.to_string().contains("tok-secret-1234"), "{json}");
    assert!(
        !d.log().contains("tok-secret-1234"),
        "the journald channel masks too"
    );
    d.terminate();
}

#[test]
fn an_unknown_placeholder_is_a_config_error_naming_its_line() {
    let env = Env::new(&config(
        "[alert]\ntemplates = { escalation = \"{actor} {colour}\" }\n",
    ));
    let out = env.command().output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("supervisor.toml:9:"), "{err}");
    assert!(
        err.contains("alert.templates.escalation") && err.contains("unknown placeholder {colour}"),
        "{err}"
    );
}

#[test]
fn check_says_whether_each_alert_file_and_program_can_be_used() {
    let env = Env::new(&config(
        r#"[[alert.channel]]
kind = "file"
path = "alerts.jsonl"

[[alert.channel]]
kind = "file"
name = "archive"
path = "no-such-dir/alerts.jsonl"

[[alert.channel]]
kind = "command"
argv = ["fushi-no-such-pager"]

[[alert.channel]]
kind = "command"
name = "logger"
shell = true
argv = ["page-me | logger"]
"#,
    ));
    let out = fushi(&env, &["check"]);
    let text = stdout(&out);
    assert_eq!(code(&out), 1, "{text}");
    let line = |what: &str| {
        text.lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what} line:\n{text}"))
            .to_string()
    };
    assert!(line("file alert.channel[0]").starts_with("ok"), "{text}");
    let missing = line("file alert.channel[1]");
    assert!(
        missing.starts_with("FAIL") && missing.contains("no-such-dir does not exist"),
        "{text}"
    );
    let pager = line("program alert.channel[2]");
    assert!(
        pager.starts_with("FAIL") && pager.contains("fushi-no-such-pager"),
        "{text}"
    );
    assert!(
        line("program alert.channel[3]").contains("shell = true"),
        "{text}"
    );
}
