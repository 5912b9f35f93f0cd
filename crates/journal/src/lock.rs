//! One writer per journal: the daemon holds an exclusive lock for as long as its `Journal` is
//! open, so a second daemon on the same file is refused at once instead of interleaving its
//! rows (duplicate observations, a cursor moving back and forth) with the first one's.
//!
//! # Design
//!
//! The lock is `flock(LOCK_EX | LOCK_NB)` on a file beside the journal, `<journal>.lock`
//! (`/var/lib/vfguard/journal.db.lock`), holding the holder's pid as text for the refusal
//! message. Not on the database file itself, because SQLite locks that file (and `-shm`) with
//! POSIX `fcntl` record locks:
//!
//! - POSIX locks belong to the process, not to the descriptor: closing *any* descriptor of the
//!   database file releases every lock SQLite holds on it. A descriptor of our own on the
//!   journal would have to outlive the connection exactly, or silently break SQLite's locking
//!   (SQLite works around this only for the descriptors it opens itself).
//! - On NFS, Linux emulates `flock` with a whole-file `fcntl` lock, which would collide with
//!   SQLite's byte-range locks: readers would be locked out. On a file of its own the lock never
//!   meets SQLite's.
//! - `flock` belongs to the open file description: a second `Journal::open` in the same process
//!   is refused too (what the tests check), and the kernel releases the lock when the holder
//!   dies, `kill -9` included, so a crash never leaves a stale lock behind. The file itself stays
//!   (it is never deleted: removing it while another process has it open would let two
//!   processes each lock a different inode).
//!
//! Readers (`Journal::open_read_only`, `sqlite3 -readonly`) never look at the lock: SQLite's WAL
//! lets them read beside the writer, and a user who may only read the journal could not open
//! the lock file anyway.
//!
//! # Limitations
//!
//! The lock binds vfguard processes only: `sqlite3` writing to the file by hand is not stopped
//! (SQLite's own locks still keep each transaction whole). The pid is informative: it is the
//! holder's as written when it took the lock, read without a lock of its own, and left out of
//! the message when the file does not hold a number.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};

use crate::error::JournalErrorKind;

/// The most of the lock file read back for the holder's pid (a pid is at most 10 digits).
const PID_READ_MAX: u64 = 32;

/// The exclusive writer lock of one journal, released when dropped (or when the process dies).
#[derive(Debug)]
pub(crate) struct WriterLock {
    file: Flock<File>,
}

impl WriterLock {
    /// The lock file of the journal at `journal`: `<journal>.lock`.
    pub(crate) fn path_for(journal: &Path) -> PathBuf {
        let mut name = journal.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the lock of the journal at `journal`, or says who holds it. Never waits.
    pub(crate) fn acquire(journal: &Path) -> Result<WriterLock, JournalErrorKind> {
        let path = WriterLock::path_for(journal);
        let lock_err = |source| JournalErrorKind::Lock {
            lock: path.clone(),
            source,
        };
        // Not truncated on open: the holder's pid must survive a refused contender.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(OFlag::O_NOFOLLOW.bits())
            .open(&path)
            .map_err(lock_err)?;
        let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                return Err(JournalErrorKind::InUse {
                    pid: holder_pid(&mut file),
                })
            }
            Err((_, errno)) => return Err(lock_err(std::io::Error::from(errno))),
        };
        let lock = WriterLock { file };
        lock.write_pid().map_err(lock_err)?;
        Ok(lock)
    }

    /// Replaces the file's content with this process's pid.
    fn write_pid(&self) -> std::io::Result<()> {
        let mut file: &File = &self.file;
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
    }
}

/// The pid the holder wrote, if the file holds one (it is outside input: anything else is no
/// pid, never an error).
fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(PID_READ_MAX).read_to_string(&mut text).ok()?;
    text.trim().parse().ok().filter(|pid| *pid > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_sits_beside_the_journal() {
        assert_eq!(
            WriterLock::path_for(Path::new("/var/lib/vfguard/journal.db")),
            Path::new("/var/lib/vfguard/journal.db.lock")
        );
    }

    #[test]
    fn a_held_lock_names_its_holder_and_a_released_one_is_taken_again() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal.db");
        let first = WriterLock::acquire(&journal).unwrap();
        let text = std::fs::read_to_string(WriterLock::path_for(&journal)).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        match WriterLock::acquire(&journal) {
            Err(JournalErrorKind::InUse { pid }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
        drop(first);
        let again = WriterLock::acquire(&journal).unwrap();
        drop(again);
    }

    #[test]
    fn a_lock_file_without_a_pid_still_refuses_without_naming_one() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal.db");
        let _held = WriterLock::acquire(&journal).unwrap();
        std::fs::write(WriterLock::path_for(&journal), "not a pid\n").unwrap();
        match WriterLock::acquire(&journal) {
            Err(JournalErrorKind::InUse { pid }) => assert_eq!(pid, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_symlink_in_place_of_the_lock_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal.db");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), WriterLock::path_for(&journal))
            .unwrap();
        assert!(matches!(
            WriterLock::acquire(&journal),
            Err(JournalErrorKind::Lock { .. })
        ));
        assert!(!dir.path().join("elsewhere").exists());
    }
}
