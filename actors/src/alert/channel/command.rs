//! The command channel: runs `argv` with the message in `FUSHI_ALERT_*` variables and as JSON on stdin; no shell unless the config asks for one.

use std::collections::BTreeMap;
use std::process::Stdio;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Attempt, ChannelSpec, Failure};

/// The most of the command's stderr an error quotes.
const STDERR_QUOTE: usize = 300;

pub(super) async fn run(
    spec: &ChannelSpec,
    argv: &[String],
    shell: bool,
    env: &BTreeMap<String, String>,
    a: &Attempt<'_>,
) -> Result<(), Failure> {
    let (program, args) = if shell {
        ("/bin/sh", [vec!["-c".to_string()], argv.to_vec()].concat())
    } else {
        (argv[0].as_str(), argv[1..].to_vec())
    };
    let actors: Vec<&str> = a.items.iter().map(|i| i.alert.actor()).collect();
    let first = a.items.first();
    let json = json!({
        "id": a.message.id,
        "node": spec.wording.node,
        "text": a.text,
        "alerts": a.items.iter().map(|i| {
            let mut v = json!({"id": i.id, "template": i.alert.template(), "class": i.alert.class().name(),
                "actor": i.alert.actor(), "firing": i.firing(), "text": a.masker.text(&i.text(&spec.wording)),
                "alert": i.alert});
            a.masker.value(&mut v);
            v
        }).collect::<Vec<_>>(),
    });
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&args)
        .envs(env)
        .env("FUSHI_ALERT_ID", a.message.id.to_string())
        .env("FUSHI_ALERT_NODE", &spec.wording.node)
        .env("FUSHI_ALERT_TEXT", &a.text)
        .env("FUSHI_ALERT_COUNT", a.items.len().to_string())
        .env("FUSHI_ALERT_ACTORS", actors.join(","))
        .env(
            "FUSHI_ALERT_KIND",
            first.map(|i| i.alert.template()).unwrap_or("none"),
        )
        .env(
            "FUSHI_ALERT_CLASS",
            first.map(|i| i.alert.class().name()).unwrap_or("none"),
        )
        .env(
            "FUSHI_ALERT_STATUS",
            if a.items.iter().any(|i| i.firing()) {
                "firing"
            } else {
                "resolved"
            },
        )
        .env("FUSHI_ALERT_JSON", json.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Killed when the channel's timeout drops this future, and in a group of its own so
        // that a terminal's ^C to the daemon is not also its.
        .kill_on_drop(true)
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::Failed(format!("starting {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin closes it: that is not a failure.
        let _ = stdin.write_all(json.to_string().as_bytes()).await;
    }
    // Read to its end (a command blocked on a full pipe never exits), keeping only the start.
    let mut stderr = Vec::new();
    if let Some(mut err) = child.stderr.take() {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if stderr.len() < STDERR_QUOTE * 4 {
                stderr.extend_from_slice(&buf[..n]);
            }
        }
    }
    let stderr = String::from_utf8_lossy(&stderr);
    let status = child
        .wait()
        .await
        .map_err(|e| Failure::Failed(format!("waiting for {program}: {e}")))?;
    if status.success() {
        return Ok(());
    }
    let quote: String = stderr.trim().chars().take(STDERR_QUOTE).collect();
    Err(Failure::Failed(format!(
        "{program} {}{}",
        match status.code() {
            Some(c) => format!("exited {c}"),
            None => "was killed by a signal".into(),
        },
        if quote.is_empty() {
            String::new()
        } else {
            format!(": {quote}")
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::super::{Attempt, ChannelSpec, Failure, Kind};
    use crate::alert::mask::Masker;
    use crate::alert::message::{Message, Wording};
    use std::time::Duration;

    fn spec(argv: &[&str], shell: bool, timeout: Duration) -> ChannelSpec {
        ChannelSpec {
            name: "cmd".into(),
            kind: Kind::Command {
                argv: argv.iter().map(|s| s.to_string()).collect(),
                shell,
                env: Default::default(),
            },
            events: vec![],
            wording: Wording {
                node: "pc1".into(),
                ..Default::default()
            },
            timeout,
            min_interval: Duration::ZERO,
        }
    }

    async fn attempt(spec: &ChannelSpec) -> Result<(), Failure> {
        let message = Message {
            id: 3,
            at_ms: 0,
            items: vec![],
        };
        let masker = Masker::default();
        let a = Attempt {
            message: &message,
            items: vec![],
            text: "hello".into(),
            masker: &masker,
        };
        spec.attempt(&a).await
    }

    #[tokio::test]
    async fn a_failing_command_is_a_failure_quoting_its_stderr_and_a_shell_only_when_asked() {
        let s = spec(
            &["sh", "-c", "echo no route >&2; exit 4"],
            false,
            Duration::from_secs(10),
        );
        assert_eq!(
            attempt(&s).await,
            Err(Failure::Failed("sh exited 4: no route".into()))
        );
        // Without `shell`, a script is no program: it is not run by a shell behind one's back.
        let s = spec(
            &["test \"$FUSHI_ALERT_TEXT\" = hello"],
            false,
            Duration::from_secs(10),
        );
        assert!(matches!(attempt(&s).await, Err(Failure::Failed(e)) if e.starts_with("starting ")));
        let s = spec(
            &["test \"$FUSHI_ALERT_TEXT\" = hello"],
            true,
            Duration::from_secs(10),
        );
        assert_eq!(attempt(&s).await, Ok(()));
        let missing = spec(&["/nonexistent/page-me"], false, Duration::from_secs(10));
        assert!(
            matches!(attempt(&missing).await, Err(Failure::Failed(e)) if e.contains("starting /nonexistent/page-me"))
        );
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_fails_and_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 30", pid.display());
        let s = spec(&["sh", "-c", &script], false, Duration::from_millis(300));
        let r = attempt(&s).await;
        assert!(
            matches!(&r, Err(Failure::Failed(e)) if e.contains("timeout")),
            "{r:?}"
        );
        let pid: i32 = std::fs::read_to_string(&pid)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let pid = nix::unistd::Pid::from_raw(pid);
        for _ in 0..200 {
            // Reaped by tokio once killed; until then a zombie still answers signal 0.
            let gone = nix::sys::signal::kill(pid, None).is_err()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z "));
            if gone {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the command outlived its timeout");
    }
}
