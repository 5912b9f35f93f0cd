//! A source of kernel log records in the `/dev/kmsg` format.

use std::io;

/// The outcome of one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsgRead {
    /// One whole record of this many bytes is in the buffer.
    Record(usize),
    /// Records were overwritten since the last read (`EPIPE`); reading goes on at the oldest
    /// record still held. The next record's sequence number tells how many were lost.
    Overrun,
    /// No record is ready now (`EAGAIN` on a non-blocking device, or an idle FIFO).
    WouldBlock,
    /// The source has ended (a file read to its end, a FIFO whose writer closed).
    Eof,
    /// A record longer than the buffer (this many bytes) was read past: no kernel record is
    /// that long, so it is counted and skipped, never fatal (record files and FIFOs only; the
    /// kernel's records always fit the reader's 8 KiB).
    Oversized(usize),
}

/// Where to position the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsgSeek {
    /// The oldest record held (to replay history).
    Start,
    /// After the newest record (to tail live).
    End,
}

/// Anything that yields kmsg records one at a time: the real `/dev/kmsg`, a saved file, a FIFO
/// the simulator writes.
pub trait KmsgDevice: Send {
    /// Reads one record into `buf`.
    fn read_record(&mut self, buf: &mut [u8]) -> io::Result<KmsgRead>;
    /// Moves the read position.
    fn seek(&mut self, to: KmsgSeek) -> io::Result<()>;
}

impl<D: KmsgDevice + ?Sized> KmsgDevice for Box<D> {
    fn read_record(&mut self, buf: &mut [u8]) -> io::Result<KmsgRead> {
        (**self).read_record(buf)
    }
    fn seek(&mut self, to: KmsgSeek) -> io::Result<()> {
        (**self).seek(to)
    }
}
