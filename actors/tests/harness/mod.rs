//! The supervisor tests' harness: a scriptable child actor that records what happens to it, and when, on tokio's paused clock.
//!
//! Every incarnation of a [`TestChild`] takes the next [`Mode`] from its [`Ctl`] script (then the
//! script's tail mode forever) and records `Start`, `Fail`, `SelfStop`, `Stop` (its `post_stop`) and
//! `Killed` (a hanging handler dropped by a kill) into a shared [`Recorder`], stamped with the
//! paused clock's time since the test began. Tests compare those stamps with exact durations.

#![allow(dead_code)] // each test binary uses a different part of the harness

use fushi_actors::alert::{Alert, AlertOutbox};
use fushi_actors::audit::{AuditEvent, AuditLog};
use fushi_actors::board::{ActorState, ActorStatus, StatusBoard};
use fushi_actors::supervisor::{
    ChildInfo, ChildSpec, RestartPolicy, Strategy, SupervisorActor, SupervisorArgs, SupervisorMsg,
    TreeContext,
};
use ractor::{call, Actor, ActorCell, ActorProcessingErr, ActorRef};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The default policy (5 s, 10 s, 15 s; escalate after 4; stable after 60 s) without jitter.
pub fn exact_policy() -> RestartPolicy {
    RestartPolicy {
        jitter: Duration::ZERO,
        ..RestartPolicy::default()
    }
}

/// The differences between consecutive instants.
pub fn gaps(at: &[Duration]) -> Vec<Duration> {
    at.windows(2).map(|w| w[1] - w[0]).collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What happened to a test child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// `pre_start` ran (also when it then fails).
    Start,
    /// The child is about to fail (error or panic), in `pre_start` or in a handler.
    Fail,
    /// The child stops itself normally.
    SelfStop,
    /// `post_stop` ran (a graceful stop).
    Stop,
    /// A hanging handler was dropped: the child was killed.
    Killed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rec {
    /// Paused-clock time since the recorder was made.
    pub at: Duration,
    pub who: String,
    pub what: What,
}

/// The shared, time-stamped log every test child writes to.
#[derive(Clone)]
pub struct Recorder {
    t0: Instant,
    log: Arc<Mutex<Vec<Rec>>>,
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            t0: Instant::now(),
            log: Arc::default(),
        }
    }

    /// Time since the recorder was made.
    pub fn now(&self) -> Duration {
        Instant::now() - self.t0
    }

    pub fn push(&self, who: &str, what: What) {
        let at = self.now();
        lock(&self.log).push(Rec {
            at,
            who: who.to_string(),
            what,
        });
    }

    pub fn all(&self) -> Vec<Rec> {
        lock(&self.log).clone()
    }

    /// When `who` did `what`, in order.
    pub fn times(&self, who: &str, what: What) -> Vec<Duration> {
        self.all()
            .into_iter()
            .filter(|r| r.who == who && r.what == what)
            .map(|r| r.at)
            .collect()
    }

    pub fn starts(&self, who: &str) -> Vec<Duration> {
        self.times(who, What::Start)
    }

    /// `(who, what)` of every record at or after `from`, in order.
    pub fn since(&self, from: Duration) -> Vec<(String, What)> {
        self.all()
            .into_iter()
            .filter(|r| r.at >= from)
            .map(|r| (r.who, r.what))
            .collect()
    }

    /// Sleeps on the paused clock until `at` after the recorder was made.
    pub async fn until(&self, at: Duration) {
        tokio::time::sleep_until(self.t0 + at).await;
    }
}

/// What one incarnation of a test child does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Starts and runs until stopped.
    Run,
    /// `pre_start` returns an error.
    FailStart,
    /// `pre_start` panics.
    PanicStart,
    /// Runs, then a handler returns an error after this long.
    FailAfter(Duration),
    /// Runs, then a handler panics after this long.
    PanicAfter(Duration),
    /// Runs, then stops itself normally after this long.
    StopAfter(Duration),
    /// Runs; its first message handler never returns (only a kill ends it).
    HangInHandler,
    /// Runs; its `post_stop` takes an hour.
    HangInStop,
}

struct CtlInner {
    script: VecDeque<Mode>,
    then: Mode,
    supervisor: Option<ActorCell>,
}

/// Scripts a test child: incarnation k runs `script[k]`, then `then` once the script is used up.
#[derive(Clone)]
pub struct Ctl(Arc<Mutex<CtlInner>>);

impl Ctl {
    /// Every incarnation does `mode`.
    pub fn always(mode: Mode) -> Self {
        Self::script([], mode)
    }

    pub fn script(first: impl IntoIterator<Item = Mode>, then: Mode) -> Self {
        Self(Arc::new(Mutex::new(CtlInner {
            script: first.into_iter().collect(),
            then,
            supervisor: None,
        })))
    }

