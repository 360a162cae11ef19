//! `fushi bundle`: the archive unpacked with the system's tar and read file by file — every part there and true, no secret anywhere — with the daemon running, killed and stopped, logging to text and to journald, a hung primary, and output dirs it cannot write.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::*;

/// Every file a bundle holds, whatever could be gathered.
const PARTS: &[&str] = &[
    "manifest.json",
    "handover.md",
    "status.json",
    "config.toml",
    "audit.jsonl",
    "logs.txt",
    "journal.json",
    "verify.txt",
    "verify.json",
    "report.txt",
    "report.json",
    "check.txt",
];

fn sha256_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    format!("{:x}", Sha256::digest(&bytes))
}

/// `fushi bundle --json --out OUT ARGS`, run from the env's dir.
fn bundle(env: &Env, out: &Path, args: &[&str]) -> Output {
    let mut all = vec![
        "bundle",
        "--json",
        "--out",
        out.to_str().expect("a UTF-8 temp path"),
    ];
    all.extend_from_slice(args);
    fushi(env, &all)
}

/// A bundle that was written: its path from the command's JSON, unpacked with `tar -xzf` into
/// a fresh dir, and that dir's single top directory.
struct Unpacked {
    archive: PathBuf,
    printed: Value,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Unpacked {
    fn of(out: &Output) -> Self {
        assert!(
            !out.stdout.is_empty(),
            "fushi bundle printed nothing: {}\n{}",
            out.status,
            stderr(out)
        );
        let printed = json(out);
        let archive = PathBuf::from(printed["path"].as_str().expect("path"));
        let name = archive.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with("fushi-bundle-") && name.ends_with(".tar.gz"),
            "{name}"
        );
        let dir = tempfile::tempdir().expect("a temp dir to unpack in");
        let tar = Command::new("tar")
            .arg("-xzf")
            .arg(&archive)
            .arg("-C")
            .arg(dir.path())
            .output()
            .expect("running tar");
        assert!(tar.status.success(), "tar -xzf: {}", stderr(&tar));
        let tops: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(tops.len(), 1, "one top directory: {tops:?}");
        assert_eq!(
            format!("{}.tar.gz", tops[0].file_name().unwrap().to_str().unwrap()),
            name,
            "the top directory is named as the archive"
        );
        Self {
            archive,
            printed,
            root: tops[0].clone(),
            _dir: dir,
        }
    }

    fn text(&self, file: &str) -> String {
        std::fs::read_to_string(self.root.join(file))
            .unwrap_or_else(|e| panic!("{file} in the bundle: {e}"))
    }

    fn json(&self, file: &str) -> Value {
        serde_json::from_str(&self.text(file))
            .unwrap_or_else(|e| panic!("{file} is not JSON ({e}):\n{}", self.text(file)))
    }

    fn manifest_part(&self, file: &str) -> Value {
        self.json("manifest.json")["parts"]
            .as_array()
            .expect("parts")
            .iter()
            .find(|p| p["file"] == file)
            .unwrap_or_else(|| panic!("{file} not in the manifest's parts"))
            .clone()
    }

    /// Every file of the unpacked tree, with its bytes.
    fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut dirs = vec![self.root.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    let bytes = std::fs::read(&p).unwrap();
                    out.push((p, bytes));
                }
            }
        }
        out
    }

    fn assert_every_part_there(&self) {
        for p in PARTS {
            assert!(self.root.join(p).is_file(), "{p} missing from the bundle");
        }
    }
}

