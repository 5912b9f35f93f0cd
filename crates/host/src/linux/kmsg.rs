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

impl KmsgStream {
    /// Appends one line (up to its `\n`) to `self.line` while it holds at most `cap` bytes;
    /// past that, reads the rest of the line without keeping it. Returns the line's length, 0 at
    /// the end of the input.
    fn read_line_bounded(&mut self, cap: usize) -> io::Result<usize> {
        let mut total = 0;
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                return Ok(total);
            }
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let room = cap.saturating_sub(self.line.len());
            self.line
                .extend_from_slice(chunk.get(..take.min(room)).unwrap_or_default());
            self.reader.consume(take);
            total += take;
            if done {
                return Ok(total);
            }
        }
    }
}

impl KmsgDevice for KmsgStream {
    fn read_record(&mut self, buf: &mut [u8]) -> io::Result<KmsgRead> {
        self.line.clear();
        // At most one byte more than fits is kept: enough to know the record is too long,
        // never a whole runaway line in memory.
        let cap = buf.len().saturating_add(1);
        let mut n = self.read_line_bounded(cap)?;
        if n == 0 {
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
            n = n.saturating_add(self.read_line_bounded(cap)?);
        }
        if n > buf.len() {
            return Ok(KmsgRead::Oversized(n));
        }
        buf.get_mut(..n)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))?
            .copy_from_slice(self.line.get(..n).unwrap_or_default());
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

    /// Issue 13: one record over 8 KiB in a record file stopped the daemon for good.
    #[test]
    fn an_oversized_record_is_skipped_whole_and_reading_goes_on() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(
            f,
            "6,1,10,-;{}\n DEVICE=+pci:{}\n6,2,20,-;next\n",
            "x".repeat(100_000),
            "y".repeat(50_000)
        )
        .unwrap();
        let mut dev = KmsgStream::open(f.path()).unwrap();
        let mut buf = vec![0u8; 8192];
        assert!(matches!(
            dev.read_record(&mut buf).unwrap(),
            KmsgRead::Oversized(n) if n > 150_000
        ));
        assert!(dev.line.len() <= 8193, "kept {} bytes", dev.line.len());
        let KmsgRead::Record(n) = dev.read_record(&mut buf).unwrap() else {
            panic!("the next record was lost")
        };
        assert_eq!(&buf[..n], b"6,2,20,-;next\n");
        assert_eq!(dev.read_record(&mut buf).unwrap(), KmsgRead::Eof);
    }

    #[test]
    fn a_record_that_fits_exactly_is_read() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let rec = format!("6,1,10,-;{}\n", "x".repeat(16 - 10));
        f.write_all(rec.as_bytes()).unwrap();
        let mut dev = KmsgStream::open(f.path()).unwrap();
        let mut buf = vec![0u8; 16];
        assert_eq!(dev.read_record(&mut buf).unwrap(), KmsgRead::Record(16));
    }

    #[test]
    fn missing_device_is_an_error() {
        assert!(open_kmsg(Path::new("/nonexistent/kmsg"), true).is_err());
    }
}
