//! A minimal HTTP/1.1 server for flint-init's local APIs (the Runtime API, the AWS endpoint):
//! one connection loop (`serve_connection`) around a codec that reads request heads and
//! bodies (Content-Length or chunked) from a buffered stream with hard limits, and writes
//! JSON responses. It never panics on bad input: everything malformed is an `HttpError`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

/// Longest request line or header line accepted.
const MAX_LINE: usize = 16 * 1024;
/// Most header lines accepted in one request.
const MAX_HEADERS: usize = 100;
/// Bytes of an oversized body that are still read (and thrown away) to keep the
/// connection usable; beyond this the connection is closed instead.
const MAX_DISCARD: u64 = 128 * 1024 * 1024;

/// Errors reading a request.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The peer closed the connection between requests
    #[error("connection closed")]
    Closed,
    /// I/O error on the connection
    #[error("connection I/O: {0}")]
    Io(#[from] io::Error),
    /// The request is not valid HTTP/1.x
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The body is larger than the limit for this endpoint (and was discarded)
    #[error("request body exceeds {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
        /// Whether the rest of the body was consumed so the connection can be reused.
        drained: bool,
    },
}

/// The head of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Method, as sent (case-sensitive per RFC 9110).
    pub method: String,
    /// Request target (path and query).
    pub target: String,
    /// Header fields in order; names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Whether the connection stays open after this request.
    pub keep_alive: bool,
    body: BodyKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Empty,
    Length(u64),
    Chunked,
}

impl RequestHead {
    /// First value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client waits for `100 Continue` before sending the body.
    pub fn expects_continue(&self) -> bool {
        self.header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
            && self.body != BodyKind::Empty
    }
}

/// Reads one line ending in CRLF (or bare LF), without the terminator.
fn read_line<R: BufRead>(r: &mut R, at_start: bool) -> Result<String, HttpError> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64 + 2)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(if at_start {
            HttpError::Closed
        } else {
            HttpError::Malformed("unexpected end of stream")
        });
    }
    if line.last() != Some(&b'\n') {
        return Err(if n > MAX_LINE {
            HttpError::Malformed("line too long")
        } else {
            HttpError::Malformed("unexpected end of stream")
        });
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| HttpError::Malformed("line is not UTF-8"))
}

