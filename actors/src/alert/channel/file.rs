//! The file channel: one JSON line per message, appended and fsynced, on the blocking pool.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::{Attempt, ChannelSpec, Failure};
use crate::clock;
use crate::faults::{check, Op};

pub(super) async fn append(
    spec: &ChannelSpec,
    path: &Path,
    a: &Attempt<'_>,
) -> Result<(), Failure> {
    let mut line = json!({
        "ts": clock::now_rfc3339(),
        "id": a.message.id,
        "node": spec.wording.node,
        "status": if a.items.iter().any(|i| i.firing()) { "firing" } else { "resolved" },
        "text": a.text,
        "alerts": a.items.iter().map(|i| json!({
            "id": i.id, "template": i.alert.template(), "class": i.alert.class().name(),
            "actor": i.alert.actor(), "firing": i.firing(), "text": i.text(&spec.wording),
            "alert": i.alert,
        })).collect::<Vec<_>>(),
    });
    a.masker.value(&mut line);
    let mut bytes = line.to_string().into_bytes();
    bytes.push(b'\n');
    let path = path.to_path_buf();
    // The channel's timeout bounds the wait; a thread stuck on a hung mount finishes on its own.
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        check(Op::Open, &path)?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        check(Op::Write, &path)?;
        f.write_all(&bytes)?;
        check(Op::Fsync, &path)?;
        f.sync_data()
    })
    .await
    .map_err(|e| Failure::Failed(format!("appending the alert: {e}")))?
    .map_err(|e| Failure::Failed(format!("appending to {}: {e}", path_display(spec))))
}

fn path_display(spec: &ChannelSpec) -> String {
    match &spec.kind {
        super::Kind::File { path } => path.display().to_string(),
        _ => spec.name.clone(),
    }
}
