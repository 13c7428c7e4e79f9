//! A function's network setting: `none` (loopback only, Flint's behaviour before
//! networking) or `outbound` (an interface with outbound access through the host's NAT,
//! under the operator's egress policy; docs/NETWORK.md).

use std::fmt;
use std::str::FromStr;

/// What network a function's sandboxes get.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Loopback only.
    #[default]
    None,
    /// Outbound access under the egress policy; nothing can connect in.
    Outbound,
}

/// A network setting that is neither `none` nor `outbound`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("network must be \"none\" or \"outbound\", got {0:?}")]
pub struct BadNetworkMode(pub String);

impl NetworkMode {
    /// The setting's name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Outbound => "outbound",
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NetworkMode {
    type Err = BadNetworkMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(NetworkMode::None),
            "outbound" => Ok(NetworkMode::Outbound),
            other => Err(BadNetworkMode(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_both_modes() {
        for m in [NetworkMode::None, NetworkMode::Outbound] {
            assert_eq!(m.as_str().parse::<NetworkMode>(), Ok(m));
        }
        assert_eq!(NetworkMode::default(), NetworkMode::None);
        let e = "vpc".parse::<NetworkMode>().unwrap_err();
        assert!(e.to_string().contains("\"none\" or \"outbound\""), "{e}");
    }
}
