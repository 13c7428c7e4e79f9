"""Flint's Python 3.11 runtime: an AWS Lambda Runtime API (2018-06-01) client.

Run by /var/runtime/bootstrap, which flint-init starts as the function's runtime. A
module rather than the script itself because Python compiles a script on every start,
while an imported module loads from the __pycache__ the image build writes (the
recipe's build script): 0.9 MB less heap per instance and about 2.5 ms less start.
For the same reason it imports neither socket.py nor the resolver (Reader, connect).

Imports the handler named by _HANDLER ("module.function", the module may be dotted)
once, then loops: GET /runtime/invocation/next, call handler(event, context), POST the
result (or an error document) back. Behaves like AWS Lambda's python3.11 runtime,
including its error types and messages.

On an init error (bad handler name, import error, syntax error, missing handler) it
POSTs /runtime/init/error and exits with status 1 (Lambda keeps the process around;
here the instance is simply torn down). Standard library only; only the modules needed
for the loop load at start.
"""

# Loaded before a pool sandbox waits for its function, not on the pool hit (0.5 ms).
import importlib
import json
import marshal
import os
import _socket
import sys
import time

API_PREFIX = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"


class FaultError(Exception):
    """A runtime-level error with a Lambda error type (e.g. Runtime.ImportModuleError)."""

    def __init__(self, error_type, message, trace=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace or []


class ApiError(Exception):
    """The Runtime API connection failed or answered something that is not HTTP/1.1."""


class Headers(dict):
    """Response headers, looked up case-insensitively."""

    def get(self, name, default=None):
        return super().get(name.lower(), default)


class Response:
    def __init__(self, status, headers):
        self.status = status
        self.headers = headers


def connect(target):
    """A connected TCP socket. The Runtime API's address is numeric (127.0.0.1:9001), so
    this connects without the resolver: socket.create_connection's getaddrinfo loads
    glibc's NSS modules, 0.4 MB and about 2 ms of every start. A host name is resolved."""
    host, port = target
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, host)
        except OSError:
            continue
        sock = _socket.socket(family, _socket.SOCK_STREAM)
        try:
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return sock
    import socket

    return socket.create_connection(target)


class Reader:
    """Buffered reads from a socket, as socket.makefile("rb") would give, on _socket alone:
    socket.py imports enum and selectors, 0.3 MB and about 2 ms of every start (a function
    that imports socket itself pays that in its own init, as anywhere)."""

    __slots__ = ("sock", "buf")

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self):
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def _take(self, n):
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def readline(self, limit):
        """Up to and including the next b"\\n", at most `limit` bytes; less at end of file."""
        start = 0
        while True:
            end = self.buf.find(b"\n", start, limit)
            if end >= 0:
                return self._take(end + 1)
            if len(self.buf) >= limit:
                return self._take(limit)
            start = len(self.buf)
            if not self._fill():
                return self._take(len(self.buf))

    def read(self, n=None):
        """`n` bytes (fewer only at end of file), or everything up to end of file. A body
        longer than what is buffered comes back as the bytearray it was received into
        (json.loads takes it as it is; no copy of a 6 MB payload)."""
        if n is None:
            while self._fill():
                pass
            return self._take(len(self.buf))
        if len(self.buf) >= n:
            return self._take(n)
        # A body (up to 6 MB): received straight into its own buffer.
        out = bytearray(n)
        have = len(self.buf)
        out[:have] = self.buf
        self.buf.clear()
        view = memoryview(out)
        while have < n:
            got = self.sock.recv_into(view[have:])
            if not got:
                break
            have += got
        view.release()
        if have < n:
            del out[have:]
        return out


