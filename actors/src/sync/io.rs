//! Blocking primary I/O off the runtime, with a timeout: worker threads per lane, replaced when one hangs in the kernel.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Primary workers that may hang in the kernel at once before we stop spawning more.
pub const MAX_STUCK: usize = 4;

type Job = Box<dyn FnOnce() + Send>;

/// A job's fate, settled once between the worker (done) and the waiter (abandoned on timeout).
const RUNNING: u8 = 0;
const DONE: u8 = 1;
const ABANDONED: u8 = 2;

/// Runs blocking primary I/O on worker threads, with a timeout per call.
#[derive(Clone)]
pub struct PrimaryIo {
    /// One worker per [`Lane`].
    workers: Arc<[Mutex<Option<mpsc::Sender<Job>>>; 2]>,
    stuck: Arc<AtomicUsize>,
}

/// Which worker runs an operation. An append's fsyncs run on a lane of their own, so that the
/// next batch is written while the last one is made durable; everything else runs on `Main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Main = 0,
    Sync = 1,
}

#[derive(Debug, thiserror::Error)]
pub enum IoFailure {
    #[error("no answer within {0:?} (primary hung)")]
    Timeout(Duration),
    #[error("{MAX_STUCK} primary operations are still hung; not starting another")]
    TooManyStuck,
    #[error("{0}")]
    Failed(String),
    /// The journal holds a record under an id the primary holds with other data.
    #[error("{0}")]
    Conflict(String),
}

impl Default for PrimaryIo {
    fn default() -> Self {
        Self {
            workers: Arc::new([Mutex::new(None), Mutex::new(None)]),
            stuck: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl PrimaryIo {
    fn worker(&self, lane: Lane) -> std::sync::MutexGuard<'_, Option<mpsc::Sender<Job>>> {
        self.workers[lane as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn sender(&self, lane: Lane) -> Result<mpsc::Sender<Job>, IoFailure> {
        let mut g = self.worker(lane);
        if let Some(tx) = &*g {
            return Ok(tx.clone());
        }
        if self.stuck.load(Ordering::SeqCst) >= MAX_STUCK {
            return Err(IoFailure::TooManyStuck);
        }
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("fushi-primary".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .map_err(|e| IoFailure::Failed(format!("cannot start a primary I/O thread: {e}")))?;
        *g = Some(tx.clone());
        Ok(tx)
    }

    /// Operations given up on (timed out) that have not finished yet.
    pub fn stuck(&self) -> usize {
        self.stuck.load(Ordering::SeqCst)
    }

    /// Runs `f` on the `Main` worker; an answer later than `timeout` counts as a hung primary.
    pub async fn run<T: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, IoFailure> {
        self.run_on(Lane::Main, timeout, f).await
    }

    /// Runs `f` on the worker of `lane`, as [`PrimaryIo::run`] does.
    pub async fn run_on<T: Send + 'static>(
        &self,
        lane: Lane,
        timeout: Duration,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, IoFailure> {
        let tx = self.sender(lane)?;
        let (done_tx, done_rx) = oneshot::channel();
        let stuck = self.stuck.clone();
        let fate = Arc::new(AtomicU8::new(RUNNING));
        let job_fate = fate.clone();
        let job: Job = Box::new(move || {
            let r = f();
            if job_fate.swap(DONE, Ordering::SeqCst) == ABANDONED {
                // This thread was given up on; it is free again.
                stuck.fetch_sub(1, Ordering::SeqCst);
            }
            let _ = done_tx.send(r);
        });
        if tx.send(job).is_err() {
            *self.worker(lane) = None;
            return Err(IoFailure::Failed("primary I/O thread is gone".into()));
        }
        match tokio::time::timeout(timeout, done_rx).await {
            Ok(Ok(r)) => r.map_err(|e| IoFailure::Failed(e.to_string())),
            Ok(Err(_)) => Err(IoFailure::Failed("primary I/O thread died".into())),
            Err(_) => {
                // Counted before the job can see it abandoned, so the count never dips below
                // zero; and a job that finished just as the timeout fired is not stuck (counting
                // it would leak: nothing would ever take it back off).
                self.stuck.fetch_add(1, Ordering::SeqCst);
                if fate
                    .compare_exchange(RUNNING, ABANDONED, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
                {
                    self.stuck.fetch_sub(1, Ordering::SeqCst);
                }
                // Abandon the thread; the next call gets a fresh one.
                *self.worker(lane) = None;
                Err(IoFailure::Timeout(timeout))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    /// On the paused clock a job that never answers is given up on after exactly `timeout`:
    /// the waiter's timer is the only one, so time jumps straight to it while the worker thread
    /// is stuck in its job, as it would be in a frozen NAS's kernel call.
    #[tokio::test(start_paused = true)]
    async fn a_hung_job_is_given_up_on_after_exactly_its_timeout_and_its_lane_gets_a_new_worker() {
        let io = PrimaryIo::default();
        let (release, gate) = mpsc::channel::<()>();
        let t0 = Instant::now();
        let r = io
            .run_on(Lane::Sync, Duration::from_millis(300), move || {
                let _ = gate.recv();
                Ok(())
            })
            .await;
        assert!(
            matches!(r, Err(IoFailure::Timeout(d)) if d == Duration::from_millis(300)),
            "{r:?}"
        );
        assert_eq!(t0.elapsed(), Duration::from_millis(300));
        assert_eq!(io.stuck(), 1, "the hung worker is counted");
        // The lane's next job does not queue behind the hung one. It runs on the real clock: with
        // time paused, the runtime is idle while any worker works, so it would jump to the
        // job's deadline at once, which is why the pipeline's own tests run on the real clock.
        tokio::time::resume();
        let v = io
            .run_on(Lane::Sync, Duration::from_secs(3600), || Ok(7))
            .await
            .unwrap();
        assert_eq!(v, 7);
        // Once the hung call returns, its worker is no longer counted as stuck.
        release.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while io.stuck() > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the released worker is no longer counted as stuck");
    }

    /// Past `MAX_STUCK` hung workers no new one is started: a NAS that hangs every call must
    /// not cost a thread per attempt.
    #[tokio::test(start_paused = true)]
    async fn no_more_than_max_stuck_workers_hang_at_once() {
        let io = PrimaryIo::default();
        let mut gates = Vec::new();
        for _ in 0..MAX_STUCK {
            let (release, gate) = mpsc::channel::<()>();
            gates.push(release);
            let r = io
                .run(Duration::from_millis(10), move || {
                    let _ = gate.recv();
                    Ok(())
                })
                .await;
            assert!(matches!(r, Err(IoFailure::Timeout(_))), "{r:?}");
        }
        let r = io.run(Duration::from_millis(10), || Ok(())).await;
        assert!(matches!(r, Err(IoFailure::TooManyStuck)), "{r:?}");
        drop(gates);
    }
}
