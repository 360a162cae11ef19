//! `slo`: every SLO gate's phase, promotability and windows (from the daemon); `slo promote NAME`; `slo --dry-run --fixture FILE` judges a file of the primary's raw lines offline.
//!
//! The dry run uses the analyzer's own evaluation (`fushi_actors::slo::window::evaluate`), so what
//! it prints for a file is what the daemon would judge for the same records, seen arriving in
//! file order. It needs no daemon and runs no rollback.

use anyhow::{bail, Context};
use fushi_actors::records::StoredRecord;
use fushi_actors::slo::window::{evaluate, Judged, Verdict};
use fushi_actors::slo::Phase;
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::Path;

use super::target::*;
use crate::config::Config;
use crate::control::proto::{Request, Response};

/// Reads a fixture: every non-blank line must be a record line of `raw/<stream>/<day>.jsonl`.
fn read_fixture(path: &Path) -> anyhow::Result<Vec<StoredRecord>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("opening fixture {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}:{}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: StoredRecord = serde_json::from_str(&line).map_err(|e| {
            // serde counts lines within the one line it was given: only its column means much.
            let e = e
                .to_string()
                .replace(&format!("at line {} column", e.line()), "at column");
            anyhow::anyhow!(
                "{}:{}: not a record line of the primary's raw format ({e}); each line is one \
                 object like {{\"id\":\"1.1\",\"epoch\":1,\"seq\":1,\"ts\":\"2026-11-21T10:00:00.000Z\",\
                 \"stream\":\"app/save\",\"node\":\"pc\",\"data\":{{…}}}}",
                path.display(),
                i + 1
            )
        })?;
        if fushi_actors::slo::window::parse_ts(&rec.ts).is_none() {
            bail!(
                "{}:{}: ts {:?} is not an RFC 3339 timestamp (e.g. 2026-11-21T10:00:00.123Z)",
                path.display(),
                i + 1,
                rec.ts
            );
        }
        out.push(rec);
    }
    Ok(out)
}

fn window_json(j: &Judged) -> Value {
    let mut w = json!({"start": j.start, "end": j.end, "value": j.value, "threshold": j.threshold,
           "verdict": j.verdict.as_str()});
    // Only when some were: records the gate could not measure (no such field, not a number).
    if j.skipped > 0 {
        w["skipped"] = json!(j.skipped);
    }
    w
}

fn shown(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    })
}

/// `fushi slo --dry-run --fixture FILE [--phase P] [--json]`: exit 0 when no window violates,
/// 1 when one does (a gate that would fail), so a script can gate on it.
pub fn dry_run(
    config: &Path,
    fixture: &Path,
    phase: Option<&str>,
    json_out: bool,
) -> anyhow::Result<u8> {
    let (cfg, _) = Config::load(config)?;
    let phase = match phase {
        Some(p) => match Phase::parse(p) {
            Some(p) => Some(p),
            None => {
                eprintln!("fushi: --phase {p:?} is no phase: use A, B or C");
                return Ok(EXIT_USAGE);
            }
        },
        None => None,
    };
    if cfg.slos.is_empty() {
        bail!(
            "{} has no [[slo]]: there is nothing to evaluate (see the commented [[slo]] example in the default supervisor.toml)",
            config.display()
        );
    }
    let records = match read_fixture(fixture) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fushi: {e:#}");
            return Ok(EXIT_USAGE);
        }
    };
    let mut slos = Vec::new();
    let mut violated = false;
    for slo in &cfg.slos {
        let spec = slo.spec();
        let phase = phase.unwrap_or(spec.phase);
        let Some(threshold) = spec.threshold(phase) else {
            bail!(
                "SLO {} has no threshold for phase {phase} in {}",
                spec.name,
                config.display()
            );
        };
        let mine = records
            .iter()
            .filter(|r| r.stream == spec.stream)
            .map(|r| (r.ts.as_str(), &r.data));
        let windows = evaluate(&spec, phase, mine)
            .with_context(|| format!("evaluating {}", fixture.display()))?;
        violated |= windows.iter().any(|j| j.verdict == Verdict::Violation);
        let listed: Vec<Value> = if windows.is_empty() {
            // No record of the stream at all: one window without a span says so.
            vec![
                json!({"start": null, "end": null, "value": null, "threshold": threshold,
                        "verdict": Verdict::NoData.as_str()}),
            ]
        } else {
            windows.iter().map(window_json).collect()
        };
        if !json_out {
            outln!(
                "{} ({} of {} on {}, phase {phase}, threshold {}):",
                spec.name,
                spec.kind.as_str(),
                spec.metric(),
                spec.stream,
                shown(Some(threshold))
            );
            if windows.is_empty() {
                outln!(
                    "  no_data    no record of {} in {}",
                    spec.stream,
                    fixture.display()
                );
            }
            for j in &windows {
                let skipped = if j.skipped > 0 {
                    format!(
                        "; {} record{} without a numeric {} skipped",
                        j.skipped,
                        if j.skipped == 1 { "" } else { "s" },
                        spec.metric()
                    )
                } else {
                    String::new()
                };
                outln!(
                    "  {} – {}  {:<9}  {:>10}  {}{skipped}",
                    j.start,
                    j.end,
                    j.verdict.as_str(),
                    shown(j.value),
                    j.why
                );
            }
        }
        slos.push(
            json!({"name": spec.name, "stream": spec.stream, "kind": spec.kind.as_str(),
                         "phase": phase.as_str(), "windows": listed}),
        );
    }
    if json_out {
        outln!("{}", json!({ "slos": slos }));
    }
    Ok(if violated { EXIT_FAILURE } else { EXIT_OK })
}

