//! A nats-server with JetStream on a loopback port, for tests and demos (Debian's package:
//! `scripts/nats.sh install`). Killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nats-server.
#[derive(Debug)]
pub struct LocalServer {
    child: Child,
    port: u16,
}

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No nats-server binary.
    #[error("nats-server is not installed (looked in $VFGUARD_NATS_SERVER, $PATH, /usr/sbin): run `sudo scripts/nats.sh install`")]
    NotInstalled,
    /// It could not be run, or did not listen.
    #[error("nats-server on port {port}: {why}")]
    Failed {
        /// The port.
        port: u16,
        /// What went wrong.
        why: String,
    },
}

/// The nats-server binary: `$VFGUARD_NATS_SERVER`, else the first on `$PATH`, else `/usr/sbin`.
pub fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VFGUARD_NATS_SERVER") {
        return Some(p.into());
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
        .map(|d| Path::new(d).join("nats-server"))
        .find(|p| p.is_file());
    found
}

/// A free loopback port (bound, then released).
pub fn free_port() -> Result<u16, StartError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| StartError::Failed {
            port: 0,
            why: e.to_string(),
        })
}

impl LocalServer {
    /// Starts one on `port` (a free one when `None`), storing JetStream's files in `store`, and
    /// waits until it listens (10 s at most).
    pub fn start(store: &Path, port: Option<u16>) -> Result<LocalServer, StartError> {
        let bin = binary().ok_or(StartError::NotInstalled)?;
        let port = match port {
            Some(p) => p,
            None => free_port()?,
        };
        let failed = |why: String| StartError::Failed { port, why };
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| failed(e.to_string()))?;
        let mut server = LocalServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(failed(format!("exited ({status})")));
            }
            if Instant::now() > deadline {
                return Err(failed("did not listen within 10 s".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
