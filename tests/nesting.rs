//! Deeply nested records through a listen socket: the deepest the primary can hold is stored once across restarts and verifies clean; one level deeper is refused and quarantined.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};

use crate::util::*;

/// `{"k":k,"d":[{"a":[…1…]}]}`: data nested `levels` deep in all.
fn nested_record(k: u64, levels: usize) -> String {
    let mut inner = String::from("1");
    for i in 0..levels - 1 {
        inner = match i % 2 {
            0 => format!("[{inner}]"),
            _ => format!("{{\"a\":{inner}}}"),
        };
    }
    format!("{{\"k\":{k},\"d\":{inner}}}\n")
}

/// Sends `lines` on one connection and returns the replies up to the ack of the last.
fn send(env: &Env, lines: &[String]) -> Vec<Value> {
    let conn = UnixStream::connect(env.path().join("in.sock")).expect("connecting to in.sock");
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    (&conn).write_all(lines.concat().as_bytes()).unwrap();
    let mut r = BufReader::new(&conn);
    let mut replies = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("a reply");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let done = v["ack"].as_u64() == Some(lines.len() as u64);
        replies.push(v);
        if done {
            return replies;
        }
    }
}

/// Starts the daemon for the `run`th time and waits for its listen collector.
fn started(env: &Env, run: usize) -> Daemon {
    let mut d = env.start();
    d.wait_audit("supervisor.child.started", "collectors/in", run);
    d
}

#[test]
fn the_deepest_record_the_primary_holds_is_stored_once_and_one_level_deeper_is_quarantined() {
    let env = Env::new(&listen_config(""));
    let primary = env.data().join("primary");
    let mut d = started(&env, 1);
    let replies = send(
        &env,
        &[
            nested_record(1, 126),
            nested_record(2, 127),
            "{\"k\":3}\n".into(),
        ],
    );
    let errors: Vec<&Value> = replies
        .iter()
        .filter(|v| v.get("error").is_some())
        .collect();
    assert_eq!(errors.len(), 1, "{replies:?}");
    assert_eq!(errors[0]["line"], 2, "{replies:?}");
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("nested more than 126"),
        "{replies:?}"
    );
    wait_for("records 1 and 3 on the primary", || {
        (primary_ks(&primary, "test/k") == [1, 3]).then_some(())
    });
    let quarantined = wait_for("the refused record on _quarantine", || {
        primary_lines(&env.data().join("primary"), "_quarantine").pop()
    });
    assert_eq!(quarantined["data"]["stream"], "test/k");
    assert_eq!(
        quarantined["data"]["line"]
            .as_str()
            .map(|l| format!("{l}\n")),
        Some(nested_record(2, 127))
    );

    // Each restart resumes after what the primary holds: the deep record is never sent again.
    for (run, k) in [(2, 4), (3, 5)] {
        assert!(d.terminate().success());
        d = started(&env, run);
        send(&env, &[format!("{{\"k\":{k}}}\n")]);
        wait_for(&format!("record {k} on the primary"), || {
            primary_ks(&primary, "test/k").contains(&k).then_some(())
        });
    }
    assert_eq!(primary_ks(&primary, "test/k"), [1, 3, 4, 5]);
    let deep = &primary_lines(&env.data().join("primary"), "test/k")[0];
    let expected: Value = serde_json::from_str(&nested_record(1, 126)).unwrap();
    assert_eq!(deep["data"], expected);
    assert!(d.terminate().success());

    let out = Command::new(bin())
        .args(["verify", "--json", "-c"])
        .arg(env.config())
        .current_dir(env.path())
        .stdin(Stdio::null())
        .output()
        .expect("running fushi verify");
    let v: Value = serde_json::from_slice(&out.stdout).expect("verify --json prints JSON");
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
}
