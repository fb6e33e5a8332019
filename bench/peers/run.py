#!/usr/bin/python3
"""The peers benchmark (docs/benchmarks.md, "Peers"): examples/flask served by a static gunicorn
grid (measured directly, no proxy), uWSGI's cheaper mode (busyness, 2..24 processes) and tunerd
adaptive (through its front), side by side in one run, in every scenario of the Controller's
acceptance: CPU, I/O-mixed, I/O-heavy, memory-bound (512 MB cgroup, 150 MB processes,
memory_per_worker half, twice and the default; no preload on either side), a load step from
idle, alternating phases, and kill -9 of a random worker every 2 s; and the Preloader issue's
memory_preload: the same 512 MB and 150 MB app, gunicorn --preload against tunerd's preloader.

Every system gets the same warm-up and window; tunerd starts from an empty state directory in
each scenario, with the config a user would take: etc/examples/flask.toml (threads 1 to 16,
the app preloaded; in the memory-bound scenario slots of gunicorn -w 1 instead, as its peers).
The client is peers_loadgen (bench/peers/loadgen.cpp): closed-loop keep-alive connections,
completions per second. Needs root (cgroups).

    bench/peers/run.py [--build build] [--window 10] [--warmup 10] [--only cpu,io_mixed,...]
                       [--out bench/peers/results] [--plots docs/img]

Writes <out>/<date>.json (every measurement), prints the tables (markdown) that
docs/benchmarks.md records, and draws PNG plots into --plots.
"""

import argparse
import datetime
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchlib import REPO, PYTHON, System, children, free_port, http_json, log, machine  # noqa: E402

FLASK_DIR = os.path.join(REPO, "examples", "flask")

CLIENTS = 32
MEMORY_LIMIT = 512 << 20
APP_RSS_MB = 150
# One gunicorn process of the 150 MB app, measured: ~180 MB of RSS (ballast, Flask, gunicorn).
APP_PROCESS_MB = 180

ROUTES = {
    "cpu": "/work?cpu_ms=5&io_ms=0",
    "io_mixed": "/work?cpu_ms=5&io_ms=50",
    "io_heavy": "/work?cpu_ms=2&io_ms=200",
}
# A worker forked by gunicorn --preload from the 150 MB app, measured: ~15 MB of its own (PSS).
PRELOADED_WORKER_MB = 15
BIG_GRID = [(p, t) for p in (1, 2, 3, 5, 8, 16) for t in (1, 4, 8, 16)]
# The preloaded memory-bound grid: the pairs that can be best on the I/O-mixed route (1- and
# 4-thread pairs served at most 0.76 x the best there, 2026-12-07), and 16 x 1.
PRELOAD_GRID = [(p, t) for p in (2, 3, 5, 8, 16) for t in (8, 16)] + [(16, 1)]
SMALL_GRID = [(p, t) for p in (2, 5, 16) for t in (1, 8)]


# ---- cgroups -------------------------------------------------------------------------------


class Cgroup:
    """A memory cgroup (v2 where the unified hierarchy has the memory controller, else v1) that
    counts OOM kills; removed with whatever is left in it."""

    def __init__(self, name, limit_bytes):
        self.limit = limit_bytes
        self.v2 = False
        base = None
        for line in open("/proc/self/mountinfo"):
            fields = line.split()
            sep = fields.index("-")
            fstype, mount, options = fields[sep + 1], fields[4], fields[sep + 3]
            if fstype == "cgroup2" and os.path.exists(f"{mount}/cgroup.controllers") and \
                    "memory" in open(f"{mount}/cgroup.controllers").read().split():
                self.v2, base = True, mount
                break
            if fstype == "cgroup" and "memory" in options.split(",") and base is None:
                base = mount
        if base is None:
            raise RuntimeError("no memory cgroup hierarchy (v2 with memory, or v1 memory)")
        self.dir = os.path.join(base, name)
        if os.path.isdir(self.dir):
            self.remove()
        if self.v2:
            try:  # the memory controller must be on in the parent for the child's memory.max
                with open(f"{base}/cgroup.subtree_control", "w") as f:
                    f.write("+memory")
            except OSError:
                pass
        os.mkdir(self.dir)
        if self.v2:
            with open(f"{self.dir}/memory.max", "w") as f:
                f.write(str(limit_bytes))
            with open(f"{self.dir}/memory.swap.max", "w") as f:
                f.write("0")
        else:
            with open(f"{self.dir}/memory.limit_in_bytes", "w") as f:
                f.write(str(limit_bytes))
            try:
                with open(f"{self.dir}/memory.memsw.limit_in_bytes", "w") as f:
                    f.write(str(limit_bytes))
            except OSError:
                pass  # no swap accounting: the box has no swap to fall back on anyway

    def procs_file(self):
        return f"{self.dir}/cgroup.procs"

    def oom_kills(self):
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            for line in open(f"{self.dir}/{name}"):
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except OSError:
            pass
        return 0

    def remove(self):
        for _ in range(50):
            try:
                pids = [int(p) for p in open(f"{self.dir}/cgroup.procs").read().split()]
            except OSError:
                pids = []
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            try:
                os.rmdir(self.dir)
                return
            except OSError:
                time.sleep(0.1)


