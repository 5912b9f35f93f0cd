//! What an AER report's detail lines say beyond their text: the TLP header log decoded into the
//! TLP's type and the IDs of the functions that sent it, and whether a correctable error is a
//! link (physical or data link layer) error.
//!
//! # Design
//! The kernel prints the header log as four 32-bit words (drivers/pci/pcie/tlp.c
//! `pcie_print_tlp_log()`, `"%#010x %#010x %#010x %#010x"` since v6.15; aer.c `"%08x %08x %08x
//! %08x"` before; `"%02x%02x%02x%02x ..."` byte by byte, most significant first, in v4.x and
//! earlier: the same digits as `%08x`). The layout is the PCIe Base Specification's non-Flit
//! header: DW0 bits 31:29 are Fmt and 28:24 Type; a request carries its Requester ID in DW1 bits
//! 31:16; a completion carries its Completer ID there and the Requester ID in DW2 bits 31:16; a
//! configuration request carries its target's ID in DW2 bits 31:16.
//!
//! # Limitations
//! Flit-mode headers (`TLP Header (Flit): ...`, PCIe 6) have another layout and are not decoded.
//! IDs are rendered `bus:dev.fn` without a segment: a TLP never leaves its PCI segment, so the
//! segment is the reporting device's.

/// Detail keys the decode writes (documented in docs/catalog.md).
pub const TLP_TYPE: &str = "tlp_type";
/// The requester ID of the TLP (requests: DW1 31:16; completions: DW2 31:16), `bus:dev.fn`.
pub const TLP_REQUESTER: &str = "tlp_requester";
/// The completer ID of a completion (DW1 31:16), `bus:dev.fn`.
pub const TLP_COMPLETER: &str = "tlp_completer";
/// The target of a configuration request (DW2 31:16), `bus:dev.fn`.
pub const TLP_TARGET: &str = "tlp_target";
/// `true` when a correctable error is a link error (physical or data link layer), else `false`.
pub const AER_LINK: &str = "aer_link";

/// The header log's words, as printed (`0x4a000001`, `4a000001`); stops at the first word that
/// is not one (an `E-E Prefixes:` tail). `None` unless at least DW0 and DW1 are there.
pub fn header_words(text: &str) -> Option<Vec<u32>> {
    let words: Vec<u32> = text
        .split_whitespace()
        .map_while(|w| {
            let hex = w
                .strip_prefix("0x")
                .or_else(|| w.strip_prefix("0X"))
                .unwrap_or(w);
            (hex.len() == 8)
                .then(|| u32::from_str_radix(hex, 16).ok())
                .flatten()
        })
        .take(4)
        .collect();
    (words.len() >= 2).then_some(words)
}

/// How a TLP type names the function that sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A request: DW1 31:16 is the requester.
    Request,
    /// A configuration request: a request whose DW2 31:16 is the target.
    Config,
    /// A completion: DW1 31:16 is the completer, DW2 31:16 the requester.
    Completion,
}

/// The TLP type from DW0's Fmt (31:29) and Type (28:24), and how to read its IDs; `None` for
/// encodings that are not a non-Flit header (a TLP prefix, a reserved code).
fn tlp_type(dw0: u32) -> Option<(&'static str, Role)> {
    let fmt = (dw0 >> 29) & 0x7;
    let typ = (dw0 >> 24) & 0x1f;
    let t = match (fmt, typ) {
        (0b000, 0b0_0000) => ("MRd32", Role::Request),
        (0b001, 0b0_0000) => ("MRd64", Role::Request),
        (0b010, 0b0_0000) => ("MWr32", Role::Request),
        (0b011, 0b0_0000) => ("MWr64", Role::Request),
        (0b000, 0b0_0001) => ("MRdLk32", Role::Request),
        (0b001, 0b0_0001) => ("MRdLk64", Role::Request),
        (0b000, 0b0_0010) => ("IORd", Role::Request),
        (0b010, 0b0_0010) => ("IOWr", Role::Request),
        (0b000, 0b0_0100) => ("CfgRd0", Role::Config),
        (0b010, 0b0_0100) => ("CfgWr0", Role::Config),
        (0b000, 0b0_0101) => ("CfgRd1", Role::Config),
        (0b010, 0b0_0101) => ("CfgWr1", Role::Config),
        (0b000, 0b1_1011) => ("TCfgRd", Role::Config),
        (0b010, 0b1_1011) => ("TCfgWr", Role::Config),
        (0b001, 0b1_0000..=0b1_0111) => ("Msg", Role::Request),
        (0b011, 0b1_0000..=0b1_0111) => ("MsgD", Role::Request),
        (0b000, 0b0_1010) => ("Cpl", Role::Completion),
        (0b010, 0b0_1010) => ("CplD", Role::Completion),
        (0b000, 0b0_1011) => ("CplLk", Role::Completion),
        (0b010, 0b0_1011) => ("CplDLk", Role::Completion),
        (0b010 | 0b011, 0b0_1100) => ("FetchAdd", Role::Request),
        (0b010 | 0b011, 0b0_1101) => ("Swap", Role::Request),
        (0b010 | 0b011, 0b0_1110) => ("CAS", Role::Request),
        _ => return None,
    };
    Some(t)
}

/// A 16-bit routing ID as `bus:dev.fn` (bus 15:8, device 7:3, function 2:0).
fn routing_id(id: u32) -> String {
    format!(
        "{:02x}:{:02x}.{}",
        (id >> 8) & 0xff,
        (id >> 3) & 0x1f,
        id & 0x7
    )
}