class RuntimeApi:
    """One keep-alive HTTP/1.1 connection to the Runtime API. Written on a raw socket:
    importing http.client (which pulls in ssl and email) costs ~18 ms of cold start."""

    def __init__(self, address):
        host, _, port = address.rpartition(":")
        self.host = address
        self.target = (host or "127.0.0.1", int(port))
        self.sock = None
        self.rfile = None

    def close(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.rfile = None

    def _connected(self):
        if self.sock is None:
            self.sock = connect(self.target)
            # Small request/response pairs: never wait for Nagle + delayed ACK.
            self.sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            self.rfile = Reader(self.sock)
        return self.sock

    def _encode(self, method, target, body, headers):
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + body if body is not None else head

    def _read_response(self):
        status_line = self.rfile.readline(65537)
        if not status_line:
            raise ConnectionError("the Runtime API closed the connection")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ApiError(f"bad status line {status_line[:100]!r}")
        status = int(parts[1])
        resp_headers = Headers()
        while True:
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            resp_headers[name.strip().lower()] = value.strip()
        length = resp_headers.get("Content-Length")
        if length is not None:
            data = self.rfile.read(int(length))
            if len(data) != int(length):
                raise ConnectionError("the Runtime API closed the connection mid-body")
        else:
            data = self.rfile.read()
            self.close()
        if resp_headers.get("Connection", "").lower() == "close":
            self.close()
        return Response(status, resp_headers), data

    def _exchange(self, method, target, body, headers):
        self._connected().sendall(self._encode(method, target, body, headers))
        return self._read_response()

    def _request(self, method, path, body=None, headers=None, prefix=API_PREFIX):
        for attempt in (0, 1):
            try:
                return self._exchange(method, prefix + path, body, headers or {})
            except (OSError, ValueError, ApiError):
                # The server closed our idle keep-alive connection: reconnect once.
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def wait_for_function(self):
        """Warm pool: this process started before its function was known. Blocks until
        flint-init has the function, then returns its environment (a dict)."""
        resp, body = self._request("GET", "/flint/v1/function", prefix="")
        if resp.status != 200:
            raise RuntimeError(f"GET /flint/v1/function returned HTTP {resp.status}: {body[:200]!r}")
        return json.loads(body)["environment"]

    def next_invocation(self):
        resp, body = self._request("GET", "/invocation/next")
        if resp.status != 200:
            raise RuntimeError(f"GET /invocation/next returned HTTP {resp.status}: {body[:200]!r}")
        return resp.headers, body

    def post(self, path, payload, error_type=None):
        resp, body = self._request("POST", path, payload, post_headers(error_type))
        warn_if_refused(path, resp, body)

    def post_then_next(self, path, payload, error_type=None):
        """POSTs an invocation's outcome and asks for the next invocation in one write
        (HTTP/1.1 pipelining; flint-init answers a connection's requests in order), so
        flint-init reads both requests at once instead of waking again for the second.
        Returns the next invocation as next_invocation() does. If the connection fails
        before the POST's answer came, the POST is sent again on a new connection, as
        post() would."""
        try:
            sock = self._connected()
            sock.sendall(
                self._encode("POST", API_PREFIX + path, payload, post_headers(error_type))
                + self._encode("GET", API_PREFIX + "/invocation/next", None, {})
            )
            resp, body = self._read_response()
        except (OSError, ValueError, ApiError):
            self.close()
            self.post(path, payload, error_type)
            return self.next_invocation()
        warn_if_refused(path, resp, body)
        if self.sock is None:
            # The server closed the connection after the POST's answer.
            return self.next_invocation()
        try:
            resp, body = self._read_response()
        except (OSError, ValueError, ApiError):
            self.close()
            return self.next_invocation()
        if resp.status != 200:
            raise RuntimeError(f"GET /invocation/next returned HTTP {resp.status}: {body[:200]!r}")
        return resp.headers, body


def post_headers(error_type):
    headers = {"Content-Type": "application/json"}
    if error_type is not None:
        headers[ERROR_TYPE_HEADER] = error_type
    return headers


def warn_if_refused(path, resp, body):
    if resp.status >= 300:
        sys.stderr.write(f"[WARN] POST {path} returned HTTP {resp.status}: {body[:200]!r}\n")


def to_json(value):
    """Serialise a handler result like Lambda (Decimal becomes a number)."""
    return json.dumps(value, default=_json_default).encode()


def _json_default(value):
    if type(value).__name__ == "Decimal":
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def error_doc(message, error_type, request_id, trace):
    return json.dumps(
        {"errorMessage": message, "errorType": error_type, "requestId": request_id, "stackTrace": trace}
    ).encode()


def log_error(error_type, message, trace):
    tb = "".join(trace)
    sys.stderr.write(f"[ERROR] {error_type}: {message}\nTraceback (most recent call last):\n{tb}")
    sys.stderr.flush()


def load_handler(spec):
    """Import the handler's module and return the function; raise FaultError like Lambda."""
    try:
        modname, fname = spec.rsplit(".", 1)
    except ValueError as e:
        raise FaultError("Runtime.MalformedHandlerName", f"Bad handler '{spec}': {e}") from None
    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise FaultError(
                "Runtime.BuiltInModuleConflict", f"Cannot use built-in module {modname} as a handler module"
            )
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise FaultError("Runtime.ImportModuleError", f"Unable to import module '{modname}': {e}") from None
    except SyntaxError as e:
        trace = [f'  File "{e.filename}" Line {e.lineno}\n    {e.text}']
        raise FaultError("Runtime.UserCodeSyntaxError", f"Syntax error in module '{modname}': {e}", trace) from None
    try:
        return getattr(module, fname)
    except AttributeError:
        raise FaultError("Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'") from None


def user_trace(exc):
    """Lambda-style stackTrace entries, without this bootstrap's own frames."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__ and not f.filename.startswith("<frozen ")]
    return traceback.format_list(frames)


class CognitoIdentity:
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]


class Client:
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]


class ClientContext:
    __slots__ = ["custom", "env", "client"]


def _make_identity(raw):
    identity = CognitoIdentity()
    doc = _parse_json_header(raw) or {}
    identity.cognito_identity_id = doc.get("cognitoIdentityId")
    identity.cognito_identity_pool_id = doc.get("cognitoIdentityPoolId")
    return identity


def _make_client_context(raw):
    doc = _parse_json_header(raw)
    if doc is None:
        return None
    ctx = ClientContext()
    ctx.custom = doc.get("custom")
    ctx.env = doc.get("env")
    ctx.client = None
    client = doc.get("client")
    if isinstance(client, dict):
        ctx.client = Client()
        ctx.client.installation_id = client.get("installation_id")
        ctx.client.app_title = client.get("app_title")
        ctx.client.app_version_name = client.get("app_version_name")
        ctx.client.app_version_code = client.get("app_version_code")
        ctx.client.app_package_name = client.get("app_package_name")
    return ctx


def _parse_json_header(raw):
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


class LambdaContext:
    """The context object handed to handler(event, context)."""

    def __init__(self, request_id, headers, env):
        self.aws_request_id = request_id
        self.function_name = env["function_name"]
        self.function_version = env["function_version"]
        self.memory_limit_in_mb = env["memory_limit_in_mb"]
        self.log_group_name = env["log_group_name"]
        self.log_stream_name = env["log_stream_name"]
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn")
        self.client_context = _make_client_context(headers.get("Lambda-Runtime-Client-Context"))
        self.identity = _make_identity(headers.get("Lambda-Runtime-Cognito-Identity"))
        try:
            self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms", "0"))
        except ValueError:
            self._deadline_ms = 0

    def get_remaining_time_in_millis(self):
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def log(self, msg):
        """Lambda's context.log: the message as it is, on stdout (no newline added)."""
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},function_name={self.function_name},"
            f"function_version={self.function_version},memory_limit_in_mb={self.memory_limit_in_mb},"
            f"invoked_function_arn={self.invoked_function_arn}])"
        )


