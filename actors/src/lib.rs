//! fushi's actor system: the restarting supervisor and every actor of the tree, free of CLI, socket and HTTP code.
//!
//! The daemon (`src/` of the `fushi` package) builds a [`supervisor::SupervisorArgs`] from the
//! config and spawns the root [`supervisor::SupervisorActor`]; everything below it lives here.

pub mod alert;
pub mod audit;
pub mod board;
pub mod clock;
pub mod collectors;
pub mod records;
pub mod status;
pub mod supervisor;

/// Aborts a background task when the actor state owning it is dropped — also when the actor is
/// killed and never reaches `post_stop`.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
