//! `fushi verify`: reads the primary store straight from disk (the daemon need not run) and reports gaps, duplicates, out-of-order ids and epochs written by two nodes; exit 0 clean, 1 problems or no store, 78 config error.

use anyhow::{bail, Context};
use fushi_actors::primary::{Primary, StreamSummary, VerifyReport};
use std::io;
use std::path::Path;

use crate::config::Config;

pub fn run(config: &Path, json: bool) -> anyhow::Result<()> {
    let (cfg, _) =
        Config::load(config).with_context(|| format!("loading config {}", config.display()))?;
    let root = &cfg.storage.primary;
    // Said before reading anything: an unmounted NAS is the usual cause, not a broken store.
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("primary store {} is not a directory", root.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            bail!(
                "primary store {} does not exist; is the NAS mounted?",
                root.display()
            )
        }
        Err(e) => bail!("cannot read primary store {}: {e}", root.display()),
    }
    let report = Primary::new(root)
        .verify()
        .with_context(|| format!("reading primary store {}", root.display()))?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", human(&report));
    }
    if !report.is_clean() {
        bail!(
            "{} problem{} on the primary store {}",
            report.problems.len(),
            plural(report.problems.len()),
            root.display()
        );
    }
    Ok(())
}

/// One line per stream, one per problem (`FILE:LINE: kind: stream: what`), then a summary.
fn human(report: &VerifyReport) -> String {
    let mut out = String::new();
    for s in &report.streams {
        out.push_str(&stream_line(s));
        out.push_str(&writers_line(s));
        if let Some(t) = &s.torn_tail {
            out.push_str(&format!(
                "  incomplete last line at {}:{}: an append was cut short or is running; the next sync rewrites it\n",
                report.root.join(&t.file).display(),
                t.line
            ));
        }
    }
    for p in &report.problems {
        out.push_str(&format!(
            "{}:{}: {}: {}: {}\n",
            report.root.join(&p.file).display(),
            p.line,
            p.kind.as_str(),
            p.stream,
            p.message
        ));
    }
    let streams = report.streams.len();
    let verdict = if report.is_clean() {
        "no gaps, duplicates or out-of-order ids".to_string()
    } else {
        let n = report.problems.len();
        format!("{n} problem{}", plural(n))
    };
    out.push_str(&format!(
        "{}: {streams} stream{}, {} record{}: {verdict}\n",
        report.root.display(),
        plural(streams),
        report.records,
        plural(report.records as usize),
    ));
    out
}

fn stream_line(s: &StreamSummary) -> String {
    let epochs: Vec<String> = s.epochs.iter().map(u64::to_string).collect();
    let ids = match (&s.first_id, &s.last_id) {
        (Some(a), Some(b)) => format!(", ids {a}..{b}"),
        _ => String::new(),
    };
    format!(
        "{}: {} record{}, epoch{} {}{ids} ({} file{})\n",
        s.stream,
        s.records,
        plural(s.records as usize),
        plural(epochs.len()),
        if epochs.is_empty() {
            "none".to_string()
        } else {
            epochs.join(", ")
        },
        s.files,
        plural(s.files),
    )
}

/// Which node wrote which epoch, for a stream more than one node wrote to (leader election hands
/// a stream from node to node); nothing for a stream one node wrote, the common case.
fn writers_line(s: &StreamSummary) -> String {
    let first = s.writers.first().map(|w| &w.node);
    if s.writers.iter().all(|w| Some(&w.node) == first) {
        return String::new();
    }
    let each: Vec<String> = s
        .writers
        .iter()
        .map(|w| {
            format!(
                "epoch {} by {:?} ({} record{})",
                w.epoch,
                w.node,
                w.records,
                plural(w.records as usize)
            )
        })
        .collect();
    format!("  {}\n", each.join(", "))
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
