//! `fushi bundle`: a diagnostic handover archive (SPEC §11) — manifest, status, the masked config, the audit tail, recent logs, `verify` and `report` output, journal statistics and handover.md — written atomically and audited with its sha256.
//!
//! It works with the daemon running (status, log ring and backlog through the control socket)
//! and stopped (status.json and the journal from disk); every part says where it came from, and
//! one that cannot be had is a short file saying why, never left out. Every step runs under one
//! time limit, so a hung NAS or a daemon that stopped answering cannot hang the bundle. Every
//! text goes through the config's masker last: a secret may turn up in any of them.

mod archive;
mod gather;
mod handover;
mod mask;
mod run;

use anyhow::Context;
use fushi_actors::alert::mask::Masker;
use fushi_actors::clock;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::target::{daemon_config_path, Target, EXIT_FAILURE, EXIT_OK};
use gather::Daemon;
use mask::Mask;

/// How a part's text is masked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Text,
    Json,
    JsonLines,
}

/// One file of the bundle.
#[derive(Debug)]
pub(super) struct Part {
    pub file: String,
    pub kind: Kind,
    /// Where it came from: the daemon, a file on disk, a command.
    pub source: String,
    /// False when the file only says why the part could not be had.
    pub gathered: bool,
    pub note: Option<String>,
    pub body: String,
}

impl Part {
    pub fn gathered(file: &str, kind: Kind, source: String, body: String) -> Self {
        Self {
            file: file.into(),
            kind,
            source,
            gathered: true,
            note: None,
            body,
        }
    }

    /// A part that could not be had: its file says why, in the part's own format.
    pub fn missing(file: &str, kind: Kind, source: String, why: String) -> Self {
        let body = match kind {
            Kind::Text => format!("not gathered: {why}\n"),
            Kind::Json => json!({ "not_gathered": why }).to_string(),
            Kind::JsonLines => format!("{}\n", json!({ "not_gathered": why })),
        };
        Self {
            file: file.into(),
            kind,
            source,
            gathered: false,
            note: Some(why),
            body,
        }
    }

    fn masked(&self, m: &Mask) -> Vec<u8> {
        match self.kind {
            Kind::Text => m.text(&self.body),
            Kind::Json => m.json(&self.body),
            Kind::JsonLines => m.json_lines(&self.body),
        }
        .into_bytes()
    }
}

/// What `fushi bundle` was asked for.
pub struct Options {
    pub out: PathBuf,
    pub since: Duration,
    pub timeout: Duration,
    pub json: bool,
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// `[A-Za-z0-9._-]`, the rest `_`: a node id is free text, a file name is not.
fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A config file's text and hash, the secrets found in it, or why it cannot be shown.
struct ConfigFile {
    path: PathBuf,
    sha256: Option<String>,
    bytes: usize,
    text: Result<String, String>,
    secrets: Result<Vec<String>, String>,
}

fn read_config(path: &Path) -> ConfigFile {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let secrets = mask::config_secrets(&text);
            ConfigFile {
                path: path.to_path_buf(),
                sha256: Some(sha256_hex(&bytes)),
                bytes: bytes.len(),
                text: Ok(text),
                secrets,
            }
        }
        Err(e) => ConfigFile {
            path: path.to_path_buf(),
            sha256: None,
            bytes: 0,
            text: Err(format!("cannot read {}: {e}", path.display())),
            secrets: Ok(Vec::new()),
        },
    }
}

fn config_part(file: &str, c: &ConfigFile) -> Part {
    let source = format!("{} on disk, every secret masked", c.path.display());
    match (&c.text, &c.secrets) {
        (Ok(text), Ok(_)) => Part::gathered(file, Kind::Text, source, text.clone()),
        (Ok(_), Err(why)) => Part::missing(
            file,
            Kind::Text,
            source,
            format!("{} is not shown: {why}", c.path.display()),
        ),
        (Err(why), _) => Part::missing(file, Kind::Text, source, why.clone()),
    }
}

/// One run of this very executable with the bundle's config: `fushi verify`, `fushi report`.
fn fushi_child(exe: &Path, args: &[String], config: &Path, limit: Duration) -> run::Ran {
    let mut cmd = Command::new(exe);
    cmd.args(args).arg("-c").arg(config).env("NO_COLOR", "1");
    run::run(cmd, limit)
}