    /// Every later incarnation does `mode` (drops what is left of the script).
    pub fn set(&self, mode: Mode) {
        let mut g = lock(&self.0);
        g.script.clear();
        g.then = mode;
    }

    fn next(&self) -> Mode {
        let mut g = lock(&self.0);
        let then = g.then;
        g.script.pop_front().unwrap_or(then)
    }

    /// The supervisor the last running incarnation was linked to.
    pub fn supervisor(&self) -> ActorRef<SupervisorMsg> {
        lock(&self.0)
            .supervisor
            .clone()
            .expect("the child never ran under a supervisor")
            .into()
    }
}

#[derive(Clone)]
pub struct ChildArgs {
    pub name: String,
    pub ctl: Ctl,
    pub rec: Recorder,
}

pub enum ChildMsg {
    Fail,
    Panic,
    StopSelf,
    Hang,
}

pub struct ChildState {
    args: ChildArgs,
    mode: Mode,
}

/// Records the moment a hanging handler is dropped, which only a kill does.
struct RecordOnDrop(Recorder, String);

impl Drop for RecordOnDrop {
    fn drop(&mut self) {
        self.0.push(&self.1, What::Killed);
    }
}

#[derive(Clone)]
pub struct TestChild;

impl Actor for TestChild {
    type Msg = ChildMsg;
    type State = ChildState;
    type Arguments = ChildArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ChildMsg>,
        args: ChildArgs,
    ) -> Result<ChildState, ActorProcessingErr> {
        let mode = args.ctl.next();
        args.rec.push(&args.name, What::Start);
        let after = |d: Duration, msg: fn() -> ChildMsg| {
            if d.is_zero() {
                let _ = myself.cast(msg());
            } else {
                myself.send_after(d, msg);
            }
        };
        match mode {
            Mode::Run | Mode::HangInStop => {}
            Mode::FailStart => {
                args.rec.push(&args.name, What::Fail);
                return Err(format!("{} refused to start", args.name).into());
            }
            Mode::PanicStart => {
                args.rec.push(&args.name, What::Fail);
                panic!("{} panicked in pre_start", args.name);
            }
            Mode::FailAfter(d) => after(d, || ChildMsg::Fail),
            Mode::PanicAfter(d) => after(d, || ChildMsg::Panic),
            Mode::StopAfter(d) => after(d, || ChildMsg::StopSelf),
            Mode::HangInHandler => after(Duration::ZERO, || ChildMsg::Hang),
        }
        Ok(ChildState { args, mode })
    }

    async fn post_start(
        &self,
        myself: ActorRef<ChildMsg>,
        state: &mut ChildState,
    ) -> Result<(), ActorProcessingErr> {
        // Linking happens after pre_start, so the supervisor is known only now.
        lock(&state.args.ctl.0).supervisor = myself.try_get_supervisor();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ChildMsg>,
        msg: ChildMsg,
        state: &mut ChildState,
    ) -> Result<(), ActorProcessingErr> {
        let ChildArgs { name, rec, .. } = &state.args;
        match msg {
            ChildMsg::Fail => {
                rec.push(name, What::Fail);
                return Err(format!("{name} failed on command").into());
            }
            ChildMsg::Panic => {
                rec.push(name, What::Fail);
                panic!("{name} panicked on command");
            }
            ChildMsg::StopSelf => {
                rec.push(name, What::SelfStop);
                myself.stop(None);
            }
            ChildMsg::Hang => {
                let _guard = RecordOnDrop(rec.clone(), name.clone());
                std::future::pending::<()>().await;
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ChildMsg>,
        state: &mut ChildState,
    ) -> Result<(), ActorProcessingErr> {
        state.args.rec.push(&state.args.name, What::Stop);
        if state.mode == Mode::HangInStop {
            // Recorded as Killed only if this hang is cut short by dropping the future.
            let guard = RecordOnDrop(state.args.rec.clone(), state.args.name.clone());
            tokio::time::sleep(secs(3600)).await;
            std::mem::forget(guard);
        }
        Ok(())
    }
}

/// One supervision tree under test, with its board, audit log, alert actor and recorder.
pub struct Harness {
    pub rec: Recorder,
    pub board: StatusBoard,
    pub audit: AuditLog,
    pub outbox: AlertOutbox,
    alerts: Arc<Mutex<Vec<(Duration, Alert)>>>,
    sup: Option<ActorRef<SupervisorMsg>>,
}

impl Harness {
    /// A fresh tree context whose alert outbox records every alert with its paused-clock
    /// time as the tree pushes it (the alert actor's delivery is tested on its own).
    pub async fn new() -> Self {
        let rec = Recorder::new();
        let audit = AuditLog::memory("test-node");
        let alerts: Arc<Mutex<Vec<(Duration, Alert)>>> = Arc::default();
        let (sent, at) = (alerts.clone(), rec.clone());
        let outbox = AlertOutbox::tap(move |a| lock(&sent).push((at.now(), a.clone())));
        let board = StatusBoard::new("test-node", "prod", "supervisor.toml");
        Self {
            rec,
            board,
            audit,
            outbox,
            alerts,
            sup: None,
        }
    }

    pub fn ctx(&self) -> TreeContext {
        TreeContext {
            board: self.board.clone(),
            audit: self.audit.clone(),
            alerts: self.outbox.clone(),
        }
    }

    /// A permanent test child with the jitter-free default policy.
    pub fn child(&self, name: &str, ctl: &Ctl) -> ChildSpec {
        let args = ChildArgs {
            name: name.to_string(),
            ctl: ctl.clone(),
            rec: self.rec.clone(),
        };
        ChildSpec::actor(name, TestChild, args).with_policy(exact_policy())
    }

    /// A child that runs until stopped.
    pub fn runner(&self, name: &str) -> ChildSpec {
        self.child(name, &Ctl::always(Mode::Run))
    }

    pub fn sub_supervisor(
        &self,
        name: &str,
        strategy: Strategy,
        children: Vec<ChildSpec>,
    ) -> ChildSpec {
        ChildSpec::supervisor(
            name,
            SupervisorArgs {
                path: String::new(),
                strategy,
                children,
                ctx: self.ctx(),
                gate: None,
            },
        )
    }

    /// Spawns the root supervisor (path "") of `children`; returns once all of them started.
    pub async fn spawn(
        &mut self,
        strategy: Strategy,
        children: Vec<ChildSpec>,
    ) -> ActorRef<SupervisorMsg> {
        self.spawn_with(strategy, children, None).await
    }

    /// [`Harness::spawn`] with the root's children behind `gate`.
    pub async fn spawn_gated(
        &mut self,
        strategy: Strategy,
        children: Vec<ChildSpec>,
        gate: fushi_actors::supervisor::Gate,
    ) -> ActorRef<SupervisorMsg> {
        self.spawn_with(strategy, children, Some(gate)).await
    }

    async fn spawn_with(
        &mut self,
        strategy: Strategy,
        children: Vec<ChildSpec>,
        gate: Option<fushi_actors::supervisor::Gate>,
    ) -> ActorRef<SupervisorMsg> {
        let args = SupervisorArgs {
            path: String::new(),
            strategy,
            children,
            ctx: self.ctx(),
            gate,
        };
        let (sup, _) = Actor::spawn(None, SupervisorActor, args)
            .await
            .expect("supervisor starts");
        self.sup = Some(sup.clone());
        sup
    }

    pub fn sup(&self) -> &ActorRef<SupervisorMsg> {
        self.sup.as_ref().expect("spawn the tree first")
    }

    pub async fn children(&self) -> Vec<ChildInfo> {
        call!(self.sup(), SupervisorMsg::Children).expect("supervisor answers")
    }

    pub async fn info(&self, name: &str) -> ChildInfo {
        self.children()
            .await
            .into_iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no child {name}"))
    }

    pub async fn state(&self, name: &str) -> ActorState {
        self.info(name).await.state
    }

    pub async fn stop(&self, names: &[&str]) {
        let names = names.iter().map(|n| n.to_string()).collect();
        call!(self.sup(), SupervisorMsg::Stop, names)
            .expect("supervisor answers")
            .expect("known children");
    }

    pub async fn start(&self, names: &[&str]) {
        let names = names.iter().map(|n| n.to_string()).collect();
        call!(self.sup(), SupervisorMsg::Start, names)
            .expect("supervisor answers")
            .expect("known children");
    }

    pub async fn restart(&self, names: &[&str]) {
        let names = names.iter().map(|n| n.to_string()).collect();
        call!(self.sup(), SupervisorMsg::Restart, names)
            .expect("supervisor answers")
            .expect("known children");
    }

    pub async fn ping(&self) {
        call!(self.sup(), SupervisorMsg::Ping).expect("supervisor answers");
    }

    /// Stops the root supervisor and waits until it (and so its whole tree) is gone.
    pub async fn shutdown(&self) {
        self.sup()
            .stop_and_wait(None, None)
            .await
            .expect("supervisor stops");
    }

    pub fn board(&self, path: &str) -> ActorStatus {
        self.board
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not on the board"))
    }

    /// The board entry at `path`, if there is one.
    pub fn board_has(&self, path: &str) -> Option<ActorStatus> {
        self.board.get(path)
    }

    /// Audit events named `event` about `actor`, in order.
    pub fn audit(&self, event: &str, actor: &str) -> Vec<AuditEvent> {
        self.audit
            .events()
            .into_iter()
            .filter(|e| e.event == event && e.actor.as_deref() == Some(actor))
            .collect()
    }

    /// Alerts the alert actor delivered, with their paused-clock times.
    pub fn alerts(&self) -> Vec<(Duration, Alert)> {
        lock(&self.alerts).clone()
    }
}
