//! IPv4 CIDR blocks and egress rules (`CIDR[:PORT[-PORT],...]`) from flintd's flags.

use std::fmt;
use std::net::Ipv4Addr;

/// An IPv4 block, `ADDR/PREFIX`, stored with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

/// A CIDR block or egress rule that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not ADDR/PREFIX
    #[error("{0:?} is not an IPv4 block: write ADDR/PREFIX, e.g. 10.0.0.0/8")]
    Block(String),
    /// Bad port list
    #[error("{0:?} is not a port list: write PORT or LOW-HIGH (1-65535), comma-separated, e.g. 443,8000-8080")]
    Ports(String),
}

impl Cidr {
    /// Parses `ADDR/PREFIX` (a bare address is a /32).
    pub fn parse(s: &str) -> Result<Self, CidrError> {
        let bad = || CidrError::Block(s.to_string());
        let (a, p) = s.split_once('/').unwrap_or((s, "32"));
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    /// How many addresses the block holds.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The block's `i`-th address (no bounds check beyond wrapping).
    pub fn nth(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr).wrapping_add(i))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One `--egress-allow`/`--egress-deny` entry: a block and, optionally, TCP/UDP ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRule {
    pub cidr: Cidr,
    /// Inclusive port ranges; empty: every port and protocol.
    pub ports: Vec<(u16, u16)>,
}

impl EgressRule {
    /// Parses `CIDR[:PORT[-PORT],...]`.
    pub fn parse(s: &str) -> Result<Self, CidrError> {
        let (block, ports) = match s.split_once(':') {
            Some((b, p)) => (b, Some(p)),
            None => (s, None),
        };
        let cidr = Cidr::parse(block)?;
        let mut out = Vec::new();
        if let Some(list) = ports {
            let bad = || CidrError::Ports(list.to_string());
            for item in list.split(',') {
                let (lo, hi) = item.split_once('-').unwrap_or((item, item));
                let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
                let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
                if lo == 0 || hi < lo {
                    return Err(bad());
                }
                out.push((lo, hi));
            }
        }
        Ok(Self { cidr, ports: out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_parse_and_clear_host_bits() {
        let c = Cidr::parse("100.96.3.7/16").unwrap();
        assert_eq!(c.to_string(), "100.96.0.0/16");
        assert_eq!(c.size(), 65536);
        assert_eq!(c.nth(3), Ipv4Addr::new(100, 96, 0, 3));
        assert_eq!(Cidr::parse("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().size(), 1 << 32);
        for bad in ["10.0.0.0/33", "10.0.0/8", "x/8", "10.0.0.0/"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rules_take_port_lists() {
        let r = EgressRule::parse("10.0.0.0/8:443,8000-8080").unwrap();
        assert_eq!(r.cidr.to_string(), "10.0.0.0/8");
        assert_eq!(r.ports, vec![(443, 443), (8000, 8080)]);
        assert!(EgressRule::parse("10.0.0.0/8").unwrap().ports.is_empty());
        for bad in [
            "10.0.0.0/8:",
            "10.0.0.0/8:0",
            "10.0.0.0/8:9-8",
            "10.0.0.0/8:http",
        ] {
            let e = EgressRule::parse(bad).unwrap_err();
            assert!(e.to_string().contains("port list"), "{bad}: {e}");
        }
    }
}
