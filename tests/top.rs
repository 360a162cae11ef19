//! `fushi top` in a real terminal: tmux runs it against a live daemon, types keys and reads the screen.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::util::*;

const TREE: &str = r#"[[collector]]
name = "tick"
kind = "heartbeat"
every = "1h"

[[collector]]
name = "tock"
kind = "heartbeat"
every = "1h"
"#;

/// A tmux server of its own (`tmux -L <unique>`, its socket under the test's temp dir), so tests
/// never touch a user's sessions or each other's; killed with everything in it on drop.
struct Tmux {
    name: String,
    conf: std::path::PathBuf,
    /// TMUX_TMPDIR: the socket lives in the test's temp dir and goes with it.
    dir: std::path::PathBuf,
}

impl Tmux {
    fn available() -> bool {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Starts `argv` in a detached 120×40 session named `top`. The pane stays after the program
    /// exits (remain-on-exit), so a failure can still show its last screen.
    fn start(dir: &Path, argv: &[OsString]) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "fushi-top-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let conf = dir.join("tmux.conf");
        std::fs::write(
            &conf,
            "set -g default-terminal xterm-256color\nset -wg remain-on-exit on\n",
        )
        .expect("writing tmux.conf");
        let t = Self {
            name,
            conf,
            dir: dir.to_path_buf(),
        };
        let mut cmd = t.tmux();
        cmd.args(["new-session", "-d", "-s", "top", "-x", "120", "-y", "40"])
            .args(argv);
        let out = cmd.output().expect("running tmux");
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-u")
            .arg("-L")
            .arg(&self.name)
            .arg("-f")
            .arg(&self.conf)
            .env_remove("TMUX")
            .env("TMUX_TMPDIR", &self.dir)
            .env("TERM", "xterm-256color");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.tmux().args(args).output().expect("running tmux")
    }

