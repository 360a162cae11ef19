//! `fushi top`: a terminal dashboard of the daemon (heartbeat dot, actor tree, storage, sync, leader, alerts), refreshed every second over the control socket.
//!
//! Rendering is a pure function of a [`View`] (status document, audit tail, selection, connection
//! state, blink phase) onto a ratatui [`Frame`], so it is tested on ratatui's `TestBackend`. The
//! terminal loop only turns keys and messages into a new `View`: a poller thread fetches the status
//! and reads the audit tail every second (a hung daemon never freezes the keys), and a restart is
//! sent on a thread of its own, its answer shown on the bottom line.

use anyhow::bail;
use fushi_actors::audit::AuditEvent;
use fushi_actors::board::{health, Health};
use fushi_actors::board::{ActorState, ActorStatus, PrimaryState, SecondaryState, StatusDoc};
use fushi_actors::events;
use fushi_actors::supervisor::Verb;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;
use serde_json::Value;
use std::io::{IsTerminal, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

use crate::control::client::{self, ClientError};
use crate::control::proto::{Request, Response};
use crate::control::socket_candidates;
use crate::ctl::{self, Target};

/// How often the status is fetched and the dot blinks.
const REFRESH: Duration = Duration::from_secs(1);
/// How much of the end of audit.jsonl is read: the dashboard shows only the newest events.
const AUDIT_TAIL_BYTES: u64 = 256 * 1024;
/// How many events the view keeps (newest first).
const EVENTS_KEPT: usize = 100;
/// Below this size the compact view is shown.
const MIN_WIDTH: u16 = 60;
const MIN_HEIGHT: u16 = 16;
/// From this width the storage, sync and leader panels stand beside the actor tree.
const SIDE_WIDTH: u16 = 100;

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

// ---------------------------------------------------------------------------------------------
// Rendering: pure functions of the View.

/// The dot's colour: red while disconnected, yellow until the first answer, else the health.
pub fn dot_color(v: &View) -> Color {
    match (&v.conn, &v.doc) {
        (Conn::Lost(_), _) => Color::Red,
        (_, None) => Color::Yellow,
        (_, Some(d)) => health_color(&d.health),
    }
}

fn health_color(health: &Health) -> Color {
    match health {
        Health::Green => Color::Green,
        Health::Yellow => Color::Yellow,
        Health::Red => Color::Red,
    }
}

fn health_word(health: &Health) -> String {
    health.word().to_uppercase()
}

fn state_color(s: ActorState) -> Color {
    match s {
        ActorState::Running => Color::Green,
        ActorState::Starting | ActorState::Backoff => Color::Yellow,
        ActorState::Stopping | ActorState::Stopped => Color::Gray,
        ActorState::Fatal => Color::Red,
    }
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

/// The name column: children drawn under their parent with tree glyphs.
fn tree_label(order: &[&ActorStatus], i: usize) -> String {
    let name = &order[i].name;
    let Some((parent, leaf)) = name.rsplit_once('/') else {
        return name.clone();
    };
    if !order.iter().any(|a| a.name == parent) {
        return name.clone();
    }
    let depth = name.matches('/').count();
    let last = !order[i + 1..]
        .iter()
        .any(|a| a.name.rsplit_once('/').is_some_and(|(p, _)| p == parent));
    format!(
        "{}{}{leaf}",
        "   ".repeat(depth - 1),
        if last { "└─ " } else { "├─ " }
    )
}

fn parse_ts(ts: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()
}

/// A duration the way a glance wants it: `42s`, `5m 3s`, `3h 4m`, `2d 3h`.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

fn since(now: OffsetDateTime, ts: Option<&str>) -> Option<Duration> {
    let d = now - parse_ts(ts?)?;
    Some(Duration::from_secs(d.whole_seconds().max(0) as u64))
}

/// Uptime of a running actor, countdown to the next restart of one in backoff, else time in state.
fn when(a: &ActorStatus, now: OffsetDateTime) -> String {
    match a.state {
        ActorState::Running => since(now, a.since.as_deref()).map(|d| format!("up {}", short(d))),
        ActorState::Backoff => a.next_restart_at.as_deref().and_then(parse_ts).map(|t| {
            let ms = (t - now).whole_milliseconds().max(0);
            format!("restart in {}.{}s", ms / 1000, ms % 1000 / 100)
        }),
        _ => since(now, a.since.as_deref()).map(|d| format!("for {}", short(d))),
    }
    .unwrap_or_default()
}

/// `12s ago` for an RFC 3339 timestamp (the timestamp itself if it is not one).
fn ago(now: OffsetDateTime, ts: &str) -> String {
    since(now, Some(ts)).map_or_else(|| ts.to_string(), |d| format!("{} ago", short(d)))
}

/// `1.5 MiB`: a size for people.
fn bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}

/// `HH:MM:SS` of an RFC 3339 timestamp (the whole string if it is not one).
fn clock(ts: &str) -> &str {
    ts.get(11..19).unwrap_or(ts)
}

fn payload_summary(p: &Value) -> String {
    match p {
        Value::Null => String::new(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

fn event_style(event: &str) -> Style {
    let base = Style::new();
    if event.starts_with("alert.") || event.starts_with("slo.") {
        base.fg(Color::Magenta).add_modifier(Modifier::BOLD)
    } else if event.ends_with(".failed")
        || event.ends_with(".escalated")
        || event.ends_with(".fatal")
        || event.ends_with(".corrupt")
        || event.ends_with(".violation")
    {
        base.fg(Color::Red)
    } else if event.ends_with(".recovered") {
        base.fg(Color::Green).add_modifier(Modifier::BOLD)
    } else if event.ends_with(".restarted") || event.ends_with(".restart_scheduled") {
        base.fg(Color::Cyan)
    } else {
        base
    }
}

/// The audit events the dashboard shows: all but the routine steps of each forwarding run.
pub fn shown(event: &str) -> bool {
    !matches!(
        event,
        events::COLLECTOR_SYNC_PLAN | events::COLLECTOR_SYNC_START | events::COLLECTOR_SYNC_CHUNK
    )
}

fn dot(v: &View) -> Span<'static> {
    Span::styled(
        if v.blink { "●" } else { "○" },
        Style::new().fg(dot_color(v)).add_modifier(Modifier::BOLD),
    )
}

fn disconnected_text() -> &'static str {
    "disconnected — retrying"
}

fn bold(s: impl Into<String>, c: Color) -> Span<'static> {
    Span::styled(s.into(), Style::new().fg(c).add_modifier(Modifier::BOLD))
}

fn dim(s: impl Into<String>) -> Span<'static> {
    Span::styled(s.into(), Style::new().fg(Color::DarkGray))
}

