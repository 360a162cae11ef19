//! SLO gates over collected streams (SPEC §6): the analyzer actor, which judges every `[[slo]]`'s windows as its stream's records are stored, and the evaluation it shares with `fushi slo --dry-run`.
//!
//! Records come from the journal: every record this node stores passes through it, in the order
//! it was stored, so the analyzer follows it from a position as the sync actor does (woken by
//! the journal's end moving, [`StorageHandle::info`]) and sees a record within moments of its
//! append, which is its arrival (see `window` for delay and lateness). A window is judged
//! `late_after` after its end, on the wall clock, so records that late still count in it.
//!
//! Crash-only: `pre_start` loads each gate's state (`state`), and the first message reads the
//! stream back from where the last judged window ended: the primary's day files for what sync
//! already forwarded and released, then the journal, an id seen in both counted once. Records of
//! judged windows are not counted again, records of open ones are counted from scratch, so a
//! restart neither loses nor double-counts a window. The state is written before any decision
//! is acted on (`gate`); all file I/O runs on the blocking pool under `io_timeout`.
//!
//! A gate that starts with no state begins with the window open now: the history of a stream
//! before its SLO was configured is not judged. After a long downtime at most [`state::PAST_KEPT`]
//! windows are judged back, so a daemon down for a week does not send a week of alerts.
//! What the analyzer sees is this node's journal: with leader election, the records another
//! node collected while it led reach this node's windows only through the primary at a start.

pub mod gate;
pub mod rollback;
pub mod source;
pub mod spec;
pub mod state;
pub mod window;

pub use spec::{Phase, SloKind, SloSpec};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::alert::{Alert, AlertOutbox};
use crate::audit::AuditLog;
use crate::board::{SloStatus, SloWindowLast, SloWindowNow, StatusBoard};
use crate::journal::Position;
use crate::storage::StorageHandle;
use crate::{events, tick_every, AbortOnDrop, Due};
use gate::{Effect, Gate};
use source::Item;
use state::Loaded;
use window::{format_ms, millis, parse_ts, window_start, Arrivals, WindowAcc};

/// The wall clock the analyzer judges windows by; a test gives it one of its own.
pub type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Reading a start's backlog (a day of the primary's files and the journal) may take longer
/// than one operation: this many `io_timeout`s.
const REREAD_TIMEOUTS: u32 = 20;

#[derive(Clone)]
pub struct AnalyzerActor;

#[derive(Clone)]
pub struct AnalyzerArgs {
    pub slos: Vec<SloSpec>,
    /// `<data_dir>`: the gates' state is in `slo/` under it.
    pub data_dir: PathBuf,
    pub storage: StorageHandle,
    /// The primary store's root, read at a start for records already forwarded.
    pub primary: PathBuf,
    pub io_timeout: Duration,
    pub board: StatusBoard,
    pub audit: AuditLog,
    pub alerts: AlertOutbox,
    pub clock: WallClock,
}

pub enum AnalyzerMsg {
    /// Read the streams back from the primary and the journal (a start's first message).
    Reread,
    /// The journal's end moved.
    JournalChanged,
    /// Judge the windows whose time has come.
    Tick(Due),
    RollbackDone {
        slo: String,
        incident: String,
        outcome: rollback::Outcome,
    },
    /// `fushi slo`: every gate with its windows, as JSON.
    Snapshot(RpcReplyPort<Value>),
    /// `fushi slo promote NAME`: the message to show, or why not.
    Promote(String, RpcReplyPort<Result<String, String>>),
}

/// One gate and the windows it has not judged yet.
struct Slot {
    gate: Gate,
    path: PathBuf,
    open: BTreeMap<i64, WindowAcc>,
    arrivals: Arrivals,
}

pub struct AnalyzerState {
    args: AnalyzerArgs,
    slots: Vec<Slot>,
    streams: HashSet<String>,
    /// Where the journal has been read to; None until the start's read-back is done.
    cursor: Option<Position>,
    /// The last id counted per stream: a frame at or below it is one already counted.
    last_ids: HashMap<String, (u64, u64)>,
    _ticker: AbortOnDrop,
    _watcher: AbortOnDrop,
}

/// Runs blocking `f` on the blocking pool, at most `timeout`.
async fn blocking<T: Send + 'static>(
    what: &str,
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what}: no answer within {}",
            humantime::format_duration(timeout)
        )),
    }
}

