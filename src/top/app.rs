//! The dashboard's state changes: a key or a message (a status fetched, a restart answered) turns one `View` into the next.

use fushi_actors::audit::AuditEvent;
use fushi_actors::board::StatusDoc;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use time::OffsetDateTime;

use super::view::*;

/// What the loop must do after a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    None,
    Quit,
    Restart(String),
}

/// What the poller and the restart threads report.
pub(super) enum Msg {
    Status {
        doc: Result<Box<StatusDoc>, String>,
        events: Vec<AuditEvent>,
    },
    Control {
        name: String,
        result: Result<String, String>,
    },
}

/// The view plus the selection kept by name, so it survives the tree changing under it.
pub struct App {
    pub view: View,
    pub(super) selected_name: Option<String>,
}

impl App {
    pub fn new(now: OffsetDateTime) -> Self {
        Self {
            view: View::new(now),
            selected_name: None,
        }
    }

    pub fn on_status(&mut self, doc: Result<StatusDoc, String>, events: Vec<AuditEvent>) {
        self.view.events = events;
        match doc {
            Ok(doc) => {
                let order = tree_order(&doc);
                let idx = self
                    .selected_name
                    .as_ref()
                    .and_then(|n| order.iter().position(|a| &a.name == n))
                    .unwrap_or_else(|| self.view.selected.min(order.len().saturating_sub(1)));
                self.selected_name = order.get(idx).map(|a| a.name.clone());
                self.view.selected = idx;
                self.view.doc = Some(doc);
                self.view.conn = Conn::Connected;
            }
            Err(e) => self.view.conn = Conn::Lost(e),
        }
    }

    pub(super) fn on_control(&mut self, name: String, result: Result<String, String>) {
        self.view.prompt = match result {
            Ok(message) => Prompt::Done {
                ok: true,
                text: message,
            },
            Err(e) => Prompt::Done {
                ok: false,
                text: format!("restart {name} failed: {e}"),
            },
        };
    }

    pub(super) fn select(&mut self, delta: isize) {
        let Some(doc) = &self.view.doc else { return };
        let order = tree_order(doc);
        if order.is_empty() {
            return;
        }
        let idx = self
            .view
            .selected
            .saturating_add_signed(delta)
            .min(order.len() - 1);
        self.view.selected = idx;
        self.selected_name = Some(order[idx].name.clone());
    }

    pub fn on_key(&mut self, k: KeyEvent) -> Action {
        if k.kind != KeyEventKind::Press {
            return Action::None;
        }
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        if let Prompt::Confirm(name) = &self.view.prompt {
            let name = name.clone();
            return if matches!(k.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                self.view.prompt = Prompt::Pending(name.clone());
                Action::Restart(name)
            } else {
                self.view.prompt = Prompt::Done {
                    ok: true,
                    text: format!("restart {name} cancelled"),
                };
                Action::None
            };
        }
        match k.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Up | KeyCode::Char('k') => self.select(-1),
            KeyCode::Down | KeyCode::Char('j') => self.select(1),
            KeyCode::Home => self.select(isize::MIN),
            KeyCode::End => self.select(isize::MAX),
            KeyCode::Char('r') => {
                if matches!(self.view.prompt, Prompt::Pending(_)) {
                    return Action::None;
                }
                self.view.prompt = match (&self.view.conn, self.view.selected_name()) {
                    (Conn::Lost(_), _) => Prompt::Done {
                        ok: false,
                        text: "not connected to the daemon: nothing to restart".into(),
                    },
                    (_, Some(name)) => Prompt::Confirm(name),
                    (_, None) => Prompt::Done {
                        ok: false,
                        text: "no actor selected".into(),
                    },
                };
            }
            _ => {}
        }
        Action::None
    }
}
