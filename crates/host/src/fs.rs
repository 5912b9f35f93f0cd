//! The host's files (sysfs, procfs, /run) under a root directory.
//!
//! Every reader of the machine's state takes a [`HostFs`], so `--root DIR` (a fixture tree, the
//! simulator's tree) stands in for `/`. Paths are given as the host would name them
//! (`/sys/bus/pci/devices/...`); the implementation maps them under its root.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// `EMFILE` and `ENFILE` (include/uapi/asm-generic/errno-base.h): the process's, or the
/// system's, file table is full.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// Whether `e` says file descriptors ran out (`EMFILE`, `ENFILE`): the read failed for want of
/// a descriptor, and says nothing of the file; a reader must not take it for an absent file.
pub fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE))
}

/// Read access (and the few writes actuators need) to the host's pseudo-filesystems.
pub trait HostFs: Send + Sync {
    /// Reads a whole file (sysfs attributes are small).
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Reads a symbolic link's target as written.
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
    /// Lists a directory's entry names, sorted.
    fn list(&self, path: &Path) -> io::Result<Vec<String>>;
    /// The inode of what the path names (symlinks followed).
    fn inode(&self, path: &Path) -> io::Result<u64>;
    /// Writes a value to an attribute.
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
}

/// The real filesystem under a root (`/` on a live host).
#[derive(Debug, Clone)]
pub struct FsRoot {
    root: PathBuf,
}

impl FsRoot {
    /// A view of `root` as `/`.
    pub fn new(root: impl Into<PathBuf>) -> FsRoot {
        FsRoot { root: root.into() }
    }

    /// The live host.
    pub fn live() -> FsRoot {
        FsRoot::new("/")
    }

    /// Whether this is the live host's root.
    pub fn is_live(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a host path lives on disk.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        let rel = path.strip_prefix("/").unwrap_or(path);
        self.root.join(rel)
    }
}

impl HostFs for FsRoot {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(self.resolve(path))
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(self.resolve(path))
    }

    fn list(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(self.resolve(path))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    fn inode(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(self.resolve(path))?.ino())
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        std::fs::write(self.resolve(path), value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/x")).unwrap();
        std::fs::write(dir.path().join("sys/x/a"), "1\n").unwrap();
        std::os::unix::fs::symlink("x", dir.path().join("sys/y")).unwrap();
        let fs = FsRoot::new(dir.path());
        assert_eq!(fs.read(Path::new("/sys/x/a")).unwrap(), "1\n");
        assert_eq!(fs.read(Path::new("/sys/y/a")).unwrap(), "1\n");
        assert_eq!(
            fs.read_link(Path::new("/sys/y")).unwrap(),
            PathBuf::from("x")
        );
        assert_eq!(fs.list(Path::new("/sys")).unwrap(), ["x", "y"]);
        assert!(fs.read(Path::new("/sys/missing")).is_err());
        assert!(!fs.is_live());
    }
}
