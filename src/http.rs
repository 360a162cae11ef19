//! The HTTP actor: serves `GET /health`, `GET /metrics` (Prometheus/OpenMetrics text) and `GET /status` on `control.http`.
//!
//! Like the control actor, `pre_start` binds the listener, so a port in use is a failed start that
//! the supervisor retries with backoff, and the accept loop lives in a task held by an
//! [`AbortOnDrop`]: when the actor dies the listener closes and every open connection is dropped
//! with it (connections are tasks of a `JoinSet` owned by the accept loop). Every answer is built
//! from the [`StatusBoard`] alone, so the endpoint never waits on another actor. With
//! `control.http_token` set, each request must carry `Authorization: Bearer <token>`, compared in
//! constant time.

use fushi_actors::accept::{self, Labels, Policy};
use fushi_actors::board::{health, Health};
use fushi_actors::board::{Metrics, PrimaryState, StatusBoard, StatusDoc, ACK_BUCKETS};
use fushi_actors::events;
use fushi_actors::AbortOnDrop;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait until one closes: the endpoint is for a scraper and
/// a probe.
const MAX_CONNECTIONS: usize = 64;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
pub struct HttpActor;

#[derive(Clone)]
pub struct HttpArgs {
    pub board: StatusBoard,
    /// `control.http`, e.g. `127.0.0.1:9752`.
    pub addr: String,
    /// `control.http_token`; `None` or empty: no authentication (loopback only, by config rule).
    pub token: Option<String>,
}

pub enum HttpMsg {}

pub struct HttpState {
    _server: AbortOnDrop,
}

/// What every connection needs.
struct Server {
    board: StatusBoard,
    token: Option<Vec<u8>>,
}

/// One answer, before it becomes a hyper response.
#[derive(Debug, PartialEq)]
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: String,
}

impl Reply {
    fn new(status: StatusCode, content_type: &'static str, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type,
            body: body.into(),
        }
    }

    fn json(status: StatusCode, v: serde_json::Value) -> Self {
        Self::new(status, JSON, format!("{v}\n"))
    }

    fn error(status: StatusCode, message: &str) -> Self {
        Self::json(status, json!({ "error": message }))
    }
}

/// Compares two secrets in time that does not depend on where they differ (`subtle`).
fn ct_eq(given: &[u8], expected: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    given.ct_eq(expected).into()
}

/// Whether an `Authorization` header value carries the bearer token.
fn authorized(header: Option<&[u8]>, token: &[u8]) -> bool {
    let Some(h) = header else {
        return false;
    };
    let (scheme, rest) = h.split_at(h.len().min(7));
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return false;
    }
    ct_eq(rest.trim_ascii(), token)
}

/// `GET /health`: 200 healthy / 200 degraded / 503 critical, with reasons unless green.
fn health_reply(doc: &StatusDoc) -> Reply {
    let (health, reasons) = health::assess(doc);
    let word = health.word();
    match health {
        Health::Green => Reply::json(StatusCode::OK, json!({ "status": word })),
        Health::Yellow => Reply::json(StatusCode::OK, json!({"status": word, "reasons": reasons})),
        Health::Red => Reply::json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": word, "reasons": reasons}),
        ),
    }
}