/// The first line: dot, node, mode, health, pid, uptime and the recovered totals.
fn header(v: &View) -> Line<'static> {
    let mut spans = vec![dot(v), Span::raw(" fushi  ")];
    if let Conn::Lost(_) = v.conn {
        spans.push(bold(disconnected_text(), Color::Red));
        spans.push(Span::raw("  "));
    }
    match &v.doc {
        None => {
            if v.conn == Conn::Connecting {
                spans.push(bold("connecting…", Color::Yellow));
            }
        }
        Some(d) => {
            let stale = matches!(v.conn, Conn::Lost(_));
            spans.push(dim("node "));
            spans.push(Span::raw(format!("{}  ", d.node)));
            spans.push(dim("mode "));
            spans.push(Span::raw(format!("{}  ", d.mode)));
            if stale {
                spans.push(dim(format!(
                    "was {}  ",
                    health_word(&d.health).to_lowercase()
                )));
            } else {
                spans.push(dim("health "));
                spans.push(bold(health_word(&d.health), health_color(&d.health)));
                spans.push(Span::raw("  "));
            }
            let recovered: u64 = d.actors.iter().map(|a| a.recovered).sum();
            spans.push(dim("recovered "));
            spans.push(bold(
                format!("{recovered}"),
                if recovered > 0 {
                    Color::Green
                } else {
                    Color::Gray
                },
            ));
            spans.push(dim(format!(" (daemon {})  ", d.daemon_recovered)));
            spans.push(dim("pid "));
            spans.push(Span::raw(format!("{}  ", d.pid)));
            if let Some(up) = since(v.now, Some(&d.started_at)) {
                spans.push(dim("up "));
                spans.push(Span::raw(format!("{}  ", short(up))));
            }
        }
    }
    Line::from(spans)
}

/// Why health is what it is, one line each (`health::assess`), or why there is no answer.
fn reason_lines(v: &View) -> Vec<Line<'static>> {
    if let Conn::Lost(e) = &v.conn {
        return vec![Line::from(vec![
            bold(format!("{}: ", disconnected_text()), Color::Red),
            Span::raw(e.clone()),
        ])];
    }
    let Some(d) = &v.doc else {
        return vec![Line::from(dim("waiting for the daemon's first answer"))];
    };
    let (_, reasons) = health::assess(d);
    if reasons.is_empty() {
        return vec![Line::from(Span::styled(
            "all permanent actors running, primary up, config valid",
            Style::new().fg(Color::Green),
        ))];
    }
    let c = health_color(&d.health);
    reasons
        .into_iter()
        .map(|r| Line::from(vec![Span::styled("• ", Style::new().fg(c)), Span::raw(r)]))
        .collect()
}

fn state_cell(a: &ActorStatus) -> Line<'static> {
    let mut spans = vec![Span::styled(
        a.state.as_str(),
        Style::new().fg(state_color(a.state)),
    )];
    if a.escalated {
        spans.push(Span::styled(
            " ESCALATED",
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ));
    }
    Line::from(spans)
}