/// The audit record of the bundle at `archive`, from `data/audit.jsonl`.
fn bundle_record(env: &Env, archive: &Path) -> Value {
    let audit = env.audit();
    events(&audit, "handover.bundle.create", "")
        .into_iter()
        .find(|e| e["payload"]["path"] == archive.to_str().unwrap())
        .unwrap_or_else(|| panic!("no handover.bundle.create for {}", archive.display()))
        .clone()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn no_secret_of_the_config_is_anywhere_in_the_bundle() {
    // Each secret is also echoed by a collector to its stderr, so it reaches the log ring and
    // the audit log raw: masking must be the last pass over every part, not just the config.
    const SECRETS: &[&str] = &[
        "tok-ctl-9f3a1c",
        "hookpw-7c21e0",
        "hookpath-5e8d44",
        "hookq-2b6f91",
        "qkey-0d4c55",
        "hdr-a83e07",
        "tenant-6b1f3d",
    ];
    let closed = free_port();
    let env = Env::new(&format!(
        r#"{}http_token = "tok-ctl-9f3a1c"
"#,
        config(&format!(
            r#"[[collector]]
name = "leak"
kind = "command"
argv = ["sh", "-c", "echo LEAK-MARK {} >&2; exec sleep 3600"]

[[collector]]
name = "api"
kind = "http"
url = "http://127.0.0.1:{closed}/v1?symbol=BTCUSD&api_key=qkey-0d4c55"
every = "2s"
headers = {{ Authorization = "Bearer hdr-a83e07", "X-Tenant" = "tenant-6b1f3d" }}

[[alert.channel]]
kind = "webhook"
url = "https://hookuser:hookpw-7c21e0@127.0.0.1:{closed}/services/T0/B0/hookpath-5e8d44?token=hookq-2b6f91"
"#,
            SECRETS.join(" ")
        ))
    ));
    let mut d = started(&env);
    wait_for_or(
        "the leaking collector's stderr line in the daemon's log",
        || d.log().contains("LEAK-MARK").then_some(()),
        || d.log(),
    );
    d.wait_audit("supervisor.child.started", "collectors/api", 1);
    let out = bundle(&env, env.path(), &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let b = Unpacked::of(&out);
    b.assert_every_part_there();
    for (path, bytes) in b.files() {
        for s in SECRETS {
            assert!(
                !contains(&bytes, s),
                "{s} is in {}:\n{}",
                path.display(),
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    // What carried them is there, masked: the parts were searched, not left out.
    let logs = b.text("logs.txt");
    assert!(
        logs.lines()
            .any(|l| l.contains("LEAK-MARK *** *** *** *** *** *** ***")),
        "{logs}"
    );
    let cfg = b.text("config.toml");
    assert!(cfg.contains("http_token = \"***\""), "{cfg}");
    assert!(
        cfg.contains("url = \"***\""),
        "the webhook URL whole: {cfg}"
    );
    assert!(cfg.contains("symbol=BTCUSD&api_key=***"), "{cfg}");
    assert!(cfg.contains("Authorization = \"***\""), "{cfg}");
    assert!(cfg.contains("\"X-Tenant\" = \"***\""), "{cfg}");
    assert!(cfg.contains("kind = \"http\""), "the rest is kept: {cfg}");
    let audit = b.text("audit.jsonl");
    assert!(
        audit.contains("\"actor\":\"collectors/leak\""),
        "the audit tail holds the collectors: {audit}"
    );
    // Nor in what the command printed, its archive's name or its own audit record.
    let said = format!("{}{}{}", stdout(&out), stderr(&out), b.archive.display());
    let record = bundle_record(&env, &b.archive).to_string();
    for s in SECRETS {
        assert!(
            !said.contains(s) && !record.contains(s),
            "{s}: {said}\n{record}"
        );
    }
}

#[test]
fn a_bundle_of_a_running_daemon_holds_every_part_and_says_true_things() {
    let env = Env::new(&config(
        r#"[[collector]]
name = "beat"
kind = "heartbeat"
every = "100ms"
"#,
    ));
    let mut d = started(&env);
    d.wait_audit("supervisor.child.started", "collectors/beat", 1);
    wait_for("three heartbeats in status.json", || {
        let st = env.status()?;
        let beat = st["actors"]
            .as_array()?
            .iter()
            .find(|a| a["name"] == "collectors/beat")?
            .clone();
        (beat["records"].as_u64()? >= 3).then_some(())
    });
    let out = bundle(&env, env.path(), &["--since", "1h"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).is_empty(),
        "every part gathered: {}",
        stderr(&out)
    );
    let b = Unpacked::of(&out);
    b.assert_every_part_there();

    // What it printed is the file on disk, and so is its audit record.
    let sha = sha256_of(&b.archive);
    let len = std::fs::metadata(&b.archive).unwrap().len();
    assert_eq!(b.printed["sha256"], sha.as_str());
    assert_eq!(b.printed["bytes"], len);
    assert_eq!(b.printed["audited"], true);
    let rec = bundle_record(&env, &b.archive);
    assert_eq!(rec["node"], "test-node");
    assert_eq!(rec["payload"]["sha256"], sha.as_str(), "{rec}");
    assert_eq!(rec["payload"]["bytes"], len, "{rec}");
    assert_eq!(rec["payload"]["daemon"], "running");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&b.archive).unwrap().permissions().mode() & 0o777,
        0o600,
        "diagnostic data, readable by its owner only"
    );

    let m = b.json("manifest.json");
    assert_eq!(m["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(m["node"], "test-node");
    assert_eq!(m["mode"], "prod");
    assert_eq!(m["config"]["sha256"], sha256_of(&env.config()).as_str());
    assert_eq!(m["config"]["loads"], true);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(m["kernel"], kernel.trim());
    if let Ok(os) = std::fs::read_to_string("/etc/os-release") {
        let pretty = os
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"'));
        assert_eq!(m["os"].as_str(), pretty);
    }
    assert_eq!(m["daemon"]["state"], "running");
    assert_eq!(m["daemon"]["pid"], d.pid());
    assert_eq!(m["window"]["seconds"], 3600);
    for p in m["parts"].as_array().unwrap() {
        assert_eq!(p["gathered"], true, "{p}");
    }
    assert!(m["parts"].as_array().unwrap().len() >= PARTS.len() - 2);

    let st = b.json("status.json");
    assert_eq!(st["node"], "test-node");
    assert_eq!(st["pid"], d.pid());
    assert!(b.manifest_part("status.json")["source"]
        .as_str()
        .unwrap()
        .starts_with("the running daemon"));

    let audit = b.text("audit.jsonl");
    assert!(audit.lines().any(|l| {
        let e: Value = serde_json::from_str(l).unwrap();
        e["event"] == "daemon.started" && e["payload"]["pid"] == d.pid()
    }));
    let logs = b.text("logs.txt");
    assert!(logs.contains("event=\"collector.heartbeat\""), "{logs}");
    assert!(b.manifest_part("logs.txt")["source"]
        .as_str()
        .unwrap()
        .contains("log ring"));

    let j = b.json("journal.json");
    assert!(j["files"]["segments"].as_u64().unwrap() >= 1, "{j}");
    assert!(j["files"]["streams"].is_array(), "{j}");
    assert!(
        j["pending"]["streams"].is_array(),
        "the daemon's own survey: {j}"
    );
    assert!(j["lag"]["records"].is_u64(), "{j}");

    let v = b.json("verify.json");
    assert!(v["problems"].as_array().unwrap().is_empty(), "{v}");
    let vt = b.text("verify.txt");
    assert!(vt.starts_with("$ ") && vt.contains(" verify -c "), "{vt}");
    assert!(vt.contains("exit status 0"), "{vt}");

    // The report part is `fushi report`'s: its node, totals, records and targets.
    let r = b.json("report.json");
    assert_eq!(r["node"], "test-node", "{r}");
    assert!(r["total"]["restarts"].is_u64(), "{r}");
    assert!(r["records"]["durable"].as_u64().unwrap() >= 3, "{r}");
    assert!(
        r["targets"].as_array().is_some_and(|t| !t.is_empty()),
        "{r}"
    );
    assert_eq!(r["window_ms"], 3_600_000, "--since reaches the report: {r}");
    let rt = b.text("report.txt");
    assert!(rt.contains("resilience report of node test-node"), "{rt}");

    let h = b.text("handover.md");
    assert!(h.starts_with("# Handover: fushi on node test-node"), "{h}");
    assert!(h.contains(&format!("Running: pid {}", d.pid())), "{h}");
    assert!(h.contains("**green** (healthy)"), "{h}");
    assert!(h.contains("## What to look at next"), "{h}");
    assert!(
        h.contains("| logs.txt | the running daemon's log ring"),
        "{h}"
    );
}

#[test]
fn a_bundle_with_the_daemon_killed_or_stopped_reads_the_disk_and_says_so() {
    // The primary is a directory nobody marked: down, so the heartbeats stay in the journal.
    let env = Env::new(&config(
        r#"[storage]
primary = "nas"
probe_interval = "100ms"

[[collector]]
name = "beat"
kind = "heartbeat"
every = "50ms"
"#,
    ));
    let mut d = started(&env);
    wait_for("the primary down and five heartbeats journaled", || {
        let st = env.status()?;
        let beat = st["actors"]
            .as_array()?
            .iter()
            .find(|a| a["name"] == "collectors/beat")?
            .clone();
        (st["storage"]["primary"] == "down" && beat["records"].as_u64()? >= 5).then_some(())
    });
    let pid = d.pid();
    d.kill9();

    let out = bundle(&env, env.path(), &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let b = Unpacked::of(&out);
    b.assert_every_part_there();
    let m = b.json("manifest.json");
    assert_eq!(m["daemon"]["state"], "not_running", "{m}");
    assert_eq!(m["daemon"]["last_pid"], pid);
    assert_eq!(m["daemon"]["last_clean_shutdown"], false);
    let status = b.manifest_part("status.json");
    assert_eq!(status["gathered"], true);
    assert!(
        status["source"].as_str().unwrap().starts_with(&format!(
            "{} on disk",
            env.data().join("status.json").display()
        )),
        "{status}"
    );
    assert!(status["note"]
        .as_str()
        .unwrap()
        .starts_with("not the live state"));
    assert_eq!(b.json("status.json")["pid"], pid);

    // Its text log went to its stderr: said, not silently empty.
    let logs = b.manifest_part("logs.txt");
    assert_eq!(logs["gathered"], false);
    assert!(
        b.text("logs.txt").starts_with(&format!(
            "not gathered: the daemon is not running and it logged as text to its stderr (pid {pid})"
        )),
        "{}",
        b.text("logs.txt")
    );
    assert!(stderr(&out).contains("fushi: logs.txt not gathered: the daemon is not running"));

    let j = b.json("journal.json");
    assert!(j["files"]["records"].as_u64().unwrap() >= 5, "{j}");
    assert_eq!(j["files"]["streams"][0]["stream"], "beat");
    assert!(j["pending"].is_null(), "{j}");
    assert!(j["pending_source"]
        .as_str()
        .unwrap()
        .starts_with("not known: the daemon is not answering"));
    assert_eq!(j["lag_source"], "status.json as last written");

    // verify could not read the store, report still reads the journal.
    let vt = b.text("verify.txt");
    assert!(vt.contains("exit status 1"), "{vt}");
    let r = b.json("report.json");
    assert!(r["records"]["pending"].as_u64().unwrap() >= 5, "{r}");

    let h = b.text("handover.md");
    assert!(h.contains("**Not running**"), "{h}");
    assert!(
        h.contains(&format!("Its last run (pid {pid}"))
            && h.contains("did **not** shut down in order"),
        "{h}"
    );
    let next = h.split("## What to look at next").nth(1).unwrap();
    assert!(
        next.contains(&format!(
            "The daemon is down after an unclean end of pid {pid}"
        )) && next.contains("its log is not in this bundle"),
        "{next}"
    );
    assert!(
        next.contains("The primary `") && next.contains("` is down"),
        "{next}"
    );
    assert!(next.contains("logs.txt"), "{next}");
    assert_eq!(
        bundle_record(&env, &b.archive)["payload"]["daemon"],
        "not_running"
    );

    // Stopped in order this time: said so, and the next step is a start.
    let mut d = started(&env);
    assert!(d.terminate().success());
    let out = bundle(&env, env.path(), &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let b2 = Unpacked::of(&out);
    assert_ne!(b2.archive, b.archive, "the first bundle is kept");
    assert!(b.archive.exists());
    assert_eq!(
        b2.json("manifest.json")["daemon"]["last_clean_shutdown"],
        true
    );
    let h = b2.text("handover.md");
    assert!(h.contains("shut down in order."), "{h}");
    assert!(
        h.contains("The daemon was stopped in order and nothing collects now"),
        "{h}"
    );
}

#[test]
fn a_daemon_that_holds_the_data_dir_but_does_not_answer_is_said_so_and_waited_for_only_so_long() {
    let env = Env::new(&config(TWO_BEATS));
    let d = started(&env);
    // Stopped, its socket still takes connections into the backlog: a request is never answered.
    d.signal(nix::sys::signal::Signal::SIGSTOP);
    let out = bundle(&env, env.path(), &["--timeout", "2s"]);
    d.signal(nix::sys::signal::Signal::SIGCONT);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let b = Unpacked::of(&out);
    b.assert_every_part_there();
    let m = b.json("manifest.json");
    assert_eq!(m["daemon"]["state"], "not_answering", "{m}");
    assert_eq!(m["daemon"]["pid"], d.pid());
    let why = format!(
        "fushi pid {} holds the data dir but the daemon did not answer within 2s on {}",
        d.pid(),
        env.data().join("fushi.sock").display()
    );
    assert_eq!(m["daemon"]["why"], why.as_str());
    let status = b.manifest_part("status.json");
    assert!(
        status["note"].as_str().unwrap() == format!("not the live state: {why}"),
        "{status}"
    );
    assert_eq!(b.json("status.json")["pid"], d.pid());
    let h = b.text("handover.md");
    assert!(h.contains(&format!("**Not answering**: {why}.")), "{h}");
    assert!(h.contains(&format!("`kill -9 {}`", d.pid())), "{h}");
}

#[test]
fn a_bundle_of_a_config_that_never_ran_says_what_is_missing_and_an_absent_out_dir_is_named() {
    let env = Env::new(&config(""));
    let nope = env.path().join("no-such-dir");
    let out = bundle(&env, &nope, &[]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains(&format!(
            "cannot write the bundle in {}: No such file or directory (os error 2); create it or pass --out DIR",
            nope.display()
        )),
        "{}",
        stderr(&out)
    );
    assert!(!nope.exists());
    let file = env.config();
    let out = bundle(&env, &file, &[]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains(&format!(
            "cannot write the bundle in {}: it is not a directory",
            file.display()
        )),
        "{}",
        stderr(&out)
    );

    // The data dir does not exist: the bundle is written, the parts say why they are empty,
    // and the command says it could not be audited (no data dir is made for it).
    let out = bundle(&env, env.path(), &[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "was written, but not recorded in the audit log: data dir {} does not exist",
            env.data().display()
        )),
        "{}",
        stderr(&out)
    );
    assert!(!env.data().exists(), "no data dir made");
    let b = Unpacked::of(&out);
    b.assert_every_part_there();
    assert_eq!(b.printed["audited"], false);
    for p in ["status.json", "audit.jsonl", "journal.json", "logs.txt"] {
        assert_eq!(b.manifest_part(p)["gathered"], false, "{p}");
    }
    for p in ["status.json", "audit.jsonl", "journal.json"] {
        let note = b.manifest_part(p)["note"].as_str().unwrap().to_string();
        assert!(
            note.contains("no daemon has run on this data dir yet"),
            "{p}: {note}"
        );
    }
    assert_eq!(
        b.json("status.json")["not_gathered"],
        b.manifest_part("status.json")["note"]
    );
    let h = b.text("handover.md");
    assert!(h.contains("No daemon has run on this data dir"), "{h}");
    assert!(
        h.contains("Parts of this bundle could not be gathered: status.json, audit.jsonl, logs.txt, journal.json"),
        "{h}"
    );
}

#[test]
fn a_config_file_that_is_not_toml_is_not_shown_and_the_bundle_is_still_written() {
    let env = Env::new(&config(""));
    std::fs::create_dir_all(env.data()).unwrap();
    std::fs::write(
        env.config(),
        format!(
            "{}\n[control\nhttp_token = \"tok-broken-77aa\"\n",
            config("")
        ),
    )
    .unwrap();
    let out = bundle(&env, env.path(), &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let b = Unpacked::of(&out);
    let cfg = b.text("config.toml");
    assert!(
        cfg.starts_with("not gathered: ") && cfg.contains("is not shown: it is not TOML ("),
        "{cfg}"
    );
    for (path, bytes) in b.files() {
        assert!(!contains(&bytes, "tok-broken-77aa"), "{}", path.display());
    }
    let m = b.json("manifest.json");
    assert_eq!(m["config"]["loads"], false);
    assert_eq!(m["config"]["sha256"], sha256_of(&env.config()).as_str());
    assert!(b
        .text("handover.md")
        .contains("The config file does not load: "));
}

/// Root only: a read-only and a full file system as `--out`.
#[test]
#[ignore = "needs root to mount tmpfs: scripts/test runs it (--include-ignored)"]
fn an_out_dir_that_cannot_be_written_is_named_and_keeps_no_temp_file() {
    let env = Env::new(&config(""));
    std::fs::create_dir_all(env.data()).unwrap();
    // Events whose ids cannot be compressed away: the archive outgrows one page.
    let mut audit = String::new();
    for i in 0..400 {
        let noise: String = (0..8)
            .map(|_| format!("{:016x}", rand::random::<u64>()))
            .collect();
        audit.push_str(&format!(
            "{{\"ts\":\"{}\",\"event\":\"collector.heartbeat\",\"node\":\"test-node\",\"payload\":{{\"i\":{i},\"noise\":\"{noise}\"}}}}\n",
            "2999-01-01T00:00:00.000Z"
        ));
    }
    std::fs::write(env.data().join("audit.jsonl"), audit).unwrap();

    let ro = env.path().join("ro");
    let _ro = mount_tmpfs(&ro, "ro,size=1m");
    let out = bundle(&env, &ro, &[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "cannot write the bundle in {}: creating a file there failed; pass --out with a directory you can write to: Read-only file system",
            ro.display()
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(&ro).unwrap().count(), 0);

    let full = env.path().join("full");
    let _full = mount_tmpfs(&full, "size=4k");
    let out = bundle(&env, &full, &[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("writing the bundle in {}", full.display()))
            && stderr(&out).contains("No space left on device"),
        "{}",
        stderr(&out)
    );
    let left: Vec<_> = std::fs::read_dir(&full)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "neither a temp file nor a partial bundle: {left:?}"
    );
    assert!(
        events(&env.audit(), "handover.bundle.create", "").is_empty(),
        "nothing audited for a bundle that does not exist"
    );
}

/// Root, bindfs and FUSE: the primary on a frozen mount, as a hung NAS hangs.
#[test]
#[ignore = "needs root, bindfs and /dev/fuse: scripts/test runs it (--include-ignored)"]
fn a_hung_primary_holds_the_bundle_only_until_the_timeout() {
    crate::outage::prerequisites("a_hung_primary_holds_the_bundle_only_until_the_timeout");
    let _serial = crate::outage::SERIAL
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let env = Env::new(&config("[storage]\nprimary = \"mnt/nas\"\n"));
    let backing = env.path().join("backing");
    std::fs::create_dir_all(backing.join("nas")).unwrap();
    let mnt = env.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(env.data()).unwrap();
    // A daemon has run here (report reads on to the primary only then).
    std::fs::write(
        env.data().join("audit.jsonl"),
        format!(
            "{{\"ts\":\"{}\",\"event\":\"daemon.started\",\"node\":\"test-node\",\"payload\":{{\"pid\":1}}}}\n",
            "2999-01-01T00:00:00.000Z"
        ),
    )
    .unwrap();
    let mut mounts = crate::outage::Mounts::default();
    let fuse = mounts.bindfs(&backing, &mnt);
    crate::outage::signal(fuse, nix::sys::signal::Signal::SIGSTOP);

    let started_at = std::time::Instant::now();
    let mut child = bare(&["bundle", "--json", "--timeout", "2s", "--out"])
        .arg(env.path())
        .arg("-c")
        .arg(env.config())
        .current_dir(env.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running fushi bundle");
    wait_for("fushi bundle to end despite the frozen primary", || {
        child.try_wait().expect("waiting for fushi bundle")
    });
    let out = child.wait_with_output().unwrap();
    assert!(
        started_at.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started_at.elapsed()
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let b = Unpacked::of(&out);
    b.assert_every_part_there();
    for (txt, json) in [("verify.txt", "verify.json"), ("report.txt", "report.json")] {
        let t = b.text(txt);
        assert!(
            t.contains("killed after 2s: it did not finish within the time limit (--timeout)"),
            "{txt}: {t}"
        );
        assert_eq!(b.manifest_part(txt)["gathered"], false);
        let j = b.json(json);
        assert!(
            j["not_gathered"]
                .as_str()
                .unwrap()
                .contains("killed after 2s"),
            "{json}: {j}"
        );
    }
    let h = b.text("handover.md");
    assert!(
        h.contains("Not verified: `") && h.contains("killed after 2s"),
        "{h}"
    );
    assert!(
        h.contains("`fushi verify` could not judge the primary (killed after 2s"),
        "{h}"
    );
    assert!(stderr(&out).contains("fushi: verify.txt not gathered: killed after 2s"));
    drop(mounts);
}

/// Root and systemd-journald: a private journald, as `systemd.rs` runs one.
#[test]
#[ignore = "needs root and systemd-journald (a mount namespace): scripts/test runs it (--include-ignored)"]
fn logs_come_from_journald_while_the_daemon_runs_and_after_it_was_killed() {
    require(
        nix::unistd::Uid::effective().is_root(),
        "logs_come_from_journald_while_the_daemon_runs_and_after_it_was_killed",
        "root for a mount namespace",
    );
    let env = Env::new(&config(
        r#"[[collector]]
name = "beat"
kind = "heartbeat"
every = "50ms"
"#,
    ));
    for d in ["running", "stopped"] {
        std::fs::create_dir_all(env.path().join(d)).unwrap();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bundle_journald.sh");
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "bash"])
        .arg(&script)
        .arg(bin())
        .arg(env.config())
        .arg(env.path())
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("running unshare (util-linux)");
    assert!(
        out.status.success(),
        "bundle journald script failed:\n{}",
        stderr(&out)
    );
    let read = |name: &str| {
        let text = std::fs::read(env.path().join(name)).unwrap();
        Output {
            status: out.status,
            stdout: text,
            stderr: Vec::new(),
        }
    };
    let running = Unpacked::of(&read("running.json"));
    let pid = running.json("manifest.json")["daemon"]["pid"].clone();
    assert_eq!(running.json("manifest.json")["daemon"]["log"], "journald");
    let logs = running.manifest_part("logs.txt");
    assert_eq!(logs["gathered"], true, "{logs}");
    assert!(
        logs["source"]
            .as_str()
            .unwrap()
            .starts_with("journald: `journalctl"),
        "{logs}"
    );
    let text = running.text("logs.txt");
    assert!(text.contains(&format!("fushi[{pid}]: heartbeat")), "{text}");

    // Killed: the journal still has its lines, found by the pid status.json and the audit name.
    let stopped = Unpacked::of(&read("stopped.json"));
    assert_eq!(
        stopped.json("manifest.json")["daemon"]["state"],
        "not_running"
    );
    assert_eq!(stopped.manifest_part("logs.txt")["gathered"], true);
    let text = stopped.text("logs.txt");
    assert!(text.contains(&format!("fushi[{pid}]: heartbeat")), "{text}");
}
