//! Why a read of the host failed as a whole, and how it is noticed.
//!
//! Most of what the reader cannot read is a warning and a hole in one function's record (a
//! device mid-reset answers `EIO` for its own attributes). Two failures make the whole map
//! untrustworthy instead: the PCI device directory that cannot be listed (the host is then not
//! known to have no functions), and file descriptors running out anywhere during the read
//! (every file opened after that point is missing, so PFs lose their VFs and owners). Such a
//! read is a [`ReadError`]; [`crate::TopologyWatcher`] then keeps the last good map, marked
//! stale, instead of an empty one.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use vfguard_host::fs::is_fd_exhaustion;
use vfguard_host::HostFs;

/// A read of the host that failed as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// File descriptors ran out during the read (first at `path`).
    #[error("file descriptors exhausted reading {}", path.display())]
    FdExhausted {
        /// The first file that could not be opened.
        path: PathBuf,
        /// `EMFILE` or `ENFILE`.
        #[source]
        source: io::Error,
    },
    /// The PCI device directory exists but could not be listed.
    #[error("{} could not be listed", path.display())]
    Unlisted {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl ReadError {
    /// Whether the read failed for want of file descriptors.
    pub fn is_fd_exhausted(&self) -> bool {
        match self {
            ReadError::FdExhausted { .. } => true,
            ReadError::Unlisted { source, .. } => is_fd_exhaustion(source),
        }
    }

    /// The error with its cause, on one line.
    pub fn chain(&self) -> String {
        let source = match self {
            ReadError::FdExhausted { source, .. } | ReadError::Unlisted { source, .. } => source,
        };
        format!("{self}: {source}")
    }
}

/// A [`HostFs`] that remembers the first `EMFILE`/`ENFILE` any call got.
pub(crate) struct Watchful<'a> {
    fs: &'a dyn HostFs,
    exhausted: Mutex<Option<(PathBuf, i32)>>,
}

impl<'a> Watchful<'a> {
    pub(crate) fn new(fs: &'a dyn HostFs) -> Watchful<'a> {
        Watchful {
            fs,
            exhausted: Mutex::new(None),
        }
    }

    /// Notes `r`'s error when it is fd exhaustion; passes `r` on.
    pub(crate) fn note<T>(&self, path: &Path, r: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &r {
            if let Some(code) = e.raw_os_error().filter(|_| is_fd_exhaustion(e)) {
                self.exhausted
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get_or_insert_with(|| (path.to_owned(), code));
            }
        }
        r
    }

    /// The first exhaustion seen, as an error.
    pub(crate) fn exhausted(&self) -> Option<ReadError> {
        let first = self
            .exhausted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        first.map(|(path, code)| ReadError::FdExhausted {
            path,
            source: io::Error::from_raw_os_error(code),
        })
    }
}

impl HostFs for Watchful<'_> {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.note(path, self.fs.read(path))
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.note(path, self.fs.read_link(path))
    }

    fn list(&self, path: &Path) -> io::Result<Vec<String>> {
        self.note(path, self.fs.list(path))
    }

    fn inode(&self, path: &Path) -> io::Result<u64> {
        self.note(path, self.fs.inode(path))
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        self.note(path, self.fs.write(path, value))
    }
}
