//! A message: the alerts of one group (`group_wait`) that go out together, and the text a channel sends for it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::noise::Note;
use super::template::{self, human, Context};
use super::types::{Alert, Class};

/// One accepted alert that noise control let through, with what it says beyond itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// The alert's number in this data dir's outbox.
    pub id: u64,
    /// When it was accepted (wall clock, ms since the epoch).
    pub at_ms: u64,
    pub alert: Alert,
    pub note: Note,
}

/// The alerts of one group, for the channels whose `events` take any of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: u64,
    pub at_ms: u64,
    pub items: Vec<Item>,
}

/// How a channel words its messages: the templates in force and this node's name.
#[derive(Debug, Clone, Default)]
pub struct Wording {
    pub node: String,
    pub templates: BTreeMap<String, String>,
    /// `stable_after`, which the flapping report names.
    pub stable_after_ms: u64,
}

impl Item {
    /// The item's line: its template or built-in sentence, or the flapping report.
    pub fn text(&self, w: &Wording) -> String {
        let actor = self.alert.actor();
        let node = &w.node;
        match &self.note {
            Note::Plain {
                duration_ms,
                suppressed,
            } => template::render(
                &w.templates,
                &self.alert,
                &Context {
                    node,
                    duration_ms: *duration_ms,
                    suppressed: *suppressed,
                },
            ),
            Note::Flapping {
                escalations,
                window_ms,
            } => format!(
                "{actor} on {node} is flapping: it escalated {escalations} times within {}; its alerts are held until it has been stable for {}",
                human(*window_ms),
                human(w.stable_after_ms)
            ),
            Note::Settled {
                held,
                failing: false,
                ..
            } => format!(
                "{actor} on {node} has been stable for {} after flapping ({held} alerts held back)",
                human(w.stable_after_ms)
            ),
            Note::Settled {
                held,
                failing: true,
                ..
            } => format!(
                "{actor} on {node} stopped flapping but is still failing: {} ({held} alerts held back)",
                template::builtin(
                    &self.alert,
                    &Context {
                        node,
                        ..Default::default()
                    }
                )
            ),
        }
    }

    /// Whether the item is about something wrong (firing) rather than something right again.
    pub fn firing(&self) -> bool {
        match self.note {
            Note::Flapping { .. } => true,
            Note::Settled { failing, .. } => failing,
            Note::Plain { .. } => self.alert.firing(),
        }
    }
}

impl Message {
    /// The items a channel with `events` takes (all of them when `events` is empty).
    pub fn for_events(&self, events: &[Class]) -> Vec<&Item> {
        self.items
            .iter()
            .filter(|i| events.is_empty() || events.contains(&i.alert.class()))
            .collect()
    }

    /// The text of `items`: one alert is its line; a group is a headline and a line each, so
    /// a `one_for_all` storm reads as one alert listing the actors.
    pub fn text(items: &[&Item], w: &Wording) -> String {
        match items {
            [one] => one.text(w),
            _ => {
                let actors: Vec<&str> = items.iter().map(|i| i.alert.actor()).collect();
                let mut out = format!(
                    "fushi on {}: {} alerts ({})",
                    w.node,
                    items.len(),
                    actors.join(", ")
                );
                for i in items {
                    out.push_str("\n• ");
                    out.push_str(&i.text(w));
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: u64, actor: &str) -> Item {
        Item {
            id,
            at_ms: 0,
            alert: Alert::Escalation {
                actor: actor.into(),
                failures: 4,
                last_error: None,
                since: "t".into(),
            },
            note: Note::Plain {
                duration_ms: None,
                suppressed: 0,
            },
        }
    }

    #[test]
    fn a_group_is_one_text_listing_its_actors() {
        let m = Message {
            id: 1,
            at_ms: 0,
            items: vec![item(1, "collectors/a"), item(2, "collectors/b")],
        };
        let w = Wording {
            node: "pc1".into(),
            ..Default::default()
        };
        let text = Message::text(&m.for_events(&[]), &w);
        assert!(
            text.starts_with("fushi on pc1: 2 alerts (collectors/a, collectors/b)"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 3);
        assert!(m.for_events(&[Class::Slo]).is_empty());
    }
}
