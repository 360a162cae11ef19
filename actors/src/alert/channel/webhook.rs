//! The webhook channel: a JSON POST, Slack's `{"text": …}` or Alertmanager's v4 payload.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{Attempt, ChannelSpec, Failure, Format};
use crate::alert::message::Item;
use crate::clock;

/// Builds the shared client now: it reads the system's root certificates from disk, which
/// the alert actor has done on the blocking pool rather than at its first POST.
pub(crate) fn warm_up() {
    let _ = client();
}

/// The client every webhook channel shares: building one reads the system's root certificates.
fn client() -> Result<&'static reqwest::Client, Failure> {
    static CLIENT: std::sync::OnceLock<Result<reqwest::Client, String>> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                // A redirect would carry the channel's headers (an Authorization) elsewhere.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("fushi/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.without_url().to_string())
        })
        .as_ref()
        .map_err(|e| Failure::Failed(format!("building the HTTP client: {e}")))
}

fn severity(item: &Item) -> &'static str {
    use crate::alert::types::Class;
    if !item.firing() {
        return "info";
    }
    match item.alert.class() {
        Class::Escalation | Class::Fatal | Class::Leader | Class::Storage => "critical",
        _ => "warning",
    }
}

/// Alertmanager's webhook payload (version 4), one alert per item, so that a receiver built
/// for Alertmanager (PagerDuty's, Opsgenie's, a chat bridge) takes fushi's messages as they are.
fn alertmanager(a: &Attempt<'_>, spec: &ChannelSpec) -> Value {
    let node = &spec.wording.node;
    let alerts: Vec<Value> = a
        .items
        .iter()
        .map(|i| {
            let firing = i.firing();
            let condition = i.alert.condition();
            let alertname = condition.split(':').next().unwrap_or_default();
            // A resolution started when its condition did.
            let lasted = match (&i.note, firing) {
                (crate::alert::noise::Note::Plain { duration_ms: Some(d), .. }, false) => *d,
                _ => 0,
            };
            json!({
                "status": if firing { "firing" } else { "resolved" },
                "labels": {
                    "alertname": alertname,
                    "actor": i.alert.actor(),
                    "node": node,
                    "class": i.alert.class().name(),
                    "severity": severity(i),
                },
                "annotations": {"summary": a.masker.text(&i.text(&spec.wording))},
                "startsAt": clock::rfc3339_ms(i.at_ms.saturating_sub(lasted)),
                "endsAt": if firing { "0001-01-01T00:00:00Z".to_string() } else { clock::rfc3339_ms(i.at_ms) },
                "generatorURL": "",
                "fingerprint": format!("{:016x}", crc32c::crc32c(format!("{node}/{condition}").as_bytes())),
            })
        })
        .collect();
    let firing = a.items.iter().any(|i| i.firing());
    json!({
        "version": "4",
        "groupKey": format!("fushi/{node}/{}", a.message.id),
        "truncatedAlerts": 0,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": spec.name,
        "groupLabels": {"node": node},
        "commonLabels": {"node": node, "job": "fushi"},
        "commonAnnotations": {"summary": a.text},
        "externalURL": "",
        "alerts": alerts,
    })
}

