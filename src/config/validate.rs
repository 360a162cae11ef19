//! What a config must satisfy beyond its types: each rule says what is wrong and what to do.

use fushi_actors::collectors::{http, tail};
use fushi_actors::primary::storable_stream;
use fushi_actors::records::QUARANTINE;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::keys::{Problem, Seg};
use super::schema::*;
use super::units::ByteSize;

/// The shortest restart delay a backoff step may ask for: at most 10 restarts a second per
/// child. A zero step takes the supervisor's immediate path (a restart in microseconds), so a
/// command that fails at once is restarted in a busy loop, each restart audited (~800 a second
/// and ~400 KB/s of audit, issue 9); a 5 ms step still spins (~100 a second, ~55 KB/s). At
/// 100 ms a failing `false` is restarted 9.5 times a second, ~5 KB/s of audit (measured on the
/// debug binary). The integration tests' crash loops use this floor too, with few restarts.
pub const MIN_RESTART_DELAY: Duration = Duration::from_millis(100);

/// The smallest journal bound. Segments are `max_local / 8` but at least 4 KiB (`segment_sizes`
/// in src/tree.rs), and only closed segments can be released: at 16 KiB the active segment is
/// still at most a quarter of the bound, below it a full journal could be mostly one segment
/// that never frees a byte, and at 0 every append waits forever.
pub const MIN_MAX_LOCAL: u64 = 16 << 10;

impl Config {
    pub(super) fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |at: Vec<Seg>, message: String| out.push(Problem { at, message });
        use Seg::{Index, Key};

