//! Benchmark: an escalation's way to a webhook (outbox push → POST received, p50/p99) beside a bare POST to the same receiver, and zero-backoff restart latency with the alert path hung beside it answering, in one run.
//!
//! **Escalation → POST.** A real [`AlertActor`] (fsynced outbox in a scratch directory,
//! `group_wait = 0`, one webhook channel without a rate limit) on the daemon's runtime; per
//! sample the bench pushes an `Escalation` for a fresh actor (so noise control lets each
//! through), as a supervisor does, and a hyper receiver on a thread of its own notes when the
//! POST arrives. Baseline: the same receiver, a bare `reqwest` POST of the same size from the
//! same runtime — the floor of HTTP on loopback; the difference is the outbox's fsync and the
//! actor's hops.
//!
//! **Restart latency with a hung receiver.** The restart benchmark's tree (one zero-backoff
//! child that crashes on demand, `support/restart.rs`) whose every crash escalates
//! (`escalate_after = 1`, `stable_after` 1 ms), its alerts going to a real alert actor with a
//! webhook channel; once to a receiver that answers at once, once to one that holds every
//! request for a minute. The rounds alternate.
//!
//! Knobs: `ALERT_BENCH_SAMPLES` (200), `ALERT_BENCH_RESTARTS` per round (1000),
//! `ALERT_BENCH_ROUNDS` (3), `FUSHI_BENCH_DIR`.

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures real time, beside its baseline measured the same way"
)]

// The daemon's allocator comes with it; of its other helpers this bench uses a few.
#[allow(dead_code)]
mod support;

use fushi_actors::alert::channel::{Format, Kind};
use fushi_actors::alert::message::Wording;
use fushi_actors::alert::noise::NoiseConfig;
use fushi_actors::alert::{
    Alert, AlertActor, AlertArgs, AlertOutbox, AlertSettings, ChannelSpec, JournaldSpec,
};
use fushi_actors::audit::AuditLog;
use fushi_actors::board::StatusBoard;
use fushi_actors::supervisor::RestartPolicy;
use http_body_util::Full;
use hyper::body::Bytes;
use ractor::Actor;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::restart::{drive, percentile, totals, us, Ours};
use support::{env_num, scratch};

/// A hyper receiver on a runtime of its own that reports each request's arrival (and its
/// body) and answers after `hold`.
struct Receiver {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

/// What the receiver saw, for the bench's task on the daemon's runtime to await.
struct Arrivals(tokio::sync::mpsc::UnboundedReceiver<(Instant, String)>);

impl Receiver {
    fn start(hold: Duration) -> (Self, Arrivals) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("building the receiver's runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("binding the receiver");
        let addr = listener.local_addr().expect("the receiver's address");
        let (tx, arrivals) = tokio::sync::mpsc::unbounded_channel();
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let tx = tx.clone();
                            async move {
                                let body = http_body_util::BodyExt::collect(req.into_body())
                                    .await
                                    .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                                    .unwrap_or_default();
                                let _ = tx.send((Instant::now(), body));
                                tokio::time::sleep(hold).await;
                                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                    Bytes::new(),
                                )))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (Self { addr, _rt: rt }, Arrivals(arrivals))
    }
}

impl Arrivals {
    /// The next arrival whose body contains `needle`.
    async fn wait(&mut self, needle: &str) -> Instant {
        loop {
            let (at, body) = tokio::time::timeout(Duration::from_secs(10), self.0.recv())
                .await
                .expect("no POST reached the receiver within 10 s")
                .expect("the receiver stopped");
            if body.contains(needle) {
                return at;
            }
        }
    }
}

fn settings(dir: &Path, url: String) -> Arc<AlertSettings> {
    let wording = Wording {
        node: "bench".into(),
        templates: BTreeMap::new(),
        stable_after_ms: 600_000,
    };
    Arc::new(AlertSettings {
        dir: dir.to_path_buf(),
        noise: NoiseConfig {
            repeat_after_ms: 1_800_000,
            flap_count: 3,
            flap_window_ms: 1_800_000,
            stable_after_ms: 600_000,
        },
        group_wait: Duration::ZERO,
        retry: vec![Duration::from_secs(5)],
        io_timeout: Duration::from_secs(10),
        journald: JournaldSpec::default(),
        channels: vec![ChannelSpec {
            name: "webhook".into(),
            kind: Kind::Webhook {
                url,
                format: Format::Slack,
                headers: BTreeMap::new(),
            },
            events: Vec::new(),
            wording,
            timeout: Duration::from_secs(120),
            min_interval: Duration::ZERO,
        }],
        masker: Default::default(),
    })
}

async fn alert_actor(dir: &Path, url: String, outbox: AlertOutbox) {
    let args = AlertArgs {
        outbox,
        audit: AuditLog::memory("bench"),
        board: StatusBoard::new("bench", "prod", "bench.toml"),
        settings: settings(dir, url),
    };
    Actor::spawn(None, AlertActor, args)
        .await
        .expect("spawning the alert actor");
}

