//! Issue 13, item 1: with the daemon's file descriptors exhausted, every sysfs read failed with
//! `EMFILE` and the host map became empty, so culprits were only notified. A read that fails as
//! a whole is now told apart from a host without PFs, and the watcher keeps the last good map,
//! marked stale, until a read succeeds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use vfguard_host::{FsNetns, FsRoot, HostFs, NetnsProbe};
use vfguard_topology::{ReadError, TopologyReader, TopologyWatcher};

/// `EMFILE`, `EIO` (asm-generic).
const EMFILE: i32 = 24;
const EIO: i32 = 5;

/// A fixture host whose file table can run out: once `exhausted`, or after `budget` more calls,
/// every call fails with `errno`.
struct Exhaustible {
    fs: FsRoot,
    exhausted: AtomicBool,
    budget: AtomicUsize,
    errno: i32,
}

impl Exhaustible {
    fn new(root: &Path, errno: i32) -> Arc<Exhaustible> {
        Arc::new(Exhaustible {
            fs: FsRoot::new(root),
            exhausted: AtomicBool::new(false),
            budget: AtomicUsize::new(usize::MAX),
            errno,
        })
    }

    fn check(&self) -> io::Result<()> {
        let left = self.budget.load(Ordering::SeqCst);
        if left == 0 || self.exhausted.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(self.errno));
        }
        self.budget.store(left.saturating_sub(1), Ordering::SeqCst);
        Ok(())
    }
}

impl HostFs for Exhaustible {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.check()?;
        self.fs.read(path)
    }
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.check()?;
        self.fs.read_link(path)
    }
    fn list(&self, path: &Path) -> io::Result<Vec<String>> {
        self.check()?;
        self.fs.list(path)
    }
    fn inode(&self, path: &Path) -> io::Result<u64> {
        self.check()?;
        self.fs.inode(path)
    }
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        self.check()?;
        self.fs.write(path, value)
    }
}

fn reader(fs: &Arc<Exhaustible>) -> TopologyReader {
    let fs: Arc<dyn HostFs> = fs.clone();
    let netns: Arc<dyn NetnsProbe> = Arc::new(FsNetns::new(fs.clone()));
    TopologyReader::new(fs, netns, None)
}

fn sample(dir: &Path) {
    vfguard_topology::fixture::sample_host(dir).unwrap();
}

#[test]
fn fd_exhaustion_after_a_good_read_keeps_the_last_map_marked_stale() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let fs = Exhaustible::new(dir.path(), EMFILE);
    let mut w = TopologyWatcher::new(reader(&fs));
    let (good, changed) = w.refresh();
    assert!(changed && good.stale.is_none());
    assert_eq!(good.pfs.len(), 3);
    assert!(good.pfs.iter().any(|p| !p.vfs.is_empty()));

    fs.exhausted.store(true, Ordering::SeqCst);
    let (t, changed) = w.refresh();
    assert!(!changed, "a failed read changes nothing");
    assert_eq!(t.pfs, good.pfs, "the last good map, not an empty one");
    assert_eq!(t.version, good.version);
    let stale = t.stale.as_ref().expect("marked stale");
    assert!(stale.fd_exhausted, "{stale:?}");
    assert_eq!(stale.failed_reads, 1);
    assert!(
        stale.error.contains("Too many open files"),
        "{}",
        stale.error
    );
    // The cheap probe cannot vouch for the map either: it reads again, and stays stale.
    let (t, _) = w
        .probe(&t)
        .expect("a stale map is read again at every probe");
    assert_eq!(t.pfs, good.pfs);
    assert_eq!(t.stale.as_ref().unwrap().failed_reads, 2);
    let (t, _) = w.probe(&t).expect("and again");
    assert_eq!(t.stale.as_ref().unwrap().failed_reads, 3);

    // Descriptors back: a fresh map, the same version (nothing moved).
    fs.exhausted.store(false, Ordering::SeqCst);
    let (t, changed) = w.probe(&t).expect("read again");
    assert!(!changed);
    assert!(t.stale.is_none());
    assert_eq!((t.pfs.clone(), t.version), (good.pfs.clone(), good.version));
    assert!(w.probe(&t).is_none(), "settled");
}

#[test]
fn exhaustion_midway_through_a_read_fails_the_read_instead_of_shrinking_the_map() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let fs = Exhaustible::new(dir.path(), EMFILE);
    let mut w = TopologyWatcher::new(reader(&fs));
    let (good, _) = w.refresh();
    // The listing succeeds, then the file table fills up a few functions in.
    fs.budget.store(40, Ordering::SeqCst);
    match reader(&fs).try_read() {
        Err(e @ ReadError::FdExhausted { .. }) => assert!(e.is_fd_exhausted()),
        other => panic!("{other:?}"),
    }
    fs.budget.store(40, Ordering::SeqCst);
    let (t, _) = w.refresh();
    assert_eq!(t.pfs, good.pfs);
    assert!(t.stale.is_some_and(|s| s.fd_exhausted));
}

#[test]
fn a_first_read_that_fails_gives_an_empty_map_marked_stale() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let fs = Exhaustible::new(dir.path(), EMFILE);
    fs.exhausted.store(true, Ordering::SeqCst);
    let mut w = TopologyWatcher::new(reader(&fs));
    let (t, changed) = w.refresh();
    assert!(!changed);
    assert!(t.pfs.is_empty());
    assert!(t
        .stale
        .is_some_and(|s| s.fd_exhausted && s.failed_reads == 1));
    // A one-off read (inventory) says why it is empty.
    let t = reader(&fs).read();
    assert!(t.pfs.is_empty() && t.stale.is_none());
    assert!(
        t.warnings[0].starts_with("/sys/bus/pci/devices could not be listed"),
        "{:?}",
        t.warnings
    );
}

#[test]
fn an_unreadable_pci_directory_is_a_failed_read_and_a_missing_one_an_empty_host() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let fs = Exhaustible::new(dir.path(), EIO);
    let mut w = TopologyWatcher::new(reader(&fs));
    let (good, _) = w.refresh();
    fs.exhausted.store(true, Ordering::SeqCst);
    let (t, _) = w.refresh();
    assert_eq!(t.pfs, good.pfs);
    let stale = t.stale.unwrap();
    assert!(!stale.fd_exhausted);
    assert!(
        stale.error.contains("could not be listed"),
        "{}",
        stale.error
    );
    // A host with no PCI bus at all truly has no PFs: an empty map, not a stale one.
    let empty = tempfile::tempdir().unwrap();
    let fs = Exhaustible::new(empty.path(), EMFILE);
    let (t, _) = TopologyWatcher::new(reader(&fs)).refresh();
    assert!(t.pfs.is_empty() && t.stale.is_none());
}