# ---- the systems under test ----------------------------------------------------------------


class FlaskApp(System):
    """A peer serving examples/flask from its directory."""

    def cwd(self):
        return FLASK_DIR


class Gunicorn(FlaskApp):
    def __init__(self, processes, threads, preload=False, **kw):
        super().__init__(**kw)
        self.processes, self.threads, self.preload = processes, threads, preload
        self.label = f"gunicorn {'--preload ' if preload else ''}{processes}x{threads}"

    def argv(self):
        return [PYTHON, "-m", "gunicorn", "-w", str(self.processes), "--threads",
                str(self.threads), "-b", f"127.0.0.1:{self.port}", "--backlog", "2048"] + \
            (["--preload"] if self.preload else []) + ["app:app"]


class Uwsgi(FlaskApp):
    """uWSGI's cheaper mode as its docs show it: busyness algorithm, 2..24 processes."""

    label = "uwsgi cheaper"

    def argv(self):
        return ["uwsgi", "--plugin", "python3", "--http-socket", f"127.0.0.1:{self.port}",
                "--module", "app:app", "--master", "--processes", "24", "--cheaper", "2",
                "--cheaper-initial", "2", "--cheaper-algo", "busyness", "--cheaper-step", "1",
                "--die-on-term", "--disable-logging", "--listen", "1024"]

    def worker_pids(self):
        return children(self.proc.pid)


# A slot of its own `gunicorn -w 1` (the app imported in each slot): the example's alternative
# to its preload, for the memory-bound scenario whose static peers do not preload either.
W1_COMMAND = ('command = ["/usr/bin/python3", "-m", "gunicorn", "-w", "1", "--threads", '
              '"{threads}", "-b", "unix:{socket}", "--chdir", ".", "app:app"]')


