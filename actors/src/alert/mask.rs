//! Masking the config's secrets in every message an alert channel sends: tokens, header values, credentials in URLs, a webhook's own address.

use std::sync::{Arc, RwLock};

use serde_json::Value;

/// Shorter strings are not masked: replacing every `ab` in a message would make it unreadable
/// and hide nothing a person could not guess.
const MIN_SECRET: usize = 4;

/// The secrets a message must not carry, from the config; a handle, so that a reload that
/// adds a collector with a token of its own masks that token too.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Longest first, so that a secret containing another is masked whole.
    secrets: Arc<RwLock<Vec<String>>>,
}

fn sorted(secrets: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut secrets: Vec<String> = secrets
        .into_iter()
        .filter(|s| s.len() >= MIN_SECRET)
        .collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

impl Masker {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        Self {
            secrets: Arc::new(RwLock::new(sorted(secrets))),
        }
    }

    /// Replaces the secrets (the config was reloaded), for every holder of this handle.
    pub fn set(&self, secrets: impl IntoIterator<Item = String>) {
        *self.secrets.write().unwrap_or_else(|p| p.into_inner()) = sorted(secrets);
    }

    /// `s` with every known secret and every URL's credentials replaced by `***`.
    pub fn text(&self, s: &str) -> String {
        let mut out = s.to_string();
        let secrets = self.secrets.read().unwrap_or_else(|p| p.into_inner());
        for secret in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        if out.contains("://") {
            out = out
                .split_inclusive(char::is_whitespace)
                .map(|w| crate::audit::mask_url(w).unwrap_or_else(|| w.to_string()))
                .collect();
        }
        out
    }

    /// Every string in `v` masked as [`Masker::text`] does, and secret-looking keys as the
    /// audit log masks them.
    pub fn value(&self, v: &mut Value) {
        crate::audit::mask_secrets(v);
        match v {
            Value::String(s) => *s = self.text(s),
            Value::Array(items) => items.iter_mut().for_each(|i| self.value(i)),
            Value::Object(map) => map.values_mut().for_each(|i| self.value(i)),
            _ => {}
        }
    }

    /// A webhook's address as logs and errors show it: scheme and host only, since chat
    /// webhooks carry their secret in the path (`hooks.slack.com/services/T…/B…/XXXX`).
    pub fn url(&self, url: &str) -> String {
        match url.find("://") {
            Some(i) => {
                let rest = &url[i + 3..];
                let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
                let host = &rest[..host_end];
                let host = host.rsplit('@').next().unwrap_or(host);
                let tail = if host_end < rest.len() { "/***" } else { "" };
                format!("{}{host}{tail}", &url[..i + 3])
            }
            None => "***".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_and_url_credentials_are_masked_wherever_they_appear() {
        let m = Masker::new(["s3cret-token".to_string(), "ab".to_string()]);
        assert_eq!(
            m.text("GET failed: Bearer s3cret-token at https://u:pw@h/x (ab)"),
            "GET failed: Bearer *** at https://u:***@h/x (ab)"
        );
        let mut v = json!({"text": "token s3cret-token", "password": "x", "n": 1});
        m.value(&mut v);
        assert_eq!(v, json!({"text": "token ***", "password": "***", "n": 1}));
        assert_eq!(
            m.url("https://hooks.slack.com/services/T0/B0/XXXX"),
            "https://hooks.slack.com/***"
        );
        assert_eq!(m.url("http://u:p@127.0.0.1:9"), "http://127.0.0.1:9");
        let copy = m.clone();
        m.set(["added-by-reload".to_string()]);
        assert_eq!(
            copy.text("added-by-reload s3cret-token"),
            "*** s3cret-token"
        );
    }
}
