//! The http collector against a real local HTTP server (hyper on loopback): records land on the primary, a secret header never shows, a 503 burst restarts with backoff and `Retry-After` is honoured, arrays split, bad bodies fail saying why.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::*;

/// What the server saw of one request: when, its headers and its body.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The answer to the n-th request (from 0): status, extra headers, body, and how long to
/// wait before answering (a receiver that hangs).
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub after: Duration,
}

type Script = dyn Fn(usize) -> Answer + Send + Sync;

/// A hyper server on a loopback port, answering by `script`, on a runtime of its own.
pub struct Server {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    pub fn start(
        script: impl Fn(usize) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync + 'static,
    ) -> Self {
        Self::answering(move |n| {
            let (status, headers, body) = script(n);
            Answer {
                status,
                headers,
                body,
                after: Duration::ZERO,
            }
        })
    }

    /// A server whose every answer is `script`'s, body and delay included.
    pub fn answering(script: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let log = seen.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (log, script) = (log.clone(), script.clone());
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (log, script) = (log.clone(), script.clone());
                            async move {
                                let at = Instant::now();
                                let headers = req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.to_string(), v.to_str().unwrap_or("").to_string())
                                    })
                                    .collect();
                                let body = http_body_util::BodyExt::collect(req.into_body())
                                    .await
                                    .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                                    .unwrap_or_default();
                                let n = {
                                    let mut log = log.lock().unwrap();
                                    log.push(Seen { at, headers, body });
                                    log.len() - 1
                                };
                                let Answer {
                                    status,
                                    headers,
                                    body,
                                    after,
                                } = script(n);
                                tokio::time::sleep(after).await;
                                let mut resp = Response::new(Full::new(Bytes::from(body)));
                                *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                                for (k, v) in headers {
                                    resp.headers_mut().insert(k, v.parse().unwrap());
                                }
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server {
            addr,
            seen,
            _runtime: runtime,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// The `data` of every record of `stream` on the primary.
fn primary_data(env: &Env, stream: &str) -> Vec<Value> {
    primary_lines(&env.data().join("primary"), stream)
        .into_iter()
        .map(|l| l["data"].clone())
        .collect()
}

fn collector(extra: &str) -> String {
    config(&format!(
        "[storage]\nprobe_interval = \"100ms\"\n\n[sync]\ninterval = \"100ms\"\n\n{extra}"
    ))
}

#[test]
fn polled_records_land_on_the_primary_and_secret_headers_and_url_parts_never_show() {
    // The first answer is a failure, so that the URL shows in LAST ERROR, the audit and the log.
    let server = Server::start(|n| match n {
        0 => (500, vec![], "oops".into()),
        n => (200, vec![], format!("{{\"n\": {n}, \"price\": 1.5}}")),
    });
    let env = Env::new(&collector(&format!(
        r#"[[collector]]
name = "prices"
kind = "http"
url = "http://bob:urlpassword@{}/quote?symbol=X&api_key=querysecret"
every = "200ms"
backoff = ["100ms"]
jitter = "0s"
headers = {{ Authorization = "Bearer ${{FUSHI_TEST_TOKEN}}", X-Key = "@key.txt" }}
"#,
        server.addr
    )));
    std::fs::write(env.path().join("key.txt"), "filesecret\n").unwrap();
    let mut d = env.start_with(|c| {
        c.env("FUSHI_TEST_TOKEN", "envsecret");
    });
    let got = wait_for("three polls on the primary", || {
        let data = primary_data(&env, "prices");
        (data.len() >= 3).then_some(data)
    });
    let ns: Vec<u64> = got.iter().map(|v| v["n"].as_u64().unwrap()).collect();
    assert_eq!(ns[..3], [1, 2, 3], "each poll once, in order: {got:?}");
    assert_eq!(got[0]["price"], 1.5);
    let first = &server.seen()[0];
    let header = |name: &str| {
        first
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("authorization").as_deref(), Some("Bearer envsecret"));
    assert_eq!(header("x-key").as_deref(), Some("filesecret"));
    assert!(header("user-agent").is_some_and(|u| u.starts_with("fushi/")));

    // Where an operator or a log reader looks, the secrets are not.
    let status = fushi(&env, &["status", "prices"]);
    let status_json = fushi(&env, &["status", "--json"]);
    assert!(d.terminate().success());
    let places = [
        (
            "status.json",
            std::fs::read_to_string(env.data().join("status.json")).unwrap(),
        ),
        (
            "audit.jsonl",
            std::fs::read_to_string(env.data().join("audit.jsonl")).unwrap(),
        ),
        ("the daemon's log", d.log()),
        ("fushi status", stdout(&status)),
        ("fushi status --json", stdout(&status_json)),
    ];
    let masked = "GET http://bob:***@127.0.0.1:";
    assert!(
        places[1].1.contains(masked),
        "the failure names the URL, masked"
    );
    assert!(places[1]
        .1
        .contains("/quote?symbol=X&api_key=***: HTTP 500"));
    for (place, text) in places {
        for secret in ["envsecret", "filesecret", "urlpassword", "querysecret"] {
            assert!(!text.contains(secret), "{secret} shows in {place}:\n{text}");
        }
    }
}

#[test]
fn a_503_burst_restarts_with_backoff_says_why_and_retry_after_is_honoured() {
    // Two 503s asking for 2 s, then answers.
    let server = Server::start(|n| match n {
        0 | 1 => (503, vec![("retry-after", "2".into())], "busy".into()),
        n => (200, vec![], format!("{{\"n\": {n}}}")),
    });
    let env = Env::new(&collector(&format!(
        r#"[[collector]]
name = "api"
kind = "http"
url = "http://{}/"
every = "100ms"
poll_jitter = "0s"
backoff = ["100ms"]
jitter = "0s"
escalate_after = 10
"#,
        server.addr
    )));
    let mut d = env.start();
    let audit = d.wait_audit("supervisor.child.failed", "collectors/api", 1);
    let failed = events(&audit, "supervisor.child.failed", "collectors/api");
    let error = failed[0]["payload"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("HTTP 503 Service Unavailable (Retry-After 2s)"),
        "{failed:?}"
    );
    wait_for("a poll after the burst on the primary", || {
        (!primary_data(&env, "api").is_empty()).then_some(())
    });
    let seen = server.seen();
    assert!(seen.len() >= 3, "{seen:?}");
    // The backoff is 100 ms, but the server asked for 2 s: the restarted collector waited.
    for pair in seen[..3].windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(1900),
            "a request {gap:?} after a Retry-After of 2 s"
        );
    }
    let restarts = events(&env.audit(), "supervisor.child.restarted", "collectors/api").len();
    assert!(
        restarts >= 2,
        "each 503 is a failure the supervisor restarts"
    );
    assert!(d.terminate().success());
}

