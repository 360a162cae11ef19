//! Where the lease lives: the file backend's lock on the primary, or an etcd lease and key — the same few operations for the leader actor, each bounded by `io_timeout`.
//!
//! The two differ in how a dead holder's lease ends. A lock file stays as it was, and a standby
//! judges it stale by watching its content stand still ([`Backend::expires`] false). An etcd
//! key is attached to a lease that the cluster itself expires `ttl` after the holder's last
//! keep-alive, so a standby takes over once the key is gone and never judges staleness itself;
//! the epoch is the key's create revision, which grows across the whole cluster.

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, LeaseKeepAliveStream, LeaseKeeper,
    PutOptions, Txn, TxnOp,
};
use std::path::Path;
use std::time::Duration;

use super::lock::{Holder, LockDir, Renewal, Taken, Want};
use crate::sync::PrimaryIo;

/// What a look at the lease found.
pub struct Look {
    /// The holder and the bytes of its lock (what a standby watches for change).
    pub lock: Option<(Holder, Vec<u8>)>,
    /// A standing request for the lease by a node of higher priority.
    pub want: Option<(Want, Vec<u8>)>,
    /// The highest epoch taken so far, as the backend counts it.
    pub epoch: u64,
}

pub enum Backend {
    File(FileBackend),
    Etcd(Box<EtcdBackend>),
}

impl Backend {
    pub fn file(primary: &Path, io_timeout: Duration) -> Self {
        Backend::File(FileBackend {
            lock: LockDir::of(primary),
            io: PrimaryIo::default(),
            timeout: io_timeout,
        })
    }

    pub fn etcd(
        endpoints: Vec<String>,
        stale_after: Duration,
        heartbeat: Duration,
        io_timeout: Duration,
    ) -> Self {
        Backend::Etcd(Box::new(EtcdBackend {
            endpoints,
            // The lease lasts as long as the leader's fence takes (stale_after − heartbeat
            // after a renewal), rounded up to etcd's whole seconds: it never ends before the
            // leader has stopped collecting, and etcd's own sweep (every 500 ms) and a
            // standby's look still fit in stale_after + heartbeat. The cluster may raise a short
            // lease to its minimum (1.5 × its election timeout); that only makes it longer.
            ttl: stale_after
                .saturating_sub(heartbeat)
                .as_millis()
                .div_ceil(1000)
                .max(1) as i64,
            timeout: io_timeout,
            client: None,
            lease: None,
        }))
    }

    /// Whether a holder's lease ends by itself once it stops renewing.
    pub fn expires(&self) -> bool {
        matches!(self, Backend::Etcd(_))
    }

    /// Where the lease lives, for messages.
    pub fn place(&self) -> String {
        match self {
            Backend::File(f) => f.lock.lock_path().display().to_string(),
            Backend::Etcd(e) => format!("etcd {} key {LEADER_KEY}", e.endpoints.join(",")),
        }
    }

    pub async fn look(&mut self) -> Result<Look, String> {
        match self {
            Backend::File(f) => {
                let lock = f.lock.clone();
                f.run(move || {
                    Ok(Look {
                        lock: lock.read()?,
                        want: lock.read_want().unwrap_or(None),
                        epoch: lock.read_epoch()?,
                    })
                })
                .await
            }
            Backend::Etcd(e) => e.bounded(|e| Box::pin(e.look())).await,
        }
    }

    /// Takes the lease as `me` (over `stale`, a stale lock's bytes, on the file backend); the
    /// holder returned carries the epoch actually taken.
    pub async fn take(
        &mut self,
        me: Holder,
        stale: Option<Vec<u8>>,
        floor: u64,
    ) -> Result<(Taken, Holder), String> {
        match self {
            Backend::File(f) => {
                let lock = f.lock.clone();
                f.run(move || {
                    let taken = match &stale {
                        Some(bytes) => lock.take_over(bytes, &me)?,
                        None => lock.try_take(&me)?,
                    };
                    if taken == Taken::Ours {
                        // The count first: should this node die right here, the lock still
                        // says the epoch, and whoever takes it over counts on from there.
                        lock.write_epoch(me.epoch, &me.node)?;
                        let _ = lock.unwant(&me.node);
                    }
                    Ok((taken, me))
                })
                .await
            }
            Backend::Etcd(e) => e.bounded(move |e| Box::pin(e.take(me, stale, floor))).await,
        }
    }

    /// Renews our lease; also returns a standing request for it.
    pub async fn renew(
        &mut self,
        me: &Holder,
    ) -> Result<(Renewal, Option<(Want, Vec<u8>)>), String> {
        match self {
            Backend::File(f) => {
                let (lock, me) = (f.lock.clone(), me.clone());
                f.run(move || {
                    let renewal = lock.renew(&me)?;
                    Ok((renewal, lock.read_want().unwrap_or(None)))
                })
                .await
            }
            Backend::Etcd(e) => {
                let me = me.clone();
                e.bounded(move |e| Box::pin(e.renew(me))).await
            }
        }
    }

