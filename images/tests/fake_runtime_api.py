"""A fake AWS Lambda Runtime API (2018-06-01) server for testing runtime bootstraps.

Serves GET /runtime/invocation/next from a queue of events the test pushes
(and flint-init's GET /flint/v1/function from a queue of function environments),
records every POST (response, error, init/error) for the test to inspect, and
counts TCP connections so keep-alive reuse can be asserted. Stdlib only.
"""

import http.server
import json
import queue
import socket
import threading

PREFIX = "/2018-06-01/runtime"
# flint-init's warm-pool extension: a prestarted runtime waits here for its function.
FUNCTION_PATH = "/flint/v1/function"


class Post:
    """One request the runtime POSTed: path (without the API prefix), headers, body bytes."""

    def __init__(self, path, headers, body):
        self.path = path
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"Post({self.path!r}, {self.body[:300]!r})"


class FakeRuntimeApi:
    """Start with start(), push events with add_event(), read POSTs with next_post()."""

    def __init__(self):
        self.events = queue.Queue()
        self.function_env = queue.Queue()
        self.posts = queue.Queue()
        self.connections = 0
        self._lock = threading.Lock()
        self.server = None
        self.thread = None

    @property
    def address(self):
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def add_event(self, request_id, event, headers=None, raw_body=None):
        body = raw_body if raw_body is not None else json.dumps(event).encode()
        self.events.put((request_id, body, headers or {}))

    def next_post(self, timeout=10.0):
        return self.posts.get(timeout=timeout)

    def start(self):
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                # Headers and body go out in separate writes: avoid Nagle + delayed ACK stalls.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with api._lock:
                    api.connections += 1

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == FUNCTION_PATH:
                    env = api.function_env.get()
                    if env is None:
                        self._reply(500, b'{"errorMessage":"shutting down"}')
                        return
                    self._reply(200, json.dumps({"environment": env}).encode())
                    return
                if self.path != PREFIX + "/invocation/next":
                    self._reply(404, b'{"errorMessage":"not found"}')
                    return
                item = api.events.get()
                if item is None:
                    self._reply(500, b'{"errorMessage":"shutting down"}')
                    return
                request_id, body, extra = item
                headers = {
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(extra.pop("deadline_ms", 0)),
                    "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:test",
                }
                headers.update(extra)
                self._reply(200, body, headers)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                path = self.path[len(PREFIX) :] if self.path.startswith(PREFIX) else self.path
                # Reply first: the test may kill the runtime as soon as it sees the POST.
                self._reply(202, b'{"status":"OK"}')
                api.posts.put(Post(path, dict(self.headers.items()), body))

            def _reply(self, status, body, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                # A runtime killed by the test mid-request is expected, not an error.
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()
        return self

    def stop(self):
        # Release any GET /next still waiting, then stop serving.
        for _ in range(4):
            self.events.put(None)
            self.function_env.put(None)
        self.server.shutdown()
        self.server.server_close()
