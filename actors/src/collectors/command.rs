//! The command collector: runs `argv` as a child process in its own process group; each stdout
//! line is a record, stderr goes to the log, and the process exiting is a failure of the actor.
//!
//! Long-running by default; with `every` it runs periodically, each run bounded by `timeout`,
//! and only a non-zero exit or a timeout is a failure. The process group is killed on stop
//! (SIGTERM, then SIGKILL after `stop_grace`) and, through a drop guard, also when the actor is
//! killed outright and never reaches `post_stop`, so no child outlives its collector.

use crate::events;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::{oneshot, watch};

use super::read_line;
use crate::records::{from_line, Line};
use crate::sink::RecordSink;
use crate::{tick_every, AbortOnDrop, Due};

#[derive(Clone)]
pub struct CommandActor;

#[derive(Clone)]
pub struct CommandArgs {
    pub path: String,
    pub stream: String,
    pub argv: Vec<String>,
    /// Run `argv` joined by spaces through `/bin/sh -c`.
    pub shell: bool,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// Periodic mode: run every `every`, each run bounded by `timeout`.
    pub every: Option<Duration>,
    pub timeout: Option<Duration>,
    pub max_record_bytes: usize,
    /// Between SIGTERM and SIGKILL of the process group on stop.
    pub stop_grace: Duration,
    pub sink: RecordSink,
}

/// Lines taken into one append at most.
const BATCH_LINES: usize = 4096;

/// Bytes of the child's stdout read at a time.
const READ_BUFFER: usize = 64 * 1024;

pub enum CommandMsg {
    /// Lines of run N, and where to say they are durable: the reader reads no more until
    /// then, so a full journal leaves the child blocked in `write` instead of lines piling up
    /// in the mailbox.
    Lines(u64, Vec<Line>, oneshot::Sender<()>),
    Exited(u64, String, bool),
    Tick(Due),
    TimedOut(u64),
}

/// Kills the whole process group when dropped.
struct ProcessGroup {
    pgid: Pid,
    exited: watch::Receiver<bool>,
}

