package flint.runtime;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.MalformedURLException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * The function's handler, loaded from /var/task (classes, and lib/*.jar): "package.Class"
 * (a RequestHandler or RequestStreamHandler) or "package.Class::method".
 */
final class Handler {
    /** A failure while loading the handler: Lambda's Runtime.* error type and a message. */
    static final class InitException extends Exception {
        private static final long serialVersionUID = 1L;
        final String errorType;

        InitException(String errorType, String message, Throwable cause) {
            super(message, cause);
            this.errorType = errorType;
        }
    }

    /** An event or result that cannot be mapped (Runtime.UnmarshalError / MarshalError). */
    static final class MappingException extends Exception {
        private static final long serialVersionUID = 1L;
        final String errorType;

        MappingException(String errorType, String message) {
            super(message);
            this.errorType = errorType;
        }
    }

    private final Object target;
    private final Method method;
    private final boolean stream;
    private final boolean takesContext;
    private final Class<?> inputType;

    private Handler(Object target, Method method, boolean stream, boolean takesContext, Class<?> inputType) {
        this.target = target;
        this.method = method;
        this.stream = stream;
        this.takesContext = takesContext;
        this.inputType = inputType;
    }

    /** Where Lambda's Java runtimes find the jars of the function's layers. */
    static final File LAYER_LIB = new File("/opt/java/lib");

    /**
     * The class loader of the function's code: taskRoot itself, every taskRoot/lib/*.jar and
     * taskRoot/*.jar, then every jar of the layers in /opt/java/lib (Lambda's class path order).
     */
    static ClassLoader codeLoader(File taskRoot) throws MalformedURLException {
        List<URL> urls = new ArrayList<>();
        urls.add(taskRoot.toURI().toURL());
        addJars(urls, new File(taskRoot, "lib"));
        addJars(urls, taskRoot);
        addJars(urls, LAYER_LIB);
        return new URLClassLoader(urls.toArray(new URL[0]), Handler.class.getClassLoader());
    }

    /** Adds the jars directly in dir (if it exists), sorted by name. */
    private static void addJars(List<URL> urls, File dir) throws MalformedURLException {
        File[] jars = dir.listFiles((d, n) -> n.endsWith(".jar"));
        if (jars != null) {
            Arrays.sort(jars);
            for (File j : jars) urls.add(j.toURI().toURL());
        }
    }

    static Handler load(String spec, ClassLoader loader) throws InitException {
        if (spec == null || spec.isEmpty()) {
            throw new InitException("Runtime.MalformedHandlerName", "no handler given (_HANDLER is empty)", null);
        }
        String className = spec;
        String methodName = null;
        int sep = spec.indexOf("::");
        if (sep >= 0) {
            className = spec.substring(0, sep);
            methodName = spec.substring(sep + 2);
            if (className.isEmpty() || methodName.isEmpty()) {
                throw new InitException("Runtime.MalformedHandlerName",
                        "handler '" + spec + "' must be package.Class::method or package.Class", null);
            }
        }
        Class<?> cls;
        try {
            cls = Class.forName(className, true, loader);
        } catch (ClassNotFoundException | NoClassDefFoundError e) {
            throw new InitException("java.lang.ClassNotFoundException", "Class not found: " + className, e);
        } catch (ExceptionInInitializerError e) {
            Throwable c = e.getCause() == null ? e : e.getCause();
            throw new InitException(c.getClass().getName(), String.valueOf(c.getMessage()), c);
        }
        Object instance = null;
        if (methodName == null) {
            if (!RequestHandler.class.isAssignableFrom(cls) && !RequestStreamHandler.class.isAssignableFrom(cls)) {
                throw new InitException("Runtime.HandlerNotFound", "Class " + className
                        + " does not implement RequestHandler or RequestStreamHandler (or give Class::method)", null);
            }
            methodName = "handleRequest";
            instance = construct(cls);
        }
        Method m = pick(cls, methodName, RequestStreamHandler.class.isAssignableFrom(cls));
        if (m == null) {
            throw new InitException("Runtime.HandlerNotFound", "No public method named " + methodName
                    + " with 1 to 3 parameters in class " + className, null);
        }
        if (!Modifier.isStatic(m.getModifiers()) && instance == null) instance = construct(cls);
        m.setAccessible(true);
        Class<?>[] p = m.getParameterTypes();
        boolean stream = p.length >= 2 && p[0] == InputStream.class && p[1] == OutputStream.class;
        boolean ctx = p[p.length - 1] == Context.class;
        return new Handler(instance, m, stream, ctx, stream || p.length == 0 ? null : p[0]);
    }