/// What went wrong with a request, as a person can act on it: reqwest's own text ("error
/// sending request") says neither that time ran out nor what the connection said.
fn why(e: reqwest::Error, spec: &ChannelSpec) -> String {
    if e.is_timeout() {
        return format!(
            "no answer within the channel's timeout of {:?}",
            spec.timeout
        );
    }
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

pub(super) async fn post(
    spec: &ChannelSpec,
    url: &str,
    format: Format,
    headers: &BTreeMap<String, String>,
    a: &Attempt<'_>,
) -> Result<(), Failure> {
    let shown = a.masker.url(url);
    let body = match format {
        Format::Slack => json!({"text": a.text}),
        Format::Alertmanager => alertmanager(a, spec),
    };
    let mut req = client()?
        .post(url)
        .timeout(spec.timeout)
        // A receiver that dedups (or a person reading two copies after a restart) can tell
        // one message from another by it.
        .header(
            "X-Fushi-Alert-Id",
            format!("{}-{}", spec.wording.node, a.message.id),
        )
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| Failure::Failed(format!("POST {shown}: {}", why(e, spec))))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(Failure::RateLimited(crate::collectors::http::retry_after(
            &resp,
        )));
    }
    // Only the start of an error body is quoted; a receiver's 50 MB error page is not read.
    let mut body = Vec::new();
    let mut resp = resp;
    while let Ok(Some(chunk)) = resp.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= 1024 {
            break;
        }
    }
    let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
    Err(Failure::Failed(format!(
        "POST {shown}: HTTP {status}{}",
        if text.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", text.trim())
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::mask::Masker;
    use crate::alert::message::{Message, Wording};
    use crate::alert::noise::Note;
    use crate::alert::types::Alert;

    #[test]
    fn the_alertmanager_payload_is_version_4_with_one_alert_per_item() {
        let item = |id, alert| Item {
            id,
            at_ms: 1_764_547_200_000,
            alert,
            note: Note::Plain {
                duration_ms: None,
                suppressed: 0,
            },
        };
        let message = Message {
            id: 7,
            at_ms: 0,
            items: vec![
                item(
                    1,
                    Alert::Escalation {
                        actor: "collectors/api".into(),
                        failures: 4,
                        last_error: None,
                        since: "t".into(),
                    },
                ),
                item(
                    2,
                    Alert::StorageBack {
                        primary: "/nas".into(),
                    },
                ),
                Item {
                    note: Note::Plain {
                        duration_ms: Some(60_000),
                        suppressed: 0,
                    },
                    ..item(
                        3,
                        Alert::Recovered {
                            actor: "collectors/api".into(),
                            failures: 4,
                            since: "t".into(),
                        },
                    )
                },
            ],
        };
        let spec = ChannelSpec {
            name: "am".into(),
            kind: super::super::Kind::File { path: "x".into() },
            events: vec![],
            wording: Wording {
                node: "pc1".into(),
                ..Default::default()
            },
            timeout: std::time::Duration::from_secs(1),
            min_interval: std::time::Duration::ZERO,
        };
        let masker = Masker::default();
        let a = Attempt {
            message: &message,
            items: message.items.iter().collect(),
            text: "t".into(),
            masker: &masker,
        };
        let v = alertmanager(&a, &spec);
        assert_eq!(v["version"], "4");
        assert_eq!(v["status"], "firing", "one item still fires");
        assert_eq!(v["groupKey"], "fushi/pc1/7");
        assert_eq!(v["receiver"], "am");
        let alerts = v["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 3);
        assert_eq!(alerts[0]["labels"]["alertname"], "escalation");
        assert_eq!(alerts[0]["labels"]["actor"], "collectors/api");
        assert_eq!(alerts[0]["labels"]["severity"], "critical");
        assert_eq!(alerts[0]["startsAt"], "2025-12-01T00:00:00.000Z");
        assert_eq!(alerts[0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(alerts[1]["status"], "resolved");
        assert_eq!(alerts[1]["endsAt"], "2025-12-01T00:00:00.000Z");
        assert!(alerts[0]["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("collectors/api on pc1 failed 4 times"));
        assert_ne!(alerts[0]["fingerprint"], alerts[1]["fingerprint"]);
        // The recovery resolves the escalation's alert: same name, same fingerprint, and it
        // started when the escalation did.
        assert_eq!(alerts[2]["status"], "resolved");
        assert_eq!(alerts[2]["labels"]["alertname"], "escalation");
        assert_eq!(alerts[2]["fingerprint"], alerts[0]["fingerprint"]);
        assert_eq!(alerts[2]["startsAt"], "2025-11-30T23:59:00.000Z");
    }
}
