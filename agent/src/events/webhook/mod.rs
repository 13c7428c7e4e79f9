//! HTTP(S) webhook destinations. A destination (on-success, on-failure or the
//! dead-letter target) may be an `http://` or `https://` URL instead of a function:
//! flintd POSTs Lambda's destination record (the JSON a function destination gets) to
//! it. Each pending delivery is a row of `deliveries` in events.db ([`store`]), so it
//! survives kill -9; the [`sender`] retries a failing URL (connection error, timeout,
//! non-2xx) with backoff, and after [`ATTEMPTS`] attempts the event goes to the
//! function's dead-letter queue (state `dead`), never lost. [`http`] is the client.

pub mod http;
pub mod sender;
pub mod store;

use std::future::Future;
use std::pin::Pin;

/// POSTs of one record before it is dead-lettered (the first and three retries).
pub const ATTEMPTS: u32 = 4;

/// Where a destination record goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// Another Flint function (by name).
    Function(&'a str),
    /// A webhook URL.
    Webhook(&'a str),
}

/// `s` as a target: a URL when it has a scheme, else a function.
pub fn target(s: &str) -> Target<'_> {
    if is_url(s) {
        Target::Webhook(s)
    } else {
        Target::Function(s)
    }
}

/// Whether `s` is meant as a URL (it has a `scheme://`).
pub fn is_url(s: &str) -> bool {
    s.contains("://")
}

/// Checks a webhook URL: http or https, a host, no user info or fragment; returns
/// why not, in words that say what to fix.
pub fn check_url(s: &str) -> Result<(), String> {
    let uri: hyper::Uri = s
        .parse()
        .map_err(|e| format!("{e}: give a URL such as https://hooks.example.com/flint"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        other => {
            return Err(format!(
                "scheme {:?} is not supported: use http:// or https://",
                other.unwrap_or("")
            ))
        }
    }
    let Some(auth) = uri.authority() else {
        return Err("no host: give http(s)://HOST[:PORT]/PATH".into());
    };
    if auth.host().is_empty() {
        return Err("no host: give http(s)://HOST[:PORT]/PATH".into());
    }
    if auth.as_str().contains('@') {
        return Err(
            "user info (user:password@) is not supported: put credentials in the path or query"
                .into(),
        );
    }
    if s.contains('#') {
        return Err("a fragment (#...) is never sent: remove it".into());
    }
    Ok(())
}

/// What a POST of a record gave: the HTTP status, or why there was none.
pub type PostResult = Result<u16, String>;

/// A boxed POST.
pub type Posting<'a> = Pin<Box<dyn Future<Output = PostResult> + Send + 'a>>;

/// POSTs records; [`http::HttpPoster`] is the real one, tests script their own.
pub trait Poster: Send + Sync + 'static {
    /// POSTs `body` (JSON) to `url`.
    fn post<'a>(&'a self, url: &'a str, body: &'a [u8]) -> Posting<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_names_are_functions() {
        assert_eq!(target("sink"), Target::Function("sink"));
        assert_eq!(
            target("arn:aws:lambda:us-east-1:000000000000:function:sink"),
            Target::Function("arn:aws:lambda:us-east-1:000000000000:function:sink")
        );
        assert_eq!(
            target("https://h.example/x"),
            Target::Webhook("https://h.example/x")
        );
        check_url("http://127.0.0.1:8080/hook?x=1").unwrap();
        check_url("https://hooks.example.com/a/b").unwrap();
        for (bad, says) in [
            ("ftp://h/x", "use http:// or https://"),
            ("http://", "give"),
            ("http://u:p@h/x", "user info"),
            ("http://h/x#frag", "fragment"),
            ("http://h x/", "give a URL"),
        ] {
            let e = check_url(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
