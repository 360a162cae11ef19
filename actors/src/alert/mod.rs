//! The alert actor: turns what the tree reports (escalations, recoveries, no leader, SLO verdicts…) into messages a person receives, on every channel, exactly when needed.
//!
//! The path of an alert:
//! 1. A supervisor (or the leader, the analyzer, the daemon) pushes it onto the [`AlertOutbox`],
//!    in memory: no disk on the restart path, so a zero-backoff restart is not slowed.
//! 2. The actor takes what is queued, asks noise control ([`noise`]) about each alert, and
//!    commits the outcome to the outbox file ([`store`]) with one fsync: from then on the
//!    alert is *accepted*, and survives a `kill -9`. Only then is it popped from memory.
//! 3. Accepted alerts are logged at once (the journald channel, PRIORITY=2) and gathered into
//!    a group; `group_wait` after the group's first alert it becomes one [`message::Message`],
//!    committed with the channels that owe it.
//! 4. Each channel's task ([`channel`]) delivers its queue; each delivery's end is committed,
//!    audited `alert.sent` or `alert.failed`. A restart resumes whatever was still owed.

pub mod channel;
pub mod mask;
pub mod message;
pub mod noise;
pub mod store;
pub mod template;
mod types;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;

pub use channel::{ChannelSpec, Outcome};
pub use types::{Alert, Class, Role, SloAlert, SloVerdict};

use crate::audit::AuditLog;
use crate::board::{Counter, StatusBoard};
use crate::{clock, events};
use message::{Item, Message, Wording};
use noise::{Decision, NoiseConfig};
use store::{Commit, Done, Owed, Snapshot, Store};

/// journald's `critical`, which SPEC §6 gives the journald channel: alerts stand out in
/// `journalctl -p crit`. The daemon's journald layer takes a `priority` field over the level.
const JOURNALD_PRIORITY: u8 = 2;

/// Called with every alert pushed (see [`AlertOutbox::tap`]).
type Tap = Arc<dyn Fn(&Alert) + Send + Sync>;

struct OutboxInner {
    queue: VecDeque<Alert>,
    /// How many at the queue's front were already logged as not accepted (see
    /// [`AlertState::log_unaccepted`]), so that each is logged so at most once.
    logged: usize,
    actor: Option<ActorRef<AlertMsg>>,
    tap: Option<Tap>,
}

/// The queue between the tree and the alert actor; it survives the actor's restarts.
#[derive(Clone)]
pub struct AlertOutbox {
    inner: Arc<Mutex<OutboxInner>>,
}

impl Default for AlertOutbox {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(OutboxInner {
                queue: VecDeque::new(),
                logged: 0,
                actor: None,
                tap: None,
            })),
        }
    }
}

impl AlertOutbox {
    fn lock(&self) -> MutexGuard<'_, OutboxInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An outbox that also hands every pushed alert to `tap`, at the moment it is pushed: how
    /// the supervisor's tests see what the tree alerted and when on their paused clock,
    /// without the alert actor's disk in between.
    pub fn tap(tap: impl Fn(&Alert) + Send + Sync + 'static) -> Self {
        let outbox = Self::default();
        outbox.lock().tap = Some(Arc::new(tap));
        outbox
    }

    pub fn push(&self, alert: Alert) {
        let mut g = self.lock();
        if let Some(tap) = &g.tap {
            tap(&alert);
        }
        g.queue.push_back(alert);
        if let Some(actor) = &g.actor {
            // If the actor is gone, its successor drains the queue in pre_start.
            let _ = actor.cast(AlertMsg::Drain);
        }
    }

    /// Alerts pushed and not yet accepted (committed to the outbox file).
    pub fn pending(&self) -> usize {
        self.lock().queue.len()
    }

    fn attach(&self, actor: ActorRef<AlertMsg>) {
        self.lock().actor = Some(actor);
    }

    fn peek(&self) -> Vec<Alert> {
        self.lock().queue.iter().cloned().collect()
    }

    fn pop(&self, n: usize) {
        let mut g = self.lock();
        let n = n.min(g.queue.len());
        g.queue.drain(..n);
        g.logged = g.logged.saturating_sub(n);
    }