class Tunerd(System):
    """tunerd adaptive with etc/examples/flask.toml as it is (threads from 1 to 16; the app
    preloaded), or with -w 1 slots instead of the preload (preload=False)."""

    label = "tunerd adaptive"

    def __init__(self, build, memory_per_worker=None, extra_workers="", preload=True, **kw):
        super().__init__(**kw)
        self.build = build
        self.admin = free_port()
        self.state = tempfile.mkdtemp(prefix="peers-tunerd-")
        self.config = os.path.join(self.state, "tunerd.toml")
        mpw = memory_per_worker or "70MB"
        with open(os.path.join(REPO, "etc", "examples", "flask.toml")) as f:
            example = f.read()
        example = example.replace('memory_per_worker = "70MB"', f'memory_per_worker = "{mpw}"')
        example = example.replace('dir = "examples/flask"', f'dir = "{FLASK_DIR}"')
        if not preload:
            assert 'preload = "app:app"' in example
            example = example.replace('preload = "app:app"', W1_COMMAND)
        if memory_per_worker == "default":
            example = "\n".join(l for l in example.splitlines()
                                if not l.startswith("memory_per_worker"))
        with open(self.config, "w") as f:
            f.write(f'[server]\nlisten = "127.0.0.1:{self.port}"\n'
                    f'[admin]\nlisten = "127.0.0.1:{self.admin}"\n'
                    f'[state]\ndir = "{self.state}"\n\n' + example + "\n" + extra_workers)

    def argv(self):
        return [os.path.join(self.build, "tuner", "tunerd"), "--config", self.config]

    def cwd(self):
        return REPO

    def ready(self):
        health = http_json(self.admin, "/health")
        return bool(health) and health.get("workers", {}).get("ready", 0) > 0

    def worker_pids(self):
        workers = http_json(self.admin, "/workers") or {}
        return [w["pid"] for w in workers.get("workers", []) if w.get("state") == "ready"]

    def shape(self):
        workers = http_json(self.admin, "/workers") or {}
        return workers.get("target"), [w.get("threads") for w in workers.get("workers", [])]

    def memory_ceiling(self):
        """The most processes the memory policy allows (/performance workers.memory_ceiling)."""
        perf = http_json(self.admin, "/performance") or {}
        return perf.get("workers", {}).get("memory_ceiling")

    def decisions(self):
        perf = http_json(self.admin, "/performance/decisions?limit=200") or {}
        return perf.get("decisions", [])

    def stop(self):
        super().stop()
        shutil.rmtree(self.state, ignore_errors=True)


