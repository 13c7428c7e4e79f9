"""Runs a runtime bootstrap of this source tree inside its built image, under bubblewrap
(uid 993, read-only root), against the fake Runtime API: the runtime folder
images/runtimes/<runtime>/files/var/runtime is mounted over the image's /var/runtime, so
edits are tested without an image rebuild. A missing image or bwrap fails the test.
"""

import os
import queue
import re
import shutil
import subprocess
import tempfile
import textwrap
import unittest

from fake_runtime_api import FakeRuntimeApi

IMAGES_SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES_DIR = os.environ.get("FLINT_IMAGES_DIR", "/var/lib/flint/images")
# Lambda's Node.js console line: "<ISO time>Z\t<request id>\t<LEVEL>\t<message>".
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t([^\t]*)\t([A-Z]+)\t(.*)$")


class RuntimeInImageCase(unittest.TestCase):
    """A fake API and, per test, the bootstrap in its image on a task root of given files."""

    RUNTIME = None  # the recipe name, set by subclasses
    INTERPRETER = None  # a file the image must have, e.g. usr/bin/node

    def setUp(self):
        if shutil.which("bwrap") is None:
            self.fail("bubblewrap (bwrap) is needed to run the image: apt-get install bubblewrap")
        self.rootfs = os.path.join(IMAGES_DIR, self.RUNTIME, "rootfs")
        self.runtime_src = os.path.join(IMAGES_SRC, "runtimes", self.RUNTIME, "files", "var", "runtime")
        if not os.path.isfile(os.path.join(self.rootfs, self.INTERPRETER)):
            self.fail(f"no {self.RUNTIME} image at {self.rootfs}: run images/build-rootfs.sh {self.RUNTIME}")
        self.api = FakeRuntimeApi().start()
        self.task = tempfile.TemporaryDirectory(prefix="flint-task-")
        os.chmod(self.task.name, 0o755)
        # What a layer would put under /opt (mounted read-only when not empty).
        self.opt = tempfile.TemporaryDirectory(prefix="flint-opt-")
        os.chmod(self.opt.name, 0o755)
        self.proc = None

    def tearDown(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.communicate(timeout=10)
        self.api.stop()
        self.task.cleanup()
        self.opt.cleanup()

    def write(self, relpath, source, root=None):
        """Writes a file of the task root (or of `root`, e.g. self.opt.name)."""
        root = root or self.task.name
        path = os.path.join(root, relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(source))
        os.chmod(path, 0o644)
        for d in range(len(relpath.split("/")) - 1):
            os.chmod(os.path.join(root, *relpath.split("/")[: d + 1]), 0o755)

    def start(self, handler, env=None, prestart=False):
        base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "AWS_LAMBDA_RUNTIME_API": self.api.address}
        if prestart:
            base["FLINT_PRESTART"] = "1"
        else:
            base.update(self.function_env(handler))
        base.update(env or {})
        cmd = ["bwrap", "--ro-bind", self.rootfs, "/", "--ro-bind", self.runtime_src, "/var/runtime"]
        cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        cmd += ["--ro-bind", self.task.name, "/var/task", "--chdir", "/"]
        if os.listdir(self.opt.name):
            cmd += ["--ro-bind", self.opt.name, "/opt"]
        cmd += ["--unshare-user", "--uid", "993", "--gid", "990", "--unshare-pid", "--unshare-ipc"]
        cmd += ["--die-with-parent", "--clearenv"]
        for key, value in base.items():
            cmd += ["--setenv", key, value]
        self.proc = subprocess.Popen(cmd + ["/var/runtime/bootstrap"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def function_env(self, handler):
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "LAMBDA_TASK_ROOT": "/var/task",
            "_HANDLER": handler,
            "AWS_LAMBDA_FUNCTION_NAME": "image-fn",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/image-fn",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/06/[$LATEST]abc",
        }

    def next_post(self, timeout=10):
        try:
            return self.api.next_post(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=10)
            self.fail(f"the bootstrap POSTed nothing within {timeout} s; stdout {out.decode()!r} stderr {err.decode()!r}")

    def invoke(self, request_id, event, headers=None):
        self.api.add_event(request_id, event, headers)
        return self.next_post()

    def output(self):
        """Kill the (idle) bootstrap and return its stdout and stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        out, err = self.proc.communicate(timeout=10)
        self.proc = None
        return out.decode(), err.decode()
