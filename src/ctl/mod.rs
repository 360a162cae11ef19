//! The control commands (`status`, `start`, `stop`, `restart`, `health`, `tail`, `audit`, `check`, `bundle`, …): talk to the daemon and print for people or, with `--json`, for scripts.
//!
//! Exit codes are part of the contract: 0 ok; 1 failure; 3 `status` found a selected actor (or
//! the daemon) not running, like supervisorctl; 7 the daemon is not running (other commands, as
//! LSB init scripts); `health` 0 healthy, 1 degraded, 2 critical; 78 config error.

mod bundle;
mod check;
mod install_unit;
mod leader;
mod logs;
mod names;
mod reconfig;
mod simple;
mod slo;
mod status;
mod sync;
mod target;
mod words;

pub use bundle::{bundle, Options as BundleOptions};
pub use check::check;
pub use install_unit::{install_unit, Elsewhere};
pub use leader::leader;
pub use logs::{audit, tail};
pub use names::resolve_names;
pub use reconfig::config_diff;
pub use simple::{pid, show_mode, simple};
pub use slo::{dry_run as slo_dry_run, promote as slo_promote, show as slo_show};
pub use status::{control, health, status};
pub use sync::{sync, SyncAction};
pub(crate) use target::audit_dir;
pub use target::{Target, EXIT_OK};
pub(crate) use words::records;

#[cfg(test)]
mod tests {
    use super::logs::glob;
    use super::names::*;
    use super::sync::*;
    use fushi_actors::board::PrimaryState;

    #[test]
    fn selection_and_globs() {
        assert!(selects("collectors/*", "collectors/a"));
        assert!(!selects("collectors/*", "collectors"));
        assert!(!selects("collectors/*", "collectorsx/a"));
        assert!(selects("all", "storage"));
        assert!(glob("supervisor.child.*", "supervisor.child.failed"));
        assert!(glob("*.switch", "collector.storage.switch"));
        assert!(glob("a*b*c", "a-x-b-y-c"));
        assert!(!glob("supervisor.*", "daemon.started"));
        assert!(glob("daemon.started", "daemon.started"));
    }

    #[test]
    fn sync_keeps_up_until_the_oldest_record_outwaits_the_patience_limit() {
        let board = fushi_actors::board::StatusBoard::new("n", "prod", "c.toml");
        let mut doc = board.snapshot().0;
        doc.storage.primary = PrimaryState::Up;
        assert!(sync_verdict(&doc, false).0, "nothing waits");
        doc.storage.lag_records = 12;
        doc.patience.limit_ms = 23_000;
        doc.patience.lag_age_ms = 1_000;
        let (ok, text) = sync_verdict(&doc, false);
        assert!(
            ok && text.contains("12 records wait") && text.contains("keeps up"),
            "{text}"
        );
        doc.patience.lag_age_ms = 24_000;
        let (ok, text) = sync_verdict(&doc, false);
        assert!(
            !ok && text.contains("the oldest for 24s") && text.contains("23s"),
            "{text}"
        );
        doc.storage.primary = PrimaryState::Down;
        let (ok, text) = sync_verdict(&doc, false);
        assert!(!ok && text.contains("the primary is down"), "{text}");
        doc.sync.conflict = Some("record 1.3 of a/b differs".into());
        let (ok, text) = sync_verdict(&doc, false);
        assert!(
            !ok && text.contains("forwarding stopped: record 1.3"),
            "{text}"
        );
    }

    #[test]
    fn short_names_resolve_when_unambiguous() {
        let known = [
            "collectors",
            "collectors/a",
            "collectors/web/a",
            "collectors/web/b",
        ];
        let one = |n: &str| resolve_one(&known, n.to_string()).map_err(|e| e.to_string());
        assert_eq!(one("b").unwrap(), "collectors/web/b");
        assert_eq!(one("web/a").unwrap(), "collectors/web/a");
        assert_eq!(one("collectors/a").unwrap(), "collectors/a");
        assert_eq!(one("collectors/*").unwrap(), "collectors/*");
        assert_eq!(one("all").unwrap(), "all");
        let e = one("a").unwrap_err();
        assert!(
            e.contains("ambiguous") && e.contains("collectors/web/a"),
            "{e}"
        );
        let e = one("nosuch").unwrap_err();
        assert!(e.contains("known: collectors, collectors/a"), "{e}");
        // A name is a whole part: "b" is not the end of "web".
        assert!(one("eb/b").is_err());
    }
}
