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

#[cfg(test)]
mod tests {
    use super::super::{Attempt, ChannelSpec, Failure, Kind};
    use crate::alert::mask::Masker;
    use crate::alert::message::{Message, Wording};
    use crate::faults::{arm, disarm, Op};
    use std::time::Duration;

    fn spec(path: &std::path::Path) -> ChannelSpec {
        ChannelSpec {
            name: "file".into(),
            kind: Kind::File {
                path: path.to_path_buf(),
            },
            events: vec![],
            wording: Wording::default(),
            timeout: Duration::from_secs(10),
            min_interval: Duration::ZERO,
        }
    }

    #[tokio::test]
    async fn a_line_per_message_and_a_failing_write_or_fsync_is_a_failure_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let message = Message {
            id: 9,
            at_ms: 0,
            items: vec![],
        };
        let masker = Masker::new(["tok-1234".to_string()]);
        let a = Attempt {
            message: &message,
            items: vec![],
            text: "leaked tok-1234".into(),
            masker: &masker,
        };
        spec(&path).attempt(&a).await.unwrap();
        let line: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
        assert_eq!(line["id"], 9);
        assert_eq!(line["text"], "leaked ***");

        arm(Op::Fsync, dir.path(), 0, 1, 5);
        let r = spec(&path).attempt(&a).await;
        disarm(dir.path());
        assert!(
            matches!(&r, Err(Failure::Failed(e)) if e.starts_with(&format!("appending to {}", path.display()))),
            "{r:?}"
        );
        let missing = dir.path().join("no/such/dir/a.jsonl");
        assert!(matches!(
            spec(&missing).attempt(&a).await,
            Err(Failure::Failed(_))
        ));
    }
}
