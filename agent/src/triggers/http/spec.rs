//! An HTTP trigger's settings (stored as JSON in the trigger's `spec` column) and
//! the URL it is served at.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Who may call the URL. Lambda's AuthType NONE; AWS_IAM is not offered (flintd has
/// no IAM): a request for it is refused at creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpAuth {
    /// Anyone who can reach the listener.
    #[default]
    None,
}

impl HttpAuth {
    /// Parses `--auth` (`none`, case-insensitive; empty = none).
    pub fn parse(s: &str) -> Result<HttpAuth, String> {
        match s.to_ascii_lowercase().as_str() {
            "" | "none" => Ok(HttpAuth::None),
            other => Err(format!(
                "HTTP auth {other:?}: only \"none\" is supported (anyone who can reach --http-listen may call the URL)"
            )),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            HttpAuth::None => "none",
        }
    }
}

/// An HTTP trigger's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpSpec {
    #[serde(default)]
    pub auth: HttpAuth,
}

/// The URL of trigger `name` on a listener at `listen` (`https` when `tls`): the
/// path-prefix form, `http://HOST:PORT/NAME/`. An unspecified listen address
/// (0.0.0.0, ::) is written as the loopback address.
pub fn url(listen: SocketAddr, tls: bool, name: &str) -> String {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{addr}/{name}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_parses_none_only() {
        assert_eq!(HttpAuth::parse("NONE").unwrap(), HttpAuth::None);
        assert_eq!(HttpAuth::parse("").unwrap(), HttpAuth::None);
        let e = HttpAuth::parse("aws_iam").unwrap_err();
        assert!(e.contains("only \"none\""), "{e}");
    }

    #[test]
    fn spec_json_round_trips_with_defaults() {
        let s: HttpSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(s.auth, HttpAuth::None);
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"auth":"none"}"#);
    }

    #[test]
    fn urls_name_a_reachable_address() {
        assert_eq!(
            url("0.0.0.0:8080".parse().unwrap(), false, "site"),
            "http://127.0.0.1:8080/site/"
        );
        assert_eq!(
            url("[::]:443".parse().unwrap(), true, "a"),
            "https://[::1]:443/a/"
        );
        assert_eq!(
            url("10.0.0.5:80".parse().unwrap(), false, "b"),
            "http://10.0.0.5:80/b/"
        );
    }
}