fn recovered_span(n: u64) -> Span<'static> {
    if n > 0 {
        bold(format!("{n}"), Color::Green)
    } else {
        dim("0")
    }
}

fn actor_table(f: &mut Frame, area: Rect, v: &View, doc: &StatusDoc) {
    let order = tree_order(doc);
    let rows: Vec<Row> = order
        .iter()
        .enumerate()
        .map(|(i, a)| {
            Row::new(vec![
                Cell::from(tree_label(&order, i)),
                Cell::from(state_cell(a)),
                Cell::from(when(a, v.now)),
                Cell::from(Line::from(format!("{}", a.restarts)).right_aligned()),
                Cell::from(Line::from(recovered_span(a.recovered)).right_aligned()),
                Cell::from(Span::styled(
                    a.last_error.clone().unwrap_or_default(),
                    Style::new().fg(Color::Red),
                )),
            ])
        })
        .collect();
    let header = Row::new(vec![
        Cell::from("NAME"),
        Cell::from("STATE"),
        Cell::from("UPTIME / NEXT"),
        Cell::from(Line::from("RESTARTS").right_aligned()),
        Cell::from(
            Line::from(Span::styled(
                "RECOVERED",
                Style::new().fg(Color::Green).add_modifier(Modifier::BOLD),
            ))
            .right_aligned(),
        ),
        Cell::from("LAST ERROR"),
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    let widths = [
        Constraint::Min(16),
        Constraint::Length(19),
        Constraint::Length(16),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Fill(1),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::new().borders(Borders::TOP).title(" actors "))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶ ");
    let mut state = TableState::default()
        .with_selected((!order.is_empty()).then(|| v.selected.min(order.len() - 1)));
    f.render_stateful_widget(table, area, &mut state);
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn primary_color(p: PrimaryState) -> Color {
    match p {
        PrimaryState::Up => Color::Green,
        PrimaryState::Down => Color::Red,
        PrimaryState::Unknown => Color::Yellow,
    }
}

fn kv(k: &str, v: Span<'static>) -> Line<'static> {
    Line::from(vec![dim(format!("{k:<10}")), v])
}

fn storage_lines(d: &StatusDoc) -> Vec<Line<'static>> {
    let s = &d.storage;
    let primary_color = primary_color(s.primary);
    let mut journal = vec![Span::raw(bytes(s.journal_bytes))];
    if s.journal_full {
        journal.push(bold(" FULL", Color::Red));
    }
    vec![
        kv("primary", bold(s.primary.as_str(), primary_color)),
        kv(
            "secondary",
            Span::styled(
                s.secondary.as_str(),
                Style::new().fg(if s.secondary == SecondaryState::Used {
                    Color::Yellow
                } else {
                    Color::Reset
                }),
            ),
        ),
        Line::from([vec![dim(format!("{:<10}", "journal"))], journal].concat()),
        kv(
            "lag",
            Span::styled(
                format!("{} records", s.lag_records),
                Style::new().fg(if s.lag_records > 0 {
                    Color::Yellow
                } else {
                    Color::Reset
                }),
            ),
        ),
    ]
}

fn sync_lines(d: &StatusDoc, now: OffsetDateTime) -> Vec<Line<'static>> {
    let mut out = vec![kv("pending", Span::raw(yes_no(d.sync.pending)))];
    match &d.sync.last {
        None => out.push(kv("last", dim("never"))),
        Some(r) => {
            out.push(kv(
                "last",
                Span::styled(
                    format!("{} {}", ago(now, &r.at), if r.ok { "ok" } else { "FAILED" }),
                    Style::new().fg(if r.ok { Color::Green } else { Color::Red }),
                ),
            ));
            out.push(kv(
                "",
                Span::raw(format!(
                    "{}, {}",
                    crate::ctl::records(r.items),
                    bytes(r.bytes)
                )),
            ));
        }
    }
    out
}

fn leader_lines(d: &StatusDoc) -> Vec<Line<'static>> {
    let l = &d.leader;
    vec![
        kv("enabled", Span::raw(yes_no(l.enabled))),
        kv(
            "host",
            Span::raw(l.host.clone().unwrap_or_else(|| "-".into())),
        ),
        kv("epoch", Span::raw(l.epoch.to_string())),
    ]
}

fn panel(f: &mut Frame, area: Rect, title: &str, lines: Vec<Line<'static>>) {
    f.render_widget(
        Paragraph::new(lines).block(
            Block::new()
                .borders(Borders::TOP)
                .title(format!(" {title} ")),
        ),
        area,
    );
}

/// The storage, sync and leader summary as one line each, for windows too narrow for panels.
fn summary_lines(d: &StatusDoc, now: OffsetDateTime) -> Vec<Line<'static>> {
    let s = &d.storage;
    let mut storage = vec![
        dim("storage  primary "),
        bold(s.primary.as_str(), primary_color(s.primary)),
        Span::raw(format!(
            "  secondary {}  journal {}  lag {}",
            s.secondary,
            bytes(s.journal_bytes),
            s.lag_records
        )),
    ];
    if s.journal_full {
        storage.push(bold(" FULL", Color::Red));
    }
    let sync = match &d.sync.last {
        None => format!("pending {}  last never", yes_no(d.sync.pending)),
        Some(r) => format!(
            "pending {}  last {} {} ({})",
            yes_no(d.sync.pending),
            ago(now, &r.at),
            if r.ok { "ok" } else { "FAILED" },
            crate::ctl::records(r.items)
        ),
    };
    vec![
        Line::from(storage),
        Line::from(vec![dim("sync     "), Span::raw(sync)]),
        Line::from(vec![
            dim("leader   "),
            Span::raw(format!(
                "enabled {}  host {}  epoch {}",
                yes_no(d.leader.enabled),
                d.leader.host.as_deref().unwrap_or("-"),
                d.leader.epoch
            )),
        ]),
    ]
}

