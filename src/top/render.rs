//! Rendering: pure functions of a `View` onto a ratatui `Frame`, tested on ratatui's `TestBackend`.

use fushi_actors::board::{health, Health};
use fushi_actors::board::{ActorState, ActorStatus, PrimaryState, SecondaryState, StatusDoc};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;
use serde_json::Value;
use std::time::Duration;
use time::OffsetDateTime;

use super::view::*;

/// The dot's colour: red while disconnected, yellow until the first answer, else the health.
pub fn dot_color(v: &View) -> Color {
    match (&v.conn, &v.doc) {
        (Conn::Lost(_), _) => Color::Red,
        (_, None) => Color::Yellow,
        (_, Some(d)) => health_color(&d.health),
    }
}

pub(super) fn health_color(health: &Health) -> Color {
    match health {
        Health::Green => Color::Green,
        Health::Yellow => Color::Yellow,
        Health::Red => Color::Red,
    }
}

pub(super) fn health_word(health: &Health) -> String {
    health.word().to_uppercase()
}

pub(super) fn state_color(s: ActorState) -> Color {
    match s {
        ActorState::Running => Color::Green,
        ActorState::Starting | ActorState::Backoff => Color::Yellow,
        ActorState::Stopping | ActorState::Stopped => Color::Gray,
        ActorState::Fatal => Color::Red,
    }
}

/// The name column: children drawn under their parent with tree glyphs.
pub(super) fn tree_label(order: &[&ActorStatus], i: usize) -> String {
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

pub(super) fn parse_ts(ts: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()
}

/// A duration the way a glance wants it: `42s`, `5m 3s`, `3h 4m`, `2d 3h`.
pub(super) fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

pub(super) fn since(now: OffsetDateTime, ts: Option<&str>) -> Option<Duration> {
    let d = now - parse_ts(ts?)?;
    Some(Duration::from_secs(d.whole_seconds().max(0) as u64))
}

/// Uptime of a running actor, countdown to the next restart of one in backoff, else time in state.
pub(super) fn when(a: &ActorStatus, now: OffsetDateTime) -> String {
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
pub(super) fn ago(now: OffsetDateTime, ts: &str) -> String {
    since(now, Some(ts)).map_or_else(|| ts.to_string(), |d| format!("{} ago", short(d)))
}

/// `1.5 MiB`: a size for people.
pub(super) fn bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}

/// `HH:MM:SS` of an RFC 3339 timestamp (the whole string if it is not one).
pub(super) fn clock(ts: &str) -> &str {
    ts.get(11..19).unwrap_or(ts)
}

pub(super) fn payload_summary(p: &Value) -> String {
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

pub(super) fn event_style(event: &str) -> Style {
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

pub(super) fn dot(v: &View) -> Span<'static> {
    Span::styled(
        if v.blink { "●" } else { "○" },
        Style::new().fg(dot_color(v)).add_modifier(Modifier::BOLD),
    )
}

pub(super) fn disconnected_text() -> &'static str {
    "disconnected — retrying"
}

pub(super) fn bold(s: impl Into<String>, c: Color) -> Span<'static> {
    Span::styled(s.into(), Style::new().fg(c).add_modifier(Modifier::BOLD))
}

pub(super) fn dim(s: impl Into<String>) -> Span<'static> {
    Span::styled(s.into(), Style::new().fg(Color::DarkGray))
}

/// The first line: dot, node, mode, health, pid, uptime and the recovered totals.
pub(super) fn header(v: &View) -> Line<'static> {
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
pub(super) fn reason_lines(v: &View) -> Vec<Line<'static>> {
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

pub(super) fn state_cell(a: &ActorStatus) -> Line<'static> {
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

pub(super) fn recovered_span(n: u64) -> Span<'static> {
    if n > 0 {
        bold(format!("{n}"), Color::Green)
    } else {
        dim("0")
    }
}

