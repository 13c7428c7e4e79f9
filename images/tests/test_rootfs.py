"""Tests of the built runtime images in ${FLINT_IMAGES_DIR:-/var/lib/flint/images}.

Checks the image rules (directories, sbx_user1051, nothing setuid, runtime.json)
and runs each runtime's bootstrap for real inside its rootfs with bubblewrap
(as uid 993, read-only root, fresh /tmp) against the fake Runtime API.
The images must have been built (images/tests/run.sh builds them first); a
missing image or a missing bwrap is a test failure, not a skip.
"""

import json
import os
import queue
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_runtime_api import FakeRuntimeApi  # noqa: E402

IMAGES_SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES_DIR = os.environ.get("FLINT_IMAGES_DIR", "/var/lib/flint/images")
RUNTIMES = sorted(os.listdir(os.path.join(IMAGES_SRC, "runtimes")))
REQUIRED_DIRS = ["proc", "sys", "dev", "tmp", "var/task", "var/runtime", "opt"]
EMPTY_DIRS = ["proc", "sys", "dev", "tmp", "var/task", "opt"]


def image_dir(testcase, runtime):
    root = os.path.join(IMAGES_DIR, runtime)
    if not os.path.isfile(os.path.join(root, "recipe.sha256")):
        testcase.fail(f"runtime image {root} is not built: run images/build-rootfs.sh {runtime}")
    return root


