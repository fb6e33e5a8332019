#!/usr/bin/python3
"""The front benchmark (docs/benchmarks.md, "Front"): what tunerd's front costs, against nginx
in front of the same upstream and against no front at all, in one run.

Upstreams: the demo worker (1 process x 32 threads, no CPU or I/O per request) and gunicorn
hello-world (4 sync workers; tunerd runs 4 slots of `gunicorn -w 1`). For each: wrk at 32
connections (throughput) and at 1 connection (latency: the front's added p50 and p99), each
system measured --rounds times, interleaved, the median kept. nginx (Debian nginx-light) runs
worker_processes = tunerd's io_threads with upstream keepalive 32, over the same Unix socket
transport tunerd uses; tunerd runs mode = "fixed" at the direct run's shape. Then tunerd's RSS:
idle with 8 workers and under load with 32. Then the micro-cache ([cache]) on and off in front of
the demo worker on cacheable routes.

    bench/front/run.py [--build build] [--duration 8] [--rounds 3] [--io-threads 1]
                       [--only demo,gunicorn,backlog,rss,cache,compression] [--out bench/front/results]

compression: tunerd alone with [compression] off, gzip 6, br 4 and gzip 1, on the demo worker's
10 KB JSON (/payload?size=10240) with Accept-Encoding (no nginx: only tunerd against itself).

Writes <out>/<date>.json and prints the markdown tables docs/benchmarks.md records.
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
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchlib import (REPO, PYTHON, System, children, free_port, http_json, http_ok,  # noqa: E402
                      log, machine, rss_kb)

HERE = os.path.dirname(os.path.abspath(__file__))
CONNECTIONS = 32
GUNICORN_WORKERS = 4
DEMO_THREADS = 32


# ---- the systems ---------------------------------------------------------------------------


class DemoWorker(System):
    """tunerd's built-in demo worker alone, on TCP (direct) or a Unix socket (behind nginx)."""

    def __init__(self, build, socket_path=None):
        super().__init__()
        self.build, self.socket_path = build, socket_path
        self.label = "demo worker"

    def argv(self):
        where = ["--socket", self.socket_path] if self.socket_path else ["--port", str(self.port)]
        return [os.path.join(self.build, "tuner", "tunerd"), "demo-worker", *where,
                "--threads", str(DEMO_THREADS), "--cpu-ms", "0", "--io-ms", "0", "--rss-mb", "0"]

    def ready(self):
        return os.path.exists(self.socket_path) if self.socket_path else http_ok(self.port, "/")

    def front_pids(self):
        return [self.proc.pid]  # no front: the upstream itself (CPU not compared)


class HelloGunicorn(System):
    def __init__(self, socket_path=None, workers=GUNICORN_WORKERS):
        super().__init__()
        self.socket_path, self.workers = socket_path, workers
        self.label = "gunicorn"

    def cwd(self):
        return HERE

    def argv(self):
        bind = f"unix:{self.socket_path}" if self.socket_path else f"127.0.0.1:{self.port}"
        return [PYTHON, "-m", "gunicorn", "-w", str(self.workers), "-b", bind, "--backlog", "2048",
                "hello:app"]

    def ready(self):
        return os.path.exists(self.socket_path) if self.socket_path else http_ok(self.port, "/")

    def front_pids(self):
        return [self.proc.pid] + children(self.proc.pid)


class Nginx(System):
    """nginx in front of a Unix-socket upstream, as a small VPS runs it."""

    def __init__(self, socket_path, workers):
        super().__init__()
        self.label = "nginx"
        self.dir = tempfile.mkdtemp(prefix="bench-nginx-")
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(f"""
daemon off;
master_process on;
user root;
worker_processes {workers};
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    upstream app {{ server unix:{socket_path}; keepalive {CONNECTIONS}; }}
    server {{
        listen 127.0.0.1:{self.port} backlog=2048;
        keepalive_requests 1000000;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
""")

    def argv(self):
        return [shutil.which("nginx") or "/usr/sbin/nginx", "-c", self.conf, "-p", self.dir]

    def ready(self):
        return http_ok(self.port, "/")

    def front_pids(self):
        return [self.proc.pid] + children(self.proc.pid)

    def stop(self):
        super().stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# server.worker_backlog for every tunerd of the run (--worker-backlog); None: tunerd's default.
