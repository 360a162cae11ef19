//! Alert channels: what each kind does with a message (`webhook`, `command`, `file`), and the task per channel that delivers its queue with retries, `Retry-After` and a rate limit.
//!
//! Every channel runs on a task of its own with an unbounded queue, so a receiver that hangs
//! delays only its own channel's later messages: neither the tree's restarts (the supervisor
//! only pushes onto the in-memory outbox) nor the other channels. An attempt is bounded by the
//! channel's `timeout`. A failed attempt is retried after each step of `retry` (5 s → 10 s →
//! 15 s), then given up (`alert.failed`); a `429` is not a failure: it waits `Retry-After` and
//! tries again without using up a retry, so that a rate-limited message is late, never dropped
//! (Kibana dropped them, kibana#44127).

mod command;
mod file;
mod webhook;

pub(crate) use webhook::warm_up;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::mpsc;

use super::mask::Masker;
use super::message::{Item, Message, Wording};
use super::types::Class;
use super::AlertMsg;
use crate::events;
use crate::AbortOnDrop;

/// Whether `url` can be POSTed to: an absolute http(s) URL with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("is not a URL ({e})"))?;
    match (u.scheme(), u.host_str()) {
        ("http" | "https", Some(h)) if !h.is_empty() => Ok(()),
        ("http" | "https", _) => Err("has no host".into()),
        (s, _) => Err(format!("is {s}:, not http:// or https://")),
    }
}

/// Whether a header can be sent as written.
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    reqwest::header::HeaderValue::from_str(value).map_err(|_| {
        format!("the value of {name} is not a valid header value (a newline, a control character?)")
    })?;
    Ok(())
}

/// A webhook's body shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"text": …}`, which Slack, Mattermost, Rocket.Chat and Discord's `/slack` take.
    Slack,
    /// Alertmanager's webhook payload, version 4.
    Alertmanager,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Webhook {
        url: String,
        format: Format,
        headers: BTreeMap<String, String>,
    },
    Command {
        argv: Vec<String>,
        /// Run `argv[0]` by `/bin/sh -c` (the rest are `$0…`); only when the config asks.
        shell: bool,
        env: BTreeMap<String, String>,
    },
    File {
        path: PathBuf,
    },
}

/// One configured channel.
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    /// Its name in audit records and status: `webhook`, `webhook-2`, or the configured `name`.
    pub name: String,
    pub kind: Kind,
    /// The classes it takes; empty takes all.
    pub events: Vec<Class>,
    pub wording: Wording,
    pub timeout: Duration,
    /// The least time between two attempts (a webhook's 1 s: Slack's rate per channel).
    pub min_interval: Duration,
}

/// Why an attempt did not deliver.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The receiver asks to wait (`429`), for `Retry-After` when it says.
    RateLimited(Option<Duration>),
    Failed(String),
}

/// How a delivery ended, as the channel's task reports it to the alert actor.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent { attempts: u32 },
    Failed { attempts: u32, error: String },
}

/// What one attempt needs besides the message.
pub struct Attempt<'a> {
    pub message: &'a Message,
    pub items: Vec<&'a Item>,
    pub text: String,
    pub masker: &'a Masker,
}

impl ChannelSpec {
    /// Delivers once, within the channel's timeout.
    async fn attempt(&self, a: &Attempt<'_>) -> Result<(), Failure> {
        let work = async {
            match &self.kind {
                Kind::Webhook {
                    url,
                    format,
                    headers,
                } => webhook::post(self, url, *format, headers, a).await,
                Kind::Command { argv, shell, env } => {
                    command::run(self, argv, *shell, env, a).await
                }
                Kind::File { path } => file::append(self, path, a).await,
            }
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Failed(format!(
                "no answer within the channel's timeout of {:?}",
                self.timeout
            ))),
        }
    }
}

/// Longest `Retry-After` honoured as given; a longer one is waited in steps of this, so that a
/// receiver's typo cannot park the channel for a year.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Least wait after a `429`, whatever `Retry-After` says (`0`): a rate-limiting receiver
/// that asks for no wait is not hammered.
const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A channel's task and the queue into it.
pub struct Worker {
    tx: mpsc::UnboundedSender<Arc<Message>>,
    _task: AbortOnDrop,
}

impl Worker {
    /// Queues a message; it is delivered after everything queued before it.
    pub fn send(&self, m: Arc<Message>) {
        let _ = self.tx.send(m);
    }
}

/// Tells the alert actor when a channel's task ends other than by being aborted with its
/// actor: a panic in a channel is the actor's failure, so that its restart resumes the outbox.
struct Gone {
    name: String,
    actor: ActorRef<AlertMsg>,
    finished: bool,
}

impl Drop for Gone {
    fn drop(&mut self) {
        if !self.finished && std::thread::panicking() {
            let _ = self.actor.cast(AlertMsg::ChannelGone(self.name.clone()));
        }
    }
}

/// Starts the task of channel `spec`, reporting each delivery's end to `actor`.
pub fn spawn(
    spec: Arc<ChannelSpec>,
    retry: Vec<Duration>,
    masker: Masker,
    actor: ActorRef<AlertMsg>,
) -> Worker {
    let (tx, mut rx) = mpsc::unbounded_channel::<Arc<Message>>();
    let task = tokio::spawn(async move {
        let mut gone = Gone {
            name: spec.name.clone(),
            actor: actor.clone(),
            finished: false,
        };
        let mut last: Option<tokio::time::Instant> = None;
        while let Some(message) = rx.recv().await {
            let outcome = deliver(&spec, &retry, &masker, &message, &mut last).await;
            let _ = actor.cast(AlertMsg::Delivered {
                message: message.id,
                channel: spec.name.clone(),
                outcome,
            });
        }
        gone.finished = true;
    });
    Worker {
        tx,
        _task: AbortOnDrop(task),
    }
}

