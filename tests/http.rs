//! The HTTP endpoint seen from outside: /health, /metrics, /status over a plain TCP client, the bearer token, loopback binding and a port in use.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use crate::util::*;

/// A config with HTTP on `addr` (and `control` lines after it), quick restarts, no escalation
/// of the daemon's own actors; `extra` follows (collectors).
fn http_config(addr: &str, control: &str, extra: &str) -> String {
    format!(
        r#"[node]
id = "test-node"
data_dir = "data"

[control]
http = "{addr}"
{control}

[supervisor]
shutdown_timeout = "2s"
backoff = ["100ms"]
jitter = "0s"
escalate_after = 1000

{extra}"#
    )
}

/// Starts a daemon with HTTP on a free loopback port.
fn start(control: &str, extra: &str) -> (Env, Daemon, u16) {
    start_on_free_port(
        "http",
        |port| http_config(&format!("127.0.0.1:{port}"), control, extra),
        |_| {},
    )
}

#[derive(Debug)]
struct Resp {
    status: u16,
    /// Header lines, names lower-cased.
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// One raw HTTP/1.1 request; the server closes the connection after answering it.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
) -> std::io::Result<Resp> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\r\n"
    )?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)?;
    let text = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    let mut lines = head.lines();
    let status_line = lines.next().expect("a status line");
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().expect("a status code");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Resp {
        status,
        headers,
        body: body.to_string(),
    })
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn get(port: u16, path: &str) -> Resp {
    request(loopback(port), "GET", path, None).expect("GET")
}

/// One sample of the text exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus/OpenMetrics text format strictly enough to catch a malformed line:
/// every sample belongs to a family declared by `# TYPE`, and `# EOF` ends the text.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "{text}");
    for line in &lines[..lines.len() - 1] {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap(), parts.next().expect("a metric name"));
            match kind {
                "TYPE" => {
                    let t = parts.next().expect("a type");
                    assert!(
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "summary",
                            "untyped",
                            "unknown",
                            "info"
                        ]
                        .contains(&t),
                        "{line}"
                    );
                    types.insert(name.to_string(), t.to_string());
                }
                "HELP" | "UNIT" => {}
                _ => panic!("unexpected comment {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                let labels = body
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').expect("label=value");
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .expect("a quoted label value");
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                (name, labels)
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        let family = ["_total", "_bucket", "_sum", "_count", "_created"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.contains_key(*f)))
            .unwrap_or(name);
        assert!(types.contains_key(family), "no # TYPE for {line}");
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

fn value(samples: &[Sample], name: &str, actor: Option<&str>) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.get("actor").map(String::as_str) == actor)
        .map(|s| s.value)
}

/// The addresses (hex, as the kernel writes them) listening on `port`, IPv4 and IPv6.
fn listening_on(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // st 0A is LISTEN.
            if cols.len() < 4 || cols[3] != "0A" {
                continue;
            }
            if let Some((addr, p)) = cols[1].split_once(':') {
                if u16::from_str_radix(p, 16) == Ok(port) {
                    out.push(addr.to_string());
                }
            }
        }
    }
    out
}

/// This machine's address on its default route, if it has one that is not loopback.
fn outward_ip() -> Option<IpAddr> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    // A UDP connect sends nothing; it only picks the route (192.0.2.0/24 is TEST-NET-1).
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn health_status_and_metrics_when_green_on_loopback_only() {
    let (env, mut d, port) = start("", "");
    let health = wait_for("healthy", || {
        let r = get(port, "/health");
        (r.status == 200 && r.json()["status"] == "healthy").then_some(r)
    });
    assert_eq!(health.json(), serde_json::json!({"status": "healthy"}));
    assert!(
        health
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{health:?}"
    );

    // /status is the status document: the same keys as status.json, this node, green.
    let status = get(port, "/status");
    assert_eq!(status.status, 200);
    let doc = status.json();
    for key in ["node", "health", "actors", "storage", "sync"] {
        assert!(doc.get(key).is_some(), "/status lacks {key}: {doc}");
    }
    assert_eq!(doc["node"], "test-node");
    assert_eq!(doc["health"], "green");
    let on_disk = wait_for("status.json", || env.status());
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&doc), keys(&on_disk));
    let http = doc["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "http")
        .expect("the http actor is in the tree");
    assert_eq!(http["state"], "running");

    // /metrics parses and has the families.
    let m = get(port, "/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.header("content-type")
            .is_some_and(|c| c.contains("openmetrics-text")),
        "{m:?}"
    );
    let samples = parse_exposition(&m.body);
    assert_eq!(value(&samples, "fushi_actor_up", Some("http")), Some(1.0));
    assert_eq!(value(&samples, "fushi_health", None), Some(0.0));
    for name in [
        "fushi_escalations_total",
        "fushi_records_ingested_total",
        "fushi_journal_bytes",
        "fushi_primary_up",
        "fushi_sync_lag_records",
        "fushi_daemon_recovered_total",
        "fushi_ack_latency_seconds_count",
    ] {
        assert!(value(&samples, name, None).is_some(), "{name} missing");
    }

    // Anything else: 404; a method other than GET: 405.
    let r = get(port, "/nope");
    assert_eq!(r.status, 404, "{r:?}");
    let r = request(loopback(port), "POST", "/health", None).unwrap();
    assert_eq!(r.status, 405, "{r:?}");
    assert!(
        r.header("allow").is_some_and(|a| a.contains("GET")),
        "{r:?}"
    );

    // Bound to loopback only: the kernel lists 127.0.0.1 and nothing else on the port…
    assert_eq!(listening_on(port), ["0100007F"], "listeners on {port}");
    // …and the machine's other address does not answer.
    if let Some(ip) = outward_ip() {
        let r = TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(2));
        assert!(r.is_err(), "reachable on {ip}:{port}");
    }
    assert!(d.terminate().success());
}

