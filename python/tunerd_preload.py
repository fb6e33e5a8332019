"""tunerd's preloader: imports a WSGI app once, then forks tunerd's workers from it.

tunerd starts this script (``workers.preload = "module:app"``) with ``spawn_process`` like a
worker, its stdin being one end of a ``SOCK_SEQPACKET`` socket pair: the control socket. One
message is one datagram of JSON (at most ``MAX_MESSAGE`` bytes):

* preloader -> tunerd, once: ``{"ready": true, "pid": P, "import_ms": T}`` after the import, or
  ``{"ready": false, "error": "..."}`` and the traceback on stderr, then exit status 3.
* tunerd -> preloader: ``{"op": "spawn", "socket": PATH, "threads": N, "env": {...}}`` with two
  descriptors passed by SCM_RIGHTS (the write ends of the worker's stdout and stderr pipes);
  answered by ``{"ok": true, "pid": P}`` or ``{"ok": false, "error": "..."}``.

A worker is forked twice (the middle child exits at once, reaped here), so it is reparented to
tunerd, a child subreaper (PR_SET_CHILD_SUBREAPER). The worker makes its own process group,
takes the passed descriptors as its stdout and stderr, waits until its parent is tunerd, sets
PR_SET_PDEATHSIG(SIGKILL), and serves the already-imported app (``--server``) in this one
process, one process per slot: with waitress, or (the default) as one gunicorn worker (gthread,
or sync for one thread) made as gunicorn's arbiter makes its workers, tunerd standing in for the
arbiter. The app's code is never imported again.

Run ``python3 -m unittest test_tunerd_preload`` in this directory for the tests.
"""

import ctypes
import gc
import importlib
import json
import os
import signal
import socket
import sys
import time
import traceback

MAX_MESSAGE = 65536
MAX_ENV = 256  # entries in a spawn request
IMPORT_FAILED = 3  # exit status when the app cannot be imported
PR_SET_PDEATHSIG = 1
SERVERS = ("waitress", "gunicorn")
RESET_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGCHLD,
    signal.SIGPIPE,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


class ProtocolError(ValueError):
    """A control message that is not what the protocol allows."""


def parse_app_spec(spec):
    """'module:callable' -> (module, callable); the callable may be dotted (module:a.b)."""
    module, sep, name = spec.partition(":")
    if not sep:
        name = "application"  # gunicorn's and mod_wsgi's default
    if not module or not name:
        raise ValueError(f"app {spec!r}: expected module:callable")
    for part in module.split(".") + name.split("."):
        if not part.isidentifier():
            raise ValueError(f"app {spec!r}: {part!r} is not a Python identifier")
    return module, name


def parse_spawn(data):
    """A spawn request's bytes -> (socket path, threads, env dict); ProtocolError if malformed."""
    if len(data) > MAX_MESSAGE:
        raise ProtocolError("message too long")
    try:
        message = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"not JSON: {e}") from None
    if not isinstance(message, dict) or message.get("op") != "spawn":
        raise ProtocolError("expected {\"op\": \"spawn\", ...}")
    path = message.get("socket")
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path or len(path) > 107:
        raise ProtocolError("socket must be an absolute path of at most 107 bytes")
    threads = message.get("threads")
    if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 4096:
        raise ProtocolError("threads must be a whole number from 1 to 4096")
    env = message.get("env", {})
    if not isinstance(env, dict) or len(env) > MAX_ENV:
        raise ProtocolError(f"env must be an object of at most {MAX_ENV} entries")
    for key, value in env.items():
        if not isinstance(value, str) or not key or "=" in key or "\0" in key + value:
            raise ProtocolError(f"env entry {key!r} is not a NAME: \"value\" pair")
    return path, threads, env


def encode(message):
    data = json.dumps(message, separators=(",", ":")).encode()
    return data[:MAX_MESSAGE]


def load_app(spec, directory):
    """Imports the app as gunicorn does: `directory` first on sys.path."""
    module_name, name = parse_app_spec(spec)
    if directory:
        os.chdir(directory)
    sys.path.insert(0, os.getcwd())
    obj = importlib.import_module(module_name)
    for part in name.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{spec} is not callable")
    return obj


