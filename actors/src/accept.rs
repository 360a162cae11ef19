//! One accept-loop policy for every listener of the daemon: a bounded number of connections at once, backoff on accept errors, and warnings rate-limited to a line per interval.
//!
//! A listener that accepts whatever comes runs the process out of descriptors under a flood of
//! idle connections (SPEC §5: any local user can connect to a listen collector), and then
//! accept(2) fails at once on every try: without a pause the loop spins at full CPU, and a
//! warning per failure floods the log. So each connection holds a slot of a semaphore; while
//! none is free nothing more is accepted and new connections wait in the kernel's backlog, not
//! in our descriptor table. A failed accept waits 10 ms, doubling to 1 s, until one succeeds.
//! Warnings of each kind are written at most once per `warn_every`, with the number left out.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// A listening socket, as the loop needs it.
pub trait Listener: Send + Sync + 'static {
    type Conn: Send + 'static;
    fn next_conn(&self) -> impl Future<Output = io::Result<Self::Conn>> + Send;
}

impl Listener for TcpListener {
    type Conn = TcpStream;
    async fn next_conn(&self) -> io::Result<TcpStream> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Listener for UnixListener {
    type Conn = UnixStream;
    async fn next_conn(&self) -> io::Result<UnixStream> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// How a listener accepts: its connection slots, its backoff and its warning interval.
#[derive(Clone)]
pub struct Policy {
    slots: Arc<Semaphore>,
    max_connections: usize,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub warn_every: Duration,
}

impl Policy {
    /// At most `max_connections` open at once, in slots of this listener's own.
    pub fn new(max_connections: usize) -> Self {
        Self::sharing(Arc::new(Semaphore::new(max_connections)), max_connections)
    }

    /// Connections take their slots from `slots` (of `max_connections`), shared with every
    /// listener given the same semaphore.
    pub fn sharing(slots: Arc<Semaphore>, max_connections: usize) -> Self {
        Self {
            slots,
            max_connections,
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_secs(1),
            warn_every: Duration::from_secs(10),
        }
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections
    }
}

/// Delays between failed accepts: `min`, doubling up to `max`, back to `min` after a success.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        d
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Lets one line through per `every`, counting those held back in between.
#[derive(Debug)]
pub struct RateLimit {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(lines held back since the last one)` when a line may be written now; else the
    /// line is counted and `None`.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// Who a loop's log lines are about: the actor and the prefix of their events
/// (`<prefix>.accept_failed`, `<prefix>.accepting`, `<prefix>.connections_full`).
pub struct Labels {
    pub actor: String,
    pub events: String,
}

/// Accepts from `listener` until aborted, running `serve` on each connection while it holds a
/// slot. Connections are tasks of a set this future owns: dropping it drops them all.
pub async fn run<L, F, Fut>(listener: L, policy: Policy, labels: Labels, mut serve: F)
where
    L: Listener,
    F: FnMut(L::Conn) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let actor = labels.actor.as_str();
    let (failed_event, accepting_event, full_event) = (
        format!("{}.accept_failed", labels.events),
        format!("{}.accepting", labels.events),
        format!("{}.connections_full", labels.events),
    );
    let mut conns = JoinSet::new();
    let mut backoff = Backoff::new(policy.backoff_min, policy.backoff_max);
    let (mut errors, mut full) = (
        RateLimit::new(policy.warn_every),
        RateLimit::new(policy.warn_every),
    );
    // Failed accepts since the last one that succeeded.
    let mut streak = 0u64;
    loop {
        let permit = match policy.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if let Some(suppressed) = full.allow(Instant::now()) {
                    tracing::warn!(
                        actor,
                        event = full_event.as_str(),
                        limit = policy.max_connections,
                        suppressed,
                        "connection limit reached; new connections wait until one closes"
                    );
                }
                match wait_for_slot(&policy, &mut conns).await {
                    Some(p) => p,
                    None => return,
                }
            }
        };
        let accepted = loop {
            tokio::select! {
                accepted = listener.next_conn() => break accepted,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        };
        match accepted {
            Ok(conn) => {
                if streak > 0 {
                    tracing::info!(
                        actor,
                        event = accepting_event.as_str(),
                        failed = streak,
                        "accepting connections again"
                    );
                    streak = 0;
                }
                backoff.reset();
                let served = serve(conn);
                conns.spawn(async move {
                    served.await;
                    drop(permit);
                });
            }
            Err(e) => {
                drop(permit);
                streak += 1;
                let delay = backoff.next_delay();
                if let Some(suppressed) = errors.allow(Instant::now()) {
                    tracing::warn!(actor, event = failed_event.as_str(), error = %e, suppressed,
                        retry_in = ?delay, "accept failed; backing off");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Waits until a connection closes and frees a slot, reaping finished connections meanwhile;
/// `None` if the semaphore was closed.
async fn wait_for_slot(policy: &Policy, conns: &mut JoinSet<()>) -> Option<OwnedSemaphorePermit> {
    loop {
        tokio::select! {
            p = policy.slots.clone().acquire_owned() => return p.ok(),
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use tokio::sync::{mpsc, oneshot};

    #[test]
    fn backoff_doubles_from_10ms_to_1s_and_resets() {
        let p = Policy::new(1);
        let mut b = Backoff::new(p.backoff_min, p.backoff_max);
        let ms: Vec<u128> = (0..10).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn one_line_per_interval_with_the_count_held_back() {
        let mut r = RateLimit::new(Duration::from_secs(10));
        assert_eq!(r.allow(Instant::now()), Some(0));
        for _ in 0..1000 {
            assert_eq!(r.allow(Instant::now()), None);
        }
        tokio::time::sleep(Duration::from_millis(9_999)).await;
        assert_eq!(r.allow(Instant::now()), None);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(r.allow(Instant::now()), Some(1001));
        assert_eq!(r.allow(Instant::now()), None);
    }

    thread_local! {
        static WARNINGS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// Counts warnings per thread. Installed as the global subscriber once: a thread's own
    /// (`set_default`) misses events while tests on other threads register the same callsites.
    struct Warnings;

    impl tracing::Subscriber for Warnings {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, e: &tracing::Event<'_>) {
            if *e.metadata().level() == tracing::Level::WARN {
                WARNINGS.with(|w| w.set(w.get() + 1));
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    /// Warnings written on this thread so far (a current-thread runtime runs its tasks here).
    fn warnings() -> usize {
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            let _ = tracing::subscriber::set_global_default(Warnings);
        });
        WARNINGS.with(|w| w.get())
    }

    /// A listener whose accepts are what the test queues: connections (a number) or errors.
    struct Scripted {
        queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<io::Result<u32>>>,
        tries: Arc<AtomicUsize>,
    }

    impl Listener for Scripted {
        type Conn = u32;
        async fn next_conn(&self) -> io::Result<u32> {
            let next = self.queue.lock().await.recv().await;
            self.tries.fetch_add(1, Ordering::SeqCst);
            match next {
                Some(n) => n,
                None => std::future::pending().await,
            }
        }
    }

    fn scripted() -> (
        Scripted,
        mpsc::UnboundedSender<io::Result<u32>>,
        Arc<AtomicUsize>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let tries = Arc::new(AtomicUsize::new(0));
        let l = Scripted {
            queue: tokio::sync::Mutex::new(rx),
            tries: tries.clone(),
        };
        (l, tx, tries)
    }

    fn labels() -> Labels {
        Labels {
            actor: "collectors/test".into(),
            events: "test".into(),
        }
    }

    fn emfile() -> io::Result<u32> {
        Err(io::Error::from_raw_os_error(24))
    }

    /// Descriptors exhausted for 20 s: the loop tries 26 times, not millions, and writes two
    /// warnings (the second with the count of those it held back).
    #[tokio::test(start_paused = true)]
    async fn failing_accepts_back_off_and_warn_once_per_interval() {
        let before = warnings();
        let (l, tx, tries) = scripted();
        for _ in 0..100_000 {
            tx.send(emfile()).unwrap();
        }
        let task = tokio::spawn(run(l, Policy::new(4), labels(), |_| async {}));
        tokio::time::sleep(Duration::from_secs(20)).await;
        // Tries at 0, 10, 30, 70, … 1270 ms, then one a second until 19 270 ms; warnings at
        // 0 and 10 270 ms.
        assert_eq!(tries.load(Ordering::SeqCst), 26, "accepts in 20 s");
        assert_eq!(warnings() - before, 2, "warnings in 20 s");
        task.abort();
    }

    /// The connections being served, each with the sender that closes it when dropped.
    type Open = Mutex<Vec<(u32, oneshot::Sender<()>)>>;

    /// Connections beyond the limit are not accepted until one closes; a success after
    /// failures resets the backoff.
    #[tokio::test(start_paused = true)]
    async fn no_more_connections_than_slots_and_each_closed_one_lets_one_in() {
        let (l, tx, tries) = scripted();
        let open: Arc<Open> = Arc::default();
        let o = open.clone();
        let task = tokio::spawn(run(l, Policy::new(3), labels(), move |n| {
            let (close, closed) = oneshot::channel();
            o.lock().unwrap().push((n, close));
            async move {
                let _ = closed.await;
            }
        }));
        for n in 0..5 {
            tx.send(Ok(n)).unwrap();
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        let served = |open: &Open| {
            open.lock()
                .unwrap()
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
        };
        assert_eq!(served(&open), [0, 1, 2]);
        assert_eq!(
            tries.load(Ordering::SeqCst),
            3,
            "nothing accepted past the limit"
        );
        let (_, close) = open.lock().unwrap().remove(1);
        drop(close);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(served(&open), [0, 2, 3]);

        // Free every slot, then fail until the backoff is at its top: a success resets it.
        open.lock().unwrap().clear();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(served(&open), [4]);
        for _ in 0..10 {
            tx.send(emfile()).unwrap();
        }
        tx.send(Ok(5)).unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(served(&open), [4, 5]);
        // The first failure after a success waits 10 ms again, not a second.
        tx.send(emfile()).unwrap();
        tx.send(Ok(6)).unwrap();
        tokio::time::sleep(Duration::from_millis(9)).await;
        assert_eq!(served(&open), [4, 5]);
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(served(&open), [4, 5, 6]);
        task.abort();
    }
}
