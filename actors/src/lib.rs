//! fushi's actor system: the restarting supervisor and every actor of the tree, free of CLI, socket and HTTP code.
//!
//! The daemon (`src/` of the `fushi` package) builds a [`supervisor::SupervisorArgs`] from the
//! config and spawns the root [`supervisor::SupervisorActor`]; everything below it lives here.

pub mod alert;
pub mod audit;
pub mod board;
pub mod clock;
pub mod collectors;
pub mod journal;
pub mod primary;
pub mod records;
pub mod runtime;
pub mod status;
pub mod storage;
pub mod supervisor;
pub mod sync;

/// Aborts a background task when the actor state owning it is dropped — also when the actor is
/// killed and never reaches `post_stop`.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Casts `make()` to `actor` every `period` (the first at once) until the actor is gone; the
/// returned guard stops the ticker when the actor's state is dropped.
pub fn tick_every<M>(
    actor: ractor::ActorRef<M>,
    period: std::time::Duration,
    make: impl Fn() -> M + Send + 'static,
) -> AbortOnDrop
where
    M: ractor::Message,
{
    AbortOnDrop(tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if actor.cast(make()).is_err() {
                break;
            }
        }
    }))
}
