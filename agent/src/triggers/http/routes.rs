//! Which HTTP trigger a request is for: the Host `NAME.anything` (a DNS name, not an
//! IP address) when NAME is an HTTP trigger, else the first path segment
//! (`/NAME/rest`, the path the function sees being `/rest`).

use std::collections::BTreeMap;

/// An HTTP trigger as the listener needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub trigger: String,
    pub function: String,
    pub enabled: bool,
}

/// The HTTP triggers by name.
pub type Table = BTreeMap<String, Route>;

/// A routed request: the trigger, and the path the function sees (at least "/").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed<'a> {
    pub route: &'a Route,
    pub path: String,
}

/// Routes a request for `path` with the Host header `host` (may be empty).
pub fn route<'a>(table: &'a Table, host: &str, path: &str) -> Option<Routed<'a>> {
    if let Some(r) = host_label(host).and_then(|n| table.get(n)) {
        return Some(Routed {
            route: r,
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
        });
    }
    let rest = path.strip_prefix('/')?;
    let (name, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    table.get(name).map(|r| Routed {
        route: r,
        path: tail.to_string(),
    })
}

/// The first label of a Host that is a DNS name with at least two labels.
fn host_label(host: &str) -> Option<&str> {
    if host.starts_with('[') {
        return None; // an IPv6 literal
    }
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return None;
    }
    let (first, rest) = name.split_once('.')?;
    (!first.is_empty() && !rest.is_empty()).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        ["site", "api"]
            .into_iter()
            .map(|n| {
                (
                    n.to_string(),
                    Route {
                        trigger: n.into(),
                        function: format!("{n}-fn"),
                        enabled: true,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn path_prefix_routes_and_strips() {
        let t = table();
        let r = route(&t, "127.0.0.1:8080", "/site/a/b").unwrap();
        assert_eq!(
            (r.route.trigger.as_str(), r.path.as_str()),
            ("site", "/a/b")
        );
        assert_eq!(route(&t, "127.0.0.1:8080", "/site").unwrap().path, "/");
        assert_eq!(route(&t, "", "/site/").unwrap().path, "/");
        assert!(route(&t, "127.0.0.1", "/nope/x").is_none());
        assert!(route(&t, "127.0.0.1", "/").is_none());
    }

    #[test]
    fn host_routes_keep_the_whole_path() {
        let t = table();
        let r = route(&t, "api.localhost:8080", "/site/x").unwrap();
        assert_eq!(
            (r.route.trigger.as_str(), r.path.as_str()),
            ("api", "/site/x")
        );
        // Not a name with a dot, or an address: the path decides.
        assert_eq!(
            route(&t, "api:8080", "/site/x").unwrap().route.trigger,
            "site"
        );
        assert_eq!(
            route(&t, "[::1]:80", "/site/x").unwrap().route.trigger,
            "site"
        );
        assert!(route(&t, "other.example.com", "/x").is_none());
    }
}
