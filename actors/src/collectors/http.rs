//! The http collector: GETs `url` every `every` (plus a random part of `poll_jitter`, so that many collectors do not fire together), one request at a time, each bounded by `timeout`; a JSON object body is a record, a top-level array one record per element with `split`.
//!
//! A failed poll (a status outside 2xx, a timeout, more than five redirects, a body over
//! `max_record_bytes`, a body that is not the JSON asked for) fails the actor, so the
//! supervisor's backoff and escalation apply and LAST ERROR says what the server did. A
//! `Retry-After` on 429 or 503 is kept in `not_before`, which outlives the incarnation: the
//! restarted collector waits at least that long before it asks again.
//!
//! Header values may name a secret instead of holding it (`"${API_TOKEN}"` from the daemon's
//! environment, `"@/etc/fushi/token"` from a file, read at each start so a rotated token is
//! picked up). No header value is ever logged, and the URL is shown with its password and
//! secret-looking query values masked (`shown_url`): reqwest's own errors carry the URL, so
//! they are stripped of it before they reach a message.

use crate::events;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use crate::clock;
use crate::records::{check_depth, quarantined, Record};
use crate::sink::RecordSink;
use crate::AbortOnDrop;

/// Redirects followed before a poll counts as failed.
pub const MAX_REDIRECTS: usize = 5;

#[derive(Clone)]
pub struct HttpCollectorActor;

#[derive(Clone)]
pub struct HttpCollectorArgs {
    /// Tree path, e.g. `collectors/prices`.
    pub path: String,
    pub stream: String,
    pub url: String,
    /// Header names and values as configured: literal, `${VAR}` or `@FILE`.
    pub headers: Vec<(String, String)>,
    pub every: Duration,
    /// Each poll comes up to this much later than `every` after the last one began.
    pub jitter: Duration,
    pub timeout: Duration,
    /// A top-level array is one record per element.
    pub split: bool,
    pub max_record_bytes: usize,
    pub sink: RecordSink,
    /// The earliest moment the server wants to be asked again (`Retry-After`); shared by the
    /// collector's incarnations, so a restart does not ask before it.
    pub not_before: Arc<Mutex<Option<Instant>>>,
}

pub enum HttpCollectorMsg {
    Poll,
}

pub struct HttpCollectorState {
    args: HttpCollectorArgs,
    client: reqwest::Client,
    headers: HeaderMap,
    shown_url: String,
    polls: u64,
    next: Option<AbortOnDrop>,
}

/// Why a poll failed; the actor fails with it, so it is what LAST ERROR says.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("GET {url}: HTTP {status}{}", retry_after.map(|d| format!(" (Retry-After {}s)", d.as_secs())).unwrap_or_default())]
    Status {
        url: String,
        status: reqwest::StatusCode,
        retry_after: Option<Duration>,
    },
    #[error("GET {url}: no answer within timeout ({timeout:?})")]
    Timeout { url: String, timeout: Duration },
    #[error("GET {url}: more than {MAX_REDIRECTS} redirects")]
    Redirects { url: String },
    #[error("GET {url}: {error}")]
    Transport { url: String, error: String },
    #[error("GET {url}: body of {bytes} bytes or more exceeds max_record_bytes ({max})")]
    TooLarge { url: String, bytes: u64, max: usize },
    #[error("GET {url}: the body is not valid JSON: {error}")]
    InvalidJson { url: String, error: String },
    #[error("GET {url}: the body is a JSON {kind}, not an object{hint}")]
    NotObject {
        url: String,
        kind: &'static str,
        hint: &'static str,
    },
}

