//! Gathering steps under a time limit: a child process killed past it, and any other blocking step (a socket call, a journal read) abandoned past it.
//!
//! A bundle is made when something is wrong, and then a hung NAS or a daemon that stopped
//! answering must not hang it too: each step gets the same limit, and one that outlasts it is
//! written down as such and the bundle goes on.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fushi_actors::clock::Stopwatch;

/// How a child process ended, with what it printed.
#[derive(Debug)]
pub(super) struct Ran {
    /// The command line as a person would type it.
    pub shown: String,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub end: End,
    pub took: Duration,
}

#[derive(Debug)]
pub(super) enum End {
    Exited(ExitStatus),
    /// Killed past the limit; `reaped` is false when it did not even die then (a process stuck
    /// in the kernel on a hung NFS mount cannot be killed until the mount answers).
    TimedOut {
        reaped: bool,
    },
    /// It could not be started at all.
    NotStarted(String),
}

impl Ran {
    /// "exit status 0", "killed after 60s", …: what the end was, in words.
    pub fn end_words(&self, limit: Duration) -> String {
        match &self.end {
            End::Exited(st) => match st.code() {
                Some(c) => format!("exit status {c}"),
                None => format!("ended by {st}"),
            },
            End::TimedOut { reaped: true } => format!(
                "killed after {}: it did not finish within the time limit (--timeout)",
                humantime::format_duration(limit)
            ),
            End::TimedOut { reaped: false } => format!(
                "killed after {}, and still not gone: it is stuck in the kernel, most likely on a \
                 hung mount (the primary on a NAS?)",
                humantime::format_duration(limit)
            ),
            End::NotStarted(why) => format!("could not be started: {why}"),
        }
    }

    pub fn code(&self) -> Option<i32> {
        match &self.end {
            End::Exited(st) => st.code(),
            _ => None,
        }
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Reads a pipe to its end on a thread of its own, so that a child writing much to both pipes
/// never blocks on the one nobody reads.
fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        // What was read before an error is still what the child said.
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Runs `cmd` (stdin closed, stdout and stderr captured) for at most `limit`; past it, its
/// process group is killed and it is given a moment to go.
pub(super) fn run(mut cmd: Command, limit: Duration) -> Ran {
    use std::os::unix::process::CommandExt;
    let shown = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let clock = Stopwatch::start();
    // Its own process group, so that whatever it starts dies with it.
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Ran {
                shown,
                stdout: Vec::new(),
                stderr: Vec::new(),
                end: End::NotStarted(e.to_string()),
                took: clock.elapsed(),
            }
        }
    };
    let pid = child.id() as i32;
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let (tx, rx) = mpsc::channel();
    // The waiting thread owns the child: the pid is not reaped (and so cannot be reused by
    // another process) until it has ended, so killing it by pid below is safe.
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let end = match rx.recv_timeout(limit) {
        Ok(Ok(st)) => End::Exited(st),
        Ok(Err(e)) => End::NotStarted(format!("waiting for it: {e}")),
        Err(_) => {
            let group = nix::unistd::Pid::from_raw(-pid);
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            let reaped = rx.recv_timeout(Duration::from_secs(2)).is_ok();
            End::TimedOut { reaped }
        }
    };
    // A killed child's pipes close with it; one stuck in the kernel keeps them open, and then
    // what it printed so far is not waited for.
    let grace = match end {
        End::TimedOut { reaped: false } => Duration::ZERO,
        _ => Duration::from_secs(2),
    };
    let take = |rx: Option<mpsc::Receiver<Vec<u8>>>| {
        rx.and_then(|r| r.recv_timeout(grace).ok())
            .unwrap_or_default()
    };
    Ran {
        shown,
        stdout: take(out),
        stderr: take(err),
        end,
        took: clock.elapsed(),
    }
}

/// Runs blocking `f` on a thread of its own for at most `limit`: `None` past it (the thread is
/// left to finish or not; the command ends without waiting for it).
pub(super) fn bounded<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_captured_and_one_that_hangs_is_killed_at_the_limit() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let ran = run(cmd, Duration::from_secs(30));
        assert_eq!(ran.code(), Some(3));
        assert_eq!(ran.stdout_text(), "out\n");
        assert_eq!(ran.stderr_text(), "err\n");
        assert_eq!(ran.end_words(Duration::from_secs(30)), "exit status 3");

        // The grandchild `sleep` holds the pipes open too: killing the group ends it as well.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo started; sleep 600 & wait"]);
        let ran = run(cmd, Duration::from_millis(300));
        assert!(
            matches!(ran.end, End::TimedOut { reaped: true }),
            "{:?}",
            ran.end
        );
        assert_eq!(ran.stdout_text(), "started\n");
        assert!(ran.took < Duration::from_secs(10), "{:?}", ran.took);
        assert!(ran
            .end_words(Duration::from_millis(300))
            .starts_with("killed after 300ms"));

        let ran = run(
            Command::new("/nonexistent/fushi-test-program"),
            Duration::from_secs(1),
        );
        assert!(
            ran.end_words(Duration::from_secs(1))
                .starts_with("could not be started: No such file"),
            "{:?}",
            ran.end
        );
    }

    #[test]
    fn a_step_past_its_limit_is_abandoned() {
        assert_eq!(bounded(Duration::from_secs(5), || 7), Some(7));
        let (_keep, rx) = mpsc::channel::<()>();
        assert_eq!(
            bounded(Duration::from_millis(50), move || rx.recv().is_ok()),
            None
        );
    }
}
