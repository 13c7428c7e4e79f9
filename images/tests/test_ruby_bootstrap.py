"""Tests of the ruby3.2 runtime bootstrap (Lambda's Ruby conventions on Debian's Ruby 3.1)
against a fake Runtime API server.

The bootstrap runs for real with the image's Ruby, inside the built ruby3.2 rootfs under
bubblewrap (image_runtime.py), with this source tree's runtime folder mounted over
/var/runtime. The image must have been built (images/tests/run.sh builds it first); a
missing image or a missing bwrap is a test failure, not a skip.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from image_runtime import RuntimeInImageCase  # noqa: E402


class RubyCase(RuntimeInImageCase):
    RUNTIME = "ruby3.2"
    INTERPRETER = "usr/bin/ruby"

    def expect_init_error(self, error_type, message=None):
        post = self.next_post()
        self.assertEqual(post.path, "/init/error")
        self.assertEqual(post.headers.get("Lambda-Runtime-Function-Error-Type"), error_type)
        doc = post.json()
        self.assertEqual(doc["errorType"], error_type, doc)
        if message is not None:
            self.assertEqual(doc["errorMessage"], message, doc)
        self.assertIsInstance(doc["stackTrace"], list)
        self.assertEqual(self.proc.wait(timeout=10), 1, "the bootstrap exits 1 after an init error")
        out, _ = self.output()
        self.assertIn("Init error when loading handler", out)
        return doc


class InvocationTests(RubyCase):
    def test_handler_gets_lambdas_context(self):
        self.write(
            "function.rb",
            """
            require 'json'
            def handler(event:, context:)
              {
                event: event, uid: Process.uid, cwd: Dir.pwd, ruby: RUBY_VERSION,
                aws_request_id: context.aws_request_id, function_name: context.function_name,
                function_version: context.function_version,
                invoked_function_arn: context.invoked_function_arn,
                memory_limit_in_mb: context.memory_limit_in_mb,
                log_group_name: context.log_group_name, log_stream_name: context.log_stream_name,
                remaining: context.get_remaining_time_in_millis, deadline_ms: context.deadline_ms,
                identity: context.identity, client_context: context.client_context,
                trace: ENV['_X_AMZN_TRACE_ID']
              }
            end
            """,
        )
        self.start("function.handler")
        deadline = int(time.time() * 1000) + 3000
        post = self.invoke(
            "req-1",
            {"a": 1},
            {
                "deadline_ms": deadline,
                "Lambda-Runtime-Trace-Id": "Root=1-abc",
                "Lambda-Runtime-Cognito-Identity": '{"cognitoIdentityId":"id1"}',
                "Lambda-Runtime-Client-Context": '{"custom":{"k":"v"}}',
            },
        )
        self.assertEqual(post.path, "/invocation/req-1/response")
        doc = post.json()
        self.assertTrue(doc.pop("ruby").startswith("3.1."), "Debian's Ruby 3.1")
        remaining = doc.pop("remaining")
        self.assertTrue(0 < remaining <= 3000, remaining)
        self.assertEqual(
            doc,
            {
                "event": {"a": 1},
                "uid": 993,
                "cwd": "/var/task",
                "aws_request_id": "req-1",
                "function_name": "image-fn",
                "function_version": "$LATEST",
                "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:test",
                "memory_limit_in_mb": "256",
                "log_group_name": "/aws/lambda/image-fn",
                "log_stream_name": "2026/12/06/[$LATEST]abc",
                "deadline_ms": deadline,
                "identity": {"cognitoIdentityId": "id1"},
                "client_context": {"custom": {"k": "v"}},
                "trace": "Root=1-abc",
            },
        )

    def test_module_class_method_in_a_folder_and_state_across_invocations(self):
        self.write(
            "lib/app.rb",
            """
            module Shop
              class Orders
                @count = 0
                def self.process(event:, context:)
                  @count += 1
                  { count: @count, id: context.aws_request_id }
                end
              end
            end
            """,
        )
        self.start("lib/app.Shop::Orders.process")
        self.assertEqual([self.invoke(f"r{i}", {}).json()["count"] for i in range(3)], [1, 2, 3])
        self.assertEqual(self.api.connections, 1)

    def test_nil_and_plain_values_and_puts_output(self):
        self.write("f.rb", "def handler(event:, context:)\n  puts \"got #{event.inspect}\"\n  event['v']\nend\n")
        self.start("f.handler")
        post = self.invoke("r1", {"v": None})
        self.assertEqual((post.path, post.body), ("/invocation/r1/response", b"null"))
        self.assertEqual(self.invoke("r2", {"v": "text"}).json(), "text")
        out, _ = self.output()
        self.assertIn('got {"v"=>nil}', out)

    def test_require_relative_and_load_path(self):
        self.write("helper.rb", "module Helper\n  def self.greet(n) = \"hello #{n}\"\nend\n")
        self.write("f.rb", "require 'helper'\ndef handler(event:, context:)\n  Helper.greet(event['n'])\nend\n")
        self.start("f.handler")
        self.assertEqual(self.invoke("r1", {"n": "ruby"}).json(), "hello ruby")

    def test_libraries_under_opt_ruby_lib_are_found_like_layers(self):
        self.write("ruby/lib/shared_lib.rb", "module SharedLib\n  def self.where = 'from a layer'\nend\n", root=self.opt.name)
        self.write("f.rb", "require 'shared_lib'\ndef handler(event:, context:)\n  SharedLib.where\nend\n")
        self.start("f.handler")
        self.assertEqual(self.invoke("r1", {}).json(), "from a layer")

    def test_prestarted_runtime_takes_on_the_function_environment(self):
        self.write("f.rb", "def handler(event:, context:)\n  [context.function_name, ENV['GREETING'], ENV['FLINT_PRESTART']]\nend\n")
        self.start(None, prestart=True)
        time.sleep(0.3)
        self.assertIsNone(self.proc.poll(), "a prestarted runtime waits for its function")
        env = self.function_env("f.handler")
        env["GREETING"] = "hi"
        self.api.function_env.put(env)
        self.assertEqual(self.invoke("r1", {}).json(), ["image-fn", "hi", None])

    def test_prestarted_runtime_seeds_its_generator_again_with_its_function(self):
        # snapshot_runtime: instances restored from one snapshot of a waiting runtime
        # must not share the generator Ruby seeded at start. RUBYOPT loads a file before
        # the bootstrap that keeps the start's seed.
        self.write("seed_at_start.rb", "$seed_at_start = Random.seed\n")
        self.write("f.rb", "def handler(event:, context:)\n  [$seed_at_start.nil?, $seed_at_start == Random.seed]\nend\n")
        self.start(None, {"RUBYOPT": "-r/var/task/seed_at_start.rb"}, prestart=True)
        self.api.function_env.put(self.function_env("f.handler"))
        self.assertEqual(self.invoke("r-seed", {}).json(), [False, False])

    def test_unparseable_event(self):
        self.write("f.rb", "def handler(event:, context:)\n  1\nend\n")
        self.start("f.handler")
        self.api.add_event("r1", None, raw_body=b"{not json")
        post = self.next_post()
        self.assertEqual((post.path, post.json()["errorType"]), ("/invocation/r1/error", "Runtime.UnmarshalError"))


class ErrorTests(RubyCase):
    def test_raised_error_is_lambdas_error_document_and_the_loop_continues(self):
        self.write(
            "f.rb",
            """
            class PaymentError < StandardError; end
            def handler(event:, context:)
              raise PaymentError, 'card declined' if event['kind'] == 'custom'
              return 'fine' if event['kind'] == 'ok'
              raise 'boom'
            end
            """,
        )
        self.start("f.handler")
        post = self.invoke("r1", {})
        self.assertEqual(post.path, "/invocation/r1/error")
        self.assertEqual(post.headers.get("Lambda-Runtime-Function-Error-Type"), "Function<RuntimeError>")
        doc = post.json()
        self.assertEqual(set(doc), {"errorMessage", "errorType", "stackTrace"})
        self.assertEqual((doc["errorType"], doc["errorMessage"]), ("Function<RuntimeError>", "boom"))
        self.assertTrue(doc["stackTrace"][0].startswith("/var/task/f.rb:6:in"), doc)
        self.assertFalse(any(f.startswith("/var/runtime/") for f in doc["stackTrace"]), doc)
        doc = self.invoke("r2", {"kind": "custom"}).json()
        self.assertEqual((doc["errorType"], doc["errorMessage"]), ("Function<PaymentError>", "card declined"))
        self.assertEqual(self.invoke("r3", {"kind": "ok"}).json(), "fine")
        out, _ = self.output()
        self.assertIn("Error raised from handler method", out)

    def test_missing_method_is_an_invocation_error_as_on_lambda(self):
        self.write("f.rb", "def other(event:, context:)\n  1\nend\n")
        self.start("f.handler")
        doc = self.invoke("r1", {}).json()
        self.assertEqual(doc["errorType"], "Function<NoMethodError>", doc)
        self.assertIn("handler", doc["errorMessage"])

    def test_missing_class_is_an_invocation_error(self):
        self.write("f.rb", "x = 1\n")
        self.start("f.Nope::Missing.run")
        self.assertEqual(self.invoke("r1", {}).json()["errorType"], "Function<NameError>")

    def test_positional_handler_signature_is_an_argument_error(self):
        self.write("f.rb", "def handler(event, context)\n  1\nend\n")
        self.start("f.handler")
        self.assertEqual(self.invoke("r1", {}).json()["errorType"], "Function<ArgumentError>")


class InitErrorTests(RubyCase):
    def test_missing_file(self):
        doc = None
        self.start("missing.handler")
        doc = self.expect_init_error("Init<LoadError>")
        self.assertIn("cannot load such file -- /var/task/missing", doc["errorMessage"])

    def test_missing_gem_inside_the_file(self):
        self.write("f.rb", "require 'no_such_gem_anywhere'\ndef handler(event:, context:) = 1\n")
        self.start("f.handler")
        self.assertIn("no_such_gem_anywhere", self.expect_init_error("Init<LoadError>")["errorMessage"])

    def test_syntax_error(self):
        self.write("f.rb", "def handler(event:, context:)\n  1\nend\nend\n")
        self.start("f.handler")
        self.expect_init_error("Init<SyntaxError>")

    def test_error_raised_while_loading(self):
        self.write("f.rb", "raise ArgumentError, 'bad config'\n")
        self.start("f.handler")
        self.expect_init_error("Init<ArgumentError>", "bad config")

    def test_malformed_handler_name(self):
        self.start("nodot")
        self.expect_init_error("Init<ArgumentError>")


if __name__ == "__main__":
    unittest.main()
