//! Builds the whole supervision tree of SPEC §3 from a validated config, in one place.

use fushi_actors::alert::{AlertActor, AlertArgs};
use fushi_actors::collectors::command::{CommandActor, CommandArgs};
use fushi_actors::collectors::heartbeat::{HeartbeatActor, HeartbeatArgs};
use fushi_actors::collectors::http::{HttpCollectorActor, HttpCollectorArgs};
use fushi_actors::collectors::listen::{ListenActor, ListenArgs};
use fushi_actors::collectors::tail::{TailActor, TailArgs};
use fushi_actors::leader::{LeaderActor, LeaderArgs, LeaderBackendArgs};
use fushi_actors::lease::Lease;
use fushi_actors::sink::RecordSink;
use fushi_actors::slo::{AnalyzerActor, AnalyzerArgs};
use fushi_actors::status::{StatusActor, StatusArgs};
use fushi_actors::storage::{StorageActor, StorageArgs, StorageHandle};
use fushi_actors::supervisor::{gate, ChildSpec, Strategy, SupervisorArgs, TreeContext};
use fushi_actors::sync::{PrimaryIo, SyncActor, SyncArgs};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{
    CollectorConfig, CollectorKind, Config, ConfigError, LeaderBackend, ReadFrom,
    DEFAULT_GLOB_INTERVAL, DEFAULT_PARTIAL_AFTER, DEFAULT_ROTATE_WAIT,
};
use crate::control::server::{ControlActor, ControlArgs, Shared};
use crate::http::{HttpActor, HttpArgs};

/// How long the status actor lets a burst of changes gather before one write.
const STATUS_COALESCE: Duration = Duration::from_millis(20);
/// Journal segment size: large enough for few files, small enough to release space promptly.
const SEGMENT_BYTES: u64 = 16 << 20;
/// Once caught up, an active segment this large is closed so that it can be released.
const ROTATE_AFTER: u64 = 1 << 20;

/// Segment size and rotation threshold for a journal bounded by `max_local`. Only closed segments
/// can be released, so a segment must be a small fraction of the bound: otherwise a full journal
/// could sit entirely in its active segment and never free a byte.
fn segment_sizes(max_local: u64) -> (u64, u64) {
    let segment = (max_local / 8).clamp(4 << 10, SEGMENT_BYTES);
    let rotate = (max_local / 16).clamp(2 << 10, ROTATE_AFTER);
    (segment, rotate)
}
/// The record id epoch without a leader lease (SPEC §4.1).
const EPOCH: u64 = 1;

