//! PCI function addresses (`Bdf`) and PF-relative VF indices.
//!
//! The kernel prints a function as `dddd:bb:dd.f` (`pci_name()`); some messages (Intel DMAR,
//! old AMD-Vi) drop the segment, which is then taken as `0000`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A PCI function address: segment (domain), bus, device, function.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bdf {
    segment: u16,
    bus: u8,
    device: u8,
    function: u8,
}

/// Why a string is not a PCI address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid PCI address {input:?}: {reason} (expected dddd:bb:dd.f, e.g. 0000:3b:02.1)")]
pub struct BdfParseError {
    input: String,
    reason: &'static str,
}

impl Bdf {
    /// Builds an address, checking the device (0..=31) and function (0..=7) ranges.
    pub fn new(segment: u16, bus: u8, device: u8, function: u8) -> Option<Bdf> {
        (device < 32 && function < 8).then_some(Bdf {
            segment,
            bus,
            device,
            function,
        })
    }

    /// Decodes a 16-bit requester ID (`bus << 8 | devfn`), as printed by old AER and DPC lines.
    pub fn from_requester_id(segment: u16, rid: u16) -> Bdf {
        let [bus, devfn] = rid.to_be_bytes();
        Bdf {
            segment,
            bus,
            device: devfn >> 3,
            function: devfn & 7,
        }
    }

    /// The PCI segment (domain).
    pub fn segment(self) -> u16 {
        self.segment
    }
    /// The bus number.
    pub fn bus(self) -> u8 {
        self.bus
    }
    /// The device (slot) number, 0..=31.
    pub fn device(self) -> u8 {
        self.device
    }
    /// The function number, 0..=7.
    pub fn function(self) -> u8 {
        self.function
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.segment, self.bus, self.device, self.function
        )
    }
}

impl fmt::Debug for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn hex_field<T: TryFrom<u32>>(s: &str, max_len: usize) -> Option<T> {
    if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16)
        .ok()
        .and_then(|v| T::try_from(v).ok())
}

impl FromStr for Bdf {
    type Err = BdfParseError;

    /// Accepts `dddd:bb:dd.f` and the segment-less `bb:dd.f` (segment 0000).
    fn from_str(s: &str) -> Result<Bdf, BdfParseError> {
        let err = |reason| BdfParseError {
            input: s.to_owned(),
            reason,
        };
        let (rest, func) = s.rsplit_once('.').ok_or_else(|| err("missing '.'"))?;
        let mut parts = rest.rsplitn(3, ':');
        let dev = parts.next().ok_or_else(|| err("missing device"))?;
        let bus = parts.next().ok_or_else(|| err("missing bus"))?;
        let seg = parts.next();
        let segment = match seg {
            Some(seg) => hex_field::<u16>(seg, 4).ok_or_else(|| err("bad segment"))?,
            None => 0,
        };
        let bus = hex_field::<u8>(bus, 2).ok_or_else(|| err("bad bus"))?;
        let device = hex_field::<u8>(dev, 2).ok_or_else(|| err("bad device"))?;
        let function = if func.len() == 1 {
            hex_field::<u8>(func, 1).ok_or_else(|| err("bad function"))?
        } else {
            return Err(err("bad function"));
        };
        Bdf::new(segment, bus, device, function)
            .ok_or_else(|| err("device or function out of range"))
    }
}

impl Serialize for Bdf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Bdf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bdf, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Catalog entries (besides every `dmar.*` one: Intel's fault lines) that print a requester
/// without its PCI segment.
const SEGMENTLESS: &[&str] = &["amdvi.io_page_fault_noseg"];

/// Whether a line of catalog entry `catalog_id` printed its requester without the PCI segment,
/// so that the `0000` it was read in is a guess: Intel DMAR (`Request device [3c:00.3]`) and
/// AMD-Vi before about v6.0 (`device=3c:00.3`), when no device prefix gave the segment. (Old
/// AER `id=%04x` lines are printed on the root port, whose segment is the source's.)
pub fn segment_unprinted(catalog_id: &str, device_prefix: bool) -> bool {
    !device_prefix && (catalog_id.starts_with("dmar.") || SEGMENTLESS.contains(&catalog_id))
}

/// A VF index relative to its PF: the `N` of `virtfnN`, the driver's `vf_id`, the `vf` field of
/// `IFLA_VF_INFO`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VfIndex(pub u16);

impl fmt::Display for VfIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for VfIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vf{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_full_and_short_forms() {
        let b: Bdf = "0000:3b:02.1".parse().unwrap();
        assert_eq!(
            (b.segment(), b.bus(), b.device(), b.function()),
            (0, 0x3b, 2, 1)
        );
        let short: Bdf = "3b:02.1".parse().unwrap();
        assert_eq!(b, short);
        let upper: Bdf = "0001:AF:1F.7".parse().unwrap();
        assert_eq!(upper.to_string(), "0001:af:1f.7");
    }

    #[test]
    fn rejects_out_of_range_and_junk() {
        for bad in [
            "",
            "0000:3b:20.0",
            "0000:3b:02.8",
            "3b:02",
            "zz:00.0",
            "00000:3b:02.1",
            "0000:3b:02.10",
            ":::.",
        ] {
            assert!(bad.parse::<Bdf>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn decodes_requester_id() {
        // bus 0x07, device 0, function 0
        assert_eq!(
            Bdf::from_requester_id(0, 0x0700).to_string(),
            "0000:07:00.0"
        );
        // devfn 0x11 = device 2 function 1
        assert_eq!(
            Bdf::from_requester_id(0, 0x3b11).to_string(),
            "0000:3b:02.1"
        );
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(seg in any::<u16>(), bus in any::<u8>(), dev in 0u8..32, func in 0u8..8) {
            let b = Bdf::new(seg, bus, dev, func).unwrap();
            prop_assert_eq!(b.to_string().parse::<Bdf>().unwrap(), b);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,20}") {
            let _ = s.parse::<Bdf>();
        }
    }
}
