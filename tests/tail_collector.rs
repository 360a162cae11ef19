//! The tail collector on real files: every line on the primary exactly once through a rename rotation, a copytruncate rotation and `kill -9`s at random points; inode reuse, truncation, a glob's new file, a partial last line and bad lines.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::*;

fn tail_config(path: &str, extra: &str) -> String {
    config(&format!(
        r#"[storage]
probe_interval = "100ms"

[sync]
interval = "100ms"

[[collector]]
name = "app"
kind = "tail"
path = "{path}"
glob_interval = "100ms"
partial_after = "500ms"
rotate_wait = "300ms"
{extra}
"#
    ))
}

/// Appends `{"k":K}` lines for each `k` of `ks` to `path` (created if need be).
fn append(path: &Path, ks: impl IntoIterator<Item = u64>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut text = String::new();
    for k in ks {
        text.push_str(&format!("{{\"k\":{k}}}\n"));
    }
    f.write_all(text.as_bytes()).unwrap();
}

/// logrotate's copytruncate: copy, then truncate the original in place (same inode).
fn copytruncate(log: &Path, to: &Path) {
    std::fs::copy(log, to).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(log)
        .unwrap()
        .set_len(0)
        .unwrap();
}

fn primary(env: &Env) -> PathBuf {
    env.data().join("primary")
}

/// How many times each `k` is on the primary.
fn counts(env: &Env) -> BTreeMap<u64, usize> {
    let mut c = BTreeMap::new();
    for v in primary_lines(&primary(env), "app") {
        if let Some(k) = v["data"]["k"].as_u64() {
            *c.entry(k).or_insert(0) += 1;
        }
    }
    c
}

