//! fushi's actor system: the restarting supervisor and every actor of the tree, free of CLI, socket and HTTP code.
//!
//! The daemon (`src/` of the `fushi` package) builds a [`supervisor::SupervisorArgs`] from the
//! config and spawns the root [`supervisor::SupervisorActor`]; everything below it lives here.

pub mod accept;
pub mod alert;
pub mod audit;
pub mod board;
pub mod clock;
pub mod collectors;
pub mod events;
pub mod faults;
pub mod fdlimit;
pub mod fs;
pub mod journal;
pub mod leader;
pub mod lease;
pub mod primary;
pub mod records;
pub mod runtime;
pub mod sink;
pub mod slo;
pub mod status;
pub mod storage;
pub mod supervisor;
pub mod sync;

/// Aborts a background task when the actor state owning it is dropped — also when the actor is
/// killed and never reaches `post_stop`.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Aborts the task and waits until it is gone, so that what it owned (a listener, a file)
    /// is released when this returns, not some time after the drop.
    pub async fn stop(&mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The token a periodic message carries: while it lives (until the handler is done with the
/// message) the ticker sends no next one. A handler slower than its period gets its next message
/// at the first tick after it is done, not a pile of them to work through back to back.
#[derive(Debug)]
pub struct Due(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for Due {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// Casts `make(due)` to `actor` every `period` (the first at once) until the actor is gone,
/// skipping a period while the last message is still queued or being handled (see [`Due`]); the
/// returned guard stops the ticker when the actor's state is dropped.
pub fn tick_every<M>(
    actor: ractor::ActorRef<M>,
    period: std::time::Duration,
    make: impl Fn(Due) -> M + Send + 'static,
) -> AbortOnDrop
where
    M: ractor::Message,
{
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    AbortOnDrop(tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if busy.swap(true, std::sync::atomic::Ordering::AcqRel) {
                continue;
            }
            if actor.cast(make(Due(busy.clone()))).is_err() {
                break;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::{Actor, ActorProcessingErr, ActorRef};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// Takes 100 ms per message, ten times its ticker's period.
    struct Slow;

    impl Actor for Slow {
        type Msg = Due;
        type State = Arc<AtomicU32>;
        type Arguments = Arc<AtomicU32>;

        async fn pre_start(
            &self,
            _: ActorRef<Due>,
            handled: Arc<AtomicU32>,
        ) -> Result<Arc<AtomicU32>, ActorProcessingErr> {
            Ok(handled)
        }

        async fn handle(
            &self,
            _: ActorRef<Due>,
            _due: Due,
            handled: &mut Arc<AtomicU32>,
        ) -> Result<(), ActorProcessingErr> {
            tokio::time::sleep(Duration::from_millis(100)).await;
            handled.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_ticker_sends_nothing_more_while_its_last_message_waits_or_runs() {
        let handled = Arc::new(AtomicU32::new(0));
        let (actor, task) = Actor::spawn(None, Slow, handled.clone()).await.unwrap();
        let ticker = tick_every(actor.clone(), Duration::from_millis(10), |due| due);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let during = handled.load(Ordering::SeqCst);
        drop(ticker);
        // What is still queued when the ticker stops is handled now: at most the one message
        // in hand, where a ticker that casts every period would have left about ninety.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let after = handled.load(Ordering::SeqCst);
        assert!((9..=10).contains(&during), "{during} handled in 1 s");
        assert!(
            after - during <= 1,
            "{} handled after the ticker stopped",
            after - during
        );
        actor.stop(None);
        task.await.unwrap();
    }
}