fn event_lines(v: &View, max: usize) -> Vec<Line<'static>> {
    if v.events.is_empty() {
        return vec![Line::from(dim("no events yet"))];
    }
    v.events
        .iter()
        .take(max)
        .map(|e| {
            Line::from(vec![
                dim(format!("{} ", clock(&e.ts))),
                Span::styled(format!("{:<34} ", e.event), event_style(&e.event)),
                Span::raw(format!("{:<22} ", e.actor.as_deref().unwrap_or("-"))),
                dim(payload_summary(&e.payload)),
            ])
        })
        .collect()
}

fn footer(v: &View) -> Line<'static> {
    match &v.prompt {
        Prompt::None => Line::from(dim("↑/↓ select   r restart   q quit")),
        Prompt::Confirm(name) => {
            Line::from(vec![bold(format!("restart {name}? y/n"), Color::Yellow)])
        }
        Prompt::Pending(name) => Line::from(bold(format!("restarting {name}…"), Color::Yellow)),
        Prompt::Done { ok, text } => Line::from(bold(
            text.clone(),
            if *ok { Color::Green } else { Color::Red },
        )),
    }
}

/// Draws the view; never panics, whatever the frame's size.
pub fn render(f: &mut Frame, v: &View) {
    let area = f.area();
    if area.width == 0 || area.height == 0 {
        return;
    }
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        render_small(f, area, v);
    } else {
        render_full(f, area, v);
    }
}

fn render_full(f: &mut Frame, area: Rect, v: &View) {
    let mut reasons = reason_lines(v);
    if reasons.len() > 3 {
        let more = reasons.len() - 2;
        reasons.truncate(2);
        reasons.push(Line::from(dim(format!("… and {more} more"))));
    }
    let side = area.width >= SIDE_WIDTH;
    let summary = if side { 0 } else { 3 };
    // The tree and panels take what they need; the events get the rest, at least four lines.
    let actors = v.doc.as_ref().map_or(0, |d| d.actors.len()) as u16;
    let main_h = (actors + 2).max(if side { 13 } else { 4 });
    let [head, why, sum, main, events, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(reasons.len() as u16),
        Constraint::Length(summary),
        Constraint::Length(main_h),
        Constraint::Min(4),
        Constraint::Length(1),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(header(v)), head);
    f.render_widget(Paragraph::new(reasons), why);
    f.render_widget(Paragraph::new(footer(v)), foot);
    f.render_widget(
        Paragraph::new(event_lines(v, events.height as usize)).block(
            Block::new()
                .borders(Borders::TOP)
                .title(" latest alerts and events (newest first) "),
        ),
        events,
    );
    let Some(doc) = &v.doc else {
        return;
    };
    if side {
        let [tree, panels] = Layout::horizontal([Constraint::Min(40), Constraint::Length(32)])
            .spacing(1)
            .areas(main);
        actor_table(f, tree, v, doc);
        let [st, sy, le] = Layout::vertical([
            Constraint::Length(5),
            Constraint::Length(4),
            Constraint::Min(4),
        ])
        .areas(panels);
        panel(f, st, "storage", storage_lines(doc));
        panel(f, sy, "sync", sync_lines(doc, v.now));
        panel(f, le, "leader", leader_lines(doc));
    } else {
        f.render_widget(Paragraph::new(summary_lines(doc, v.now)), sum);
        actor_table(f, main, v, doc);
    }
}