/// The root supervisor's arguments, the whole tree; and the sink, for collectors added later by
/// `update`. In start order (a stop goes the other way):
///
/// ```text
/// fushi                  root supervisor (one_for_one)
/// ├── status             status.json                         actors/src/status.rs
/// ├── alert              escalations → channels              actors/src/alert/
/// ├── storage            the journal                         actors/src/storage.rs
/// ├── sync               journal → primary                   actors/src/sync/
/// ├── leader             the lease, the collectors' gate     actors/src/leader/ (with [leader])
/// ├── collectors         sub-supervisor ([supervisor] strategy), one child per [[collector]];
/// │                      with [leader], gated: running only while this node leads
/// │   └── <name>         heartbeat, command, listen          actors/src/collectors/
/// ├── analyzer           SLO gates over stored streams       actors/src/slo/ (with [[slo]])
/// ├── control            the Unix control socket             src/control/server.rs
/// └── http               /health /metrics /status            src/http.rs (unless control.http = "")
/// ```
///
/// All but the collectors are the daemon's own actors ([`ChildSpec::essential`]): restarted one at
/// a time through the socket, never stopped through it.
pub fn build(
    cfg: &Config,
    ctx: TreeContext,
    control: Arc<Shared>,
    masker: fushi_actors::alert::mask::Masker,
) -> Result<(SupervisorArgs, RecordSink), ConfigError> {
    let policy = cfg.supervisor.policy();
    let timeout = cfg.supervisor.shutdown_timeout;
    // SPEC §7: one sync that misses its turn and one that times out before the journal is late.
    ctx.board.set_patience(
        cfg.sync
            .interval
            .saturating_mul(2)
            .saturating_add(cfg.storage.io_timeout),
    );
    let status = ChildSpec::actor(
        "status",
        StatusActor,
        StatusArgs {
            board: ctx.board.clone(),
            audit: ctx.audit.clone(),
            path: cfg.node.data_dir.join("status.json"),
            coalesce: STATUS_COALESCE,
            alerts: ctx.alerts.clone(),
        },
    );
    let alert = ChildSpec::actor(
        "alert",
        AlertActor,
        AlertArgs {
            outbox: ctx.alerts.clone(),
            audit: ctx.audit.clone(),
            board: ctx.board.clone(),
            settings: crate::alert_settings::settings(cfg, masker),
        },
    );
    let storage_handle = StorageHandle::new(cfg.node.data_dir.join("journal"));
    let (segment_max, rotate_after) = segment_sizes(cfg.storage.max_local.0);
    let storage = ChildSpec::actor(
        "storage",
        StorageActor,
        StorageArgs {
            handle: storage_handle.clone(),
            node: cfg.node_id(),
            epoch: EPOCH,
            max_local: cfg.storage.max_local.0,
            segment_max,
            board: ctx.board.clone(),
            audit: ctx.audit.clone(),
            // Two chances at the primary: a probe and the read of its ids.
            seed_wait: (cfg.storage.io_timeout.saturating_mul(2))
                .saturating_add(cfg.storage.probe_interval),
        },
    );
    let sync = ChildSpec::actor(
        "sync",
        SyncActor,
        SyncArgs {
            primary: cfg.storage.primary.clone(),
            primary_is_local: cfg.storage.primary.starts_with(&cfg.node.data_dir),
            node: cfg.node_id(),
            storage: storage_handle.clone(),
            interval: cfg.sync.interval,
            probe_interval: cfg.storage.probe_interval,
            io_timeout: cfg.storage.io_timeout,
            batch: cfg.sync.batch,
            rotate_after,
            board: ctx.board.clone(),
            alerts: ctx.alerts.clone(),
            audit: ctx.audit.clone(),
            io: PrimaryIo::default(),
            forced_down: Default::default(),
        },
    );
    // SPEC §4.4: with a lease, the collectors run only while this node holds it.
    let lease = cfg.leader.enabled.then(Lease::default);
    let (gate, leader) = if let Some(lease) = &lease {
        let (tx, rx) = gate(false);
        let backend = match cfg.leader.backend {
            LeaderBackend::File => LeaderBackendArgs::File {
                primary: cfg.storage.primary.clone(),
            },
            LeaderBackend::Etcd => LeaderBackendArgs::Etcd {
                endpoints: cfg.leader.etcd_endpoints.clone(),
            },
        };
        let args = LeaderArgs {
            backend,
            node: cfg.node_id(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            priority: cfg.leader.priority,
            heartbeat: cfg.leader.heartbeat,
            stale_after: cfg.leader.stale_after,
            io_timeout: cfg.storage.io_timeout,
            gate: tx,
            lease: lease.clone(),
            storage: storage_handle.clone(),
            board: ctx.board.clone(),
            audit: ctx.audit.clone(),
            alerts: ctx.alerts.clone(),
        };
        (
            Some(rx),
            Some(ChildSpec::actor("leader", LeaderActor, args)),
        )
    } else {
        (None, None)
    };
    let mut sink = RecordSink::new(ctx.board.clone(), storage_handle.clone());
    if let Some(lease) = lease {
        sink = sink.with_lease(lease);
    }
    let sink_for_updates = sink.clone();
    // SPEC §6: the SLO gates, only when some are configured.
    let analyzer = (!cfg.slos.is_empty()).then(|| {
        ChildSpec::actor(
            "analyzer",
            AnalyzerActor,
            AnalyzerArgs {
                slos: cfg.slos.iter().map(|s| s.spec()).collect(),
                data_dir: cfg.node.data_dir.clone(),
                storage: storage_handle.clone(),
                primary: cfg.storage.primary.clone(),
                io_timeout: cfg.storage.io_timeout,
                board: ctx.board.clone(),
                audit: ctx.audit.clone(),
                alerts: ctx.alerts.clone(),
                clock: Arc::new(fushi_actors::clock::wall),
            },
        )
    });
    let mut collectors = Vec::new();
    for c in cfg.collectors.iter().filter(|c| c.enabled) {
        collectors.push(collector(cfg, c, sink.clone())?);
    }
    let collectors = ChildSpec::supervisor(
        "collectors",
        SupervisorArgs {
            path: String::new(),
            strategy: cfg.supervisor.strategy,
            children: collectors,
            ctx: ctx.clone(),
            gate,
        },
    )
    .with_policy(policy.clone())
    // Stopped, it would take every collector with it and refuse `fushi start NAME` for each.
    .essential();
    // SPEC §7: the daemon's own actors restart one at a time but are never stopped through the
    // socket. A stopped sync would leave records in the journal with nobody forwarding them,
    // while the operator who stopped it has forgotten.
    let control = ChildSpec::actor("control", ControlActor, ControlArgs { shared: control });
    let http = (!cfg.control.http.is_empty()).then(|| {
        let http = HttpArgs {
            board: ctx.board.clone(),
            addr: cfg.control.http.clone(),
            token: cfg.control.http_token.clone(),
        };
        ChildSpec::actor("http", HttpActor, http)
    });
    let own = |c: ChildSpec| {
        c.essential()
            .with_policy(policy.clone())
            .with_shutdown_timeout(timeout)
    };
    let children = [status, alert, storage, sync]
        .into_iter()
        // Started before the collectors and stopped after them: the lease is released only
        // once nothing collects under it.
        .chain(leader)
        .map(own)
        // The collectors' supervisor keeps its own, longer shutdown timeout: it stops its
        // children one by one within it.
        .chain(std::iter::once(collectors))
        // After the collectors: it judges what they stored, and stops after them.
        .chain(
            analyzer
                .into_iter()
                .chain(std::iter::once(control))
                .chain(http)
                .map(own),
        )
        .collect();
    Ok((
        SupervisorArgs {
            path: String::new(),
            strategy: Strategy::OneForOne,
            children,
            ctx,
            gate: None,
        },
        sink_for_updates,
    ))
}

/// A collector's child spec, as the tree builds it at start and `update` builds it later.
pub fn collector(
    cfg: &Config,
    c: &CollectorConfig,
    sink: RecordSink,
) -> Result<ChildSpec, ConfigError> {
    let path = format!("collectors/{}", c.name);
    let node = cfg.node_id();
    let shutdown = c
        .shutdown_timeout
        .unwrap_or(cfg.supervisor.shutdown_timeout);
    let spec = match c.kind {
        CollectorKind::Heartbeat => ChildSpec::actor(
            c.name.clone(),
            HeartbeatActor,
            HeartbeatArgs {
                path,
                stream: c.stream().to_string(),
                node,
                every: c.every.unwrap_or(crate::config::DEFAULT_HEARTBEAT_EVERY),
                sink,
            },
        ),
        CollectorKind::Command => ChildSpec::actor(
            c.name.clone(),
            CommandActor,
            CommandArgs {
                path,
                stream: c.stream().to_string(),
                argv: c.argv.clone(),
                shell: c.shell,
                env: c.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                cwd: c.cwd.clone(),
                every: c.every,
                timeout: c.timeout,
                max_record_bytes: cfg.storage.max_record_bytes.0 as usize,
                // Leave part of the shutdown budget for the actor's own exit after SIGKILL.
                stop_grace: shutdown.mul_f32(0.8),
                sink,
            },
        ),
        CollectorKind::Listen => ChildSpec::actor(
            c.name.clone(),
            ListenActor,
            ListenArgs {
                path,
                stream: c.stream().to_string(),
                address: c.address.clone().unwrap_or_default(),
                max_record_bytes: cfg.storage.max_record_bytes.0 as usize,
                sink,
            },
        ),
        CollectorKind::Http => ChildSpec::actor(
            c.name.clone(),
            HttpCollectorActor,
            HttpCollectorArgs {
                path,
                stream: c.stream().to_string(),
                url: c.url.clone().unwrap_or_default(),
                headers: c
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                every: c.every.unwrap_or_default(),
                jitter: c.http_poll_jitter(),
                timeout: c.http_timeout(),
                split: c.split,
                max_record_bytes: cfg.storage.max_record_bytes.0 as usize,
                sink,
                not_before: Default::default(),
            },
        ),
        CollectorKind::Tail => ChildSpec::actor(
            c.name.clone(),
            TailActor,
            TailArgs {
                path,
                stream: c.stream().to_string(),
                pattern: c
                    .path
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                checkpoint: cfg
                    .node
                    .data_dir
                    .join("tail")
                    .join(format!("{}.json", c.name)),
                glob_interval: c.glob_interval.unwrap_or(DEFAULT_GLOB_INTERVAL),
                read_from_end: c.read_from == Some(ReadFrom::End),
                partial_after: c.partial_after.unwrap_or(DEFAULT_PARTIAL_AFTER),
                rotate_wait: c.rotate_wait.unwrap_or(DEFAULT_ROTATE_WAIT),
                max_record_bytes: cfg.storage.max_record_bytes.0 as usize,
                sink,
            },
        ),
    };
    let mut spec = spec
        .with_policy(c.policy(&cfg.supervisor))
        .with_shutdown_timeout(shutdown);
    if let Some(r) = c.restart {
        spec = spec.with_restart(r);
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::segment_sizes;

    #[test]
    fn segments_are_a_fraction_of_the_journal_bound() {
        assert_eq!(segment_sizes(1 << 30), (16 << 20, 1 << 20));
        let (seg, rot) = segment_sizes(16 << 10);
        assert!(seg * 4 <= 16 << 10 && rot <= seg, "{seg} {rot}");
    }
}
