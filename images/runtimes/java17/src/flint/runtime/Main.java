package flint.runtime;

import java.io.File;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/**
 * Flint's java17 runtime: loads the handler named by _HANDLER from /var/task, then serves
 * invocations from the Lambda Runtime API until the sandbox ends. A failed init is POSTed to
 * /runtime/init/error and the JVM exits.
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) throws Exception {
        System.setOut(new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), true, StandardCharsets.UTF_8));
        String api = System.getenv("AWS_LAMBDA_RUNTIME_API");
        if (api == null || api.isEmpty()) {
            System.err.println("flint java17 runtime: AWS_LAMBDA_RUNTIME_API is not set");
            System.exit(2);
        }
        RuntimeApi client = new RuntimeApi(api);
        if ("1".equals(System.getenv("FLINT_PRESTART"))) takeOnFunction(client);
        String taskRoot = System.getenv().getOrDefault("LAMBDA_TASK_ROOT", "/var/task");
        Handler handler;
        try {
            ClassLoader loader = Handler.codeLoader(new File(taskRoot));
            Thread.currentThread().setContextClassLoader(loader);
            handler = Handler.load(System.getenv("_HANDLER"), loader);
        } catch (Handler.InitException e) {
            ErrorDoc doc = new ErrorDoc(e.getMessage(), e.errorType,
                    e.getCause() == null ? java.util.List.of() : ErrorDoc.of(e.getCause()).stackTrace());
            System.out.println(doc.toJson());
            client.initError(doc);
            System.exit(1);
            return;
        } catch (Throwable t) {
            ErrorDoc doc = ErrorDoc.of(t);
            System.out.println(doc.toJson());
            client.initError(doc);
            System.exit(1);
            return;
        }
        while (true) {
            RuntimeApi.Invocation inv = client.next();
            if (inv.traceId() != null) System.setProperty("com.amazonaws.xray.traceHeader", inv.traceId());
            else System.clearProperty("com.amazonaws.xray.traceHeader");
            byte[] body;
            try {
                body = handler.invoke(inv.event(), new LambdaContext(inv));
            } catch (Handler.MappingException e) {
                report(client, inv, ErrorDoc.of(e.errorType, e.getMessage()));
                continue;
            } catch (VirtualMachineError t) {
                // Out of memory (or stack): any thread may have met it, the HTTP client's
                // own included, so the error goes out on a new client. The JVM is not
                // trusted again and ends at once (no shutdown hooks, which could fail too).
                try {
                    report(new RuntimeApi(api), inv, ErrorDoc.of(t));
                } finally {
                    System.out.flush();
                    Runtime.getRuntime().halt(1);
                }
                continue;
            } catch (Throwable t) {
                report(client, inv, ErrorDoc.of(t));
                continue;
            }
            client.respond(inv.requestId(), body);
        }
    }

    /**
     * Warm pool: started before the function was known, the JVM has loaded the runtime's
     * own classes; it now waits for the function and takes on its environment. A failure
     * ends the JVM (flint-init reports it as the runtime's exit).
     */
    private static void takeOnFunction(RuntimeApi client) throws Exception {
        // Classes every invocation needs, loaded while the sandbox waits in the pool.
        for (Class<?> c : new Class<?>[] {Handler.class, LambdaContext.class, ErrorDoc.class, Pojo.class}) {
            Class.forName(c.getName(), true, Main.class.getClassLoader());
        }
        try {
            Environment.replace(Environment.fromAnswer(client.waitForFunction()));
        } catch (Environment.HandOverException e) {
            System.err.println("flint java17 runtime: " + e.getMessage());
            System.exit(2);
        }
    }

    private static void report(RuntimeApi client, RuntimeApi.Invocation inv, ErrorDoc doc) throws Exception {
        System.out.println(doc.toJson());
        client.error(inv.requestId(), doc);
    }
}
