//! The daemon's side of the fleet (docs/fleet.md): the publisher started in a thread of its own
//! with its own runtime (its journal reads never hold up the loop or the API), and what the loop
//! does with its progress: the acknowledged cursor written into the journal, the metrics.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use vfguard_fleet::publish::{self, Progress, PublishConfig};
use vfguard_fleet::Subjects;
use vfguard_model::Topology;

use crate::config::FleetConfig;

/// A running publisher.
pub struct Fleet {
    /// How far it got (shared with the loop and the metrics).
    pub progress: Arc<Progress>,
    thread: Option<JoinHandle<()>>,
}

impl Fleet {
    /// Starts publishing `journal` as `cfg` says; `topology` gives the host map in use.
    pub fn start(
        cfg: &FleetConfig,
        journal: PathBuf,
        topology: impl Fn() -> Option<Arc<Topology>> + Send + 'static,
    ) -> anyhow::Result<Fleet> {
        let host = match &cfg.host {
            Some(h) => h.clone(),
            None => read_trimmed("/proc/sys/kernel/hostname")
                .context("fleet: the hostname could not be read; set fleet.host")?,
        };
        let subjects = Subjects::new(&cfg.site, &host)?;
        let mut pcfg = PublishConfig::new(&cfg.url, subjects, journal);
        pcfg.version = env!("CARGO_PKG_VERSION").to_owned();
        pcfg.kernel = read_trimmed("/proc/sys/kernel/osrelease").ok();
        pcfg.heartbeat_every = Duration::from_millis(cfg.heartbeat_ms);
        pcfg.max_backlog = cfg.max_backlog;
        let progress = Arc::new(Progress::default());
        let p = progress.clone();
        tracing::info!(url = %cfg.url, site = %cfg.site, host = %host, "publishing to the fleet");
        let thread = std::thread::Builder::new()
            .name("vfguard-fleet".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("fleet: no runtime: {e}; not publishing");
                        return;
                    }
                };
                rt.block_on(publish::run(pcfg, p, topology, crate::pace::wall_ms));
            })
            .context("starting the fleet publisher")?;
        Ok(Fleet {
            progress,
            thread: Some(thread),
        })
    }

    /// Publishes what is left (one last pass, at most 5 s) and stops.
    pub fn stop(mut self) {
        self.progress.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.progress.stop.store(true, Ordering::Release);
    }
}

fn read_trimmed(path: &str) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {path}"))?
        .trim()
        .to_owned())
}