WORKER_BACKLOG = None


class Tunerd(System):
    """tunerd in mode = "fixed" at the direct run's shape, features off."""

    def __init__(self, build, command, count, threads, io_threads, extra=""):
        super().__init__()
        self.label = "tunerd"
        self.build = build
        self.admin = free_port()
        self.state = tempfile.mkdtemp(prefix="bench-tunerd-")
        self.config = os.path.join(self.state, "tunerd.toml")
        self.count = count
        with open(self.config, "w") as f:
            f.write(f"""[server]
listen = "127.0.0.1:{self.port}"
io_threads = {io_threads}
max_queue = 4096
{"" if WORKER_BACKLOG is None else f"worker_backlog = {WORKER_BACKLOG}"}
[admin]
listen = "127.0.0.1:{self.admin}"
[state]
dir = "{self.state}"
[log]
level = "warn"
[workers]
command = {command}
dir = "{HERE}"
mode = "fixed"
count = {count}
threads = {threads}
[demo]
cpu_ms = 0
io_ms = 0
rss_mb = 0
{extra}
""")

    def argv(self):
        return [os.path.join(self.build, "tuner", "tunerd"), "--config", self.config]

    def ready(self):
        health = http_json(self.admin, "/health")
        return bool(health) and health.get("workers", {}).get("ready", 0) >= self.count

    def front_pids(self):
        return [self.proc.pid]

    def stop(self):
        super().stop()
        shutil.rmtree(self.state, ignore_errors=True)


# ---- measuring -----------------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(port, connections, seconds, threads=None, path="/", headers=()):
    threads = threads or min(2, connections)
    extra = [arg for h in headers for arg in ("-H", h)]
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
                          *extra, f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        lat[f"p{pct}_ms"] = float(value) * UNITS[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": rps, **lat, "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0}


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


class FrontSampler:
    """While a measurement runs: the front's highest RSS (its main process) and the CPU time of
    its processes (tunerd: itself; nginx: master and workers)."""

    def __init__(self, pids):
        self.pids, self.peak, self.stop = pids, 0, threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.cpu_s = 0.0

    def run(self):
        while not self.stop.wait(0.2):
            self.peak = max(self.peak, rss_kb(self.pids[0]))

    def __enter__(self):
        self.ticks = cpu_ticks(self.pids)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.cpu_s = (cpu_ticks(self.pids) - self.ticks) / os.sysconf("SC_CLK_TCK")


def running(systems):
    """Starts systems in order (upstream first); yields; stops them in reverse."""

    class Ctx:
        def __enter__(self):
            self.started = []
            for s in systems:
                s.start()
                self.started.append(s)
            return systems

        def __exit__(self, *exc):
            for s in reversed(self.started):
                s.stop()

    return Ctx()