/// The compact view: the dot and health, a note that the window is small, then what fits.
fn render_small(f: &mut Frame, area: Rect, v: &View) {
    let mut first = vec![dot(v), Span::raw(" ")];
    match (&v.conn, &v.doc) {
        (Conn::Lost(_), _) => first.push(bold(disconnected_text(), Color::Red)),
        (_, None) => first.push(bold("connecting…", Color::Yellow)),
        (_, Some(d)) => {
            first.push(bold(health_word(&d.health), health_color(&d.health)));
            first.push(Span::raw(format!("  {}", d.node)));
        }
    }
    let mut lines = vec![
        Line::from(first),
        Line::from(dim(format!(
            "small window {}×{}: enlarge for more",
            area.width, area.height
        ))),
    ];
    let foot = area.height >= 4 || v.prompt != Prompt::None;
    let room = (area.height as usize).saturating_sub(lines.len() + usize::from(foot));
    let mut body: Vec<Line<'static>> = Vec::new();
    if let Conn::Lost(e) = &v.conn {
        body.push(Line::from(Span::raw(e.clone())));
    }
    if let Some(d) = &v.doc {
        let order = tree_order(d);
        // Scroll so that the selection stays in sight.
        let fit = room.saturating_sub(body.len());
        let skip = (v.selected + 1).saturating_sub(fit);
        for (i, a) in order.iter().enumerate().skip(skip).take(fit) {
            let mark = if i == v.selected { "▶" } else { " " };
            let mut spans = vec![
                Span::raw(format!("{mark}{} ", a.name)),
                Span::styled(a.state.as_str(), Style::new().fg(state_color(a.state))),
            ];
            if a.escalated {
                spans.push(bold("!", Color::Red));
            }
            spans.push(dim(format!(" r{} rec ", a.restarts)));
            spans.push(recovered_span(a.recovered));
            body.push(Line::from(spans));
        }
    }
    body.truncate(room);
    lines.extend(body);
    let [top, bottom] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(u16::from(foot))]).areas(area);
    f.render_widget(Paragraph::new(lines), top);
    if foot {
        f.render_widget(Paragraph::new(footer(v)), bottom);
    }
}

// ---------------------------------------------------------------------------------------------
// State changes: keys and messages.

/// What the loop must do after a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    None,
    Quit,
    Restart(String),
}

/// What the poller and the restart threads report.
enum Msg {
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
    selected_name: Option<String>,
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

    fn on_control(&mut self, name: String, result: Result<String, String>) {
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

    fn select(&mut self, delta: isize) {
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

// ---------------------------------------------------------------------------------------------
// I/O: the socket, the audit tail, the terminal.

fn fetch_status(candidates: &[PathBuf]) -> Result<StatusDoc, String> {
    match client::call(candidates, client::no_answer, &Request::Status) {
        Ok(Response::Json { json }) => {
            serde_json::from_str(&json).map_err(|e| format!("bad status document: {e}"))
        }
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(ClientError::NotRunning { tried, .. }) => Err(client::no_answer(&tried)),
        Err(e) => Err(e.to_string()),
    }
}

fn send_restart(candidates: &[PathBuf], name: &str) -> Result<String, String> {
    let req = Request::Control {
        verb: Verb::Restart,
        names: vec![name.to_string()],
    };
    match client::call(candidates, client::no_answer, &req) {
        Ok(Response::Ok { message }) => Ok(message),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The newest events of audit.jsonl, re-read only when the file's length changes; only its last
/// [`AUDIT_TAIL_BYTES`] are read, so a long history costs nothing.
struct AuditTail {
    path: PathBuf,
    len: Option<u64>,
    events: Vec<AuditEvent>,
}

impl AuditTail {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            len: None,
            events: Vec::new(),
        }
    }

    fn read(&mut self) -> Vec<AuditEvent> {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            self.len = None;
            self.events.clear();
            return Vec::new();
        };
        if self.len != Some(meta.len()) {
            if let Ok(events) = tail_events(&self.path) {
                self.events = events;
                self.len = Some(meta.len());
            }
        }
        self.events.clone()
    }
}

/// Parses the end of an audit file, newest first. A line cut by the start of the window, or torn
/// at the end, is not JSON and is skipped, as `audit::read_events` does.
fn tail_events(path: &Path) -> std::io::Result<Vec<AuditEvent>> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(AUDIT_TAIL_BYTES)))?;
    let mut buf = Vec::new();
    f.take(AUDIT_TAIL_BYTES).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let mut events: Vec<AuditEvent> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<AuditEvent>(l).ok())
        .filter(|e| shown(&e.event))
        .collect();
    events.reverse();
    events.truncate(EVENTS_KEPT);
    Ok(events)
}

