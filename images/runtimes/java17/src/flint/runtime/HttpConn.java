package flint.runtime;

import java.io.BufferedInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

/**
 * One keep-alive HTTP/1.1 connection to the Runtime API. java.net.http.HttpClient would do,
 * but building one loads several hundred classes and starts a selector thread, which every
 * empty-pool start of a Java function paid for; the Runtime API needs one socket, requests
 * one at a time, and bodies framed by Content-Length (flint-init's server frames every
 * response so; anything else is refused as an error).
 */
final class HttpConn {
    /** A response: status, header fields (names in lower case) and body. */
    record Response(int status, Map<String, String> headers, byte[] body) {
        String header(String name) {
            return headers.get(name.toLowerCase(Locale.ROOT));
        }
    }

    /** Largest status line or header field accepted. */
    private static final int MAX_LINE = 64 * 1024;

    private final String host;
    private final int port;
    private Socket socket;
    private InputStream in;
    private OutputStream out;

    /** A connection to {@code hostPort} ("127.0.0.1:9001"), opened on first use. */
    HttpConn(String hostPort) {
        int colon = hostPort.lastIndexOf(':');
        int p = -1;
        if (colon > 0) {
            try {
                p = Integer.parseInt(hostPort.substring(colon + 1));
            } catch (NumberFormatException e) {
                p = -1;
            }
        }
        if (p < 1 || p > 65535) {
            throw new IllegalArgumentException("AWS_LAMBDA_RUNTIME_API must be host:port, not \"" + hostPort + "\"");
        }
        this.host = hostPort.substring(0, colon);
        this.port = p;
    }

    /**
     * Sends one request and reads its response. A kept-alive connection the server has
     * closed meanwhile is reopened and the request sent again, but only when no byte of a
     * response came back (the server never saw the request).
     */
    synchronized Response send(String method, String path, byte[] body, String errorType) throws IOException {
        byte[] request = encode(method, path, body, errorType);
        boolean reused = socket != null;
        try {
            return exchange(request);
        } catch (NoResponse e) {
            close();
            if (!reused) throw e;
            return exchange(request);
        } catch (IOException e) {
            close();
            throw e;
        }
    }

    private byte[] encode(String method, String path, byte[] body, String errorType) {
        StringBuilder head = new StringBuilder(160);
        head.append(method).append(' ').append(path).append(" HTTP/1.1\r\nHost: ")
                .append(host).append(':').append(port).append("\r\n");
        if (errorType != null) head.append("Lambda-Runtime-Function-Error-Type: ").append(errorType).append("\r\n");
        if (body != null) head.append("Content-Type: application/json\r\nContent-Length: ").append(body.length).append("\r\n");
        head.append("\r\n");
        byte[] h = head.toString().getBytes(StandardCharsets.ISO_8859_1);
        if (body == null || body.length == 0) return h;
        byte[] all = new byte[h.length + body.length];
        System.arraycopy(h, 0, all, 0, h.length);
        System.arraycopy(body, 0, all, h.length, body.length);
        return all;
    }

    private Response exchange(byte[] request) throws IOException {
        if (socket == null) {
            Socket s = new Socket();
            s.setTcpNoDelay(true);
            s.connect(new InetSocketAddress(host, port));
            socket = s;
            in = new BufferedInputStream(s.getInputStream(), 16 * 1024);
            out = s.getOutputStream();
        }
        try {
            out.write(request);
            out.flush();
        } catch (IOException e) {
            throw new NoResponse(e);
        }
        int first = in.read();
        if (first < 0) throw new NoResponse(new EOFException("the Runtime API closed the connection"));
        String status = line(first);
        String[] parts = status.split(" ", 3);
        if (parts.length < 2 || !parts[0].startsWith("HTTP/1.")) throw new IOException("bad HTTP status line: " + status);
        int code;
        try {
            code = Integer.parseInt(parts[1]);
        } catch (NumberFormatException e) {
            throw new IOException("bad HTTP status line: " + status);
        }
        Map<String, String> headers = new HashMap<>();
        for (String l = line(in.read()); !l.isEmpty(); l = line(in.read())) {
            int c = l.indexOf(':');
            if (c <= 0) throw new IOException("bad HTTP header line: " + l);
            headers.put(l.substring(0, c).trim().toLowerCase(Locale.ROOT), l.substring(c + 1).trim());
        }
        String length = headers.get("content-length");
        if (length == null || headers.containsKey("transfer-encoding")) {
            throw new IOException("a Runtime API response without a Content-Length (flint-init always sends one)");
        }
        boolean keep = !"close".equalsIgnoreCase(headers.get("connection"));
        int n;
        try {
            n = Integer.parseInt(length);
        } catch (NumberFormatException e) {
            throw new IOException("bad Content-Length: " + length);
        }
        if (n < 0) throw new IOException("bad Content-Length: " + length);
        byte[] body = in.readNBytes(n);
        if (body.length != n) throw new EOFException("body shorter than its Content-Length");
        if (!keep) close();
        return new Response(code, headers, body);
    }

    /** One CRLF- (or LF-) terminated line, whose first byte {@code c} was already read. */
    private String line(int c) throws IOException {
        StringBuilder s = new StringBuilder();
        while (c != '\n') {
            if (c < 0) throw new EOFException("the Runtime API closed the connection mid-response");
            if (c != '\r') s.append((char) c);
            if (s.length() > MAX_LINE) throw new IOException("HTTP line longer than " + MAX_LINE + " bytes");
            c = in.read();
        }
        return s.toString();
    }

    private void close() {
        Socket s = socket;
        socket = null;
        in = null;
        out = null;
        if (s != null) {
            try {
                s.close();
            } catch (IOException e) {
                // nothing more to do with a socket that is going away
            }
        }
    }

    /** The request could not be sent, or its connection ended before any response byte. */
    private static final class NoResponse extends IOException {
        private static final long serialVersionUID = 1L;

        NoResponse(IOException cause) {
            super(cause.getMessage(), cause);
        }
    }
}