async fn deliver(
    spec: &ChannelSpec,
    retry: &[Duration],
    masker: &Masker,
    message: &Message,
    last: &mut Option<tokio::time::Instant>,
) -> Outcome {
    let items = message.for_events(&spec.events);
    let text = masker.text(&Message::text(&items, &spec.wording));
    let attempt = Attempt {
        message,
        items,
        text,
        masker,
    };
    let pace = Pace {
        channel: &spec.name,
        message: message.id,
        min_interval: spec.min_interval,
        retry,
    };
    pace.run(last, || spec.attempt(&attempt), |e| masker.text(e))
        .await
}

/// The schedule of one delivery's attempts, apart from what an attempt does, so that it is
/// tested on a paused clock: the rate limit, the retry steps, `Retry-After`.
struct Pace<'a> {
    channel: &'a str,
    message: u64,
    min_interval: Duration,
    retry: &'a [Duration],
}

impl Pace<'_> {
    async fn run<F, Fut>(
        &self,
        last: &mut Option<tokio::time::Instant>,
        mut attempt: F,
        mask: impl Fn(&str) -> String,
    ) -> Outcome
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), Failure>>,
    {
        let mut attempts = 0;
        let mut failures = 0;
        loop {
            if let Some(at) = *last {
                tokio::time::sleep_until(at + self.min_interval).await;
            }
            *last = Some(tokio::time::Instant::now());
            attempts += 1;
            let error = match attempt().await {
                Ok(()) => return Outcome::Sent { attempts },
                Err(Failure::RateLimited(after)) => {
                    let wait = after
                        .unwrap_or(
                            self.retry
                                .first()
                                .copied()
                                .unwrap_or(Duration::from_secs(5)),
                        )
                        .clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER);
                    tracing::warn!(actor = "alert", event = events::ALERT_RETRY, channel = self.channel,
                        alert_message = self.message, attempt = attempts, delay = ?wait,
                        "the receiver is rate-limiting; waiting as it asks, then sending again");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(Failure::Failed(e)) => mask(&e),
            };
            let Some(delay) = self.retry.get(failures) else {
                return Outcome::Failed { attempts, error };
            };
            failures += 1;
            tracing::warn!(actor = "alert", event = events::ALERT_RETRY, channel = self.channel,
                alert_message = self.message, attempt = attempts, delay = ?delay, error = %error,
                "alert delivery failed; retrying");
            tokio::time::sleep(*delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use tokio::time::Instant;

    const S: fn(u64) -> Duration = Duration::from_secs;

    /// Runs one delivery whose attempts answer `script` in turn; the paused-clock second of each.
    async fn schedule(
        script: Vec<Result<(), Failure>>,
        last: &mut Option<Instant>,
        start: Instant,
    ) -> (Outcome, Vec<u64>) {
        let retry = [S(5), S(10), S(15)];
        let pace = Pace {
            channel: "webhook",
            message: 1,
            min_interval: S(1),
            retry: &retry,
        };
        let at = RefCell::new(Vec::new());
        let script = RefCell::new(script.into_iter());
        let outcome = pace
            .run(
                last,
                || {
                    at.borrow_mut().push(start.elapsed().as_secs());
                    let r = script.borrow_mut().next().unwrap_or(Ok(()));
                    async move { r }
                },
                |e| e.replace("secret", "***"),
            )
            .await;
        (outcome, at.into_inner())
    }

    #[tokio::test(start_paused = true)]
    async fn failures_wait_each_retry_step_and_a_429_waits_retry_after_without_using_one_up() {
        let start = Instant::now();
        let mut last = None;
        let fail = || Err(Failure::Failed("HTTP 503 at secret".into()));
        let (outcome, at) = schedule(
            vec![
                fail(),
                Err(Failure::RateLimited(Some(S(3)))),
                fail(),
                Ok(()),
            ],
            &mut last,
            start,
        )
        .await;
        assert_eq!(outcome, Outcome::Sent { attempts: 4 });
        assert_eq!(at, [0, 5, 8, 18], "5 s, then Retry-After's 3 s, then 10 s");

        // All failing: 5 → 10 → 15 s, then given up; the error masked.
        let start = Instant::now();
        let (outcome, at) = schedule(vec![fail(), fail(), fail(), fail()], &mut None, start).await;
        assert_eq!(
            outcome,
            Outcome::Failed {
                attempts: 4,
                error: "HTTP 503 at ***".into()
            }
        );
        assert_eq!(at, [0, 5, 15, 30]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_without_retry_after_waits_the_first_step_and_messages_keep_the_rate_limit() {
        let start = Instant::now();
        let mut last = None;
        let (_, at) = schedule(vec![Err(Failure::RateLimited(None))], &mut last, start).await;
        assert_eq!(at, [0, 5]);
        // The next message on the channel goes at least min_interval after the last attempt.
        let (outcome, at) = schedule(vec![Ok(())], &mut last, start).await;
        assert_eq!(outcome, Outcome::Sent { attempts: 1 });
        assert_eq!(at, [6]);
    }
}