    /// The queued alerts not yet logged as unaccepted, marked logged now.
    fn unlogged(&self) -> Vec<Alert> {
        let mut g = self.lock();
        let from = g.logged.min(g.queue.len());
        g.logged = g.queue.len();
        g.queue.iter().skip(from).cloned().collect()
    }
}

/// The journald channel's part of the config: always on; `events` picks what it logs at
/// PRIORITY=2 (the rest at warning), its templates word the lines.
#[derive(Debug, Clone, Default)]
pub struct JournaldSpec {
    pub events: Vec<Class>,
    pub wording: Wording,
}

/// The `[alert]` section, resolved.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// `<data_dir>/alerts`: the outbox file.
    pub dir: PathBuf,
    pub noise: NoiseConfig,
    pub group_wait: Duration,
    /// Waits between a failed attempt and the next (5 s → 10 s → 15 s).
    pub retry: Vec<Duration>,
    /// Bound on one outbox commit (a hung data disk fails the actor instead of hanging it).
    pub io_timeout: Duration,
    pub journald: JournaldSpec,
    pub channels: Vec<ChannelSpec>,
    pub masker: mask::Masker,
}

#[derive(Clone)]
pub struct AlertActor;

#[derive(Clone)]
pub struct AlertArgs {
    pub outbox: AlertOutbox,
    pub audit: AuditLog,
    pub board: StatusBoard,
    pub settings: Arc<AlertSettings>,
}

pub enum AlertMsg {
    /// Accept everything queued in the outbox.
    Drain,
    /// The group may be due: make it a message.
    Flush,
    /// A flapping actor may have settled.
    Settle,
    /// A channel's task ended a delivery.
    Delivered {
        message: u64,
        channel: String,
        outcome: Outcome,
    },
    /// A channel's task panicked: the actor fails, and its restart resumes the outbox.
    ChannelGone(String),
}

pub struct AlertState {
    args: AlertArgs,
    store: Arc<Mutex<Store>>,
    snap: Snapshot,
    workers: BTreeMap<String, channel::Worker>,
    /// The wall-clock ms the scheduled settle check is for.
    settle_at: Option<u64>,
    flush_scheduled: bool,
    /// Noise control's clock: the wall clock (or the outbox's last reading, if later) at
    /// `pre_start`, advanced by the runtime's monotonic clock since. A wall clock stepped
    /// back neither holds repeats for hours nor keeps a flapping actor held; one stepped
    /// forward ages nothing at once.
    epoch: (u64, tokio::time::Instant),
}

/// Logs at PRIORITY=2 the queued alerts the outbox could not accept (`why`): a data disk
/// that is full or failing must not silence the one channel that needs no disk of fushi's.
fn log_unaccepted(outbox: &AlertOutbox, settings: &AlertSettings, why: &str) {
    for a in outbox.unlogged() {
        let text = settings.masker.text(&template::builtin(
            &a,
            &template::Context {
                node: &settings.journald.wording.node,
                ..Default::default()
            },
        ));
        tracing::error!(
            actor = a.actor(),
            event = a.event(),
            alert = a.template(),
            priority = JOURNALD_PRIORITY,
            "{text} (not yet in the alert outbox, so no other channel has it: {why})"
        );
    }
}

/// Runs a store step on the blocking pool within the configured bound.
async fn with_store<T: Send + 'static>(
    store: &Arc<Mutex<Store>>,
    bound: Duration,
    f: impl FnOnce(&mut Store) -> std::io::Result<T> + Send + 'static,
) -> Result<T, ActorProcessingErr> {
    let store = store.clone();
    let job = tokio::task::spawn_blocking(move || {
        let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    });
    match tokio::time::timeout(bound, job).await {
        Ok(Ok(r)) => Ok(r.map_err(|e| format!("writing the alert outbox: {e}"))?),
        Ok(Err(e)) => Err(format!("writing the alert outbox: {e}").into()),
        Err(_) => Err(format!(
            "writing the alert outbox took longer than {bound:?}: is the data disk hung?"
        )
        .into()),
    }
}

impl AlertState {
    fn settings(&self) -> &AlertSettings {
        &self.args.settings
    }

