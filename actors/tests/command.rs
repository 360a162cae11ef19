//! A command collector's child lives exactly as long as its collector, whatever threads the runtime keeps or lets go.

use fushi_actors::board::StatusBoard;
use fushi_actors::collectors::command::{CommandActor, CommandArgs};
use fushi_actors::sink::RecordSink;
use fushi_actors::storage::StorageHandle;
use ractor::Actor;
use std::time::Duration;
use tokio::time::Instant;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `f` until it gives a value: a thread's exit shows only in `/proc`, which has nothing to
/// wait on.
async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The child processes of this process whose command name is `comm`.
fn children_named(comm: &str) -> Vec<u32> {
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            // After the name in parentheses: state, then the parent's pid.
            let Some((head, rest)) = stat.rsplit_once(") ") else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            let (state, ppid) = (fields.next(), fields.next());
            head.ends_with(&format!("({comm}")) && ppid == Some(me.as_str()) && state != Some("Z")
        })
        .collect()
}

/// Threads of this process named `name`.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| t.ok())
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim_end() == name)
                })
                .count()
        })
        .unwrap_or(0)
}

/// A child's parent-death signal follows the thread that forked it. Forked from a blocking-pool
/// thread, a long-running command was SIGKILLed as soon as that thread went idle and exited.
#[test]
fn a_long_running_command_outlives_the_runtimes_idle_threads() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("test-pool")
        .thread_keep_alive(Duration::from_millis(10))
        .build()
        .unwrap();
    runtime.block_on(async {
        let journal = tempfile::tempdir().unwrap();
        let board = StatusBoard::new("test-node", "prod", "test.toml");
        let args = CommandArgs {
            path: "collectors/sleeper".into(),
            stream: "test/sleeper".into(),
            argv: vec!["sleep".into(), "300".into()],
            shell: false,
            env: Vec::new(),
            cwd: None,
            every: None,
            timeout: None,
            max_record_bytes: 1 << 20,
            stop_grace: Duration::from_secs(5),
            sink: RecordSink::new(board, StorageHandle::new(journal.path().to_path_buf())),
        };
        let (actor, task) = Actor::spawn(None, CommandActor, args).await.unwrap();
        // The start returns once the child has exec'd.
        let children = children_named("sleep");
        assert_eq!(children.len(), 1, "one sleep child: {children:?}");

        // Give the blocking pool work, then let its idle thread exit.
        tokio::task::spawn_blocking(|| ()).await.unwrap();
        wait_for("the idle pool thread to exit", || {
            (threads_named("test-pool") == 0).then_some(())
        })
        .await;
        assert_eq!(
            children_named("sleep"),
            children,
            "the command still runs after the pool's threads exited"
        );

        // Stopping the collector still ends it: its stop waits for the child's exit.
        actor.stop(None);
        task.await.unwrap();
        assert_eq!(children_named("sleep"), Vec::<u32>::new());
    });
}
