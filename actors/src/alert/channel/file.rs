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
    // The channel's timeout bounds the wait; a thread stuck on a hung mount finishes on its
    // own. Until it does, no further attempt takes another thread of the blocking pool: a
    // retry would only get stuck beside it, and enough of them would starve the daemon's
    // other blocking work.
    let Some(busy) = Busy::claim(&path) else {
        return Err(Failure::Failed(format!(
            "the last write to {} has not returned yet: is its filesystem hung?",
            path.display()
        )));
    };
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let _busy = busy;
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

/// The files a write is in flight to, so that a hung one holds one blocking thread, not one
/// per attempt.
static IN_FLIGHT: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// A write to one file in flight: held by the blocking job, released when it returns.
struct Busy(std::path::PathBuf);

impl Busy {
    fn lock() -> std::sync::MutexGuard<'static, Vec<std::path::PathBuf>> {
        IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The claim on writing `path`, unless a write to it is in flight.
    fn claim(path: &Path) -> Option<Busy> {
        let mut g = Self::lock();
        if g.iter().any(|p| p == path) {
            return None;
        }
        g.push(path.to_path_buf());
        Some(Busy(path.to_path_buf()))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut g = Self::lock();
        if let Some(i) = g.iter().position(|p| *p == self.0) {
            g.swap_remove(i);
        }
    }
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

        // A write still in flight (a hung mount) holds back the next attempt without a thread.
        let stuck = super::Busy::claim(&path).unwrap();
        let r = spec(&path).attempt(&a).await;
        assert!(
            matches!(&r, Err(Failure::Failed(e)) if e.contains("has not returned yet")),
            "{r:?}"
        );
        drop(stuck);
        spec(&path).attempt(&a).await.unwrap();
    }
}
