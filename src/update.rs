//! `fushi reread`, `fushi update` and SIGHUP: diff the config file against the running config, then add, remove and restart only the collectors that changed.
//!
//! A collector counts as changed when its own settings or its effective restart policy (the
//! `[supervisor]` defaults it inherits) differ. Other sections (`node`, `storage`, …) are wired
//! into actors at start; a change there is reported as needing a daemon restart, not half-applied.

use fushi_actors::sink::RecordSink;
use fushi_actors::supervisor::SupervisorMsg;
use ractor::ActorRef;
use serde::Serialize;

use crate::config::{CollectorConfig, Config};
use crate::tree;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Diff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    /// Sections whose change takes effect at the next daemon start.
    pub restart_needed: Vec<String>,
    /// Why the last reload failed, while that keeps health red (cleared by a good `update`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_reload: Vec<String>,
}

fn effective<'a>(cfg: &'a Config) -> Vec<(&'a CollectorConfig, impl PartialEq + 'a)> {
    cfg.collectors
        .iter()
        .filter(|c| c.enabled)
        .map(|c| {
            (
                c,
                (
                    c.policy(&cfg.supervisor),
                    c.shutdown_timeout
                        .unwrap_or(cfg.supervisor.shutdown_timeout),
                ),
            )
        })
        .collect()
}

/// The difference between the file (`new`) and what runs: collectors against the collectors
/// running now (`running`: the config of the last applied update), every other section against
/// the config the daemon started with (`started`), since only a restart applies those.
pub fn diff(started: &Config, running: &Config, new: &Config) -> Diff {
    let old = effective(running);
    let now = effective(new);
    let mut d = Diff::default();
    for (c, policy) in &now {
        match old.iter().find(|(o, _)| o.name == c.name) {
            None => d.added.push(c.name.clone()),
            Some((o, op)) if o != c || op != policy => d.changed.push(c.name.clone()),
            Some(_) => {}
        }
    }
    for (o, _) in &old {
        if !now.iter().any(|(c, _)| c.name == o.name) {
            d.removed.push(o.name.clone());
        }
    }
    let (was, is) = (&started.supervisor, &new.supervisor);
    let mut own_policy = is.clone();
    own_policy.strategy = was.strategy;
    let sections = [
        ("node", started.node != new.node),
        ("storage", started.storage != new.storage),
        ("sync", started.sync != new.sync),
        ("leader", started.leader != new.leader),
        ("control", started.control != new.control),
        ("alert", started.alert != new.alert),
        ("slo", started.slos != new.slos),
        ("supervisor.strategy", was.strategy != is.strategy),
        // Collectors take the new defaults at once (they count as changed); the daemon's own
        // actors were given theirs at start.
        (
            "supervisor (for the daemon's own actors)",
            *was != own_policy,
        ),
    ];
    d.restart_needed = sections
        .iter()
        .filter(|(_, differs)| *differs)
        .map(|(s, _)| s.to_string())
        .collect();
    d
}

/// Applies the collector part of `d` to the running tree.
pub async fn apply(
    root: &ActorRef<SupervisorMsg>,
    d: &Diff,
    new: &Config,
    sink: &RecordSink,
) -> Result<(), String> {
    let sub = ractor::call!(root, |r| SupervisorMsg::Supervisor("collectors".into(), r))
        .map_err(|e| format!("the root supervisor did not answer: {e}"))?
        .ok_or("the collectors supervisor is not running right now (restarting: see `fushi status collectors`); try again once it runs")?;
    let spec = |name: &str| {
        let c = new
            .collectors
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| format!("collector {name} vanished"))?;
        tree::collector(new, c, sink.clone()).map_err(|e| e.to_string())
    };
    for name in &d.removed {
        ractor::call!(sub, |r| SupervisorMsg::Remove(name.clone(), r))
            .map_err(|e| format!("removing {name}: {e}"))?
            .map_err(|e| format!("removing {name}: {e}"))?;
    }
    // In place: a changed collector keeps its position, and stays stopped if it was stopped.
    for name in &d.changed {
        let s = spec(name)?;
        ractor::call!(sub, |r| SupervisorMsg::Replace(s, r))
            .map_err(|e| format!("replacing {name}: {e}"))?
            .map_err(|e| format!("replacing {name}: {e}"))?;
    }
    for name in &d.added {
        let s = spec(name)?;
        ractor::call!(sub, |r| SupervisorMsg::Add(s, r))
            .map_err(|e| format!("adding {name}: {e}"))?
            .map_err(|e| format!("adding {name}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(s: &str) -> Config {
        Config::parse(s, Path::new("t.toml"), Path::new("/x")).unwrap()
    }

    const BASE: &str = r#"
[[collector]]
name = "keep"
kind = "heartbeat"
[[collector]]
name = "change"
kind = "heartbeat"
every = "1s"
[[collector]]
name = "drop"
kind = "heartbeat"
"#;

    #[test]
    fn added_removed_changed_and_sections() {
        let new = r#"
[storage]
io_timeout = "9s"
[[collector]]
name = "keep"
kind = "heartbeat"
[[collector]]
name = "change"
kind = "heartbeat"
every = "2s"
[[collector]]
name = "new"
kind = "heartbeat"
"#;
        let d = diff(&parse(BASE), &parse(BASE), &parse(new));
        assert_eq!(d.added, ["new"]);
        assert_eq!(d.removed, ["drop"]);
        assert_eq!(d.changed, ["change"]);
        assert_eq!(d.restart_needed, ["storage"]);
        assert_eq!(
            diff(&parse(BASE), &parse(BASE), &parse(BASE)),
            Diff::default()
        );
    }

    #[test]
    fn inherited_policy_changes_count_and_disabled_means_removed() {
        let new = BASE.replace(
            "[[collector]]\nname = \"keep\"",
            "[supervisor]\nbackoff = [\"1s\"]\n[[collector]]\nname = \"keep\"",
        );
        let d = diff(&parse(BASE), &parse(BASE), &parse(&new));
        assert_eq!(d.changed, ["keep", "change", "drop"]);
        // The daemon's own actors keep the defaults they started with until a restart.
        assert_eq!(
            d.restart_needed,
            ["supervisor (for the daemon's own actors)"]
        );
        let off = BASE.replace(
            "name = \"drop\"\nkind = \"heartbeat\"",
            "name = \"drop\"\nkind = \"heartbeat\"\nenabled = false",
        );
        assert_eq!(
            diff(&parse(BASE), &parse(BASE), &parse(&off)).removed,
            ["drop"]
        );
    }

    #[test]
    fn a_section_update_did_not_apply_is_still_reported_after_it() {
        let new =
            BASE.replace("every = \"1s\"", "every = \"2s\"") + "\n[storage]\nio_timeout = \"9s\"\n";
        let (started, new) = (parse(BASE), parse(&new));
        let d = diff(&started, &started, &new);
        assert_eq!(
            (d.changed.as_slice(), d.restart_needed.as_slice()),
            (&["change".to_string()][..], &["storage".to_string()][..])
        );
        // After the update the collectors run as the file says; storage still as at start.
        let after = diff(&started, &new, &new);
        assert!(after.changed.is_empty(), "{after:?}");
        assert_eq!(after.restart_needed, ["storage"]);
    }
}
