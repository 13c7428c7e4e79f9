//! The guest's MAC address: parsed from `aa:bb:cc:dd:ee:ff` or derived from the TAP name.

use std::fmt;
use std::str::FromStr;

/// A MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MacAddr(pub [u8; 6]);

/// Errors parsing a MAC address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MacError {
    /// {0:?} is not a MAC address: write six hex bytes separated by ':' (02:00:00:00:00:01)
    #[error(
        "{0:?} is not a MAC address: write six hex bytes separated by ':' (02:00:00:00:00:01)"
    )]
    Syntax(String),
    /// {0} is a multicast address; a guest's own address must have bit 0 of its first byte clear
    #[error(
        "{0} is a multicast address; a guest's own address must have bit 0 of its first byte clear"
    )]
    Multicast(MacAddr),
}

impl MacAddr {
    /// A locally administered unicast address (first byte 0x02) derived from `seed`
    /// (FNV-1a), so one TAP name always gives the guest the same address.
    pub fn derived(seed: &str) -> MacAddr {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let b = h.to_le_bytes();
        MacAddr([0x02, b[0], b[1], b[2], b[3], b[4]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = MacError;

    fn from_str(s: &str) -> Result<Self, MacError> {
        let bad = || MacError::Syntax(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        let mac = MacAddr(out);
        if out[0] & 1 != 0 {
            return Err(MacError::Multicast(mac));
        }
        Ok(mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let m: MacAddr = "02:aB:00:10:ff:7e".parse().expect("valid");
        assert_eq!(m.0, [0x02, 0xab, 0x00, 0x10, 0xff, 0x7e]);
        assert_eq!(m.to_string(), "02:ab:00:10:ff:7e");
    }

    #[test]
    fn refuses_bad_syntax_and_multicast() {
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "2:00:00:00:00:00",
            "zz:00:00:00:00:00",
        ] {
            assert_eq!(
                bad.parse::<MacAddr>(),
                Err(MacError::Syntax(bad.into())),
                "{bad}"
            );
        }
        assert!(matches!(
            "01:00:5e:00:00:01".parse::<MacAddr>(),
            Err(MacError::Multicast(_))
        ));
    }

    #[test]
    fn derived_addresses_are_local_unicast_and_stable() {
        let a = MacAddr::derived("flint-tap0");
        assert_eq!(a.0[0], 0x02);
        assert_eq!(a, MacAddr::derived("flint-tap0"));
        assert_ne!(a, MacAddr::derived("flint-tap1"));
    }
}