pub(super) fn actor_table(f: &mut Frame, area: Rect, v: &View, doc: &StatusDoc) {
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

pub(super) fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

pub(super) fn primary_color(p: PrimaryState) -> Color {
    match p {
        PrimaryState::Up => Color::Green,
        PrimaryState::Down => Color::Red,
        PrimaryState::Unknown => Color::Yellow,
    }
}

pub(super) fn kv(k: &str, v: Span<'static>) -> Line<'static> {
    Line::from(vec![dim(format!("{k:<10}")), v])
}

pub(super) fn storage_lines(d: &StatusDoc) -> Vec<Line<'static>> {
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

pub(super) fn sync_lines(d: &StatusDoc, now: OffsetDateTime) -> Vec<Line<'static>> {
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

/// Leading is what a collecting node should do, standing by is fine, fenced wants a look.
fn role_color(role: &str) -> Color {
    match role {
        "leader" => Color::Green,
        "fenced" => Color::Red,
        "standby" => Color::Yellow,
        _ => Color::Reset,
    }
}

pub(super) fn leader_lines(d: &StatusDoc) -> Vec<Line<'static>> {
    let l = &d.leader;
    let mut lines = vec![
        kv("role", bold(l.role.as_str(), role_color(&l.role))),
        kv(
            "holder",
            Span::raw(match (&l.node, &l.host) {
                (Some(n), Some(h)) => format!("{n} on {h}"),
                _ => "-".into(),
            }),
        ),
        kv("epoch", Span::raw(l.epoch.to_string())),
    ];
    if let Some(e) = &l.error {
        lines.push(kv("error", bold(e.as_str(), Color::Red)));
    }
    lines
}

fn verdict_color(verdict: &str) -> Color {
    match verdict {
        "ok" => Color::Green,
        "warn" => Color::Yellow,
        "violation" => Color::Red,
        _ => Color::Reset,
    }
}

/// A line per SLO gate: its phase, last verdict with value and threshold, an open incident or
/// whether it may be promoted.
pub(super) fn slo_lines(d: &StatusDoc) -> Vec<Line<'static>> {
    d.slos
        .iter()
        .map(|s| {
            let mut spans = vec![
                Span::raw(format!("{:<16} ", s.name)),
                dim("phase "),
                bold(s.phase.clone(), Color::Reset),
                Span::raw("  "),
            ];
            match &s.last {
                Some(l) => {
                    spans.push(bold(format!("{:<9}", l.verdict), verdict_color(&l.verdict)));
                    spans.push(Span::raw(format!(
                        " {} {} / {}",
                        s.kind,
                        l.value.map_or("-".into(), |v| format!("{v:.3}")
                            .trim_end_matches('0')
                            .trim_end_matches('.')
                            .to_string()),
                        l.threshold
                    )));
                }
                None => spans.push(dim("no window judged yet")),
            }
            if let Some(id) = &s.incident {
                spans.push(bold(format!("  incident {id}"), Color::Red));
            } else if s.promotable {
                spans.push(bold("  promotable", Color::Green));
            } else {
                spans.push(dim(format!(
                    "  {}/{} ok to promote",
                    s.good_windows, s.promote_after
                )));
            }
            Line::from(spans)
        })
        .collect()
}

pub(super) fn panel(f: &mut Frame, area: Rect, title: &str, lines: Vec<Line<'static>>) {
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
pub(super) fn summary_lines(d: &StatusDoc, now: OffsetDateTime) -> Vec<Line<'static>> {
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
            bold(d.leader.role.as_str(), role_color(&d.leader.role)),
            Span::raw(format!(
                "  holder {}  epoch {}",
                d.leader.node.as_deref().unwrap_or("-"),
                d.leader.epoch
            )),
        ]),
    ]
}

pub(super) fn event_lines(v: &View, max: usize) -> Vec<Line<'static>> {
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

pub(super) fn footer(v: &View) -> Line<'static> {
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

pub(super) fn render_full(f: &mut Frame, area: Rect, v: &View) {
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
    let slos = v.doc.as_ref().map_or(0, |d| {
        if d.slos.is_empty() {
            0
        } else {
            d.slos.len() + 1
        }
    }) as u16;
    let [head, why, sum, main, gates, events, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(reasons.len() as u16),
        Constraint::Length(summary),
        Constraint::Length(main_h),
        Constraint::Length(slos),
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
    if !doc.slos.is_empty() {
        panel(f, gates, "slo gates", slo_lines(doc));
    }
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
pub(super) fn render_small(f: &mut Frame, area: Rect, v: &View) {
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