/// Waits until every `k` below `n` is on the primary, then asserts each is there once. On a
/// timeout it says which are missing, with the daemon's log and checkpoint.
fn exactly_once(env: &Env, n: u64) {
    let logs = || {
        let mut names: Vec<PathBuf> = std::fs::read_dir(env.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("daemon.log"))
            })
            .collect();
        names.sort();
        let mut out = String::new();
        for p in names {
            out.push_str(&format!("== {}\n", p.display()));
            for l in std::fs::read_to_string(&p).unwrap_or_default().lines() {
                if l.contains("tail") {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    };
    let deadline = std::time::Instant::now() + TIMEOUT;
    let c = loop {
        let c = counts(env);
        if c.len() as u64 >= n {
            break c;
        }
        if std::time::Instant::now() > deadline {
            let missing: Vec<u64> = (0..n).filter(|k| !c.contains_key(k)).collect();
            panic!(
                "{} of {n} lines missing on the primary, from {:?} to {:?} ({:?}…)\ncheckpoint: {}\ntail logs:\n{}",
                missing.len(),
                missing.first(),
                missing.last(),
                &missing[..missing.len().min(20)],
                std::fs::read_to_string(env.data().join("tail/app.json")).unwrap_or_default(),
                logs()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let repeated: Vec<u64> = c.iter().filter(|(_, &n)| n > 1).map(|(k, _)| *k).collect();
    if !repeated.is_empty() {
        panic!(
            "{} lines on the primary more than once, from {:?} to {:?}\ntail logs:\n{}",
            repeated.len(),
            repeated.first(),
            repeated.last(),
            logs()
        );
    }
    let extra: Vec<_> = c.keys().filter(|&&k| k >= n).collect();
    assert!(extra.is_empty(), "lines never written: {extra:?}");
}

/// Waits until at least `n` lines are on the primary.
fn at_least(env: &Env, n: usize) {
    wait_for(&format!("{n} lines on the primary"), || {
        (counts(env).len() >= n).then_some(())
    });
}

#[test]
fn a_rename_rotation_then_kill_9_leaves_every_line_on_the_primary_once() {
    // A plain path, not a glob: the renamed file is out of reach and found by its inode.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let env = Env::new(&tail_config(&log.display().to_string(), ""));
    append(&log, 0..500);
    let mut d = env.start();
    at_least(&env, 100);
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, 500..1000);
    d.kill9();
    append(&log, 1000..1500);
    let mut d = env.start();
    exactly_once(&env, 1500);
    // The renamed file, read to its end, is let go.
    d.wait_audit("supervisor.child.started", "collectors/app", 1);
    wait_for("the rotated file to be released", || {
        d.log().contains("collector.tail.released").then_some(())
    });
    assert!(d.terminate().success());
}

#[test]
fn a_copytruncate_rotation_then_kill_9_leaves_every_line_on_the_primary_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let env = Env::new(&tail_config(
        &format!("{}/app.log*", dir.path().display()),
        "",
    ));
    append(&log, 0..2000);
    let mut d = env.start();
    at_least(&env, 1);
    copytruncate(&log, &dir.path().join("app.log.1"));
    append(&log, 2000..2500);
    at_least(&env, 2200);
    d.kill9();
    append(&log, 2500..3000);
    let mut d = env.start();
    exactly_once(&env, 3000);
    assert!(d.terminate().success());
}

#[test]
fn kill_9_at_random_points_while_files_rotate_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let env = Env::new(&tail_config(
        &format!("{}/app.log*", dir.path().display()),
        "",
    ));
    let mut k = 0u64;
    let mut rotation = 0;
    let mut d = env.start();
    for round in 0..6 {
        // Write in bursts, rotating now and then, one way or the other, and kill at a random
        // moment: in a batch's read, its checkpoint, its journal append, or between them.
        for _ in 0..rand::random_range(2..6) {
            let n = rand::random_range(50..800);
            append(&log, k..k + n);
            k += n;
            if rand::random_bool(0.3) {
                rotation += 1;
                let to = dir.path().join(format!("app.log.{rotation}"));
                eprintln!(
                    "at k {k}: {} to app.log.{rotation}",
                    if rotation % 2 == 0 {
                        "rename"
                    } else {
                        "copytruncate"
                    }
                );
                if rotation % 2 == 0 {
                    std::fs::rename(&log, &to).unwrap();
                } else {
                    copytruncate(&log, &to);
                }
            }
            std::thread::sleep(Duration::from_millis(rand::random_range(0..60)));
        }
        d.kill9();
        eprintln!("round {round}: killed at k {k}, {rotation} rotations");
        // Each start's log kept apart, for a failure to be read whole.
        let log = std::fs::File::create(env.path().join(format!("daemon.log.{round}"))).unwrap();
        d = env.start_with(|c| {
            c.stderr(log);
        });
    }
    exactly_once(&env, k);
    assert!(d.terminate().success());
}

#[test]
fn a_new_file_under_a_reused_inode_and_a_truncated_file_are_read_from_their_start() {
    // Every version of the file begins with the same header, as many logs do: the first line
    // alone cannot tell them apart.
    const HEADER: &str = "# app log, format 1\n";
    let write = |ks: std::ops::Range<u64>| {
        let body: String = ks.map(|k| format!("{{\"k\":{k}}}\n")).collect();
        format!("{HEADER}{body}")
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let env = Env::new(&tail_config(&log.display().to_string(), ""));
    std::fs::write(&log, write(0..10)).unwrap();
    let mut d = env.start();
    exactly_once(&env, 10);
    // Truncated in place and rewritten with more than was read: the bytes before the offset
    // tell.
    std::fs::write(&log, write(10..40)).unwrap();
    exactly_once(&env, 40);
    assert!(d.terminate().success());

    // While the daemon is down, the file is deleted and another created: ext4 and tmpfs give
    // it the freed inode.
    let ino = std::fs::metadata(&log).unwrap().ino();
    std::fs::remove_file(&log).unwrap();
    std::fs::write(&log, write(40..100)).unwrap();
    let reused = std::fs::metadata(&log).unwrap().ino() == ino;
    eprintln!("inode reused: {reused}");
    let mut d = env.start();
    exactly_once(&env, 100);
    let headers = primary_lines(&primary(&env), "app")
        .iter()
        .filter(|v| v["data"]["line"] == HEADER.trim_end())
        .count();
    assert_eq!(headers, 3, "each version's header once");
    assert!(d.terminate().success());
}

#[test]
fn a_file_matching_the_glob_is_picked_up_and_a_partial_last_line_waits_for_partial_after() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::new(&tail_config(&format!("{}/*.log", dir.path().display()), ""));
    let mut d = env.start();
    d.wait_audit("supervisor.child.started", "collectors/app", 1);
    append(&dir.path().join("a.log"), 0..5);
    exactly_once(&env, 5);
    append(&dir.path().join("b.log"), 5..10);
    exactly_once(&env, 10);
    // Not matching the glob: never read.
    append(&dir.path().join("c.txt"), 10..20);

    // A line without its newline: held while the writer may still finish it...
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("a.log"))
        .unwrap();
    f.write_all(b"{\"k\":10,\"half\":").unwrap();
    append(&dir.path().join("b.log"), 11..12);
    wait_for("the line after it in another file", || {
        counts(&env).contains_key(&11).then_some(())
    });
    assert!(!primary_lines(&primary(&env), "app")
        .iter()
        .any(|v| v["data"]["partial"] == true));
    // ...finished: one record, the whole line.
    f.write_all(b"true}\n").unwrap();
    let whole = wait_for("the finished line", || {
        primary_lines(&primary(&env), "app")
            .into_iter()
            .find(|v| v["data"]["half"] == true)
    });
    assert_eq!(whole["data"]["k"], 10);
    // A line never finished is kept as it is after partial_after, flagged.
    f.write_all(b"never finished").unwrap();
    let partial = wait_for("the partial line", || {
        primary_lines(&primary(&env), "app")
            .into_iter()
            .find(|v| v["data"]["partial"] == true)
    });
    assert_eq!(partial["data"]["line"], "never finished");
    assert!(counts(&env).keys().all(|&k| k < 12), "c.txt was not read");
    assert!(d.terminate().success());
}

