package flint.runtime;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** An error document as Lambda's Java runtime reports it: {errorMessage, errorType, stackTrace}. */
record ErrorDoc(String errorMessage, String errorType, List<String> stackTrace) {
    /** The document of a Throwable: its class name as errorType, its frames as stackTrace. */
    static ErrorDoc of(Throwable t) {
        List<String> frames = new ArrayList<>();
        for (StackTraceElement e : t.getStackTrace()) {
            String cls = e.getClassName();
            if (cls.startsWith("flint.runtime.") || cls.startsWith("jdk.internal.reflect.")) break;
            frames.add(e.toString());
        }
        String msg = t.getMessage();
        return new ErrorDoc(msg == null ? "" : msg, t.getClass().getName(), frames);
    }

    static ErrorDoc of(String errorType, String message) {
        return new ErrorDoc(message, errorType, List.of());
    }

    String toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("errorMessage", errorMessage);
        m.put("errorType", errorType);
        m.put("stackTrace", stackTrace);
        try {
            return Json.write(m);
        } catch (Json.WriteException e) {
            throw new IllegalStateException(e);
        }
    }
}
