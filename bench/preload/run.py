#!/usr/bin/python3
"""Per-worker memory (PSS) of examples/flask, side by side in one run (docs/benchmarks.md,
"Preloading"):

* tunerd preloaded, waitress: etc/examples/flask.toml with workers.server = "waitress", N slots,
  each one process forked from tunerd's preloader serving with waitress;
* tunerd preloaded, gunicorn: the same with workers.server = "gunicorn", N slots, each one
  gunicorn gthread worker forked from tunerd's preloader (tunerd stands in for its arbiter);
* gunicorn --preload -w N --threads T: its master imports the app, its N workers are forked;
* tunerd -w 1 slots: the same config with workers.command = gunicorn -w 1 per slot (no preload).

Each system runs alone (one after the other, same app, same EXAMPLE_RSS_MB ballast), gets the
same warm-up requests, then every process is measured from /proc/PID/smaps_rollup (PSS: shared
pages divided among the processes that map them). The two preloaded tunerd rows are then loaded
with wrk through tunerd's front on the same routes (--seconds each): requests per second, so
the servers are compared on throughput as well as memory. Usage:

    bench/preload/run.py --build build [--workers 4] [--threads 4] [--rss-mb 50] [--seconds 5]

Prints a Markdown table; writes JSON to bench/preload/results/.
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchlib import REPO, PYTHON, System, children, free_port, http_json, log, machine  # noqa: E402

FLASK_DIR = os.path.join(REPO, "examples", "flask")
W1_COMMAND = (
    '["/usr/bin/python3", "-m", "gunicorn", "-w", "1", "--threads", "{threads}", '
    '"-b", "unix:{socket}", "--chdir", ".", "app:app"]'
)


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree(pid):
    out = [pid]
    for child in children(pid):
        out += tree(child)
    return out


def set_workers_keys(toml_text, keys):
    """The [workers] keys of the example replaced (or added): values are TOML text."""
    keys = dict(keys)
    out, section = [], None
    for line in toml_text.splitlines():
        if line.startswith("["):
            section = line.strip()
        name = line.split("=", 1)[0].strip() if "=" in line and not line.startswith("#") else None
        if section == "[workers]" and name in keys:
            line = f"{name} = {keys.pop(name)}"
        out.append(line)
        if line.strip() == "[workers]":
            out.append("__ADDED__")
    added = "\n".join(f"{k} = {v}" for k, v in keys.items())
    return "\n".join(out).replace("__ADDED__", added) + "\n"


# Routes loaded through the front: the app's cheapest (the server's own cost dominates) and a
# /mixed-like one (1 ms of CPU, 5 ms of waiting).
LOAD_ROUTES = ("/", "/work?cpu_ms=1&io_ms=5")


def wrk_rps(port, path, seconds, connections):
    """wrk's requests per second on one route, and its count of errors and non-2xx answers."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=seconds + 30,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    bad = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|Socket errors:.*?timeout)"
                                         r"\D*(\d+)", out))
    return {"rps": float(rps.group(1)) if rps else 0.0, "bad": bad}


class Tunerd(System):
    def __init__(self, build, workers, threads, preload, env, server="gunicorn"):
        super().__init__(env=env)
        self.label = f"tunerd preloaded, {server}" if preload else "tunerd -w 1 slots"
        self.loaded = preload
        self.build = build
        self.admin = free_port()
        self.state = tempfile.mkdtemp(prefix="bench-preload-")
        with open(os.path.join(REPO, "etc", "examples", "flask.toml")) as f:
            example = f.read()
        keys = {"dir": f'"{FLASK_DIR}"', "mode": '"fixed"', "count": str(workers),
                "threads": str(threads)}
        if preload:
            keys["server"] = f'"{server}"'
        else:
            keys.update({"preload": '""', "command": W1_COMMAND})
        example = set_workers_keys(example, keys)
        self.config = os.path.join(self.state, "tunerd.toml")
        with open(self.config, "w") as f:
            f.write(
                f'[server]\nlisten = "127.0.0.1:{self.port}"\n'
                f'[admin]\nlisten = "127.0.0.1:{self.admin}"\n'
                f'[state]\ndir = "{self.state}"\n\n' + example
            )
        self.workers = workers

    def argv(self):
        return [os.path.join(self.build, "tuner", "tunerd"), "--config", self.config]

    def ready(self):
        w = http_json(self.admin, "/workers") or {}
        return w.get("ready", 0) >= self.workers

    def measure(self):
        w = http_json(self.admin, "/workers") or {}
        slots = [sum(pss_kb(p) for p in tree(x["pid"])) for x in w.get("workers", [])]
        slot_pids = {p for x in w.get("workers", []) for p in tree(x["pid"])}
        own = sum(pss_kb(p) for p in tree(self.proc.pid) if p not in slot_pids)
        preloader = (w.get("preloader") or {}).get("pid")
        return {
            "per_worker_kb": slots,
            "overhead_kb": own,  # tunerd itself, and its preloader when there is one
            "preloader_kb": pss_kb(preloader) if preloader else None,
            "total_kb": sum(slots) + own,
        }