class LoggingSetup:
    """Lambda's log format for the logging module, installed only once the function imports it."""

    def __init__(self):
        self.done = False
        self.request_id = ""

    def maybe_install(self):
        if self.done or "logging" not in sys.modules:
            return
        import logging

        setup = self

        class RequestIdFilter(logging.Filter):
            def filter(self, record):
                record.aws_request_id = setup.request_id
                return True

        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(
            logging.Formatter(
                "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
                "%Y-%m-%dT%H:%M:%S",
            )
        )
        handler.formatter.converter = time.gmtime
        handler.addFilter(RequestIdFilter())
        logging.getLogger().addHandler(handler)
        self.done = True


def function_env():
    return {
        "function_name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", ""),
        "function_version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        # A string, as Lambda's own client (awslambdaric) passes it.
        "memory_limit_in_mb": os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        "log_group_name": os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", ""),
        "log_stream_name": os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", ""),
    }


def handle_one(headers, body, handler, env, logs):
    """Runs one invocation; returns what to POST: (path, payload, error type or None)."""
    request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
    trace_id = headers.get("Lambda-Runtime-Trace-Id")
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    logs.request_id = request_id
    logs.maybe_install()
    path = f"/invocation/{request_id}"

    try:
        event = json.loads(body) if body else None
    except ValueError as e:
        msg = f"Unable to unmarshal input: {e}"
        log_error("Runtime.UnmarshalError", msg, [])
        return path + "/error", error_doc(msg, "Runtime.UnmarshalError", request_id, []), "Runtime.UnmarshalError"

    try:
        result = handler(event, LambdaContext(request_id, headers, env))
    except Exception as e:
        error_type = type(e).__name__
        trace = user_trace(e)
        log_error(error_type, str(e), trace)
        return path + "/error", error_doc(str(e), error_type, request_id, trace), error_type
    finally:
        logs.maybe_install()

    try:
        payload = to_json(result)
    except (TypeError, ValueError) as e:
        msg = f"Unable to marshal response: {e}"
        log_error("Runtime.MarshalError", msg, [])
        return path + "/error", error_doc(msg, "Runtime.MarshalError", request_id, []), "Runtime.MarshalError"
    return path + "/response", payload, None