/// Reads one request head. `Err(Closed)` when the peer closed cleanly before it.
pub fn read_head<R: BufRead>(r: &mut R) -> Result<RequestHead, HttpError> {
    // RFC 9112 2.2: ignore at least one empty line before a request line.
    let mut line = read_line(r, true)?;
    if line.is_empty() {
        line = read_line(r, true)?;
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed("bad request line"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HttpError::Malformed("bad method"));
    }
    if !target.starts_with('/') {
        return Err(HttpError::Malformed("bad request target"));
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(HttpError::Malformed("unsupported HTTP version")),
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, false)?;
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(HttpError::Malformed("too many headers"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(HttpError::Malformed("header without colon"));
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(HttpError::Malformed("bad header name"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut head = RequestHead {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        keep_alive: http11,
        body: BodyKind::Empty,
    };
    if let Some(conn) = head.header("connection").map(str::to_string) {
        for token in conn.split(',').map(str::trim) {
            if token.eq_ignore_ascii_case("close") {
                head.keep_alive = false;
            } else if token.eq_ignore_ascii_case("keep-alive") {
                head.keep_alive = true;
            }
        }
    }
    head.body = body_kind(&head)?;
    Ok(head)
}

fn body_kind(head: &RequestHead) -> Result<BodyKind, HttpError> {
    if let Some(te) = head.header("transfer-encoding") {
        if te.eq_ignore_ascii_case("chunked") {
            if head.header("content-length").is_some() {
                return Err(HttpError::Malformed("both Content-Length and chunked"));
            }
            return Ok(BodyKind::Chunked);
        }
        return Err(HttpError::Malformed("unsupported Transfer-Encoding"));
    }
    let mut lengths = head.headers.iter().filter(|(n, _)| n == "content-length");
    match (lengths.next(), lengths.next()) {
        (None, _) => Ok(BodyKind::Empty),
        (Some(_), Some(_)) => Err(HttpError::Malformed("repeated Content-Length")),
        (Some((_, v)), None) => {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::Malformed("bad Content-Length"));
            }
            let n: u64 = v
                .parse()
                .map_err(|_| HttpError::Malformed("bad Content-Length"))?;
            Ok(if n == 0 {
                BodyKind::Empty
            } else {
                BodyKind::Length(n)
            })
        }
    }
}

/// Reads the body announced by `head`, at most `limit` bytes. A larger body is read
/// and discarded (up to an internal cap) and reported as `TooLarge`.
pub fn read_body<R: BufRead>(
    r: &mut R,
    head: &RequestHead,
    limit: usize,
) -> Result<Vec<u8>, HttpError> {
    match head.body {
        BodyKind::Empty => Ok(Vec::new()),
        BodyKind::Length(n) => {
            if n > limit as u64 {
                if n > MAX_DISCARD {
                    return Err(HttpError::TooLarge {
                        limit,
                        drained: false,
                    });
                }
                discard(r, n)?;
                return Err(HttpError::TooLarge {
                    limit,
                    drained: true,
                });
            }
            let mut body = Vec::with_capacity(n as usize);
            r.by_ref().take(n).read_to_end(&mut body)?;
            if body.len() as u64 != n {
                return Err(HttpError::Malformed("body shorter than Content-Length"));
            }
            Ok(body)
        }
        BodyKind::Chunked => read_chunked(r, limit),
    }
}

fn discard<R: Read>(r: &mut R, n: u64) -> Result<(), HttpError> {
    let copied = io::copy(&mut r.by_ref().take(n), &mut io::sink())?;
    if copied != n {
        return Err(HttpError::Malformed("body shorter than Content-Length"));
    }
    Ok(())
}

fn read_chunked<R: BufRead>(r: &mut R, limit: usize) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    let mut total: u64 = 0;
    loop {
        let line = read_line(r, false)?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        if size_hex.is_empty() || size_hex.len() > 15 {
            return Err(HttpError::Malformed("bad chunk size"));
        }
        let size = u64::from_str_radix(size_hex, 16)
            .map_err(|_| HttpError::Malformed("bad chunk size"))?;
        if size == 0 {
            // Trailer fields, then the empty line.
            loop {
                if read_line(r, false)?.is_empty() {
                    break;
                }
            }
            break;
        }
        total = total.saturating_add(size);
        if total > MAX_DISCARD {
            return Err(HttpError::TooLarge {
                limit,
                drained: false,
            });
        }
        if total > limit as u64 {
            discard(r, size)?;
        } else {
            let start = body.len();
            r.by_ref().take(size).read_to_end(&mut body)?;
            if (body.len() - start) as u64 != size {
                return Err(HttpError::Malformed("chunk shorter than its size"));
            }
        }
        if !read_line(r, false)?.is_empty() {
            return Err(HttpError::Malformed("missing CRLF after chunk"));
        }
    }
    if total > limit as u64 {
        return Err(HttpError::TooLarge {
            limit,
            drained: true,
        });
    }
    Ok(body)
}

/// A response to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra header fields (Content-Length and Connection are added).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response with `body`.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    /// A Lambda-style error document `{"errorMessage":..,"errorType":..}`.
    pub fn error(status: u16, error_type: &str, message: &str) -> Self {
        Self::json(status, flint_proto::lambda::error_doc(error_type, message))
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

/// Writes `100 Continue`.
pub fn write_continue<W: Write>(w: &mut W) -> io::Result<()> {
    w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    w.flush()
}

/// Writes `resp`; `keep_alive` chooses the Connection header.
pub fn write_response<W: Write>(w: &mut W, resp: &Response, keep_alive: bool) -> io::Result<()> {
    w.write_all(&response_bytes(resp, keep_alive))?;
    w.flush()
}

/// `resp` as it goes on the wire: status line, headers, body.
pub fn response_bytes(resp: &Response, keep_alive: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + resp.body.len());
    out.extend_from_slice(
        format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status)).as_bytes(),
    );
    for (n, v) in &resp.headers {
        // Values come from the host (request ids, ARNs): never let them split the head.
        let v: String = v.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n", resp.body.len()).as_bytes());
    let conn = if keep_alive { "keep-alive" } else { "close" };
    out.extend_from_slice(format!("Connection: {conn}\r\n\r\n").as_bytes());
    out.extend_from_slice(&resp.body);
    out
}

/// Serves requests on one connection until it closes, a request is malformed (answered
/// 400) or `handle` says the connection may not be kept. `handle` reads the body itself
/// (it knows the body limit) and returns the response and whether the connection may
/// stay open; the request's own `Connection` header is honoured on top of that.
pub fn serve_connection<H>(stream: TcpStream, mut handle: H)
where
    H: FnMut(&RequestHead, &mut BufReader<TcpStream>) -> (Response, bool),
{
    serve_connection_answered_elsewhere(stream, |head, reader, _| {
        let (resp, keep) = handle(head, reader);
        (Some(resp), keep)
    })
}