/// A command's output as a text part: what ran, how it ended, what it printed.
fn text_of(file: &str, ran: &run::Ran, limit: Duration) -> Part {
    let mut body = format!(
        "$ {}\n{}, after {:.1}s\n\n{}",
        ran.shown,
        ran.end_words(limit),
        ran.took.as_secs_f64(),
        ran.stdout_text()
    );
    let err = ran.stderr_text();
    if !err.trim().is_empty() {
        body.push_str("\n--- stderr ---\n");
        body.push_str(&err);
    }
    let mut part = Part::gathered(file, Kind::Text, format!("`{}`", ran.shown), body);
    part.gathered = ran.code().is_some();
    part.note = Some(ran.end_words(limit));
    part
}

/// A command's `--json` output as a JSON part, or why there is none.
fn json_of(file: &str, ran: &run::Ran, limit: Duration) -> (Part, Option<Value>) {
    let source = format!("`{}`", ran.shown);
    match serde_json::from_slice::<Value>(&ran.stdout) {
        Ok(v) if ran.code().is_some() => {
            let mut part = Part::gathered(file, Kind::Json, source, ran.stdout_text());
            part.note = Some(ran.end_words(limit));
            (part, Some(v))
        }
        _ => {
            let said_text = ran.stderr_text();
            let said_text = said_text.trim();
            let why = format!(
                "it printed no JSON ({}){}",
                ran.end_words(limit),
                if said_text.is_empty() {
                    String::new()
                } else {
                    format!(": {}", said(said_text, 5))
                }
            );
            (Part::missing(file, Kind::Json, source, why), None)
        }
    }
}

/// The first `n` lines of what a command said that are not blank, on one line.
pub(super) fn said(s: &str, n: usize) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(n)
        .collect::<Vec<_>>()
        .join(" / ")
}

fn os_release() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
}