impl AnalyzerState {
    fn now(&self) -> (i64, String) {
        let ms = millis((self.args.clock)());
        (ms, format_ms(ms))
    }

    fn publish(&self, slot: &Slot) {
        let g = &slot.gate;
        let judged = g.state.judged_until_ms.unwrap_or(0);
        let w = g.spec.window_ms();
        let (now, _) = self.now();
        let current = window_start(now, w).max(judged);
        let last = g.state.last().map(|j| SloWindowLast {
            start: j.start.clone(),
            end: j.end.clone(),
            value: j.value,
            threshold: j.threshold,
            verdict: j.verdict.as_str().into(),
        });
        self.args.board.set_slo(SloStatus {
            name: g.spec.name.clone(),
            stream: g.spec.stream.clone(),
            kind: g.spec.kind.as_str().into(),
            metric: g.spec.metric(),
            phase: g.state.phase.as_str().into(),
            promotable: g.promotable(),
            good_windows: g.state.good_streak,
            promote_after: g.spec.promote_after,
            current: Some(SloWindowNow {
                start: format_ms(current),
                end: format_ms(current + w),
                records: slot.open.get(&current).map_or(0, |a| a.records),
            }),
            last,
            incident: g.state.incident.as_ref().map(|i| i.id.clone()),
            verdicts: g
                .state
                .verdicts
                .iter()
                .map(|(v, n)| (v.as_str().to_string(), *n))
                .collect(),
            too_late: g.state.too_late,
        });
    }

    async fn persist(&self, i: usize) -> Result<(), ActorProcessingErr> {
        let (path, st) = (self.slots[i].path.clone(), self.slots[i].gate.state.clone());
        let what = format!("writing {}", path.display());
        blocking(&what, self.args.io_timeout, move || state::save(&path, &st))
            .await?
            .map_err(|e| ActorProcessingErr::from(e.to_string()))
    }

