//! Test harness: runs the real `fushi` binary in a temp dir and waits on its events (audit lines, status.json, exit).

#![allow(dead_code)]

use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(30);

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fushi"))
}

/// A temp dir with a supervisor.toml; the daemon's data dir is `<dir>/data`.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("creating a temp dir");
        let env = Self { dir };
        env.write_config(config);
        env
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.path().join("supervisor.toml")
    }

    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    pub fn write_config(&self, config: &str) {
        std::fs::write(self.config(), config).expect("writing supervisor.toml");
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(bin());
        cmd.arg("run")
            .arg("-c")
            .arg(self.config())
            .arg("--log")
            .arg("text")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            // Each test's daemon binds <data_dir>/fushi.sock, never a shared runtime dir.
            .env_remove("XDG_RUNTIME_DIR")
            .current_dir(self.path())
            .stdin(Stdio::null());
        cmd
    }

    pub fn start(&self) -> Daemon {
        self.start_with(|_| {})
    }

    pub fn start_with(&self, f: impl FnOnce(&mut Command)) -> Daemon {
        let mut cmd = self.command();
        let log =
            std::fs::File::create(self.path().join("daemon.log")).expect("creating daemon.log");
        cmd.stdout(Stdio::null()).stderr(log);
        f(&mut cmd);
        let child = cmd.spawn().expect("spawning fushi");
        Daemon {
            child,
            data: self.data(),
            log: self.path().join("daemon.log"),
        }
    }

    pub fn audit(&self) -> Vec<Value> {
        audit(&self.data())
    }

    pub fn status(&self) -> Option<Value> {
        let bytes = std::fs::read(self.data().join("status.json")).ok()?;
        Some(serde_json::from_slice(&bytes).expect("status.json must always parse"))
    }
}

pub fn audit(data: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(data.join("audit.jsonl")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn events<'a>(audit: &'a [Value], event: &str, actor: &str) -> Vec<&'a Value> {
    audit
        .iter()
        .filter(|e| e["event"] == event && (actor.is_empty() || e["actor"] == actor))
        .collect()
}

/// Polls `f` until it returns Some (the event happened) or `TIMEOUT` passes.
pub fn wait_for<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_for_or(what, f, String::new)
}

/// As [`wait_for`], with `context()` (a daemon's log, a status) in the message of a timeout.
pub fn wait_for_or<T>(
    what: &str,
    mut f: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub struct Daemon {
    pub child: Child,
    pub data: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig)
            .expect("signalling fushi");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for an audit event (optionally of one actor) and returns all audit lines at that point.
    pub fn wait_audit(&mut self, event: &str, actor: &str, count: usize) -> Vec<Value> {
        let data = self.data.clone();
        wait_for(&format!("{count} × {event} {actor}"), || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "fushi exited ({status}) while waiting for {event}:\n{}",
                    self.log()
                );
            }
            let a = audit(&data);
            (events(&a, event, actor).len() >= count).then_some(a)
        })
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = &mut self.child;
        wait_for("fushi to exit", || {
            child.try_wait().expect("waiting for fushi")
        })
    }

    pub fn kill9(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        self.wait_exit();
    }

    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait_exit()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The minimal config these tests build on: a data dir under the temp dir, tiny shutdown timeout,
/// and no HTTP endpoint (parallel daemons would fight over its port; `tests/http.rs` has its own).
/// `[control]` comes last so that `extra` keeps its line numbers.
pub fn config(extra: &str) -> String {
    format!(
        r#"[node]
id = "test-node"
data_dir = "data"

[supervisor]
shutdown_timeout = "2s"

{extra}

[control]
http = ""
"#
    )
}

