//! `scripts/stress` kept from rotting: a short two-node run against this build's binary with every fault kind of `scripts/inject-faults` once, judged by the script's own table.
//!
//! The script builds its world on real mounts (a bindfs primary over a tmpfs, loop-mounted ext4
//! data disks), so the test needs root, bindfs, /dev/fuse, losetup, mkfs.ext4 and python3, and
//! fails saying so without them. It holds the outage tests' lock: those time how fast an outage
//! is noticed, and this run would load the machine under them.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::*;

/// Every fault the injector knows, in the order the short run does them.
const FAULTS: &[&str] = &[
    "crash",
    "kill9",
    "kill-child",
    "freeze",
    "read-only",
    "primary-full",
    "disk-full",
    "config",
    "leader-kill",
];

/// The table's lines, by name, in order.
const LINES: &[&str] = &[
    "fatal_stops",
    "acknowledged",
    "lost",
    "duplicates",
    "mttr_p95",
    "manual_interventions",
    "rss_max",
    "verify",
    "audit_intact",
    "drained",
    "daemon_exits",
    "faults",
];

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
#[ignore = "needs root, bindfs, /dev/fuse, losetup, mkfs.ext4 and python3: scripts/test runs it (--include-ignored)"]
fn a_short_stress_run_with_every_fault_passes_its_table() {
    const TEST: &str = "stress::short_run";
    crate::outage::prerequisites(TEST);
    require(
        has("python3") && has("losetup") && has("mkfs.ext4"),
        TEST,
        "python3, losetup and mkfs.ext4 (apt-get install python3 mount e2fsprogs)",
    );
    let _serial = crate::outage::SERIAL
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let out = tempfile::tempdir().expect("creating the output dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/stress");
    let run = Command::new(&script)
        .args(["--duration", "40s", "--nodes", "2", "--seed", "7"])
        .args(["--faults", &FAULTS.join(",")])
        // Short holds, gaps and backoff steps keep nine faults within the run's 40 s.
        .args(["--hold", "2s", "--gap", "1s", "--backoff", "1s,2s,3s"])
        .arg("--bin")
        .arg(bin())
        .arg("--out")
        .arg(out.path())
        .stdin(Stdio::null())
        .output()
        .expect("running scripts/stress");
    let said = format!("{}{}", stdout(&run), stderr(&run));
    assert_eq!(run.status.code(), Some(0), "scripts/stress failed:\n{said}");

    let table: Value = serde_json::from_slice(
        &std::fs::read(out.path().join("table.json")).expect("reading table.json"),
    )
    .expect("table.json is JSON");
    assert_eq!(table["pass"], true, "{table}");
    let lines = table["lines"].as_array().expect("lines");
    let names: Vec<&str> = lines.iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(names, LINES, "the table's lines:\n{said}");
    for l in lines {
        assert_eq!(l["pass"], true, "{l}\n{said}");
        assert!(
            l["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "every line says what it measured: {l}"
        );
    }
    // Only a run that acknowledged records can claim none was lost.
    let acked = lines.iter().find(|l| l["name"] == "acknowledged").unwrap();
    assert!(acked["value"].as_u64().is_some_and(|n| n > 0), "{acked}");
    let mttr = lines.iter().find(|l| l["name"] == "mttr_p95").unwrap();
    assert!(
        mttr["detail"]
            .as_str()
            .is_some_and(|d| d.contains("(backoff 1s→2s→3s)")),
        "MTTR is stated beside the configured backoff: {mttr}"
    );

    // Every fault kind was attempted once, in the listed order, and recovered from.
    let log = std::fs::read_to_string(out.path().join("faults.jsonl")).expect("faults.jsonl");
    let mut last: BTreeMap<u64, Value> = BTreeMap::new();
    for l in log.lines() {
        let v: Value = serde_json::from_str(l).expect("a fault line is JSON");
        last.insert(v["id"].as_u64().expect("id"), v);
    }
    let kinds: Vec<&str> = last.values().filter_map(|v| v["fault"].as_str()).collect();
    assert_eq!(kinds, FAULTS, "{log}");
    for v in last.values() {
        assert_eq!(v["ok"], true, "{v}");
        for field in ["ts", "target", "detail", "ended", "recovered"] {
            assert!(v[field].is_string(), "{field} of {v}");
        }
    }
}
