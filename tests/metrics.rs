//! `GET /metrics` counts what production did: records through a real `listen` collector (a bad line and a too-deep one among them) show as ingested, forwarded, rejected, quarantined and in the ack histogram, and a primary outage as storage switches.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use crate::util::*;

fn metrics_config(port: u16) -> String {
    format!(
        r#"[node]
id = "test-node"
data_dir = "data"

[control]
http = "127.0.0.1:{port}"
allow_inject = true

[supervisor]
shutdown_timeout = "2s"

[storage]
probe_interval = "50ms"

[sync]
interval = "20ms"

[[collector]]
name = "in"
kind = "listen"
stream = "test/k"
address = "unix:in.sock"
"#
    )
}

/// The body of `GET /metrics`, or None while nothing answers.
fn metrics(port: u16) -> Option<String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        conn,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// The value of the sample named exactly `series` (`name` or `name{labels}`).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Starts a daemon whose HTTP endpoint answers.
fn start() -> (Env, Daemon, u16) {
    start_on_free_port("http", metrics_config, |_| {})
}

#[test]
fn metrics_count_records_through_a_listen_collector_and_the_primary_switches() {
    let (env, mut d, port) = start();
    const GOOD: u64 = 40;
    let deep = format!("{}{}", "[".repeat(127), "]".repeat(127));
    let mut input = String::new();
    for k in 1..=GOOD / 2 {
        input.push_str(&format!("{{\"k\":{k}}}\n"));
    }
    // Every kind of bad input: not JSON, too deep, not an object, not UTF-8, too long.
    input.push_str("this is not JSON\n");
    input.push_str(&deep);
    input.push('\n');
    input.push_str("[1, 2]\n");
    let mut input = input.into_bytes();
    input.extend_from_slice(b"caf\xe9\n");
    input.extend_from_slice(&vec![b'x'; (1 << 20) + 1]);
    input.push(b'\n');
    for k in GOOD / 2 + 1..=GOOD {
        input.extend_from_slice(format!("{{\"k\":{k}}}\n").as_bytes());
    }
    const BAD: u64 = 5;
    let total = GOOD + BAD;

    let conn = wait_for("the listen socket", || {
        UnixStream::connect(env.path().join("in.sock")).ok()
    });
    conn.set_read_timeout(Some(TIMEOUT))
        .expect("a read timeout");
    (&conn).write_all(&input).expect("writing the lines");
    let mut r = BufReader::new(&conn);
    let mut errors = Vec::new();
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).expect("reading acks") > 0, "closed");
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON answer");
        if v.get("error").is_some() {
            errors.push(v["line"].as_u64().expect("the bad line's number"));
        } else if v["ack"].as_u64() == Some(total) {
            break;
        }
    }
    assert_eq!(
        errors,
        (GOOD / 2 + 1..=GOOD / 2 + BAD).collect::<Vec<_>>(),
        "every bad line answered"
    );

    // Counted where production does it, not by a test helper.
    let body = wait_for("every record forwarded", || {
        let body = metrics(port)?;
        (sample(&body, "fushi_records_forwarded_total")? >= total as f64).then_some(body)
    });
    let total = total as f64;
    assert_eq!(
        sample(&body, "fushi_records_forwarded_total"),
        Some(total),
        "{body}"
    );
    assert_eq!(
        sample(&body, "fushi_records_ingested_total"),
        Some(total),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "fushi_input_rejected_total{collector=\"collectors/in\"}"
        ),
        Some(BAD as f64),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "fushi_input_quarantined_total{collector=\"collectors/in\"}"
        ),
        Some(BAD as f64),
        "{body}"
    );
    // And in status, beside the collector.
    let status = json(&fushi(&env, &["status", "--json", "in"]));
    assert_eq!(status[0]["quarantined"], BAD, "{status}");
    assert_eq!(status[0]["records"], total, "{status}");
    assert_eq!(
        sample(&body, "fushi_ack_latency_seconds_count"),
        Some(total),
        "{body}"
    );
    assert!(
        sample(&body, "fushi_ack_latency_seconds_sum").is_some_and(|s| s > 0.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "fushi_storage_switches_total"),
        Some(0.0),
        "{body}"
    );
    assert!(
        !body.contains("leader_failovers"),
        "no leader election, so no failover counter: {body}"
    );

    // An outage and its end are two switches.
    for (verb, switches) in [("primary-down", 1.0), ("primary-up", 2.0)] {
        let out = Command::new(bin())
            .args(["inject", verb, "-c"])
            .arg(env.config())
            .env_remove("XDG_RUNTIME_DIR")
            .output()
            .expect("running fushi inject");
        assert!(out.status.success(), "{out:?}");
        wait_for(&format!("{switches} storage switches"), || {
            (sample(&metrics(port)?, "fushi_storage_switches_total")? == switches).then_some(())
        });
    }
    drop(conn);
    assert!(d.terminate().success());
}
