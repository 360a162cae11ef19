//! The alert actor's settings from `[alert]`: each channel resolved (name, wording, limits), the journald channel, and the config's secrets that no message may carry.

use std::sync::Arc;
use std::time::Duration;

use fushi_actors::alert::channel::{Format, Kind};
use fushi_actors::alert::mask::Masker;
use fushi_actors::alert::message::Wording;
use fushi_actors::alert::noise::NoiseConfig;
use fushi_actors::alert::{AlertSettings, ChannelSpec, Class, JournaldSpec};
use fushi_actors::audit::secret_key;

use crate::config::{channel_name, AlertChannelKind, Config, WebhookFormat};

/// Slack takes about one message a second per channel; faster ones are answered 429.
const WEBHOOK_MIN_INTERVAL: Duration = Duration::from_secs(1);

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Every secret the config holds: what a message, however it came about, must not show.
pub fn secrets(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut url = |u: &str| {
        // Secret-looking query values (`?api_key=…`), as written: the http collector shows its
        // URL with them masked, and a message or a bundle must not show them either.
        let query = u.split_once('?').map_or("", |(_, q)| q);
        for pair in query.split('#').next().unwrap_or("").split('&') {
            if let Some((k, v)) = pair.split_once('=') {
                if secret_key(k) || k.to_ascii_lowercase().contains("sig") {
                    out.push(v.to_string());
                }
            }
        }
        // The credentials in `scheme://user:pw@host`; the Masker masks any URL's too.
        if let Some(rest) = u.split_once("://").map(|(_, r)| r) {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            if let Some((userinfo, _)) = authority.rsplit_once('@') {
                out.push(
                    userinfo
                        .split_once(':')
                        .map_or(userinfo, |(_, p)| p)
                        .to_string(),
                );
            }
        }
    };
    for c in &cfg.collectors {
        if let Some(u) = &c.url {
            url(u);
        }
    }
    for ch in &cfg.alert.channels {
        if let Some(u) = &ch.url {
            url(u);
        }
    }
    if let Some(t) = &cfg.control.http_token {
        out.push(t.clone());
    }
    for c in &cfg.collectors {
        out.extend(
            c.headers
                .iter()
                .chain(c.env.iter())
                .filter(|(k, _)| secret_key(k))
                .map(|(_, v)| v.clone()),
        );
    }
    for ch in &cfg.alert.channels {
        // A chat webhook's URL is its credential: whoever has it can post.
        if let Some(u) = &ch.url {
            out.push(u.clone());
        }
        out.extend(
            ch.headers
                .iter()
                .chain(ch.env.iter())
                .filter(|(k, _)| secret_key(k))
                .map(|(_, v)| v.clone()),
        );
    }
    // Header values like `Bearer abc…` are masked whole and by their token.
    let tokens: Vec<String> = out
        .iter()
        .filter_map(|s| s.split_once(' ').map(|(_, t)| t.trim().to_string()))
        .collect();
    out.extend(tokens);
    out
}

fn classes(events: &[String]) -> Vec<Class> {
    events.iter().filter_map(|e| Class::parse(e)).collect()
}

/// The alert actor's settings; `masker` is the daemon's handle, which a reload updates.
pub fn settings(cfg: &Config, masker: Masker) -> Arc<AlertSettings> {
    let a = &cfg.alert;
    let node = cfg.node_id();
    let wording = |over: &std::collections::BTreeMap<String, String>| {
        let mut templates = a.templates.clone();
        templates.extend(over.clone());
        Wording {
            node: node.clone(),
            templates,
            stable_after_ms: ms(a.stable_after),
        }
    };
    let mut journald = JournaldSpec {
        events: Vec::new(),
        wording: wording(&Default::default()),
    };
    let mut channels = Vec::new();
    for (i, ch) in a.channels.iter().enumerate() {
        let kind = match ch.kind {
            AlertChannelKind::Journald => {
                journald = JournaldSpec {
                    events: classes(&ch.events),
                    wording: wording(&ch.templates),
                };
                continue;
            }
            AlertChannelKind::Webhook => Kind::Webhook {
                url: ch.url.clone().unwrap_or_default(),
                format: match ch.format {
                    Some(WebhookFormat::Alertmanager) => Format::Alertmanager,
                    Some(WebhookFormat::Slack) | None => Format::Slack,
                },
                headers: ch.headers.clone(),
            },
            AlertChannelKind::Command => Kind::Command {
                argv: ch.argv.clone(),
                shell: ch.shell,
                env: ch.env.clone(),
            },
            AlertChannelKind::File => Kind::File {
                path: ch.path.clone().unwrap_or_default(),
            },
        };
        let min_interval = ch.min_interval.unwrap_or(match ch.kind {
            AlertChannelKind::Webhook => WEBHOOK_MIN_INTERVAL,
            _ => Duration::ZERO,
        });
        channels.push(ChannelSpec {
            name: channel_name(a, i),
            kind,
            events: classes(&ch.events),
            wording: wording(&ch.templates),
            timeout: ch.timeout,
            min_interval,
        });
    }
    Arc::new(AlertSettings {
        dir: cfg.node.data_dir.join("alerts"),
        noise: NoiseConfig {
            repeat_after_ms: ms(a.repeat_after),
            flap_count: a.flap_count,
            flap_window_ms: ms(a.flap_window),
            stable_after_ms: ms(a.stable_after),
        },
        group_wait: a.group_wait,
        retry: a.retry.clone(),
        io_timeout: cfg.storage.io_timeout,
        journald,
        channels,
        masker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_of_the_config_is_known_to_the_masker() {
        let cfg = Config::parse(
            r#"
[control]
http_token = "tok-control-1"
[[alert.channel]]
kind = "webhook"
url = "https://hooks.example/services/T0/B0/XYZ"
headers = { Authorization = "Bearer hdr-secret-2" }
[[collector]]
name = "api"
kind = "http"
url = "https://user:pw-in-url-3@api.example/x?symbol=BTCUSD&api_key=qkey-5555"
every = "10s"
headers = { "X-Api-Key" = "key-4444" }
"#,
            std::path::Path::new("t.toml"),
            std::path::Path::new("."),
        )
        .unwrap();
        let m = Masker::new(secrets(&cfg));
        let text = "tok-control-1 hdr-secret-2 pw-in-url-3 key-4444 qkey-5555 https://hooks.example/services/T0/B0/XYZ";
        assert_eq!(m.text(text), "*** *** *** *** *** ***");
        assert_eq!(
            m.text("symbol=BTCUSD"),
            "symbol=BTCUSD",
            "only secret-looking query values"
        );
        let s = settings(&cfg, m.clone());
        assert_eq!(s.channels[0].name, "webhook");
        assert_eq!(s.channels[0].min_interval, WEBHOOK_MIN_INTERVAL);
    }
}