#[test]
fn an_array_splits_into_records_and_a_bad_body_fails_saying_what_it_is() {
    let list = Server::start(|n| match n {
        0 => (200, vec![], r#"[{"a": 1}, {"a": 2}, 3]"#.into()),
        _ => (200, vec![], "not json".into()),
    });
    let single = Server::start(|_| (200, vec![], "[1, 2]".into()));
    let env = Env::new(&collector(&format!(
        r#"[[collector]]
name = "list"
kind = "http"
url = "http://{list}/"
every = "100ms"
split = true
backoff = ["100ms"]
jitter = "0s"
escalate_after = 10

[[collector]]
name = "single"
kind = "http"
url = "http://{single}/"
every = "100ms"
backoff = ["100ms"]
jitter = "0s"
escalate_after = 10
"#,
        list = list.addr,
        single = single.addr
    )));
    let mut d = env.start();
    wait_for("the split records on the primary", || {
        let data = primary_data(&env, "list");
        (data.len() >= 2).then_some(())
    });
    let data = primary_data(&env, "list");
    assert_eq!(data[0]["a"], 1);
    assert_eq!(data[1]["a"], 2);
    wait_for("the bad bodies audited as failures", || {
        let audit = env.audit();
        let errors: Vec<String> = audit
            .iter()
            .filter(|e| e["event"] == "supervisor.child.failed")
            .filter_map(|e| e["payload"]["error"].as_str().map(String::from))
            .collect();
        (errors
            .iter()
            .any(|e| e.contains("the body is not valid JSON"))
            && errors
                .iter()
                .any(|e| e.contains("the body is a JSON array, not an object (set split = true")))
        .then_some(())
    });
    // The element that is not an object went to the quarantine, counted.
    let quarantined = wait_for("the quarantined element", || {
        primary_data(&env, "_quarantine")
            .into_iter()
            .find(|q| q["collector"] == "collectors/list")
    });
    assert_eq!(quarantined["line"], "3", "{quarantined}");
    assert!(d.terminate().success());
}
