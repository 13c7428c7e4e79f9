"""Tests of the python3.11 runtime bootstrap against a fake Runtime API server.

The bootstrap runs as a real subprocess (its own shebang, Debian's
/usr/bin/python3) with a temporary task root; the test plays the Runtime API.
Run: /usr/bin/python3 -m unittest discover -s images/tests   (or images/tests/run.sh)
"""

import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_runtime_api import FakeRuntimeApi  # noqa: E402

IMAGES = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOOTSTRAP = os.path.join(IMAGES, "runtimes", "python3.11", "files", "var", "runtime", "bootstrap")


class BootstrapCase(unittest.TestCase):
    """Starts a fake API and, per test, a bootstrap process on a task root of given files."""

    def setUp(self):
        self.api = FakeRuntimeApi().start()
        self.task = tempfile.TemporaryDirectory(prefix="flint-task-")
        self.proc = None

    def tearDown(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc is not None:
            self.proc.stdout.close()
            self.proc.stderr.close()
        self.api.stop()
        self.task.cleanup()

    def write(self, relpath, source):
        path = os.path.join(self.task.name, relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(source))
        return path

    def start(self, handler, extra_env=None):
        self.assertTrue(os.access(BOOTSTRAP, os.X_OK), f"{BOOTSTRAP} is not executable")
        env = {
            "PATH": "/usr/bin:/bin",
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "LAMBDA_TASK_ROOT": self.task.name,
            "_HANDLER": handler,
            "AWS_LAMBDA_FUNCTION_NAME": "test-fn",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/test-fn",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/27/[$LATEST]abc",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [BOOTSTRAP], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/"
        )

    def next_post(self):
        try:
            return self.api.next_post(timeout=10)
        except queue.Empty:
            detail = ""
            if self.proc is not None and self.proc.poll() is not None:
                detail = f" (bootstrap exited {self.proc.returncode}: {self.proc.stderr.read().decode()!r})"
            self.fail("the bootstrap POSTed nothing within 10 s" + detail)

    def invoke(self, request_id, event, headers=None):
        self.api.add_event(request_id, event, headers)
        return self.next_post()

    def stop_and_read(self):
        """Kill the (idle) bootstrap and return its stdout and stderr."""
        self.proc.kill()
        out, err = self.proc.communicate(timeout=10)
        return out.decode(), err.decode()

    def expect_init_error(self, error_type, message):
        post = self.next_post()
        self.assertEqual(post.path, "/init/error")
        self.assertEqual(post.headers.get("Lambda-Runtime-Function-Error-Type"), error_type)
        doc = post.json()
        self.assertEqual(doc["errorType"], error_type)
        self.assertEqual(doc["errorMessage"], message)
        self.assertEqual(doc["requestId"], "")
        self.assertIsInstance(doc["stackTrace"], list)
        self.assertEqual(self.proc.wait(timeout=10), 1, "the bootstrap must exit 1 after an init error")
        self.assertIn(f"[ERROR] {error_type}: {message}", self.proc.stderr.read().decode())
        return doc


class InvocationTests(BootstrapCase):
    def test_result_round_trip_with_context(self):
        self.write(
            "app.py",
            """
            import os
            def handler(event, context):
                return {
                    "event": event,
                    "request_id": context.aws_request_id,
                    "function_name": context.function_name,
                    "function_version": context.function_version,
                    "memory": context.memory_limit_in_mb,
                    "arn": context.invoked_function_arn,
                    "log_group": context.log_group_name,
                    "log_stream": context.log_stream_name,
                    "remaining": context.get_remaining_time_in_millis(),
                    "trace": os.environ.get("_X_AMZN_TRACE_ID"),
                    "cwd": os.getcwd(),
                    "client_context": context.client_context,
                    "identity_id": context.identity.cognito_identity_id,
                }
            """,
        )
        self.start("app.handler")
        deadline = int(time.time() * 1000) + 30_000
        event = {"key": "value", "n": [1, 2, 3], "nested": {"ok": True}}
        post = self.invoke("req-1", event, {"deadline_ms": deadline, "Lambda-Runtime-Trace-Id": "Root=1-abc"})
        self.assertEqual(post.path, "/invocation/req-1/response")
        doc = post.json()
        self.assertEqual(doc["event"], event)
        self.assertEqual(doc["request_id"], "req-1")
        self.assertEqual(doc["function_name"], "test-fn")
        self.assertEqual(doc["function_version"], "$LATEST")
        self.assertEqual(doc["memory"], "256", "a string, as awslambdaric passes it")
        self.assertEqual(doc["arn"], "arn:aws:lambda:us-east-1:123456789012:function:test")
        self.assertEqual(doc["log_group"], "/aws/lambda/test-fn")
        self.assertEqual(doc["log_stream"], "2026/11/27/[$LATEST]abc")
        self.assertTrue(20_000 < doc["remaining"] <= 30_000, doc["remaining"])
        self.assertEqual(doc["trace"], "Root=1-abc")
        self.assertEqual(os.path.realpath(doc["cwd"]), os.path.realpath(self.task.name))
        self.assertIsNone(doc["client_context"])
        self.assertIsNone(doc["identity_id"])

    def test_state_survives_between_invocations_and_connection_is_reused(self):
        self.write(
            "counter.py",
            """
            import os
            with open(os.environ["IMPORT_LOG"], "a") as log:
                log.write("imported\\n")
            calls = 0
            def handler(event, context):
                global calls
                calls += 1
                with open(os.environ["IMPORT_LOG"]) as log:
                    return {"calls": calls, "imports": log.read().count("imported")}
            """,
        )
        self.start("counter.handler", {"IMPORT_LOG": os.path.join(self.task.name, "imports.log")})
        for n in (1, 2, 3):
            post = self.invoke(f"req-{n}", {})
            self.assertEqual(post.path, f"/invocation/req-{n}/response")
            self.assertEqual(post.json(), {"calls": n, "imports": 1})
        self.assertEqual(self.api.connections, 1, "the bootstrap must keep one keep-alive connection")

    def test_a_5_mb_event_and_result(self):
        self.write("app.py", "def handler(event, context):\n    return {'n': len(event['s']), 'back': event['s'][-3:] * 1000000}\n")
        self.start("app.handler")
        post = self.invoke("big", {"s": "x" * (5 * 1024 * 1024 - 3) + "end"})
        self.assertEqual(post.path, "/invocation/big/response")
        doc = post.json()
        self.assertEqual(doc["n"], 5 * 1024 * 1024)
        self.assertEqual(doc["back"], "end" * 1000000)
        self.assertEqual(self.invoke("small", {"s": "ab"}).json(), {"n": 2, "back": "ab" * 1000000})

    def test_none_and_plain_values(self):
        self.write(
            "app.py",
            """
            from decimal import Decimal
            def handler(event, context):
                return {"none": None, "str": "s", "dec": Decimal("1.5")}.get(event["kind"])
            """,
        )
        self.start("app.handler")
        self.assertEqual(self.invoke("r1", {"kind": "none"}).body, b"null")
        self.assertEqual(self.invoke("r2", {"kind": "str"}).json(), "s")
        self.assertEqual(self.invoke("r3", {"kind": "dec"}).json(), 1.5)

    def test_dotted_module_path(self):
        self.write("pkg/__init__.py", "")
        self.write("pkg/sub/__init__.py", "")
        self.write("pkg/sub/mod.py", "def fn(event, context):\n    return 'deep'\n")
        self.start("pkg.sub.mod.fn")
        self.assertEqual(self.invoke("r1", None).json(), "deep")

    def test_client_context_and_identity_headers(self):
        self.write(
            "app.py",
            """
            def handler(event, context):
                cc = context.client_context
                return [cc.custom, cc.env, cc.client.app_title,
                        context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id]
            """,
        )
        self.start("app.handler")
        headers = {
            "Lambda-Runtime-Client-Context": json.dumps(
                {"custom": {"a": 1}, "env": {"platform": "x"}, "client": {"app_title": "T"}}
            ),
            "Lambda-Runtime-Cognito-Identity": json.dumps(
                {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
            ),
        }
        self.assertEqual(self.invoke("r1", {}, headers).json(), [{"a": 1}, {"platform": "x"}, "T", "id-1", "pool-1"])

    def test_logging_module_gets_lambda_format(self):
        self.write(
            "app.py",
            """
            import logging
            logger = logging.getLogger()
            logger.setLevel(logging.INFO)
            def handler(event, context):
                logger.info("hello from %s", "handler")
                print("printed line")
                return 1
            """,
        )
        self.start("app.handler")
        self.assertEqual(self.invoke("req-log", {}).json(), 1)
        out, _ = self.stop_and_read()
        self.assertIn("printed line", out)
        self.assertRegex(out, r"\[INFO\]\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\treq-log\thello from handler")

    def test_context_log_writes_the_message_as_it_is(self):
        self.write("app.py", "def handler(event, context):\n    context.log('one')\n    context.log(2)\n    return 1\n")
        self.start("app.handler")
        self.assertEqual(self.invoke("req-l", {}).json(), 1)
        out, _ = self.stop_and_read()
        self.assertIn("one2", out)

    def test_prestarted_runtime_takes_on_the_function_environment(self):
        self.write(
            "late.py",
            """
            import os
            def handler(event, context):
                return [context.function_name, context.memory_limit_in_mb, os.environ.get("FLINT_PRESTART"),
                        os.environ.get("ONLY_IN_FUNCTION_ENV")]
            """,
        )
        # Warm pool: started with no function (no _HANDLER), it asks flint-init for one.
        self.start("", {"FLINT_PRESTART": "1", "AWS_LAMBDA_FUNCTION_NAME": "pool"})
        time.sleep(0.2)
        self.assertIsNone(self.proc.poll(), "a prestarted bootstrap must wait for its function")
        self.api.function_env.put(
            {
                "AWS_LAMBDA_RUNTIME_API": self.api.address,
                "LAMBDA_TASK_ROOT": self.task.name,
                "_HANDLER": "late.handler",
                "AWS_LAMBDA_FUNCTION_NAME": "late-fn",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
                "ONLY_IN_FUNCTION_ENV": "yes",
            }
        )
        post = self.invoke("req-p", {})
        self.assertEqual(post.path, "/invocation/req-p/response")
        self.assertEqual(post.json(), ["late-fn", "512", None, "yes"])


    def audit_compiles(self, imports=False):
        """A sitecustomize (on PYTHONPATH) that writes the bootstrap's compile (or,
        with `imports`, import) and socket.connect audit events to its stderr, in
        order."""
        first = ("import", "args[0]") if imports else ("compile", "args[1]")
        self.write(
            "audit/sitecustomize.py",
            """
            import sys
            def hook(event, args):
                if event == "%s":
                    sys.stderr.write(f"AUDIT %s {%s}\\n")
                elif event == "socket.connect":
                    sys.stderr.write("AUDIT connect\\n")
            sys.addaudithook(hook)
            """ % (first[0], first[0], first[1]),
        )
        return {"PYTHONPATH": os.path.join(self.task.name, "audit")}

    def audited(self, err):
        return [line for line in err.splitlines() if line.startswith("AUDIT ")]

    def test_prestarted_runtime_warms_the_compiler_before_it_asks_for_its_function(self):
        # /var/task is read-only, so the handler's module is always compiled; the pool's
        # runtime compiles a small module first, so that cost is not a pool hit's.
        self.write("late.py", "def handler(event, context):\n    return 1\n")
        env = self.audit_compiles()
        env.update({"FLINT_PRESTART": "1"})
        self.start("", env)
        self.api.function_env.put(
            {"AWS_LAMBDA_RUNTIME_API": self.api.address, "LAMBDA_TASK_ROOT": self.task.name,
             "_HANDLER": "late.handler"}
        )
        self.assertEqual(self.invoke("req-w", {}).json(), 1)
        _, err = self.stop_and_read()
        events = self.audited(err)
        late = os.path.join(self.task.name, "late.py")
        self.assertIn("AUDIT compile <flint warm-up>", events, err)
        self.assertIn(f"AUDIT compile {late}", events, err)
        warm = events.index("AUDIT compile <flint warm-up>")
        self.assertLess(warm, events.index("AUDIT connect"), events)
        self.assertLess(warm, events.index(f"AUDIT compile {late}"), events)

    def test_prestarted_runtime_draws_no_generator_before_its_function(self):
        # The manifest's snapshot_runtime: a microVM may be snapshotted with this
        # runtime waiting, and every instance of the function restored from it would
        # share a generator seeded before the snapshot. Only the function's own imports,
        # after the restore (the first connect is the wait for it), may seed one.
        self.write("late.py", "import random\ndef handler(event, context):\n    return 3\n")
        env = self.audit_compiles(imports=True)
        env["FLINT_PRESTART"] = "1"
        self.start("", env)
        self.api.function_env.put(
            {"AWS_LAMBDA_RUNTIME_API": self.api.address, "LAMBDA_TASK_ROOT": self.task.name,
             "_HANDLER": "late.handler"}
        )
        self.assertEqual(self.invoke("req-g", {}).json(), 3)
        _, err = self.stop_and_read()
        events = self.audited(err)
        waiting = events.index("AUDIT connect")
        before = [e.split(" ", 2)[2] for e in events[:waiting] if e.startswith("AUDIT import ")]
        self.assertIn("_flint_runtime", before, "the hook sees the runtime's own imports")
        seeded = {"random", "_random", "secrets", "uuid", "tempfile", "ssl", "_ssl"}
        self.assertEqual(sorted(seeded.intersection(before)), [], events)
        self.assertIn("AUDIT import random", events[waiting:], "the function's own import")

    def test_a_runtime_started_with_its_function_does_not_warm_up(self):
        self.write("app.py", "def handler(event, context):\n    return 2\n")
        self.start("app.handler", self.audit_compiles())
        self.assertEqual(self.invoke("req-n", {}).json(), 2)
        _, err = self.stop_and_read()
        self.assertNotIn("AUDIT compile <flint warm-up>", self.audited(err), err)
        self.assertIn(f"AUDIT compile {os.path.join(self.task.name, 'app.py')}", self.audited(err), err)


class InvocationErrorTests(BootstrapCase):
    def test_exception_becomes_error_document_and_loop_continues(self):
        self.write(
            "app.py",
            """
            def helper(x):
                raise ValueError("boom " + x)

            def handler(event, context):
                if event.get("fail"):
                    helper("now")
                return "fine"
            """,
        )
        path = os.path.join(self.task.name, "app.py")
        self.start("app.handler")
        post = self.invoke("req-err", {"fail": True})
        self.assertEqual(post.path, "/invocation/req-err/error")
        self.assertEqual(post.headers.get("Lambda-Runtime-Function-Error-Type"), "ValueError")
        doc = post.json()
        self.assertEqual(doc["errorMessage"], "boom now")
        self.assertEqual(doc["errorType"], "ValueError")
        self.assertEqual(doc["requestId"], "req-err")
        self.assertEqual(
            doc["stackTrace"],
            [
                f'  File "{path}", line 7, in handler\n    helper("now")\n',
                f'  File "{path}", line 3, in helper\n    raise ValueError("boom " + x)\n',
            ],
        )
        # The instance stays usable after a handler exception.
        self.assertEqual(self.invoke("req-ok", {}).json(), "fine")
        _, err = self.stop_and_read()
        self.assertIn("[ERROR] ValueError: boom now\nTraceback (most recent call last):\n", err)
        self.assertIn(f'File "{path}", line 3, in helper', err)

    def test_custom_exception_class_name(self):
        self.write(
            "app.py",
            """
            class OrderNotFound(Exception):
                pass
            def handler(event, context):
                raise OrderNotFound("order 42")
            """,
        )
        self.start("app.handler")
        post = self.invoke("r1", {})
        self.assertEqual(post.headers.get("Lambda-Runtime-Function-Error-Type"), "OrderNotFound")
        self.assertEqual(post.json()["errorType"], "OrderNotFound")
        self.assertEqual(post.json()["errorMessage"], "order 42")

    def test_unserialisable_result_is_marshal_error(self):
        self.write("app.py", "def handler(event, context):\n    return {1, 2}\n")
        self.start("app.handler")
        post = self.invoke("req-m", {})
        self.assertEqual(post.path, "/invocation/req-m/error")
        self.assertEqual(post.headers.get("Lambda-Runtime-Function-Error-Type"), "Runtime.MarshalError")
        doc = post.json()
        self.assertEqual(doc["errorType"], "Runtime.MarshalError")
        self.assertEqual(doc["errorMessage"], "Unable to marshal response: Object of type set is not JSON serializable")
        self.assertEqual(doc["requestId"], "req-m")

    def test_event_that_is_not_json_is_unmarshal_error(self):
        self.write("app.py", "def handler(event, context):\n    return 1\n")
        self.start("app.handler")
        self.api.add_event("req-u", None, raw_body=b"{not json")
        post = self.next_post()
        self.assertEqual(post.path, "/invocation/req-u/error")
        self.assertEqual(post.json()["errorType"], "Runtime.UnmarshalError")
        self.assertTrue(post.json()["errorMessage"].startswith("Unable to unmarshal input: "))


class InitErrorTests(BootstrapCase):
    def test_import_error(self):
        self.start("app.handler")
        self.expect_init_error("Runtime.ImportModuleError", "Unable to import module 'app': No module named 'app'")

    def test_import_error_inside_module(self):
        self.write("app.py", "import does_not_exist_xyz\ndef handler(e, c):\n    return 1\n")
        self.start("app.handler")
        self.expect_init_error(
            "Runtime.ImportModuleError", "Unable to import module 'app': No module named 'does_not_exist_xyz'"
        )

    def test_syntax_error(self):
        path = self.write("app.py", "def handler(event, context):\n    return (1\n")
        self.start("app.handler")
        post_doc = self.expect_init_error(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module 'app': '(' was never closed (app.py, line 2)"
        )
        self.assertEqual(len(post_doc["stackTrace"]), 1)
        self.assertIn(f'File "{path}" Line 2', post_doc["stackTrace"][0])

    def test_missing_handler(self):
        self.write("app.py", "def handler(event, context):\n    return 1\n")
        self.start("app.nope")
        self.expect_init_error("Runtime.HandlerNotFound", "Handler 'nope' missing on module 'app'")

    def test_malformed_handler_name(self):
        self.write("app.py", "def handler(event, context):\n    return 1\n")
        self.start("app")
        self.expect_init_error(
            "Runtime.MalformedHandlerName", "Bad handler 'app': not enough values to unpack (expected 2, got 1)"
        )

    def test_exception_at_module_level(self):
        self.write("app.py", "raise KeyError('cfg')\n")
        self.start("app.handler")
        doc = self.expect_init_error("KeyError", "'cfg'")
        self.assertTrue(any("line 1, in <module>" in entry for entry in doc["stackTrace"]), doc["stackTrace"])


class RuntimeIoTests(unittest.TestCase):
    """The runtime module's own socket code (it avoids socket.py and the resolver)."""

    @classmethod
    def setUpClass(cls):
        sys.path.insert(0, os.path.dirname(BOOTSTRAP))
        import _flint_runtime

        cls.rt = _flint_runtime

    def pair(self, chunks):
        """A reader on one end of a socket pair whose other end sends `chunks` and closes."""
        a, b = socket.socketpair()
        self.addCleanup(a.close)

        def send():
            with b:
                for chunk in chunks:
                    b.sendall(chunk)
                    time.sleep(0.01)

        sender = threading.Thread(target=send)
        sender.start()
        self.addCleanup(sender.join)
        return self.rt.Reader(a)

    def test_lines_across_chunks_and_the_limit(self):
        r = self.pair([b"HTTP/1.1 200 OK\r", b"\nA: b\r\n\r\n", b"0123456789abc"])
        self.assertEqual(r.readline(100), b"HTTP/1.1 200 OK\r\n")
        self.assertEqual(r.readline(100), b"A: b\r\n")
        self.assertEqual(r.readline(100), b"\r\n")
        self.assertEqual(r.readline(4), b"0123", "a line longer than the limit is cut at the limit")
        self.assertEqual(r.read(3), b"456")
        self.assertEqual(r.readline(100), b"789abc", "at end of file, the rest without a newline")
        self.assertEqual(r.readline(100), b"")

    def test_a_large_body_and_a_short_one_at_end_of_file(self):
        body = bytes(range(256)) * 8192  # 2 MiB
        r = self.pair([b"x\n", body[:1000], body[1000:], b"tail"])
        self.assertEqual(r.readline(10), b"x\n")
        self.assertEqual(bytes(r.read(len(body))), body)
        self.assertEqual(r.read(10), b"tail", "fewer bytes than asked for at end of file")
        self.assertEqual(r.read(), b"")

    def test_read_to_end_of_file(self):
        r = self.pair([b"ab", b"cd", b"ef"])
        self.assertEqual(r.read(1), b"a")
        self.assertEqual(r.read(), b"bcdef")

    def test_connect_numeric_and_by_name(self):
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(2)
            port = server.getsockname()[1]
            for host in ("127.0.0.1", "localhost"):
                with self.subTest(host=host):
                    sock = self.rt.connect((host, port))
                    conn, _ = server.accept()
                    try:
                        sock.sendall(b"ping")
                        self.assertEqual(conn.recv(4), b"ping")
                    finally:
                        sock.close()
                        conn.close()
        self.assertNotIn("socket", vars(self.rt), "the runtime must not import socket.py at start")

    def serve_raw(self, script):
        """A raw Runtime API on a thread: `script(server)` accepts and answers by hand.
        Returns a RuntimeApi client for it and the thread (joined at cleanup)."""
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        server.settimeout(10)
        self.addCleanup(server.close)
        errors = []

        def run():
            try:
                script(server)
            except Exception as e:  # reported by the test, not lost on the thread
                errors.append(e)

        t = threading.Thread(target=run)
        t.start()
        self.addCleanup(lambda: (t.join(10), self.assertEqual(errors, [])))
        # The client's sockets time out too: a runtime waiting for an answer that never
        # comes fails the test instead of hanging it.
        socket.setdefaulttimeout(10)
        self.addCleanup(socket.setdefaulttimeout, None)
        return self.rt.RuntimeApi("127.0.0.1:%d" % server.getsockname()[1])

    @staticmethod
    def read_requests(conn, n):
        """Reads until `n` whole requests (heads and Content-Length bodies) arrived."""
        data = b""
        while True:
            reqs, rest = [], data
            while b"\r\n\r\n" in rest:
                head, rest = rest.split(b"\r\n\r\n", 1)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(rest) < length:
                    break
                reqs.append((head.split(b"\r\n")[0], rest[:length]))
                rest = rest[length:]
            if len(reqs) >= n:
                return reqs
            chunk = conn.recv(65536)
            if not chunk:
                return reqs
            data += chunk

    EVENT = (b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r2\r\n"
             b"Content-Length: 2\r\n\r\n{}")
    ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}"

    def test_the_outcome_and_the_next_request_go_out_together(self):
        # The server answers nothing until it holds both requests: a runtime that
        # waited for the POST's answer before asking for the next event would hang.
        seen = []

        def script(server):
            conn, _ = server.accept()
            with conn:
                conn.settimeout(5)
                seen.extend(self.read_requests(conn, 2))
                conn.sendall(self.ACCEPTED + self.EVENT)

        api = self.serve_raw(script)
        headers, body = api.post_then_next("/invocation/r1/response", b"[1]")
        api.close()
        self.assertEqual(
            seen,
            [(b"POST /2018-06-01/runtime/invocation/r1/response HTTP/1.1", b"[1]"),
             (b"GET /2018-06-01/runtime/invocation/next HTTP/1.1", b"")],
        )
        self.assertEqual((headers.get("Lambda-Runtime-Aws-Request-Id"), body), ("r2", b"{}"))

    def test_a_connection_lost_before_the_answer_sends_the_outcome_again(self):
        seen = []

        def script(server):
            conn, _ = server.accept()
            with conn:
                seen.extend(self.read_requests(conn, 2))
            # Closed without an answer: the runtime connects again, POSTs again, asks.
            conn, _ = server.accept()
            with conn:
                conn.settimeout(5)
                seen.extend(self.read_requests(conn, 1))
                conn.sendall(self.ACCEPTED)
                seen.extend(self.read_requests(conn, 1))
                conn.sendall(self.EVENT)

        api = self.serve_raw(script)
        headers, body = api.post_then_next("/invocation/r1/error", b"{}", "Boom")
        api.close()
        lines = [line for line, _ in seen]
        self.assertEqual(lines[2:], [b"POST /2018-06-01/runtime/invocation/r1/error HTTP/1.1",
                                     b"GET /2018-06-01/runtime/invocation/next HTTP/1.1"])
        self.assertEqual(body, b"{}")


if __name__ == "__main__":
    unittest.main()