/// The ack-latency histogram exactly as the board counted it (its buckets are not cumulative).
#[derive(Debug)]
struct AckHistogram {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl AckHistogram {
    fn new(m: &Metrics) -> Self {
        let mut buckets: Vec<(f64, u64)> = ACK_BUCKETS
            .iter()
            .enumerate()
            .map(|(i, &b)| (b, m.ack_buckets.get(i).copied().unwrap_or(0)))
            .collect();
        buckets.push((
            f64::INFINITY,
            m.ack_buckets.get(ACK_BUCKETS.len()).copied().unwrap_or(0),
        ));
        Self {
            sum: m.ack_sum,
            count: m.ack_count,
            buckets,
        }
    }
}

impl EncodeMetric for AckHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

type ActorLabels = Vec<(String, String)>;

/// The `/metrics` text: a fresh registry built from one snapshot of the board.
pub fn exposition(doc: &StatusDoc, m: &Metrics) -> Result<String, std::fmt::Error> {
    use fushi_actors::board::ActorState;
    let mut reg = Registry::with_prefix("fushi");
    let restarts = Family::<ActorLabels, Counter>::default();
    let recovered = Family::<ActorLabels, Counter>::default();
    let up = Family::<ActorLabels, Gauge>::default();
    for a in &doc.actors {
        let l = vec![("actor".to_string(), a.name.clone())];
        restarts.get_or_create(&l).inc_by(a.restarts);
        recovered.get_or_create(&l).inc_by(a.recovered);
        up.get_or_create(&l)
            .set(i64::from(a.state == ActorState::Running));
    }
    reg.register(
        "actor_restarts",
        "Restarts of each actor (kept across daemon restarts)",
        restarts,
    );
    reg.register(
        "actor_recovered",
        "Times each actor came back to stable running after failing",
        recovered,
    );
    reg.register("actor_up", "1 when the actor is running", up);
    reg.register(
        "escalations",
        "Escalations (an actor failed escalate_after times in a row)",
        ConstCounter::new(m.escalations),
    );
    reg.register(
        "records_ingested",
        "Records made durable in the local journal (quarantined ones too)",
        ConstCounter::new(m.records_ingested),
    );
    reg.register(
        "records_forwarded",
        "Records written to the primary store by a sync",
        ConstCounter::new(m.records_forwarded),
    );
    reg.register(
        "storage_switches",
        "Changes of the primary store between up and down (the journal holds records while it is down)",
        ConstCounter::new(m.storage_switches),
    );
    if doc.leader.enabled {
        // Only with leader election: without it they could only ever say 0 and 1, and would
        // pass for figures that count.
        reg.register(
            "leader_failovers",
            "Leases this node took over from a stale holder since the daemon started",
            ConstCounter::new(doc.leader.failovers),
        );
        reg.register(
            "leader_is_leader",
            "1 while this node holds the lease and its collectors may run",
            ConstGauge::new(i64::from(doc.leader.role == "leader")),
        );
        reg.register(
            "leader_epoch",
            "The lease's epoch as this node last saw it",
            ConstGauge::new(doc.leader.epoch as i64),
        );
        if let Some(age) = doc.leader.renewed_at.as_deref().and_then(seconds_since) {
            reg.register_with_unit(
                "leader_renewal_age",
                "Time since the holder's lock was last seen to change (this node's own renewal while it leads)",
                Unit::Seconds,
                ConstGauge::new(age),
            );
        }
    }
    let per_collector = |counts: &std::collections::BTreeMap<String, u64>| {
        let family = Family::<ActorLabels, Counter>::default();
        for (name, n) in counts {
            family
                .get_or_create(&vec![("collector".to_string(), name.clone())])
                .inc_by(*n);
        }
        family
    };
    reg.register(
        "input_rejected",
        "Input lines a collector answered with an error (listen: bad JSON or UTF-8, too long, too deep); each is quarantined too",
        per_collector(&m.rejected),
    );
    reg.register(
        "input_quarantined",
        "Records a collector's input put on the _quarantine stream instead of its own",
        per_collector(&m.quarantined),
    );
    reg.register(
        "alerts_sent",
        "Alert deliveries that succeeded, per channel delivery (journald included)",
        ConstCounter::new(m.alerts_sent),
    );
    reg.register(
        "alerts_failed",
        "Alert deliveries given up after every retry (alert.failed)",
        ConstCounter::new(m.alerts_failed),
    );
    reg.register(
        "alerts_suppressed",
        "Alerts noise control held back: repeats, flapping, recoveries of nothing open",
        ConstCounter::new(m.alerts_suppressed),
    );
    let owed: u64 = doc.alerts.owed.values().map(|n| *n as u64).sum();
    reg.register(
        "alerts_owed",
        "Alert messages accepted and not yet delivered, over every channel",
        ConstGauge::new(owed as i64),
    );
    reg.register(
        "daemon_recovered",
        "Daemon starts after an unclean exit",
        ConstCounter::new(doc.daemon_recovered),
    );
    reg.register_with_unit(
        "journal",
        "Size of the local journal",
        Unit::Bytes,
        ConstGauge::new(doc.storage.journal_bytes as i64),
    );
    reg.register(
        "primary_up",
        "1 when the primary store is reachable",
        ConstGauge::new(i64::from(doc.storage.primary == PrimaryState::Up)),
    );
    reg.register(
        "sync_lag_records",
        "Records in the journal not yet on the primary",
        ConstGauge::new(doc.storage.lag_records as i64),
    );
    reg.register_with_unit(
        "ack_latency",
        "How long producers waited for their records to be durable",
        Unit::Seconds,
        AckHistogram::new(m),
    );
    slo_metrics(&mut reg, doc);
    let health = i64::from(doc.health.code());
    reg.register(
        "health",
        "Health: 0 green (healthy), 1 yellow (degraded), 2 red (critical)",
        ConstGauge::new(health),
    );
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg)?;
    Ok(out)
}