impl ProcessGroup {
    fn signal(&self, sig: Signal) {
        // ESRCH: the group is already gone, which is what we wanted.
        let _ = killpg(self.pgid, sig);
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

/// A child just forked, with the guard that kills its group and the flag its waiter raises.
type Forked = (tokio::process::Child, ProcessGroup, watch::Sender<bool>);

/// A fork request: the command, and where its child goes.
type Job = (Command, oneshot::Sender<std::io::Result<Forked>>);

/// The thread that forks this collector's children, one per incarnation of the actor.
///
/// A spawn waits until the child has exec'd, which a program or cwd on a frozen mount holds up
/// indefinitely, so it must not run on the runtime's only thread. Nor on tokio's blocking pool:
/// a child's parent-death signal follows the *thread* that forked it (prctl(2)), and pool threads
/// exit when idle, which would kill the child with them. This thread lives exactly as long as
/// the actor's state, the same span as the children it forks.
struct Spawner {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Spawner {
    fn start(path: &str) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        // The child's reaper registers with the runtime.
        let runtime = tokio::runtime::Handle::current();
        let path = path.to_string();
        std::thread::Builder::new()
            .name("fushi-spawn".into())
            .spawn(move || {
                let _entered = runtime.enter();
                for (mut cmd, reply) in rx {
                    let forked = cmd.spawn().and_then(|child| {
                        let pid = child.id().ok_or_else(|| {
                            std::io::Error::other("the child exited before it could be watched")
                        })?;
                        let (exited_tx, exited) = watch::channel(false);
                        let group = ProcessGroup {
                            pgid: Pid::from_raw(pid as i32),
                            exited,
                        };
                        Ok((child, group, exited_tx))
                    });
                    // Nobody waits any more (the actor was killed or its start timed out): the
                    // guard, dropped here, kills the group instead of leaving it running.
                    if reply.send(forked).is_err() {
                        tracing::warn!(
                            actor = path.as_str(),
                            event = events::COLLECTOR_COMMAND_ABANDONED,
                            "a child forked after its collector stopped waiting; killed"
                        );
                    }
                }
            })?;
        Ok(Self { jobs: tx })
    }

    async fn spawn(&self, cmd: Command) -> std::io::Result<Forked> {
        let (tx, rx) = oneshot::channel();
        let gone = || std::io::Error::other("the spawner thread is gone");
        self.jobs.send((cmd, tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

pub struct CommandState {
    args: CommandArgs,
    run: u64,
    group: Option<ProcessGroup>,
    _ticker: Option<AbortOnDrop>,
    /// Last, so dropped last: the group's guard kills the whole group before the spawner's
    /// exit sends the parent-death signal to the group leader alone.
    spawner: Spawner,
}

async fn spawn(
    spawner: &Spawner,
    args: &CommandArgs,
    myself: &ActorRef<CommandMsg>,
    run: u64,
) -> Result<ProcessGroup, String> {
    let mut cmd = if args.shell {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(args.argv.join(" "));
        c
    } else {
        let mut c = Command::new(&args.argv[0]);
        c.args(&args.argv[1..]);
        c
    };
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .envs(args.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &args.cwd {
        cmd.current_dir(cwd);
    }
    // SAFETY: prctl(2) and setrlimit(2) are async-signal-safe and touch no memory of the parent.
    unsafe {
        // A `kill -9` of the daemon never reaches post_stop or the drop guard; without a parent
        // death signal the child would run on as an orphan outside systemd's cgroup cleanup.
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            // The daemon raised its own soft limit; a program using select(2) needs the old one.
            crate::fdlimit::restore_for_child()
        });
    }
    let (mut child, group, exited_tx) = spawner
        .spawn(cmd)
        .await
        .map_err(|e| format!("cannot run {:?}: {e}", masked_argv(&args.argv[..1])[0]))?;
    let pid = group.pgid;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());

    if let Some(stderr) = stderr {
        let path = args.path.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::warn!(
                    actor = path.as_str(),
                    event = events::COLLECTOR_STDERR,
                    "{line}"
                );
            }
        });
    }
    let me = myself.clone();
    let max = args.max_record_bytes;
    // Counts the batches read, so that the exit waits for a reader still draining the pipe.
    let (progress_tx, mut progress) = watch::channel(0u64);
    let mut reader = tokio::spawn(async move {
        let Some(stdout) = stdout else { return };
        let mut r = BufReader::with_capacity(READ_BUFFER, stdout);
        while let Ok(Some(first)) = read_line(&mut r, max).await {
            // What the pipe already holds goes together into one append.
            let mut lines = vec![first];
            while lines.len() < BATCH_LINES && r.buffer().contains(&b'\n') {
                match read_line(&mut r, max).await {
                    Ok(Some(l)) => lines.push(l),
                    _ => break,
                }
            }
            let (tx, rx) = oneshot::channel();
            if me.cast(CommandMsg::Lines(run, lines, tx)).is_err() || rx.await.is_err() {
                break;
            }
            progress_tx.send_modify(|n| *n += 1);
        }
    });
    let me = myself.clone();
    tokio::spawn(async move {
        let status = child.wait().await;
        let _ = exited_tx.send(true);
        // Lines written before the exit are delivered before the exit is, however long storage
        // holds them; but a grandchild that keeps stdout open must not hide the exit, so the
        // wait ends once the reader has been idle for a second.
        loop {
            match tokio::time::timeout(Duration::from_secs(1), &mut reader).await {
                Ok(_) => break,
                Err(_) if progress.has_changed().unwrap_or(false) => {
                    progress.borrow_and_update();
                }
                Err(_) => break,
            }
        }
        let (text, ok) = match status {
            Ok(s) => (s.to_string(), s.success()),
            Err(e) => (format!("wait failed: {e}"), false),
        };
        let _ = me.cast(CommandMsg::Exited(run, text, ok));
    });
    tracing::info!(actor = args.path.as_str(), event = events::COLLECTOR_COMMAND_SPAWNED, pid = pid.as_raw(), argv = ?masked_argv(&args.argv), "spawned");
    Ok(group)
}

/// `argv` as it may be logged (SPEC §9): values of secret-looking options (`--token=…`,
/// `--password …`, `TOKEN=…`, URL query parameters), credentials in URLs (`https://u:pw@…`),
/// `-u user:pw` and `Authorization: Bearer …` become `***`. Each element is looked at word by
/// word, since with `shell = true` one element may hold a whole command line.
pub(crate) fn masked_argv(argv: &[String]) -> Vec<String> {
    let mut next = Next::Plain;
    argv.iter()
        .map(|arg| {
            arg.split(' ')
                .map(|word| mask_word(word, &mut next))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// What the previous word says of the next one.
#[derive(Clone, Copy, PartialEq)]
enum Next {
    Plain,
    /// It is a secret (after `--password` or `Authorization:`).
    Secret,
    /// It is `user:password` (after curl's `-u`).
    UserPassword,
}

fn mask_word(word: &str, next: &mut Next) -> String {
    if word.is_empty() {
        return String::new();
    }
    let (now, name) = (*next, bare_name(word));
    *next = Next::Plain;
    match now {
        // `Authorization: Bearer xyz`: the scheme stays readable, the credential after it not.
        Next::Secret if matches!(name.as_str(), "bearer" | "basic" | "token" | "digest") => {
            *next = Next::Secret;
            return word.to_string();
        }
        Next::Secret => return "***".into(),
        Next::UserPassword => {
            return match word.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => word.to_string(),
            }
        }
        Next::Plain => {}
    }
    let option_like = word.starts_with('-') || word.ends_with(':');
    if option_like && !word.contains('=') {
        if matches!(word, "-u" | "--user" | "--proxy-user") {
            *next = Next::UserPassword;
        } else if secret_name(&name) {
            *next = Next::Secret;
        }
        return word.to_string();
    }
    let word = crate::audit::mask_url(word).unwrap_or_else(|| word.to_string());
    // `key=value` pieces: the whole word (`--token=x`, `TOKEN=x`) or a URL's query parameters.
    let mut out = String::with_capacity(word.len());
    for piece in word.split_inclusive(['?', '&']) {
        let (body, sep) = match piece.strip_suffix(['?', '&']) {
            Some(b) => (b, &piece[b.len()..]),
            None => (piece, ""),
        };
        match body.split_once('=') {
            Some((key, _)) if secret_name(&bare_name(key)) => {
                out.push_str(key);
                out.push_str("=***");
            }
            _ => out.push_str(body),
        }
        out.push_str(sep);
    }
    out
}

/// A word as a name to look up: no quotes, dashes in front, colon behind; lower case, `_` for `-`.
fn bare_name(word: &str) -> String {
    word.trim_matches(['\'', '"'])
        .trim_start_matches('-')
        .trim_end_matches(':')
        .to_ascii_lowercase()
        .replace('-', "_")
}

/// Whether the audit log's masking (the one list of secret-looking names) would hide a value
/// under `name`; an `Authorization` header is one too.
fn secret_name(name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    if name.ends_with("authorization") {
        return true;
    }
    let mut probe = serde_json::json!({ name: "" });
    crate::audit::mask_secrets(&mut probe);
    probe[name] == "***"
}

impl CommandActor {
    async fn record(state: &CommandState, lines: Vec<Line>) {
        let a = &state.args;
        let records = lines
            .into_iter()
            .map(|line| {
                let (record, problem) =
                    from_line(&a.path, &a.stream, line, a.max_record_bytes, false);
                if let Some(reason) = problem {
                    tracing::warn!(
                        actor = a.path.as_str(),
                        event = events::COLLECTOR_QUARANTINE,
                        reason = reason.as_str(),
                        "line quarantined"
                    );
                }
                record
            })
            .collect();
        if let Err(e) = a.sink.submit(&a.path, records).await {
            // The gate stops this collector (and its child) in a moment; these lines were
            // read but never taken, so nobody was told they were.
            tracing::debug!(actor = a.path.as_str(), "lines not taken: {e}");
        }
    }
}

impl Actor for CommandActor {
    type Msg = CommandMsg;
    type State = CommandState;
    type Arguments = CommandArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<CommandMsg>,
        args: CommandArgs,
    ) -> Result<CommandState, ActorProcessingErr> {
        if args.argv.is_empty() {
            return Err("argv is empty".into());
        }
        let spawner = Spawner::start(&args.path)
            .map_err(|e| format!("cannot start the thread that runs commands: {e}"))?;
        let mut state = CommandState {
            spawner,
            args,
            run: 0,
            group: None,
            _ticker: None,
        };
        match state.args.every {
            None => {
                state.run = 1;
                state.group = Some(spawn(&state.spawner, &state.args, &myself, 1).await?);
            }
            Some(every) => {
                state._ticker = Some(tick_every(myself.clone(), every, CommandMsg::Tick));
            }
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<CommandMsg>,
        msg: CommandMsg,
        state: &mut CommandState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CommandMsg::Lines(run, lines, durable) if run == state.run => {
                Self::record(state, lines).await;
                let _ = durable.send(());
            }
            CommandMsg::Lines(..) => {}
            CommandMsg::Exited(run, status, ok) if run == state.run => {
                state.group = None;
                if state.args.every.is_none() {
                    return Err(format!("process exited ({status})").into());
                }
                if !ok {
                    return Err(format!("periodic run failed ({status})").into());
                }
            }
            CommandMsg::Exited(..) => {}
            CommandMsg::Tick(_due) => {
                if state.group.is_some() {
                    tracing::warn!(
                        actor = state.args.path.as_str(),
                        event = events::COLLECTOR_COMMAND_OVERRUN,
                        "previous run still going; skipping this tick"
                    );
                    return Ok(());
                }
                state.run += 1;
                state.group = Some(spawn(&state.spawner, &state.args, &myself, state.run).await?);
                if let Some(t) = state.args.timeout {
                    let (me, run) = (myself.clone(), state.run);
                    tokio::spawn(async move {
                        tokio::time::sleep(t).await;
                        let _ = me.cast(CommandMsg::TimedOut(run));
                    });
                }
            }
            CommandMsg::TimedOut(run) if run == state.run && state.group.is_some() => {
                state.group = None; // the drop kills the group
                return Err(format!(
                    "periodic run timed out after {:?}",
                    state.args.timeout.unwrap_or_default()
                )
                .into());
            }
            CommandMsg::TimedOut(..) => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<CommandMsg>,
        state: &mut CommandState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(mut group) = state.group.take() {
            group.signal(Signal::SIGTERM);
            let grace = state.args.stop_grace;
            let _ = tokio::time::timeout(grace, group.exited.wait_for(|&e| e)).await;
            // Dropping `group` sends SIGKILL to whatever is left of the group.
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::masked_argv;

    fn masked(argv: &[&str]) -> Vec<String> {
        masked_argv(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn secrets_in_argv_are_masked_and_the_rest_is_kept() {
        assert_eq!(
            masked(&[
                "poller",
                "--token=abc123",
                "--password",
                "hunter2",
                "--api-key",
                "k",
                "https://bob:pw@nas/x?topic=t&access_token=zzz",
                "-H",
                "Authorization: Bearer eyJ",
                "-u",
                "alice:s3cret",
                "TOKEN=t",
                "--verbose",
                "plain",
            ]),
            [
                "poller",
                "--token=***",
                "--password",
                "***",
                "--api-key",
                "***",
                "https://bob:***@nas/x?topic=t&access_token=***",
                "-H",
                "Authorization: Bearer ***",
                "-u",
                "alice:***",
                "TOKEN=***",
                "--verbose",
                "plain",
            ]
        );
    }

    #[test]
    fn a_shell_command_line_is_masked_word_by_word() {
        assert_eq!(
            masked(&["curl -s -u bob:pw https://x:y@h/p --secret q | jq ."]),
            ["curl -s -u bob:*** https://x:***@h/p --secret *** | jq ."]
        );
        assert_eq!(masked(&["echo", "a  b", ""]), ["echo", "a  b", ""]);
    }
}
