//! Ethernet MAC addresses as the kernel prints them: `%pM` (`00:1b:21:aa:bb:cc`) or `%pm`
//! (`001b21aabbcc`, used by i40e's per-VF MDD line).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?} (expected aa:bb:cc:dd:ee:ff or aabbccddeeff)")]
pub struct MacParseError(String);

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<MacAddr, MacParseError> {
        let hex: String = match s.len() {
            17 if s.bytes().skip(2).step_by(3).all(|b| b == b':' || b == b'-') => {
                s.split([':', '-']).collect()
            }
            12 => s.to_owned(),
            _ => return Err(MacParseError(s.to_owned())),
        };
        let mut out = [0u8; 6];
        for (slot, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| MacParseError(s.to_owned()))?;
            if pair.len() != 2 || !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(MacParseError(s.to_owned()));
            }
            *slot = u8::from_str_radix(pair, 16).map_err(|_| MacParseError(s.to_owned()))?;
        }
        if hex.len() != 12 {
            return Err(MacParseError(s.to_owned()));
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kernel_forms_parse_to_the_same_address() {
        let a: MacAddr = "00:1b:21:aa:bb:cc".parse().unwrap();
        let b: MacAddr = "001b21aabbcc".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "00:1b:21:aa:bb:cc");
    }

    #[test]
    fn rejects_junk() {
        for bad in [
            "",
            "00:1b:21:aa:bb",
            "001b21aabbcz",
            "00:1b:21:aa:bb:cc:dd",
            "00;1b;21;aa;bb;cc",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?} accepted");
        }
    }
}