    /// Now on noise control's clock (see `epoch`), in ms since the Unix epoch.
    fn now(&self) -> u64 {
        self.epoch.0 + self.epoch.1.elapsed().as_millis() as u64
    }

    async fn commit(&mut self, mut c: Commit) -> Result<(), ActorProcessingErr> {
        if let Some(s) = &mut c.state {
            s.clock_ms = self.now();
        }
        let bound = self.settings().io_timeout;
        with_store(&self.store, bound, move |s| s.commit(c)).await?;
        self.publish();
        Ok(())
    }

    /// What status and metrics show of the outbox.
    fn publish(&self) {
        let (owed, oldest) = {
            let s = self.store.lock().unwrap_or_else(|p| p.into_inner());
            (s.owed_by_channel(), s.oldest_owed_ms())
        };
        self.args.board.set_alerts(crate::board::AlertsStatus {
            owed,
            oldest_owed_ms: oldest,
            oldest_owed_at: oldest.map(clock::rfc3339_ms),
            pending: self.snap.pending.len(),
            flapping: self.snap.noise.flapping(),
            open: self.snap.noise.open(),
        });
    }

    /// The journald channel: every accepted item's line, at once.
    fn log(&self, item: &Item) {
        let j = &self.settings().journald;
        let text = self.settings().masker.text(&item.text(&j.wording));
        let a = &item.alert;
        let critical = j.events.is_empty() || j.events.contains(&a.class());
        let failures = match a {
            Alert::Escalation { failures, .. }
            | Alert::Recovered { failures, .. }
            | Alert::Fatal { failures, .. } => Some(*failures),
            _ => None,
        };
        // Outside the channel's `events`, a line at the level alone, not at PRIORITY=2.
        let priority = critical.then_some(JOURNALD_PRIORITY);
        if item.firing() && critical {
            tracing::error!(
                actor = a.actor(),
                event = a.event(),
                failures,
                alert = a.template(),
                priority,
                "{text}"
            );
        } else {
            tracing::warn!(
                actor = a.actor(),
                event = a.event(),
                failures,
                alert = a.template(),
                priority,
                "{text}"
            );
        }
        self.args.board.count(Counter::AlertsSent, 1);
        let mut payload = json!({"channel": "journald", "template": a.template(), "alert_id": item.id, "alert": a});
        self.settings().masker.value(&mut payload);
        self.args
            .audit
            .emit(events::ALERT_SENT, Some(a.actor()), payload);
    }

    fn schedule_flush(&mut self, myself: &ActorRef<AlertMsg>) {
        if self.flush_scheduled {
            return;
        }
        let Some(first) = self.snap.pending.first() else {
            return;
        };
        let due = first.at_ms + self.settings().group_wait.as_millis() as u64;
        // At most `group_wait`, whatever the wall clock did since the group's first alert.
        let wait =
            Duration::from_millis(due.saturating_sub(self.now())).min(self.settings().group_wait);
        self.flush_scheduled = true;
        myself.send_after(wait, || AlertMsg::Flush);
    }

    fn schedule_settle(&mut self, myself: &ActorRef<AlertMsg>) {
        let Some(due) = self.snap.noise.next_settle(&self.settings().noise) else {
            return;
        };
        if self.settle_at.is_some_and(|at| at <= due) {
            return;
        }
        self.settle_at = Some(due);
        myself.send_after(
            Duration::from_millis(due.saturating_sub(self.now())),
            || AlertMsg::Settle,
        );
    }

    /// The pending group as a message, and the channels that owe it.
    fn close_group(&mut self) -> Option<Owed> {
        if self.snap.pending.is_empty() {
            return None;
        }
        let items = std::mem::take(&mut self.snap.pending);
        let message = Message {
            id: self.snap.next_id,
            at_ms: self.now(),
            items,
        };
        self.snap.next_id += 1;
        let channels: Vec<String> = self
            .settings()
            .channels
            .iter()
            .filter(|c| !message.for_events(&c.events).is_empty())
            .map(|c| c.name.clone())
            .collect();
        (!channels.is_empty()).then_some(Owed { message, channels })
    }

    fn hand_over(&self, owed: &Owed) {
        let m = Arc::new(owed.message.clone());
        for ch in &owed.channels {
            if let Some(w) = self.workers.get(ch) {
                w.send(m.clone());
            }
        }
    }