class GunicornPreload(System):
    def __init__(self, workers, threads, env):
        super().__init__(env=env)
        self.label = "gunicorn --preload"
        self.workers, self.threads = workers, threads

    def argv(self):
        return [PYTHON, "-m", "gunicorn", "--preload", "-w", str(self.workers), "--threads",
                str(self.threads), "-b", f"127.0.0.1:{self.port}", "--chdir", FLASK_DIR,
                "app:app"]

    def ready(self):
        return super().ready() and len(children(self.proc.pid)) >= self.workers

    def measure(self):
        workers = [pss_kb(p) for p in children(self.proc.pid)]
        master = pss_kb(self.proc.pid)
        return {"per_worker_kb": workers, "overhead_kb": master, "preloader_kb": None,
                "total_kb": sum(workers) + master}


def warm(port, requests):
    for i in range(requests):
        path = ("/", "/cpu?ms=1", "/io?ms=1", "/work?cpu_ms=1&io_ms=1")[i % 4]
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).read()
        except Exception as e:  # counted in the log, not fatal: the memory is what is measured
            log(f"warm-up {path}: {e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(REPO, "build"))
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rss-mb", type=int, default=50, help="EXAMPLE_RSS_MB: import ballast")
    parser.add_argument("--requests", type=int, default=400, help="warm-up requests per system")
    parser.add_argument("--seconds", type=int, default=5, help="wrk run per route (0 = none)")
    args = parser.parse_args()
    env = {"EXAMPLE_RSS_MB": str(args.rss_mb), "PYTHONDONTWRITEBYTECODE": "1"}
    systems = [
        Tunerd(args.build, args.workers, args.threads, True, env, "waitress"),
        Tunerd(args.build, args.workers, args.threads, True, env, "gunicorn"),
        GunicornPreload(args.workers, args.threads, env),
        Tunerd(args.build, args.workers, args.threads, False, env),
    ]
    results = []
    for s in systems:
        log(f"{s.label}: starting {args.workers} workers")
        try:
            s.start(timeout=90)
            warm(s.port, args.requests)
            time.sleep(1)
            m = s.measure()
            if getattr(s, "loaded", False) and args.seconds > 0:
                m["load"] = {path: wrk_rps(s.port, path, args.seconds,
                                           args.workers * args.threads)
                             for path in LOAD_ROUTES}
        finally:
            s.stop()
        m["label"] = s.label
        m["mean_worker_kb"] = sum(m["per_worker_kb"]) / max(1, len(m["per_worker_kb"]))
        results.append(m)
    base = next(m for m in results if m["label"] == "gunicorn --preload")["mean_worker_kb"]
    print(f"| system ({args.workers} workers, {args.threads} threads, EXAMPLE_RSS_MB="
          f"{args.rss_mb}) | PSS per worker | × gunicorn --preload's | rest (master, tunerd + "
          f"preloader) | total |")
    print("|---|---|---|---|---|")
    for m in results:
        print(f"| {m['label']} | {m['mean_worker_kb'] / 1024:.1f} MB | "
              f"{m['mean_worker_kb'] / base:.2f} | {m['overhead_kb'] / 1024:.1f} MB | "
              f"{m['total_kb'] / 1024:.1f} MB |")
    loaded = [m for m in results if "load" in m]
    if loaded:
        print(f"\n| through tunerd ({args.workers * args.threads} connections, {args.seconds} s "
              f"a route) | " + " | ".join(f"`{p}` req/s" for p in LOAD_ROUTES) + " | errors |")
        print("|---|" + "---|" * (len(LOAD_ROUTES) + 1))
        for m in loaded:
            print(f"| {m['label']} | " +
                  " | ".join(f"{m['load'][p]['rps']:.0f}" for p in LOAD_ROUTES) +
                  f" | {sum(m['load'][p]['bad'] for p in LOAD_ROUTES)} |")
    out = os.path.join(REPO, "bench", "preload", "results")
    os.makedirs(out, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(out, f"preload-{stamp}.json"), "w") as f:
        json.dump({"machine": machine(), "args": vars(args), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
