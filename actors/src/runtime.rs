//! The daemon's async runtime and memory allocator, defined once so that the daemon and every benchmark run on the same ones.
//!
//! **One scheduler thread.** Every actor runs on a single-threaded tokio runtime, the shape of
//! Erlang with `+S 1`. What could hold the thread is already elsewhere: the journal's writer
//! thread, the primary's I/O lanes, the audit log's writer, each command collector's spawner,
//! and the blocking pool for status.json and config reloads. What is left on the runtime is
//! message handling in microseconds. A second worker bought no throughput here and cost latency on every wake: a task
//! spawned or woken while the other worker was parked woke it through a futex, and the wakened
//! worker then raced this one for the queue. In the `restart_latency` bench
//! (`RESTART_BENCH_RUNTIME=multi_thread` compares) a zero-backoff restart took a p50 of 16.8 µs on
//! two workers against 11.8 µs on one. A single thread also keeps a quiet daemon quiet: one thread
//! wakes for a timer, not two. The cost is that a task which blocks stalls every actor; nothing
//! may block on this runtime, and the supervisor's watchdog ping (sd_notify `WATCHDOG=1` only
//! while the root supervisor answers) lets systemd restart a daemon that did.
//!
//! **mimalloc.** Records and audit events are allocated on the runtime thread and freed on the
//! writer threads, which glibc's malloc serves under the allocating arena's lock; mimalloc frees
//! across threads without one. Measured rather than explained to the last cache miss: over
//! alternating runs of the restart bench, glibc gave a p50 of 0.45–0.58 of OTP's and mimalloc
//! 0.33–0.43. It is built without transparent huge pages (`no_thp`): with them, each thread's
//! heap pinned a 2 MiB page and an idle daemon held 20 MiB instead of 9. The binary declares it
//! with `#[global_allocator] static ALLOC: Allocator = Allocator;`.

pub use mimalloc::MiMalloc as Allocator;

use tokio::runtime::{Builder, Runtime};

/// The daemon's runtime: one scheduler thread (the caller's), timers and I/O enabled; blocking
/// work goes to tokio's blocking pool, whose threads are named `fushi-blocking`.
pub fn build() -> std::io::Result<Runtime> {
    Builder::new_current_thread()
        .enable_all()
        .thread_name("fushi-blocking")
        .build()
}
