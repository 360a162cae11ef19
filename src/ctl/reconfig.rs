//! `reread` and `update`: the config file's difference from the running config, shown or applied.

use anyhow::bail;

use super::target::*;
use crate::control::proto::{Request, Response};

/// `reread` (show) and `update` (apply) the difference between the config file and the daemon's running config.
pub fn config_diff(t: &Target, apply: bool, json_out: bool) -> anyhow::Result<u8> {
    let req = if apply {
        Request::Update
    } else {
        Request::Reread
    };
    // The daemon reads the file it was started with, whatever -c says here: a -c that names
    // another file would have the user believe that file was checked or applied.
    let doc = match status_doc(t) {
        Ok(d) => d,
        Err(e) => return down(e, EXIT_DAEMON_DOWN),
    };
    let theirs = daemon_config_path(&doc);
    if t.config_read && !same_file(&t.config_path, &theirs) {
        let instead = match &t.config_error {
            Some(e) => format!("; {} does not load either: {e}", t.config_path.display()),
            None => format!(
                ", or restart the daemon with -c {}",
                t.config_path.display()
            ),
        };
        eprintln!(
            "fushi: the daemon reads its config from {}, not {}: edit that file and run `fushi {}` again{instead}",
            theirs.display(),
            t.config_path.display(),
            if apply { "update" } else { "reread" },
        );
        return Ok(EXIT_FAILURE);
    }
    let json = match t.call(&req) {
        Ok(Response::Json { json }) => json,
        Ok(other) => bail!("unexpected answer {other:?}"),
        Err(e) => return down(e, EXIT_DAEMON_DOWN),
    };
    if json_out {
        outln!("{json}");
        return Ok(EXIT_OK);
    }
    let d: serde_json::Value = serde_json::from_str(&json)?;
    let list = |k: &str| -> Vec<String> {
        d[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (added, removed, changed) = (list("added"), list("removed"), list("changed"));
    let restart = list("restart_needed");
    let collectors = [
        ("added", &added),
        ("removed", &removed),
        ("changed", &changed),
    ]
    .iter()
    .filter(|(_, l)| !l.is_empty())
    .map(|(k, l)| format!("{k} {}", l.join(", ")))
    .collect::<Vec<_>>();
    if !apply {
        for e in list("failed_reload") {
            outln!(
                "the last reload failed ({e}); the file loads now: `fushi update` applies it and clears the error"
            );
        }
    }
    match (collectors.is_empty(), apply) {
        (true, _) if restart.is_empty() => {
            outln!("no changes: the file matches the running config")
        }
        (true, _) => {}
        (false, true) => outln!("applied: {}", collectors.join("; ")),
        (false, false) => outln!("`fushi update` would apply: {}", collectors.join("; ")),
    }
    if !restart.is_empty() {
        outln!(
            "{}: {} (read at start only; restart the daemon, e.g. `systemctl restart fushi`)",
            if apply {
                "not applied, takes a daemon restart"
            } else {
                "takes a daemon restart"
            },
            restart.join(", ")
        );
    }
    Ok(EXIT_OK)
}