    pub async fn release(&mut self, me: &Holder) -> Result<(), String> {
        match self {
            Backend::File(f) => {
                let (lock, me) = (f.lock.clone(), me.clone());
                f.run(move || lock.release(&me)).await
            }
            Backend::Etcd(e) => e.bounded(|e| Box::pin(e.release())).await,
        }
    }

    pub async fn want(&mut self, w: &Want) -> Result<(), String> {
        match self {
            Backend::File(f) => {
                let (lock, w) = (f.lock.clone(), w.clone());
                f.run(move || lock.want(&w)).await
            }
            Backend::Etcd(e) => {
                let w = w.clone();
                e.bounded(move |e| Box::pin(e.want(w))).await
            }
        }
    }
}

/// The lock on the primary, through I/O threads of the leader's own (a busy sync never delays
/// a renewal) under `io_timeout`: a hung NAS fails the call, it never hangs the actor.
pub struct FileBackend {
    lock: LockDir,
    io: PrimaryIo,
    timeout: Duration,
}

impl FileBackend {
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        self.io
            .run(self.timeout, f)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The leader key: the holder's JSON, attached to its lease.
pub const LEADER_KEY: &str = "fushi/collector.leader";
/// A node of higher priority's request (JSON [`Want`]).
const WANT_KEY: &str = "fushi/collector.want";
/// Written only to move the cluster's revision past an epoch this node has used already.
const EPOCH_KEY: &str = "fushi/collector.epoch";

type Op<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, String>> + Send + 'a>>;

/// An etcd lease and the leader key, through etcd-client (gRPC), each call under `io_timeout`.
pub struct EtcdBackend {
    endpoints: Vec<String>,
    ttl: i64,
    timeout: Duration,
    client: Option<Client>,
    /// Our lease while we hold one, with its keep-alive stream.
    lease: Option<(i64, LeaseKeeper, LeaseKeepAliveStream)>,
}

fn etcd_err(what: &str) -> impl Fn(etcd_client::Error) -> String + '_ {
    move |e| format!("etcd {what}: {}", cause(&e))
}

/// What went wrong, from the innermost reasons of an etcd-client error ("tcp connect error:
/// Connection refused (os error 111)"): its outer layers are gRPC and transport wrappers that say
/// the same at length.
fn cause(e: &etcd_client::Error) -> String {
    let mut chain = Vec::new();
    // A gRPC status prints its whole source chain in Debug form; its parts read better.
    let mut next: Option<&dyn std::error::Error> = match e {
        etcd_client::Error::GRpcStatus(s) => {
            chain.push(s.message().to_string());
            std::error::Error::source(s)
        }
        other => Some(other),
    };
    while let Some(err) = next {
        chain.push(err.to_string());
        next = err.source();
    }
    let inner: Vec<String> = chain.iter().rev().take(2).rev().cloned().collect();
    inner.join(": ")
}