#[test]
fn bad_lines_are_quarantined_counted_and_nothing_after_them_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let env = Env::new(&config(&format!(
        r#"[storage]
probe_interval = "100ms"
max_record_bytes = "1KiB"

[sync]
interval = "100ms"

[[collector]]
name = "app"
kind = "tail"
path = "{}"
"#,
        log.display()
    )));
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"{\"k\":0}\n");
    bytes.extend_from_slice(&vec![b'x'; 5000]);
    bytes.extend_from_slice(b"\n{\"k\":1}\n");
    bytes.extend_from_slice(b"caf\xe9 latin-1\n");
    bytes.extend_from_slice(b"plain text line\n42\n{\"k\":2}\r\n");
    // Numbers beyond f64 and keys out of order, to be kept as written.
    bytes.extend_from_slice(
        b"{\"z\":1,\"price\":123456789.123456789,\"id\":18446744073709551616,\"e\":1e400}\n",
    );
    std::fs::write(&log, bytes).unwrap();
    let mut d = env.start();
    exactly_once(&env, 3);
    let data: Vec<Value> = primary_lines(&primary(&env), "app")
        .into_iter()
        .map(|v| v["data"].clone())
        .collect();
    assert!(
        data.contains(&serde_json::json!({"line": "plain text line"})),
        "{data:?}"
    );
    assert!(
        data.contains(&serde_json::json!({"line": "42"})),
        "a JSON scalar is text: {data:?}"
    );
    // (serde_json writes the exponent with its sign: the same number.)
    let exact =
        r#""data":{"z":1,"price":123456789.123456789,"id":18446744073709551616,"e":1e+400}"#;
    wait_for("numbers and key order kept as the line had them", || {
        let raw: String = std::fs::read_dir(primary(&env).join("raw/app"))
            .ok()?
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        raw.contains(exact).then_some(())
    });
    let q = wait_for("two quarantined lines", || {
        let q = primary_lines(&primary(&env), "_quarantine");
        (q.len() >= 2).then_some(q)
    });
    let errors: Vec<&str> = q
        .iter()
        .map(|v| v["data"]["error"].as_str().unwrap())
        .collect();
    assert!(
        errors[0].contains("line of 5000 bytes exceeds max_record_bytes"),
        "{errors:?}"
    );
    assert_eq!(errors[1], "invalid UTF-8");
    assert!(q.iter().all(|v| v["data"]["collector"] == "collectors/app"));
    // Each says where its bytes are: the file and the offset of the line.
    assert_eq!(q[0]["data"]["offset"], 8, "{q:?}");
    assert_eq!(q[1]["data"]["file"], log.display().to_string(), "{q:?}");
    let status = json(&fushi(&env, &["status", "--json"]));
    let app = status["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "collectors/app")
        .cloned()
        .unwrap();
    assert_eq!(app["quarantined"], 2, "{app}");
    let text = stdout(&fushi(&env, &["status", "app"]));
    assert!(text.contains(" RECORDS   BAD  LAST ERROR"), "{text}");
    assert!(d.terminate().success());
}

#[test]
fn check_says_what_a_tail_pattern_matches_before_the_daemon_runs() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::new(&tail_config(&format!("{}/*.log", dir.path().display()), ""));
    let out = stdout(&fushi(&env, &["check"]));
    assert!(
        out.contains("ok   files collectors/app: ")
            && out.contains("matches no file yet; the collector waits for one"),
        "{out}"
    );
    append(&dir.path().join("a.log"), 0..1);
    append(&dir.path().join("b.log"), 0..1);
    let out = stdout(&fushi(&env, &["check"]));
    assert!(out.contains("matches 2 readable files"), "{out}");
    // A directory named where a file or a glob belongs.
    let env = Env::new(&tail_config(&dir.path().display().to_string(), ""));
    let out = stdout(&fushi(&env, &["check"]));
    assert!(
        out.contains("FAIL files collectors/app: ")
            && out.contains("is a directory, not a file: follow the files in it with a glob"),
        "{out}"
    );
}
