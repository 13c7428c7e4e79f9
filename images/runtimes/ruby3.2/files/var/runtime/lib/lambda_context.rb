# frozen_string_literal: true

# The context object handed to handler(event:, context:), as on Lambda's Ruby runtimes.

module FlintRuntime
  # One invocation's context (the attribute names are Lambda's).
  class LambdaContext
    attr_reader :aws_request_id, :invoked_function_arn, :log_group_name, :log_stream_name,
                :function_name, :memory_limit_in_mb, :function_version, :identity,
                :client_context, :deadline_ms

    def initialize(headers, env = ENV)
      @aws_request_id = headers['lambda-runtime-aws-request-id'].to_s
      @invoked_function_arn = headers['lambda-runtime-invoked-function-arn'].to_s
      @deadline_ms = headers['lambda-runtime-deadline-ms'].to_i
      @identity = parse_json(headers['lambda-runtime-cognito-identity'])
      @client_context = parse_json(headers['lambda-runtime-client-context'])
      @function_name = env.fetch('AWS_LAMBDA_FUNCTION_NAME', '')
      @function_version = env.fetch('AWS_LAMBDA_FUNCTION_VERSION', '$LATEST')
      # A string, as on Lambda.
      @memory_limit_in_mb = env.fetch('AWS_LAMBDA_FUNCTION_MEMORY_SIZE', '128')
      @log_group_name = env.fetch('AWS_LAMBDA_LOG_GROUP_NAME', '')
      @log_stream_name = env.fetch('AWS_LAMBDA_LOG_STREAM_NAME', '')
    end

    def get_remaining_time_in_millis # rubocop:disable Naming/AccessorMethodName (Lambda's name)
      [@deadline_ms - (Time.now.to_f * 1000).to_i, 0].max
    end

    private

    def parse_json(raw)
      return nil if raw.nil? || raw.empty?

      doc = JSON.parse(raw)
      doc.is_a?(Hash) ? doc : nil
    rescue JSON::ParserError
      nil
    end
  end
end