/// As [`serve_connection`], for a `handle` that may have had its request answered by
/// another thread on the connection it is given (`None`: nothing left to write).
pub fn serve_connection_answered_elsewhere<H>(stream: TcpStream, mut handle: H)
where
    H: FnMut(&RequestHead, &mut BufReader<TcpStream>, &Arc<TcpStream>) -> (Option<Response>, bool),
{
    let _ = stream.set_nodelay(true);
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let writer = Arc::new(writer);
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    loop {
        let head = match read_head(&mut reader) {
            Ok(h) => h,
            Err(HttpError::Malformed(why)) => {
                let resp = Response::error(400, "InvalidRequest", why);
                let _ = write_response(&mut &*writer, &resp, false);
                return;
            }
            Err(_) => return,
        };
        if head.expects_continue() && write_continue(&mut &*writer).is_err() {
            return;
        }
        let (resp, keep) = handle(&head, &mut reader, &writer);
        let keep = keep && head.keep_alive;
        let written = match resp {
            Some(resp) => write_response(&mut &*writer, &resp, keep).is_ok(),
            None => true,
        };
        if !written || !keep {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn reader(s: &[u8]) -> BufReader<&[u8]> {
        BufReader::new(s)
    }

    #[test]
    fn pipelined_requests_are_read_in_order() {
        let raw = b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: x\r\n\r\nPOST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: t\r\n\r\n";
        let mut r = reader(raw);
        let h = read_head(&mut r).unwrap();
        assert_eq!((h.method.as_str(), h.target.as_str()), ("POST", "/a"));
        assert_eq!(read_body(&mut r, &h, 100).unwrap(), b"hello");
        let h = read_head(&mut r).unwrap();
        assert_eq!(h.target, "/b");
        assert_eq!(h.header("host"), Some("x"));
        assert!(read_body(&mut r, &h, 100).unwrap().is_empty());
        let h = read_head(&mut r).unwrap();
        assert_eq!(h.target, "/c");
        assert_eq!(read_body(&mut r, &h, 100).unwrap(), b"abcde");
        assert!(matches!(read_head(&mut r), Err(HttpError::Closed)));
    }

    #[test]
    fn keep_alive_follows_version_and_connection_header() {
        let h = read_head(&mut reader(b"GET / HTTP/1.1\r\n\r\n")).unwrap();
        assert!(h.keep_alive);
        let h = read_head(&mut reader(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")).unwrap();
        assert!(!h.keep_alive);
        let h = read_head(&mut reader(b"GET / HTTP/1.0\r\n\r\n")).unwrap();
        assert!(!h.keep_alive);
        let h = read_head(&mut reader(
            b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
        ))
        .unwrap();
        assert!(h.keep_alive);
    }

    #[test]
    fn bad_input_is_malformed_not_a_panic() {
        let cases: &[&[u8]] = &[
            b"GARBAGE\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET noslash HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x",
            b"\xff\xfe / HTTP/1.1\r\n\r\n",
        ];
        for c in cases {
            let r = read_head(&mut reader(c));
            assert!(
                matches!(r, Err(HttpError::Malformed(_))),
                "{:?} gave {r:?}",
                String::from_utf8_lossy(c)
            );
        }
    }

    #[test]
    fn bad_bodies_are_malformed() {
        let cases: &[&[u8]] = &[
            b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        ];
        for c in cases {
            let mut r = reader(c);
            let h = read_head(&mut r).unwrap();
            let b = read_body(&mut r, &h, 100);
            assert!(
                matches!(b, Err(HttpError::Malformed(_))),
                "{:?} gave {b:?}",
                String::from_utf8_lossy(c)
            );
        }
    }

    #[test]
    fn overlong_header_line_is_rejected() {
        let mut raw = b"GET / HTTP/1.1\r\nX: ".to_vec();
        raw.extend(std::iter::repeat_n(b'a', MAX_LINE + 10));
        raw.extend_from_slice(b"\r\n\r\n");
        assert!(matches!(
            read_head(&mut reader(&raw)),
            Err(HttpError::Malformed("line too long"))
        ));
    }

    #[test]
    fn oversized_bodies_are_drained_so_the_next_request_parses() {
        let raw = b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n678901\r\n0\r\n\r\nGET /c HTTP/1.1\r\n\r\n";
        let mut r = reader(raw);
        let h = read_head(&mut r).unwrap();
        assert!(matches!(
            read_body(&mut r, &h, 4),
            Err(HttpError::TooLarge {
                limit: 4,
                drained: true
            })
        ));
        let h = read_head(&mut r).unwrap();
        assert_eq!(h.target, "/b");
        assert!(matches!(
            read_body(&mut r, &h, 8),
            Err(HttpError::TooLarge {
                limit: 8,
                drained: true
            })
        ));
        assert_eq!(read_head(&mut r).unwrap().target, "/c");
    }

    #[test]
    fn response_is_well_formed_and_header_injection_is_stripped() {
        let mut out = Vec::new();
        let mut resp = Response::json(202, "{}");
        resp.headers
            .push(("X-Id".into(), "a\r\nInjected: 1".into()));
        write_response(&mut out, &resp, true).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 202 Accepted\r\n"));
        assert!(s.contains("X-Id: aInjected: 1\r\n"));
        assert!(s.contains("Content-Length: 2\r\nConnection: keep-alive\r\n\r\n{}"));
    }
}