/// A client of the `listen` collector that pushes numbered records `{"k": k}` over a Unix socket
/// and remembers which the daemon acknowledged: the oracle of the data-path tests. It reconnects
/// whenever the daemon goes away; lines sent but not acknowledged then are only "maybe" stored.
pub struct Pusher {
    pub acked: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
    pub maybe: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pusher {
    /// Starts pushing to `socket`, `chunk` lines between reads of the acks.
    pub fn start(socket: PathBuf, chunk: usize) -> Self {
        Self::start_after(socket, chunk, 0)
    }

    /// [`Pusher::start`] with records numbered from `last + 1` (a second pusher after one that
    /// pushed `1..=last`).
    pub fn start_after(socket: PathBuf, chunk: usize, last: u64) -> Self {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::Ordering;
        let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let maybe = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, m, s) = (acked.clone(), maybe.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut k = last;
            while !s.load(Ordering::SeqCst) {
                let Ok(conn) = std::os::unix::net::UnixStream::connect(&socket) else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let mut w = &conn;
                let mut r = BufReader::new(&conn);
                let mut sent: Vec<u64> = Vec::new();
                let mut confirmed = 0usize;
                'conn: while !s.load(Ordering::SeqCst) {
                    let mut buf = String::new();
                    let first = sent.len();
                    for _ in 0..chunk {
                        k += 1;
                        sent.push(k);
                        buf.push_str(&format!("{{\"k\":{k},\"pad\":\"{}\"}}\n", "x".repeat(200)));
                    }
                    if w.write_all(buf.as_bytes()).is_err() {
                        break;
                    }
                    // Read acks until this chunk is confirmed.
                    while confirmed < sent.len() {
                        let mut line = String::new();
                        match r.read_line(&mut line) {
                            Ok(0) | Err(_) => break 'conn,
                            Ok(_) => {
                                let v: Value = match serde_json::from_str(&line) {
                                    Ok(v) => v,
                                    Err(_) => break 'conn,
                                };
                                if let Some(n) = v["ack"].as_u64() {
                                    let n = n as usize;
                                    a.lock().unwrap().extend_from_slice(&sent[confirmed..n]);
                                    confirmed = n;
                                }
                            }
                        }
                    }
                    let _ = first;
                }
                m.lock().unwrap().extend_from_slice(&sent[confirmed..]);
            }
        });
        Self {
            acked,
            maybe,
            stop,
            thread: Some(thread),
        }
    }

    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Stops pushing; returns (acknowledged, maybe stored).
    pub fn finish(mut self) -> (Vec<u64>, Vec<u64>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("pusher thread");
        }
        let a = self.acked.lock().unwrap().clone();
        let m = self.maybe.lock().unwrap().clone();
        (a, m)
    }
}

/// The `k` of every record of `stream` on the primary, in file order (dates in order).
pub fn primary_ks(primary: &Path, stream: &str) -> Vec<u64> {
    primary_lines(primary, stream)
        .iter()
        .map(|v| v["data"]["k"].as_u64().expect("k"))
        .collect()
}

/// The lines of `stream` on the primary at `primary`, in file order.
pub fn primary_lines(primary: &Path, stream: &str) -> Vec<Value> {
    let dir = primary.join("raw").join(stream);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("reading primary");
        // A line without its '\n' is an append in progress (or a torn tail the next append
        // repairs): not a record yet.
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            out.push(
                serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!("{}: line is not JSON ({e}): {line:?}", f.display())
                }),
            );
        }
    }
    out
}

/// The data-path oracle on the records `ks` of a stream on the primary: every acknowledged
/// record exactly once and in order, nothing that was never sent; a line sent but never
/// acknowledged (`maybe`) may be there or not. `explain` shows the surroundings of a duplicate
/// before the failure.
pub fn assert_acknowledged_once_in_order(
    ks: &[u64],
    acked: &[u64],
    maybe: &[u64],
    explain: impl Fn(u64),
) {
    let mut seen = HashSet::new();
    for &k in ks {
        if !seen.insert(k) {
            explain(k);
            panic!("record k={k} is on the primary twice");
        }
    }
    assert!(
        ks.windows(2).all(|w| w[0] < w[1]),
        "records on the primary are out of order"
    );
    let acked_set: HashSet<u64> = acked.iter().copied().collect();
    let maybe: HashSet<u64> = maybe.iter().copied().collect();
    for k in ks {
        assert!(
            acked_set.contains(k) || maybe.contains(k),
            "k={k} was never sent"
        );
    }
    let on_primary: Vec<u64> = ks
        .iter()
        .copied()
        .filter(|k| acked_set.contains(k))
        .collect();
    assert_eq!(
        on_primary, acked,
        "acknowledged records on the primary, in order"
    );
}