/// The SLO gates' gauges and counters, labelled by `slo` (only with `[[slo]]`).
fn slo_metrics(reg: &mut Registry, doc: &StatusDoc) {
    if doc.slos.is_empty() {
        return;
    }
    use std::sync::atomic::AtomicU64;
    let label = |name: &str| vec![("slo".to_string(), name.to_string())];
    let value = Family::<ActorLabels, Gauge<f64, AtomicU64>>::default();
    let threshold = Family::<ActorLabels, Gauge<f64, AtomicU64>>::default();
    let phase = Family::<ActorLabels, Gauge>::default();
    let promotable = Family::<ActorLabels, Gauge>::default();
    let incident = Family::<ActorLabels, Gauge>::default();
    let windows = Family::<ActorLabels, Counter>::default();
    for s in &doc.slos {
        let l = label(&s.name);
        if let Some(last) = &s.last {
            if let Some(v) = last.value {
                value.get_or_create(&l).set(v);
            }
            threshold.get_or_create(&l).set(last.threshold);
        }
        phase.get_or_create(&l).set(match s.phase.as_str() {
            "A" => 1,
            "B" => 2,
            _ => 3,
        });
        promotable.get_or_create(&l).set(i64::from(s.promotable));
        incident
            .get_or_create(&l)
            .set(i64::from(s.incident.is_some()));
        for verdict in ["ok", "warn", "violation", "no_data"] {
            let mut l = l.clone();
            l.push(("verdict".to_string(), verdict.to_string()));
            windows
                .get_or_create(&l)
                .inc_by(s.verdicts.get(verdict).copied().unwrap_or(0));
        }
    }
    reg.register("slo_value", "The last judged window's value of each SLO gate (p95 in the field's unit, error_rate in percent, lateness in seconds)", value);
    reg.register(
        "slo_threshold",
        "The threshold the last window was judged against",
        threshold,
    );
    reg.register(
        "slo_phase",
        "Each SLO gate's rollout phase: 1 A, 2 B, 3 C",
        phase,
    );
    reg.register(
        "slo_promotable",
        "1 when the gate has promote_after consecutive ok windows and may be promoted",
        promotable,
    );
    reg.register(
        "slo_incident_open",
        "1 while a violation's incident is open (until an ok window)",
        incident,
    );
    reg.register(
        "slo_windows",
        "Windows judged, per SLO gate and verdict (kept across restarts)",
        windows,
    );
}

/// The answer to one request; the body of the request is never read.
fn route(server: &Server, method: &Method, path: &str, auth: Option<&[u8]>) -> Reply {
    if let Some(token) = &server.token {
        if !authorized(auth, token) {
            return Reply::error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (Authorization: Bearer <control.http_token>)",
            );
        }
    }
    if method != Method::GET && method != Method::HEAD {
        return Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET is served here (and HEAD)",
        );
    }
    match path {
        "/health" => health_reply(&server.board.snapshot().0),
        "/status" => match serde_json::to_string(&server.board.snapshot().0) {
            Ok(body) => Reply::new(StatusCode::OK, JSON, body + "\n"),
            Err(e) => Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot encode status: {e}"),
            ),
        },
        "/metrics" => {
            let (doc, _) = server.board.snapshot();
            match exposition(&doc, &server.board.metrics()) {
                Ok(body) => Reply::new(StatusCode::OK, OPENMETRICS, body),
                Err(_) => Reply::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    TEXT,
                    "cannot encode metrics\n",
                ),
            }
        }
        _ => Reply::error(
            StatusCode::NOT_FOUND,
            "not found: try /health, /metrics or /status",
        ),
    }
}