fn proc_text(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

pub fn bundle(mut t: Target, opts: Options) -> anyhow::Result<u8> {
    let limit = opts.timeout;
    let now = clock::wall();
    let created_at = clock::rfc3339(now);
    let since_start = now.checked_sub(opts.since).unwrap_or(std::time::UNIX_EPOCH);
    let cutoff = clock::rfc3339(since_start);

    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let sockets = |t: &Target| t.candidates().iter().map(|p| abs(p)).collect::<Vec<_>>();
    let mut daemon = gather::daemon(&sockets(&t), &abs(&t.config.node.data_dir), limit);
    // With --socket and no config file, the running daemon says which file it reads.
    if !t.config_read {
        let Some(doc) = daemon.doc() else {
            anyhow::bail!(
                "making a bundle needs the daemon's config: none was found and no daemon answers \
                 on {}; pass -c FILE",
                t.candidates()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            );
        };
        let path = daemon_config_path(doc);
        t = Target::load(Ok(path.clone()), t.socket.clone())
            .with_context(|| format!("reading the daemon's config {}", path.display()))?;
        daemon = gather::daemon(&sockets(&t), &abs(&t.config.node.data_dir), limit);
    }
    let config_path = abs(&t.config_path);
    let data_dir = abs(&t.config.node.data_dir);
    let exe = std::env::current_exe()
        .context("finding this fushi executable to run verify and report")?;

    // The children first: they run meanwhile.
    let since_arg = humantime::format_duration(opts.since).to_string();
    let commands: Vec<(&str, Vec<String>)> = vec![
        ("verify", vec!["verify".into()]),
        ("verify --json", vec!["verify".into(), "--json".into()]),
        (
            "report",
            vec!["report".into(), "--since".into(), since_arg.clone()],
        ),
        (
            "report --json",
            vec![
                "report".into(),
                "--since".into(),
                since_arg,
                "--json".into(),
            ],
        ),
        ("check", vec!["check".into()]),
    ];
    let children: Vec<_> = commands
        .into_iter()
        .map(|(name, args)| {
            let (exe, config) = (exe.clone(), config_path.clone());
            (
                name,
                std::thread::spawn(move || fushi_child(&exe, &args, &config, limit)),
            )
        })
        .collect();

    let config = read_config(&config_path);
    let last_good_path = data_dir.join("config.last-good.toml");
    let last_good = last_good_path
        .exists()
        .then(|| read_config(&last_good_path));
    let (status_part, doc) = gather::status(&daemon, &data_dir);
    let (audit_part, events) = gather::audit(&data_dir, &cutoff);
    let logs_part = gather::logs(&daemon, doc.as_ref(), &events, since_start, limit);
    let (journal_part, journal) =
        gather::journal(&daemon, doc.as_ref(), &data_dir.join("journal"), limit);

    let mut ran = std::collections::BTreeMap::new();
    for (name, h) in children {
        let r = h
            .join()
            .map_err(|_| anyhow::anyhow!("the thread running `fushi {name}` panicked"))?;
        ran.insert(name, r);
    }
    let verify_txt = text_of("verify.txt", &ran["verify"], limit);
    let (verify_json_part, verify_json) = json_of("verify.json", &ran["verify --json"], limit);
    let report_txt = text_of("report.txt", &ran["report"], limit);
    let (report_json_part, report_json) = json_of("report.json", &ran["report --json"], limit);
    let check_txt = text_of("check.txt", &ran["check"], limit);

    let mut parts = vec![status_part, config_part("config.toml", &config)];
    if let Some(lg) = &last_good {
        let mut p = config_part("config.last-good.toml", lg);
        p.note = Some(p.note.unwrap_or_else(|| {
            "the copy the daemon falls back to when the file is refused".into()
        }));
        parts.push(p);
    }
    parts.extend([
        audit_part,
        logs_part,
        journal_part,
        verify_txt,
        verify_json_part,
        report_txt,
        report_json_part,
        check_txt,
    ]);

    // The masker: the secrets of every config this daemon may run on.
    let mut secrets = config.secrets.clone().unwrap_or_default();
    if let Some(lg) = &last_good {
        secrets.extend(lg.secrets.clone().unwrap_or_default());
    }
    let mask = Mask(Masker::new(secrets));

    // The daemon's own name first: a config that does not load falls back to the hostname.
    let node = daemon
        .doc()
        .or(doc.as_ref())
        .map(|d| d.node.clone())
        .unwrap_or_else(|| t.config.node_id());
    let (mode, mode_source) = match (daemon.doc(), doc.as_ref()) {
        (Some(d), _) => (d.mode.clone(), "the running daemon"),
        (None, Some(d)) => (d.mode.clone(), "status.json as last written"),
        (None, None) => (
            format!("{:?}", t.config.node.mode).to_lowercase(),
            "the config file",
        ),
    };
    let stamp = time::OffsetDateTime::from(now)
        .format(time::macros::format_description!(
            "[year][month][day]-[hour][minute]"
        ))
        .unwrap_or_else(|_| "00000000-0000".into());
    let stem = format!("fushi-bundle-{}-{stamp}", file_safe(&node));
    let daemon_json = match &daemon {
        Daemon::Answers { doc, socket, .. } => json!({
            "state": "running", "pid": doc.pid, "started_at": doc.started_at,
            "log": doc.log, "sockets": socket,
        }),
        Daemon::Silent { pid, .. } => {
            json!({"state": "not_answering", "pid": pid, "why": daemon.silent_words()})
        }
        Daemon::Down { why } => json!({
            "state": "not_running", "why": why,
            "last_pid": doc.as_ref().map(|d| d.pid),
            "last_clean_shutdown": doc.as_ref().map(|d| d.clean_shutdown),
        }),
    };
    let version = env!("CARGO_PKG_VERSION");
    let config_error = t.config_error.clone();
    let primary = abs(&t.config.storage.primary).display().to_string();
    let handover_md = handover::write(&handover::Findings {
        node: &node,
        created_at: &created_at,
        version,
        config_path: &config_path.display().to_string(),
        config_sha256: config.sha256.as_deref(),
        config_error: config_error.as_deref(),
        primary: &primary,
        daemon: &daemon,
        doc: doc.as_ref(),
        journal: journal.as_ref(),
        verify: &ran["verify"],
        verify_json: verify_json.as_ref(),
        report: &ran["report"],
        report_json: report_json.as_ref(),
        audit: &events,
        since: &cutoff,
        limit,
        parts: &parts,
    });
    let manifest = json!({
        "bundle": stem,
        "created_at": created_at,
        "version": version,
        "node": node,
        "mode": mode,
        "mode_source": mode_source,
        "host": gethostname::gethostname().to_string_lossy(),
        "os": os_release(),
        "kernel": proc_text("/proc/sys/kernel/osrelease"),
        "kernel_build": proc_text("/proc/sys/kernel/version"),
        "arch": std::env::consts::ARCH,
        "config": {
            "path": config_path,
            "sha256": config.sha256,
            "bytes": config.bytes,
            "loads": config_error.is_none() && config.text.is_ok(),
            "error": config_error.as_ref().or(config.text.as_ref().err()),
        },
        "last_good_config": last_good.as_ref().map(|lg| json!({
            "path": lg.path, "sha256": lg.sha256, "bytes": lg.bytes,
        })),
        "data_dir": data_dir,
        "primary": primary,
        "daemon": daemon_json,
        "window": { "since": cutoff, "until": created_at, "seconds": opts.since.as_secs() },
        "timeout_ms": limit.as_millis() as u64,
        "parts": parts.iter().map(|p| json!({
            "file": p.file, "source": p.source, "gathered": p.gathered, "note": p.note,
        })).collect::<Vec<_>>(),
    });

    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            "manifest.json".into(),
            mask.json(&manifest.to_string()).into_bytes(),
        ),
        ("handover.md".into(), mask.text(&handover_md).into_bytes()),
    ];
    files.extend(parts.iter().map(|p| (p.file.clone(), p.masked(&mask))));

    let out = abs(&opts.out);
    let written = archive::write(&out, &stem, &files)?;

    let mut payload = json!({
        "path": written.path,
        "bytes": written.bytes,
        "sha256": written.sha256,
        "daemon": daemon_json["state"],
        "not_gathered": parts.iter().filter(|p| !p.gathered).map(|p| p.file.clone()).collect::<Vec<_>>(),
    });
    fushi_actors::audit::mask_secrets(&mut payload);
    let record = fushi_actors::audit::AuditEvent {
        ts: clock::rfc3339(clock::wall()),
        event: fushi_actors::events::HANDOVER_BUNDLE_CREATE.into(),
        node: node.clone(),
        actor: None,
        payload,
    };
    let audited = serde_json::to_string(&record)
        .context("encoding the audit record")
        .and_then(|line| archive::audit(&data_dir, &line));

    let missing: Vec<&Part> = parts.iter().filter(|p| !p.gathered).collect();
    if opts.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "path": written.path,
                "bytes": written.bytes,
                "sha256": written.sha256,
                "audited": audited.is_ok(),
                "not_gathered": missing.iter().map(|p| json!({"file": p.file, "why": p.note})).collect::<Vec<_>>(),
            }))?
        );
    } else {
        outln!("{}", written.path.display());
        outln!(
            "size {} ({} bytes)",
            bytesize::ByteSize(written.bytes).display().iec(),
            written.bytes
        );
        outln!("sha256 {}", written.sha256);
    }
    for p in &missing {
        eprintln!(
            "fushi: {} not gathered: {}",
            p.file,
            mask.text(p.note.as_deref().unwrap_or("see the file"))
        );
    }
    match audited {
        Ok(_) => Ok(EXIT_OK),
        Err(e) => {
            eprintln!(
                "fushi: the bundle {} was written, but not recorded in the audit log: {e:#}",
                written.path.display()
            );
            Ok(EXIT_FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_keep_only_safe_characters() {
        assert_eq!(file_safe("collector-pc.lan_1"), "collector-pc.lan_1");
        assert_eq!(file_safe("a b/c"), "a_b_c");
    }

    #[test]
    fn a_missing_part_says_why_in_its_own_format() {
        let p = Part::missing("x.json", Kind::Json, "s".into(), "gone".into());
        assert_eq!(
            serde_json::from_str::<Value>(&p.body).unwrap(),
            json!({"not_gathered": "gone"})
        );
        let p = Part::missing("x.txt", Kind::Text, "s".into(), "gone".into());
        assert_eq!(p.body, "not gathered: gone\n");
        assert!(!p.gathered);
    }
}