def measure(make_systems, args):
    """One setup: started, warmed, wrk at 32 then 1 connection; the front's peak RSS."""
    systems = make_systems()
    with running(systems):
        front = systems[-1]
        wrk(front.port, CONNECTIONS, 2)  # warm-up: connections, caches, the upstream's threads
        with FrontSampler(front.front_pids()) as sampler:
            many = wrk(front.port, CONNECTIONS, args.duration)
        one = wrk(front.port, 1, max(3, args.duration // 2))
    cpu_us = sampler.cpu_s * 1e6 / max(1.0, many["rps"] * args.duration)
    return {"rps": many["rps"], "p99_ms_32": many.get("p99_ms"), "non_2xx": many["non_2xx"],
            "socket_errors": many["socket_errors"] + one["socket_errors"],
            "p50_ms_1": one.get("p50_ms"), "p99_ms_1": one.get("p99_ms"), "rps_1": one["rps"],
            "front_rss_kb": sampler.peak, "front_cpu_us_per_request": cpu_us}


def upstream_case(name, args, direct, nginx, tunerd):
    log(f"== {name}")
    runs = {"direct": [], "nginx": [], "tunerd": []}
    for r in range(args.rounds):
        for label, make in (("direct", direct), ("nginx", nginx), ("tunerd", tunerd)):
            result = measure(make, args)
            runs[label].append(result)
            log(f"  round {r + 1} {label:7s} {result['rps']:9.0f} rps  "
                f"p50@1 {result['p50_ms_1'] * 1000:6.0f} us  p99@1 {result['p99_ms_1'] * 1000:6.0f} us"
                f"  errors {result['socket_errors']} non-2xx {result['non_2xx']}"
                f"  rss {result['front_rss_kb'] / 1024:.1f} MB"
                f"  front cpu {result['front_cpu_us_per_request']:.1f} us/request")
    summary = {}
    for label, results in runs.items():
        summary[label] = {k: statistics.median(x[k] for x in results)
                          for k in ("rps", "p50_ms_1", "p99_ms_1", "front_rss_kb",
                                    "front_cpu_us_per_request")}
        summary[label]["errors"] = sum(x["socket_errors"] + x["non_2xx"] for x in results)
    return {"runs": runs, "median": summary}


def demo_case(args, tmp):
    sock = os.path.join(tmp, "demo.sock")
    command = '"builtin:demo"'
    return upstream_case(
        f"demo worker, {DEMO_THREADS} threads", args,
        lambda: [DemoWorker(args.build)],
        lambda: [DemoWorker(args.build, sock), Nginx(sock, args.io_threads)],
        lambda: [Tunerd(args.build, command, 1, DEMO_THREADS, args.io_threads)])


def gunicorn_case(args, tmp):
    sock = os.path.join(tmp, "gunicorn.sock")
    command = json.dumps([PYTHON, "-m", "gunicorn", "-w", "1", "-b", "unix:{socket}", "hello:app"])
    return upstream_case(
        f"gunicorn hello-world, {GUNICORN_WORKERS} sync workers", args,
        lambda: [HelloGunicorn()],
        lambda: [HelloGunicorn(sock), Nginx(sock, args.io_threads)],
        lambda: [Tunerd(args.build, command, GUNICORN_WORKERS, 1, args.io_threads)])


def backlog_case(args):
    """server.worker_backlog 0 against 1 (or --backlogs), tunerd alone in front of 4 sync
    gunicorn workers, the order rotated each round (docs/architecture.md, step 3)."""
    values = args.backlogs.split(",")
    log(f"== worker backlog: {' against '.join(values)}, gunicorn hello-world")
    command = json.dumps([PYTHON, "-m", "gunicorn", "-w", "1", "-b", "unix:{socket}", "hello:app"])

    def with_backlog(backlog):
        def make():
            t = Tunerd(args.build, command, GUNICORN_WORKERS, 1, args.io_threads)
            with open(t.config) as f:
                text = f.read()
            with open(t.config, "w") as f:
                f.write(text.replace("max_queue = 4096\n",
                                     f"max_queue = 4096\nworker_backlog = {backlog}\n"))
            return [t]
        return make

    runs = {v: [] for v in values}
    for r in range(max(2, args.rounds)):
        shift = r % len(values)
        for backlog in values[shift:] + values[:shift]:
            result = measure(with_backlog(backlog), args)
            runs[backlog].append(result)
            log(f"  round {r + 1} backlog {backlog} {result['rps']:9.0f} rps  front cpu "
                f"{result['front_cpu_us_per_request']:.1f} us/request  errors "
                f"{result['socket_errors'] + result['non_2xx']}")
    return {"runs": runs,
            "median": {k: {"rps": statistics.median(x["rps"] for x in v),
                           "front_cpu_us_per_request":
                               statistics.median(x["front_cpu_us_per_request"] for x in v),
                           "errors": sum(x["socket_errors"] + x["non_2xx"] for x in v)}
                       for k, v in runs.items()}}


COMPRESSION_PATH = "/payload?size=10240"  # the demo app's 10 KB JSON (demo_worker.hpp)


def compression_case(args):
    """tunerd with [compression] on (gzip at level 6, br at quality 4) and off, the demo worker's
    10 KB JSON, wrk at 32 connections sending Accept-Encoding; the front's CPU per request and
    the bytes on the wire per response (from /performance)."""
    log("== compression")
    command = '"builtin:demo"'
    setups = (("off", "gzip", "[compression]\nenabled = false\n"), ("gzip 6", "gzip", ""),
              ("br 4", "br", ""), ("gzip 1", "gzip", "[compression]\nlevel = 1\n"))
    runs = {label: [] for label, _, _ in setups}
    for r in range(args.rounds):
        for label, coding, extra in setups:
            t = Tunerd(args.build, command, 1, DEMO_THREADS, args.io_threads, extra)
            with running([t]):
                headers = [f"Accept-Encoding: {coding}"]
                wrk(t.port, CONNECTIONS, 2, path=COMPRESSION_PATH, headers=headers)
                before = (http_json(t.admin, "/performance") or {}).get("front", {})
                with FrontSampler(t.front_pids()) as sampler:
                    result = wrk(t.port, CONNECTIONS, args.duration, path=COMPRESSION_PATH,
                                 headers=headers)
                after = (http_json(t.admin, "/performance") or {}).get("front", {})
            z0, z1 = before.get("compression", {}), after.get("compression", {})
            n = max(1.0, result["rps"] * args.duration)
            result["front_cpu_us_per_request"] = sampler.cpu_s * 1e6 / n
            result["compress_cpu_us_per_request"] = (
                (z1.get("cpu_seconds", 0) - z0.get("cpu_seconds", 0)) * 1e6 / n)
            out_bytes = z1.get("bytes_out", 0) - z0.get("bytes_out", 0)
            responses = z1.get("responses", 0) - z0.get("responses", 0)
            result["bytes_per_response"] = out_bytes / responses if responses else 10240
            runs[label].append(result)
            log(f"  round {r + 1} {label:7s} {result['rps']:9.0f} rps  front cpu "
                f"{result['front_cpu_us_per_request']:.1f} us/request (compressing "
                f"{result['compress_cpu_us_per_request']:.1f})  "
                f"{result['bytes_per_response']:.0f} B/response  errors "
                f"{result['socket_errors']} non-2xx {result['non_2xx']}")
    summary = {label: {k: statistics.median(x[k] for x in results)
                       for k in ("rps", "p99_ms", "front_cpu_us_per_request",
                                 "compress_cpu_us_per_request", "bytes_per_response")}
               for label, results in runs.items()}
    return {"runs": runs, "median": summary}


def rss_case(args):
    log("== tunerd RSS")
    out = {}
    command = '"builtin:demo"'
    t = Tunerd(args.build, command, 8, 1, args.io_threads)
    with running([t]):
        time.sleep(3)
        out["idle_8_workers_kb"] = rss_kb(t.proc.pid)
    t = Tunerd(args.build, command, 32, 1, args.io_threads)
    with running([t]):
        wrk(t.port, CONNECTIONS, 2)
        with FrontSampler(t.front_pids()) as sampler:
            wrk(t.port, CONNECTIONS, args.duration)
        out["load_32_workers_kb"] = sampler.peak
    log(f"  idle, 8 workers: {out['idle_8_workers_kb'] / 1024:.1f} MB;"
        f"  under load, 32 workers: {out['load_32_workers_kb'] / 1024:.1f} MB")
    return out


# The micro-cache: a cacheable route of the demo worker (Cache-Control: max-age=60) with no cost
# per request, and one that takes 5 ms in the app (32 threads: at most 6400 rps uncached).
CACHE_ROUTES = ("/cache?max_age=60", "/cache?max_age=60&ms=5")


def cache_case(args):
    log("== micro-cache on/off")
    command = '"builtin:demo"'
    out = {}
    for route in CACHE_ROUTES:
        runs = {"off": [], "on": []}
        for r in range(args.rounds):
            for label, extra in (("off", ""), ("on", '[cache]\nsize = "64MB"\n')):
                t = Tunerd(args.build, command, 1, DEMO_THREADS, args.io_threads, extra)
                with running([t]):
                    wrk(t.port, CONNECTIONS, 2, path=route)
                    with FrontSampler(t.front_pids()) as sampler:
                        many = wrk(t.port, CONNECTIONS, args.duration, path=route)
                    one = wrk(t.port, 1, max(3, args.duration // 2), path=route)
                    stats = http_json(t.admin, "/performance/cache/stats") or {}
                result = {"rps": many["rps"], "p99_ms_32": many.get("p99_ms"),
                          "p50_ms_1": one.get("p50_ms"),
                          "errors": many["non_2xx"] + many["socket_errors"] + one["socket_errors"],
                          "front_rss_kb": sampler.peak,
                          "front_cpu_us_per_request":
                              sampler.cpu_s * 1e6 / max(1.0, many["rps"] * args.duration),
                          "hit_ratio": stats.get("hit_ratio", 0.0)}
                runs[label].append(result)
                log(f"  {route} round {r + 1} cache {label:3s} {result['rps']:9.0f} rps  "
                    f"p50@1 {result['p50_ms_1'] * 1000:6.0f} us  hit ratio {result['hit_ratio']:.3f}"
                    f"  front cpu {result['front_cpu_us_per_request']:.1f} us/request")
        out[route] = {"runs": runs, "median": {
            label: {k: statistics.median(x[k] for x in results)
                    for k in ("rps", "p50_ms_1", "front_rss_kb", "front_cpu_us_per_request",
                              "hit_ratio")} | {"errors": sum(x["errors"] for x in results)}
            for label, results in runs.items()}}
    return out


def report(results):
    print(f"Front benchmark, {results['started']}, {results['machine']['cores']} cores, "
          f"revision {results['machine']['revision']}, io_threads = {results['io_threads']}, "
          f"wrk -c{CONNECTIONS} for {results['duration_s']} s, median of {results['rounds']}\n")
    for key in ("demo", "gunicorn"):
        case = results.get(key)
        if not case:
            continue
        m = case["median"]
        print(f"### {key}\n")
        print("| front | rps at 32 conns | × direct | × nginx | front CPU per request | "
              "p50 at 1 conn | added p50 | p99 at 1 conn | front RSS | errors |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for label in ("direct", "nginx", "tunerd"):
            r = m[label]
            added = (r["p50_ms_1"] - m["direct"]["p50_ms_1"]) * 1000
            added_text = "" if label == "direct" else f"{added:+.0f} µs"
            rss_text = "" if label == "direct" else f"{r['front_rss_kb'] / 1024:.1f} MB"
            cpu_text = "" if label == "direct" else f"{r['front_cpu_us_per_request']:.1f} µs"
            print(f"| {label} | {r['rps']:.0f} | {r['rps'] / m['direct']['rps']:.2f} | "
                  f"{r['rps'] / m['nginx']['rps']:.2f} | {cpu_text} | {r['p50_ms_1'] * 1000:.0f} µs | "
                  f"{added_text} | {r['p99_ms_1'] * 1000:.0f} µs | {rss_text} | {r['errors']} |")
        print()
    if "cache" in results:
        print("### cache\n")
        print("| route | cache | rps at 32 conns | × off | front CPU per request | p50 at 1 conn | "
              "hit ratio | front RSS | errors |")
        print("|---|---|---|---|---|---|---|---|---|")
        for route, case in results["cache"].items():
            m = case["median"]
            for label in ("off", "on"):
                r = m[label]
                print(f"| `{route}` | {label} | {r['rps']:.0f} | {r['rps'] / m['off']['rps']:.2f} | "
                      f"{r['front_cpu_us_per_request']:.1f} µs | {r['p50_ms_1'] * 1000:.0f} µs | "
                      f"{r['hit_ratio']:.3f} | {r['front_rss_kb'] / 1024:.1f} MB | {r['errors']} |")
    if "compression" in results:
        m = results["compression"]["median"]
        print(f"### compression: demo worker {COMPRESSION_PATH}, wrk -c{CONNECTIONS}\n")
        print("| tunerd | rps | × off | p99 | front CPU per request | of it compressing | "
              "bytes per response |")
        print("|---|---|---|---|---|---|---|")
        for label, r in m.items():
            print(f"| {label} | {r['rps']:.0f} | {r['rps'] / m['off']['rps']:.2f} | "
                  f"{r['p99_ms']:.2f} ms | {r['front_cpu_us_per_request']:.1f} µs | "
                  f"{r['compress_cpu_us_per_request']:.1f} µs | {r['bytes_per_response']:.0f} |")
        print()
    if "backlog" in results:
        m = results["backlog"]["median"]
        print("### worker backlog: tunerd alone, 4 sync gunicorn workers\n")
        print(f"| server.worker_backlog | rps at 32 conns | × backlog {next(iter(m))} | "
              "front CPU per request | "
              "errors |")
        print("|---|---|---|---|---|")
        base = m[next(iter(m))]
        for label, r in m.items():
            print(f"| {label} | {r['rps']:.0f} | {r['rps'] / base['rps']:.2f} | "
                  f"{r['front_cpu_us_per_request']:.1f} µs | {r['errors']} |")
        print()
    if "rss" in results:
        r = results["rss"]
        print(f"tunerd RSS: idle with 8 workers {r['idle_8_workers_kb'] / 1024:.1f} MB; "
              f"under load with 32 workers {r['load_32_workers_kb'] / 1024:.1f} MB\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(REPO, "build"))
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--io-threads", type=int, default=1)
    parser.add_argument("--only", default="")
    parser.add_argument("--worker-backlog", type=int,
                        help="server.worker_backlog for tunerd (default: tunerd's own)")
    parser.add_argument("--backlogs", default="0,1",
                        help="the server.worker_backlog values the backlog case compares")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--report", help="only print the report of an earlier results file")
    args = parser.parse_args()
    global WORKER_BACKLOG
    WORKER_BACKLOG = args.worker_backlog
    if args.report:
        report(json.load(open(args.report)))
        return 0
    only = set(filter(None, args.only.split(",")))
    want = lambda name: not only or name in only  # noqa: E731
    for tool in ("wrk", "nginx") if want("demo") or want("gunicorn") else ("wrk",):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            print(f"front bench: {tool} missing: scripts/install-deps --bench", file=sys.stderr)
            return 1
    results = {"started": datetime.datetime.utcnow().isoformat(timespec="seconds") + "Z",
               "machine": machine(), "duration_s": args.duration, "rounds": args.rounds,
               "io_threads": args.io_threads}
    tmp = tempfile.mkdtemp(prefix="bench-front-")
    try:
        if want("demo"):
            results["demo"] = demo_case(args, tmp)
        if want("gunicorn"):
            results["gunicorn"] = gunicorn_case(args, tmp)
        if want("backlog"):
            results["backlog"] = backlog_case(args)
        if want("rss"):
            results["rss"] = rss_case(args)
        if want("cache"):
            results["cache"] = cache_case(args)
        if want("compression"):
            results["compression"] = compression_case(args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, results["started"][:19].replace(":", "") + ".json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
