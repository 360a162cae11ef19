//! `fushi report`: the resilience figures of a window — restarts, failures, escalations, fatal stops, time to recover, operators' orders, storage switches, leader failovers — and the record tally, each target line passed or failed (seed 002's table); read from disk, so it works with the daemon stopped.
//!
//! The history is the audit log's (`history.rs`); the tally is the journal's and the primary's
//! own (`tally.rs`); the collectors' count of records taken in is status.json's. Exit 0 when
//! every target passes, 1 when one fails or could not be measured, 78 on a config error.

mod history;
mod tally;

use anyhow::Context;
use fushi_actors::board::StatusDoc;
use fushi_actors::clock;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::config::Config;
pub use history::{history, History, Spread};
pub use tally::Records;

/// Seed 002's line: a failure is recovered from within 30 s.
pub const MTTR_TARGET_MS: u64 = 30_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub restarts: u64,
    pub failures: u64,
    pub escalations: u64,
    pub fatal_stops: u64,
    pub recovered: u64,
    pub mttr_ms: Spread,
}

impl From<&history::ActorHistory> for Figures {
    fn from(a: &history::ActorHistory) -> Self {
        Self {
            restarts: a.restarts,
            failures: a.failures,
            escalations: a.escalations,
            fatal_stops: a.fatal_stops,
            recovered: a.recovered,
            mttr_ms: Spread::of(&a.recover_ms),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActorFigures {
    pub name: String,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DaemonFigures {
    pub starts: u64,
    pub crashes_recovered: u64,
    pub mttr_ms: Spread,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manual {
    pub total: u64,
    pub by_action: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageFigures {
    pub switches: u64,
    pub secondary_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaderFigures {
    pub failovers: u64,
    pub failover_ms: Spread,
}

/// One line of the pass/fail table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub name: &'static str,
    pub target: String,
    pub value: Option<u64>,
    pub pass: bool,
    /// What the value stands on, or why there is none.
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub node: String,
    pub since: String,
    pub until: String,
    pub window_ms: u64,
    /// Audit events in the window: the figures below stand on these.
    pub audit_events: usize,
    pub total: Figures,
    pub actors: Vec<ActorFigures>,
    pub daemon: DaemonFigures,
    pub manual_interventions: Manual,
    pub storage: StorageFigures,
    pub leader: LeaderFigures,
    /// Over the node's whole history, not the window: a record lost last week is still lost.
    pub records: Records,
    pub targets: Vec<Target>,
}

impl Report {
    pub fn build(node: &str, h: &History, records: Records, since_ms: u64, until_ms: u64) -> Self {
        let total = h.total();
        let mut all = total.recover_ms.clone();
        all.extend_from_slice(&h.daemon.recover_ms);
        let all = Spread::of(&all);
        let manual = Manual {
            total: h.manual.values().sum(),
            by_action: h.manual.clone(),
        };
        let total = Figures::from(&total);
        let mttr_note = |s: &Spread| match s.samples {
            0 => "no failure to recover from".to_string(),
            1 => "1 recovery (actors and the daemon)".to_string(),
            n => format!("{n} recoveries (actors and the daemon)"),
        };
        let mut targets = vec![
            Target {
                name: "fatal_stops",
                target: "0".into(),
                value: Some(total.fatal_stops),
                pass: total.fatal_stops == 0,
                note: "actors given up on (give_up_after)".into(),
            },
            Target {
                name: "mttr_mean_ms",
                target: format!("<= {MTTR_TARGET_MS}"),
                value: all.mean,
                pass: all.mean.is_none_or(|m| m <= MTTR_TARGET_MS),
                note: mttr_note(&all),
            },
            Target {
                name: "mttr_p95_ms",
                target: format!("<= {MTTR_TARGET_MS}"),
                value: all.p95,
                pass: all.p95.is_none_or(|m| m <= MTTR_TARGET_MS),
                note: mttr_note(&all),
            },
        ];
        let why = records.primary_error.clone();
        let of = |v: Option<u64>, what: &str| match (&why, v) {
            (Some(e), _) => format!("not measured: {e}"),
            (None, _) => format!("of {} {what}", crate::ctl::records(records.durable)),
        };
        targets.push(Target {
            name: "records_lost",
            target: "0".into(),
            value: records.lost,
            pass: records.lost == Some(0),
            note: of(records.lost, "acknowledged"),
        });
        targets.push(Target {
            name: "records_duplicated",
            target: "0".into(),
            value: records.duplicated,
            pass: records.duplicated == Some(0),
            note: of(records.duplicated, "acknowledged"),
        });
        targets.push(Target {
            name: "manual_interventions",
            target: "0".into(),
            value: Some(manual.total),
            pass: manual.total == 0,
            note: if manual.total == 0 {
                "no operator's order".into()
            } else {
                manual
                    .by_action
                    .iter()
                    .map(|(a, n)| format!("{a} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        });
        Self {
            node: node.to_string(),
            since: clock::rfc3339_ms(since_ms),
            until: clock::rfc3339_ms(until_ms),
            window_ms: until_ms - since_ms,
            audit_events: h.events,
            total,
            actors: h
                .actors
                .iter()
                .map(|(name, a)| ActorFigures {
                    name: name.clone(),
                    figures: a.into(),
                })
                .collect(),
            daemon: DaemonFigures {
                starts: h.daemon.starts,
                crashes_recovered: h.daemon.crashes_recovered,
                mttr_ms: Spread::of(&h.daemon.recover_ms),
            },
            manual_interventions: manual,
            storage: StorageFigures {
                switches: h.storage_switches,
                secondary_ms: h.secondary_ms,
            },
            leader: LeaderFigures {
                failovers: h.leader_failovers,
                failover_ms: Spread::of(&h.failover_ms),
            },
            records,
            targets,
        }
    }

    pub fn passed(&self) -> bool {
        self.targets.iter().all(|t| t.pass)
    }
}

/// `fushi report [--since D] [--json]`.
pub fn run(config: &Path, since: Duration, json: bool) -> anyhow::Result<u8> {
    let (cfg, _) =
        Config::load(config).with_context(|| format!("loading config {}", config.display()))?;
    let data = &cfg.node.data_dir;
    let until_ms = clock::wall_ms();
    let since_ms = until_ms.saturating_sub(since.as_millis() as u64);
    // No audit log: no daemon ran on this data dir, and a table of zeros would say all is well.
    let Some(events) = crate::audit_file::read(&data.join("audit.jsonl"))? else {
        return Ok(1);
    };
    let h = history(&events, since_ms, until_ms);
    if h.untimed > 0 {
        eprintln!(
            "fushi: {} line(s) of {} have no readable time and are in no window",
            h.untimed,
            data.join("audit.jsonl").display()
        );
    }
    let status: Option<StatusDoc> = fushi_actors::status::load(&data.join("status.json"))
        .with_context(|| format!("reading {}", data.join("status.json").display()))?;
    let node = cfg.node_id();
    let mut records = tally::tally(&node, &data.join("journal"), &cfg.storage.primary)?;
    records.received = status
        .iter()
        .flat_map(|s| &s.actors)
        .map(|a| a.records)
        .sum();
    let report = Report::build(&node, &h, records, since_ms, until_ms);
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", human(&report, since));
    }
    Ok(if report.passed() { 0 } else { 1 })
}

/// A duration of ms the way the table wants it: `350 ms`, `5.0 s`, `2m 5s`.
fn ms(v: u64) -> String {
    match v {
        0..1000 => format!("{v} ms"),
        1000..60_000 => format!("{:.1} s", v as f64 / 1000.0),
        _ => humantime::format_duration(Duration::from_secs(v / 1000)).to_string(),
    }
}

/// `--since` as people write it: `24h`, `90m`, `45s`.
fn window(d: Duration) -> String {
    match d.as_secs() {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn spread(s: &Spread) -> String {
    match (s.p50, s.p95, s.max) {
        (Some(a), Some(b), Some(c)) => format!("p50 {} · p95 {} · max {}", ms(a), ms(b), ms(c)),
        _ => "-".into(),
    }
}

fn human(r: &Report, since: Duration) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "resilience report of node {}: the last {} ({} to {})\n",
        r.node,
        window(since),
        r.since,
        r.until
    );
    let _ = writeln!(
        o,
        "{:<22} {:<10} {:<12} {:<6} note",
        "target", "goal", "measured", ""
    );
    for t in &r.targets {
        let goal = match t.name {
            "mttr_mean_ms" | "mttr_p95_ms" => format!("<= {}", ms(MTTR_TARGET_MS)),
            _ => t.target.clone(),
        };
        let value = match (t.name, t.value) {
            (_, None) => "-".to_string(),
            ("mttr_mean_ms" | "mttr_p95_ms", Some(v)) => ms(v),
            (_, Some(v)) => v.to_string(),
        };
        let name = t.name.trim_end_matches("_ms").replace('_', " ");
        let verdict = if t.pass { "pass" } else { "FAIL" };
        let _ = writeln!(
            o,
            "{name:<22} {goal:<10} {value:<12} {verdict:<6} {}",
            t.note
        );
    }
    let _ = writeln!(
        o,
        "\n{:<28} {:>8} {:>8} {:>9} {:>5} {:>9}  time to recover",
        "actor", "restarts", "failures", "escalated", "fatal", "recovered"
    );
    let row = |o: &mut String, name: &str, f: &Figures| {
        let _ = writeln!(
            o,
            "{name:<28} {:>8} {:>8} {:>9} {:>5} {:>9}  {}",
            f.restarts,
            f.failures,
            f.escalations,
            f.fatal_stops,
            f.recovered,
            spread(&f.mttr_ms)
        );
    };
    for a in &r.actors {
        row(&mut o, &a.name, &a.figures);
    }
    row(&mut o, "(all actors)", &r.total);
    let _ = writeln!(
        o,
        "\ndaemon: {} start(s), {} crash(es) recovered{}",
        r.daemon.starts,
        r.daemon.crashes_recovered,
        match r.daemon.mttr_ms.samples {
            0 => String::new(),
            _ => format!(", back in {}", spread(&r.daemon.mttr_ms)),
        }
    );
    let _ = writeln!(
        o,
        "storage: {} switch(es), {} on the local journal only (primary down)",
        r.storage.switches,
        ms(r.storage.secondary_ms)
    );
    let _ = writeln!(
        o,
        "leader: {} failover(s){}",
        r.leader.failovers,
        match r.leader.failover_ms.samples {
            0 => String::new(),
            _ => format!(", taking {}", spread(&r.leader.failover_ms)),
        }
    );
    let rec = &r.records;
    let opt = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    let _ = writeln!(
        o,
        "records (the node's whole history): received {} · durable {} · forwarded {} · pending {} · lost {} · duplicated {}",
        rec.received,
        rec.durable,
        opt(rec.forwarded),
        rec.pending,
        opt(rec.lost),
        opt(rec.duplicated)
    );
    if let Some(e) = &rec.primary_error {
        let _ = writeln!(o, "  the primary could not be read: {e}");
    }
    if !rec.lost_ids.is_empty() {
        let _ = writeln!(
            o,
            "  lost: {} (run `fushi verify` for where the primary's holes are)",
            rec.lost_ids.join(", ")
        );
    }
    o
}
