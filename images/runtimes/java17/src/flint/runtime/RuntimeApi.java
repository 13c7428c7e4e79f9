package flint.runtime;

import java.io.IOException;
import java.nio.charset.StandardCharsets;

/** The Lambda Runtime API client (HTTP/1.1 to AWS_LAMBDA_RUNTIME_API, one connection). */
final class RuntimeApi {
    /** One invocation as /runtime/invocation/next returned it. */
    record Invocation(String requestId, long deadlineMs, String functionArn, String traceId, byte[] event) {}

    private static final String BASE = "/2018-06-01/runtime";
    private final HttpConn http;

    RuntimeApi(String hostPort) {
        this.http = new HttpConn(hostPort);
    }

    /**
     * Warm pool: blocks until flint-init knows the function this pre-started JVM is for;
     * returns its answer, {"environment": {...}}.
     */
    String waitForFunction() throws IOException {
        HttpConn.Response r = http.send("GET", "/flint/v1/function", null, null);
        if (r.status() != 200) throw new IOException("GET /flint/v1/function: HTTP " + r.status());
        return new String(r.body(), StandardCharsets.UTF_8);
    }

    Invocation next() throws IOException {
        HttpConn.Response r = http.send("GET", BASE + "/invocation/next", null, null);
        if (r.status() != 200) throw new IOException("invocation/next: HTTP " + r.status());
        String id = r.header("Lambda-Runtime-Aws-Request-Id");
        if (id == null) throw new IOException("invocation/next: no Lambda-Runtime-Aws-Request-Id");
        String deadline = r.header("Lambda-Runtime-Deadline-Ms");
        String arn = r.header("Lambda-Runtime-Invoked-Function-Arn");
        return new Invocation(id, deadline == null ? 0L : Long.parseLong(deadline), arn == null ? "" : arn,
                r.header("Lambda-Runtime-Trace-Id"), r.body());
    }

    void respond(String requestId, byte[] body) throws IOException {
        post("/invocation/" + requestId + "/response", body, null);
    }

    void error(String requestId, ErrorDoc doc) throws IOException {
        post("/invocation/" + requestId + "/error", doc.toJson().getBytes(StandardCharsets.UTF_8), doc.errorType());
    }

    void initError(ErrorDoc doc) throws IOException {
        post("/init/error", doc.toJson().getBytes(StandardCharsets.UTF_8), doc.errorType());
    }

    private void post(String path, byte[] body, String errorType) throws IOException {
        String type = errorType == null ? null : errorType.replaceAll("[^\\x20-\\x7e]", "?");
        HttpConn.Response r = http.send("POST", BASE + path, body, type);
        if (r.status() / 100 != 2) throw new IOException(path + ": HTTP " + r.status());
    }
}