    async fn drain(&mut self, myself: &ActorRef<AlertMsg>) -> Result<(), ActorProcessingErr> {
        let alerts = self.args.outbox.peek();
        if alerts.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let cfg = self.settings().noise;
        let mut snap = self.snap.clone();
        let mut items = Vec::new();
        let mut held = Vec::new();
        for alert in &alerts {
            let id = snap.next_id;
            snap.next_id += 1;
            match snap.noise.accept(alert, now, &cfg) {
                Decision::Send(note) => items.push(Item {
                    id,
                    at_ms: now,
                    alert: alert.clone(),
                    note,
                }),
                Decision::Suppress(why) => held.push((id, alert, why)),
            }
        }
        snap.pending.extend(items.iter().cloned());
        let old = std::mem::replace(&mut self.snap, snap);
        let owed = if self.settings().group_wait.is_zero() {
            self.close_group()
        } else {
            None
        };
        if let Err(e) = self
            .commit(Commit {
                state: Some(self.snap.clone()),
                owed: owed.iter().cloned().collect(),
                done: Vec::new(),
            })
            .await
        {
            self.snap = old; // still queued in memory: the next incarnation accepts them
            log_unaccepted(&self.args.outbox, self.settings(), &e.to_string());
            return Err(e);
        }
        self.args.outbox.pop(alerts.len());
        for item in &items {
            self.log(item);
        }
        for (id, alert, why) in held {
            self.args.board.count(Counter::AlertsSuppressed, 1);
            tracing::info!(
                actor = alert.actor(),
                event = events::ALERT_SUPPRESSED,
                reason = why.reason(),
                alert = alert.template(),
                "alert held back ({})",
                why.reason()
            );
            let count = match why {
                noise::Why::Repeat { count } | noise::Why::Flapping { held: count } => Some(count),
                noise::Why::NothingOpen => None,
            };
            self.args.audit.emit(
                events::ALERT_SUPPRESSED,
                Some(alert.actor()),
                json!({"reason": why.reason(), "count": count, "template": alert.template(), "alert_id": id}),
            );
        }
        if let Some(o) = &owed {
            self.hand_over(o);
        }
        self.schedule_flush(myself);
        self.schedule_settle(myself);
        Ok(())
    }

    /// The group's timer fired: the group is due, whatever the wall clock says now.
    async fn flush(&mut self) -> Result<(), ActorProcessingErr> {
        self.flush_scheduled = false;
        if self.snap.pending.is_empty() {
            return Ok(());
        }
        let owed = self.close_group();
        self.commit(Commit {
            state: Some(self.snap.clone()),
            owed: owed.iter().cloned().collect(),
            done: Vec::new(),
        })
        .await?;
        if let Some(o) = &owed {
            self.hand_over(o);
        }
        Ok(())
    }

    async fn settle(&mut self, myself: &ActorRef<AlertMsg>) -> Result<(), ActorProcessingErr> {
        self.settle_at = None;
        let now = self.now();
        let cfg = self.settings().noise;
        let settled = self.snap.noise.settle(now, &cfg);
        if !settled.is_empty() {
            let mut items = Vec::new();
            for (alert, note) in settled {
                items.push(Item {
                    id: self.snap.next_id,
                    at_ms: now,
                    alert,
                    note,
                });
                self.snap.next_id += 1;
            }
            self.snap.pending.extend(items.iter().cloned());
            self.commit(Commit {
                state: Some(self.snap.clone()),
                ..Default::default()
            })
            .await?;
            for i in &items {
                self.log(i);
            }
            self.schedule_flush(myself);
        }
        self.schedule_settle(myself);
        Ok(())
    }