# ---- measuring -----------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.loadgen = os.path.join(args.build, "bench", "peers", "peers_loadgen")
        self.results = {"started": datetime.datetime.utcnow().isoformat(timespec="seconds") + "Z",
                        "machine": machine(), "window_s": args.window,
                        "warmup_s": args.warmup, "scenarios": {}}

    def load(self, port, phases, warmup):
        argv = [self.loadgen, "--port", str(port), "--warmup", f"{warmup}s"]
        for seconds, connections, target in phases:
            argv += ["--phase", f"{seconds}s:{connections}:{target}"]
        out = subprocess.run(argv, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    def measure(self, system, phases, warmup=None, during=None):
        """Starts `system`, runs the phases (the first `warmup` s not measured), stops it."""
        warmup = self.args.warmup if warmup is None else warmup
        try:
            system.start()
        except RuntimeError as e:
            log(f"  {system.label}: {e}")
            system.stop()
            return {"system": system.label, "failed_to_start": str(e)}
        extra = {}
        try:
            if during:
                extra = during(system, lambda: self.load(system.port, phases, warmup)) or {}
            result = extra.pop("load", None) or self.load(system.port, phases, warmup)
        finally:
            if isinstance(system, Tunerd):
                extra["shape"] = system.shape()
                extra["memory_ceiling"] = system.memory_ceiling()
                extra["decisions"] = [
                    {k: d.get(k) for k in ("time", "knob", "old", "new", "rule", "reason")}
                    for d in system.decisions()[:60]]
            system.stop()
        result["system"] = system.label
        result.update(extra)
        if system.cgroup:
            result["oom_kills"] = system.cgroup.oom_kills()
        log(f"  {system.label:22s} {result['rps']:8.1f} rps  p99 {result['p99_ms']:7.1f} ms"
            f"  errors {result['errors']}  non-2xx {result['non_2xx']}"
            + (f"  OOM kills {result.get('oom_kills', 0)}" if system.cgroup else "")
            + (f"  shape {extra.get('shape')}" if extra.get('shape') else ""))
        return result

    def steady(self, name, route, grid, memory=False, tunerd_variants=(None,),
               gunicorn_preload=False, tunerd_preload=True):
        log(f"== {name}: {route}, {CLIENTS} connections")
        phases = [(self.args.warmup + self.args.window, CLIENTS, route)]
        runs = []

        def cgroup():
            return Cgroup(f"tunerd-peers-{name}", MEMORY_LIMIT) if memory else None

        env = {"EXAMPLE_RSS_MB": str(APP_RSS_MB)} if memory else {}
        for processes, threads in grid:
            cg = cgroup()
            try:
                runs.append(self.measure(
                    Gunicorn(processes, threads, preload=gunicorn_preload, cgroup=cg, env=env),
                    phases))
            finally:
                if cg:
                    cg.remove()
        uwsgi = () if self.args.skip_uwsgi else (lambda cg: Uwsgi(cgroup=cg, env=env),)
        for make in uwsgi + tuple(
                (lambda cg, v=v: tunerd_system(self.args.build, v, cg, env, tunerd_preload))
                for v in tunerd_variants):
            cg = cgroup()
            try:
                runs.append(self.measure(make(cg), phases))
            finally:
                if cg:
                    cg.remove()
        self.results["scenarios"][name] = {"route": route, "runs": runs}
        self.save()

    def load_step(self):
        """From idle (the pool scaled down), 32 connections at once: throughput per second."""
        log("== load_step: idle, then 32 connections on " + ROUTES["io_mixed"])
        runs = []
        step_s = 40
        for make in (lambda: Tunerd(self.args.build), lambda: Uwsgi()):
            system = make()

            def idle_then_step(sys_, run_load):
                waited = wait_scaled_down(sys_, 90)
                return {"idle_s": waited, "load": run_load()}

            runs.append(self.measure(system, [(step_s, CLIENTS, ROUTES["io_mixed"])],
                                     warmup=0, during=idle_then_step))
        self.results["scenarios"]["load_step"] = {"route": ROUTES["io_mixed"], "step_s": step_s,
                                                  "runs": runs}
        self.save()

    def alternating(self):
        phases = []
        for _ in range(2):
            phases += [(30, 8, ROUTES["cpu"]), (30, 128, ROUTES["io_heavy"])]
        log("== alternating: 30 s CPU at 8 connections, 30 s I/O-heavy at 128, twice")
        runs = []
        for processes, threads in SMALL_GRID:
            runs.append(self.measure(Gunicorn(processes, threads), phases, warmup=0))
        runs.append(self.measure(Uwsgi(), phases, warmup=0))
        runs.append(self.measure(Tunerd(self.args.build), phases, warmup=0))
        self.results["scenarios"]["alternating"] = {"phases": phases, "runs": runs}
        self.save()

    def kills(self):
        """kill -9 of a random serving process every 2 s, against the same system undisturbed."""
        log("== kill: kill -9 of a random worker every 2 s, " + ROUTES["io_mixed"])
        seconds = 30
        phases = [(self.args.warmup + seconds, CLIENTS, ROUTES["io_mixed"])]
        runs = []
        best = best_static(self.results["scenarios"].get("io_mixed"), default=(5, 8))

        def killing(sys_, run_load):
            import threading
            stop = threading.Event()
            killed = []

            def killer():
                time.sleep(self.args.warmup)
                rng = random.Random(1)
                while not stop.wait(2.0):
                    pids = sys_.worker_pids()
                    if pids:
                        pid = rng.choice(pids)
                        try:
                            os.kill(pid, signal.SIGKILL)
                            killed.append(pid)
                        except OSError:
                            pass

            t = threading.Thread(target=killer)
            t.start()
            try:
                result = run_load()
            finally:
                stop.set()
                t.join()
            return {"kills": len(killed), "load": result}

        for make in (lambda: Gunicorn(*best), lambda: Uwsgi(), lambda: Tunerd(self.args.build)):
            undisturbed = self.measure(make(), phases)
            disturbed = self.measure(make(), phases, during=killing)
            runs.append({"system": undisturbed["system"], "undisturbed": undisturbed,
                         "killed": disturbed})
        self.results["scenarios"]["kill"] = {"route": ROUTES["io_mixed"], "runs": runs}
        self.save()

    def save(self):
        os.makedirs(self.args.out, exist_ok=True)
        path = os.path.join(self.args.out, self.results["started"][:10] + ".json")
        with open(path, "w") as f:
            json.dump(self.results, f, indent=1)
        self.path = path


def tunerd_system(build, variant, cgroup, env, preload=True):
    """tunerd with the example's config (variant None) or with memory_per_worker = variant."""
    system = Tunerd(build, memory_per_worker=variant, cgroup=cgroup, env=env, preload=preload)
    if variant is not None:
        system.label = f"tunerd memory_per_worker={variant}"
    return system


def wait_scaled_down(system, timeout):
    """Seconds until the pool stopped shrinking (its target unchanged for 10 s), at most timeout."""
    start = time.time()
    last, since = None, time.time()
    while time.time() - start < timeout:
        if isinstance(system, Tunerd):
            target = system.shape()[0]
        else:
            target = len(system.worker_pids())
        if target != last:
            last, since = target, time.time()
        elif time.time() - since >= 10 and (not isinstance(system, Tunerd) or target <= 2):
            break
        time.sleep(0.5)
    return round(time.time() - start, 1)


def best_static(scenario, default):
    if not scenario:
        return default
    runs = [r for r in scenario["runs"] if r.get("system", "").startswith("gunicorn")
            and "rps" in r and r.get("oom_kills", 0) == 0]
    if not runs:
        return default
    best = max(runs, key=lambda r: r["rps"])
    p, t = best["system"].split()[1].split("x")
    return int(p), int(t)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(REPO, "build"))
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--only", default="")
    parser.add_argument("--pairs", default="",
                        help="static pairs to measure instead of each scenario's grid, e.g. "
                             "5x8,2x16 (a quick look, not the benchmark)")
    parser.add_argument("--skip-uwsgi", action="store_true", help="a quick look without uWSGI")
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "peers", "results"))
    parser.add_argument("--plots", default=os.path.join(REPO, "docs", "img"))
    parser.add_argument("--report", help="only print the report of an earlier results file")
    args = parser.parse_args()
    if args.report:
        import report
        report.main(args.report, args.plots)
        return 0
    if os.geteuid() != 0:
        print("peers: needs root (memory cgroups)", file=sys.stderr)
        return 1
    for tool in ("uwsgi",):
        if not shutil.which(tool):
            print(f"peers: {tool} missing: scripts/install-deps --bench", file=sys.stderr)
            return 1
    if args.pairs:
        pairs = [tuple(int(x) for x in p.split("x")) for p in args.pairs.split(",")]
        global BIG_GRID, SMALL_GRID, PRELOAD_GRID
        BIG_GRID = SMALL_GRID = PRELOAD_GRID = pairs
    bench = Bench(args)
    only = set(filter(None, args.only.split(",")))
    want = lambda name: not only or name in only
    started = time.time()
    if want("cpu"):
        bench.steady("cpu", ROUTES["cpu"], SMALL_GRID)
    if want("io_mixed"):
        bench.steady("io_mixed", ROUTES["io_mixed"], BIG_GRID)
    if want("io_heavy"):
        bench.steady("io_heavy", ROUTES["io_heavy"], SMALL_GRID)
    if want("memory"):
        # Neither side preloads: every process imports the app (gunicorn -w N; tunerd's slots
        # of gunicorn -w 1), so memory caps the processes and the controller must start safe.
        fits = [(p, t) for p, t in BIG_GRID if p * APP_PROCESS_MB + 20 <= MEMORY_LIMIT >> 20]
        bench.steady("memory", ROUTES["io_mixed"], fits, memory=True,
                     tunerd_variants=(f"{APP_PROCESS_MB // 2}MB", f"{APP_PROCESS_MB * 2}MB",
                                      "default"), tunerd_preload=False)
    if want("memory_preload"):
        # Both sides preload: gunicorn --preload, tunerd with the example as it is (its preloader).
        fits = [(p, t) for p, t in PRELOAD_GRID
                if APP_PROCESS_MB + p * PRELOADED_WORKER_MB + 20 <= MEMORY_LIMIT >> 20]
        bench.steady("memory_preload", ROUTES["io_mixed"], fits, memory=True,
                     gunicorn_preload=True,
                     tunerd_variants=(None, "default"))
    if want("load_step"):
        bench.load_step()
    if want("alternating"):
        bench.alternating()
    if want("kill"):
        bench.kills()
    bench.results["took_s"] = round(time.time() - started)
    bench.save()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import report
    report.main(bench.path, args.plots)
    return 0


if __name__ == "__main__":
    sys.exit(main())
