"""Tests of the nodejs18.x runtime bootstrap against a fake Runtime API server.

The bootstrap runs for real with the image's Debian Node.js 18, inside the built
nodejs18.x rootfs under bubblewrap (image_runtime.py), with this source tree's runtime
folder mounted over /var/runtime. The image must have been built (images/tests/run.sh
builds it first); a missing image or a missing bwrap is a test failure, not a skip.
"""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from image_runtime import LINE, RuntimeInImageCase  # noqa: E402


class NodeCase(RuntimeInImageCase):
    RUNTIME = "nodejs18.x"
    INTERPRETER = "usr/bin/node"

    def expect_init_error(self, error_type, message):
        post = self.next_post()
        self.assertEqual(post.path, "/init/error")
        self.assertEqual(post.headers.get("Lambda-Runtime-Function-Error-Type"), error_type)
        doc = post.json()
        self.assertEqual(doc["errorType"], error_type, doc)
        if message is not None:
            self.assertEqual(doc["errorMessage"], message, doc)
        self.assertIsInstance(doc["trace"], list)
        self.assertEqual(self.proc.wait(timeout=10), 129, "the bootstrap exits 129 after an init error")
        out, _ = self.output()
        line = LINE.match(out.splitlines()[-1])
        self.assertIsNotNone(line, out)
        self.assertEqual(line.group(1, 2), ("undefined", "ERROR"))
        self.assertTrue(line.group(3).startswith("Uncaught Exception \t{"), out)
        self.assertEqual(json.loads(line.group(3).split("\t", 1)[1])["errorType"], error_type)
        return doc