    /// Carries out a gate's effects (its state is persisted already).
    fn act(&self, myself: &ActorRef<AnalyzerMsg>, i: usize, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Audit { event, payload } => {
                    let why = payload["why"].as_str().unwrap_or_default().to_string();
                    tracing::info!(
                        actor = "analyzer",
                        event,
                        slo = self.slots[i].gate.spec.name.as_str(),
                        "{why}"
                    );
                    self.args.audit.emit(event, Some("analyzer"), payload);
                }
                Effect::Alert(a) => self.args.alerts.push(Alert::Slo(a)),
                Effect::Rollback { incident } => self.start_rollback(myself, i, incident),
            }
        }
        self.publish(&self.slots[i]);
    }

    fn start_rollback(&self, myself: &ActorRef<AnalyzerMsg>, i: usize, incident: String) {
        let g = &self.slots[i].gate;
        let Some(inc) = g.state.incident.as_ref().filter(|x| x.id == incident) else {
            return;
        };
        let last = g.state.last();
        let env: Vec<(String, String)> = [
            ("FUSHI_SLO", g.spec.name.clone()),
            ("FUSHI_SLO_STREAM", g.spec.stream.clone()),
            ("FUSHI_SLO_KIND", g.spec.kind.as_str().to_string()),
            ("FUSHI_SLO_METRIC", g.spec.metric()),
            ("FUSHI_SLO_PHASE", inc.phase_from.as_str().to_string()),
            ("FUSHI_SLO_PHASE_TO", inc.phase_to.as_str().to_string()),
            ("FUSHI_SLO_INCIDENT", inc.id.clone()),
            ("FUSHI_SLO_WINDOW", inc.window.clone()),
            (
                "FUSHI_SLO_VALUE",
                last.and_then(|j| j.value)
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            ),
            (
                "FUSHI_SLO_THRESHOLD",
                last.map(|j| j.threshold.to_string()).unwrap_or_default(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let argv = g.spec.rollback.clone();
        let timeout = g.spec.rollback_timeout;
        let slo = g.spec.name.clone();
        tracing::warn!(
            actor = "analyzer",
            event = events::SLO_ROLLBACK,
            slo = slo.as_str(),
            incident = incident.as_str(),
            cmd = gate::shown_cmd(&argv).as_str(),
            "running the rollback"
        );
        let me = myself.clone();
        // Not tied to this actor's life: a rollback is not cut short by a restart of the
        // analyzer (whose next incarnation then reports it interrupted, and does not rerun it).
        tokio::spawn(async move {
            let outcome = rollback::run(&argv, &env, timeout).await;
            let _ = me.cast(AnalyzerMsg::RollbackDone {
                slo,
                incident,
                outcome,
            });
        });
    }

    /// Counts records into the windows they belong to; `arrival_ms` when seen live.
    fn feed(&mut self, items: Vec<Item>, arrival_ms: Option<i64>) {
        for it in items {
            let last = self.last_ids.entry(it.stream.clone()).or_insert((0, 0));
            if it.id.0 == last.0 && it.id.1 <= last.1 {
                // Within an epoch ids only grow: this frame was counted (a duplicate a failed
                // fsync left behind).
                continue;
            }
            *last = it.id;
            let Some(ts) = parse_ts(&it.ts) else { continue };
            for slot in self
                .slots
                .iter_mut()
                .filter(|s| s.gate.spec.stream == it.stream)
            {
                let delay = slot.arrivals.delay(ts, arrival_ms);
                let judged = slot.gate.state.judged_until_ms.unwrap_or(i64::MIN);
                if ts < judged {
                    slot.gate.state.too_late += 1;
                    if slot.gate.state.too_late.is_power_of_two() {
                        tracing::warn!(actor = "analyzer", event = events::SLO_TOO_LATE,
                            slo = slot.gate.spec.name.as_str(), ts = it.ts.as_str(),
                            count = slot.gate.state.too_late,
                            "a record arrived after its window was judged: it is counted in no window (raise late_after if this is normal)");
                    }
                    continue;
                }
                let w = slot.gate.spec.window_ms();
                slot.open.entry(window_start(ts, w)).or_default().observe(
                    &slot.gate.spec,
                    delay,
                    &it.data,
                );
            }
        }
    }

    async fn reread(&mut self) -> Result<(), ActorProcessingErr> {
        let (now, _) = self.now();
        for slot in &mut self.slots {
            let w = slot.gate.spec.window_ms();
            let oldest = window_start(now, w) - w * state::PAST_KEPT as i64;
            let from = match slot.gate.state.judged_until_ms {
                None => window_start(now, w),
                Some(j) if j < oldest => {
                    tracing::warn!(
                        actor = "analyzer",
                        slo = slot.gate.spec.name.as_str(),
                        from = format_ms(j).as_str(),
                        to = format_ms(oldest).as_str(),
                        "windows too far back to judge now are skipped"
                    );
                    oldest
                }
                Some(j) => j,
            };
            slot.gate.state.judged_until_ms = Some(from);
        }
        let timeout = self.args.io_timeout * REREAD_TIMEOUTS;
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        for stream in self.streams.clone() {
            let from = self
                .slots
                .iter()
                .filter(|s| s.gate.spec.stream == stream)
                .filter_map(|s| s.gate.state.judged_until_ms)
                .min()
                .unwrap_or(now);
            let day = format_ms(from)[..10].to_string();
            let root = self.args.primary.clone();
            let s = stream.clone();
            let what = format!("reading {} on the primary", stream);
            match blocking(&what, timeout, move || {
                source::primary(&root, &s, &day, from)
            })
            .await
            {
                Ok(Ok(got)) => {
                    seen.extend(got.iter().map(|i| (i.stream.clone(), i.id)));
                    items.extend(got);
                }
                Ok(Err(e)) => {
                    tracing::warn!(actor = "analyzer", event = events::SLO_SOURCE_GAP, stream = stream.as_str(), error = %e,
                    "cannot read the stream's forwarded records on the primary: the open windows count only what the journal still holds")
                }
                Err(e) => {
                    tracing::warn!(actor = "analyzer", event = events::SLO_SOURCE_GAP, stream = stream.as_str(), error = %e,
                    "the primary did not answer: the open windows count only what the journal still holds")
                }
            }
        }
        let info = *self.args.storage.info().borrow();
        let (dir, streams) = (
            self.args.storage.journal_dir().clone(),
            self.streams.clone(),
        );
        let superseded = self.args.storage.superseded();
        let (journal, end) = blocking("reading the journal", timeout, move || {
            source::journal(&dir, info.start, info.end, &streams, &superseded)
        })
        .await?
        .map_err(|e| ActorProcessingErr::from(e.to_string()))?;
        items.extend(
            journal
                .into_iter()
                .filter(|i| !seen.contains(&(i.stream.clone(), i.id))),
        );
        // Storage order per stream: ids grow within an epoch, and the primary's lines came first.
        let n = items.len();
        self.feed(items, None);
        self.cursor = Some(end);
        tracing::info!(
            actor = "analyzer",
            records = n,
            "read back the open windows' records"
        );
        Ok(())
    }

    async fn follow(&mut self) -> Result<(), ActorProcessingErr> {
        let Some(cursor) = self.cursor else {
            return Ok(());
        };
        let info = *self.args.storage.info().borrow();
        let from = if cursor < info.start {
            // Released before it was read (the analyzer was behind a whole segment).
            self.args.audit.emit(
                events::SLO_SOURCE_GAP,
                Some("analyzer"),
                json!({"from": cursor, "to": info.start, "why": "journal segments were released before the analyzer read them: their records are counted in no window"}),
            );
            info.start
        } else {
            cursor
        };
        if from >= info.end {
            return Ok(());
        }
        let (dir, streams) = (
            self.args.storage.journal_dir().clone(),
            self.streams.clone(),
        );
        let superseded = self.args.storage.superseded();
        let (items, end) = blocking("reading the journal", self.args.io_timeout, move || {
            source::journal(&dir, from, info.end, &streams, &superseded)
        })
        .await?
        .map_err(|e| ActorProcessingErr::from(e.to_string()))?;
        let (now, _) = self.now();
        self.feed(items, Some(now));
        self.cursor = Some(end);
        Ok(())
    }

    async fn tick(&mut self, myself: &ActorRef<AnalyzerMsg>) -> Result<(), ActorProcessingErr> {
        if self.cursor.is_none() {
            return Ok(());
        }
        let (now, now_s) = self.now();
        for i in 0..self.slots.len() {
            loop {
                let slot = &mut self.slots[i];
                let spec = &slot.gate.spec;
                let Some(start) = slot.gate.state.judged_until_ms else {
                    break;
                };
                if now < start + spec.window_ms() + spec.late_after_ms() {
                    break;
                }
                let acc = slot.open.remove(&start).unwrap_or_default();
                let effects = slot.gate.close(start, &acc, &now_s);
                self.persist(i).await?;
                self.act(myself, i, effects);
            }
            self.publish(&self.slots[i]);
        }
        Ok(())
    }

    fn snapshot(&self) -> Value {
        let slos: Vec<Value> = self
            .slots
            .iter()
            .map(|s| {
                let g = &s.gate;
                let st = &g.state;
                let w = g.spec.window_ms();
                let current = st.judged_until_ms.map(|j| {
                    let (now, _) = self.now();
                    let c = window_start(now, w).max(j);
                    json!({"start": format_ms(c), "end": format_ms(c + w),
                           "records": s.open.get(&c).map_or(0, |a| a.records)})
                });
                json!({
                    "name": g.spec.name, "stream": g.spec.stream, "kind": g.spec.kind.as_str(),
                    "metric": g.spec.metric(), "phase": st.phase.as_str(),
                    "promotable": g.promotable(), "good_windows": st.good_streak,
                    "promote_after": g.spec.promote_after,
                    "thresholds": g.spec.thresholds.iter().map(|(p, t)| (p.as_str().to_string(), json!(t))).collect::<serde_json::Map<_, _>>(),
                    "incident": st.incident, "current": current, "too_late": st.too_late,
                    "windows": st.past.iter().map(|j| json!({
                        "start": j.start, "end": j.end, "value": j.value, "threshold": j.threshold,
                        "verdict": j.verdict.as_str(), "phase": j.phase.as_str(), "records": j.records,
                        "late": j.late, "why": j.why,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({ "slos": slos })
    }
}

impl Actor for AnalyzerActor {
    type Msg = AnalyzerMsg;
    type State = AnalyzerState;
    type Arguments = AnalyzerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<AnalyzerMsg>,
        args: AnalyzerArgs,
    ) -> Result<AnalyzerState, ActorProcessingErr> {
        let now = format_ms(millis((args.clock)()));
        let mut slots = Vec::new();
        let mut pending = Vec::new();
        for spec in &args.slos {
            let path = state::path(&args.data_dir, &spec.name);
            let p = path.clone();
            let what = format!("reading {}", path.display());
            let loaded = blocking(&what, args.io_timeout, move || state::load(&p))
                .await?
                .map_err(|e| ActorProcessingErr::from(e.to_string()))?;
            let found = match loaded {
                Loaded::Fresh => None,
                Loaded::Found(s) => Some(*s),
                Loaded::Unreadable { moved_to, error } => {
                    tracing::error!(
                        actor = "analyzer",
                        event = events::SLO_STATE_RESET,
                        slo = spec.name.as_str(),
                        error = error.as_str(),
                        "SLO state unreadable: kept as {} and started afresh",
                        moved_to.display()
                    );
                    args.audit.emit(events::SLO_STATE_RESET, Some("analyzer"),
                        json!({"slo": spec.name, "error": error, "moved_to": moved_to.display().to_string()}));
                    None
                }
            };
            let (gate, effects, dirty) = Gate::new(spec.clone(), found, &now);
            slots.push(Slot {
                gate,
                path,
                open: BTreeMap::new(),
                arrivals: Arrivals::default(),
            });
            pending.push((dirty, effects));
        }
        let tick = args
            .slos
            .iter()
            .map(|s| (s.window / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)))
            .min()
            .unwrap_or(Duration::from_secs(1));
        let ticker = tick_every(myself.clone(), tick, AnalyzerMsg::Tick);
        let mut journal = args.storage.info();
        let me = myself.clone();
        let watcher = AbortOnDrop(tokio::spawn(async move {
            while journal.changed().await.is_ok() {
                if me.cast(AnalyzerMsg::JournalChanged).is_err() {
                    break;
                }
            }
        }));
        let state = AnalyzerState {
            streams: args.slos.iter().map(|s| s.stream.clone()).collect(),
            args,
            slots,
            cursor: None,
            last_ids: HashMap::new(),
            _ticker: ticker,
            _watcher: watcher,
        };
        // An interrupted rollback is recorded as such before it is reported (never rerun).
        for (i, (dirty, effects)) in pending.into_iter().enumerate() {
            if dirty {
                state.persist(i).await?;
            }
            state.act(&myself, i, effects);
        }
        myself.cast(AnalyzerMsg::Reread)?;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<AnalyzerMsg>,
        msg: AnalyzerMsg,
        state: &mut AnalyzerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AnalyzerMsg::Reread => {
                state.reread().await?;
                state.tick(&myself).await?;
            }
            AnalyzerMsg::JournalChanged => state.follow().await?,
            AnalyzerMsg::Tick(_due) => {
                // Records stored up to now count before their windows are judged.
                state.follow().await?;
                state.tick(&myself).await?;
            }
            AnalyzerMsg::RollbackDone {
                slo,
                incident,
                outcome,
            } => {
                let Some(i) = state.slots.iter().position(|s| s.gate.spec.name == slo) else {
                    return Ok(());
                };
                let (_, now) = state.now();
                let effects = state.slots[i].gate.rollback_finished(
                    &incident,
                    outcome.exit_code,
                    outcome.error,
                    &now,
                );
                state.persist(i).await?;
                state.act(&myself, i, effects);
            }
            AnalyzerMsg::Snapshot(reply) => {
                let _ = reply.send(state.snapshot());
            }
            AnalyzerMsg::Promote(name, reply) => {
                let Some(i) = state.slots.iter().position(|s| s.gate.spec.name == name) else {
                    let known: Vec<_> = state
                        .slots
                        .iter()
                        .map(|s| s.gate.spec.name.as_str())
                        .collect();
                    let _ = reply.send(Err(format!(
                        "no SLO named {name:?} (known: {})",
                        known.join(", ")
                    )));
                    return Ok(());
                };
                let before = state.slots[i].gate.state.clone();
                match state.slots[i].gate.promote() {
                    Ok(effect) => {
                        if let Err(e) = state.persist(i).await {
                            state.slots[i].gate.state = before;
                            let _ = reply.send(Err(format!("not promoted: {e}")));
                            return Ok(());
                        }
                        let g = &state.slots[i].gate;
                        let msg = format!(
                            "SLO {name} promoted to phase {}: threshold now {}",
                            g.state.phase,
                            g.spec
                                .threshold(g.state.phase)
                                .map_or("none".into(), |t| t.to_string())
                        );
                        state.act(&myself, i, vec![effect]);
                        let _ = reply.send(Ok(msg));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
        }
        Ok(())
    }
}