    /** The handler method: the non-bridge one with the most specific input type. */
    private static Method pick(Class<?> cls, String name, boolean preferStream) {
        Method best = null;
        for (Method m : cls.getMethods()) {
            if (!m.getName().equals(name) || m.getParameterCount() < 1 || m.getParameterCount() > 3) continue;
            Class<?>[] p = m.getParameterTypes();
            boolean isStream = p.length >= 2 && p[0] == InputStream.class && p[1] == OutputStream.class;
            if (p.length == 3 && !isStream) continue;
            if (p.length == 2 && !isStream && p[1] != Context.class) continue;
            if (preferStream && !isStream) continue;
            if (best == null || (best.isBridge() && !m.isBridge())) best = m;
        }
        return best;
    }

    private static Object construct(Class<?> cls) throws InitException {
        try {
            return cls.getDeclaredConstructor().newInstance();
        } catch (NoSuchMethodException e) {
            throw new InitException("Runtime.HandlerNotFound",
                    "Class " + cls.getName() + " has no public no-argument constructor", e);
        } catch (InvocationTargetException e) {
            Throwable c = e.getCause();
            throw new InitException(c.getClass().getName(), String.valueOf(c.getMessage()), c);
        } catch (ReflectiveOperationException e) {
            throw new InitException("Runtime.HandlerNotFound", "Cannot construct " + cls.getName() + ": " + e, e);
        }
    }

    /** Runs the handler on one event; returns the response body. Handler exceptions propagate. */
    byte[] invoke(byte[] event, Context context) throws Throwable {
        try {
            if (stream) {
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                Object[] args = takesContext
                        ? new Object[] {new ByteArrayInputStream(event), out, context}
                        : new Object[] {new ByteArrayInputStream(event), out};
                method.invoke(target, args);
                return out.toByteArray();
            }
            Object input = inputType == null ? null : toInput(new String(event, StandardCharsets.UTF_8));
            Object[] args;
            if (inputType == null) args = new Object[] {context};
            else if (takesContext) args = new Object[] {input, context};
            else args = new Object[] {input};
            if (inputType == Context.class) args = new Object[] {context};
            Object result = method.invoke(target, args);
            if (method.getReturnType() == void.class) return "null".getBytes(StandardCharsets.UTF_8);
            try {
                return Json.write(result).getBytes(StandardCharsets.UTF_8);
            } catch (Json.WriteException e) {
                throw new MappingException("Runtime.MarshalError", e.getMessage());
            }
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
    }

    private Object toInput(String text) throws MappingException {
        if (inputType == InputStream.class) return new ByteArrayInputStream(text.getBytes(StandardCharsets.UTF_8));
        Object v;
        try {
            v = text.isBlank() ? null : Json.parse(text);
        } catch (Json.ParseException e) {
            if (inputType == String.class || inputType == Object.class) return text;
            throw new MappingException("Runtime.UnmarshalError", "Unable to parse the event as JSON: " + e.getMessage());
        }
        if (v == null || inputType == Object.class) return v;
        if (inputType == String.class) return v instanceof String ? v : text;
        Object converted;
        try {
            converted = Pojo.convert(v, inputType);
        } catch (ReflectiveOperationException e) {
            Throwable c = e.getCause() == null ? e : e.getCause();
            throw new MappingException("Runtime.UnmarshalError", "Cannot map the event to " + inputType.getName()
                    + " (it needs a public no-argument constructor and setters or public fields): " + c);
        }
        if (converted != null) return converted;
        throw new MappingException("Runtime.UnmarshalError", "Cannot map a JSON " + kind(v) + " to "
                + inputType.getName() + " (the runtime maps to String, Map, List, number types, Boolean, Object, "
                + "enums and classes with setters or public fields)");
    }

    private static String kind(Object v) {
        if (v instanceof Map) return "object";
        if (v instanceof List) return "array";
        if (v instanceof String) return "string";
        if (v instanceof Boolean) return "boolean";
        return "number";
    }
}
