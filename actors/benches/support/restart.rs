//! The restart harness the restart benchmarks share: a supervisor with one zero-backoff child that crashes on demand, and the crash → replacement-answers latency of each restart.

#![allow(
    dead_code,
    reason = "every bench includes support/ whole; only the restart benches use this"
)]

use fushi_actors::alert::AlertOutbox;
use fushi_actors::audit::AuditLog;
use fushi_actors::board::StatusBoard;
use fushi_actors::supervisor::{
    ChildSpec, RestartPolicy, Strategy, SupervisorActor, SupervisorArgs, SupervisorMsg, TreeContext,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The zero-backoff policy of the restart benchmark: never escalates, never stable.
pub fn zero_backoff() -> RestartPolicy {
    RestartPolicy {
        backoff: vec![Duration::ZERO],
        jitter: Duration::ZERO,
        escalate_after: u32::MAX,
        stable_after: Duration::from_secs(24 * 3600),
        give_up_after: 0,
    }
}

pub enum ChildMsg {
    Crash,
    Ping(RpcReplyPort<Instant>),
}

/// The supervised child; every incarnation reports to the bench through its arguments.
#[derive(Clone)]
pub struct BenchChild;

#[derive(Clone)]
pub struct ChildArgs {
    /// Each incarnation's ref and the instant its `pre_start` ran.
    pub ready: mpsc::UnboundedSender<(ActorRef<ChildMsg>, Instant)>,
    /// Nanoseconds since `base` at which the last crash happened.
    pub crash_at: Arc<AtomicU64>,
    pub base: Instant,
}

impl Actor for BenchChild {
    type Msg = ChildMsg;
    type State = ChildArgs;
    type Arguments = ChildArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ChildMsg>,
        args: ChildArgs,
    ) -> Result<ChildArgs, ActorProcessingErr> {
        args.ready.send((myself, Instant::now()))?;
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<ChildMsg>,
        msg: ChildMsg,
        state: &mut ChildArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ChildMsg::Crash => {
                let at = state.base.elapsed().as_nanos() as u64;
                state.crash_at.store(at, Ordering::Release);
                Err("crash".into())
            }
            ChildMsg::Ping(reply) => {
                let _ = reply.send(Instant::now());
                Ok(())
            }
        }
    }
}

/// One restart, split in phases (ns): crash → replacement's start (`pre_start` / `init/1`),
/// start → the bench holds the new ref, bench holds it → ping handled.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub to_start: u64,
    pub to_bench: u64,
    pub to_ping: u64,
}

impl Sample {
    pub fn total(&self) -> u64 {
        self.to_start + self.to_bench + self.to_ping
    }
}

/// Our supervisor tree, kept alive across rounds.
pub struct Ours {
    pub sup: ActorRef<SupervisorMsg>,
    pub sup_task: JoinHandle<()>,
    pub child: ActorRef<ChildMsg>,
    pub ready: mpsc::UnboundedReceiver<(ActorRef<ChildMsg>, Instant)>,
    pub crash_at: Arc<AtomicU64>,
    pub base: Instant,
    /// Holds the audit file of `RESTART_BENCH_AUDIT=file`.
    _audit_dir: Option<tempfile::TempDir>,
}

impl Ours {
    /// A supervisor with one `policy` child, its alerts to `alerts` (the alert actor's outbox,
    /// or one that no actor drains).
    pub async fn start(file_audit: bool, policy: RestartPolicy, alerts: AlertOutbox) -> Self {
        let (ready_tx, mut ready) = mpsc::unbounded_channel();
        let crash_at = Arc::new(AtomicU64::new(0));
        let base = Instant::now();
        let args = ChildArgs {
            ready: ready_tx,
            crash_at: crash_at.clone(),
            base,
        };
        let spec = ChildSpec::actor("child", BenchChild, args).with_policy(policy);
        let (audit, audit_dir) = if file_audit {
            let dir = tempfile::tempdir().expect("creating a temporary directory");
            let log = AuditLog::open(&dir.path().join("audit.jsonl"), "bench")
                .expect("opening the audit file");
            (log, Some(dir))
        } else {
            (AuditLog::memory("bench"), None)
        };
        let ctx = TreeContext {
            board: StatusBoard::new("bench", "prod", "bench.toml"),
            audit,
            alerts,
        };
        let sup_args = SupervisorArgs {
            path: String::new(),
            strategy: Strategy::OneForOne,
            children: vec![spec],
            ctx,
            gate: None,
        };
        let (sup, sup_task) = SupervisorActor::spawn(None, SupervisorActor, sup_args)
            .await
            .expect("spawning the supervisor");
        let (child, _) = ready.recv().await.expect("first child never started");
        Self {
            sup,
            sup_task,
            child,
            ready,
            crash_at,
            base,
            _audit_dir: audit_dir,
        }
    }

    /// `warmup` unrecorded restarts, then `samples` recorded ones, `spacing` apart.
    pub async fn run(
        mut self,
        warmup: usize,
        samples: usize,
        spacing: Duration,
    ) -> (Self, Vec<Sample>) {
        let mut out = Vec::with_capacity(samples);
        for i in 0..warmup + samples {
            self.child.cast(ChildMsg::Crash).expect("casting Crash");
            let (next, started) = tokio::time::timeout(Duration::from_secs(5), self.ready.recv())
                .await
                .expect("no replacement child within 5 s")
                .expect("ready channel closed");
            let got = Instant::now();
            let handled = next
                .call(ChildMsg::Ping, None)
                .await
                .expect("sending Ping")
                .expect("replacement died before answering Ping");
            let crashed = self.base + Duration::from_nanos(self.crash_at.load(Ordering::Acquire));
            if i >= warmup {
                out.push(Sample {
                    to_start: started.duration_since(crashed).as_nanos() as u64,
                    to_bench: got.duration_since(started).as_nanos() as u64,
                    to_ping: handled.duration_since(got).as_nanos() as u64,
                });
            }
            self.child = next;
            tokio::time::sleep(spacing).await;
        }
        (self, out)
    }

    pub async fn stop(self) {
        self.sup.stop(None);
        self.sup_task.await.expect("supervisor task");
    }
}

/// Runs `fut` to completion as a task of its own, as the OTP bench process is a process of its
/// own: a current-thread runtime polls the future given to `block_on` only between rounds of its
/// tasks, which would put the bench behind the supervisor's bookkeeping.
pub fn drive<F>(rt: &Runtime, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(rt.spawn(fut)).expect("bench task")
}

/// Nearest-rank percentile.
pub fn percentile(values: &[u64], p: f64) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

pub fn totals(samples: &[Sample]) -> Vec<u64> {
    samples.iter().map(Sample::total).collect()
}
