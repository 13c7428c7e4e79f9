# frozen_string_literal: true

# The Lambda Runtime API (2018-06-01) client of Flint's Ruby runtime: one keep-alive
# HTTP/1.1 connection on a plain socket (net/http would load far more at start).

require 'socket'

module FlintRuntime
  # The Runtime API connection failed or answered something that is not HTTP/1.1.
  class ApiError < StandardError; end

  # One keep-alive connection to flint-init's Runtime API.
  class RuntimeApi
    PREFIX = '/2018-06-01/runtime'
    ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type'
    # flint-init's warm-pool extension: a prestarted runtime waits here for its function.
    FUNCTION_PATH = '/flint/v1/function'

    Response = Struct.new(:status, :headers, :body)

    def initialize(address)
      host, _, port = address.rpartition(':')
      raise ApiError, "AWS_LAMBDA_RUNTIME_API must be host:port, got #{address.inspect}" unless port =~ /\A\d+\z/

      @address = address
      @host = host.empty? ? '127.0.0.1' : host
      @port = Integer(port)
      @sock = nil
    end

    # Warm pool: blocks until flint-init has the function; returns its environment (a Hash).
    def wait_for_function
      res = request('GET', FUNCTION_PATH)
      raise ApiError, "GET #{FUNCTION_PATH} returned HTTP #{res.status}: #{res.body[0, 200]}" unless res.status == 200

      JSON.parse(res.body).fetch('environment')
    end

    # The next invocation: [headers, body].
    def next_invocation
      res = request('GET', "#{PREFIX}/invocation/next")
      raise ApiError, "GET /invocation/next returned HTTP #{res.status}: #{res.body[0, 200]}" unless res.status == 200

      [res.headers, res.body]
    end

    def post_response(request_id, payload)
      post("/invocation/#{request_id}/response", payload)
    end

    def post_error(request_id, doc)
      post("/invocation/#{request_id}/error", JSON.generate(doc), doc[:errorType])
    end

    def post_init_error(doc)
      post('/init/error', JSON.generate(doc), doc[:errorType])
    end

    private

    def post(path, payload, error_type = nil)
      headers = { 'Content-Type' => 'application/json' }
      headers[ERROR_TYPE_HEADER] = error_type.to_s.gsub(/[^\x20-\x7e]/, '?')[0, 256] if error_type
      res = request('POST', PREFIX + path, payload, headers)
      warn "[WARN] POST #{path} returned HTTP #{res.status}: #{res.body[0, 200]}" if res.status >= 300
    end

    # Reconnects once if the server closed our idle keep-alive connection.
    def request(method, target, body = nil, headers = {})
      attempts = 0
      begin
        exchange(method, target, body, headers)
      rescue SystemCallError, IOError, ApiError
        close
        attempts += 1
        retry if attempts < 2
        raise
      end
    end

    def close
      @sock&.close
    rescue IOError
      nil
    ensure
      @sock = nil
    end

    def exchange(method, target, body, headers)
      unless @sock
        @sock = TCPSocket.new(@host, @port)
        @sock.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
      end
      head = +"#{method} #{target} HTTP/1.1\r\nHost: #{@address}\r\n"
      headers.each { |k, v| head << "#{k}: #{v}\r\n" }
      head << "Content-Length: #{body.bytesize}\r\n" if body
      head << "\r\n"
      @sock.write(body ? head.b + body.b : head)
      read_response
    end

    def read_response
      status_line = @sock.gets("\r\n", 65_537)
      raise ApiError, 'the Runtime API closed the connection' if status_line.nil?

      version, status = status_line.split(' ', 3)
      raise ApiError, "bad status line #{status_line[0, 100].inspect}" unless version&.start_with?('HTTP/1.')

      headers = {}
      while (line = @sock.gets("\r\n", 65_537)) && line != "\r\n"
        name, value = line.split(':', 2)
        headers[name.strip.downcase] = value.to_s.strip
      end
      length = headers['content-length']
      raise ApiError, 'response without Content-Length' unless length

      body = length.to_i.zero? ? +'' : @sock.read(length.to_i)
      raise ApiError, 'the Runtime API closed the connection mid-body' if body.nil? || body.bytesize != length.to_i

      close if headers['connection']&.casecmp?('close')
      Response.new(status.to_i, headers, body.force_encoding(Encoding::UTF_8))
    end
  end
end
