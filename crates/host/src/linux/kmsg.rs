//! `/dev/kmsg` and record files.
//!
//! The character device returns exactly one record per `read()` (Documentation/ABI/testing/
//! dev-kmsg): `EPIPE` when records were overwritten, `EAGAIN` when non-blocking and empty,
//! `EINVAL` when the buffer is too small. A regular file or FIFO holding the same text is framed
//! by lines instead: a header line and the dictionary lines (leading space) after it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::kmsg::{KmsgDevice, KmsgRead, KmsgSeek};

/// The kernel's clock for `/dev/kmsg` timestamps, in µs since boot: `CLOCK_MONOTONIC`, which like
/// printk's `local_clock()` stops during suspend. Lets a window over the ring ("the last hour")
/// be turned into a timestamp cut-off.
pub fn monotonic_us() -> io::Result<u64> {
    let t =
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_err(io::Error::from)?;
    let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec()).unwrap_or(0);
    Ok(secs * 1_000_000 + nanos / 1000)
}

/// The real kernel log device (or any character device with its semantics).
#[derive(Debug)]
pub struct DevKmsg {
    file: File,
}

impl DevKmsg {
    /// Opens the device read-only. With `nonblocking`, an empty log reads as
    /// [`KmsgRead::WouldBlock`] instead of waiting.
    pub fn open(path: &Path, nonblocking: bool) -> io::Result<DevKmsg> {
        let mut opts = OpenOptions::new();
        opts.read(true);
        if nonblocking {
            opts.custom_flags(libc::O_NONBLOCK);
        }
        Ok(DevKmsg {
            file: opts.open(path)?,
        })
    }
}

impl KmsgDevice for DevKmsg {
    fn read_record(&mut self, buf: &mut [u8]) -> io::Result<KmsgRead> {
        loop {
            match self.file.read(buf) {
                Ok(0) => return Ok(KmsgRead::Eof),
                Ok(n) => return Ok(KmsgRead::Record(n)),
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => return Ok(KmsgRead::Overrun),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(KmsgRead::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn seek(&mut self, to: KmsgSeek) -> io::Result<()> {
        // /dev/kmsg accepts offset 0 only: SEEK_SET = first record, SEEK_END = after the last.
        match to {
            KmsgSeek::Start => self.file.seek(SeekFrom::Start(0))?,
            KmsgSeek::End => self.file.seek(SeekFrom::End(0))?,
        };
        Ok(())
    }
}

/// Records in a regular file or a FIFO, one header line plus dictionary lines each.
#[derive(Debug)]
pub struct KmsgStream {
    reader: BufReader<File>,
    fifo: bool,
    line: Vec<u8>,
}

impl KmsgStream {
    /// Opens a record file or FIFO.
    pub fn open(path: &Path) -> io::Result<KmsgStream> {
        let file = File::open(path)?;
        let fifo = file.metadata()?.file_type().is_fifo();
        Ok(KmsgStream {
            reader: BufReader::with_capacity(64 * 1024, file),
            fifo,
            line: Vec::new(),
        })
    }
}

impl KmsgDevice for KmsgStream {
    fn read_record(&mut self, buf: &mut [u8]) -> io::Result<KmsgRead> {
        self.line.clear();
        if self.reader.read_until(b'\n', &mut self.line)? == 0 {
            return Ok(KmsgRead::Eof);
        }
        // Dictionary lines follow their header. A FIFO writer writes each record whole, so an
        // empty buffer after the header means the record is complete: never block for more.
        loop {
            let more = if self.fifo && self.reader.buffer().is_empty() {
                false
            } else {
                self.reader.fill_buf()?.first() == Some(&b' ')
            };
            if !more {
                break;
            }
            self.reader.read_until(b'\n', &mut self.line)?;
        }
        if self.line.len() > buf.len() {
            // The kernel answers EINVAL to a buffer too small; say so the same way.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "record of {} bytes exceeds the {}-byte buffer",
                    self.line.len(),
                    buf.len()
                ),
            ));
        }
        let n = self.line.len();
        buf.get_mut(..n)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))?
            .copy_from_slice(&self.line);
        Ok(KmsgRead::Record(n))
    }

    fn seek(&mut self, to: KmsgSeek) -> io::Result<()> {
        if self.fifo {
            return match to {
                KmsgSeek::End => Ok(()),
                KmsgSeek::Start => Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "a FIFO cannot be replayed from the start",
                )),
            };
        }
        let pos = match to {
            KmsgSeek::Start => SeekFrom::Start(0),
            KmsgSeek::End => SeekFrom::End(0),
        };
        self.reader.seek(pos)?;
        Ok(())
    }
}

/// Opens a kmsg source: the character device semantics for a character device, line framing for
/// a file or FIFO.
pub fn open_kmsg(path: &Path, nonblocking: bool) -> io::Result<Box<dyn KmsgDevice>> {
    let meta = std::fs::metadata(path)?;
    if meta.file_type().is_char_device() {
        Ok(Box::new(DevKmsg::open(path, nonblocking)?))
    } else {
        Ok(Box::new(KmsgStream::open(path)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_is_framed_into_records_with_their_dictionary() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(
            f,
            "6,1,10,-;igb 0000:02:00.0: one\n SUBSYSTEM=pci\n DEVICE=+pci:0000:02:00.0\n6,2,20,-;two\n"
        )
        .unwrap();
        let mut dev = open_kmsg(f.path(), true).unwrap();
        let mut buf = vec![0u8; 8192];
        let KmsgRead::Record(n) = dev.read_record(&mut buf).unwrap() else {
            panic!("no record")
        };
        assert!(std::str::from_utf8(&buf[..n])
            .unwrap()
            .ends_with("DEVICE=+pci:0000:02:00.0\n"));
        assert_eq!(dev.read_record(&mut buf).unwrap(), KmsgRead::Record(13));
        assert_eq!(dev.read_record(&mut buf).unwrap(), KmsgRead::Eof);
        dev.seek(KmsgSeek::Start).unwrap();
        assert!(matches!(
            dev.read_record(&mut buf).unwrap(),
            KmsgRead::Record(_)
        ));
    }

    #[test]
    fn a_small_buffer_is_an_error_not_a_truncation() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "6,1,10,-;{}", "x".repeat(100)).unwrap();
        let mut dev = KmsgStream::open(f.path()).unwrap();
        let mut buf = vec![0u8; 16];
        assert!(dev.read_record(&mut buf).is_err());
    }

    #[test]
    fn missing_device_is_an_error() {
        assert!(open_kmsg(Path::new("/nonexistent/kmsg"), true).is_err());
    }
}
