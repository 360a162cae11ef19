//! `fushi verify` against primary files written by hand, with no daemon running: exit codes, human lines and the --json shape.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::util::*;

fn env() -> Env {
    Env::new(&config("[storage]\nprimary = \"data/primary\"\n"))
}

fn primary(env: &Env) -> PathBuf {
    env.data().join("primary")
}

fn record(stream: &str, epoch: u64, seq: u64, day: &str) -> String {
    let r = json!({"id": format!("{epoch}.{seq}"), "epoch": epoch, "seq": seq,
        "ts": format!("{day}T10:00:00.000Z"), "stream": stream, "node": "test-node",
        "data": {"n": seq}});
    format!("{r}\n")
}

/// Writes `raw/<stream>/<day>.jsonl` with the given (epoch, seq) ids, in order.
fn day_file(env: &Env, stream: &str, day: &str, ids: &[(u64, u64)]) {
    let dir = primary(env).join("raw").join(stream);
    std::fs::create_dir_all(&dir).unwrap();
    let text: String = ids
        .iter()
        .map(|&(e, s)| record(stream, e, s, day))
        .collect();
    std::fs::write(dir.join(format!("{day}.jsonl")), text).unwrap();
}

fn verify(env: &Env, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("verify")
        .args(args)
        .arg("-c")
        .arg(env.config())
        .current_dir(env.path())
        .stdin(Stdio::null())
        .output()
        .expect("running fushi verify")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_clean_primary_exits_0_with_a_line_per_stream_and_json_to_match() {
    let env = env();
    day_file(&env, "binance/trades", "2026-11-20", &[(1, 1), (1, 2)]);
    day_file(&env, "binance/trades", "2026-11-21", &[(1, 3), (2, 1)]);
    day_file(&env, "binance", "2026-11-21", &[(1, 1)]);

    let out = verify(&env, &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("binance/trades: 4 records, epochs 1, 2, ids 1.1..2.1 (2 files)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("binance: 1 record, epoch 1, ids 1.1..1.1 (1 file)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 streams, 5 records: no gaps, duplicates or out-of-order ids"),
        "{stdout}"
    );

    let out = verify(&env, &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(v["records"], 5);
    assert_eq!(v["problems"], json!([]));
    assert_eq!(
        v["root"].as_str().map(PathBuf::from),
        Some(primary(&env)),
        "{v}"
    );
    let trades = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == "binance/trades")
        .expect("a summary per stream");
    assert_eq!(trades["records"], 4);
    assert_eq!(trades["files"], 2);
    assert_eq!(trades["epochs"], json!([1, 2]));
    assert_eq!(trades["first_id"], "1.1");
    assert_eq!(trades["last_id"], "2.1");
}

#[test]
fn gaps_duplicates_and_out_of_order_ids_exit_1_each_reported_with_file_and_line() {
    let env = env();
    // 1.3 missing (gap), 1.2 written twice (duplicate), 1.5 before 1.4 (out of order).
    day_file(
        &env,
        "s",
        "2026-11-21",
        &[(1, 1), (1, 2), (1, 2), (1, 4), (1, 6), (1, 5), (1, 7)],
    );
    let file = primary(&env).join("raw/s/2026-11-21.jsonl");
    let file = file.display();

    let out = verify(&env, &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    for want in [
        format!("{file}:3: duplicate: s: id 1.2 seen before"),
        format!(
            "{file}:4: gap: s: epoch 1: seq 3 missing (1 record) between 1.2 ({}) and 1.4",
            "raw/s/2026-11-21.jsonl:2"
        ),
        format!("{file}:6: out-of-order: s: id 1.5 after 1.6 (the seq goes backwards)"),
        "3 problems".to_string(),
    ] {
        assert!(stdout.contains(&want), "missing {want:?} in:\n{stdout}");
    }
    assert!(
        stderr.contains("3 problems on the primary store"),
        "{stderr}"
    );

    let out = verify(&env, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: Vec<(String, u64)> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                p["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("duplicate".to_string(), 3),
            ("gap".to_string(), 4),
            ("out_of_order".to_string(), 6)
        ]
    );
    assert_eq!(v["problems"][1]["file"], "raw/s/2026-11-21.jsonl");
    assert_eq!(v["problems"][1]["stream"], "s");
    assert_eq!(v["problems"][1]["count"], 1);
}

/// With leader election, a fenced leader's late records of epoch 1 follow the new leader's of
/// epoch 2 in one file: no problem, and the stream says who wrote which epoch. A second node
/// writing in an epoch someone else wrote is one, named with both nodes.
#[test]
fn two_nodes_interleaved_by_epoch_are_clean_and_two_writers_in_one_epoch_are_not() {
    let env = env();
    let dir = primary(&env).join("raw/s");
    std::fs::create_dir_all(&dir).unwrap();
    let by = |node: &str, epoch: u64, seq: u64| {
        let r = json!({"id": format!("{epoch}.{seq}"), "epoch": epoch, "seq": seq,
            "ts": "2026-11-21T10:00:00.000Z", "stream": "s", "node": node, "data": {"n": seq}});
        format!("{r}\n")
    };
    let path = dir.join("2026-11-21.jsonl");
    let clean = [by("a", 1, 1), by("b", 2, 1), by("a", 1, 2), by("b", 2, 2)].concat();
    std::fs::write(&path, &clean).unwrap();
    let out = verify(&env, &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("  epoch 1 by \"a\" (2 records), epoch 2 by \"b\" (2 records)"),
        "{stdout}"
    );
    std::fs::write(&path, clean + &by("a", 2, 3)).unwrap();
    let out = verify(&env, &[]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let want = format!(
        "{}:5: two-writers: s: id 2.3 from node \"a\" in epoch 2, whose first record here is node \"b\"'s (raw/s/2026-11-21.jsonl:2): two writers in one epoch",
        path.display()
    );
    assert!(stdout.contains(&want), "missing {want:?} in:\n{stdout}");
}

#[test]
fn an_unparseable_line_is_reported_with_its_file_and_line() {
    let env = env();
    day_file(&env, "s", "2026-11-21", &[(1, 1)]);
    let path = primary(&env).join("raw/s/2026-11-21.jsonl");
    let mut lines = std::fs::read_to_string(&path).unwrap();
    lines.push_str("{\"id\": oops\n");
    lines.push_str(&record("s", 1, 2, "2026-11-21"));
    std::fs::write(&path, lines).unwrap();

    let out = verify(&env, &[]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains(&format!(
            "{}:2: unparseable: s: not a record: ",
            path.display()
        )),
        "{stdout}"
    );
}

#[test]
fn a_missing_primary_is_a_clear_error_not_a_clean_report() {
    let env = env();
    let out = verify(&env, &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "primary store {} does not exist; is the NAS mounted?",
            primary(&env).display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_broken_config_exits_78() {
    let env = Env::new("[storage]\nprimery = \"x\"\n");
    let out = verify(&env, &["--json"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out).1.contains("primery"));
}
