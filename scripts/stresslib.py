"""What scripts/inject-faults and scripts/stress share: durations and timestamps, the fushi CLI, configs, audit and status, mounts and disk fillers, and fsynced JSONL.

Standard library only: CI machines have python3 and nothing else is installed for these
scripts; the product work is done by the fushi binary they drive.
"""

import datetime
import errno
import json
import os
import re
import shutil
import subprocess
import time
import tomllib

# What a script that needs something missing exits with (never a silent skip).
EXIT_MISSING = 2


class Missing(Exception):
    """Something the script needs is not there (root, a program, a device): exit 2."""


class Failed(Exception):
    """An operation on the world failed in a way the run cannot go on from."""


# ---------------------------------------------------------------------------------------------
# Time


def monotonic():
    return time.monotonic()


def now_ts():
    """The wall clock as RFC 3339 in UTC with milliseconds, as fushi writes its own timestamps."""
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_ts(ts):
    """An RFC 3339 timestamp (fushi's or ours) as seconds since the epoch."""
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text):
    """`500ms`, `40s`, `10m`, `1m30s`, `1h` as seconds; a bare number is seconds."""
    s = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", s)
    if not parts or "".join(n + u for n, u in parts) != s:
        raise ValueError(f"{text!r} is not a duration (e.g. 500ms, 40s, 10m, 1m30s)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def parse_span(text):
    """`3s` (always that long) or `2s-8s` (uniformly between) as (low, high) seconds."""
    if "-" in text:
        lo, hi = (parse_duration(p) for p in text.split("-", 1))
    else:
        lo = hi = parse_duration(text)
    if lo < 0 or hi < lo:
        raise ValueError(f"{text!r}: the span's end comes before its start")
    return lo, hi


def fmt_secs(s):
    """Seconds as a person reads them: `850 ms`, `5.1 s`, `10m00s`."""
    if s is None:
        return "n/a"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m}m{sec:02d}s"


def fmt_step(text):
    """A config duration as the backoff line shows it (`5s`, `500ms`)."""
    return text.replace(" ", "")


# ---------------------------------------------------------------------------------------------
# Programs and prerequisites


def require(root=False, programs=(), devices=()):
    """Raises Missing naming everything absent at once, so one run tells the whole story."""
    missing = []
    if root and os.geteuid() != 0:
        missing.append("root (it mounts filesystems and signals FUSE daemons)")
    for p in programs:
        if shutil.which(p) is None:
            missing.append(f"the program {p!r} on PATH{PACKAGES.get(p, '')}")
    for d in devices:
        if not os.path.exists(d):
            missing.append(f"the device {d}")
    if missing:
        raise Missing("needs " + "; ".join(missing))


PACKAGES = {
    "bindfs": " (apt-get install bindfs)",
    "mount": " (apt-get install mount)",
    "umount": " (apt-get install mount)",
    "losetup": " (apt-get install mount)",
    "mkfs.ext4": " (apt-get install e2fsprogs)",
}


def run(argv, check=True, timeout=60):
    """Runs a program to its end; with `check`, a failure raises Failed quoting its stderr."""
    try:
        p = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise Failed(f"{' '.join(argv)} did not finish within {timeout} s")
    except OSError as e:
        raise Failed(f"cannot run {argv[0]}: {e}")
    if check and p.returncode != 0:
        raise Failed(f"{' '.join(argv)} exited {p.returncode}: {p.stderr.strip()}")
    return p


# The environment a fushi command runs in: nothing of this machine's may point it at another
# daemon's socket or config.
def clean_env():
    env = dict(os.environ)
    for k in ("XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "NOTIFY_SOCKET", "WATCHDOG_USEC",
              "WATCHDOG_PID", "JOURNAL_STREAM", "LISTEN_FDS", "LISTEN_PID"):
        env.pop(k, None)
    return env


class Fushi:
    """The fushi CLI of one binary."""

    def __init__(self, binary):
        self.binary = binary

    def run(self, config, *args, timeout=30):
        """`fushi ARGS -c CONFIG`; returns (exit code, stdout, stderr), code None on a timeout."""
        argv = [self.binary, *args, "-c", config]
        try:
            p = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=clean_env(),
            )
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            return None, out, f"fushi {' '.join(args)} did not answer within {timeout} s"
        return p.returncode, p.stdout, p.stderr

    def json(self, config, *args, timeout=30):
        """A `--json` command's document, or None when it printed none."""
        _, out, _ = self.run(config, *args, "--json", timeout=timeout)
        try:
            return json.loads(out)
        except ValueError:
            return None

    def status(self, config, timeout=10):
        return self.json(config, "status", timeout=timeout)

    def pid(self, config, timeout=5):
        """The pid of the daemon answering on the config's socket, or None."""
        code, out, _ = self.run(config, "pid", timeout=timeout)
        if code != 0:
            return None
        try:
            return int(out.strip().split()[0])
        except (ValueError, IndexError):
            return None


# ---------------------------------------------------------------------------------------------
# Configs