fn escalation(actor: String) -> Alert {
    Alert::Escalation {
        actor,
        failures: 4,
        last_error: Some("exit status 1".into()),
        since: "2026-12-01T00:00:00.000Z".into(),
    }
}

fn line(name: &str, v: &[u64]) {
    println!(
        "{name}: n {} p50 {:.0} µs p99 {:.0} µs max {:.0} µs",
        v.len(),
        us(percentile(v, 0.5)),
        us(percentile(v, 0.99)),
        us(percentile(v, 1.0))
    );
}

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        return ExitCode::SUCCESS;
    }
    let samples = env_num("ALERT_BENCH_SAMPLES", 200).max(1) as usize;
    let restarts = env_num("ALERT_BENCH_RESTARTS", 1000).max(1) as usize;
    let rounds = env_num("ALERT_BENCH_ROUNDS", 3).max(1) as usize;
    let rt = fushi_actors::runtime::build().expect("building the daemon's runtime");
    let root = scratch("alert");

    // Escalation → POST received, and a bare POST beside it.
    let (receiver, mut arrivals) = Receiver::start(Duration::ZERO);
    let url = format!("http://{}/hook", receiver.addr);
    let dir = root.path().join("a");
    let (ours, bare) = drive(&rt, async move {
        let outbox = AlertOutbox::default();
        alert_actor(&dir, url.clone(), outbox.clone()).await;
        let client = reqwest::Client::new();
        let (mut ours, mut bare) = (Vec::new(), Vec::new());
        for i in 0..samples {
            let actor = format!("bench/{i}");
            let pushed = Instant::now();
            outbox.push(escalation(actor.clone()));
            let at = arrivals.wait(&format!("{actor} on")).await;
            ours.push(at.duration_since(pushed).as_nanos() as u64);

            let body = serde_json::json!({"text": format!("bare/{i} on bench failed 4 times in a row since 2026-12-01T00:00:00.000Z (last error: exit status 1); still retrying")}).to_string();
            let sent = Instant::now();
            let post = client.post(&url).body(body).send();
            let needle = format!("bare/{i} on");
            let (resp, at) = tokio::join!(post, arrivals.wait(&needle));
            resp.expect("the bare POST");
            bare.push(at.duration_since(sent).as_nanos() as u64);
        }
        (ours, bare)
    });
    println!("escalation → webhook POST received ({samples} escalations, each a fresh actor):");
    line("  ours (outbox fsync + actor + POST)", &ours);
    line("  bare reqwest POST, same receiver  ", &bare);
    println!(
        "  ratio p50 {:.2}×, p99 {:.2}×",
        percentile(&ours, 0.5) as f64 / percentile(&bare, 0.5) as f64,
        percentile(&ours, 0.99) as f64 / percentile(&bare, 0.99) as f64
    );

    // Restart latency with the alert path answering, then hung, alternating.
    let policy = RestartPolicy {
        backoff: vec![Duration::ZERO],
        jitter: Duration::ZERO,
        escalate_after: 1,
        stable_after: Duration::from_millis(1),
        give_up_after: 0,
    };
    let (answering, _) = Receiver::start(Duration::ZERO);
    let (hung, _) = Receiver::start(Duration::from_secs(60));
    let (mut fast, mut held) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for (name, r, out) in [
            ("answering", &answering, &mut fast),
            ("hung", &hung, &mut held),
        ] {
            let outbox = AlertOutbox::default();
            let dir = root.path().join(format!("{name}-{round}"));
            let url = format!("http://{}/hook", r.addr);
            let tree = drive(&rt, {
                let (outbox, policy) = (outbox.clone(), policy.clone());
                async move {
                    alert_actor(&dir, url, outbox.clone()).await;
                    Ours::start(true, policy, outbox).await
                }
            });
            let (tree, got) = drive(&rt, tree.run(50, restarts, Duration::from_millis(2)));
            drive(&rt, tree.stop());
            out.extend(totals(&got));
        }
        println!(
            "round {}: restart p50 answering {:.1} µs, hung {:.1} µs",
            round + 1,
            us(percentile(&fast, 0.5)),
            us(percentile(&held, 0.5))
        );
    }
    println!("zero-backoff restart latency, every crash escalating to a webhook channel:");
    line("  receiver answering       ", &fast);
    line("  receiver hung for a minute", &held);
    println!(
        "  ratio hung/answering p50 {:.2}×, p99 {:.2}×",
        percentile(&held, 0.5) as f64 / percentile(&fast, 0.5) as f64,
        percentile(&held, 0.99) as f64 / percentile(&fast, 0.99) as f64
    );
    ExitCode::SUCCESS
}