    /// The screen as text (`escapes`: with colours as SGR sequences).
    fn capture(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", "top"];
        if escapes {
            args.push("-e");
        }
        String::from_utf8_lossy(&self.run(&args).stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.capture(false)
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "tmux send-keys: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Polls the screen until `pred` holds; on timeout fails showing the last screen.
    fn wait_screen(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The name on the row with the selection marker (`▶ ├─ tick  running …` gives `tick`).
fn selected(screen: &str) -> String {
    screen
        .lines()
        .find(|l| l.contains('▶'))
        .and_then(|l| {
            l.split_whitespace()
                .find(|w| !matches!(*w, "▶" | "├─" | "└─"))
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn healthy_header(screen: &str) -> bool {
    let first = screen.lines().next().unwrap_or_default();
    ["HEALTHY", "DEGRADED", "CRITICAL"]
        .iter()
        .any(|h| first.contains(h))
        && !first.contains("disconnected")
}

#[test]
#[ignore = "needs tmux: scripts/test runs it (--include-ignored)"]
fn top_shows_the_tree_restarts_a_collector_survives_the_daemon_and_quits() {
    require(
        Tmux::available(),
        "top_shows_the_tree_restarts_a_collector_survives_the_daemon_and_quits",
        "tmux (apt-get install tmux)",
    );
    let env = Env::new(&config(TREE));
    let mut daemon = env.start();
    // The shell records top's exit status in a file: tmux, busy, sometimes leaves its child a
    // zombie it never reaps, so its own #{pane_dead_status} cannot be waited on.
    let exit_file = env.path().join("top.exit");
    let argv: Vec<OsString> = vec![
        "sh".into(),
        "-c".into(),
        r#"env -u XDG_RUNTIME_DIR TERM=xterm-256color "$0" top -c "$1"; echo $? > "$2""#.into(),
        bin().into(),
        env.config().into(),
        exit_file.clone().into(),
    ];
    let tmux = Tmux::start(env.path(), &argv);

    // The tree, the health and the node.
    let screen = tmux.wait_screen("the actor tree and the health", |s| {
        healthy_header(s) && s.contains("tick") && s.contains("tock") && s.contains("collectors")
    });
    let first = screen.lines().next().unwrap_or_default();
    assert!(
        first.starts_with('●') || first.starts_with('○'),
        "the dot is top-left: {first}"
    );
    assert!(first.contains("node test-node"), "{first}");
    assert!(screen.contains("RECOVERED"), "{screen}");

    // Select collectors/tick with ↓, waiting for the marker to move each time.
    let mut marked = selected(&screen);
    for _ in 0..20 {
        if marked == "tick" {
            break;
        }
        tmux.keys(&["Down"]);
        let before = marked.clone();
        marked = selected(&tmux.wait_screen("the selection to move", |s| selected(s) != before));
    }
    assert_eq!(marked, "tick", "could not select tick");

    // r asks, y restarts: the supervisor audits it and the answer is on the bottom line.
    assert!(events(
        &env.audit(),
        "supervisor.child.restarted",
        "collectors/tick"
    )
    .is_empty());
    tmux.keys(&["r"]);
    tmux.wait_screen("the restart question", |s| {
        s.contains("restart collectors/tick? y/n")
    });
    tmux.keys(&["y"]);
    daemon.wait_audit("supervisor.child.restarted", "collectors/tick", 1);
    let screen = tmux.wait_screen("the restart's answer", |s| {
        s.contains("restart collectors/tick: ok")
    });
    assert_eq!(selected(&screen), "tick", "the selection stays on tick");
    tmux.wait_screen("the restart in the events and the restart count", |s| {
        s.lines()
            .any(|l| l.contains("supervisor.child.restarted") && l.contains("collectors/tick"))
            && s.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                // ▶ └─ tick  running  up 0s  RESTARTS RECOVERED
                cols.contains(&"tick") && cols.windows(2).any(|w| w == ["1", "0"])
            })
    });

    // The daemon goes away: disconnected, the dot red; it comes back: reconnected by itself.
    daemon.kill9();
    let screen = tmux.wait_screen("disconnected", |s| {
        s.lines()
            .next()
            .is_some_and(|l| l.contains("disconnected — retrying"))
    });
    assert!(screen.contains("no daemon answers"), "{screen}");
    let coloured = tmux.capture(true);
    let first = coloured.lines().next().unwrap_or_default();
    let dot = first
        .find(['●', '○'])
        .unwrap_or_else(|| panic!("no dot: {first:?}"));
    assert!(
        first[..dot].contains("31") || first[..dot].contains("38;5;1m"),
        "the dot is red while disconnected: {first:?}"
    );
    let mut daemon = env.start();
    tmux.wait_screen("reconnected", healthy_header);

    // A small window shows what fits, and says so.
    let out = tmux.run(&["resize-window", "-t", "top", "-x", "40", "-y", "10"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let screen = tmux.wait_screen("the compact view", |s| s.contains("small window 40×10"));
    assert!(healthy_header(&screen), "{screen}");

    // q quits, with exit status 0.
    tmux.keys(&["q"]);
    let status = wait_for("fushi top to exit on q", || {
        std::fs::read_to_string(&exit_file)
            .ok()
            .filter(|s| s.ends_with('\n'))
    });
    assert_eq!(
        status.trim(),
        "0",
        "fushi top exits 0 on q:\n{}",
        tmux.screen()
    );
    daemon.terminate();
}

#[test]
#[ignore = "needs tmux: scripts/test runs it (--include-ignored)"]
fn top_with_only_the_socket_from_another_dir_shows_the_audit_events() {
    require(
        Tmux::available(),
        "top_with_only_the_socket_from_another_dir_shows_the_audit_events",
        "tmux (apt-get install tmux)",
    );
    let env = Env::new(&config(TREE));
    let mut daemon = started(&env);
    let argv: Vec<OsString> = vec![
        "sh".into(),
        "-c".into(),
        r#"cd / && env -u XDG_RUNTIME_DIR -u XDG_CONFIG_HOME TERM=xterm-256color "$0" top --socket "$1""#
            .into(),
        bin().into(),
        env.data().join("fushi.sock").into(),
    ];
    let tmux = Tmux::start(env.path(), &argv);
    let screen = tmux.wait_screen("the tree and the audit events", |s| {
        healthy_header(s)
            && s.lines()
                .any(|l| l.contains("supervisor.child.started") && l.contains("collectors/tick"))
    });
    assert!(screen.contains("tock"), "{screen}");
    tmux.keys(&["q"]);
    daemon.terminate();
}
