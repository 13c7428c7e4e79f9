/*
 * libflintenv.so: the one thing Flint's Java runtime cannot do in Java. At the warm pool's
 * hand-over (Environment.java) it makes the C library's environment the function's, so
 * that native code and child processes started without ProcessBuilder.environment() see
 * the function's variables, as System.getenv() does.
 *
 * Called once, from the runtime's main thread, before any function code runs.
 */
#include <jni.h>
#include <stdlib.h>
#include <string.h>

/*
 * Replaces the process environment with `block`: "NAME=VALUE" entries in UTF-8, each
 * ended by a NUL byte. Returns 0, or -1 when the block is malformed or memory runs out
 * (the environment may then be partly replaced; the caller ends the JVM).
 */
JNIEXPORT jint JNICALL Java_flint_runtime_NativeEnvironment_replace(JNIEnv *env, jclass cls,
                                                                     jbyteArray block) {
    (void)cls;
    jsize len = (*env)->GetArrayLength(env, block);
    char *buf = malloc((size_t)len + 1);
    if (buf == NULL) return -1;
    (*env)->GetByteArrayRegion(env, block, 0, len, (jbyte *)buf);
    buf[len] = '\0';
    int rc = clearenv() == 0 ? 0 : -1;
    char *next;
    for (char *entry = buf; rc == 0 && entry < buf + len; entry = next) {
        next = entry + strlen(entry) + 1;
        char *eq = strchr(entry, '=');
        if (eq == NULL || eq == entry) {
            rc = -1;
            break;
        }
        *eq = '\0';
        if (setenv(entry, eq + 1, 1) != 0) rc = -1;
    }
    free(buf);
    return rc;
}