    async fn delivered(
        &mut self,
        message: u64,
        channel: String,
        outcome: Outcome,
    ) -> Result<(), ActorProcessingErr> {
        self.commit(Commit {
            done: vec![Done {
                message,
                channel: channel.clone(),
            }],
            ..Default::default()
        })
        .await?;
        match outcome {
            Outcome::Sent { attempts } => {
                self.args.board.count(Counter::AlertsSent, 1);
                self.args.audit.emit(
                    events::ALERT_SENT,
                    None,
                    json!({"channel": channel, "message": message, "attempts": attempts}),
                );
            }
            Outcome::Failed { attempts, error } => {
                self.args.board.count(Counter::AlertsFailed, 1);
                tracing::error!(actor = "alert", event = events::ALERT_FAILED, channel = channel.as_str(),
                    alert_message = message, attempt = attempts, error = %error,
                    "alert delivery given up after {attempts} attempts; the daemon's log has the alert");
                self.args.audit.emit(
                    events::ALERT_FAILED,
                    None,
                    json!({"channel": channel, "message": message, "attempts": attempts, "error": error}),
                );
            }
        }
        Ok(())
    }
}

impl Actor for AlertActor {
    type Msg = AlertMsg;
    type State = AlertState;
    type Arguments = AlertArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<AlertMsg>,
        args: AlertArgs,
    ) -> Result<AlertState, ActorProcessingErr> {
        let dir = args.settings.dir.clone();
        let opened = tokio::task::spawn_blocking(move || Store::open(&dir));
        let failed = |why: String| -> ActorProcessingErr {
            log_unaccepted(&args.outbox, &args.settings, &why);
            why.into()
        };
        let (store, resumed) = match tokio::time::timeout(args.settings.io_timeout, opened).await {
            Ok(Ok(Ok(r))) => r,
            Ok(Ok(Err(e))) => {
                return Err(failed(format!(
                    "opening the alert outbox in {}: {e}",
                    args.settings.dir.display()
                )))
            }
            Ok(Err(e)) => return Err(failed(format!("opening the alert outbox: {e}"))),
            Err(_) => {
                return Err(failed(format!(
                    "opening the alert outbox in {} took longer than {:?}",
                    args.settings.dir.display(),
                    args.settings.io_timeout
                )))
            }
        };
        if resumed.bad_lines > 0 {
            tracing::warn!(
                actor = "alert",
                event = events::ALERT_OUTBOX_DAMAGED,
                lines = resumed.bad_lines,
                "the alert outbox had {} unreadable lines; they were skipped",
                resumed.bad_lines
            );
        }
        if args
            .settings
            .channels
            .iter()
            .any(|c| matches!(c.kind, channel::Kind::Webhook { .. }))
        {
            let _ = tokio::task::spawn_blocking(channel::warm_up).await;
        }
        let workers = args
            .settings
            .channels
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    channel::spawn(
                        Arc::new(c.clone()),
                        args.settings.retry.clone(),
                        args.settings.masker.clone(),
                        myself.clone(),
                    ),
                )
            })
            .collect();
        let mut state = AlertState {
            args,
            store: Arc::new(Mutex::new(store)),
            snap: resumed.state,
            workers,
            settle_at: None,
            flush_scheduled: false,
            epoch: (clock::wall_ms(), tokio::time::Instant::now()),
        };
        state.epoch.0 = state.epoch.0.max(state.snap.clock_ms);
        // Deliveries a killed incarnation still owed. A channel no longer configured owes
        // nothing any more (each such message audited as failed, so none vanishes unsaid);
        // one whose `events` no longer take any of a message's alerts owes that one nothing.
        let mut gone = Vec::new();
        for o in &resumed.owed {
            let mut to = o.clone();
            to.channels.clear();
            for ch in &o.channels {
                match state.settings().channels.iter().find(|c| c.name == *ch) {
                    Some(spec) if !o.message.for_events(&spec.events).is_empty() => {
                        to.channels.push(ch.clone())
                    }
                    Some(_) => gone.push((o.message.id, ch.clone(), None)),
                    None => gone.push((
                        o.message.id,
                        ch.clone(),
                        Some("the channel is no longer in the config"),
                    )),
                }
            }
            state.hand_over(&to);
        }
        if !gone.is_empty() {
            let done = gone
                .iter()
                .map(|(message, channel, _)| Done {
                    message: *message,
                    channel: channel.clone(),
                })
                .collect();
            state
                .commit(Commit {
                    done,
                    ..Default::default()
                })
                .await?;
            for (message, channel, why) in gone {
                let Some(why) = why else { continue };
                tracing::error!(
                    actor = "alert",
                    event = events::ALERT_FAILED,
                    channel = channel.as_str(),
                    message,
                    "an alert owed to channel {channel} is dropped: {why}"
                );
                state.args.audit.emit(
                    events::ALERT_FAILED,
                    None,
                    json!({"channel": channel, "message": message, "attempts": 0, "error": why}),
                );
            }
        }
        state.publish();
        state.args.outbox.attach(myself.clone());
        // Whatever queued up while no alert actor ran.
        myself.cast(AlertMsg::Drain)?;
        state.schedule_flush(&myself);
        state.schedule_settle(&myself);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<AlertMsg>,
        msg: AlertMsg,
        state: &mut AlertState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AlertMsg::Drain => state.drain(&myself).await,
            AlertMsg::Flush => state.flush().await,
            AlertMsg::Settle => state.settle(&myself).await,
            AlertMsg::Delivered {
                message,
                channel,
                outcome,
            } => state.delivered(message, channel, outcome).await,
            AlertMsg::ChannelGone(name) => {
                Err(format!("the task of alert channel {name} panicked").into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::channel::Kind;
    use crate::faults::{arm, disarm, Op};

    fn settings(dir: &std::path::Path, file: &std::path::Path) -> Arc<AlertSettings> {
        Arc::new(AlertSettings {
            dir: dir.to_path_buf(),
            noise: NoiseConfig {
                repeat_after_ms: 1_800_000,
                flap_count: 3,
                flap_window_ms: 1_800_000,
                stable_after_ms: 600_000,
            },
            group_wait: Duration::ZERO,
            retry: vec![Duration::from_millis(10)],
            io_timeout: Duration::from_secs(10),
            journald: JournaldSpec::default(),
            channels: vec![ChannelSpec {
                name: "file".into(),
                kind: Kind::File {
                    path: file.to_path_buf(),
                },
                events: Vec::new(),
                wording: Wording {
                    node: "n".into(),
                    ..Default::default()
                },
                timeout: Duration::from_secs(10),
                min_interval: Duration::ZERO,
            }],
            masker: Default::default(),
        })
    }

    async fn lines(file: &std::path::Path, n: usize) -> Vec<String> {
        for _ in 0..1000 {
            if let Ok(t) = std::fs::read_to_string(file) {
                let l: Vec<String> = t.lines().map(str::to_string).collect();
                if l.len() >= n {
                    return l;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{file:?} never had {n} lines");
    }

    #[tokio::test]
    async fn an_outbox_that_cannot_be_written_keeps_the_alert_queued_for_the_next_incarnation() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, file) = (tmp.path().join("alerts"), tmp.path().join("out.jsonl"));
        let outbox = AlertOutbox::default();
        let args = AlertArgs {
            outbox: outbox.clone(),
            audit: AuditLog::memory("n"),
            board: StatusBoard::new("n", "prod", "t.toml"),
            settings: settings(&dir, &file),
        };
        let (actor, task) = Actor::spawn(None, AlertActor, args.clone()).await.unwrap();
        arm(Op::Fsync, &dir, 0, 1, 5);
        outbox.push(Alert::DaemonRecovered { why: "test".into() });
        task.await.unwrap();
        disarm(&dir);
        assert_eq!(actor.get_status(), ractor::ActorStatus::Stopped);
        assert_eq!(outbox.pending(), 1, "not accepted, so still queued");
        assert!(!file.exists(), "nothing delivered");

        let (actor, task) = Actor::spawn(None, AlertActor, args.clone()).await.unwrap();
        let got = lines(&file, 1).await;
        assert!(got[0].contains("came back: test"), "{got:?}");
        assert_eq!(outbox.pending(), 0);
        actor.stop(None);
        task.await.unwrap();

        // A third incarnation owes nothing: the delivery was committed, so it is not repeated.
        let (actor, task) = Actor::spawn(None, AlertActor, args).await.unwrap();
        outbox.push(Alert::StorageDown {
            primary: "/nas".into(),
            why: "EIO".into(),
        });
        let got = lines(&file, 2).await;
        assert!(
            got[1].contains("cannot write the primary /nas (EIO)"),
            "{got:?}"
        );
        assert_eq!(got.len(), 2, "{got:?}");
        actor.stop(None);
        task.await.unwrap();
    }
}
