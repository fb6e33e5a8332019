"""Tests of tunerd's preloader (tunerd_preload.py): the control protocol, the import error path,
and one worker forked and serving through gunicorn. Run: python3 -m unittest test_tunerd_preload
"""

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

import tunerd_preload as tp

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "tunerd_preload.py")
PR_SET_CHILD_SUBREAPER = 36


class AppSpec(unittest.TestCase):
    def test_module_and_callable(self):
        self.assertEqual(tp.parse_app_spec("app:app"), ("app", "app"))
        self.assertEqual(tp.parse_app_spec("pkg.mod:obj.wsgi"), ("pkg.mod", "obj.wsgi"))

    def test_module_alone_means_application(self):
        self.assertEqual(tp.parse_app_spec("wsgi"), ("wsgi", "application"))

    def test_refuses_what_is_no_identifier(self):
        for bad in ("", ":app", "app:", "app:1x", "a-b:app", "app:app()"):
            with self.assertRaises(ValueError, msg=bad):
                tp.parse_app_spec(bad)


class SpawnRequest(unittest.TestCase):
    def good(self, **change):
        message = {"op": "spawn", "socket": "/run/tunerd/w1.sock", "threads": 4, "env": {"A": "1"}}
        message.update(change)
        return json.dumps(message).encode()

    def test_parses(self):
        self.assertEqual(tp.parse_spawn(self.good()), ("/run/tunerd/w1.sock", 4, {"A": "1"}))

    def test_refuses_malformed(self):
        bad = [
            b"spawn /x 1",
            b"\xff\xfe",
            b"[]",
            self.good(op="exec"),
            self.good(socket="relative.sock"),
            self.good(socket="/" + "x" * 200),
            self.good(socket=5),
            self.good(threads=0),
            self.good(threads=True),
            self.good(threads="4"),
            self.good(threads=100000),
            self.good(env=[]),
            self.good(env={"A=B": "1"}),
            self.good(env={"A": 1}),
            self.good(env={"": "1"}),
            self.good(env={f"K{i}": "v" for i in range(tp.MAX_ENV + 1)}),
            b"{" + b" " * tp.MAX_MESSAGE + b"}",
        ]
        for data in bad:
            with self.assertRaises(tp.ProtocolError, msg=data[:60]):
                tp.parse_spawn(data)


class WaitForParent(unittest.TestCase):
    def test_returns_once_the_parent_is_tunerd(self):
        parents = iter([10, 10, 42])
        self.assertTrue(tp.wait_for_parent(42, getppid=lambda: next(parents), sleep=lambda s: 0))

    def test_gives_up(self):
        self.assertFalse(tp.wait_for_parent(42, timeout_s=0.01, getppid=lambda: 10))


def write_app(directory, body):
    with open(os.path.join(directory, "myapp.py"), "w") as f:
        f.write(textwrap.dedent(body))