class NodeConfig:
    """What the scripts need of one node's supervisor.toml, read with tomllib."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        try:
            with open(self.path, "rb") as f:
                self.raw = f.read()
            doc = tomllib.loads(self.raw.decode())
        except OSError as e:
            raise Failed(f"cannot read config {self.path}: {e}")
        except (ValueError, UnicodeDecodeError) as e:
            raise Failed(f"config {self.path} does not parse: {e}")
        base = os.path.dirname(self.path)
        node = doc.get("node", {})
        self.id = node.get("id") or os.uname().nodename
        self.data_dir = os.path.normpath(os.path.join(base, node.get("data_dir", "data")))
        storage = doc.get("storage", {})
        self.primary = os.path.normpath(os.path.join(base, storage.get("primary", "data/primary")))
        self.allow_inject = bool(doc.get("control", {}).get("allow_inject", False))
        self.leader = bool(doc.get("leader", {}).get("enabled", False))
        sup = doc.get("supervisor", {})
        self.backoff = sup.get("backoff", ["5s", "10s", "15s"])
        self.collectors = doc.get("collector", [])

    def command_collectors(self):
        return ["collectors/" + c["name"] for c in self.collectors if c.get("kind") == "command"]


# ---------------------------------------------------------------------------------------------
# Audit, status and the primary, read from disk


def audit_size(data_dir):
    try:
        return os.path.getsize(os.path.join(data_dir, "audit.jsonl"))
    except OSError:
        return 0


def read_audit(data_dir, offset=0):
    """The audit events from byte `offset` on (a torn last line is left for later)."""
    try:
        with open(os.path.join(data_dir, "audit.jsonl"), "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return []
    out = []
    for line in data.split(b"\n")[:-1]:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def read_status_file(data_dir):
    try:
        with open(os.path.join(data_dir, "status.json"), "rb") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


def primary_lines(store, stream):
    """Every complete line of `raw/<stream>/*.jsonl` under `store`, parsed, files in name order.

    Returns (records, unparseable): an unterminated last line is an append in progress, not
    counted either way.
    """
    d = os.path.join(store, "raw", *stream.split("/"))
    try:
        names = sorted(n for n in os.listdir(d) if n.endswith(".jsonl"))
    except FileNotFoundError:
        return [], 0
    records, bad = [], 0
    for n in names:
        with open(os.path.join(d, n), "rb") as f:
            data = f.read()
        for line in data.split(b"\n")[:-1]:
            try:
                records.append(json.loads(line))
            except ValueError:
                bad += 1
    return records, bad


# ---------------------------------------------------------------------------------------------
# Mounts and fillers


def _unescape_mount(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_on(path):
    """How many mounts sit on `path` (read from mountinfo: the mount itself is never touched)."""
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    want = os.path.realpath(path)
    return sum(1 for l in lines if len(l.split(" ")) > 4 and _unescape_mount(l.split(" ")[4]) == want)


def remount(mnt, how, bound=30.0):
    """`mount -o remount,bind,HOW MNT`: only this mount's flags change. A mount cannot turn
    read-only while a file on it is open for writing (EBUSY), so that is tried again until it
    catches the daemon between two appends, up to `bound` seconds."""
    opts = f"remount,bind,{how}"
    deadline = monotonic() + bound
    while True:
        p = run(["mount", "-o", opts, mnt], check=False)
        if p.returncode == 0:
            return
        if "busy" not in p.stderr or monotonic() > deadline:
            raise Failed(f"mount -o {opts} {mnt}: {p.stderr.strip()}")
        time.sleep(0.02)


def fill(directory, name="fushi-stress-filler"):
    """Takes every free block of the filesystem holding `directory` with one file; returns the
    bytes it added. Called again it tops the file up (what the daemon freed meanwhile)."""
    path = os.path.join(directory, name)
    added = 0
    chunk = b"\0" * (1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for piece in (chunk, chunk[:4096], chunk[:512], chunk[:1]):
            while True:
                try:
                    n = os.write(fd, piece)
                except OSError as e:
                    if e.errno in (errno.ENOSPC, errno.EDQUOT):
                        break
                    raise
                added += n
                if n < len(piece):
                    break
        try:
            os.fsync(fd)
        except OSError:
            pass
    finally:
        os.close(fd)
    return added


def unfill(directory, name="fushi-stress-filler"):
    """Removes the filler; returns whether there was one."""
    try:
        os.unlink(os.path.join(directory, name))
        return True
    except FileNotFoundError:
        return False


def free_bytes(directory):
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


# ---------------------------------------------------------------------------------------------
# Processes


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def children(pid):
    """The pids whose parent is `pid` (from /proc/<n>/stat), with their command lines."""
    out = []
    for n in os.listdir("/proc"):
        if not n.isdigit():
            continue
        try:
            with open(f"/proc/{n}/stat") as f:
                stat = f.read()
            # The comm field may hold spaces and parentheses: the ppid follows its last ')'.
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid != pid:
                continue
            with open(f"/proc/{n}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            out.append((int(n), cmd))
        except (OSError, ValueError):
            continue
    return out


def rss_bytes(pid):
    """VmRSS of a live process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------------------------------
# Output


class Jsonl:
    """An append-only JSONL file, each line flushed and fsynced as it is written, so a killed
    script leaves every line it wrote."""

    def __init__(self, path):
        self.path = path
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        self.f = open(path, "a", encoding="utf-8")

    def write(self, doc):
        self.f.write(json.dumps(doc, sort_keys=False) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self):
        self.f.close()


def write_json(path, doc):
    """Writes `doc` atomically (temp file, fsync, rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def last_per_id(lines):
    """The injector's log keeps a fault's begin line and its end line under one `id`: the last
    line of each id is its outcome."""
    out = {}
    for l in lines:
        out[l.get("id")] = l
    return [out[k] for k in sorted(out, key=lambda k: (k is None, k))]


def read_jsonl(path):
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        continue
    except FileNotFoundError:
        pass
    return out