class ImageLayoutTests(unittest.TestCase):
    def test_every_recipe_image_follows_the_rules(self):
        self.assertIn("python3.11", RUNTIMES)
        self.assertIn("provided", RUNTIMES)
        self.assertIn("nodejs18.x", RUNTIMES)
        self.assertIn("ruby3.2", RUNTIMES)
        self.assertIn("java17", RUNTIMES)
        for runtime in RUNTIMES:
            with self.subTest(runtime=runtime):
                root = image_dir(self, runtime)
                rootfs = os.path.join(root, "rootfs")
                with open(os.path.join(root, "runtime.json")) as f:
                    doc = json.load(f)
                self.assertEqual(doc["name"], runtime)
                self.assertIsInstance(doc["bootstrap"], list)
                for d in REQUIRED_DIRS:
                    self.assertTrue(os.path.isdir(os.path.join(rootfs, d)), f"/{d} missing")
                for d in EMPTY_DIRS:
                    self.assertEqual(os.listdir(os.path.join(rootfs, d)), [], f"/{d} not empty")
                self.assertEqual(stat.S_IMODE(os.stat(os.path.join(rootfs, "tmp")).st_mode), 0o1777)
                with open(os.path.join(rootfs, "etc/passwd")) as f:
                    self.assertIn("sbx_user1051:x:993:990::/tmp:", f.read())
                with open(os.path.join(rootfs, "etc/group")) as f:
                    self.assertIn("sbx_user1051:x:990:", f.read())
                interpreter = {"nodejs18.x": "usr/bin/node", "ruby3.2": "usr/bin/ruby", "java17": "usr/bin/java"}.get(runtime, "usr/bin/python3")
                self.assertTrue(os.access(os.path.join(rootfs, interpreter), os.X_OK), interpreter)
                self.assertFalse(os.path.exists(os.path.join(rootfs, "var/cache/apt/archives/partial")))
                self.assertEqual(os.listdir(os.path.join(rootfs, "usr/share/doc")), [])
                setuid = []
                for dirpath, _, files in os.walk(rootfs):
                    for name in files:
                        st = os.lstat(os.path.join(dirpath, name))
                        if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                            setuid.append(os.path.join(dirpath, name))
                self.assertEqual(setuid, [])

    def test_second_build_is_cached(self):
        start = time.monotonic()
        out = subprocess.run(
            [os.path.join(IMAGES_SRC, "build-rootfs.sh"), "python3.11"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        elapsed = time.monotonic() - start
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("python3.11: up to date", out.stdout)
        self.assertLess(elapsed, 2.0)


class SandboxedBootstrapTests(unittest.TestCase):
    """Runs a runtime's bootstrap inside its own rootfs (bwrap) against the fake API."""

    def setUp(self):
        if shutil.which("bwrap") is None:
            self.fail("bubblewrap (bwrap) is needed to run the images: apt-get install bubblewrap")
        self.api = FakeRuntimeApi().start()
        self.task = tempfile.TemporaryDirectory(prefix="flint-task-")
        os.chmod(self.task.name, 0o755)
        self.proc = None

    def tearDown(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.communicate(timeout=10)
        self.api.stop()
        self.task.cleanup()

    def write(self, name, source, mode=0o644):
        path = os.path.join(self.task.name, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(source))
        os.chmod(path, mode)

    def start(self, runtime, handler):
        root = image_dir(self, runtime)
        with open(os.path.join(root, "runtime.json")) as f:
            argv = json.load(f)["bootstrap"]
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "LAMBDA_TASK_ROOT": "/var/task",
            "_HANDLER": handler,
            "AWS_LAMBDA_FUNCTION_NAME": "image-test",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        }
        cmd = ["bwrap", "--ro-bind", os.path.join(root, "rootfs"), "/", "--proc", "/proc", "--dev", "/dev"]
        cmd += ["--tmpfs", "/tmp", "--ro-bind", self.task.name, "/var/task", "--chdir", "/var/task"]
        cmd += ["--unshare-user", "--uid", "993", "--gid", "990", "--unshare-pid", "--unshare-ipc"]
        cmd += ["--die-with-parent", "--clearenv"]
        for key, value in env.items():
            cmd += ["--setenv", key, value]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def invoke(self, request_id, event):
        self.api.add_event(request_id, event)
        try:
            return self.api.next_post(timeout=20)
        except queue.Empty:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=10)
            self.fail(f"no answer from the runtime in 20 s; stderr: {err.decode()!r}")

    def test_python_runtime_in_its_image(self):
        self.write(
            "app.py",
            """
            import os, ssl, sqlite3
            import boto3
            count = 0
            def handler(event, context):
                global count
                count += 1
                open("/tmp/scratch", "w").write("x")
                return {"uid": os.getuid(), "count": count, "echo": event, "mem": context.memory_limit_in_mb,
                        "boto3": boto3.__version__.split(".")[0]}
            """,
        )
        self.start("python3.11", "app.handler")
        first = self.invoke("r1", {"a": 1})
        cold_ms = (time.monotonic() - self.started) * 1000
        self.assertEqual(first.path, "/invocation/r1/response")
        self.assertEqual(first.json(), {"uid": 993, "count": 1, "echo": {"a": 1}, "mem": "128", "boto3": "1"})
        self.assertEqual(self.invoke("r2", {"a": 2}).json()["count"], 2)
        print(f"\n  python3.11 in bwrap: first response {cold_ms:.0f} ms after spawn", file=sys.stderr)

    def test_python_runtime_loads_its_bytecode_not_its_source(self):
        # The runtime module is compiled at image build (the recipe's build script); a
        # start that compiled it again would cost about 0.9 MB of heap and 2.5 ms. `-v`
        # names where each module's code came from.
        root = image_dir(self, "python3.11")
        cmd = ["bwrap", "--ro-bind", os.path.join(root, "rootfs"), "/", "--proc", "/proc", "--dev", "/dev"]
        cmd += ["--unshare-user", "--uid", "993", "--gid", "990", "--die-with-parent", "--clearenv"]
        # No AWS_LAMBDA_RUNTIME_API: the runtime loads, says so on stderr and exits 1.
        run = subprocess.run(cmd + ["/usr/bin/python3", "-v", "/var/runtime/bootstrap"], capture_output=True, timeout=30)
        err = run.stderr.decode()
        self.assertEqual(run.returncode, 1, err[-2000:])
        self.assertIn("AWS_LAMBDA_RUNTIME_API is not set", err)
        cached = "/var/runtime/__pycache__/_flint_runtime.cpython-311.pyc"
        self.assertIn(f"# code object from '{cached}'", err)
        self.assertNotIn(f"could not create '{cached}'", err)

    def test_python_runtime_reports_import_error_in_its_image(self):
        self.start("python3.11", "missing.handler")
        post = self.api.next_post(timeout=20)
        self.assertEqual(post.path, "/init/error")
        self.assertEqual(post.json()["errorType"], "Runtime.ImportModuleError")

    def test_nodejs_runtime_in_its_image(self):
        self.write("index.mjs", "let n = 0;\nexport const handler = async (e, c) => ({ n: ++n, uid: process.getuid(), mem: c.memoryLimitInMB });\n")
        self.start("nodejs18.x", "index.handler")
        first = self.invoke("n1", {})
        cold_ms = (time.monotonic() - self.started) * 1000
        self.assertEqual(first.path, "/invocation/n1/response")
        self.assertEqual(first.json(), {"n": 1, "uid": 993, "mem": "128"})
        self.assertEqual(self.invoke("n2", {}).json()["n"], 2)
        print(f"\n  nodejs18.x in bwrap: first response {cold_ms:.0f} ms after spawn", file=sys.stderr)

    def test_ruby_runtime_in_its_image(self):
        self.write("function.rb", "$n = 0\ndef handler(event:, context:)\n  { n: $n += 1, uid: Process.uid, mem: context.memory_limit_in_mb }\nend\n")
        self.start("ruby3.2", "function.handler")
        first = self.invoke("b1", {})
        cold_ms = (time.monotonic() - self.started) * 1000
        self.assertEqual(first.path, "/invocation/b1/response")
        self.assertEqual(first.json(), {"n": 1, "uid": 993, "mem": "128"})
        self.assertEqual(self.invoke("b2", {}).json()["n"], 2)
        print(f"\n  ruby3.2 in bwrap: first response {cold_ms:.0f} ms after spawn", file=sys.stderr)

    def test_java_runtime_in_its_image(self):
        os.makedirs(os.path.join(self.task.name, "example"))
        self.write(
            "example/Count.java",
            """\
            package example;
            import com.amazonaws.services.lambda.runtime.Context;
            import java.util.Map;
            public class Count {
                private int n;
                public Map<String, Object> handle(Map<String, Object> event, Context c) {
                    return Map.of("n", ++n, "user", System.getProperty("user.name"), "mem", c.getMemoryLimitInMB());
                }
            }
            """,
        )
        api_jar = os.path.join(image_dir(self, "java17"), "rootfs/var/runtime/runtime.jar")
        if shutil.which("javac") is None:
            self.fail("javac is needed to compile the test handler: images/host-deps.sh installs it")
        src = os.path.join(self.task.name, "example/Count.java")
        subprocess.run(["javac", "--release", "17", "-cp", api_jar, "-d", self.task.name, src], check=True, timeout=120)
        os.chmod(os.path.join(self.task.name, "example"), 0o755)
        self.start("java17", "example.Count::handle")
        first = self.invoke("j1", {})
        cold_ms = (time.monotonic() - self.started) * 1000
        self.assertEqual(first.path, "/invocation/j1/response")
        self.assertEqual(first.json(), {"n": 1, "user": "sbx_user1051", "mem": 128})
        self.assertEqual(self.invoke("j2", {}).json()["n"], 2)
        print(f"\n  java17 in bwrap: first response {cold_ms:.0f} ms after spawn", file=sys.stderr)

    def test_provided_runtime_runs_the_functions_bootstrap(self):
        self.write(
            "bootstrap",
            """\
            #!/bin/sh
            exec /usr/bin/python3 /var/task/loop.py
            """,
            0o755,
        )
        self.write(
            "loop.py",
            """
            import http.client, json, os
            conn = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
            while True:
                conn.request("GET", "/2018-06-01/runtime/invocation/next")
                resp = conn.getresponse()
                event = json.loads(resp.read())
                rid = resp.headers["Lambda-Runtime-Aws-Request-Id"]
                body = json.dumps({"handler": os.environ["_HANDLER"], "got": event}).encode()
                conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", body)
                conn.getresponse().read()
            """,
        )
        self.start("provided", "function.handler")
        post = self.invoke("p1", [1, 2])
        self.assertEqual(post.path, "/invocation/p1/response")
        self.assertEqual(post.json(), {"handler": "function.handler", "got": [1, 2]})


if __name__ == "__main__":
    unittest.main()
