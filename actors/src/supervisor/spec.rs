//! A child as a supervisor knows it before it starts: its name, restart kind and policy, timeouts, how to start it, and whether an operator holds it stopped.

use futures::future::BoxFuture;
use ractor::{Actor, ActorCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

use super::policy::{RestartKind, RestartPolicy};

/// What a child's start function gets.
pub struct StartContext {
    /// The child's tree path, e.g. `collectors/trades`.
    pub path: String,
    /// The supervisor to link to.
    pub supervisor: ActorCell,
}

/// A started child: its cell, and the task that runs it (aborted as a last resort on stop).
pub struct Started {
    pub cell: ActorCell,
    pub task: JoinHandle<()>,
}

pub type StartFuture = BoxFuture<'static, Result<Started, String>>;

/// How a child is (re)started: spawn the actor linked to `ctx.supervisor`.
pub type StartFn = Arc<dyn Fn(StartContext) -> StartFuture + Send + Sync>;

/// Everything the supervisor needs to know about one child.
#[derive(Clone)]
pub struct ChildSpec {
    pub name: String,
    pub restart: RestartKind,
    pub policy: RestartPolicy,
    pub shutdown_timeout: Duration,
    /// `None` for sub-supervisors: their start is bounded by their children's.
    pub start_timeout: Option<Duration>,
    pub start: StartFn,
    /// The child is itself a [`SupervisorActor`]: control requests for `name/…` are routed to it.
    pub supervisor: bool,
    /// One of the daemon's own actors: a control request may restart it, alone, but never stop
    /// it, since the daemon cannot be reached or stopped in order without it.
    pub essential: bool,
    /// Stopped by an operator and not started since. Shared by every clone of the spec, so it
    /// outlives a restart of the parent supervisor, whose next incarnation is built from clones.
    held: Arc<AtomicBool>,
}

impl ChildSpec {
    pub fn new(
        name: impl Into<String>,
        start: impl Fn(StartContext) -> StartFuture + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            restart: RestartKind::Permanent,
            policy: RestartPolicy::default(),
            shutdown_timeout: Duration::from_secs(5),
            start_timeout: Some(Duration::from_secs(30)),
            start: Arc::new(start),
            supervisor: false,
            essential: false,
            held: Arc::default(),
        }
    }

    /// A child that is an actor of type `A`, started with clones of `actor` and `args`.
    pub fn actor<A>(name: impl Into<String>, actor: A, args: A::Arguments) -> Self
    where
        A: Actor + Clone + Sync,
        A::Arguments: Clone + Sync,
    {
        Self::new(name, move |ctx: StartContext| {
            let (actor, args) = (actor.clone(), args.clone());
            Box::pin(async move {
                A::spawn_linked(None, actor, args, ctx.supervisor)
                    .await
                    .map(|(r, task)| Started {
                        cell: r.get_cell(),
                        task,
                    })
                    .map_err(start_error)
            })
        })
    }

    pub fn with_restart(mut self, restart: RestartKind) -> Self {
        self.restart = restart;
        self
    }

    pub fn with_policy(mut self, policy: RestartPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn with_shutdown_timeout(mut self, t: Duration) -> Self {
        self.shutdown_timeout = t;
        self
    }

    /// Marks the child one of the daemon's own actors (see [`ChildSpec::essential`]).
    pub fn essential(mut self) -> Self {
        self.essential = true;
        self
    }

    /// Whether an operator stopped the child and has not started it since.
    pub fn held(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }

    pub(super) fn hold(&self, held: bool) {
        self.held.store(held, Ordering::Relaxed);
    }
}

pub(super) fn start_error(e: ractor::SpawnErr) -> String {
    match e {
        ractor::SpawnErr::StartupFailed(inner) => format!("start failed: {inner}"),
        other => format!("start failed: {other}"),
    }
}
