//! What an alert is: the events of the tree a person must hear of, the class a channel filters on, and the key noise control dedups by.

use serde::{Deserialize, Serialize};

/// What the tree tells the alert actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Alert {
    /// `actor` failed `failures` consecutive times; sent once per failure streak.
    Escalation {
        actor: String,
        failures: u32,
        last_error: Option<String>,
        since: String,
    },
    /// An escalated actor ran `stable_after` without failing.
    Recovered {
        actor: String,
        failures: u32,
        since: String,
    },
    /// A supervisor gave up on `actor` (`give_up_after`): it stays stopped until a person acts.
    Fatal {
        actor: String,
        failures: u32,
        last_error: Option<String>,
    },
    /// No node has been seen leading for longer than `stale_after + heartbeat` (SPEC §4.4):
    /// no collector runs anywhere.
    NoLeader { since: String, why: String },
    /// A node leads again after a [`Alert::NoLeader`].
    LeaderBack { node: String, since: String },
    /// The daemon found it had not stopped cleanly (killed, crashed, power lost) and came back.
    DaemonRecovered { why: String },
    /// The config file does not validate; the daemon runs on `running` (the last good copy at a
    /// start, the previous config at a reload).
    ConfigRejected {
        path: String,
        error: String,
        running: String,
    },
    /// The config file validates again after a [`Alert::ConfigRejected`].
    ConfigFixed { path: String },
    /// The primary cannot be written; records wait in the local journal.
    StorageDown { primary: String, why: String },
    /// The primary is written again after a [`Alert::StorageDown`].
    StorageBack { primary: String },
    /// An SLO gate's verdict on one window that a person should hear of (SPEC §6): a warning, a
    /// violation (an incident), the rollback it ran, or ok again after one of those.
    Slo(SloAlert),
}

/// What the analyzer says about one window of one SLO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloAlert {
    pub verdict: SloVerdict,
    /// The `[[slo]]` name.
    pub slo: String,
    pub stream: String,
    /// `p95`, `error_rate` or `lateness`.
    pub kind: String,
    /// The rollout phase whose threshold was applied (A, B or C).
    pub phase: String,
    /// What was measured: the field for p95, the predicate for error_rate, `lateness`.
    pub metric: String,
    pub value: f64,
    pub threshold: f64,
    /// The window, `<start>/<end>` in RFC 3339.
    pub window: String,
    /// The incident this belongs to (violation and rollback; ok closing one).
    pub incident: Option<String>,
    /// A violation whose SLO has a `rollback` command or a phase to step back from.
    pub rollback_required: bool,
    /// Rollback only: the command run (secrets masked), its exit code, what went wrong.
    pub cmd: Option<String>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    /// One sentence a person reads first.
    pub why: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloVerdict {
    /// Back within its threshold after a warning or an incident.
    Ok,
    /// At or above `warn_ratio` of the threshold, or a collection delay (lateness).
    Warn,
    /// Over the threshold: an incident.
    Violation,
    /// The rollback an incident ran.
    Rollback,
}

/// What a channel's `events` filter names (SPEC §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Escalation,
    Recovered,
    Fatal,
    Daemon,
    Config,
    Storage,
    Leader,
    Slo,
}

impl Class {
    pub const ALL: [Class; 8] = [
        Class::Escalation,
        Class::Recovered,
        Class::Fatal,
        Class::Daemon,
        Class::Config,
        Class::Storage,
        Class::Leader,
        Class::Slo,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::Escalation => "escalation",
            Class::Recovered => "recovered",
            Class::Fatal => "fatal",
            Class::Daemon => "daemon",
            Class::Config => "config",
            Class::Storage => "storage",
            Class::Leader => "leader",
            Class::Slo => "slo",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// An alert's part in noise control: it opens a condition, ends one, or stands alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Starts (or repeats) the condition under this key.
    Opens(String),
    /// Ends the conditions under these keys.
    Resolves(Vec<String>),
    /// Sent as it is: a rollback, which the analyzer runs once per incident.
    Once,
    /// A one-off event under this key: sent unless the same was sent within `repeat_after`,
    /// never open (nothing ends it).
    Event(String),
}

fn key(kind: &str, actor: &str) -> String {
    format!("{kind}:{actor}")
}

impl Alert {
    /// The actor the alert is about (`leader`, `daemon`, `config`, `storage` for the daemon's
    /// own conditions; the SLO's name for a gate).
    pub fn actor(&self) -> &str {
        match self {
            Alert::Escalation { actor, .. }
            | Alert::Recovered { actor, .. }
            | Alert::Fatal { actor, .. } => actor,
            Alert::NoLeader { .. } | Alert::LeaderBack { .. } => "leader",
            Alert::DaemonRecovered { .. } => "daemon",
            Alert::ConfigRejected { .. } | Alert::ConfigFixed { .. } => "config",
            Alert::StorageDown { .. } | Alert::StorageBack { .. } => "storage",
            Alert::Slo(s) => &s.slo,
        }
    }

    /// The template this alert renders with: one of SPEC §6's for the supervisor's and the
    /// SLO gates' alerts. The daemon's own conditions have names of their own, which no
    /// template overrides: an `escalation` template written for a collector's failures would
    /// read as nonsense about a restarted daemon.
    pub fn template(&self) -> &'static str {
        match self {
            Alert::Escalation { .. } => "escalation",
            Alert::Recovered { .. } => "recovered",
            Alert::NoLeader { .. } => "no_leader",
            Alert::LeaderBack { .. } => "leader_back",
            Alert::DaemonRecovered { .. } => "daemon_recovered",
            Alert::ConfigRejected { .. } => "config_rejected",
            Alert::ConfigFixed { .. } => "config_fixed",
            Alert::StorageDown { .. } => "storage_down",
            Alert::StorageBack { .. } => "storage_back",
            Alert::Fatal { .. } => "fatal",
            Alert::Slo(s) => match s.verdict {
                SloVerdict::Ok => "ok",
                SloVerdict::Warn => "warn",
                SloVerdict::Violation => "incident",
                SloVerdict::Rollback => "rollback",
            },
        }
    }