/// Why a collector cannot start: a header whose secret cannot be read, a client that cannot be
/// built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("header {name:?}: environment variable {var} is not set in the daemon's environment")]
    MissingEnv { name: String, var: String },
    #[error("header {name:?}: cannot read {file}: {error}")]
    File {
        name: String,
        file: String,
        error: std::io::Error,
    },
    #[error("header {name:?}: {error}")]
    Invalid { name: String, error: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// The URL as it may be shown: a password in it and the values of query parameters whose
/// names look like secrets (`token`, `key`, `secret`, `password`, `auth`, `sig`) are `***`.
pub fn shown_url(url: &str) -> String {
    let Ok(mut u) = reqwest::Url::parse(url) else {
        return "<an unparsable URL>".into();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    let secret = |k: &str| {
        let k = k.to_ascii_lowercase();
        [
            "token",
            "key",
            "secret",
            "password",
            "passwd",
            "auth",
            "sig",
            "credential",
        ]
        .iter()
        .any(|s| k.contains(s))
    };
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// Whether `url` can be polled; the error says why not, with its secrets masked.
pub fn check_url(url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(_) => Err(format!("{} has no host", shown_url(url))),
        Err(e) => Err(format!("not a valid URL: {e}")),
    }
}

/// Whether a configured header can be sent, without reading its secret: a valid name, and each
/// `${` closed by its `}` around a name. A missing variable or file is found at the collector's
/// start, which then fails saying so (and is retried, so a secret put in place later is used).
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    if value.starts_with('@') {
        return Ok(());
    }
    expand(name, value, |_| Some(String::new()))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A configured header value made real: `${VAR}` parts from the environment, `@FILE` as the
/// file's content without its trailing newline, anything else as written.
pub fn resolve_header(name: &str, value: &str) -> Result<String, StartError> {
    if let Some(file) = value.strip_prefix('@') {
        return std::fs::read_to_string(file)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|error| StartError::File {
                name: name.into(),
                file: file.into(),
                error,
            });
    }
    expand(name, value, |var| std::env::var(var).ok())
}

/// `value` with each `${VAR}` replaced by what `lookup` gives for `VAR`.
fn expand(
    name: &str,
    value: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, StartError> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let var =
            match after.find('}') {
                Some(j) if j > 0 => &after[..j],
                _ => return Err(StartError::Invalid {
                    name: name.into(),
                    error:
                        "\"${\" needs a variable name and its \"}\", e.g. \"Bearer ${API_TOKEN}\""
                            .into(),
                }),
            };
        out.push_str(&lookup(var).ok_or_else(|| StartError::MissingEnv {
            name: name.into(),
            var: var.into(),
        })?);
        rest = &after[var.len() + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, StartError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let invalid = |error: String| StartError::Invalid {
            name: name.clone(),
            error,
        };
        let key = HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let mut v = HeaderValue::from_str(&resolve_header(name, value)?)
            .map_err(|_| invalid("the value holds characters a header cannot carry".into()))?;
        // Kept out of any debug output of the request (reqwest and hyper honour it).
        v.set_sensitive(true);
        map.insert(key, v);
    }
    Ok(map)
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v.trim()).ok()?;
    Some(at.duration_since(clock::wall()).unwrap_or_default())
}

/// The records a body holds.
fn records(args: &HttpCollectorArgs, url: &str, body: &[u8]) -> Result<Vec<Record>, PollError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| e.to_string())
        .and_then(|v| check_depth(&v).map(|()| v))
        .map_err(|error| PollError::InvalidJson {
            url: url.into(),
            error,
        })?;
    let ts = clock::now_rfc3339();
    let record = |data: Value| Record {
        stream: args.stream.clone(),
        ts: ts.clone(),
        data,
    };
    match value {
        Value::Object(_) => Ok(vec![record(value)]),
        Value::Array(items) if args.split => Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(_) => record(item),
                other => quarantined(
                    &args.path,
                    &args.stream,
                    &format!("element {i} of the array is not a JSON object"),
                    Some(other.to_string()),
                    ts.clone(),
                ),
            })
            .collect()),
        other => Err(PollError::NotObject {
            url: url.into(),
            kind: crate::records::kind(&other),
            hint: if other.is_array() {
                " (set split = true for one record per element)"
            } else {
                ""
            },
        }),
    }
}

/// The client every http collector shares, built once: building one reads the system's root
/// certificates, which a tree of many collectors (and each restart) would otherwise read again,
/// and one client pools connections to a host that several collectors poll. Each request
/// carries its collector's own timeout. Its pooled connections belong to the runtime that made
/// them, which is the daemon's one runtime (`runtime.rs`).
fn client() -> Result<reqwest::Client, StartError> {
    static CLIENT: std::sync::OnceLock<Result<reqwest::Client, String>> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
                .user_agent(concat!("fushi/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.without_url().to_string())
        })
        .clone()
        .map_err(StartError::Client)
}

