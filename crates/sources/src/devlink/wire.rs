//! Netlink framing for generic netlink: message headers (`nlmsghdr`), the generic netlink
//! header (`genlmsghdr`) and attributes (`nlattr`), read with bounds checks and written for
//! requests, fixtures and the simulated host.
//!
//! # Design
//! The devlink payload has no Rust crate, and `netlink-packet-generic` (0.5, on
//! netlink-packet-core 0.9) would only give the 4-byte genl header and the ctrl family; the
//! decoder is kept as one piece of bounds-checked code over raw bytes, free of I/O, that the
//! proptest fuzzes and whose bytes the simulated host also produces (include/uapi/linux/netlink.h,
//! genetlink.h).

use thiserror::Error;

/// `sizeof(struct nlmsghdr)`.
pub const NLMSG_HDRLEN: usize = 16;
/// `GENL_HDRLEN`.
pub const GENL_HDRLEN: usize = 4;
/// `NLA_HDRLEN`.
pub const NLA_HDRLEN: usize = 4;
/// `NLMSG_ERROR`: an errno (0: an acknowledgement).
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
pub const NLMSG_DONE: u16 = 3;
/// `NLM_F_REQUEST`.
pub const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_MULTI`: one part of a multipart answer.
pub const NLM_F_MULTI: u16 = 0x2;
/// `NLM_F_ACK`.
pub const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub const NLM_F_DUMP: u16 = 0x300;
/// `NLA_F_NESTED`.
const NLA_F_NESTED: u16 = 0x8000;
/// `NLA_TYPE_MASK`: the type without the nested and byte-order flags.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Bytes that are not what the kernel's netlink layout says they should be.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than a header or an announced length needs.
    #[error("truncated at byte {offset}: {needed} bytes needed, {available} left")]
    Truncated {
        /// Where.
        offset: usize,
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// A message or attribute length shorter than its own header.
    #[error("length {length} at byte {offset} is shorter than its header")]
    BadLength {
        /// Where.
        offset: usize,
        /// The length announced.
        length: usize,
    },
    /// A fixed-size attribute of the wrong size.
    #[error("attribute {name} is {actual} bytes, {expected} expected")]
    BadSize {
        /// The kernel's name of the attribute.
        name: &'static str,
        /// Its size in the kernel's layout.
        expected: usize,
        /// Its size here.
        actual: usize,
    },
    /// A string attribute that is not UTF-8.
    #[error("attribute {name} is not UTF-8 text")]
    BadString {
        /// The kernel's name of the attribute.
        name: &'static str,
    },
    /// A required attribute is absent.
    #[error("attribute {0} missing")]
    Missing(&'static str),
    /// The kernel answered with an error (`NLMSG_ERROR`, a negative errno).
    #[error("the kernel answered errno {0}")]
    Errno(i32),
}

/// One netlink message of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// `nlmsg_type`: the family id for generic netlink, or a control type.
    pub kind: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// `nlmsg_pid`.
    pub pid: u32,
    /// What follows the header.
    pub payload: &'a [u8],
}

fn slice(buf: &[u8], offset: usize, len: usize) -> Result<&[u8], WireError> {
    buf.get(offset..offset.saturating_add(len))
        .filter(|s| s.len() == len)
        .ok_or(WireError::Truncated {
            offset,
            needed: len,
            available: buf.len().saturating_sub(offset),
        })
}

fn u16_at(buf: &[u8], offset: usize) -> Result<u16, WireError> {
    let b = slice(buf, offset, 2)?;
    Ok(u16::from_ne_bytes([
        *b.first().unwrap_or(&0),
        *b.get(1).unwrap_or(&0),
    ]))
}

fn u32_at(buf: &[u8], offset: usize) -> Result<u32, WireError> {
    let b = slice(buf, offset, 4)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    Ok(u32::from_ne_bytes(a))
}

/// `NLMSG_ALIGN` / `NLA_ALIGN`.
fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// Splits a buffer of netlink messages (one `recv`, or several concatenated).
pub fn messages(buf: &[u8]) -> Result<Vec<Message<'_>>, WireError> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < buf.len() {
        let len = u32_at(buf, offset)? as usize;
        if len < NLMSG_HDRLEN {
            return Err(WireError::BadLength {
                offset,
                length: len,
            });
        }
        let whole = slice(buf, offset, len)?;
        out.push(Message {
            kind: u16_at(whole, 4)?,
            flags: u16_at(whole, 6)?,
            seq: u32_at(whole, 8)?,
            pid: u32_at(whole, 12)?,
            payload: whole.get(NLMSG_HDRLEN..).unwrap_or_default(),
        });
        offset = offset.saturating_add(align4(len));
    }
    Ok(out)
}

impl<'a> Message<'a> {
    /// The errno of an `NLMSG_ERROR` message (0 for an acknowledgement); `None` for others.
    pub fn errno(&self) -> Result<Option<i32>, WireError> {
        if self.kind != NLMSG_ERROR {
            return Ok(None);
        }
        let e = u32_at(self.payload, 0)?;
        Ok(Some(i32::from_ne_bytes(e.to_ne_bytes())))
    }

    /// The generic netlink header and attributes of the payload.
    pub fn genl(&self) -> Result<Genl<'a>, WireError> {
        let h = slice(self.payload, 0, GENL_HDRLEN)?;
        Ok(Genl {
            cmd: *h.first().unwrap_or(&0),
            version: *h.get(1).unwrap_or(&0),
            attrs: self.payload.get(GENL_HDRLEN..).unwrap_or_default(),
        })
    }
}

/// The generic netlink part of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Genl<'a> {
    /// The family's command.
    pub cmd: u8,
    /// The family's version.
    pub version: u8,
    /// The attributes, still encoded.
    pub attrs: &'a [u8],
}

/// One attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    /// Its type, without the nested and byte-order flags.
    pub kind: u16,
    /// Its payload.
    pub data: &'a [u8],
}

/// The attributes of a buffer, in order.
pub fn attrs(buf: &[u8]) -> Result<Vec<Attr<'_>>, WireError> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < buf.len() {
        let len = usize::from(u16_at(buf, offset)?);
        if len < NLA_HDRLEN {
            return Err(WireError::BadLength {
                offset,
                length: len,
            });
        }
        let whole = slice(buf, offset, len)?;
        out.push(Attr {
            kind: u16_at(whole, 2)? & NLA_TYPE_MASK,
            data: whole.get(NLA_HDRLEN..).unwrap_or_default(),
        });
        offset = offset.saturating_add(align4(len));
    }
    Ok(out)
}

impl<'a> Attr<'a> {
    fn fixed<const N: usize>(&self, name: &'static str) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        if self.data.len() != N {
            return Err(WireError::BadSize {
                name,
                expected: N,
                actual: self.data.len(),
            });
        }
        a.copy_from_slice(self.data);
        Ok(a)
    }

    /// A `u8`.
    pub fn u8(&self, name: &'static str) -> Result<u8, WireError> {
        Ok(self.fixed::<1>(name)?[0])
    }

    /// A `u16`.
    pub fn u16(&self, name: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_ne_bytes(self.fixed::<2>(name)?))
    }

    /// A `u32`.
    pub fn u32(&self, name: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_ne_bytes(self.fixed::<4>(name)?))
    }

    /// A `u64`: 8 bytes (`nla_put_u64_64bit`, the pad an attribute of its own), or 4 when
    /// the kernel put it as `nla_put_uint` does for a value that fits (`nla_get_uint`).
    pub fn u64(&self, name: &'static str) -> Result<u64, WireError> {
        if self.data.len() == 4 {
            return Ok(u64::from(self.u32(name)?));
        }
        Ok(u64::from_ne_bytes(self.fixed::<8>(name)?))
    }

    /// A string, its terminating NUL (and anything after it) dropped.
    pub fn str(&self, name: &'static str) -> Result<&'a str, WireError> {
        let end = self
            .data
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.data.len());
        std::str::from_utf8(self.data.get(..end).unwrap_or_default())
            .map_err(|_| WireError::BadString { name })
    }

    /// The attributes nested in this one.
    pub fn nested(&self) -> Result<Vec<Attr<'a>>, WireError> {
        attrs(self.data)
    }
}

/// Writes one netlink message: header, generic netlink header, attributes, nests.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    buf: Vec<u8>,
}

impl MessageBuilder {
    /// A message of type `kind` (the family id) with `flags`, `seq` and `pid`.
    pub fn new(kind: u16, flags: u16, seq: u32, pid: u32) -> MessageBuilder {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&pid.to_ne_bytes());
        MessageBuilder { buf }
    }

    /// The generic netlink header.
    pub fn genl(mut self, cmd: u8, version: u8) -> MessageBuilder {
        self.buf.extend_from_slice(&[cmd, version, 0, 0]);
        self
    }

    /// Raw payload bytes (an `NLMSG_ERROR`'s errno and echoed header).
    pub fn raw(mut self, bytes: &[u8]) -> MessageBuilder {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// An attribute with this payload, padded to 4 bytes.
    pub fn attr(mut self, kind: u16, data: &[u8]) -> MessageBuilder {
        self.put(kind, data);
        self
    }

    fn put(&mut self, kind: u16, data: &[u8]) {
        let len = u16::try_from(NLA_HDRLEN + data.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// A NUL-terminated string attribute.
    pub fn str(self, kind: u16, s: &str) -> MessageBuilder {
        let mut d = s.as_bytes().to_vec();
        d.push(0);
        self.attr(kind, &d)
    }

    /// A `u8` attribute.
    pub fn u8(self, kind: u16, v: u8) -> MessageBuilder {
        self.attr(kind, &[v])
    }

    /// A `u16` attribute.
    pub fn u16(self, kind: u16, v: u16) -> MessageBuilder {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// A `u32` attribute.
    pub fn u32(self, kind: u16, v: u32) -> MessageBuilder {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// A `u64` attribute.
    pub fn u64(self, kind: u16, v: u64) -> MessageBuilder {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// Opens a nest (`nla_nest_start`); close it with [`MessageBuilder::end_nest`].
    pub fn nest(mut self, kind: u16) -> (MessageBuilder, usize) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        (self, at)
    }

    /// Closes the nest opened at `at`.
    pub fn end_nest(mut self, at: usize) -> MessageBuilder {
        let len = u16::try_from(self.buf.len().saturating_sub(at)).unwrap_or(u16::MAX);
        if let Some(b) = self.buf.get_mut(at..at + 2) {
            b.copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    /// The message, its length set.
    pub fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        if let Some(b) = self.buf.get_mut(0..4) {
            b.copy_from_slice(&len.to_ne_bytes());
        }
        self.buf
    }
}

/// An `NLMSG_DONE` answering `seq`.
pub fn done(seq: u32, pid: u32) -> Vec<u8> {
    MessageBuilder::new(NLMSG_DONE, NLM_F_MULTI, seq, pid)
        .raw(&0i32.to_ne_bytes())
        .finish()
}

/// An `NLMSG_ERROR` answering `seq` with `-errno` (0: an acknowledgement).
pub fn error(seq: u32, pid: u32, errno: i32) -> Vec<u8> {
    let mut echoed = [0u8; NLMSG_HDRLEN];
    if let Some(b) = echoed.get_mut(8..12) {
        b.copy_from_slice(&seq.to_ne_bytes());
    }
    MessageBuilder::new(NLMSG_ERROR, 0, seq, pid)
        .raw(&(-errno).to_ne_bytes())
        .raw(&echoed)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_message_reads_back() {
        let (b, at) = MessageBuilder::new(0x14, NLM_F_REQUEST, 7, 0)
            .genl(52, 1)
            .str(1, "pci")
            .nest(114);
        let bytes = b.u8(116, 1).u64(117, 9).end_nest(at).finish();
        let m = messages(&bytes).unwrap();
        assert_eq!(m.len(), 1);
        let g = m[0].genl().unwrap();
        assert_eq!((m[0].kind, m[0].seq, g.cmd), (0x14, 7, 52));
        let a = attrs(g.attrs).unwrap();
        assert_eq!(a[0].str("bus").unwrap(), "pci");
        let inner = a[1].nested().unwrap();
        assert_eq!(inner[0].u8("state").unwrap(), 1);
        assert_eq!(inner[1].u64("errors").unwrap(), 9);
    }

    #[test]
    fn truncated_and_short_lengths_are_errors() {
        let bytes = done(1, 0);
        for cut in 1..bytes.len() {
            assert!(messages(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = bytes.clone();
        bad[0] = 3;
        bad[1] = 0;
        bad[2] = 0;
        bad[3] = 0;
        assert!(matches!(messages(&bad), Err(WireError::BadLength { .. })));
        assert!(matches!(
            attrs(&[2, 0, 1, 0]),
            Err(WireError::BadLength { .. })
        ));
    }

    #[test]
    fn a_u64_may_come_in_four_bytes() {
        let d = 7u32.to_ne_bytes();
        let a = Attr { kind: 1, data: &d };
        assert_eq!(a.u64("x").unwrap(), 7);
        let a = Attr {
            kind: 1,
            data: &d[..3],
        };
        assert!(matches!(a.u64("x"), Err(WireError::BadSize { .. })));
    }

    #[test]
    fn errors_carry_their_errno() {
        let m = error(3, 0, 2);
        let msgs = messages(&m).unwrap();
        assert_eq!(msgs[0].errno().unwrap(), Some(-2));
        assert_eq!(messages(&done(3, 0)).unwrap()[0].errno().unwrap(), None);
    }
}