/// `fushi slo [--json]`: every gate as the daemon holds it. Exit 0, 1 when a gate is in an
/// open incident, 7 when the daemon does not answer.
pub fn show(t: &Target, json_out: bool) -> anyhow::Result<u8> {
    let doc: Value = match t.call(&Request::Slo) {
        Ok(Response::Json { json }) => {
            serde_json::from_str(&json).context("reading the daemon's SLO document")?
        }
        Ok(Response::Error { message }) => {
            eprintln!("fushi: {message}");
            return Ok(EXIT_FAILURE);
        }
        Ok(other) => bail!("unexpected answer {other:?}"),
        Err(e) => return down(e, EXIT_DAEMON_DOWN),
    };
    let slos = doc["slos"].as_array().cloned().unwrap_or_default();
    let open = slos.iter().any(|s| !s["incident"].is_null());
    if json_out {
        outln!("{doc}");
        return Ok(if open { EXIT_FAILURE } else { EXIT_OK });
    }
    for s in &slos {
        let promotable = if s["promotable"] == true {
            format!(
                "promotable ({} consecutive ok windows; `fushi slo promote {}`)",
                s["good_windows"],
                s["name"].as_str().unwrap_or("")
            )
        } else {
            format!(
                "{} of {} ok windows to promotion",
                s["good_windows"], s["promote_after"]
            )
        };
        outln!(
            "{}  phase {}  {} of {} on {}  {promotable}",
            s["name"].as_str().unwrap_or(""),
            s["phase"].as_str().unwrap_or(""),
            s["kind"].as_str().unwrap_or(""),
            s["metric"].as_str().unwrap_or(""),
            s["stream"].as_str().unwrap_or("")
        );
        if let Some(inc) = s["incident"].as_object() {
            outln!(
                "  incident {} open since {} (window {}){}",
                inc["id"].as_str().unwrap_or(""),
                inc["opened_at"].as_str().unwrap_or(""),
                inc["window"].as_str().unwrap_or(""),
                match inc.get("rollback") {
                    Some(r) if r.is_object() => format!(
                        "; rollback {}",
                        if r["interrupted"] == true {
                            "interrupted (not run again)".to_string()
                        } else if r["finished_at"].is_null() {
                            "running".to_string()
                        } else {
                            format!("exit {}", r["exit_code"])
                        }
                    ),
                    _ => String::new(),
                }
            );
        }
        let cur = &s["current"];
        if cur.is_object() {
            outln!(
                "  current  {} – {}  {} records so far",
                cur["start"].as_str().unwrap_or(""),
                cur["end"].as_str().unwrap_or(""),
                cur["records"]
            );
        }
        let windows = s["windows"].as_array().cloned().unwrap_or_default();
        if windows.is_empty() {
            outln!("  no window judged yet");
        }
        // The newest last, at most a dozen: `--json` has them all.
        for w in windows.iter().skip(windows.len().saturating_sub(12)) {
            outln!(
                "  {} – {}  {:<9}  {:>10}  threshold {}",
                w["start"].as_str().unwrap_or(""),
                w["end"].as_str().unwrap_or(""),
                w["verdict"].as_str().unwrap_or(""),
                shown(w["value"].as_f64()),
                shown(w["threshold"].as_f64())
            );
        }
    }
    Ok(if open { EXIT_FAILURE } else { EXIT_OK })
}

/// `fushi slo promote NAME`: exit 0 once moved on, 1 when refused (not promotable, no such
/// gate), 7 when the daemon does not answer.
pub fn promote(t: &Target, name: String) -> anyhow::Result<u8> {
    super::simple::simple(t, Request::SloPromote { name })
}