impl HttpCollectorState {
    fn schedule(&mut self, myself: &ActorRef<HttpCollectorMsg>, after: Duration) {
        let me = myself.clone();
        self.next = Some(AbortOnDrop(tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = me.cast(HttpCollectorMsg::Poll);
        })));
    }

    /// From now to `due` plus a random part of the jitter, and never before a `Retry-After`.
    fn delay_until(&self, due: Instant) -> Duration {
        let jitter = rand::random_range(0..=self.args.jitter.as_millis() as u64);
        let due = due + Duration::from_millis(jitter);
        let not_before = *self
            .args
            .not_before
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        due.max(not_before.unwrap_or(due))
            .saturating_duration_since(Instant::now())
    }

    async fn poll(&self) -> Result<Vec<Record>, PollError> {
        let url = self.shown_url.clone();
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                PollError::Timeout {
                    url: url.clone(),
                    timeout: self.args.timeout,
                }
            } else if e.is_redirect() {
                PollError::Redirects { url: url.clone() }
            } else {
                // The error's own text would carry the URL with its secrets.
                let e = e.without_url();
                let mut error = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    error.push_str(": ");
                    error.push_str(&s.to_string());
                    source = s.source();
                }
                PollError::Transport {
                    url: url.clone(),
                    error,
                }
            }
        };
        let mut resp = self
            .client
            .get(&self.args.url)
            .timeout(self.args.timeout)
            .headers(self.headers.clone())
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            let wait = matches!(status.as_u16(), 429 | 503)
                .then(|| retry_after(&resp))
                .flatten();
            if let Some(d) = wait {
                *self
                    .args
                    .not_before
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + d);
            }
            return Err(PollError::Status {
                url,
                status,
                retry_after: wait,
            });
        }
        let max = self.args.max_record_bytes;
        let too_large = |bytes: u64| PollError::TooLarge {
            url: url.clone(),
            bytes,
            max,
        };
        if let Some(n) = resp.content_length().filter(|&n| n > max as u64) {
            return Err(too_large(n));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > max {
                return Err(too_large((body.len() + chunk.len()) as u64));
            }
            body.extend_from_slice(&chunk);
        }
        records(&self.args, &url, &body)
    }
}

impl Actor for HttpCollectorActor {
    type Msg = HttpCollectorMsg;
    type State = HttpCollectorState;
    type Arguments = HttpCollectorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<HttpCollectorMsg>,
        args: HttpCollectorArgs,
    ) -> Result<HttpCollectorState, ActorProcessingErr> {
        let headers = header_map(&args.headers)?;
        let client = client()?;
        let mut state = HttpCollectorState {
            shown_url: shown_url(&args.url),
            args,
            client,
            headers,
            polls: 0,
            next: None,
        };
        // The first poll comes within the jitter of the start (or after a Retry-After), so that
        // collectors started together spread out from the first request on.
        let first = state.delay_until(Instant::now());
        state.schedule(&myself, first);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<HttpCollectorMsg>,
        HttpCollectorMsg::Poll: HttpCollectorMsg,
        state: &mut HttpCollectorState,
    ) -> Result<(), ActorProcessingErr> {
        let started = Instant::now();
        state.polls += 1;
        let records = state.poll().await?;
        tracing::debug!(
            actor = state.args.path.as_str(),
            event = events::COLLECTOR_HTTP_POLL,
            url = state.shown_url.as_str(),
            records = records.len(),
            poll = state.polls,
            "polled"
        );
        // Durable before the next poll is scheduled: a storage that holds producers back slows
        // the polls down instead of piling bodies up in memory.
        if let Err(e) = state.args.sink.submit(&state.args.path, records).await {
            // The gate stops this collector in a moment; the poll's records were never taken.
            tracing::debug!(actor = state.args.path.as_str(), "poll not taken: {e}");
        }
        let due = started + state.args.every;
        let late = Instant::now().saturating_duration_since(due);
        if late >= state.args.every {
            let skipped = (late.as_nanos() / state.args.every.as_nanos().max(1)) as u64;
            tracing::warn!(
                actor = state.args.path.as_str(),
                event = events::COLLECTOR_HTTP_SKIPPED,
                skipped,
                "storage held a poll's records back (the journal is full or failing): {skipped} poll{} skipped, none queued",
                if skipped == 1 { "" } else { "s" }
            );
        }
        let delay = state.delay_until(due);
        state.schedule(&myself, delay);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_secrets() {
        assert_eq!(
            shown_url("https://bob:hunter2@api.example/v1/q?symbol=X&api_key=s3cr3t&Token=t"),
            "https://bob:***@api.example/v1/q?symbol=X&api_key=***&Token=***"
        );
        assert_eq!(
            shown_url("http://127.0.0.1:8080/metrics"),
            "http://127.0.0.1:8080/metrics"
        );
        assert_eq!(shown_url("not a url"), "<an unparsable URL>");
    }

    #[test]
    fn header_values_come_from_the_environment_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        assert_eq!(
            resolve_header("A", &format!("@{}", file.display())).unwrap(),
            "from-file"
        );
        // PATH is set wherever tests run.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(
            resolve_header("A", "x ${PATH} y").unwrap(),
            format!("x {path} y")
        );
        assert_eq!(resolve_header("A", "plain").unwrap(), "plain");
        let e = resolve_header("Authorization", "Bearer ${FUSHI_SURELY_UNSET_VAR}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "header \"Authorization\": environment variable FUSHI_SURELY_UNSET_VAR is not set in the daemon's environment"
        );
        let e = resolve_header("A", "@/nonexistent/token").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("header \"A\": cannot read /nonexistent/token: "),
            "{e}"
        );
        assert!(resolve_header("A", "${OPEN").is_err());
    }
}
