package flint.runtime;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * The C library's environment (environ), replaced at the warm pool's hand-over through
 * /var/runtime/lib/libflintenv.so (native/flintenv.c, compiled by the recipe's build).
 */
final class NativeEnvironment {
    static final String LIBRARY = "/var/runtime/lib/libflintenv.so";

    private NativeEnvironment() {}

    private static native int replace(byte[] block);

    /** Makes `vars` the process environment; false when the library refused it. */
    static boolean replaceWith(Map<String, String> vars) {
        System.load(LIBRARY);
        ByteArrayOutputStream block = new ByteArrayOutputStream();
        for (Map.Entry<String, String> e : vars.entrySet()) {
            if (e.getKey().isEmpty() || e.getKey().indexOf('=') >= 0 || e.getKey().indexOf('\0') >= 0
                    || e.getValue().indexOf('\0') >= 0) continue;
            block.writeBytes((e.getKey() + "=" + e.getValue()).getBytes(StandardCharsets.UTF_8));
            block.write(0);
        }
        return replace(block.toByteArray()) == 0;
    }
}
