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
            } catch (Throwable t) {
                report(client, inv, ErrorDoc.of(t));
                if (t instanceof VirtualMachineError) System.exit(1);
                continue;
            }
            client.respond(inv.requestId(), body);
        }
    }

    private static void report(RuntimeApi client, RuntimeApi.Invocation inv, ErrorDoc doc) throws Exception {
        System.out.println(doc.toJson());
        client.error(inv.requestId(), doc);
    }
}