#[test]
fn escalated_actor_makes_health_critical_and_shows_in_metrics() {
    let (_env, mut d, port) = start(
        "",
        r#"[[collector]]
name = "crash"
kind = "command"
argv = ["false"]
backoff = ["100ms"]
jitter = "0s"
escalate_after = 2
"#,
    );
    let health = wait_for("critical health", || {
        let r = get(port, "/health");
        (r.status == 503).then_some(r)
    });
    let h = health.json();
    assert_eq!(h["status"], "critical", "{h}");
    let reasons: Vec<&str> = h["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("collectors/crash escalated")),
        "{reasons:?}"
    );

    let m = get(port, "/metrics");
    assert_eq!(m.status, 200);
    let samples = parse_exposition(&m.body);
    let restarts = value(
        &samples,
        "fushi_actor_restarts_total",
        Some("collectors/crash"),
    )
    .expect("the crashing collector's restart counter");
    assert!(restarts >= 1.0, "{restarts}");
    assert_eq!(value(&samples, "fushi_escalations_total", None), Some(1.0));
    assert_eq!(value(&samples, "fushi_health", None), Some(2.0));
    assert_eq!(value(&samples, "fushi_actor_up", Some("http")), Some(1.0));
    assert!(samples.iter().any(|s| s.name == "fushi_actor_up"
        && s.labels.get("actor").map(String::as_str) == Some("collectors/crash")));

    let doc = get(port, "/status").json();
    assert_eq!(doc["health"], "red");
    assert!(d.terminate().success());
}

#[test]
fn token_protected_endpoint_wants_the_bearer_token() {
    let (_env, mut d, port) = start("http_token = \"s3cret-token\"", "");
    let addr = loopback(port);
    let r = request(addr, "GET", "/health", None).unwrap();
    assert_eq!(r.status, 401, "{r:?}");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")),
        "{r:?}"
    );
    for wrong in [
        "Bearer s3cret-tokem",
        "Bearer s3cret",
        "Basic s3cret-token",
        "s3cret-token",
    ] {
        let r = request(addr, "GET", "/status", Some(wrong)).unwrap();
        assert_eq!(r.status, 401, "{wrong}: {r:?}");
    }
    let r = request(addr, "GET", "/metrics", Some("Bearer s3cret-token")).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    parse_exposition(&r.body);
    wait_for("healthy with the token", || {
        let r = request(addr, "GET", "/health", Some("Bearer s3cret-token")).ok()?;
        (r.status == 200 && r.json()["status"] == "healthy").then_some(())
    });
    assert!(d.terminate().success());
}

#[test]
fn port_in_use_restarts_the_http_actor_with_backoff_while_the_rest_runs() {
    let holder = TcpListener::bind("127.0.0.1:0").expect("binding a port to hold");
    let addr = holder.local_addr().unwrap();
    let env = Env::new(&http_config(&addr.to_string(), "", ""));
    let mut d = env.start();
    let audit = d.wait_audit("supervisor.child.failed", "http", 2);
    for f in events(&audit, "supervisor.child.failed", "http") {
        let error = f["payload"]["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&addr.to_string()) && error.contains("control.http"),
            "the failure names the address: {f}"
        );
    }
    let scheduled = events(&audit, "supervisor.child.restart_scheduled", "http");
    assert!(!scheduled.is_empty());
    assert_eq!(scheduled[0]["payload"]["delay_ms"], 100, "{}", scheduled[0]);

    // Everything else runs meanwhile, and the status says why http does not (status.json is
    // written asynchronously: wait until it has caught up with the failures).
    let name = |s: &Value, n: &str| -> Option<Value> {
        s["actors"]
            .as_array()?
            .iter()
            .find(|a| a["name"] == n)
            .cloned()
    };
    let status = wait_for("the rest of the tree running, http failing", || {
        let s = env.status()?;
        let http = name(&s, "http")?;
        let others_up = s["actors"]
            .as_array()?
            .iter()
            .filter(|a| a["name"] != "http")
            .all(|a| a["state"] == "running");
        let says_why = http["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(&addr.to_string()));
        (others_up && says_why).then_some(s)
    });
    let http = name(&status, "http").unwrap();
    assert_ne!(http["state"], "running", "{http}");
    assert!(http["failures"].as_u64().unwrap() >= 1, "{http}");

    // Once the port is free, the next restart binds it and the endpoint answers.
    drop(holder);
    d.wait_audit("supervisor.child.restarted", "http", 1);
    wait_for("healthy over HTTP", || {
        let r = request(addr, "GET", "/health", None).ok()?;
        (r.status == 200 && r.json()["status"] == "healthy").then_some(())
    });
    assert!(d.terminate().success());
}

#[test]
fn restart_http_rebinds_its_port_without_a_failure() {
    let (env, mut d, port) = start("", "");
    for n in 1..=3 {
        let out = fushi(&env, &["restart", "http"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        d.wait_audit("supervisor.child.restarted", "http", n);
        assert_eq!(get(port, "/health").status, 200, "after restart {n}");
    }
    let http = json(&fushi(&env, &["status", "--json", "http"]));
    assert_eq!(http[0]["state"], "running", "{http}");
    assert_eq!(
        http[0]["failures"], 0,
        "a restart never found its port in use: {http}"
    );
    assert!(events(&env.audit(), "supervisor.child.failed", "http").is_empty());
    assert!(d.terminate().success());
}