def _prctl_pdeathsig():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def wait_for_parent(parent, timeout_s=5.0, getppid=os.getppid, sleep=time.sleep):
    """Until the worker's parent is tunerd (the middle child has exited). False on timeout."""
    deadline = time.monotonic() + timeout_s
    while getppid() != parent:
        if time.monotonic() > deadline:
            return False
        sleep(0.001)
    return True


def preimport_server(server):
    """Imports the server's modules here, once, so each worker shares them instead of importing
    them again after the fork (each worker would hold a private copy)."""
    if server == "gunicorn":
        import gunicorn.app.base  # noqa: F401
        import gunicorn.glogging  # noqa: F401
        import gunicorn.sock  # noqa: F401
        import gunicorn.workers.gthread  # noqa: F401
        import gunicorn.workers.sync  # noqa: F401
    elif server == "waitress":
        import waitress  # noqa: F401
        import waitress.server  # noqa: F401
        import waitress.task  # noqa: F401


def serve_gunicorn(app, path, threads, parent):
    """Serves as one gunicorn worker (gthread, or sync for one thread), with tunerd as its
    arbiter: the worker is what gunicorn's arbiter forks (Arbiter.spawn_worker), made here
    without the arbiter process, which would cost a second process and its private pages a slot
    (tunerd already supervises, drains and recycles each slot). Never returns: exits as the
    worker does (SIGTERM: graceful, finishing its requests within graceful_timeout; SIGQUIT:
    at once), or when its parent is no longer `parent` (gunicorn's own check)."""
    from gunicorn import sock, util
    from gunicorn.app.base import BaseApplication

    class Preloaded(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", [f"unix:{path}"])
            self.cfg.set("workers", 1)
            self.cfg.set("threads", threads)
            self.cfg.set("proc_name", f"tunerd-worker:{os.environ.get('TUNER_WORKER_ID', '')}")

        def load(self):
            return app

    application = Preloaded()
    cfg = application.cfg
    log = cfg.logger_class(cfg)
    listeners = sock.create_sockets(cfg, log)
    log.info("Listening at: %s (%s)", ",".join(str(s) for s in listeners), os.getpid())
    # As the arbiter makes it: age 1, the parent's pid, half the timeout between heartbeats.
    worker = cfg.worker_class(1, parent, listeners, application, cfg.timeout / 2.0, cfg, log)
    worker.pid = os.getpid()
    util._setproctitle(f"worker [{cfg.proc_name}]")
    log.info("Booting worker with pid: %s", worker.pid)
    try:
        worker.init_process()  # runs until the worker stops
    finally:
        worker.tmp.close()
    sys.exit(0)


def waitress_options(path, threads):
    """waitress.serve()'s keywords for a worker on the Unix socket `path` with `threads` threads."""
    return {
        "unix_socket": path,
        "unix_socket_perms": "600",  # tunerd alone connects (it runs as the same user)
        "threads": threads,
        # tunerd holds at most `threads` connections to a worker (in flight or parked): the
        # default 100 bounds that, and a larger pool must not be refused.
        "connection_limit": max(100, 2 * threads),
        "backlog": 1024,
        # tunerd reuses a parked connection for at most 1 s; one idle longer was dropped by it.
        "channel_timeout": 30,
        "cleanup_interval": 10,
        # poll(), not select(): an app may hold descriptors above FD_SETSIZE.
        "asyncore_use_poll": True,
        "ident": "",  # no Server header, SERVER_SOFTWARE empty
        # tunerd's X-Forwarded-Proto sets wsgi.url_scheme, as gunicorn takes it from a Unix
        # socket peer; the forwarding headers reach the app as they came (no REMOTE_ADDR rewrite,
        # as gunicorn). Waitress reports a Unix socket peer as "localhost".
        "trusted_proxy": "localhost",
        "trusted_proxy_headers": "x-forwarded-proto",
        "clear_untrusted_proxy_headers": False,
    }


def serve_waitress(app, path, threads):
    import waitress

    waitress.serve(app, **waitress_options(path, threads))


def run_worker(app, server, path, threads, env, out_fd, err_fd, tunerd_pid):
    """In the grandchild: become tunerd's worker and serve. Never returns."""
    status = 1
    try:
        os.setpgid(0, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.close(out_fd)
        os.close(err_fd)
        if not wait_for_parent(tunerd_pid):
            os._exit(0)  # tunerd is gone
        _prctl_pdeathsig()
        if os.getppid() != tunerd_pid:  # tunerd died before prctl ran
            os._exit(0)
        for sig in RESET_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.environ.update(env)
        if server == "gunicorn":
            serve_gunicorn(app, path, threads, tunerd_pid)
        elif server == "waitress":
            serve_waitress(app, path, threads)
        status = 0
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 1
    except BaseException:  # the worker's last words go to its stderr, which tunerd logs
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


def fork_worker(app, server, path, threads, env, out_fd, err_fd, control):
    """Forks the worker (twice); returns its pid. The middle child is reaped here."""
    sys.stdout.flush()
    sys.stderr.flush()
    tunerd_pid = os.getppid()
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            os.close(read_end)
            control.close()
            worker = os.fork()
            if worker == 0:
                os.close(write_end)
                run_worker(app, server, path, threads, env, out_fd, err_fd, tunerd_pid)
            try:
                os.setpgid(worker, worker)  # also from here: tunerd may signal the group at once
            except OSError:
                pass
            os.write(write_end, str(worker).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        data = b""
        while True:
            chunk = os.read(read_end, 32)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read_end)
        os.waitpid(middle, 0)
    if not data.isdigit():
        raise OSError("the worker could not be forked")
    return int(data)


def serve_control(control, app, server):
    """Answers spawn requests until tunerd closes the control socket."""
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(control, MAX_MESSAGE + 1, 2)
        except InterruptedError:
            continue
        if not data:
            for fd in fds:
                os.close(fd)
            return
        try:
            path, threads, env = parse_spawn(data)
            if len(fds) != 2:
                raise ProtocolError(f"expected 2 descriptors (stdout, stderr), got {len(fds)}")
            pid = fork_worker(app, server, path, threads, env, fds[0], fds[1], control)
            reply = {"ok": True, "pid": pid}
        except (ProtocolError, OSError) as e:
            reply = {"ok": False, "error": str(e)}
        finally:
            for fd in fds:
                os.close(fd)
        control.send(encode(reply))


def main(argv):
    import argparse

    parser = argparse.ArgumentParser(description="tunerd's WSGI preloader")
    parser.add_argument("--app", required=True, help="module:callable")
    parser.add_argument("--server", default="gunicorn", choices=SERVERS)
    parser.add_argument("--dir", default="", help="the app's directory (workers.dir)")
    parser.add_argument("--control-fd", type=int, default=0)
    args = parser.parse_args(argv)

    control_fd = args.control_fd
    if control_fd == 0:  # moved off stdin: the app sees /dev/null there
        control_fd = os.dup(0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
    control = socket.socket(fileno=control_fd)
    control.set_inheritable(False)
    # The preloader lives until tunerd closes the control socket, or a signal from tunerd.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    started = time.monotonic()
    try:
        app = load_app(args.app, args.dir)
    except BaseException as e:
        traceback.print_exc()
        sys.stderr.flush()
        error = "".join(traceback.format_exception_only(type(e), e)).strip()
        try:
            control.send(encode({"ready": False, "error": f"cannot import {args.app}: {error}"}))
        except OSError:
            pass
        return IMPORT_FAILED
    try:
        preimport_server(args.server)
    except ImportError as e:
        message = f"workers.server = {args.server!r} needs {e.name} for {sys.executable}: {e}"
        print(message, file=sys.stderr, flush=True)
        try:
            control.send(encode({"ready": False, "error": message}))
        except OSError:
            pass
        return IMPORT_FAILED
    # What the import allocated will not be collected: keep the collector from writing to (and so
    # copying) those pages in every worker (gc.freeze, Python 3.7+).
    gc.collect()
    gc.freeze()
    control.send(
        encode(
            {
                "ready": True,
                "pid": os.getpid(),
                "import_ms": round((time.monotonic() - started) * 1000),
            }
        )
    )
    print(f"preloaded {args.app} for tunerd (server {args.server})", flush=True)
    serve_control(control, app, args.server)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
