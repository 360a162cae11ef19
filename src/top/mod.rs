//! `fushi top`: a terminal dashboard of the daemon (heartbeat dot, actor tree, storage, sync, leader, alerts), refreshed every second over the control socket.
//!
//! Rendering is a pure function of a [`View`] (status document, audit tail, selection, connection
//! state, blink phase) onto a ratatui [`Frame`], so it is tested on ratatui's `TestBackend`. The
//! terminal loop only turns keys and messages into a new `View`: a poller thread fetches the status
//! and reads the audit tail every second (a hung daemon never freezes the keys), and a restart is
//! sent on a thread of its own, its answer shown on the bottom line.

use anyhow::bail;
use fushi_actors::clock::Stopwatch;
use ratatui::crossterm::event::{self, Event};
use std::io::IsTerminal;
use std::sync::mpsc;
use std::time::Duration;

use crate::control::socket_candidates;
use crate::ctl::{self, Target};

mod app;
mod render;
mod source;
mod view;

use app::*;
use render::*;
use source::*;
use view::*;

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
        #[allow(
            clippy::disallowed_methods,
            reason = "top's poller is a plain thread asking the daemon; no runtime runs here"
        )]
        std::thread::sleep(REFRESH);
    });

    let mut terminal = ratatui::try_init()?;
    let _restore = Restore;
    let mut app = App::new(now());
    let started = Stopwatch::start();
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
    use fushi_actors::audit::AuditEvent;
    use fushi_actors::board::{ActorState, ActorStatus, PrimaryState, SecondaryState, StatusDoc};
    use fushi_actors::board::{ConfigStatus, LeaderStatus, StorageStatus, SyncRun, SyncStatus};
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use ratatui::style::Color;
    use ratatui::style::Modifier;
    use ratatui::Terminal;
    use serde_json::json;
    use serde_json::Value;
    use std::time::Duration;
    use time::OffsetDateTime;

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
            quarantined: 0,
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
            leader: LeaderStatus::default(),
            alerts: Default::default(),
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
            slos: Vec::new(),
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
    fn slo_gates_show_a_line_each_with_phase_and_last_verdict() {
        use fushi_actors::board::{SloStatus, SloWindowLast};
        let mut v = view("red");
        let gate = |name: &str, verdict: &str, incident: Option<&str>, promotable| SloStatus {
            name: name.into(),
            stream: "app/save".into(),
            kind: "p95".into(),
            metric: "latency_ms".into(),
            phase: "B".into(),
            promotable,
            good_windows: 8,
            promote_after: 8,
            current: None,
            last: Some(SloWindowLast {
                start: "a".into(),
                end: "b".into(),
                value: Some(2100.5),
                threshold: 2000.0,
                verdict: verdict.into(),
            }),
            incident: incident.map(str::to_string),
            verdicts: Default::default(),
            too_late: 0,
        };
        if let Some(d) = v.doc.as_mut() {
            d.slos = vec![
                gate("save-latency", "violation", Some("save-latency-3"), false),
                gate("errors", "ok", None, true),
            ];
        }
        let screen = text(&draw(&v, 120, 40)).join("\n");
        assert!(screen.contains(" slo gates "), "{screen}");
        assert!(
            screen.contains(
                "save-latency     phase B  violation p95 2100.5 / 2000  incident save-latency-3"
            ),
            "{screen}"
        );
        assert!(
            screen.contains("errors           phase B  ok        p95 2100.5 / 2000  promotable"),
            "{screen}"
        );
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
            "role      disabled",
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
