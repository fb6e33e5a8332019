"""What the Python benchmarks (bench/peers, bench/front) share: free ports, HTTP probes, a
server started in its own process group and stopped with everything it started, the machine's
description. Imported by path: sys.path gets bench/ first."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(port, path="/health", timeout=1.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return 200 <= r.status < 300
    except Exception:
        return False


def http_json(port, path, timeout=2.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return json.loads(r.read())
    except Exception:
        return None


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine():
    cores = os.cpu_count()
    model = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {"cores": cores, "cpu": model, "kernel": os.uname().release,
            "loadavg": open("/proc/loadavg").read().split()[:3],
            "revision": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                       capture_output=True, text=True).stdout.strip()}


class System:
    """One server: started in its own process group (and cgroup), stopped with everything."""

    label = "?"

    def __init__(self, cgroup=None, env=None):
        self.cgroup = cgroup
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.port = free_port()
        self.logfile = tempfile.NamedTemporaryFile(prefix="bench-", suffix=".log", delete=False)

    def argv(self):
        raise NotImplementedError

    def cwd(self):
        return REPO

    def health_port(self):
        return self.port

    def health_path(self):
        return "/health"

    def start(self, timeout=60):
        def enter():
            os.setsid()
            if self.cgroup:
                with open(self.cgroup.procs_file(), "w") as f:
                    f.write(str(os.getpid()))

        self.proc = subprocess.Popen(self.argv(), cwd=self.cwd(), env=self.env,
                                     stdout=self.logfile, stderr=subprocess.STDOUT,
                                     preexec_fn=enter)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited: {self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.label} not ready within {timeout}s: {self.log_tail()}")

    def ready(self):
        return http_ok(self.health_port(), self.health_path())

    def worker_pids(self):
        """The processes that serve requests (what a kill -9 scenario may hit)."""
        return children(self.proc.pid)

    def stop(self):
        if not self.proc:
            return
        # SIGTERM to the whole group, then SIGKILL for what has not exited (the group outlives
        # its leader: gunicorn's workers, tunerd's).
        for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                pass
        self.proc = None

    def log_tail(self, lines=15):
        self.logfile.flush()
        with open(self.logfile.name, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
