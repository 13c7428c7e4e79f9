package flint.runtime;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.LambdaLogger;
import java.nio.charset.StandardCharsets;

/** The Context of one invocation, from the environment and the invocation's headers. */
final class LambdaContext implements Context {
    /** Writes to stdout, which the sandbox captures as the function's log. */
    static final LambdaLogger LOGGER = new LambdaLogger() {
        @Override
        public void log(String message) {
            System.out.println(message);
        }

        @Override
        public void log(byte[] message) {
            log(new String(message, StandardCharsets.UTF_8));
        }
    };

    private final RuntimeApi.Invocation inv;

    LambdaContext(RuntimeApi.Invocation inv) {
        this.inv = inv;
    }

    private static String env(String name, String dflt) {
        String v = System.getenv(name);
        return v == null ? dflt : v;
    }

    @Override
    public String getAwsRequestId() {
        return inv.requestId();
    }

    @Override
    public String getLogGroupName() {
        return env("AWS_LAMBDA_LOG_GROUP_NAME", "");
    }

    @Override
    public String getLogStreamName() {
        return env("AWS_LAMBDA_LOG_STREAM_NAME", "");
    }

    @Override
    public String getFunctionName() {
        return env("AWS_LAMBDA_FUNCTION_NAME", "");
    }

    @Override
    public String getFunctionVersion() {
        return env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
    }

    @Override
    public String getInvokedFunctionArn() {
        return inv.functionArn();
    }

    @Override
    public int getRemainingTimeInMillis() {
        return (int) Math.max(0, inv.deadlineMs() - System.currentTimeMillis());
    }

    @Override
    public int getMemoryLimitInMB() {
        try {
            return Integer.parseInt(env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"));
        } catch (NumberFormatException e) {
            return 128;
        }
    }

    @Override
    public LambdaLogger getLogger() {
        return LOGGER;
    }
}