/// Puts the terminal back (raw mode off, main screen) however `run` ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Runs the dashboard until q or Ctrl-C.
pub fn run(t: &Target) -> anyhow::Result<u8> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("fushi top needs a terminal; for scripts use `fushi status --json`");
    }
    let candidates = match &t.socket {
        Some(s) => vec![s.clone()],
        None => socket_candidates(&t.config),
    };
    let (tx, rx) = mpsc::channel::<Msg>();

    let poll_tx = tx.clone();
    let poll_candidates = candidates.clone();
    // With `--socket` alone the daemon says where its data dir is; without a daemon to ask,
    // the defaults' data dir is as good a guess as any.
    let data_dir = crate::ctl::audit_dir(t).unwrap_or_else(|_| t.config.node.data_dir.clone());
    let mut tail = AuditTail::new(data_dir.join("audit.jsonl"));
    std::thread::spawn(move || loop {
        let doc = fetch_status(&poll_candidates).map(Box::new);
        let events = tail.read();
        if poll_tx.send(Msg::Status { doc, events }).is_err() {
            return;
        }
        std::thread::sleep(REFRESH);
    });

    let mut terminal = ratatui::try_init()?;
    let _restore = Restore;
    let mut app = App::new(now());
    let started = Instant::now();
    let mut dirty = true;
    loop {
        while let Ok(m) = rx.try_recv() {
            match m {
                Msg::Status { doc, events } => app.on_status(doc.map(|d| *d), events),
                Msg::Control { name, result } => app.on_control(name, result),
            }
            dirty = true;
        }
        let blink = started.elapsed().as_secs() & 1 == 0;
        if blink != app.view.blink {
            app.view.blink = blink;
            dirty = true;
        }
        if dirty {
            app.view.now = now();
            terminal.draw(|f| render(f, &app.view))?;
            dirty = false;
        }
        if !event::poll(Duration::from_millis(100))? {
            continue;
        }
        match event::read()? {
            Event::Key(k) => {
                dirty = true;
                match app.on_key(k) {
                    Action::None => {}
                    Action::Quit => break,
                    Action::Restart(name) => {
                        let (tx, candidates) = (tx.clone(), candidates.clone());
                        std::thread::spawn(move || {
                            let result = send_restart(&candidates, &name);
                            let _ = tx.send(Msg::Control { name, result });
                        });
                    }
                }
            }
            Event::Resize(..) => dirty = true,
            _ => {}
        }
    }
    Ok(ctl::EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fushi_actors::board::{ConfigStatus, LeaderStatus, StorageStatus, SyncRun, SyncStatus};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use serde_json::json;

    fn ts(t: OffsetDateTime) -> String {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    }

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2025-01-02 03:04:05 UTC)
    }

    fn actor(name: &str, state: ActorState, restarts: u64, recovered: u64) -> ActorStatus {
        ActorStatus {
            name: name.into(),
            state,
            restart: "permanent".into(),
            restarts,
            failures: restarts,
            consecutive_failures: 0,
            recovered,
            escalated: false,
            last_error: None,
            since: Some(ts(now() - time::Duration::seconds(75))),
            next_restart_at: None,
            records: 0,
        }
    }

    fn doc(health: &str) -> StatusDoc {
        StatusDoc {
            node: "collector-pc".into(),
            mode: "prod".into(),
            mode_until: None,
            health: serde_json::from_value(Value::from(health)).expect("a health colour"),
            started_at: ts(now() - time::Duration::minutes(10)),
            pid: 4242,
            instance: "i".into(),
            daemon_recovered: 2,
            clean_shutdown: false,
            log: "text".into(),
            leader: LeaderStatus {
                enabled: false,
                host: None,
                epoch: 1,
                since: None,
            },
            storage: StorageStatus {
                primary: PrimaryState::Up,
                secondary: SecondaryState::Idle,
                journal_bytes: 2048,
                lag_records: 0,
                journal_full: false,
                journal_error: None,
                forwarded: 0,
            },
            sync: SyncStatus {
                pending: false,
                last: Some(SyncRun {
                    at: ts(now()),
                    items: 120,
                    bytes: 53211,
                    ok: true,
                }),
                conflict: None,
            },
            config: ConfigStatus {
                path: "/etc/fushi/supervisor.toml".into(),
                errors: vec![],
            },
            patience: Default::default(),
            actors: vec![
                actor("status", ActorState::Running, 0, 0),
                actor("storage", ActorState::Running, 1, 1),
                actor("collectors", ActorState::Running, 0, 0),
                actor("collectors/trades", ActorState::Running, 3, 7),
                actor("collectors/quotes", ActorState::Backoff, 5, 0),
            ],
        }
    }

    fn view(health: &str) -> View {
        let mut v = View::new(now());
        v.doc = Some(doc(health));
        v.conn = Conn::Connected;
        v.events = vec![AuditEvent {
            ts: ts(now()),
            event: "supervisor.child.restarted".into(),
            node: "collector-pc".into(),
            actor: Some("collectors/trades".into()),
            payload: json!({"attempt": 1}),
        }];
        v
    }

    fn draw(v: &View, w: u16, h: u16) -> Terminal<TestBackend> {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| render(f, v)).unwrap();
        t
    }

    fn text(t: &Terminal<TestBackend>) -> Vec<String> {
        let buf = t.backend().buffer();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect()
    }

    fn dot_cell(t: &Terminal<TestBackend>) -> (String, Color) {
        let c = &t.backend().buffer()[(0, 0)];
        (c.symbol().to_string(), c.fg)
    }

    #[test]
    fn the_dot_has_the_health_colour_and_blinks() {
        for (health, colour) in [
            ("green", Color::Green),
            ("yellow", Color::Yellow),
            ("red", Color::Red),
        ] {
            let mut v = view(health);
            let (sym, fg) = dot_cell(&draw(&v, 120, 40));
            assert_eq!((sym.as_str(), fg), ("●", colour), "{health}");
            v.blink = false;
            let (sym, fg) = dot_cell(&draw(&v, 120, 40));
            assert_eq!((sym.as_str(), fg), ("○", colour), "{health}, other phase");
        }
        let screen = text(&draw(&view("green"), 120, 40)).join("\n");
        assert!(screen.contains("HEALTHY"), "{screen}");
        let screen = text(&draw(&view("red"), 120, 40)).join("\n");
        assert!(screen.contains("CRITICAL"), "{screen}");
    }

    #[test]
    fn disconnected_is_red_and_says_so() {
        let mut v = view("green");
        v.conn = Conn::Lost("no daemon answers on /run/fushi.sock".into());
        for (w, h) in [(120, 40), (40, 10)] {
            let t = draw(&v, w, h);
            assert_eq!(dot_cell(&t).1, Color::Red);
            let screen = text(&t).join("\n");
            assert!(screen.contains("disconnected — retrying"), "{screen}");
        }
        // Never connected at all: red too.
        let mut v = View::new(now());
        v.conn = Conn::Lost("no daemon".into());
        assert_eq!(dot_cell(&draw(&v, 120, 40)).1, Color::Red);
        // Before the first answer: yellow.
        assert_eq!(dot_cell(&draw(&View::new(now()), 120, 40)).1, Color::Yellow);
    }

    #[test]
    fn the_tree_shows_states_restarts_and_recovered_counts() {
        let mut v = view("yellow");
        if let Some(d) = v.doc.as_mut() {
            d.actors[4].escalated = true;
            d.actors[4].next_restart_at = Some(ts(now() + time::Duration::milliseconds(1500)));
        }
        let t = draw(&v, 120, 40);
        let lines = text(&t);
        let screen = lines.join("\n");
        let row = |needle: &str| {
            lines
                .iter()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no row with {needle}:\n{screen}"))
                .clone()
        };
        let trades = row("└─ trades");
        assert!(trades.contains("running"), "{trades}");
        assert!(trades.contains("up 1m 15s"), "{trades}");
        let nums: Vec<&str> = trades.split_whitespace().collect();
        assert!(
            nums.windows(2).any(|w| w == ["3", "7"]),
            "restarts 3, recovered 7: {trades}"
        );
        let quotes = row("├─ quotes");
        assert!(quotes.contains("backoff ESCALATED"), "{quotes}");
        assert!(quotes.contains("restart in 1.5s"), "{quotes}");
        assert!(screen.contains("RECOVERED"), "{screen}");
        // The totals: 1 + 7 actors recovered, the daemon twice.
        assert!(
            row("recovered").contains("recovered 8 (daemon 2)"),
            "{screen}"
        );
        // Recovered counts are drawn bold green.
        let buf = t.backend().buffer();
        let y = lines.iter().position(|l| l.contains("└─ trades")).unwrap() as u16;
        let x = (0..buf.area.width).find(|&x| {
            buf[(x, y)].symbol() == "7"
                && buf[(x, y)].fg == Color::Green
                && buf[(x, y)].modifier.contains(Modifier::BOLD)
        });
        assert!(x.is_some(), "recovered 7 is bold green: {trades}");
        // Storage, sync, leader, reasons and events.
        for s in [
            "primary   up",
            "journal   2.0 KiB",
            "lag       0 records",
            "120 records",
            "enabled   no",
            "collectors/quotes escalated after 0 consecutive failures",
            "supervisor.child.restarted",
        ] {
            assert!(screen.contains(s), "missing {s:?}:\n{screen}");
        }
    }

    #[test]
    fn the_selected_actor_is_marked_and_the_narrow_layout_keeps_everything() {
        let mut v = view("green");
        // Tree order: status, storage, collectors, collectors/quotes, collectors/trades.
        v.selected = 4;
        for w in [120, 80] {
            let screen = text(&draw(&v, w, 30));
            let marked = screen
                .iter()
                .find(|l| l.contains('▶'))
                .expect("a marked row");
            assert!(marked.contains("trades"), "{marked}");
            let all = screen.join("\n");
            assert!(
                all.contains("primary up") || all.contains("primary   up"),
                "{all}"
            );
        }
    }

    #[test]
    fn small_and_tiny_terminals_render_without_panicking() {
        let mut v = view("yellow");
        let t = draw(&v, 40, 10);
        let lines = text(&t);
        assert_eq!(dot_cell(&t), ("●".into(), Color::Yellow));
        assert!(lines[0].contains("DEGRADED"), "{lines:?}");
        assert!(lines[1].contains("small window 40×10"), "{lines:?}");
        assert!(
            lines.iter().any(|l| l.contains("collectors/trades")),
            "{lines:?}"
        );
        v.prompt = Prompt::Confirm("collectors/trades".into());
        v.conn = Conn::Lost("gone".into());
        v.selected = 99;
        for (w, h) in [
            (1, 1),
            (2, 1),
            (10, 2),
            (40, 3),
            (59, 15),
            (60, 16),
            (200, 5),
            (5, 80),
        ] {
            draw(&v, w, h);
            draw(&View::new(now()), w, h);
        }
    }

    #[test]
    fn restart_asks_then_sends_and_shows_the_answer() {
        let mut app = App::new(now());
        app.on_status(Ok(doc("green")), vec![]);
        let key = |c| KeyEvent::new(c, KeyModifiers::NONE);
        // Tree order: status, storage, collectors, collectors/quotes, collectors/trades.
        for _ in 0..4 {
            assert_eq!(app.on_key(key(KeyCode::Down)), Action::None);
        }
        assert_eq!(
            app.view.selected_name().as_deref(),
            Some("collectors/trades")
        );
        assert_eq!(app.on_key(key(KeyCode::Char('r'))), Action::None);
        assert_eq!(app.view.prompt, Prompt::Confirm("collectors/trades".into()));
        let screen = text(&draw(&app.view, 120, 40));
        assert!(
            screen[39].contains("restart collectors/trades? y/n"),
            "the question is on the bottom line: {screen:?}"
        );
        assert!(text(&draw(&app.view, 40, 10))[9].contains("restart collectors/trades? y/n"));
        assert_eq!(
            app.on_key(key(KeyCode::Char('y'))),
            Action::Restart("collectors/trades".into())
        );
        app.on_control(
            "collectors/trades".into(),
            Ok("restart collectors/trades: ok".into()),
        );
        let screen = text(&draw(&app.view, 120, 40));
        assert!(
            screen[39].contains("restart collectors/trades: ok"),
            "{screen:?}"
        );
        // n cancels; the selection follows the actor by name when the tree changes.
        app.on_key(key(KeyCode::Char('r')));
        assert_eq!(app.on_key(key(KeyCode::Char('n'))), Action::None);
        assert!(
            matches!(&app.view.prompt, Prompt::Done { text, .. } if text.contains("cancelled"))
        );
        let mut d = doc("green");
        d.actors
            .insert(0, actor("alert", ActorState::Running, 0, 0));
        app.on_status(Ok(d), vec![]);
        assert_eq!(
            app.view.selected_name().as_deref(),
            Some("collectors/trades")
        );
        // Disconnected: nothing to restart; q and Ctrl-C quit.
        app.on_status(Err("gone".into()), vec![]);
        app.on_key(key(KeyCode::Char('r')));
        assert!(matches!(&app.view.prompt, Prompt::Done { ok: false, .. }));
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), Action::Quit);
        assert_eq!(
            app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Action::Quit
        );
    }

    #[test]
    fn the_audit_tail_reads_the_newest_events_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!(
                "{{\"ts\":\"2025-01-01T00:00:00Z\",\"event\":\"supervisor.child.restarted\",\"node\":\"n\",\"actor\":\"a{i}\",\"payload\":{{\"pad\":\"{}\"}}}}\n",
                "x".repeat(60)
            ));
        }
        text.push_str(
            "{\"ts\":\"2025-01-01T00:00:01Z\",\"event\":\"collector.sync.chunk\",\"node\":\"n\"}\n",
        );
        text.push_str(
            "{\"ts\":\"2025-01-01T00:00:02Z\",\"event\":\"alert.sent\",\"node\":\"n\"}\n{\"ts\":",
        );
        std::fs::write(&path, &text).unwrap();
        assert!(text.len() as u64 > AUDIT_TAIL_BYTES);
        let mut tail = AuditTail::new(path.clone());
        let events = tail.read();
        assert_eq!(events.len(), EVENTS_KEPT);
        assert_eq!(
            events[0].event, "alert.sent",
            "newest first, torn line skipped"
        );
        assert_eq!(
            events[1].actor.as_deref(),
            Some("a4999"),
            "sync steps are not shown"
        );
        std::fs::remove_file(&path).unwrap();
        assert!(tail.read().is_empty());
    }

    #[test]
    fn durations_and_sizes_read_at_a_glance() {
        assert_eq!(short(Duration::from_secs(42)), "42s");
        assert_eq!(short(Duration::from_secs(303)), "5m 3s");
        assert_eq!(short(Duration::from_secs(3 * 3600 + 240)), "3h 4m");
        assert_eq!(short(Duration::from_secs(2 * 86400 + 3 * 3600)), "2d 3h");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(53211), "52.0 KiB");
    }
}