        if let Some(id) = &self.node.id {
            if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c == '/') {
                bad(
                    vec![Key("node"), Key("id")],
                    format!("invalid node id {id:?}: use a name without spaces or slashes"),
                );
            }
        }
        let s = &self.supervisor;
        let sup = |k| vec![Key("supervisor"), Key(k)];
        if let Some((i, m)) = backoff_problem(&s.backoff) {
            bad(indexed(sup("backoff"), i), m);
        } else if let Some(m) = jitter_problem(s.jitter, &s.backoff, false) {
            bad(sup("jitter"), m);
        }
        if s.escalate_after == 0 {
            bad(sup("escalate_after"), "must be at least 1".into());
        }
        let periods = [
            (sup("stable_after"), s.stable_after, STABLE_AFTER_WHY),
            (sup("shutdown_timeout"), s.shutdown_timeout, SHUTDOWN_WHY),
            (
                vec![Key("storage"), Key("probe_interval")],
                self.storage.probe_interval,
                "the primary would never be probed, so it would never be found up",
            ),
            (
                vec![Key("storage"), Key("io_timeout")],
                self.storage.io_timeout,
                "every operation on the primary would time out",
            ),
            (
                vec![Key("sync"), Key("interval")],
                self.sync.interval,
                "nothing would ever be forwarded to the primary",
            ),
            (
                vec![Key("leader"), Key("heartbeat")],
                self.leader.heartbeat,
                "the lease would be renewed in a busy loop",
            ),
            (
                vec![Key("alert"), Key("repeat_after")],
                self.alert.repeat_after,
                "the same alert would be sent again at every occurrence",
            ),
        ];
        for (at, value, why) in periods {
            if let Some(m) = zero_problem(value, why) {
                bad(at, m);
            }
        }
        let st = &self.storage;
        if st.max_local.0 < MIN_MAX_LOCAL {
            bad(
                vec![Key("storage"), Key("max_local")],
                format!(
                    "{} is below the minimum of {}: the journal keeps records in segments of at \
                     least 4 KiB and can free only closed ones, so it needs room for four; use at \
                     least \"16 KiB\"",
                    st.max_local,
                    ByteSize(MIN_MAX_LOCAL)
                ),
            );
        }
        if st.max_record_bytes.0 == 0 {
            bad(
                vec![Key("storage"), Key("max_record_bytes")],
                "must be greater than 0".into(),
            );
        } else if st.max_record_bytes.0 > st.max_local.0 {
            bad(
                vec![Key("storage"), Key("max_record_bytes")],
                format!(
                    "{} is above max_local ({}): one record would not fit in the journal; \
                     lower it or raise max_local",
                    st.max_record_bytes, st.max_local
                ),
            );
        }
        if self.sync.batch == 0 {
            bad(vec![Key("sync"), Key("batch")], "must be at least 1".into());
        }
        if self.leader.enabled
            && self.leader.backend == LeaderBackend::Etcd
            && self.leader.etcd_endpoints.is_empty()
        {
            bad(
                vec![Key("leader"), Key("etcd_endpoints")],
                "backend = \"etcd\" needs at least one endpoint, e.g. [\"http://127.0.0.1:2379\"]"
                    .into(),
            );
        }
        // A leader fences itself a heartbeat before stale_after: at least one renewal must fit.
        if self.leader.heartbeat.saturating_mul(2) > self.leader.stale_after {
            bad(
                vec![Key("leader"), Key("heartbeat")],
                format!(
                    "heartbeat ({}) must be at most half of stale_after ({}): a leader that \
                     cannot renew stops collecting a heartbeat before stale_after, and must have \
                     had a chance to renew before that",
                    humantime::format_duration(self.leader.heartbeat),
                    humantime::format_duration(self.leader.stale_after)
                ),
            );
        }
        match self.control.http.parse::<SocketAddr>() {
            // No HTTP endpoint at all.
            Err(_) if self.control.http.is_empty() => {}
            Err(_) => bad(
                vec![Key("control"), Key("http")],
                format!(
                    "invalid address {:?}: expected IP:PORT such as \"127.0.0.1:9752\", or \"\" for no HTTP endpoint",
                    self.control.http
                ),
            ),
            Ok(addr)
                if !addr.ip().is_loopback()
                    && self.control.http_token.as_deref().unwrap_or("").is_empty() =>
            {
                bad(vec![Key("control"), Key("http")], format!("{addr} is not a loopback address: set control.http_token, or bind to 127.0.0.1"));
            }
            Ok(_) => {}
        }
        let a = &self.alert;
        if a.flap_count == 0 {
            bad(
                vec![Key("alert"), Key("flap_count")],
                "must be at least 1: at 0 every escalation would be reported as flapping".into(),
            );
        }
        for (k, v, why) in [
            (
                "flap_window",
                a.flap_window,
                "no actor could ever be seen flapping",
            ),
            (
                "stable_after",
                a.stable_after,
                "a flapping actor would be released at once, so its alerts would never be held",
            ),
        ] {
            if let Some(m) = zero_problem(v, why) {
                bad(vec![Key("alert"), Key(k)], m);
            }
        }
        if let Some(i) = a.retry.iter().position(|d| d.is_zero()) {
            bad(
                vec![Key("alert"), Key("retry"), Index(i)],
                "a retry step must wait some time: a failing receiver would be hammered".into(),
            );
        }
        template_problems(&a.templates, vec![Key("alert")], &mut bad);
        let mut names = BTreeMap::new();
        let mut journald = 0;
        for (i, ch) in a.channels.iter().enumerate() {
            let at = |k| vec![Key("alert"), Key("channel"), Index(i), Key(k)];
            let kind = ch.kind;
            let name = channel_name(a, i);
            if ch.name.as_deref() == Some("") {
                bad(at("name"), "must not be empty".into());
            }
            let unnamed_before = a.channels[..i]
                .iter()
                .position(|c| c.kind == ch.kind && c.name.is_none());
            if let (None, Some(prev)) = (&ch.name, unnamed_before) {
                bad(at("name"), format!("alert.channel[{prev}] is a {} channel too: give each a name, so that what each still owes is kept for it when the config changes", kind_name(kind)));
            } else if let Some(prev) = names.insert(name.clone(), i) {
                bad(at("name"), format!("channel name {name:?} is also alert.channel[{prev}]'s: give each channel its own name"));
            }
            let only = |key: &'static str, set: bool, owner: AlertChannelKind| {
                (set && kind != owner).then_some((key, owner))
            };
            for (key, owner) in [
                only("url", ch.url.is_some(), AlertChannelKind::Webhook),
                only("format", ch.format.is_some(), AlertChannelKind::Webhook),
                only("headers", !ch.headers.is_empty(), AlertChannelKind::Webhook),
                only("argv", !ch.argv.is_empty(), AlertChannelKind::Command),
                only("shell", ch.shell, AlertChannelKind::Command),
                only("env", !ch.env.is_empty(), AlertChannelKind::Command),
                only("path", ch.path.is_some(), AlertChannelKind::File),
            ]
            .into_iter()
            .flatten()
            {
                bad(
                    at(key),
                    format!(
                        "{key} is a key of {} channels, not of {} ones",
                        kind_name(owner),
                        kind_name(kind)
                    ),
                );
            }
            match kind {
                AlertChannelKind::Webhook => {
                    match ch.url.as_deref() {
                        None => bad(at("url"), "a webhook channel needs url".into()),
                        Some(u) => {
                            if let Err(e) = fushi_actors::alert::channel::check_url(u) {
                                bad(
                                    at("url"),
                                    format!("must be an http:// or https:// URL: it {e}"),
                                );
                            }
                        }
                    }
                    for (k, v) in &ch.headers {
                        if let Err(e) = fushi_actors::alert::channel::check_header(k, v) {
                            bad(at("headers"), e);
                        }
                    }
                }
                AlertChannelKind::Command
                    if ch.argv.first().is_none_or(|p| p.trim().is_empty()) =>
                {
                    bad(
                        at("argv"),
                        "a command channel needs argv, its program first".into(),
                    )
                }
                AlertChannelKind::File if ch.path.is_none() => {
                    bad(at("path"), "a file channel needs path".into())
                }
                AlertChannelKind::Journald => {
                    journald += 1;
                    if journald > 1 {
                        bad(
                            at("kind"),
                            "journald is one channel, always on: configure it once".into(),
                        );
                    }
                    if ch.min_interval.is_some() {
                        bad(
                            at("min_interval"),
                            "the journald channel logs every alert at once: it has no min_interval"
                                .into(),
                        );
                    }
                }
                _ => {}
            }
            if let Some(m) = zero_problem(ch.timeout, "every attempt would time out") {
                bad(at("timeout"), m);
            }
            for (j, e) in ch.events.iter().enumerate() {
                if fushi_actors::alert::Class::parse(e).is_none() {
                    let known: Vec<&str> = fushi_actors::alert::Class::ALL
                        .iter()
                        .map(|c| c.name())
                        .collect();
                    bad(
                        vec![
                            Key("alert"),
                            Key("channel"),
                            Index(i),
                            Key("events"),
                            Index(j),
                        ],
                        format!("unknown event class {e:?}; known: {}", known.join(", ")),
                    );
                }
            }
            template_problems(
                &ch.templates,
                vec![Key("alert"), Key("channel"), Index(i)],
                &mut bad,
            );
        }
        let mut seen = BTreeMap::new();
        for (i, c) in self.collectors.iter().enumerate() {
            let at = |k| vec![Key("collector"), Index(i), Key(k)];
            if c.name.is_empty()
                || !c
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
                || c.name == "."
                || c.name == ".."
            {
                bad(
                    at("name"),
                    format!(
                        "invalid collector name {:?}: use letters, digits, '.', '_' and '-'",
                        c.name
                    ),
                );
            }
            if let Some(first) = seen.insert(c.name.clone(), i) {
                bad(
                    at("name"),
                    format!(
                        "duplicate collector name {:?} (also collector[{first}])",
                        c.name
                    ),
                );
            }
            let stream_key = if c.stream.is_some() { "stream" } else { "name" };
            if !storable_stream(c.stream()) {
                bad(at(stream_key), format!(
                    "invalid stream {:?}: segments of [A-Za-z0-9._-] joined by '/', at most 128 bytes, no '.' or '..', \
                     no segment after the first named like a day file (YYYY-MM-DD.jsonl), none before the last ending in .json", c.stream()));
            } else if reserved_stream(c.stream()) {
                bad(
                    at(stream_key),
                    format!(
                        "stream {:?} is reserved: the listen collector keeps rejected input lines \
                         on {QUARANTINE:?}; set another stream",
                        c.stream()
                    ),
                );
            }
            // The policy this collector runs with is the tree's defaults under its overrides: an
            // override can break a rule the defaults keep (a short backoff under the default jitter).
            let backoff = c.backoff.as_ref().unwrap_or(&s.backoff);
            let jitter = c.jitter.unwrap_or(s.jitter);
            if let Some(b) = &c.backoff {
                if let Some((i, m)) = backoff_problem(b) {
                    bad(indexed(at("backoff"), i), m);
                }
            }
            if c.backoff.is_some() || c.jitter.is_some() {
                // Blame the key this collector set: its jitter, else its backoff under the
                // tree's jitter.
                let (key, inherited) = match c.jitter {
                    Some(_) => ("jitter", false),
                    None => ("backoff", true),
                };
                if backoff_problem(backoff).is_none() {
                    if let Some(m) = jitter_problem(jitter, backoff, inherited) {
                        bad(at(key), m);
                    }
                }
            }
            if c.escalate_after == Some(0) {
                bad(at("escalate_after"), "must be at least 1".into());
            }
            let periods = [
                ("every", c.every, "the collector could not be scheduled"),
                (
                    "timeout",
                    c.timeout,
                    "every periodic run would time out at once",
                ),
                ("stable_after", c.stable_after, STABLE_AFTER_WHY),
                ("shutdown_timeout", c.shutdown_timeout, SHUTDOWN_WHY),
            ];
            for (key, value, why) in periods {
                if let Some(m) = value.and_then(|v| zero_problem(v, why)) {
                    bad(at(key), m);
                }
            }
            if c.kind == CollectorKind::Tail {
                let elsewhere = [
                    ("argv", !c.argv.is_empty()),
                    ("shell", c.shell),
                    ("env", !c.env.is_empty()),
                    ("cwd", c.cwd.is_some()),
                    ("url", c.url.is_some()),
                    ("every", c.every.is_some()),
                    ("timeout", c.timeout.is_some()),
                    ("address", c.address.is_some()),
                ];
                for (key, set) in elsewhere {
                    if set {
                        bad(
                            at(key),
                            format!(
                                "{key} does not apply to a tail collector (its keys: path, read_from, \
                                 glob_interval, partial_after, rotate_wait)"
                            ),
                        );
                    }
                }
            }
            if c.kind != CollectorKind::Tail {
                let tail_only = [
                    ("glob_interval", c.glob_interval.is_some()),
                    ("read_from", c.read_from.is_some()),
                    ("partial_after", c.partial_after.is_some()),
                    ("rotate_wait", c.rotate_wait.is_some()),
                ];
                for (key, set) in tail_only {
                    if set {
                        bad(at(key), format!("{key} applies to tail collectors only"));
                    }
                }
                if c.path.is_some() {
                    bad(at("path"), "path applies to tail collectors only (a listen collector takes address = \"unix:PATH\")".into());
                }
            }
            // The http-only keys, refused elsewhere rather than silently doing nothing.
            if c.kind != CollectorKind::Http {
                let http_only = [
                    ("split", c.split),
                    ("poll_jitter", c.poll_jitter.is_some()),
                    ("headers", !c.headers.is_empty()),
                ];
                for (key, set) in http_only {
                    if set {
                        bad(at(key), format!("{key} applies to http collectors only"));
                    }
                }
            }
            match c.kind {
                CollectorKind::Command if c.argv.is_empty() => bad(
                    at("argv"),
                    "a command collector needs argv, e.g. argv = [\"my-poller\", \"--json\"]"
                        .into(),
                ),
                CollectorKind::Command if c.timeout.is_some() && c.every.is_none() => bad(
                    at("timeout"),
                    "timeout applies to periodic commands: set every too".into(),
                ),
                CollectorKind::Http => {
                    match &c.url {
                        None => bad(at("url"), "an http collector needs url".into()),
                        Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => bad(
                            at("url"),
                            format!("{u:?} is not an http:// or https:// URL"),
                        ),
                        Some(u) => {
                            if let Err(m) = http::check_url(u) {
                                bad(at("url"), m);
                            }
                        }
                    }
                    match c.every {
                        None => bad(
                            at("every"),
                            "an http collector needs every, how often it polls, e.g. every = \"30s\""
                                .into(),
                        ),
                        Some(every) => {
                            if c.http_timeout() >= every {
                                bad(
                                    at("timeout"),
                                    format!(
                                        "timeout ({:?}) must be below every ({every:?}): polls never overlap",
                                        c.http_timeout()
                                    ),
                                );
                            }
                            if c.http_poll_jitter() >= every {
                                bad(
                                    at("poll_jitter"),
                                    format!(
                                        "poll_jitter ({:?}) must be below every ({every:?})",
                                        c.http_poll_jitter()
                                    ),
                                );
                            }
                        }
                    }
                    for (name, value) in &c.headers {
                        if let Err(m) = http::check_header(name, value) {
                            bad(at("headers"), m);
                        }
                    }
                }
                CollectorKind::Tail => {
                    match &c.path {
                        None => bad(
                            at("path"),
                            "a tail collector needs path, a file or a glob, e.g. path = \"/var/log/app/*.log\"".into(),
                        ),
                        Some(p) => {
                            if let Err(m) = tail::check_pattern(&p.to_string_lossy()) {
                                bad(at("path"), m);
                            }
                        }
                    }
                    if let Some(m) = c
                        .glob_interval
                        .and_then(|v| zero_problem(v, "the glob would be looked at without pause"))
                    {
                        bad(at("glob_interval"), m);
                    }
                    // A tail collector's records are counted by its stream's ids (how it knows,
                    // after a crash, which of its lines are durable): no other collector may
                    // write there.
                    if let Some(j) = self
                        .collectors
                        .iter()
                        .position(|o| o.name != c.name && o.stream() == c.stream())
                    {
                        bad(
                            at(stream_key),
                            format!(
                                "stream {:?} is also collector {:?}'s: a tail collector's stream is its own \
                                 (its ids count its lines through a crash); give one of them another stream",
                                c.stream(),
                                self.collectors[j].name
                            ),
                        );
                    }
                }
                CollectorKind::Listen => match c.address.as_deref() {
                    None => bad(
                        at("address"),
                        "a listen collector needs address, \"127.0.0.1:PORT\" or \"unix:PATH\""
                            .into(),
                    ),
                    Some(a) if !a.starts_with("unix:") && a.parse::<SocketAddr>().is_err() => bad(
                        at("address"),
                        format!(
                            "invalid address {a:?}: expected \"127.0.0.1:PORT\" or \"unix:PATH\""
                        ),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
        let mut slo_names = BTreeMap::new();
        for (i, slo) in self.slos.iter().enumerate() {
            let at = |k| vec![Key("slo"), Index(i), Key(k)];
            if slo_names.insert(slo.name.clone(), i).is_some() {
                bad(at("name"), format!("duplicate slo name {:?}", slo.name));
            }
            if !storable_stream(&slo.stream) {
                bad(at("stream"), format!("invalid stream {:?}", slo.stream));
            }
            if slo.kind == SloKind::P95 && slo.field.is_none() {
                bad(at("field"), "a p95 SLO needs the field to measure".into());
            }
            if slo.kind == SloKind::ErrorRate && slo.predicate.is_none() {
                bad(
                    at("predicate"),
                    "an error_rate SLO needs a predicate field".into(),
                );
            }
            for phase in slo.thresholds.keys() {
                if !matches!(phase.as_str(), "A" | "B" | "C") {
                    bad(
                        at("thresholds"),
                        format!("unknown phase {phase:?}: use A, B or C"),
                    );
                }
            }
            if !slo.thresholds.contains_key(&slo.phase) {
                bad(
                    at("phase"),
                    format!("phase {:?} has no threshold in thresholds", slo.phase),
                );
            }
            if let Some(m) = zero_problem(slo.window, "a window must hold some time") {
                bad(at("window"), m);
            }
            if !(slo.warn_ratio > 0.0 && slo.warn_ratio <= 1.0) {
                bad(
                    at("warn_ratio"),
                    "must be in (0, 1], e.g. 0.8 to warn at 80 % of the threshold".into(),
                );
            }
            if let Some((phase, v)) = slo
                .thresholds
                .iter()
                .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
            {
                bad(
                    at("thresholds"),
                    format!("threshold {phase} = {v} must be a number of at least 0"),
                );
            }
            if slo.field.is_some() && slo.kind != SloKind::P95 {
                bad(
                    at("field"),
                    "only a p95 SLO measures a field (error_rate uses predicate)".into(),
                );
            }
            if slo.predicate.is_some() && slo.kind != SloKind::ErrorRate {
                bad(
                    at("predicate"),
                    "only an error_rate SLO has a predicate".into(),
                );
            }
            if slo.promote_after == 0 {
                bad(
                    at("promote_after"),
                    "must be at least 1: with 0 a gate would be promotable before any window passed".into(),
                );
            }
            if slo.rollback.first().is_some_and(|p| p.is_empty()) {
                bad(
                    at("rollback"),
                    "the program (the first element) is empty".into(),
                );
            }
            if let Some(m) = zero_problem(
                slo.rollback_timeout,
                "every rollback would be killed at once",
            ) {
                bad(at("rollback_timeout"), m);
            }
        }
        out
    }
}

fn kind_name(k: AlertChannelKind) -> &'static str {
    match k {
        AlertChannelKind::Journald => "journald",
        AlertChannelKind::Webhook => "webhook",
        AlertChannelKind::Command => "command",
        AlertChannelKind::File => "file",
    }
}

/// A channel's name: as configured, else its kind (the rules give a second channel of a kind a
/// name of its own). The outbox keys what is owed by it, so it must not follow the order of
/// the channels in the file.
pub fn channel_name(a: &AlertConfig, i: usize) -> String {
    let ch = &a.channels[i];
    ch.name
        .clone()
        .unwrap_or_else(|| kind_name(ch.kind).to_string())
}

/// Unknown template names and templates that do not check (an unknown placeholder, an open
/// brace), each named at its own key so that the error names its line.
fn template_problems(
    templates: &BTreeMap<String, String>,
    at: Vec<Seg>,
    bad: &mut impl FnMut(Vec<Seg>, String),
) {
    for (name, text) in templates {
        let mut key = at.clone();
        key.push(Seg::Key("templates"));
        match TEMPLATE_NAMES.iter().find(|n| **n == name.as_str()) {
            None => bad(
                key,
                format!(
                    "unknown template {name:?}; known: {}",
                    TEMPLATE_NAMES.join(", ")
                ),
            ),
            Some(n) => {
                if let Err(e) = fushi_actors::alert::template::check(text) {
                    key.push(Seg::Key(n));
                    bad(key, format!("template {name}: {e}"));
                }
            }
        }
    }
}

const STABLE_AFTER_WHY: &str =
    "every start would count as stable, so failure streaks would never grow and never escalate";
const SHUTDOWN_WHY: &str = "every stop would kill the child without letting it finish";

/// `at` with the index of an offending list element, when there is one.
fn indexed(mut at: Vec<Seg>, i: Option<usize>) -> Vec<Seg> {
    if let Some(i) = i {
        at.push(Seg::Index(i));
    }
    at
}

/// What is wrong with a period or timeout that must not be zero.
fn zero_problem(value: Duration, why: &str) -> Option<String> {
    value
        .is_zero()
        .then(|| format!("must be greater than 0: with 0, {why}"))
}

/// What is wrong with a list of backoff steps, and at which step.
fn backoff_problem(backoff: &[Duration]) -> Option<(Option<usize>, String)> {
    if backoff.is_empty() {
        return Some((
            None,
            "must list at least one delay, e.g. [\"5s\", \"10s\", \"15s\"]".into(),
        ));
    }
    let (i, step) = backoff
        .iter()
        .enumerate()
        .find(|(_, step)| **step < MIN_RESTART_DELAY)?;
    Some((
        Some(i),
        format!(
            "{} is below the minimum restart delay of {}, which holds a child that fails at once \
             to at most {} restarts a second, each one audited (a zero step restarts it hundreds \
             of times a second, a busy loop); use at least \"{}\"",
            fmt_duration(*step),
            fmt_duration(MIN_RESTART_DELAY),
            Duration::from_secs(1).as_nanos() / MIN_RESTART_DELAY.as_nanos(),
            fmt_duration(MIN_RESTART_DELAY)
        ),
    ))
}

/// What is wrong with a jitter over `backoff`; `inherited` when the jitter is the tree's and
/// the backoff a collector's own. Jitter spreads the restarts of many children over a fraction
/// of their delay; above the largest step it dominates the schedule (`"1000h"` puts a restart
/// days away), which is never what a backoff list means.
fn jitter_problem(jitter: Duration, backoff: &[Duration], inherited: bool) -> Option<String> {
    let largest = *backoff.iter().max()?;
    (jitter > largest).then(|| {
        let (whose, fix) = if inherited {
            (" (from [supervisor])", "set this collector's jitter")
        } else {
            ("", "use a jitter")
        };
        format!(
            "jitter{whose} ({}) is above the largest backoff step ({}): the random part would \
             outweigh the backoff and could put a restart far away; {fix} of at most \"{}\"",
            fmt_duration(jitter),
            fmt_duration(largest),
            fmt_duration(largest)
        )
    })
}

fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Whether a collector may not write to `stream`: [`QUARANTINE`] (and streams under it) holds
/// the input lines the listen collector rejected, and must hold nothing else.
fn reserved_stream(stream: &str) -> bool {
    stream
        .strip_prefix(QUARANTINE)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}