fn respond<B>(server: &Server, req: &Request<B>) -> Response<Full<Bytes>> {
    let auth = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    let reply = route(server, req.method(), req.uri().path(), auth);
    let status = reply.status;
    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    h.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    if status == StatusCode::UNAUTHORIZED {
        h.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"fushi\""),
        );
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        h.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    resp
}

async fn serve_connection(stream: TcpStream, server: Arc<Server>) {
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let resp = respond(&server, &req);
        async move { Ok::<_, Infallible>(resp) }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = result {
        tracing::debug!(actor = "http", event = events::HTTP_CONNECTION_ERROR, error = %e, "connection ended with an error");
    }
}

/// Accepts by the daemon's accept policy until aborted; the connections die with it.
async fn accept_loop(listener: TcpListener, server: Arc<Server>) {
    let labels = Labels {
        actor: "http".into(),
        events: "http".into(),
    };
    accept::run(
        listener,
        Policy::new(MAX_CONNECTIONS),
        labels,
        move |stream| serve_connection(stream, server.clone()),
    )
    .await
}

impl Actor for HttpActor {
    type Msg = HttpMsg;
    type State = HttpState;
    type Arguments = HttpArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<HttpMsg>,
        args: HttpArgs,
    ) -> Result<HttpState, ActorProcessingErr> {
        let listener = TcpListener::bind(args.addr.as_str()).await.map_err(|e| {
            format!(
                "cannot listen for HTTP on {} (control.http): {e}; free the port, or set control.http to another address (\"\" disables HTTP)",
                args.addr
            )
        })?;
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| args.addr.clone());
        let token = args.token.filter(|t| !t.is_empty()).map(String::into_bytes);
        tracing::info!(actor = "http", event = events::HTTP_LISTENING, addr = %local,
            auth = token.is_some(), "HTTP endpoint ready: /health /metrics /status");
        let server = Arc::new(Server {
            board: args.board,
            token,
        });
        Ok(HttpState {
            _server: AbortOnDrop(tokio::spawn(accept_loop(listener, server))),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<HttpMsg>,
        msg: HttpMsg,
        _state: &mut HttpState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {}
    }

    /// Closes the listener before the actor counts as stopped: the replacement that
    /// `fushi restart http` starts right after binds the same port.
    async fn post_stop(
        &self,
        _myself: ActorRef<HttpMsg>,
        state: &mut HttpState,
    ) -> Result<(), ActorProcessingErr> {
        state._server.stop().await;
        Ok(())
    }
}