def start_preloader(directory, app="myapp:app", server="gunicorn"):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    process = subprocess.Popen(
        [sys.executable, SCRIPT, "--app", app, "--dir", directory, "--server", server],
        stdin=theirs,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    theirs.close()
    ours.settimeout(20)
    return process, ours


class ImportError_(unittest.TestCase):
    def test_traceback_on_stderr_error_on_control_exit_3(self):
        with tempfile.TemporaryDirectory() as d:
            write_app(d, "import no_such_module_here\napp = None\n")
            process, control = start_preloader(d)
            reply = json.loads(control.recv(tp.MAX_MESSAGE))
            _, err = process.communicate(timeout=20)
            control.close()
        self.assertEqual(process.returncode, tp.IMPORT_FAILED)
        self.assertFalse(reply["ready"])
        self.assertIn("no_such_module_here", reply["error"])
        self.assertIn(b"Traceback", err)
        self.assertIn(b"myapp.py", err)

    def test_not_callable(self):
        with tempfile.TemporaryDirectory() as d:
            write_app(d, "app = 42\n")
            process, control = start_preloader(d)
            reply = json.loads(control.recv(tp.MAX_MESSAGE))
            process.communicate(timeout=20)
            control.close()
        self.assertEqual(process.returncode, tp.IMPORT_FAILED)
        self.assertIn("not callable", reply["error"])


def importable(module):
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


@unittest.skipUnless(importable("waitress"), "waitress is not installed (python3-waitress)")
class WaitressOptions(unittest.TestCase):
    def test_waitress_takes_them(self):
        from waitress.adjustments import Adjustments

        adj = Adjustments(**tp.waitress_options("/run/tunerd/w1.sock", 4))
        self.assertEqual(adj.unix_socket, "/run/tunerd/w1.sock")
        self.assertEqual(adj.unix_socket_perms, 0o600)
        self.assertEqual(adj.threads, 4)
        self.assertEqual(adj.connection_limit, 100)
        self.assertFalse(adj.ident)  # no Server header
        self.assertFalse(adj.clear_untrusted_proxy_headers)

    def test_connection_limit_grows_with_threads(self):
        self.assertEqual(tp.waitress_options("/x.sock", 200)["connection_limit"], 400)


class ForkedWorkerCase:
    """This test process stands for tunerd: a child subreaper that the worker is reparented to."""

    server = None
    started_log = b""  # what the server writes to the worker's stderr as it starts

    @classmethod
    def setUpClass(cls):
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0

    def test_spawns_a_worker_that_serves_the_preloaded_app(self):
        with tempfile.TemporaryDirectory() as d:
            write_app(
                d,
                """
                import os
                IMPORTED_IN = os.getpid()
                def app(environ, start_response):
                    start_response("200 OK", [("Content-Type", "text/plain")])
                    body = "%d %s %s %s" % (IMPORTED_IN, os.environ.get("MARK"), os.getpid(),
                                            environ["wsgi.url_scheme"])
                    return [body.encode()]
                """,
            )
            process, control = start_preloader(d, server=self.server)
            ready = json.loads(control.recv(tp.MAX_MESSAGE))
            self.assertTrue(ready["ready"], ready)
            self.assertEqual(ready["pid"], process.pid)

            # A malformed request is answered, not fatal.
            control.send(b'{"op": "spawn"}')
            self.assertFalse(json.loads(control.recv(tp.MAX_MESSAGE))["ok"])

            path = os.path.join(d, "w1.sock")
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            request = {"op": "spawn", "socket": path, "threads": 2, "env": {"MARK": "m1"}}
            socket.send_fds(control, [tp.encode(request)], [out_w, err_w])
            os.close(out_w)
            os.close(err_w)
            reply = json.loads(control.recv(tp.MAX_MESSAGE))
            self.assertTrue(reply["ok"], reply)
            worker = reply["pid"]
            try:
                # Reparented to us; its own process group.
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    with open(f"/proc/{worker}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    if int(fields[1]) == os.getpid():
                        break
                    time.sleep(0.01)
                self.assertEqual(int(fields[1]), os.getpid())
                self.assertEqual(int(fields[2]), worker)

                body = b""
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    try:
                        with socket.socket(socket.AF_UNIX) as s:
                            s.settimeout(5)
                            s.connect(path)
                            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\nX-Forwarded-Proto: https\r\n\r\n")
                            while chunk := s.recv(4096):
                                body += chunk
                        break
                    except (FileNotFoundError, ConnectionRefusedError):
                        time.sleep(0.05)
                self.assertIn(b"200 OK", body)
                head, payload = body.split(b"\r\n\r\n", 1)
                imported_in, mark, served_by, scheme = payload.split()
                self.assertEqual(scheme, b"https")  # tunerd's X-Forwarded-Proto is trusted
                self.assertEqual(int(imported_in), process.pid)  # not imported again
                self.assertEqual(mark, b"m1")
                self.assertNotEqual(int(served_by), process.pid)
                self.assertEqual(int(served_by), worker)  # the worker itself: one process a slot
                if self.server == "waitress":
                    self.assertNotIn(b"\r\nServer:", head)
            finally:
                os.killpg(worker, signal.SIGTERM)
                os.waitpid(worker, 0)
                control.close()  # the preloader exits when tunerd closes its end
                process.communicate(timeout=10)
                os.close(out_r)
                # The server logs to the worker's stderr: the passed pipe, not the preloader's.
                os.set_blocking(err_r, False)
                try:
                    worker_log = os.read(err_r, 65536)
                except BlockingIOError:
                    worker_log = b""
                os.close(err_r)
            self.assertIn(self.started_log.replace(b"PATH", path.encode()), worker_log)
            self.assertNotIn(b"Traceback", worker_log)
            self.assertNotIn(b"Warning", worker_log)
            self.assertEqual(process.returncode, 0)


@unittest.skipUnless(importable("gunicorn"), "gunicorn is not installed (python3-gunicorn)")
class ForkedGunicornWorker(ForkedWorkerCase, unittest.TestCase):
    server = "gunicorn"
    started_log = b"Listening at: unix:PATH"


@unittest.skipUnless(importable("waitress"), "waitress is not installed (python3-waitress)")
class ForkedWaitressWorker(ForkedWorkerCase, unittest.TestCase):
    server = "waitress"


if __name__ == "__main__":
    unittest.main()
