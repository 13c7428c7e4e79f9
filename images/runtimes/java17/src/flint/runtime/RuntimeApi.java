package flint.runtime;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

/** The Lambda Runtime API client (HTTP/1.1 to AWS_LAMBDA_RUNTIME_API). */
final class RuntimeApi {
    /** One invocation as /runtime/invocation/next returned it. */
    record Invocation(String requestId, long deadlineMs, String functionArn, String traceId, byte[] event) {}

    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    private final String base;
    private final String functionUri;

    RuntimeApi(String hostPort) {
        this.base = "http://" + hostPort + "/2018-06-01/runtime";
        this.functionUri = "http://" + hostPort + "/flint/v1/function";
    }

    /**
     * Warm pool: blocks until flint-init knows the function this pre-started JVM is for;
     * returns its answer, {"environment": {...}}.
     */
    String waitForFunction() throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(functionUri)).GET().build(),
                HttpResponse.BodyHandlers.ofString(java.nio.charset.StandardCharsets.UTF_8));
        if (r.statusCode() != 200) throw new IOException("GET /flint/v1/function: HTTP " + r.statusCode());
        return r.body();
    }

    Invocation next() throws IOException, InterruptedException {
        HttpResponse<byte[]> r = http.send(
                HttpRequest.newBuilder(URI.create(base + "/invocation/next")).GET().build(),
                HttpResponse.BodyHandlers.ofByteArray());
        if (r.statusCode() != 200) throw new IOException("invocation/next: HTTP " + r.statusCode());
        String id = r.headers().firstValue("Lambda-Runtime-Aws-Request-Id")
                .orElseThrow(() -> new IOException("invocation/next: no Lambda-Runtime-Aws-Request-Id"));
        long deadline = r.headers().firstValue("Lambda-Runtime-Deadline-Ms").map(Long::parseLong).orElse(0L);
        return new Invocation(id, deadline,
                r.headers().firstValue("Lambda-Runtime-Invoked-Function-Arn").orElse(""),
                r.headers().firstValue("Lambda-Runtime-Trace-Id").orElse(null), r.body());
    }

    void respond(String requestId, byte[] body) throws IOException, InterruptedException {
        post("/invocation/" + requestId + "/response", body, null);
    }

    void error(String requestId, ErrorDoc doc) throws IOException, InterruptedException {
        post("/invocation/" + requestId + "/error", doc.toJson().getBytes(java.nio.charset.StandardCharsets.UTF_8),
                doc.errorType());
    }

    void initError(ErrorDoc doc) throws IOException, InterruptedException {
        post("/init/error", doc.toJson().getBytes(java.nio.charset.StandardCharsets.UTF_8), doc.errorType());
    }

    private void post(String path, byte[] body, String errorType) throws IOException, InterruptedException {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path))
                .POST(HttpRequest.BodyPublishers.ofByteArray(body));
        if (errorType != null) b.header("Lambda-Runtime-Function-Error-Type", errorType.replaceAll("[^\\x20-\\x7e]", "?"));
        HttpResponse<Void> r = http.send(b.build(), HttpResponse.BodyHandlers.discarding());
        if (r.statusCode() / 100 != 2) throw new IOException(path + ": HTTP " + r.statusCode());
    }
}
