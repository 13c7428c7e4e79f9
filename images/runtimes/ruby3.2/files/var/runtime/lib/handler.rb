# frozen_string_literal: true

# Loads and calls the function's handler the way Lambda's Ruby runtimes do:
# _HANDLER "file.method" (a top-level method of file.rb) or "file.Module::Class.method"
# (a class-level method); the file may sit in a folder ("lib/app.handler").
# Called as handler(event:, context:).

module FlintRuntime
  # A failure with Lambda's error type ("Init<LoadError>", "Function<RuntimeError>", ...).
  class LambdaError < StandardError
    attr_reader :error_type, :trace

    def initialize(error_type, message, trace = [])
      super(message)
      @error_type = error_type
      @trace = trace
    end

    def self.wrap(phase, err)
      new("#{phase}<#{err.class}>", err.message, user_trace(err))
    end

    def to_doc
      { errorMessage: message, errorType: error_type, stackTrace: trace }
    end

    # Backtrace lines without this runtime's own frames.
    def self.user_trace(err)
      (err.backtrace || []).reject { |line| line.start_with?(RUNTIME_DIR) }
    end
  end

  RUNTIME_DIR = File.dirname(__dir__) + '/'

  # The handler named by _HANDLER, loaded once.
  class Handler
    def initialize(spec, task_root)
      parts = spec.split('.')
      unless [2, 3].include?(parts.size) && parts.none?(&:empty?)
        raise LambdaError.new('Init<ArgumentError>',
                              "Invalid handler #{spec.inspect}: use FILE.METHOD or FILE.CLASS.METHOD, where " \
                              'FILE.rb is a Ruby file in the task root, CLASS an optional module/class ' \
                              '(Module::Class) and METHOD a method (a class-level one with CLASS)')
      end
      @file, @class_name, @method = parts.size == 2 ? [parts[0], nil, parts[1]] : parts
      @path = File.expand_path(@file, task_root)
    end

    # Requires the handler's file; raises LambdaError "Init<...>" as Lambda does.
    def load!
      require @path
    rescue ScriptError, StandardError => e
      raise LambdaError.wrap('Init', e)
    end

    # Calls the handler; the method (and class) are looked up now, as on Lambda, so a
    # missing one is a "Function<NoMethodError>"/"Function<NameError>" of the invocation.
    def call(event, context)
      receiver = @class_name ? Object.const_get(@class_name) : TOPLEVEL_BINDING.receiver
      receiver.__send__(@method, event: event, context: context)
    rescue StandardError, ScriptError => e
      raise LambdaError.wrap('Function', e)
    end
  end
end