# A handler-sized module for warm_compiler().
WARM_UP_SOURCE = "def handler(event, context):\n    return {'ok': event}\n"


def warm_compiler():
    """Compiles a small module and marshals its code, as importing a handler from
    /var/task does: that directory is read-only, so no bytecode cache is ever written
    there and the handler's module is always compiled. This process loaded its own
    code from bytecode and never ran the compiler, so the first compilation would
    fault in its code and allocate its memory: about 0.7 ms of a pool hit. A
    pre-started runtime pays that here, before its function is known."""
    marshal.dumps(compile(WARM_UP_SOURCE, "<flint warm-up>", "exec"))


def main():
    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        sys.stderr.write("bootstrap: AWS_LAMBDA_RUNTIME_API is not set\n")
        return 1
    api = RuntimeApi(address)
    if os.environ.get("FLINT_PRESTART") == "1":
        # Started by flint's warm pool with the interpreter up and this module loaded;
        # the function arrives later. Take on its environment, as if started with it.
        warm_compiler()
        environment = api.wait_for_function()
        os.environ.clear()
        os.environ.update(environment)
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    os.environ.setdefault("LAMBDA_TASK_ROOT", task_root)
    os.environ.setdefault("LAMBDA_RUNTIME_DIR", "/var/runtime")
    sys.path[0:0] = [task_root, "/opt/python/lib/python3.11/site-packages", "/opt/python"]
    try:
        os.chdir(task_root)
    except OSError:
        pass

    logs = LoggingSetup()
    try:
        handler = load_handler(os.environ.get("_HANDLER", ""))
    except FaultError as e:
        log_error(e.error_type, e.message, e.trace)
        api.post("/init/error", error_doc(e.message, e.error_type, "", e.trace), e.error_type)
        return 1
    except Exception as e:
        # Any other exception raised while the module initialises: like Lambda, the
        # exception's own class name is the error type.
        error_type = type(e).__name__
        trace = user_trace(e)
        msg = str(e)
        log_error(error_type, msg, trace)
        api.post("/init/error", error_doc(msg, error_type, "", trace), error_type)
        return 1
    logs.maybe_install()

    env = function_env()
    headers, body = api.next_invocation()
    while True:
        path, payload, error_type = handle_one(headers, body, handler, env, logs)
        headers, body = api.post_then_next(path, payload, error_type)


def run():
    """The bootstrap's entry point: main(), with a Runtime API failure as exit status 1."""
    try:
        return main()
    except (OSError, RuntimeError, ValueError, ApiError) as err:
        sys.stderr.write(f"bootstrap: Runtime API failure: {err}\n")
        return 1
