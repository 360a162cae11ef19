//! Message templates: the placeholders a template may name, checking a template at config time, and rendering an alert's text.
//!
//! A template is plain text with `{placeholder}`s; `{{` and `}}` are literal braces. A
//! placeholder that does not apply to an alert (`{phase}` in an escalation) renders as `-`, so
//! one template serves every alert of its name. Without a template of its name, an alert reads
//! as its built-in sentence, which is written for that alert rather than for the template.

use std::collections::BTreeMap;

use super::types::{Alert, SloVerdict};

/// The template names of SPEC §6.
pub const NAMES: &[&str] = &[
    "escalation",
    "recovered",
    "fatal",
    "ok",
    "warn",
    "incident",
    "rollback",
];

/// Every placeholder a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "actor",
    "failures",
    "last_error",
    "node",
    "since",
    "duration",
    "phase",
    "metric",
    "value",
    "threshold",
    "window",
    "p95",
    "err_rate",
    "cmd",
    "exit_code",
    "incident",
    "why",
    "suppressed",
];

#[derive(Debug, Clone, PartialEq)]
enum Piece<'a> {
    Text(&'a str),
    Brace(char),
    Hole(&'a str),
}

fn pieces(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push(Piece::Text(&rest[..i]));
        let c = rest.as_bytes()[i] as char;
        let after = &rest[i + 1..];
        if after.starts_with(c) {
            out.push(Piece::Brace(c));
            rest = &after[1..];
            continue;
        }
        if c == '}' {
            return Err("a lone `}`: write `}}` for a literal brace".into());
        }
        let Some(end) = after.find('}') else {
            return Err("a `{` without its closing `}`: write `{{` for a literal brace".into());
        };
        out.push(Piece::Hole(&after[..end]));
        rest = &after[end + 1..];
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// Checks a template: every placeholder known and every brace closed.
pub fn check(template: &str) -> Result<(), String> {
    for p in pieces(template)? {
        if let Piece::Hole(name) = p {
            if !PLACEHOLDERS.contains(&name) {
                return Err(format!(
                    "unknown placeholder {{{name}}}; known: {}",
                    PLACEHOLDERS
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
        }
    }
    Ok(())
}

/// What an alert's placeholders stand for, beyond the alert itself.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    pub node: &'a str,
    /// How long the condition lasted (a resolution) or has lasted so far (a repeat).
    pub duration_ms: Option<u64>,
    /// Repeats of the condition noise control held back.
    pub suppressed: u32,
}

/// `1h 2m`, `3m 5s`, `250ms`: a duration as a person reads it in a message.
pub fn human(ms: u64) -> String {
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m, s) {
        (0, 0, 0) => format!("{ms}ms"),
        (0, 0, s) if ms % 1000 >= 100 => format!("{s}.{}s", ms % 1000 / 100),
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

fn values(alert: &Alert, cx: &Context) -> BTreeMap<&'static str, String> {
    let mut v = BTreeMap::new();
    v.insert("actor", alert.actor().to_string());
    v.insert("node", cx.node.to_string());
    v.insert("suppressed", cx.suppressed.to_string());
    if let Some(d) = cx.duration_ms {
        v.insert("duration", human(d));
    }
    let mut put = |k: &'static str, s: &str| {
        v.insert(k, s.to_string());
    };
    match alert {
        Alert::Escalation {
            failures,
            last_error,
            since,
            ..
        } => {
            put("failures", &failures.to_string());
            put("last_error", last_error.as_deref().unwrap_or("none"));
            put("since", since);
        }
        Alert::Recovered {
            failures, since, ..
        } => {
            put("failures", &failures.to_string());
            put("since", since);
        }
        Alert::Fatal {
            failures,
            last_error,
            ..
        } => {
            put("failures", &failures.to_string());
            put("last_error", last_error.as_deref().unwrap_or("none"));
        }
        Alert::NoLeader { since, why } => {
            put("since", since);
            put("last_error", why);
            put("why", why);
        }
        Alert::LeaderBack { since, .. } => put("since", since),
        Alert::DaemonRecovered { why } => {
            put("last_error", why);
            put("why", why);
        }
        Alert::ConfigRejected { error, .. } => {
            put("last_error", error);
            put("why", error);
        }
        Alert::StorageDown { why, .. } => {
            put("last_error", why);
            put("why", why);
        }
        Alert::ConfigFixed { .. } | Alert::StorageBack { .. } => {}
        Alert::Slo(s) => {
            put("phase", &s.phase);
            put("metric", &s.metric);
            put("value", &number(s.value));
            put("threshold", &number(s.threshold));
            put("window", &s.window);
            put("why", &s.why);
            match s.kind.as_str() {
                "p95" => put("p95", &number(s.value)),
                "error_rate" => put("err_rate", &number(s.value)),
                _ => {}
            }
            if let Some(i) = &s.incident {
                put("incident", i);
            }
            if let Some(c) = &s.cmd {
                put("cmd", c);
            }
            if let Some(c) = s.exit_code {
                put("exit_code", &c.to_string());
            }
            if let Some(e) = &s.error {
                put("last_error", e);
            }
        }
    }
    v
}

/// Fills `template` for `alert`; a template that does not check renders as itself, since
/// the config refuses one at load and a message must still go out.
pub fn fill(template: &str, alert: &Alert, cx: &Context) -> String {
    let Ok(pieces) = pieces(template) else {
        return template.to_string();
    };
    let v = values(alert, cx);
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Brace(c) => out.push(c),
            Piece::Hole(name) => out.push_str(v.get(name).map(String::as_str).unwrap_or("-")),
        }
    }
    out
}

/// The built-in sentence of an alert, used where no template of its name is configured.
pub fn builtin(alert: &Alert, cx: &Context) -> String {
    let node = cx.node;
    let lasted = cx
        .duration_ms
        .map(|d| format!(" after {}", human(d)))
        .unwrap_or_default();
    let mut text = match alert {
        Alert::Escalation {
            actor,
            failures,
            last_error,
            since,
        } => format!(
            "{actor} on {node} failed {failures} times in a row since {since} (last error: {}); still retrying",
            last_error.as_deref().unwrap_or("none")
        ),
        Alert::Recovered {
            actor,
            failures,
            since,
        } => format!(
            "{actor} on {node} recovered{lasted}: it runs stable again after {failures} consecutive failures since {since}"
        ),
        Alert::Fatal {
            actor,
            failures,
            last_error,
        } => format!(
            "{actor} on {node} was given up after {failures} failures (last error: {}); it stays stopped until `fushi start {actor}`",
            last_error.as_deref().unwrap_or("none")
        ),
        Alert::NoLeader { since, why } => format!(
            "no node has led since {since}, so no collector runs anywhere: {why}"
        ),
        Alert::LeaderBack { node: leader, since } => {
            format!("{leader} leads again{lasted} (no node had led since {since})")
        }
        Alert::DaemonRecovered { why } => format!("fushi on {node} came back: {why}"),
        Alert::ConfigRejected {
            path,
            error,
            running,
        } => format!("fushi on {node} refused {path}: {error}; it runs on {running} until the file is fixed"),
        Alert::ConfigFixed { path } => format!("fushi on {node} runs on {path} again{lasted}"),
        Alert::StorageDown { primary, why } => format!(
            "fushi on {node} cannot write the primary {primary} ({why}); records wait in the local journal"
        ),
        Alert::StorageBack { primary } => {
            format!("fushi on {node} writes the primary {primary} again{lasted}")
        }
        Alert::Slo(s) => {
            let head = match s.verdict {
                SloVerdict::Ok => format!("SLO {} on {node} is ok again{lasted}", s.slo),
                SloVerdict::Warn => format!("SLO {} on {node} warns", s.slo),
                SloVerdict::Violation => format!(
                    "SLO {} on {node} is violated: incident{}{}",
                    s.slo,
                    s.incident
                        .as_deref()
                        .map(|i| format!(" {i}"))
                        .unwrap_or_default(),
                    if s.rollback_required {
                        ", rollback required"
                    } else {
                        ""
                    }
                ),
                SloVerdict::Rollback => format!("SLO {} on {node} rolled back", s.slo),
            };
            format!("{head}: {}", s.why)
        }
    };
    if cx.suppressed > 0 {
        text.push_str(&format!(
            " ({} repeat{} held back)",
            cx.suppressed,
            if cx.suppressed == 1 { "" } else { "s" }
        ));
    }
    text
}

/// The text of `alert`: its template from `templates` if there is one, else its built-in sentence.
pub fn render(templates: &BTreeMap<String, String>, alert: &Alert, cx: &Context) -> String {
    match templates.get(alert.template()) {
        Some(t) => fill(t, alert, cx),
        None => builtin(alert, cx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escalation() -> Alert {
        Alert::Escalation {
            actor: "collectors/api".into(),
            failures: 4,
            last_error: Some("connection refused".into()),
            since: "2026-12-01T10:00:00.000Z".into(),
        }
    }

    #[test]
    fn a_template_fills_its_placeholders_and_keeps_literal_braces() {
        let cx = Context {
            node: "pc1",
            ..Default::default()
        };
        let t = "{{fushi}} {actor}@{node}: {failures}x, {last_error} ({phase})";
        check(t).unwrap();
        assert_eq!(
            fill(t, &escalation(), &cx),
            "{fushi} collectors/api@pc1: 4x, connection refused (-)"
        );
    }

    #[test]
    fn an_unknown_placeholder_or_an_open_brace_is_refused_naming_it() {
        let e = check("{actor} {colour}").unwrap_err();
        assert!(e.contains("unknown placeholder {colour}"), "{e}");
        assert!(e.contains("{last_error}"), "the known ones are listed: {e}");
        assert!(check("{actor").unwrap_err().contains("closing"));
        assert!(check("a } b").unwrap_err().contains("lone"));
    }

    #[test]
    fn the_built_in_sentence_says_how_long_and_what_was_held_back() {
        let r = Alert::Recovered {
            actor: "collectors/api".into(),
            failures: 4,
            since: "t0".into(),
        };
        let cx = Context {
            node: "pc1",
            duration_ms: Some(125_000),
            suppressed: 2,
        };
        let text = builtin(&r, &cx);
        assert!(text.contains("recovered after 2m 5s"), "{text}");
        assert!(text.contains("(2 repeats held back)"), "{text}");
    }

    #[test]
    fn a_template_for_the_collectors_escalations_leaves_the_daemons_own_alerts_their_sentences() {
        let templates = BTreeMap::from([(
            "escalation".to_string(),
            "ESC {actor} x{failures}".to_string(),
        )]);
        let cx = Context {
            node: "pc1",
            ..Default::default()
        };
        assert_eq!(
            render(&templates, &escalation(), &cx),
            "ESC collectors/api x4"
        );
        let back = Alert::DaemonRecovered {
            why: "killed".into(),
        };
        assert_eq!(
            render(&templates, &back, &cx),
            "fushi on pc1 came back: killed"
        );
    }

    #[test]
    fn durations_read_as_a_person_writes_them() {
        assert_eq!(human(250), "250ms");
        assert_eq!(human(5_000), "5s");
        assert_eq!(human(1_500), "1.5s");
        assert_eq!(human(120_000), "2m");
        assert_eq!(human(3_723_000), "1h 2m");
    }
}