/// A config with a `listen` collector on `unix:in.sock` (stream `test/k`), sync every 20 ms in
/// batches of 500, and the given `[storage]` settings: the data-path tests' common ground.
pub fn listen_config(storage: &str) -> String {
    config(&format!(
        "[storage]\n{storage}\n\n[sync]\ninterval = \"20ms\"\nbatch = 500\n\n\
         [[collector]]\nname = \"in\"\nkind = \"listen\"\nstream = \"test/k\"\naddress = \"unix:in.sock\"\n"
    ))
}

/// Runs `fushi verify` on the env's config and asserts it finds the primary clean.
pub fn assert_verify_clean(env: &Env) {
    let out = fushi(env, &["verify"]);
    assert!(
        out.status.success(),
        "fushi verify: {}\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
}

/// A filesystem mounted for one test, lazily unmounted on drop (also when an assertion fails).
pub struct Mounted(pub PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a tmpfs with `opts` (e.g. `size=16m,nr_inodes=64`) on `dir`, creating it. The data-path
/// tests that act out a full disk need root for it, as CI has; without it they fail, saying so.
pub fn mount_tmpfs(dir: &Path, opts: &str) -> Mounted {
    require(
        nix::unistd::geteuid().is_root(),
        &format!("a test that mounts a tmpfs on {}", dir.display()),
        "root",
    );
    std::fs::create_dir_all(dir).expect("creating the mountpoint");
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", opts, "fushi-test"])
        .arg(dir)
        .status()
        .expect("running mount");
    assert!(ok.success(), "cannot mount a tmpfs on {}", dir.display());
    Mounted(dir.to_path_buf())
}

/// Two heartbeat collectors, `a` and `b`, that emit once an hour: a tree to start, stop and name.
pub const TWO_BEATS: &str = r#"[[collector]]
name = "a"
kind = "heartbeat"
every = "1h"

[[collector]]
name = "b"
kind = "heartbeat"
every = "1h"
"#;

/// `fushi ARGS` with nothing of this machine's environment that could point it elsewhere.
pub fn bare(args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .stdin(Stdio::null());
    cmd
}

/// `fushi ARGS -c <the env's config>`, run from the env's directory.
pub fn fushi(env: &Env, args: &[&str]) -> std::process::Output {
    bare(args)
        .arg("-c")
        .arg(env.config())
        .current_dir(env.path())
        .output()
        .expect("running fushi")
}

pub fn code(o: &std::process::Output) -> i32 {
    o.status.code().expect("exit code")
}

pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

/// Starts the daemon and waits until its socket answers.
pub fn started(env: &Env) -> Daemon {
    let mut d = env.start();
    d.wait_audit("supervisor.child.started", "control", 1);
    wait_for("the control socket", || {
        (code(&fushi(env, &["pid"])) == 0).then_some(())
    });
    d
}

/// A loopback port that is free when picked (a daemon may still lose it to another process
/// before it binds it: see [`start_on_free_port`]).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding an ephemeral port")
        .port()
}

/// Starts a daemon on `config(port)` for a free `port` that `actor` binds (set up by `with`). A
/// port taken between picking and binding fails that actor: then another is tried.
pub fn start_on_free_port(
    actor: &str,
    config: impl Fn(u16) -> String,
    with: impl Fn(&mut Command),
) -> (Env, Daemon, u16) {
    for _ in 0..5 {
        let port = free_port();
        let env = Env::new(&config(port));
        let mut d = env.start_with(&with);
        let bound = wait_for(&format!("{actor} to start or fail"), || {
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("fushi exited ({st}):\n{}", d.log());
            }
            let a = env.audit();
            if !events(&a, "supervisor.child.started", actor).is_empty() {
                return Some(true);
            }
            (!events(&a, "supervisor.child.failed", actor).is_empty()).then_some(false)
        });
        if bound {
            return (env, d, port);
        }
    }
    panic!("no free port for {actor} after 5 tries");
}

/// Fails the test, saying what it needs, unless `ok`: a test that cannot run must not pass.
/// `bash .ci/run` installs what the suite needs and runs it as root.
pub fn require(ok: bool, test: &str, needs: &str) {
    assert!(
        ok,
        "{test} needs {needs}; run the suite as root with its packages installed, as `bash .ci/run` does"
    );
}
