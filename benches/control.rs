//! Benchmark: the control plane of a running `fushi` daemon (status round trip, idle RSS and CPU) beside supervisord and supervisorctl measured the same way in the same run.
//!
//! Both daemons start in one temporary directory with a comparable program set: fushi with three
//! `heartbeat` collectors (and its fixed actors: storage, sync, status, alert, control; no HTTP
//! endpoint), supervisord with three programs running `sleep infinity` (its children are separate
//! processes and are not counted). Each is started in the foreground, as systemd would, and
//! stopped with SIGTERM at the end.
//!
//! 1. Idle: after `CONTROL_BENCH_SETTLE_S` (5) seconds, VmRSS (with its anonymous / file split
//!    and the thread count) from `/proc/<pid>/status`, then CPU over `CONTROL_BENCH_IDLE_S` (10)
//!    seconds as utime+stime from `/proc/<pid>/stat` (in clock ticks) and, finer, the sum of
//!    `/proc/<pid>/task/*/schedstat` on-CPU nanoseconds, both as % of one core.
//! 2. Status round trip: `CONTROL_BENCH_RUNS` (200) runs each of the real `fushi status -c FILE`
//!    and `supervisorctl -c FILE status`, from spawn to exit, output to /dev/null, the two
//!    alternating so that load from elsewhere hits both alike, after `CONTROL_BENCH_WARMUP` (5)
//!    unrecorded runs each.
//! 3. Socket round trip (in process, connect + request + response): `CONTROL_BENCH_SOCKET_RUNS`
//!    (1000) `Status` requests through the CLI's own client code (`src/control/client.rs`,
//!    compiled into this bench), beside the XML-RPC `supervisor.getAllProcessInfo` call that
//!    `supervisorctl status` makes, as one HTTP/1.0 POST on supervisord's Unix socket.
//!
//! The `fushi` binary is the release build cargo makes for benchmarks (`CARGO_BIN_EXE_fushi`).

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures real time, beside its baseline measured the same way"
)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The CLI's socket client and protocol, compiled from the daemon's sources so that the in-process
/// round trip is exactly the one `fushi status` makes.
#[allow(dead_code, unused_imports)]
#[path = "../src/control"]
mod control {
    pub mod client;
    pub mod proto;
}

use control::proto::{Request, Response};

mod common;
use common::env_num;