/// Seconds from an RFC 3339 time to now (0 for one in the future), for age gauges.
fn seconds_since(ts: &str) -> Option<f64> {
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()?;
    let now = time::OffsetDateTime::from(fushi_actors::clock::wall());
    Some((now - t).as_seconds_f64().max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fushi_actors::board::ActorState;

    fn board() -> StatusBoard {
        let b = StatusBoard::new("n", "prod", "c.toml");
        for name in ["status", "storage", "collectors/a"] {
            b.update(name, |a| a.state = ActorState::Running);
        }
        b
    }

    #[test]
    fn leader_metrics_show_only_with_leader_election_and_say_what_it_saw() {
        let b = board();
        let (doc, _) = b.snapshot();
        let text = exposition(&doc, &b.metrics()).unwrap();
        assert!(!text.contains("fushi_leader"), "{text}");
        b.update_leader(|l| {
            l.enabled = true;
            l.role = "leader".into();
            l.epoch = 4;
            l.failovers = 2;
            l.renewed_at = Some(fushi_actors::clock::rfc3339(
                fushi_actors::clock::wall() - std::time::Duration::from_secs(3),
            ));
        });
        let (doc, _) = b.snapshot();
        let text = exposition(&doc, &b.metrics()).unwrap();
        for line in [
            "fushi_leader_failovers_total 2",
            "fushi_leader_is_leader 1",
            "fushi_leader_epoch 4",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        let age: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("fushi_leader_renewal_age_seconds "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((3.0..60.0).contains(&age), "{age}");
    }

    fn server(b: &StatusBoard, token: Option<&str>) -> Server {
        Server {
            board: b.clone(),
            token: token.map(|t| t.as_bytes().to_vec()),
        }
    }

    fn body(r: &Reply) -> serde_json::Value {
        serde_json::from_str(&r.body).expect("a JSON body")
    }

    #[test]
    fn slo_gates_are_exported_per_slo() {
        use fushi_actors::board::{SloStatus, SloWindowLast};
        let b = board();
        let (doc, _) = b.snapshot();
        let text = exposition(&doc, &b.metrics()).unwrap();
        assert!(
            !text.contains("fushi_slo_"),
            "no gates, no SLO metrics: {text}"
        );
        b.set_slo(SloStatus {
            name: "save".into(),
            stream: "app/save".into(),
            kind: "p95".into(),
            metric: "latency_ms".into(),
            phase: "B".into(),
            promotable: false,
            good_windows: 0,
            promote_after: 8,
            current: None,
            last: Some(SloWindowLast {
                start: "a".into(),
                end: "b".into(),
                value: Some(2100.5),
                threshold: 2000.0,
                verdict: "violation".into(),
            }),
            incident: Some("save-1".into()),
            verdicts: [("ok".to_string(), 3), ("violation".to_string(), 1)]
                .into_iter()
                .collect(),
            too_late: 0,
        });
        let (doc, _) = b.snapshot();
        let text = exposition(&doc, &b.metrics()).unwrap();
        for line in [
            "fushi_slo_value{slo=\"save\"} 2100.5",
            "fushi_slo_threshold{slo=\"save\"} 2000.0",
            "fushi_slo_phase{slo=\"save\"} 2",
            "fushi_slo_promotable{slo=\"save\"} 0",
            "fushi_slo_incident_open{slo=\"save\"} 1",
            "fushi_slo_windows_total{slo=\"save\",verdict=\"ok\"} 3",
            "fushi_slo_windows_total{slo=\"save\",verdict=\"violation\"} 1",
            "fushi_slo_windows_total{slo=\"save\",verdict=\"warn\"} 0",
        ] {
            assert!(text.contains(line), "missing {line}:\n{text}");
        }
    }

    #[test]
    fn exposition_has_every_metric_family() {
        let b = board();
        b.update("collectors/a", |a| {
            a.restarts = 3;
            a.recovered = 1
        });
        b.update("collectors/b", |a| a.state = ActorState::Stopped);
        b.add_records("collectors/a", 5);
        b.count(fushi_actors::board::Counter::Escalations, 1);
        b.rejected("collectors/a", 2);
        b.quarantined("collectors/a", 3);
        b.observe_ack(Duration::from_micros(700), 4);
        b.observe_ack(Duration::from_secs(10), 1);
        b.update_storage(|s, _| {
            s.primary = PrimaryState::Up;
            s.journal_bytes = 123;
            s.lag_records = 7;
        });
        let (doc, _) = b.snapshot();
        let text = exposition(&doc, &b.metrics()).unwrap();
        for line in [
            "# TYPE fushi_actor_restarts counter",
            "fushi_actor_restarts_total{actor=\"collectors/a\"} 3",
            "fushi_actor_recovered_total{actor=\"collectors/a\"} 1",
            "fushi_actor_up{actor=\"collectors/a\"} 1",
            "fushi_actor_up{actor=\"collectors/b\"} 0",
            "fushi_escalations_total 1",
            "fushi_records_ingested_total 5",
            "fushi_records_forwarded_total 0",
            "fushi_storage_switches_total 0",
            "fushi_input_rejected_total{collector=\"collectors/a\"} 2",
            "fushi_input_quarantined_total{collector=\"collectors/a\"} 3",
            "fushi_alerts_sent_total 0",
            "fushi_alerts_failed_total 0",
            "fushi_alerts_suppressed_total 0",
            "fushi_alerts_owed 0",
            "fushi_daemon_recovered_total 0",
            "fushi_journal_bytes 123",
            "fushi_primary_up 1",
            "fushi_sync_lag_records 7",
            "# TYPE fushi_ack_latency_seconds histogram",
            "fushi_ack_latency_seconds_count 5",
            "fushi_ack_latency_seconds_bucket{le=\"0.0005\"} 0",
            "fushi_ack_latency_seconds_bucket{le=\"0.001\"} 4",
            "fushi_ack_latency_seconds_bucket{le=\"5.0\"} 4",
            "fushi_ack_latency_seconds_bucket{le=\"+Inf\"} 5",
            "# TYPE fushi_health gauge",
            "fushi_health 1",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        let sum = text
            .lines()
            .find_map(|l| l.strip_prefix("fushi_ack_latency_seconds_sum "))
            .unwrap();
        assert!(
            (sum.parse::<f64>().unwrap() - 10.0028).abs() < 1e-9,
            "{sum}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn health_answers_by_colour() {
        let b = board();
        let s = server(&b, None);
        let r = route(&s, &Method::GET, "/health", None);
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(body(&r), json!({"status": "healthy"}));

        b.update("collectors/a", |a| a.state = ActorState::Backoff);
        let r = route(&s, &Method::GET, "/health", None);
        assert_eq!(body(&r), json!({"status": "healthy"}), "within the grace");
        b.set_patience(Duration::ZERO);
        tokio::time::advance(Duration::from_millis(1)).await;
        let r = route(&s, &Method::GET, "/health", None);
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(body(&r)["status"], "degraded");
        assert_eq!(
            body(&r)["reasons"][0],
            "collectors/a is in backoff for longer than 0s"
        );

        b.update("collectors/a", |a| {
            a.escalated = true;
            a.consecutive_failures = 2
        });
        let r = route(&s, &Method::GET, "/health", None);
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(&r)["status"], "critical");
        assert_eq!(
            body(&r)["reasons"][0],
            "collectors/a escalated after 2 consecutive failures"
        );
    }

    #[test]
    fn status_is_the_status_document() {
        let b = board();
        let r = route(&server(&b, None), &Method::GET, "/status", None);
        assert_eq!(r.status, StatusCode::OK);
        let doc: StatusDoc = serde_json::from_str(&r.body).unwrap();
        assert_eq!(doc, b.snapshot().0);
    }

    #[test]
    fn unknown_paths_and_methods() {
        let b = board();
        let s = server(&b, None);
        assert_eq!(
            route(&s, &Method::GET, "/nope", None).status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&s, &Method::POST, "/health", None).status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            route(&s, &Method::HEAD, "/health", None).status,
            StatusCode::OK
        );
    }

    #[test]
    fn bearer_token_is_required_when_set() {
        let b = board();
        let s = server(&b, Some("s3cret"));
        let get =
            |auth: Option<&str>| route(&s, &Method::GET, "/health", auth.map(str::as_bytes)).status;
        assert_eq!(get(None), StatusCode::UNAUTHORIZED);
        assert_eq!(get(Some("Bearer wrong")), StatusCode::UNAUTHORIZED);
        assert_eq!(get(Some("Bearer s3cre")), StatusCode::UNAUTHORIZED);
        assert_eq!(get(Some("Bearer s3cret!")), StatusCode::UNAUTHORIZED);
        assert_eq!(get(Some("Basic s3cret")), StatusCode::UNAUTHORIZED);
        assert_eq!(get(Some("s3cret")), StatusCode::UNAUTHORIZED);
        assert_eq!(get(Some("Bearer s3cret")), StatusCode::OK);
        assert_eq!(get(Some("bearer  s3cret ")), StatusCode::OK);
        // Authentication comes before routing: nothing is revealed about paths or methods.
        assert_eq!(
            route(&s, &Method::POST, "/nope", None).status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abd", b"abc"));
        assert!(!ct_eq(b"ab", b"abc"));
        assert!(!ct_eq(b"abcd", b"abc"));
        assert!(!ct_eq(b"", b"abc"));
        assert!(ct_eq(b"", b""));
    }
}
