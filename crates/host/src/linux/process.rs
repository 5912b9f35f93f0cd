//! Running a helper program (`virsh`, `ethtool`) to its end, within a time limit.

use std::io::{self, Read};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a finished program said.
pub(crate) struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Runs `cmd` (standard input closed) and waits for it at most `timeout`: past that it is
/// killed and the call fails with `ETIMEDOUT`. The helpers run here print a few lines, read
/// once they exit.
pub(crate) fn run_bounded(mut cmd: Command, timeout: Duration) -> io::Result<Finished> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let (mut stdout, mut stderr) = (String::new(), String::new());
            if let Some(mut o) = child.stdout.take() {
                o.read_to_string(&mut stdout)?;
            }
            if let Some(mut e) = child.stderr.take() {
                e.read_to_string(&mut stderr)?;
            }
            return Ok(Finished {
                status,
                stdout,
                stderr,
            });
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::from_raw_os_error(libc::ETIMEDOUT));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