/// `name` on `PATH`, if it is there.
fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A daemon this bench started; killed if the bench panics before stopping it.
struct Daemon {
    name: &'static str,
    child: Child,
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for the exit (killing after `grace`).
    fn stop(mut self, grace: Duration) -> ExitStatus {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let _ = kill(Pid::from_raw(self.pid() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for a daemon") {
                return status;
            }
            if Instant::now() > deadline {
                eprintln!("{} did not stop within {grace:?}; killing it", self.name);
                let _ = self.child.kill();
                return self.child.wait().expect("waiting for a killed daemon");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `f` until it holds, or panics after 30 s naming `what`.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The two daemons' files, all under one temporary directory.
struct Setup {
    dir: tempfile::TempDir,
    fushi: PathBuf,
    supervisorctl: PathBuf,
}

impl Setup {
    fn fushi_config(&self) -> PathBuf {
        self.dir.path().join("fushi/supervisor.toml")
    }
    fn fushi_socket(&self) -> PathBuf {
        self.dir.path().join("fushi/fushi.sock")
    }
    fn sup_config(&self) -> PathBuf {
        self.dir.path().join("supervisord/supervisord.conf")
    }
    fn sup_socket(&self) -> PathBuf {
        self.dir.path().join("supervisord/supervisor.sock")
    }

    fn write_configs(&self, programs: usize) {
        let (f, s) = (
            self.dir.path().join("fushi"),
            self.dir.path().join("supervisord"),
        );
        std::fs::create_dir_all(&f).expect("creating the fushi directory");
        std::fs::create_dir_all(&s).expect("creating the supervisord directory");
        let mut cfg = format!(
            "[node]\nid = \"bench\"\ndata_dir = \"data\"\n\n[storage]\nprimary = \"data/primary\"\n\n\
             [control]\nsocket = \"{}\"\nhttp = \"\"\n",
            self.fushi_socket().display()
        );
        for i in 1..=programs {
            cfg += &format!(
                "\n[[collector]]\nname = \"heartbeat{i}\"\nkind = \"heartbeat\"\nevery = \"10s\"\n"
            );
        }
        std::fs::write(self.fushi_config(), cfg).expect("writing the fushi config");

        let sock = self.sup_socket();
        let mut conf = format!(
            "[unix_http_server]\nfile={sock}\nchmod=0700\n\n\
             [supervisord]\nnodaemon=true\npidfile={dir}/supervisord.pid\nlogfile={dir}/supervisord.log\n\
             childlogdir={dir}\nidentifier=bench\n\n\
             [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
             [supervisorctl]\nserverurl=unix://{sock}\n",
            sock = sock.display(),
            dir = s.display()
        );
        for i in 1..=programs {
            conf += &format!(
                "\n[program:sleep{i}]\ncommand=sleep infinity\nautorestart=true\nstartsecs=1\n"
            );
        }
        std::fs::write(self.sup_config(), conf).expect("writing the supervisord config");
    }

    fn start_fushi(&self) -> Daemon {
        let dir = self.dir.path().join("fushi");
        let log = std::fs::File::create(dir.join("daemon.log")).expect("creating daemon.log");
        let child = Command::new(&self.fushi)
            .arg("run")
            .arg("-c")
            .arg(self.fushi_config())
            .args(["--log", "text"])
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning fushi run");
        Daemon {
            name: "fushi",
            child,
        }
    }

    fn start_supervisord(&self, supervisord: &Path) -> Daemon {
        let dir = self.dir.path().join("supervisord");
        let out = std::fs::File::create(dir.join("stdout.log")).expect("creating stdout.log");
        let child = Command::new(supervisord)
            .arg("-c")
            .arg(self.sup_config())
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("cloning a file handle"))
            .stderr(out)
            .spawn()
            .expect("spawning supervisord");
        Daemon {
            name: "supervisord",
            child,
        }
    }

    fn fushi_status(&self) -> Command {
        let mut cmd = Command::new(&self.fushi);
        cmd.arg("status")
            .arg("-c")
            .arg(self.fushi_config())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    fn supervisorctl_status(&self) -> Command {
        let mut cmd = Command::new(&self.supervisorctl);
        cmd.arg("-c")
            .arg(self.sup_config())
            .arg("status")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }
}

/// Runs `cmd` to its exit; returns the wall time from before spawn to after wait.
fn time_command(mut cmd: Command, what: &str) -> Duration {
    let t = Instant::now();
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    let took = t.elapsed();
    assert!(status.success(), "{what} failed: {status}");
    took
}

/// One `Status` request through the CLI's client; returns the status document (JSON text).
fn fushi_socket_status(socket: &Path) -> Result<String, String> {
    match control::client::call(
        &[socket.to_path_buf()],
        control::client::no_answer,
        &Request::Status,
    ) {
        Ok(Response::Json { json }) => Ok(json),
        Ok(other) => Err(format!("fushi answered Status with {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// How many actors a status document lists.
fn actors(json: &str) -> usize {
    serde_json::from_str::<serde_json::Value>(json)
        .map_or(0, |doc| doc["actors"].as_array().map_or(0, Vec::len))
}

/// `supervisor.getAllProcessInfo` over XML-RPC on the Unix socket, as supervisorctl's `status`
/// calls it; returns the HTTP response.
fn supervisord_socket_status(socket: &Path) -> Result<String, String> {
    const BODY: &str = "<?xml version='1.0'?>\n<methodCall>\n<methodName>supervisor.getAllProcessInfo</methodName>\n<params>\n</params>\n</methodCall>\n";
    let req = format!(
        "POST /RPC2 HTTP/1.0\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let mut conn = UnixStream::connect(socket).map_err(|e| e.to_string())?;
    conn.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = String::new();
    conn.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    if !resp.starts_with("HTTP/1.0 200") {
        return Err(format!("supervisord answered: {resp}"));
    }
    Ok(resp)
}

/// How many programs an XML-RPC answer lists as RUNNING.
fn running(resp: &str) -> usize {
    resp.matches("<string>RUNNING</string>").count()
}

/// Memory of a process, from `/proc/<pid>/status` (kB are KiB there).
#[derive(Debug, Clone, Copy)]
struct Mem {
    rss_kib: u64,
    anon_kib: u64,
    file_kib: u64,
    threads: u64,
}

fn mem(pid: u32) -> Mem {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading status");
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    Mem {
        rss_kib: field("VmRSS:"),
        anon_kib: field("RssAnon:"),
        file_kib: field("RssFile:"),
        threads: field("Threads:"),
    }
}

/// utime + stime of all threads, in clock ticks, from `/proc/<pid>/stat`.
fn cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading stat");
    // The command name may hold spaces and parentheses; the fields after the last ')' do not.
    let rest = &text[text.rfind(')').expect("malformed stat") + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

/// On-CPU nanoseconds summed over the live threads, from `/proc/<pid>/task/*/schedstat`.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux this runs on).
fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Nearest-rank percentile.
fn percentile(values: &[Duration], p: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn main() -> ExitCode {
    // `cargo test --all-targets` runs benches too, without `--bench`: measure only when asked.
    if !std::env::args().any(|a| a == "--bench") {
        return ExitCode::SUCCESS;
    }
    let (Some(supervisord), Some(supervisorctl)) =
        (find_in_path("supervisord"), find_in_path("supervisorctl"))
    else {
        eprintln!(
            "control: `supervisord` / `supervisorctl` not found on PATH; the baseline needs them.\n\
             Install them with `sudo apt-get install supervisor` (Debian/Ubuntu) and run again."
        );
        return ExitCode::from(2);
    };
    let runs = env_num("CONTROL_BENCH_RUNS", 200).max(1) as usize;
    let warmup = env_num("CONTROL_BENCH_WARMUP", 5) as usize;
    let socket_runs = env_num("CONTROL_BENCH_SOCKET_RUNS", 1000).max(1) as usize;
    let settle = Duration::from_secs(env_num("CONTROL_BENCH_SETTLE_S", 5));
    let idle = Duration::from_secs(env_num("CONTROL_BENCH_IDLE_S", 10).max(1));
    let programs = 3;

    let setup = Setup {
        dir: tempfile::Builder::new()
            .prefix("fushi-bench-control.")
            .tempdir()
            .expect("creating a temporary directory"),
        fushi: PathBuf::from(env!("CARGO_BIN_EXE_fushi")),
        supervisorctl,
    };
    let version = Command::new(&supervisord)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "control plane: {} (release build) with {programs} heartbeat collectors beside supervisord {version} \
         with {programs} `sleep infinity` programs, in {}",
        setup.fushi.display(),
        setup.dir.path().display()
    );
    setup.write_configs(programs);

    let fushi = setup.start_fushi();
    let sup = setup.start_supervisord(&supervisord);
    let (fsock, ssock) = (setup.fushi_socket(), setup.sup_socket());
    wait_until("fushi to answer on its socket", || {
        fushi_socket_status(&fsock).is_ok_and(|doc| actors(&doc) > 0)
    });
    wait_until("supervisord's programs to be RUNNING", || {
        supervisord_socket_status(&ssock).is_ok_and(|resp| running(&resp) == programs)
    });

    // 1. Idle.
    std::thread::sleep(settle);
    let (fm, sm) = (mem(fushi.pid()), mem(sup.pid()));
    let (ft0, st0, fn0, sn0) = (
        cpu_ticks(fushi.pid()),
        cpu_ticks(sup.pid()),
        cpu_ns(fushi.pid()),
        cpu_ns(sup.pid()),
    );
    let t0 = Instant::now();
    std::thread::sleep(idle);
    let (ft1, st1, fn1, sn1) = (
        cpu_ticks(fushi.pid()),
        cpu_ticks(sup.pid()),
        cpu_ns(fushi.pid()),
        cpu_ns(sup.pid()),
    );
    let window = t0.elapsed().as_secs_f64();
    let tck = clk_tck() as f64;
    let pct_ticks = |a: u64, b: u64| (b - a) as f64 / tck / window * 100.0;
    let pct_ns = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e9 / window * 100.0;
    let (fcpu, scpu) = (pct_ticks(ft0, ft1), pct_ticks(st0, st1));
    let (fcpu_ns, scpu_ns) = (pct_ns(fn0, fn1), pct_ns(sn0, sn1));

    // 2. The real commands, alternating.
    for _ in 0..warmup {
        time_command(setup.fushi_status(), "fushi status");
        time_command(setup.supervisorctl_status(), "supervisorctl status");
    }
    let (mut ours, mut theirs) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        ours.push(time_command(setup.fushi_status(), "fushi status"));
        theirs.push(time_command(
            setup.supervisorctl_status(),
            "supervisorctl status",
        ));
    }

    // 3. In process, on the sockets.
    let (mut ours_sock, mut theirs_sock) = (
        Vec::with_capacity(socket_runs),
        Vec::with_capacity(socket_runs),
    );
    for _ in 0..socket_runs {
        let t = Instant::now();
        let doc = fushi_socket_status(&fsock).expect("fushi's socket");
        ours_sock.push(t.elapsed());
        assert!(actors(&doc) > 0, "fushi reported no actors: {doc}");
        let t = Instant::now();
        let resp = supervisord_socket_status(&ssock).expect("supervisord's socket");
        theirs_sock.push(t.elapsed());
        assert_eq!(running(&resp), programs, "not all RUNNING: {resp}");
    }
    let (fm_after, sm_after) = (mem(fushi.pid()), mem(sup.pid()));

    let fstop = fushi.stop(Duration::from_secs(30));
    let sstop = sup.stop(Duration::from_secs(30));

    // Figures.
    println!(
        "idle after {settle:?}: fushi RSS {:.1} MiB (anon {:.1}, file {:.1}), {} threads; \
         supervisord RSS {:.1} MiB (anon {:.1}, file {:.1}), {} threads",
        mib(fm.rss_kib),
        mib(fm.anon_kib),
        mib(fm.file_kib),
        fm.threads,
        mib(sm.rss_kib),
        mib(sm.anon_kib),
        mib(sm.file_kib),
        sm.threads
    );
    println!(
        "after {} status calls: fushi RSS {:.1} MiB (anon {:.1}), supervisord RSS {:.1} MiB (anon {:.1})",
        warmup + runs + socket_runs,
        mib(fm_after.rss_kib),
        mib(fm_after.anon_kib),
        mib(sm_after.rss_kib),
        mib(sm_after.anon_kib)
    );
    for (label, a, b) in [
        ("p50", percentile(&ours, 0.5), percentile(&theirs, 0.5)),
        ("p99", percentile(&ours, 0.99), percentile(&theirs, 0.99)),
    ] {
        let ratio = a.as_secs_f64() / b.as_secs_f64();
        println!(
            "status round trip {label} ({runs} runs of the command, spawn to exit): fushi {:.2} ms, \
             supervisorctl {:.1} ms, ratio {ratio:.3} (target <= 0.10: {})",
            ms(a),
            ms(b),
            verdict(ratio <= 0.10)
        );
    }
    for (label, a, b) in [
        (
            "p50",
            percentile(&ours_sock, 0.5),
            percentile(&theirs_sock, 0.5),
        ),
        (
            "p99",
            percentile(&ours_sock, 0.99),
            percentile(&theirs_sock, 0.99),
        ),
    ] {
        println!(
            "socket round trip {label} ({socket_runs} in-process requests): fushi {:.0} µs, \
             supervisord XML-RPC {:.0} µs, ratio {:.3} (no target)",
            a.as_secs_f64() * 1e6,
            b.as_secs_f64() * 1e6,
            a.as_secs_f64() / b.as_secs_f64()
        );
    }
    let rss_ratio = fm.rss_kib as f64 / sm.rss_kib as f64;
    println!(
        "idle RSS: fushi {:.1} MiB, supervisord {:.1} MiB, ratio {rss_ratio:.2} (target <= 0.33: {})",
        mib(fm.rss_kib),
        mib(sm.rss_kib),
        verdict(rss_ratio <= 1.0 / 3.0)
    );
    println!(
        "idle CPU over {window:.1} s: fushi {fcpu:.2} % of a core ({fcpu_ns:.3} % by schedstat), \
         supervisord {scpu:.2} % ({scpu_ns:.3} % by schedstat) (no target)"
    );
    println!("stopped with SIGTERM: fushi {fstop}, supervisord {sstop}");
    ExitCode::SUCCESS
}
