package flint.runtime;

import java.lang.reflect.Field;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Warm-pool hand-over: a JVM started before its function is known (FLINT_PRESTART=1) takes
 * on the function's environment, so that System.getenv(), child processes and native code
 * see the function's from then on.
 *
 * <p>System.getenv() is an unmodifiable view of java.lang.ProcessEnvironment's map, read
 * once at JVM start. The view's backing map (field "m" of Collections.UnmodifiableMap) is
 * ProcessEnvironment's own StringEnvironment, which writes through to the map that
 * System.getenv(name) and ProcessBuilder.environment() read. Reaching it needs
 * {@code --add-opens java.base/java.util=ALL-UNNAMED} (the bootstrap passes it). The C
 * library's environ, which native code reads and which a child process started without
 * ProcessBuilder.environment() inherits, is replaced too (NativeEnvironment); what the JVM
 * itself took from it at start (locale, default charset, time zone) stays as it was.
 */
final class Environment {
    /** The environment could not be replaced (the JVM refused the reflective access). */
    static final class HandOverException extends Exception {
        private static final long serialVersionUID = 1L;

        HandOverException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private Environment() {}

    /** Parses flint-init's {"environment": {...}} answer into a name -> value map. */
    static Map<String, String> fromAnswer(String json) throws HandOverException {
        Object doc;
        try {
            doc = Json.parse(json);
        } catch (Json.ParseException e) {
            throw new HandOverException("the function's environment is not JSON: " + e.getMessage(), e);
        }
        Object env = doc instanceof Map<?, ?> m ? m.get("environment") : null;
        if (!(env instanceof Map<?, ?> vars)) {
            throw new HandOverException("the answer has no \"environment\" object: " + json, null);
        }
        Map<String, String> out = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : vars.entrySet()) {
            if (e.getKey() instanceof String k && e.getValue() instanceof String v) out.put(k, v);
        }
        return out;
    }

    /** Makes `vars` the JVM's whole environment. */
    @SuppressWarnings("unchecked")
    static void replace(Map<String, String> vars) throws HandOverException {
        Map<String, String> view = System.getenv();
        try {
            Field backing = view.getClass().getDeclaredField("m");
            backing.setAccessible(true);
            Map<String, String> env = (Map<String, String>) backing.get(view);
            env.clear();
            env.putAll(vars);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new HandOverException("cannot replace the JVM's environment (the bootstrap must pass "
                    + "--add-opens java.base/java.util=ALL-UNNAMED): " + e, e);
        }
        boolean nativeDone;
        try {
            nativeDone = NativeEnvironment.replaceWith(vars);
        } catch (UnsatisfiedLinkError e) {
            throw new HandOverException("cannot load " + NativeEnvironment.LIBRARY + ": " + e.getMessage(), e);
        }
        if (!nativeDone) throw new HandOverException("cannot replace the process environment (environ)", null);
    }
}
