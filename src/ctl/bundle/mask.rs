//! The secrets no part of a bundle may carry, found in a config file's text as the daemon finds them (`alert_settings::secrets`), and the masker every part goes through.

use fushi_actors::alert::mask::Masker;
use fushi_actors::audit::secret_key;
use serde_json::Value;

use crate::config::Config;

/// The secrets of one config file's text, or why its text cannot be shown at all.
///
/// A file that deserializes (valid or not: a file the daemon refuses is when a bundle is most
/// needed) gives its secrets as the daemon's masker finds them, plus every header value: the
/// http collector never shows one, so neither does a bundle. A file that is TOML but not of
/// the schema (an unknown key) is searched by key names. Text that is not TOML at all cannot
/// be told apart into secrets and the rest, so it is not shown.
pub(super) fn config_secrets(text: &str) -> Result<Vec<String>, String> {
    if let Ok(cfg) = toml::from_str::<Config>(text) {
        let mut out = crate::alert_settings::secrets(&cfg);
        // A chat webhook's secret is a part of its path (`/services/T…/B…/XXXX`): a line
        // quoting that part alone must lose it too.
        for ch in &cfg.alert.channels {
            out.extend(ch.url.as_deref().map(path_tokens).unwrap_or_default());
        }
        for headers in cfg
            .collectors
            .iter()
            .map(|c| &c.headers)
            .chain(cfg.alert.channels.iter().map(|c| &c.headers))
        {
            out.extend(headers.values().cloned());
        }
        out.extend(bearer_tokens(&out));
        return Ok(out);
    }
    match text.parse::<toml::Table>() {
        Ok(table) => {
            let mut out = Vec::new();
            by_key_names(&table, false, &mut out);
            out.extend(bearer_tokens(&out));
            Ok(out)
        }
        Err(e) => Err(format!(
            "it is not TOML ({}), so its secrets cannot be told apart from the rest",
            e.message().trim_end()
        )),
    }
}

/// The parts of a URL's path that look like tokens rather than words: 16 characters or more,
/// or 8 or more mixing letters and digits (`services`, `hooks`, `v1` stay readable).
fn path_tokens(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let path = rest.split(['?', '#']).next().unwrap_or("");
    path.split('/')
        .skip(1)
        .filter(|seg| {
            let letters = seg.chars().any(|c| c.is_ascii_alphabetic());
            let digits = seg.chars().any(|c| c.is_ascii_digit());
            seg.len() >= 16 || (seg.len() >= 8 && letters && digits)
        })
        .map(str::to_string)
        .collect()
}

/// `Bearer abc…` is a secret whole and by its token.
fn bearer_tokens(secrets: &[String]) -> Vec<String> {
    secrets
        .iter()
        .filter_map(|s| s.split_once(' ').map(|(_, t)| t.trim().to_string()))
        .collect()
}

/// Every string under a key that names a secret, a URL or an endpoint, and every value of a
/// `headers` or `env` table: wider than the schema's own rule, since the schema did not apply.
fn by_key_names(table: &toml::Table, all: bool, out: &mut Vec<String>) {
    for (k, v) in table {
        let lower = k.to_ascii_lowercase();
        let wanted = all || secret_key(k) || lower.contains("url") || lower.contains("endpoint");
        let inner_all = all || lower == "headers" || lower == "env";
        strings(v, wanted, inner_all, out);
    }
}

fn strings(v: &toml::Value, wanted: bool, all: bool, out: &mut Vec<String>) {
    match v {
        toml::Value::String(s) if wanted => {
            out.extend(path_tokens(s));
            out.push(s.clone());
        }
        toml::Value::Array(items) => items.iter().for_each(|i| strings(i, wanted, all, out)),
        toml::Value::Table(t) => by_key_names(t, all, out),
        _ => {}
    }
}

/// The masking every part of a bundle goes through as its last step.
pub(super) struct Mask(pub Masker);

impl Mask {
    pub fn text(&self, s: &str) -> String {
        self.0.text(s)
    }

    /// A JSON document masked value by value (a secret with a quote or backslash is escaped in
    /// the text, and so would escape a search of the text); not JSON, it is masked as text.
    pub fn json(&self, s: &str) -> String {
        match serde_json::from_str::<Value>(s) {
            Ok(mut v) => {
                self.0.value(&mut v);
                serde_json::to_string_pretty(&v).unwrap_or_else(|_| self.text(s)) + "\n"
            }
            Err(_) => self.text(s),
        }
    }

    /// JSON Lines masked line by line (see [`Mask::json`]).
    pub fn json_lines(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for line in s.lines() {
            match serde_json::from_str::<Value>(line) {
                Ok(mut v) => {
                    self.0.value(&mut v);
                    out.push_str(&v.to_string());
                }
                Err(_) => out.push_str(&self.text(line)),
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[control]
http_token = "tok-ctl-1111"
[[alert.channel]]
kind = "webhook"
url = "https://hook:hookpw-2222@hooks.example/services/T0/hookpath-3333?token=qtok-4444"
[[collector]]
name = "api"
kind = "http"
url = "https://api.example/v1?symbol=BTCUSD&api_key=qkey-5555"
every = "10s"
headers = { Authorization = "Bearer hdr-6666", "X-Tenant" = "tenant-7777" }
"#;

    const ALL: [&str; 7] = [
        "tok-ctl-1111",
        "hookpw-2222",
        "hookpath-3333",
        "qtok-4444",
        "qkey-5555",
        "hdr-6666",
        "tenant-7777",
    ];

    fn masked(secrets: Vec<String>, text: &str) -> String {
        Mask(Masker::new(secrets)).text(text)
    }

    #[test]
    fn a_config_of_the_schema_loses_every_secret_and_keeps_the_rest() {
        let out = masked(config_secrets(CONFIG).unwrap(), CONFIG);
        for s in ALL {
            assert!(!out.contains(s), "{s} left in:\n{out}");
        }
        assert!(out.contains("symbol=BTCUSD") && out.contains("kind = \"http\""));
        let m = Mask(Masker::new(config_secrets(CONFIG).unwrap()));
        assert_eq!(
            m.text("POST to hookpath-3333 at hooks.example/services/T0"),
            "POST to *** at hooks.example/services/T0",
            "the webhook's path token alone, and only it"
        );
    }

    #[test]
    fn a_config_with_an_unknown_key_is_masked_by_key_names() {
        let text = format!("{CONFIG}\n[node]\nno_such_key = 1\n");
        assert!(toml::from_str::<Config>(&text).is_err());
        let out = masked(config_secrets(&text).unwrap(), &text);
        for s in ALL {
            assert!(!out.contains(s), "{s} left in:\n{out}");
        }
        assert!(out.contains("no_such_key = 1"));
    }

    #[test]
    fn text_that_is_not_toml_is_not_shown() {
        let e = config_secrets("[control\nhttp_token = \"x\"").unwrap_err();
        assert!(e.starts_with("it is not TOML ("), "{e}");
    }

    #[test]
    fn json_is_masked_value_by_value() {
        let m = Mask(Masker::new(["quo\"te-secret".to_string()]));
        let doc = serde_json::json!({"last_error": "auth quo\"te-secret refused", "password": "p"});
        let out = m.json(&doc.to_string());
        assert!(
            !out.contains("quo") && out.contains("auth *** refused"),
            "{out}"
        );
        assert!(out.contains("\"password\": \"***\""), "{out}");
        let lines = m.json_lines(&format!("{doc}\nnot json quo\"te-secret\n"));
        assert_eq!(lines.lines().count(), 2);
        assert!(!lines.contains("quo"), "{lines}");
    }
}
