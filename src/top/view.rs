//! What the dashboard shows at one moment (`View`): the status document, the audit tail, the selection, the connection and a prompt; and its sizes and refresh.

use fushi_actors::audit::AuditEvent;
use fushi_actors::board::{ActorStatus, StatusDoc};
use fushi_actors::events;
use std::time::Duration;
use time::OffsetDateTime;

/// How often the status is fetched and the dot blinks.
pub(super) const REFRESH: Duration = Duration::from_secs(1);
/// Below this size the compact view is shown.
pub(super) const MIN_WIDTH: u16 = 60;
pub(super) const MIN_HEIGHT: u16 = 16;
/// From this width the storage, sync and leader panels stand beside the actor tree.
pub(super) const SIDE_WIDTH: u16 = 100;

/// Whether the daemon answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Conn {
    /// No answer yet.
    Connecting,
    Connected,
    /// The last attempt failed, for this reason; the poller keeps retrying.
    Lost(String),
}

/// The bottom line: key help, a restart question, or the answer to one.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    None,
    Confirm(String),
    Pending(String),
    Done { ok: bool, text: String },
}

/// Everything the screen shows; [`render`] draws it and nothing else.
#[derive(Debug, Clone)]
pub struct View {
    /// The last status document received (kept, marked stale, while disconnected).
    pub doc: Option<StatusDoc>,
    pub conn: Conn,
    /// Audit events worth showing, newest first.
    pub events: Vec<AuditEvent>,
    /// Index into [`tree_order`] of the document.
    pub selected: usize,
    /// The dot's phase: filled or hollow, alternating each second.
    pub blink: bool,
    pub prompt: Prompt,
    /// The clock uptimes and countdowns are computed against.
    pub now: OffsetDateTime,
}

impl View {
    pub fn new(now: OffsetDateTime) -> Self {
        Self {
            doc: None,
            conn: Conn::Connecting,
            events: Vec::new(),
            selected: 0,
            blink: true,
            prompt: Prompt::None,
            now,
        }
    }

    /// The selected actor's name, if any.
    pub fn selected_name(&self) -> Option<String> {
        let doc = self.doc.as_ref()?;
        tree_order(doc).get(self.selected).map(|a| a.name.clone())
    }
}

/// The audit events the dashboard shows: all but the routine steps of each forwarding run.
pub fn shown(event: &str) -> bool {
    !matches!(
        event,
        events::COLLECTOR_SYNC_PLAN | events::COLLECTOR_SYNC_START | events::COLLECTOR_SYNC_CHUNK
    )
}

/// Actors in tree order: top-level actors in the daemon's order, each followed by its children.
pub fn tree_order(doc: &StatusDoc) -> Vec<&ActorStatus> {
    let top = |a: &ActorStatus| a.name.split('/').next().unwrap_or_default().to_string();
    let mut tops: Vec<String> = Vec::new();
    for a in &doc.actors {
        let t = top(a);
        if !tops.contains(&t) {
            tops.push(t);
        }
    }
    let rank = |a: &ActorStatus| tops.iter().position(|t| *t == top(a)).unwrap_or(usize::MAX);
    let mut out: Vec<&ActorStatus> = doc.actors.iter().collect();
    out.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a.name.split('/').cmp(b.name.split('/')))
    });
    out
}

pub(super) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}
