#!/usr/bin/python3
"""The static files benchmark (docs/benchmarks.md, "Static files"): tunerd's [[static]] mount
against nginx (Debian nginx-light, 1 worker process, sendfile on) serving the same files from the
same directory, in one run.

Files: 4 KB and 1 MB. For each: wrk -t2 -c32 for --duration seconds per system, --rounds rounds
interleaved, the median kept; requests/s, MB/s, p99, and the front's CPU time per request.
tunerd runs io_threads = 1 (as nginx's one worker), the demo worker behind it idle.

    bench/static/run.py [--build build] [--duration 6] [--rounds 3] [--out bench/static/results]

Writes <out>/<date>.json and prints the markdown table docs/benchmarks.md records.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "front"))
from benchlib import REPO, System, children, http_ok, log, machine  # noqa: E402
import run as front  # noqa: E402  (bench/front/run.py: Tunerd, FrontSampler, UNITS)

CONNECTIONS = 32
FILES = {"4KB": 4 * 1024, "1MB": 1024 * 1024}


class StaticNginx(System):
    """nginx serving a directory at /static/, as `location /static/ { root ...; }`."""

    def __init__(self, root):
        super().__init__()
        self.label = "nginx"
        self.dir = tempfile.mkdtemp(prefix="bench-nginx-static-")
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(f"""
daemon off;
master_process on;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    server {{
        listen 127.0.0.1:{self.port} backlog=2048;
        keepalive_requests 1000000;
        location /static/ {{
            alias {root}/;
            expires 30d;
        }}
    }}
}}
""")

    def argv(self):
        return [shutil.which("nginx") or "/usr/sbin/nginx", "-c", self.conf, "-p", self.dir]

    def ready(self):
        return http_ok(self.port, "/static/4KB.bin")

    def front_pids(self):
        return [self.proc.pid] + children(self.proc.pid)

    def stop(self):
        super().stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def make_tunerd(build, root):
    extra = f'[[static]]\nprefix = "/static/"\nroot = "{root}"\nmax_age = "30d"\n'
    return front.Tunerd(build, '"builtin:demo"', 1, 1, 1, extra=extra)


def wrk(port, path, seconds):
    out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency",
                          f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", out)
    scale = {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1, "GB": 1024}
    mb_s = float(transfer.group(1)) * scale[transfer.group(2)] if transfer else 0.0
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": rps, "mb_s": mb_s,
            "p99_ms": float(p99.group(1)) * front.UNITS[p99.group(2)] if p99 else None,
            "errors": (int(non2xx.group(1)) if non2xx else 0) +
                      (sum(int(x) for x in errors.groups()) if errors else 0)}


def measure(system, path, duration):
    with front.running([system]):
        wrk(system.port, path, 1)  # warm-up: connections, page cache
        with front.FrontSampler(system.front_pids()) as sampler:
            result = wrk(system.port, path, duration)
    result["cpu_us_per_request"] = sampler.cpu_s * 1e6 / max(1.0, result["rps"] * duration)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(REPO, "build"))
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            print(f"static bench: {tool} missing: scripts/install-deps --bench", file=sys.stderr)
            return 1
    root = tempfile.mkdtemp(prefix="bench-static-root-")
    os.chmod(root, 0o755)
    for name, size in FILES.items():
        with open(os.path.join(root, f"{name}.bin"), "wb") as f:
            f.write(os.urandom(size))
    results = {"started": datetime.datetime.utcnow().isoformat(timespec="seconds") + "Z",
               "machine": machine(), "duration_s": args.duration, "rounds": args.rounds,
               "connections": CONNECTIONS, "files": {}}
    try:
        for name in FILES:
            path = f"/static/{name}.bin"
            runs = {"nginx": [], "tunerd": []}
            log(f"== {name}")
            for r in range(args.rounds):
                for label, make in (("nginx", lambda: StaticNginx(root)),
                                    ("tunerd", lambda: make_tunerd(args.build, root))):
                    result = measure(make(), path, args.duration)
                    runs[label].append(result)
                    log(f"  round {r + 1} {label:6s} {result['rps']:9.0f} rps "
                        f"{result['mb_s']:8.1f} MB/s  p99 {result['p99_ms']:.2f} ms  "
                        f"cpu {result['cpu_us_per_request']:.1f} us/req  errors {result['errors']}")
            results["files"][name] = {
                "runs": runs,
                "median": {label: {k: statistics.median(x[k] for x in rs)
                                   for k in ("rps", "mb_s", "p99_ms", "cpu_us_per_request")}
                           | {"errors": sum(x["errors"] for x in rs)}
                           for label, rs in runs.items()}}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, results["started"][:19].replace(":", "") + ".json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"Static files, {results['started']}, {results['machine']['cores']} cores, revision "
          f"{results['machine']['revision']}, wrk -t2 -c{CONNECTIONS} for {args.duration} s, "
          f"median of {args.rounds}\n")
    print("| file | server | requests/s | MB/s | × nginx | p99 | CPU per request | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for name, case in results["files"].items():
        m = case["median"]
        for label in ("nginx", "tunerd"):
            r = m[label]
            print(f"| {name} | {label} | {r['rps']:.0f} | {r['mb_s']:.1f} | "
                  f"{r['rps'] / m['nginx']['rps']:.2f} | {r['p99_ms']:.2f} ms | "
                  f"{r['cpu_us_per_request']:.1f} µs | {r['errors']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
