"""A small Flask app that stands for a typical Python web worker behind tunerd.

Routes: ``/`` (hello), ``/cpu?ms=`` (burns CPU), ``/io?ms=`` (waits, as for a database or an
API; both also take POST, so tests can send requests the front must never retry), ``/work?cpu_ms=
&io_ms=`` (both in one request: a page that renders and queries), ``/health`` (readiness) and
``/db`` (one query through SQLAlchemy, its pool sized from the settings tunerd passes in the
environment). tunerd imports it once in its preloader and forks each worker slot from it, served
by gunicorn: etc/examples/flask.toml (``workers.preload = "app:app"``).

``EXAMPLE_RSS_MB`` (optional) makes the worker hold that much resident memory, like an app with
large caches or models: issue 8's benchmark runs it at 150 MB in a 512 MB cgroup.
"""

import os
import threading
import time

from flask import Flask, jsonify, request

app = Flask(__name__)

# Upper bounds for the per-request knobs, so a typo cannot hold a worker for hours.
MAX_CPU_MS = 60_000
MAX_IO_MS = 600_000


def _resident_bytes():
    """This process's resident memory (proc(5), /proc/self/statm: pages, field 2)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _ballast(target_mb):
    """Bytes written once (so they are resident) that bring the process to `target_mb` MB."""
    missing = (target_mb << 20) - _resident_bytes()
    return b"\x01" * missing if missing > 0 else b""


# Loaded once: in tunerd's preloader, whose forked workers share it copy-on-write (without a
# preload, once per worker: gunicorn imports the app in the worker, not its master). Threads
# share it: a process's memory does not grow with its threads, which is why tunerd raises threads
# when memory caps the processes (issue 8).
_BALLAST = _ballast(int(os.environ.get("EXAMPLE_RSS_MB", "0") or 0))


def _ms_arg(name, default, upper):
    """An integer query argument in milliseconds; None when it is not a whole number >= 0."""
    text = request.args.get(name)
    if text is None:
        return default
    if not text.isdigit():
        return None
    return min(int(text), upper)


def _bad_ms(name):
    return jsonify(error=f"{name} must be a whole number of milliseconds"), 400


def _burn_cpu_ms(ms):
    """Busy loop on thread CPU time: `ms` of CPU however the OS schedules us; returns the spins."""
    start = time.thread_time()
    spins = 0
    while (time.thread_time() - start) * 1000 < ms:
        spins += 1
    return spins


def _identity():
    return {"worker": os.environ.get("TUNER_WORKER_ID"), "pid": os.getpid()}


@app.get("/")
def index():
    # APP_VERSION (workers.env): a deploy test sees which configuration served it.
    return jsonify(
        app="tunerd flask example", version=os.environ.get("APP_VERSION"), **_identity()
    )


@app.get("/health")
def health():
    return jsonify(status="ok")


@app.route("/cpu", methods=["GET", "POST"])
def cpu():
    ms = _ms_arg("ms", 10, MAX_CPU_MS)
    if ms is None:
        return _bad_ms("ms")
    return jsonify(cpu_ms=ms, spins=_burn_cpu_ms(ms), **_identity())


@app.route("/io", methods=["GET", "POST"])
def io():
    ms = _ms_arg("ms", 50, MAX_IO_MS)
    if ms is None:
        return _bad_ms("ms")
    time.sleep(ms / 1000)
    return jsonify(io_ms=ms, **_identity())


@app.route("/work", methods=["GET", "POST"])
def work():
    cpu_ms = _ms_arg("cpu_ms", 5, MAX_CPU_MS)
    if cpu_ms is None:
        return _bad_ms("cpu_ms")
    io_ms = _ms_arg("io_ms", 50, MAX_IO_MS)
    if io_ms is None:
        return _bad_ms("io_ms")
    _burn_cpu_ms(cpu_ms)
    time.sleep(io_ms / 1000)
    return jsonify(cpu_ms=cpu_ms, io_ms=io_ms, **_identity())


# ---- the database route -------------------------------------------------------------------
# tunerd sizes each worker's connection pool (docs/policies.md, "DB pool") and passes the sizes
# as DB_POOL_SIZE, DB_MAX_OVERFLOW, DB_POOL_RECYCLE and DB_POOL_TIMEOUT; the URL comes from
# DATABASE_URL (workers.env). The engine is made on first use so the app starts, and every other
# route works, without a database or SQLAlchemy.

_engine = None
_engine_lock = threading.Lock()


def _env_int(name, default):
    text = os.environ.get(name, "")
    return int(text) if text.strip().lstrip("-").isdigit() else default


def pool_settings():
    """SQLAlchemy QueuePool arguments from tunerd's environment (SQLAlchemy's defaults else)."""
    return {
        "pool_size": _env_int("DB_POOL_SIZE", 5),
        "max_overflow": _env_int("DB_MAX_OVERFLOW", 10),
        "pool_recycle": _env_int("DB_POOL_RECYCLE", -1),
        "pool_timeout": _env_int("DB_POOL_TIMEOUT", 30),
        "pool_pre_ping": True,
    }


def _get_engine(url):
    global _engine
    with _engine_lock:
        if _engine is None:
            from sqlalchemy import create_engine

            _engine = create_engine(url, **pool_settings())
        return _engine


@app.get("/db")
def db():
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        return jsonify(error="no DATABASE_URL"), 503
    try:
        from sqlalchemy import text
    except ImportError:
        return jsonify(error="SQLAlchemy is not installed (python3-sqlalchemy)"), 503
    try:
        with _get_engine(url).connect() as conn:
            value = conn.execute(text("SELECT 1")).scalar()
    except Exception as e:  # any driver error: the client learns what failed, the worker lives
        return jsonify(error=f"database query failed: {e.__class__.__name__}: {e}"), 503
    return jsonify(result=value, pool=pool_settings(), **_identity())
