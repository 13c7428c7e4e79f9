package flint.runtime;

import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.RecordComponent;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Plain Java objects to and from parsed JSON: a JSON object fills a class with a public
 * no-argument constructor through its setters (setName) or public fields, keys it does not
 * have are ignored; an object is written from its public getters (getName, isName), public
 * fields or record components.
 */
final class Pojo {
    private Pojo() {}

    /** Whether `type` is a user class this mapper may construct (not java.*, not abstract). */
    static boolean mappable(Class<?> type) {
        return !type.isPrimitive() && !type.isArray() && !type.isInterface()
                && !Modifier.isAbstract(type.getModifiers())
                && !type.getName().startsWith("java.") && !type.getName().startsWith("javax.");
    }

    /** A parsed JSON value converted to `type`; null when it cannot be. */
    static Object convert(Object v, Class<?> type) throws ReflectiveOperationException {
        if (v == null) return null;
        if (type == Object.class || type.isInstance(v)) return v;
        if (v instanceof Number n) {
            if (type == Integer.class || type == int.class) return n.intValue();
            if (type == Long.class || type == long.class) return n.longValue();
            if (type == Double.class || type == double.class) return n.doubleValue();
            if (type == Float.class || type == float.class) return n.floatValue();
            if (type == Short.class || type == short.class) return n.shortValue();
            if (type == String.class) return n.toString();
        }
        if (v instanceof Boolean && type == boolean.class) return v;
        if (v instanceof String s && type.isEnum()) {
            for (Object c : type.getEnumConstants()) if (((Enum<?>) c).name().equals(s)) return c;
            return null;
        }
        if (v instanceof Map<?, ?> m && mappable(type)) return fromMap(m, type);
        return null;
    }

    private static Object fromMap(Map<?, ?> m, Class<?> type) throws ReflectiveOperationException {
        Object o = type.getDeclaredConstructor().newInstance();
        for (Map.Entry<?, ?> e : m.entrySet()) {
            String key = String.valueOf(e.getKey());
            if (key.isEmpty()) continue;
            String setter = "set" + Character.toUpperCase(key.charAt(0)) + key.substring(1);
            boolean done = false;
            for (Method s : type.getMethods()) {
                if (!s.getName().equals(setter) || s.getParameterCount() != 1) continue;
                Object arg = convert(e.getValue(), s.getParameterTypes()[0]);
                if (arg == null && (e.getValue() != null || s.getParameterTypes()[0].isPrimitive())) continue;
                s.invoke(o, arg);
                done = true;
                break;
            }
            if (done) continue;
            try {
                Field f = type.getField(key);
                if (Modifier.isStatic(f.getModifiers()) || Modifier.isFinal(f.getModifiers())) continue;
                Object arg = convert(e.getValue(), f.getType());
                if (arg != null || !f.getType().isPrimitive()) f.set(o, arg);
            } catch (NoSuchFieldException ignored) {
                // A key the class does not have: ignored, as Lambda's serializer does.
            }
        }
        return o;
    }

    /** The properties of `o` as a map, for the JSON writer. */
    static Map<String, Object> toMap(Object o) throws ReflectiveOperationException {
        Map<String, Object> m = new LinkedHashMap<>();
        Class<?> type = o.getClass();
        if (type.isRecord()) {
            for (RecordComponent c : type.getRecordComponents()) {
                Method a = c.getAccessor();
                a.setAccessible(true);
                m.put(c.getName(), a.invoke(o));
            }
            return m;
        }
        for (Field f : type.getFields()) {
            if (!Modifier.isStatic(f.getModifiers())) m.put(f.getName(), f.get(o));
        }
        for (Method g : type.getMethods()) {
            if (g.getParameterCount() != 0 || Modifier.isStatic(g.getModifiers())
                    || g.getDeclaringClass() == Object.class) continue;
            String n = g.getName();
            String prop = null;
            if (n.startsWith("get") && n.length() > 3) prop = n.substring(3);
            else if (n.startsWith("is") && n.length() > 2 && g.getReturnType() == boolean.class) prop = n.substring(2);
            if (prop == null) continue;
            m.put(Character.toLowerCase(prop.charAt(0)) + prop.substring(1), g.invoke(o));
        }
        return m;
    }
}
