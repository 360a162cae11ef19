//! Running an incident's rollback command: argv without a shell, in its own process group, with `FUSHI_SLO_*` in its environment and a timeout after which the group is killed.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// What the command did: its exit code, and what went wrong if anything did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub exit_code: Option<i32>,
    pub error: Option<String>,
}

/// The last non-empty line of what the command wrote to stderr, shortened: the reason a
/// person reads first.
fn last_line(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?.trim();
    Some(line.chars().take(200).collect())
}

/// Runs `argv` with `env` added, waiting at most `timeout`.
pub async fn run(argv: &[String], env: &[(String, String)], timeout: Duration) -> Outcome {
    let Some((program, args)) = argv.split_first() else {
        return Outcome {
            exit_code: None,
            error: Some("no command to run".into()),
        };
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own group: a timeout kills what it started too.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                exit_code: None,
                error: Some(format!("cannot start {program}: {e}")),
            }
        }
    };
    let pid = child.id();
    let mut stderr = child.stderr.take();
    let waited = tokio::time::timeout(timeout, async {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            // Bounded: a chatty command does not fill the daemon's memory.
            let _ = s.take(64 << 10).read_to_end(&mut buf).await;
        }
        (child.wait().await, buf)
    })
    .await;
    match waited {
        Ok((Ok(status), buf)) => match status.code() {
            Some(0) => Outcome {
                exit_code: Some(0),
                error: None,
            },
            Some(code) => Outcome {
                exit_code: Some(code),
                error: Some(match last_line(&buf) {
                    Some(l) => format!("exited with code {code}: {l}"),
                    None => format!("exited with code {code}"),
                }),
            },
            None => {
                use std::os::unix::process::ExitStatusExt;
                Outcome {
                    exit_code: None,
                    error: Some(format!(
                        "killed by signal {}",
                        status.signal().unwrap_or_default()
                    )),
                }
            }
        },
        Ok((Err(e), _)) => Outcome {
            exit_code: None,
            error: Some(format!("waiting for {program}: {e}")),
        },
        Err(_) => {
            if let Some(pid) = pid {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Outcome {
                exit_code: None,
                error: Some(format!(
                    "timed out after {} (rollback_timeout) and was killed",
                    humantime::format_duration(timeout)
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn exit_codes_env_and_timeouts() {
        let env = vec![("FUSHI_SLO".to_string(), "lat".to_string())];
        let ok = run(
            &argv(&["sh", "-c", "test \"$FUSHI_SLO\" = lat"]),
            &env,
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(
            ok,
            Outcome {
                exit_code: Some(0),
                error: None
            }
        );
        let bad = run(
            &argv(&["sh", "-c", "echo no route >&2; exit 3"]),
            &env,
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(bad.exit_code, Some(3));
        assert_eq!(bad.error.as_deref(), Some("exited with code 3: no route"));
        let slow = run(&argv(&["sleep", "30"]), &env, Duration::from_millis(200)).await;
        assert!(slow.error.unwrap().contains("timed out after 200ms"));
        let missing = run(
            &argv(&["/nonexistent/rollback"]),
            &env,
            Duration::from_secs(1),
        )
        .await;
        assert!(missing
            .error
            .unwrap()
            .starts_with("cannot start /nonexistent/rollback"));
    }
}