    pub fn class(&self) -> Class {
        match self {
            Alert::Escalation { .. } => Class::Escalation,
            Alert::Recovered { .. } => Class::Recovered,
            Alert::Fatal { .. } => Class::Fatal,
            Alert::NoLeader { .. } | Alert::LeaderBack { .. } => Class::Leader,
            Alert::DaemonRecovered { .. } => Class::Daemon,
            Alert::ConfigRejected { .. } | Alert::ConfigFixed { .. } => Class::Config,
            Alert::StorageDown { .. } | Alert::StorageBack { .. } => Class::Storage,
            Alert::Slo(_) => Class::Slo,
        }
    }

    /// Whether this alert says something is wrong (firing) rather than right again (resolved).
    pub fn firing(&self) -> bool {
        !matches!(self.role(), Role::Resolves(_))
            && !matches!(self, Alert::Slo(s) if s.verdict == SloVerdict::Ok)
    }

    /// The key is the kind and the actor (SPEC §6): one collector's escalation does not hide
    /// another's, and an SLO's warning does not hide its incident.
    pub fn role(&self) -> Role {
        let a = self.actor();
        match self {
            Alert::Escalation { .. } => Role::Opens(key("escalation", a)),
            Alert::Recovered { .. } => Role::Resolves(vec![key("escalation", a)]),
            // Given up happens once per streak, and a streak ends only by a person's `fushi
            // start`: each one is news, and nothing but that person ends it.
            Alert::Fatal { .. } => Role::Once,
            Alert::NoLeader { .. } => Role::Opens(key("no_leader", a)),
            Alert::LeaderBack { .. } => Role::Resolves(vec![key("no_leader", a)]),
            Alert::DaemonRecovered { .. } => Role::Event(key("daemon_recovered", a)),
            Alert::ConfigRejected { .. } => Role::Opens(key("config", a)),
            Alert::ConfigFixed { .. } => Role::Resolves(vec![key("config", a)]),
            Alert::StorageDown { .. } => Role::Opens(key("storage", a)),
            Alert::StorageBack { .. } => Role::Resolves(vec![key("storage", a)]),
            Alert::Slo(s) => match s.verdict {
                SloVerdict::Warn => Role::Opens(key("slo_warn", a)),
                SloVerdict::Violation => Role::Opens(key("slo_incident", a)),
                SloVerdict::Ok => Role::Resolves(vec![key("slo_warn", a), key("slo_incident", a)]),
                SloVerdict::Rollback => Role::Once,
            },
        }
    }

    /// The condition this alert is about, `kind:actor`: what it opens, ends or repeats, so that
    /// an alert and its resolution name the same thing (Alertmanager's alertname and
    /// fingerprint).
    pub fn condition(&self) -> String {
        match self.role() {
            Role::Opens(k) | Role::Event(k) => k,
            Role::Resolves(ks) => ks.into_iter().next().unwrap_or_default(),
            Role::Once => key(self.template(), self.actor()),
        }
    }

    /// The event name of the log line the journald channel writes for this alert.
    pub fn event(&self) -> &'static str {
        use crate::events;
        match self {
            Alert::Escalation { .. } => events::SUPERVISOR_CHILD_ESCALATED,
            Alert::Recovered { .. } => events::SUPERVISOR_CHILD_RECOVERED,
            Alert::Fatal { .. } => events::SUPERVISOR_CHILD_FATAL,
            Alert::NoLeader { .. } => events::COLLECTOR_LEADER_NONE,
            Alert::LeaderBack { .. } => events::COLLECTOR_LEADER_BACK,
            Alert::DaemonRecovered { .. } => events::DAEMON_RECOVERED,
            Alert::ConfigRejected { .. } => events::CONFIG_RELOAD_FAILED,
            Alert::ConfigFixed { .. } => events::CONFIG_RELOAD_OK,
            Alert::StorageDown { .. } | Alert::StorageBack { .. } => {
                events::COLLECTOR_STORAGE_SWITCH
            }
            Alert::Slo(s) => match s.verdict {
                SloVerdict::Ok => events::SLO_OK,
                SloVerdict::Warn => events::SLO_WARN,
                SloVerdict::Violation => events::SLO_VIOLATION,
                SloVerdict::Rollback => events::SLO_ROLLBACK,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_round_trips_through_json_with_its_type() {
        let a = Alert::Escalation {
            actor: "collectors/x".into(),
            failures: 4,
            last_error: Some("boom".into()),
            since: "t".into(),
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["type"], "escalation");
        assert_eq!(serde_json::from_value::<Alert>(v).unwrap(), a);
    }

    #[test]
    fn recovered_resolves_the_escalation_of_its_actor_only() {
        let e = Alert::Escalation {
            actor: "a".into(),
            failures: 4,
            last_error: None,
            since: "t".into(),
        };
        let r = Alert::Recovered {
            actor: "a".into(),
            failures: 4,
            since: "t".into(),
        };
        let Role::Opens(k) = e.role() else { panic!() };
        assert_eq!(r.role(), Role::Resolves(vec![k]));
        assert!(e.firing() && !r.firing());
        for c in Class::ALL {
            assert_eq!(Class::parse(c.name()), Some(c));
        }
    }
}