/// Decodes a header log into `(key, value)` details: the TLP type and, by type, its requester,
/// completer or target. Empty when the words do not make a header this module knows.
pub fn decode_header(words: &[u32]) -> Vec<(&'static str, String)> {
    let (Some(&dw0), Some(&dw1)) = (words.first(), words.get(1)) else {
        return Vec::new();
    };
    let Some((name, role)) = tlp_type(dw0) else {
        return Vec::new();
    };
    let high = |dw: u32| dw >> 16;
    let mut out = vec![(TLP_TYPE, name.to_owned())];
    match role {
        Role::Request => out.push((TLP_REQUESTER, routing_id(high(dw1)))),
        Role::Config => {
            out.push((TLP_REQUESTER, routing_id(high(dw1))));
            if let Some(&dw2) = words.get(2) {
                out.push((TLP_TARGET, routing_id(high(dw2))));
            }
        }
        Role::Completion => {
            out.push((TLP_COMPLETER, routing_id(high(dw1))));
            if let Some(&dw2) = words.get(2) {
                out.push((TLP_REQUESTER, routing_id(high(dw2))));
            }
        }
    }
    out
}

/// Correctable errors of the link (aer.c `aer_correctable_error_string`: bit 0 RxErr, 6 BadTLP,
/// 7 BadDLLP, 8 Rollover, 12 Timeout), with the long names kernels before about v4.19 printed.
const LINK_BITS: &[&str] = &[
    "RxErr",
    "BadTLP",
    "BadDLLP",
    "Rollover",
    "Timeout",
    "Receiver Error",
    "Bad TLP",
    "Bad DLLP",
    "RELAY_NUM Rollover",
    "Replay Timer Timeout",
];

/// The same bits in the correctable status register.
const LINK_STATUS_MASK: u64 = (1 << 0) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 12);

/// Whether a correctable error is a link error: the physical and data link layers' own
/// (receiver errors, bad TLPs and DLLPs, replay rollovers and timeouts) are the link's or the
/// hardware's, never a tenant's doing. Judged by the bit names when printed, else by the status
/// register, else by the `type=` layer; `None` when nothing says.
pub fn is_link_error(
    bits: Option<&str>,
    status: Option<&str>,
    layer: Option<&str>,
) -> Option<bool> {
    if let Some(bits) = bits.filter(|b| !b.trim().is_empty()) {
        return Some(bits.split(", ").all(|b| LINK_BITS.contains(&b.trim())));
    }
    let statuses: Vec<u64> = status
        .map(|s| {
            s.split(", ")
                .filter_map(|v| u64::from_str_radix(v.trim().trim_start_matches("0x"), 16).ok())
                .filter(|&v| v != 0)
                .collect()
        })
        .unwrap_or_default();
    if !statuses.is_empty() {
        return Some(statuses.iter().all(|s| s & !LINK_STATUS_MASK == 0));
    }
    layer.map(|l| {
        l.split(", ")
            .all(|l| matches!(l.trim(), "Physical Layer" | "Data Link Layer"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_write_names_its_requester() {
        // MWr64 (Fmt 011, Type 00000) from 3b:02.1 (0x3b11), tag 0x00, BE 0x0f.
        let w = header_words("0x60000001 0x3b11000f 0x00000001 0x7ff3c000").unwrap();
        assert_eq!(
            decode_header(&w),
            [
                (TLP_TYPE, "MWr64".into()),
                (TLP_REQUESTER, "3b:02.1".into())
            ]
        );
    }

    #[test]
    fn completion_names_completer_and_requester() {
        // CplD (Fmt 010, Type 01010) from 3b:00.0 to 00:00.0.
        let w = header_words("4a000001 3b000004 00000000 00000000").unwrap();
        assert_eq!(
            decode_header(&w),
            [
                (TLP_TYPE, "CplD".into()),
                (TLP_COMPLETER, "3b:00.0".into()),
                (TLP_REQUESTER, "00:00.0".into()),
            ]
        );
    }

    #[test]
    fn config_request_names_requester_and_target() {
        let w = header_words("04000001 0000000f 3b100000 00000000").unwrap();
        assert_eq!(
            decode_header(&w),
            [
                (TLP_TYPE, "CfgRd0".into()),
                (TLP_REQUESTER, "00:00.0".into()),
                (TLP_TARGET, "3b:02.0".into()),
            ]
        );
    }

    #[test]
    fn words_that_are_not_a_header_decode_to_nothing() {
        assert_eq!(header_words("0x1 0x2"), None, "not %08x words");
        assert_eq!(header_words("0x4a000001"), None, "one word");
        // A TLP prefix (Fmt 100) is not a header.
        let w = header_words("0x90000001 0x3b11000f").unwrap();
        assert!(decode_header(&w).is_empty());
        // E-E prefixes after the header are ignored.
        let w =
            header_words("0x4a000001 0x3b000004 0x00000000 0x00000000 E-E Prefixes: 0x1").unwrap();
        assert_eq!(w.len(), 4);
    }

    #[test]
    fn link_errors_by_bits_status_or_layer() {
        assert_eq!(is_link_error(Some("RxErr"), None, None), Some(true));
        assert_eq!(
            is_link_error(Some("BadTLP, Timeout"), None, None),
            Some(true)
        );
        assert_eq!(
            is_link_error(Some("RxErr, NonFatalErr"), None, None),
            Some(false)
        );
        assert_eq!(is_link_error(None, Some("00000040"), None), Some(true));
        assert_eq!(is_link_error(None, Some("00002000"), None), Some(false));
        assert_eq!(
            is_link_error(None, None, Some("Data Link Layer")),
            Some(true)
        );
        assert_eq!(
            is_link_error(None, None, Some("Transaction Layer")),
            Some(false)
        );
        assert_eq!(is_link_error(None, None, None), None);
    }
}
