#!/usr/bin/python3
"""Per-worker memory (PSS) of examples/flask, side by side in one run (docs/benchmarks.md,
"Preloading"):

* tunerd preloaded: etc/examples/flask.toml as it is (workers.preload = "app:app"), N slots, each
  a gunicorn arbiter and its gthread worker forked from tunerd's preloader;
* gunicorn --preload -w N --threads T: its master imports the app, its N workers are forked;
* tunerd -w 1 slots: the same config with workers.command = gunicorn -w 1 per slot (no preload).

Each system runs alone (one after the other, same app, same EXAMPLE_RSS_MB ballast), gets the
same warm-up requests, then every process is measured from /proc/PID/smaps_rollup (PSS: shared
pages divided among the processes that map them). Usage:

    bench/preload/run.py --build build [--workers 4] [--threads 4] [--rss-mb 50]

Prints a Markdown table; writes JSON to bench/preload/results/.
"""

import argparse
import datetime
import json
import os
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


class Tunerd(System):
    def __init__(self, build, workers, threads, preload, env):
        super().__init__(env=env)
        self.label = "tunerd preloaded" if preload else "tunerd -w 1 slots"
        self.build = build
        self.admin = free_port()
        self.state = tempfile.mkdtemp(prefix="bench-preload-")
        with open(os.path.join(REPO, "etc", "examples", "flask.toml")) as f:
            example = f.read()
        keys = {"dir": f'"{FLASK_DIR}"', "mode": '"fixed"', "count": str(workers),
                "threads": str(threads)}
        if not preload:
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
    args = parser.parse_args()
    env = {"EXAMPLE_RSS_MB": str(args.rss_mb), "PYTHONDONTWRITEBYTECODE": "1"}
    systems = [
        Tunerd(args.build, args.workers, args.threads, True, env),
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
        finally:
            s.stop()
        m["label"] = s.label
        m["mean_worker_kb"] = sum(m["per_worker_kb"]) / max(1, len(m["per_worker_kb"]))
        results.append(m)
    base = results[1]["mean_worker_kb"]
    print(f"| system ({args.workers} workers, {args.threads} threads, EXAMPLE_RSS_MB="
          f"{args.rss_mb}) | PSS per worker | × gunicorn --preload's | rest (master, tunerd + "
          f"preloader) | total |")
    print("|---|---|---|---|---|")
    for m in results:
        print(f"| {m['label']} | {m['mean_worker_kb'] / 1024:.1f} MB | "
              f"{m['mean_worker_kb'] / base:.2f} | {m['overhead_kb'] / 1024:.1f} MB | "
              f"{m['total_kb'] / 1024:.1f} MB |")
    out = os.path.join(REPO, "bench", "preload", "results")
    os.makedirs(out, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(out, f"preload-{stamp}.json"), "w") as f:
        json.dump({"machine": machine(), "args": vars(args), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