impl EtcdBackend {
    /// Runs `op` under `io_timeout`; a timeout or an error drops the connection, so the next
    /// call connects afresh (perhaps to another endpoint).
    async fn bounded<T>(
        &mut self,
        op: impl for<'a> FnOnce(&'a mut Self) -> Op<'a, T>,
    ) -> Result<T, String> {
        let timeout = self.timeout;
        let r = match tokio::time::timeout(timeout, op(self)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer from etcd ({}) within {timeout:?}",
                self.endpoints.join(",")
            )),
        };
        if r.is_err() {
            self.client = None;
        }
        r
    }

    async fn client(&mut self) -> Result<Client, String> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let opts = ConnectOptions::new()
            .with_connect_timeout(self.timeout)
            .with_timeout(self.timeout);
        let c = Client::connect(&self.endpoints, Some(opts))
            .await
            .map_err(|e| {
                format!(
                    "etcd at {} does not answer: {}",
                    self.endpoints.join(","),
                    cause(&e)
                )
            })?;
        self.client = Some(c.clone());
        Ok(c)
    }

    async fn look(&mut self) -> Result<Look, String> {
        let mut c = self.client().await?;
        let r = c.get(LEADER_KEY, None).await.map_err(|e| {
            format!(
                "etcd at {} does not answer: {}",
                self.endpoints.join(","),
                cause(&e)
            )
        })?;
        let revision = r.header().map_or(0, |h| h.revision()).max(0) as u64;
        let lock = match r.kvs().first() {
            Some(kv) => {
                let mut h: Holder = serde_json::from_slice(kv.value()).map_err(|e| {
                    format!("etcd key {LEADER_KEY} does not hold a holder fushi wrote: {e}")
                })?;
                h.epoch = kv.create_revision().max(0) as u64;
                Some((h, kv.value().to_vec()))
            }
            None => None,
        };
        let want = c
            .get(WANT_KEY, None)
            .await
            .map_err(etcd_err("get"))?
            .kvs()
            .first()
            .and_then(|kv| {
                serde_json::from_slice::<Want>(kv.value())
                    .ok()
                    .map(|w| (w, kv.value().to_vec()))
            });
        Ok(Look {
            lock,
            want,
            epoch: revision,
        })
    }

    async fn take(
        &mut self,
        mut me: Holder,
        dead: Option<Vec<u8>>,
        floor: u64,
    ) -> Result<(Taken, Holder), String> {
        let mut c = self.client().await?;
        if let Some(value) = dead {
            // Our own previous process's key (it died): it goes now, not at its lease's end —
            // only if it is still exactly what was judged, never a key another node took since.
            let txn = Txn::new()
                .when([Compare::value(LEADER_KEY, CompareOp::Equal, value)])
                .and_then([TxnOp::delete(LEADER_KEY, None)]);
            c.txn(txn).await.map_err(etcd_err("txn"))?;
        }
        // Epochs must grow past any this node used before (its journal knows them): the
        // cluster's revision is moved on until the key's create revision will be above them.
        let mut rev = c
            .get(EPOCH_KEY, Some(GetOptions::new().with_count_only()))
            .await
            .map_err(etcd_err("get"))?
            .header()
            .map_or(0, |h| h.revision())
            .max(0) as u64;
        let mut bumps = 0;
        while rev < floor {
            rev = c
                .put(EPOCH_KEY, floor.to_string(), None)
                .await
                .map_err(etcd_err("put"))?
                .header()
                .map_or(rev + 1, |h| h.revision().max(0) as u64);
            bumps += 1;
            if bumps > 100_000 {
                return Err(format!("etcd's revision would not pass epoch {floor}"));
            }
        }
        let lease = c
            .lease_grant(self.ttl, None)
            .await
            .map_err(etcd_err("lease grant"))?
            .id();
        me.epoch = 0;
        let value = serde_json::to_vec(&me).map_err(|e| e.to_string())?;
        let txn = Txn::new()
            .when([Compare::create_revision(LEADER_KEY, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                LEADER_KEY,
                value,
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let r = c.txn(txn).await.map_err(etcd_err("txn"))?;
        if !r.succeeded() {
            let _ = c.lease_revoke(lease).await;
            let look = self.look().await?;
            return Ok(match look.lock {
                Some((h, _)) => (Taken::Held(h), me),
                None => (Taken::Contended, me),
            });
        }
        me.epoch = r.header().map_or(0, |h| h.revision()).max(0) as u64;
        let (keeper, stream) = c
            .lease_keep_alive(lease)
            .await
            .map_err(etcd_err("lease keep-alive"))?;
        self.lease = Some((lease, keeper, stream));
        if let Ok(r) = c.get(WANT_KEY, None).await {
            if let Some(kv) = r.kvs().first() {
                if serde_json::from_slice::<Want>(kv.value()).is_ok_and(|w| w.node == me.node) {
                    let _ = c.delete(WANT_KEY, None).await;
                }
            }
        }
        Ok((Taken::Ours, me))
    }

    async fn renew(&mut self, me: Holder) -> Result<(Renewal, Option<(Want, Vec<u8>)>), String> {
        let Some((id, _, _)) = &self.lease else {
            return Ok((Renewal::Lost(None), None));
        };
        let id = *id;
        let alive = match self.keep_alive().await {
            Ok(alive) => alive,
            Err(_) => {
                // The stream broke (etcd restarted, a connection reset): the lease may well
                // live on, so it is kept alive over a new stream before anything is judged.
                self.client = None;
                let mut c = self.client().await?;
                let (keeper, stream) = c
                    .lease_keep_alive(id)
                    .await
                    .map_err(etcd_err("lease keep-alive"))?;
                self.lease = Some((id, keeper, stream));
                self.keep_alive().await?
            }
        };
        if !alive {
            self.lease = None;
            let look = self.look().await?;
            return Ok((Renewal::Lost(look.lock.map(|(h, _)| h)), None));
        }
        let look = self.look().await?;
        match look.lock {
            Some((h, _)) if h.node == me.node && h.epoch == me.epoch => {
                Ok((Renewal::Renewed, look.want))
            }
            other => Ok((Renewal::Lost(other.map(|(h, _)| h)), None)),
        }
    }

    /// One keep-alive of our lease: whether it lives on.
    async fn keep_alive(&mut self) -> Result<bool, String> {
        let Some((_, keeper, stream)) = &mut self.lease else {
            return Ok(false);
        };
        keeper
            .keep_alive()
            .await
            .map_err(etcd_err("lease keep-alive"))?;
        Ok(stream
            .message()
            .await
            .map_err(etcd_err("lease keep-alive"))?
            .is_some_and(|r| r.ttl() > 0))
    }

    async fn release(&mut self) -> Result<(), String> {
        if let Some((lease, _, _)) = self.lease.take() {
            let mut c = self.client().await?;
            c.lease_revoke(lease)
                .await
                .map_err(etcd_err("lease revoke"))?;
        }
        Ok(())
    }

    async fn want(&mut self, w: Want) -> Result<(), String> {
        let mut c = self.client().await?;
        let value = serde_json::to_vec(&w).map_err(|e| e.to_string())?;
        c.put(WANT_KEY, value, None)
            .await
            .map_err(etcd_err("put"))?;
        Ok(())
    }
}