class InvocationTests(NodeCase):
    def test_commonjs_handler_gets_lambdas_context(self):
        self.write(
            "index.js",
            """
            exports.handler = async (event, context) => ({
              event,
              uid: process.getuid(),
              cwd: process.cwd(),
              version: process.version,
              awsRequestId: context.awsRequestId,
              functionName: context.functionName,
              functionVersion: context.functionVersion,
              invokedFunctionArn: context.invokedFunctionArn,
              memoryLimitInMB: context.memoryLimitInMB,
              logGroupName: context.logGroupName,
              logStreamName: context.logStreamName,
              remaining: context.getRemainingTimeInMillis(),
              waits: context.callbackWaitsForEmptyEventLoop,
              trace: process.env._X_AMZN_TRACE_ID,
              identity: context.identity,
              clientContext: context.clientContext,
            });
            """,
        )
        self.start("index.handler")
        deadline = int(time.time() * 1000) + 3000
        post = self.invoke(
            "req-1",
            {"a": 1},
            {
                "deadline_ms": deadline,
                "Lambda-Runtime-Trace-Id": "Root=1-abc",
                "Lambda-Runtime-Cognito-Identity": '{"cognitoIdentityId":"id1","cognitoIdentityPoolId":"pool1"}',
                "Lambda-Runtime-Client-Context": '{"custom":{"k":"v"}}',
            },
        )
        self.assertEqual(post.path, "/invocation/req-1/response")
        doc = post.json()
        self.assertTrue(doc.pop("version").startswith("v18."), "Debian's Node.js 18")
        remaining = doc.pop("remaining")
        self.assertTrue(0 < remaining <= 3000, remaining)
        self.assertEqual(
            doc,
            {
                "event": {"a": 1},
                "uid": 993,
                "cwd": "/var/task",
                "awsRequestId": "req-1",
                "functionName": "image-fn",
                "functionVersion": "$LATEST",
                "invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:test",
                "memoryLimitInMB": "256",
                "logGroupName": "/aws/lambda/image-fn",
                "logStreamName": "2026/12/06/[$LATEST]abc",
                "waits": True,
                "trace": "Root=1-abc",
                "identity": {"cognitoIdentityId": "id1", "cognitoIdentityPoolId": "pool1"},
                "clientContext": {"custom": {"k": "v"}},
            },
        )

    def test_v8_heap_is_sized_to_the_functions_memory(self):
        self.write("app.js", "const v8 = require('v8');\nexports.handler = async () => v8.getHeapStatistics().heap_size_limit / 1048576;\n")
        self.start("app.handler", env={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256"})
        limit_mb = self.invoke("r1", {}).json()
        self.assertTrue(200 < limit_mb < 256, f"V8 heap limit {limit_mb} MB for a 256 MB function")

    def test_state_survives_and_one_connection_is_used(self):
        self.write("app.cjs", "let n = 0;\nmodule.exports.handler = async () => ++n;\n")
        self.start("app.handler")
        self.assertEqual([self.invoke(f"r{i}", {}).json() for i in range(3)], [1, 2, 3])
        self.assertEqual(self.api.connections, 1)

    def test_es_module_mjs(self):
        self.write(
            "app.mjs",
            """
            import { readFileSync } from 'node:fs';
            const started = await Promise.resolve('top-level await');
            export const handler = async (event) => ({ started, echo: event, esm: typeof require });
            """,
        )
        self.start("app.handler")
        self.assertEqual(self.invoke("r1", [1]).json(), {"started": "top-level await", "echo": [1], "esm": "undefined"})

    def test_es_module_js_in_a_type_module_package(self):
        self.write("package.json", '{"type": "module"}')
        self.write("src/lib.js", "export const greet = (n) => `hello ${n}`;\n")
        self.write("src/app.js", "import { greet } from './lib.js';\nexport async function handler(e) { return greet(e.name); }\n")
        self.start("src/app.handler")
        self.assertEqual(self.invoke("r1", {"name": "esm"}).json(), "hello esm")

    def test_nested_export_folder_module_and_node_modules(self):
        self.write("lib/index.js", "module.exports.handlers = { main: async () => require('dep').value };\n")
        self.write("node_modules/dep/index.js", "module.exports.value = 'from node_modules';\n")
        self.start("lib.handlers.main")
        self.assertEqual(self.invoke("r1", {}).json(), "from node_modules")

    def test_modules_under_opt_nodejs_are_found_like_layers(self):
        self.write("nodejs/node_modules/shared-lib/index.js", "module.exports = 'from a layer';\n", root=self.opt.name)
        self.write("app.js", "const lib = require('shared-lib');\nexports.handler = async () => lib;\n")
        self.start("app.handler")
        self.assertEqual(self.invoke("r1", {}).json(), "from a layer")

    def test_js_is_preferred_over_mjs_and_cjs(self):
        self.write("app.js", "exports.handler = async () => 'js';\n")
        self.write("app.mjs", "export const handler = async () => 'mjs';\n")
        self.write("app.cjs", "exports.handler = async () => 'cjs';\n")
        self.start("app.handler")
        self.assertEqual(self.invoke("r1", {}).json(), "js")

    def test_callback_handler_waits_for_the_empty_event_loop(self):
        self.write(
            "app.js",
            """
            exports.handler = (event, context, callback) => {
              context.callbackWaitsForEmptyEventLoop = event.wait;
              setTimeout(() => console.log('timer done'), 1000);
              callback(null, { wait: event.wait });
            };
            """,
        )
        self.start("app.handler")
        t0 = time.monotonic()
        self.assertEqual(self.invoke("r1", {"wait": True}).json(), {"wait": True})
        waited = time.monotonic() - t0
        self.assertGreaterEqual(waited, 0.95, "the response must wait for the pending timer")
        t0 = time.monotonic()
        self.assertEqual(self.invoke("r2", {"wait": False}).json(), {"wait": False})
        self.assertLess(time.monotonic() - t0, 0.7, "callbackWaitsForEmptyEventLoop=false answers at once")
        out, _ = self.output()
        timer_lines = [LINE.match(line) for line in out.splitlines() if line.endswith("timer done")]
        self.assertEqual(timer_lines[0].group(1), "r1", out)

    def test_callback_error_and_legacy_context_methods(self):
        self.write(
            "app.js",
            """
            exports.handler = (event, context, callback) => {
              if (event.op === 'cb-error') return callback(new TypeError('bad input'));
              if (event.op === 'succeed') return context.succeed('ok');
              if (event.op === 'fail') return context.fail(new Error('failed'));
              if (event.op === 'done') return context.done(null, 'done');
            };
            """,
        )
        self.start("app.handler")
        post = self.invoke("r1", {"op": "cb-error"})
        self.assertEqual(post.path, "/invocation/r1/error")
        self.assertEqual(post.json()["errorType"], "TypeError")
        self.assertEqual(self.invoke("r2", {"op": "succeed"}).json(), "ok")
        self.assertEqual(self.invoke("r3", {"op": "fail"}).json()["errorMessage"], "failed")
        self.assertEqual(self.invoke("r4", {"op": "done"}).json(), "done")

    def test_no_result_is_null(self):
        self.write("app.js", "exports.sync = () => {};\nexports.asyncUndefined = async () => undefined;\n")
        self.start("app.sync")
        post = self.invoke("r1", {})
        self.assertEqual((post.path, post.body), ("/invocation/r1/response", b"null"))

    def test_console_lines_have_lambdas_prefix(self):
        self.write(
            "app.js",
            """
            console.log('loading');
            exports.handler = async () => {
              console.log('hello %d', 42);
              console.info('info');
              console.warn('warn');
              console.error('error', { a: 1 });
              console.debug('debug');
              return 1;
            };
            """,
        )
        self.start("app.handler")
        self.invoke("req-7", {})
        out, _ = self.output()
        lines = [LINE.match(line) for line in out.splitlines()]
        self.assertTrue(all(lines), out)
        self.assertEqual(
            [m.group(1, 2, 3) for m in lines],
            [
                ("undefined", "INFO", "loading"),
                ("req-7", "INFO", "hello 42"),
                ("req-7", "INFO", "info"),
                ("req-7", "WARN", "warn"),
                ("req-7", "ERROR", "error { a: 1 }"),
                ("req-7", "DEBUG", "debug"),
            ],
        )

    def test_prestarted_runtime_takes_on_the_function_environment(self):
        self.write("app.js", "exports.handler = async (e, c) => [c.functionName, process.env.GREETING, process.env.FLINT_PRESTART];\n")
        self.start(None, prestart=True)
        time.sleep(0.3)
        self.assertIsNone(self.proc.poll(), "a prestarted runtime waits for its function")
        env = self.function_env("app.handler")
        env["GREETING"] = "hi"
        self.api.function_env.put(env)
        self.assertEqual(self.invoke("r1", {}).json(), ["image-fn", "hi", None])

    def test_unparseable_event_and_unserialisable_result(self):
        self.write("app.js", "exports.handler = async (e) => ({ big: 1n });\n")
        self.start("app.handler")
        self.api.add_event("r1", None, raw_body=b"{not json")
        post = self.next_post()
        self.assertEqual((post.path, post.json()["errorType"]), ("/invocation/r1/error", "Runtime.UnmarshalError"))
        post = self.invoke("r2", {})
        self.assertEqual((post.path, post.json()["errorType"]), ("/invocation/r2/error", "Runtime.MarshalError"))


class ErrorTests(NodeCase):
    def test_thrown_error_is_lambdas_error_document_and_the_loop_continues(self):
        self.write(
            "app.js",
            """
            class ValidationError extends Error {
              constructor(m) { super(m); this.name = 'ValidationError'; }
            }
            exports.handler = async (event) => {
              if (event.kind === 'custom') throw new ValidationError('bad field');
              if (event.kind === 'string') throw 'just a string';
              if (event.kind === 'ok') return 'fine';
              throw new Error('boom');
            };
            """,
        )
        self.start("app.handler")
        post = self.invoke("r1", {})
        self.assertEqual(post.path, "/invocation/r1/error")
        self.assertEqual(post.headers.get("Lambda-Runtime-Function-Error-Type"), "Error")
        doc = post.json()
        self.assertEqual(set(doc), {"errorType", "errorMessage", "trace"})
        self.assertEqual((doc["errorType"], doc["errorMessage"]), ("Error", "boom"))
        self.assertEqual(doc["trace"][0], "Error: boom")
        self.assertIn("/var/task/app.js:", doc["trace"][1])
        self.assertFalse(any("/var/runtime/" in f for f in doc["trace"]), doc["trace"])
        doc = self.invoke("r2", {"kind": "custom"}).json()
        self.assertEqual((doc["errorType"], doc["errorMessage"]), ("ValidationError", "bad field"))
        doc = self.invoke("r3", {"kind": "string"}).json()
        self.assertEqual(doc, {"errorType": "string", "errorMessage": "just a string", "trace": []})
        self.assertEqual(self.invoke("r4", {"kind": "ok"}).json(), "fine")
        out, _ = self.output()
        logged = [LINE.match(line) for line in out.splitlines() if "Invoke Error" in line]
        self.assertEqual(logged[0].group(1, 2), ("r1", "ERROR"))
        self.assertEqual(json.loads(logged[0].group(3).split("\t", 1)[1])["stack"][0], "Error: boom")

    def test_uncaught_exception_during_an_invocation_fails_it_and_exits(self):
        self.write("app.js", "exports.handler = (e, c, cb) => { setTimeout(() => { throw new RangeError('late'); }, 10); };\n")
        self.start("app.handler")
        post = self.invoke("r1", {})
        self.assertEqual(post.path, "/invocation/r1/error")
        self.assertEqual(post.json()["errorType"], "RangeError")
        self.assertEqual(self.proc.wait(timeout=10), 129)

    def test_error_escaping_after_the_response_ends_the_process_without_a_report(self):
        self.write(
            "app.js",
            """
            exports.handler = (e, context, cb) => {
              context.callbackWaitsForEmptyEventLoop = false;
              setTimeout(() => { throw new Error('after the answer'); }, 200);
              cb(null, 'answered');
            };
            """,
        )
        self.start("app.handler")
        self.assertEqual(self.invoke("r1", {}).json(), "answered")
        self.assertEqual(self.proc.wait(timeout=10), 129)
        self.assertTrue(self.api.posts.empty(), "nothing may be reported for an invocation that was answered")
        out, _ = self.output()
        self.assertIn("\tERROR\tUncaught Exception \t", out)

    def test_unhandled_rejection_fails_the_invocation(self):
        self.write("app.js", "exports.handler = (e, c, cb) => { Promise.reject(new Error('nobody waits')); setTimeout(() => cb(null, 1), 500); };\n")
        self.start("app.handler")
        post = self.invoke("r1", {})
        self.assertEqual(post.path, "/invocation/r1/error")
        doc = post.json()
        self.assertEqual(doc["errorType"], "Runtime.UnhandledPromiseRejection")
        self.assertEqual(doc["errorMessage"], "Error: nobody waits")
        self.assertEqual(self.proc.wait(timeout=10), 128)


class InitErrorTests(NodeCase):
    def test_missing_module(self):
        self.start("missing.handler")
        doc = self.expect_init_error("Runtime.ImportModuleError", None)
        self.assertTrue(doc["errorMessage"].startswith("Error: Cannot find module 'missing'"), doc)

    def test_missing_package_inside_the_module(self):
        self.write("app.js", "require('no-such-package');\nexports.handler = async () => 1;\n")
        self.start("app.handler")
        doc = self.expect_init_error("Runtime.ImportModuleError", None)
        self.assertTrue(doc["errorMessage"].startswith("Error: Cannot find module 'no-such-package'"), doc)

    def test_missing_package_inside_an_es_module(self):
        self.write("app.mjs", "import x from 'no-such-package';\nexport const handler = async () => x;\n")
        self.start("app.handler")
        doc = self.expect_init_error("Runtime.ImportModuleError", None)
        self.assertIn("no-such-package", doc["errorMessage"])

    def test_syntax_error_commonjs(self):
        self.write("app.js", "exports.handler = async () => {\n  return 1;\n}}\n")
        self.start("app.handler")
        self.expect_init_error("Runtime.UserCodeSyntaxError", "SyntaxError: Unexpected token '}'")

    def test_syntax_error_es_module(self):
        self.write("app.mjs", "export const handler = async () => {;\n")
        self.start("app.handler")
        doc = self.expect_init_error("Runtime.UserCodeSyntaxError", None)
        self.assertTrue(doc["errorMessage"].startswith("SyntaxError: "), doc)

    def test_handler_not_exported(self):
        self.write("app.js", "exports.other = async () => 1;\nexports.value = 3;\n")
        self.start("app.handler")
        self.expect_init_error("Runtime.HandlerNotFound", "app.handler is undefined or not exported")

    def test_handler_not_a_function(self):
        self.write("app.js", "exports.value = 3;\n")
        self.start("app.value")
        self.expect_init_error("Runtime.HandlerNotFound", "app.value is not a function")

    def test_malformed_handler_name(self):
        self.start("nodot")
        self.expect_init_error("Runtime.MalformedHandlerName", None)

    def test_error_thrown_by_module_code_keeps_its_type(self):
        self.write("app.js", "throw new TypeError('bad config');\n")
        self.start("app.handler")
        doc = self.expect_init_error("TypeError", "bad config")
        self.assertEqual(doc["trace"][0], "TypeError: bad config")


if __name__ == "__main__":
    unittest.main()
