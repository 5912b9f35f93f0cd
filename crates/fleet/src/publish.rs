//! Publishing the outbox to JetStream, in its own thread: connect (retrying), make sure the
//! stream exists, then publish whatever the journal committed after the cursor, each message
//! acknowledged before the cursor passes it; a heartbeat every `heartbeat_every`.
//!
//! The journal is read through a read-only connection of its own (beside the daemon's writer).
//! The acknowledged cursor is shared ([`Progress`]): the daemon's loop writes it into the
//! journal (`Journal::set_cursor("fleet", ..)`), so a restart resumes there.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use vfguard_journal::{IncidentFilter, Journal};
use vfguard_model::{Millis, Topology};

use crate::error::FleetError;
use crate::event::Heartbeat;
use crate::outbox::{Message, Outbox};
use crate::subject::{Subjects, ALL, STREAM};

/// The journal's cursor for the fleet.
pub const CURSOR: &str = "fleet";

/// How an agent publishes.
#[derive(Debug, Clone)]
pub struct PublishConfig {
    /// The NATS server (`nats://127.0.0.1:4222`).
    pub url: String,
    /// Where the agent is.
    pub subjects: Subjects,
    /// The journal to publish from.
    pub journal: PathBuf,
    /// A heartbeat this often.
    pub heartbeat_every: Duration,
    /// Look for new journal entries this often.
    pub poll_every: Duration,
    /// The most messages published after an outage; older ones are dropped (and counted).
    pub max_backlog: u64,
    /// The agent's version, for heartbeats.
    pub version: String,
    /// The host's kernel release.
    pub kernel: Option<String>,
}

impl PublishConfig {
    /// Defaults: a heartbeat every 10 s, a look at the journal every 250 ms, at most 100 000
    /// messages caught up after an outage.
    pub fn new(url: &str, subjects: Subjects, journal: PathBuf) -> PublishConfig {
        PublishConfig {
            url: url.to_owned(),
            subjects,
            journal,
            heartbeat_every: Duration::from_secs(10),
            poll_every: Duration::from_millis(250),
            max_backlog: 100_000,
            version: String::new(),
            kernel: None,
        }
    }
}

/// How far publishing got: shared with the daemon (metrics, the journal's cursor).
#[derive(Debug, Default)]
pub struct Progress {
    /// The journal's commit-order number up to which everything is published (or needed no
    /// message).
    pub acked: AtomicU64,
    /// Messages JetStream acknowledged.
    pub published: AtomicU64,
    /// Of those, the ones it had already stored (a re-publish after a restart).
    pub duplicates: AtomicU64,
    /// Messages dropped because the backlog passed `max_backlog`.
    pub dropped: AtomicU64,
    /// Messages waiting when last counted.
    pub backlog: AtomicU64,
    /// Whether the last publish succeeded.
    pub connected: AtomicBool,
    /// Ask the publisher to flush and stop.
    pub stop: AtomicBool,
}

/// The stream's settings: every subject of the fleet, on file, a duplicate window of 10
/// minutes (a restart's re-publish within it is dropped by the server).
pub fn stream_config() -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: STREAM.to_owned(),
        subjects: vec![ALL.to_owned()],
        storage: jetstream::stream::StorageType::File,
        duplicate_window: Duration::from_secs(600),
        max_age: Duration::from_secs(30 * 24 * 3600),
        ..Default::default()
    }
}

/// Connects and makes sure the stream exists.
pub async fn connect(url: &str) -> Result<jetstream::Context, FleetError> {
    let client = async_nats::ConnectOptions::new()
        .name("vfguard")
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|source| FleetError::Connect {
            url: url.to_owned(),
            source,
        })?;
    let js = jetstream::new(client);
    js.get_or_create_stream(stream_config())
        .await
        .map_err(FleetError::jetstream)?;
    Ok(js)
}

/// Publishes one message and waits for JetStream's acknowledgement; `Ok(true)` if it was a
/// duplicate (already stored).
pub async fn publish(js: &jetstream::Context, m: &Message) -> Result<bool, FleetError> {
    let ack = send(js, m).await?.await.map_err(FleetError::jetstream)?;
    Ok(ack.duplicate)
}

/// Sends one message; the future resolves on JetStream's acknowledgement.
pub async fn send(js: &jetstream::Context, m: &Message) -> Result<PublishAckFuture, FleetError> {
    let mut p = PublishMessage::build().payload(m.payload.clone().into());
    if let Some(id) = &m.msg_id {
        p = p.message_id(id);
    }
    js.send_publish(m.subject.clone(), p)
        .await
        .map_err(FleetError::jetstream)
}

/// Runs the publisher until `progress.stop`, then makes one last pass (bounded by 5 s) so
/// that what the agent committed before stopping is published. `topology` gives the host map
/// in use (PF drivers for the messages); `now` the agent's clock.
pub async fn run(
    cfg: PublishConfig,
    progress: Arc<Progress>,
    topology: impl Fn() -> Option<Arc<Topology>>,
    now: impl Fn() -> Millis,
) {
    let mut outbox = Outbox::new(cfg.subjects.clone(), cfg.kernel.clone());
    let mut js: Option<jetstream::Context> = None;
    let mut seeded = false;
    let mut last_heartbeat: Option<tokio::time::Instant> = None;
    let mut backoff = Duration::from_millis(200);
    let mut recovering = true;
    loop {
        let stopping = progress.stop.load(Ordering::Acquire);
        if js.is_none() {
            match tokio::time::timeout(Duration::from_secs(6), connect(&cfg.url)).await {
                Ok(Ok(c)) => {
                    tracing::info!(url = %cfg.url, "fleet: connected to NATS JetStream");
                    js = Some(c);
                    backoff = Duration::from_millis(200);
                }
                Ok(Err(e)) => tracing::warn!("fleet: {e}; retrying in {backoff:?}"),
                Err(_) => tracing::warn!(url = %cfg.url, "fleet: connecting timed out"),
            }
        }
        if let Some(c) = &js {
            if let Some(t) = topology() {
                outbox.set_topology(&t);
            }
            let pass = publish_pass(&cfg, c, &mut outbox, &progress, &mut seeded, recovering);
            let ok = if stopping {
                tokio::time::timeout(Duration::from_secs(5), pass)
                    .await
                    .unwrap_or(Err(FleetError::JetStream("the last pass timed out".into())))
            } else {
                pass.await
            };
            match ok {
                Ok(()) => {
                    recovering = false;
                    progress.connected.store(true, Ordering::Release);
                    let due = last_heartbeat.is_none_or(|t| t.elapsed() >= cfg.heartbeat_every);
                    if due || stopping {
                        if let Err(e) = heartbeat(&cfg, c, &outbox, &progress, now()).await {
                            tracing::warn!("fleet: heartbeat: {e}");
                        }
                        last_heartbeat = Some(tokio::time::Instant::now());
                    }
                }
                Err(FleetError::Journal(e)) => {
                    // The bus is fine; the journal could not be read (a busy moment, a
                    // migration): try again at the next poll.
                    tracing::warn!("fleet: reading the journal: {e}; retrying");
                }
                Err(e) => {
                    tracing::warn!("fleet: publishing: {e}; the journal keeps it, retrying");
                    progress.connected.store(false, Ordering::Release);
                    recovering = true;
                    js = None;
                }
            }
        } else {
            progress.connected.store(false, Ordering::Release);
        }
        if stopping {
            return;
        }
        let wait = if js.is_some() {
            cfg.poll_every
        } else {
            backoff
        };
        backoff = (backoff * 2).min(Duration::from_secs(10));
        let mut slept = Duration::ZERO;
        while slept < wait && !progress.stop.load(Ordering::Acquire) {
            let step = Duration::from_millis(50).min(wait - slept);
            tokio::time::sleep(step).await;
            slept += step;
        }
    }
}

/// One pass: everything committed after the cursor, published in order. After an outage (or
/// at start) the backlog is counted first, and what lies beyond `max_backlog` is dropped.
async fn publish_pass(
    cfg: &PublishConfig,
    js: &jetstream::Context,
    outbox: &mut Outbox,
    progress: &Progress,
    seeded: &mut bool,
    recovering: bool,
) -> Result<(), FleetError> {
    if !cfg.journal.exists() {
        // The agent creates it as it starts: nothing to publish yet.
        return Ok(());
    }
    let journal = Journal::open_read_only(&cfg.journal)?;
    let mut cursor = progress.acked.load(Ordering::Acquire);
    if !*seeded {
        cursor = cursor.max(journal.cursor(CURSOR)?.unwrap_or(0));
        progress.acked.fetch_max(cursor, Ordering::AcqRel);
        if cursor > 0 {
            let open = journal.incidents(&IncidentFilter {
                open_only: true,
                ..IncidentFilter::default()
            })?;
            outbox.seed(&open);
        }
        *seeded = true;
    }
    let mut skip = 0;
    if recovering {
        let pending = count_messages(&journal, cursor, outbox)?;
        progress.backlog.store(pending, Ordering::Release);
        skip = pending.saturating_sub(cfg.max_backlog);
        if skip > 0 {
            tracing::warn!(
                pending,
                dropped = skip,
                "fleet: the backlog passed its bound; the oldest messages are dropped (the journal keeps them)"
            );
        }
    }
    // Sent in order, acknowledged in windows of up to 256 (JetStream keeps a subject's order
    // per connection); the cursor moves past a message only once it is acknowledged.
    let mut window: Vec<(u64, PublishAckFuture)> = Vec::new();
    for entry in journal.outbox_after(cursor) {
        let entry = entry?;
        let seq = entry.seq();
        match outbox.message(&entry)? {
            Some(_) if skip > 0 => {
                skip -= 1;
                progress.dropped.fetch_add(1, Ordering::AcqRel);
                progress.acked.fetch_max(seq, Ordering::AcqRel);
            }
            Some(m) => {
                window.push((seq, send(js, &m).await?));
                if window.len() >= 256 {
                    settle(&mut window, progress).await?;
                }
            }
            None if window.is_empty() => {
                progress.acked.fetch_max(seq, Ordering::AcqRel);
            }
            None => {}
        }
    }
    settle(&mut window, progress).await?;
    progress.backlog.store(0, Ordering::Release);
    Ok(())
}

/// Waits for the window's acknowledgements, in order, moving the cursor past each.
async fn settle(
    window: &mut Vec<(u64, PublishAckFuture)>,
    progress: &Progress,
) -> Result<(), FleetError> {
    for (seq, ack) in window.drain(..) {
        let ack = ack.await.map_err(FleetError::jetstream)?;
        progress.published.fetch_add(1, Ordering::AcqRel);
        if ack.duplicate {
            progress.duplicates.fetch_add(1, Ordering::AcqRel);
        }
        progress.acked.fetch_max(seq, Ordering::AcqRel);
    }
    Ok(())
}

/// How many messages the entries after `cursor` make (read through, nothing kept). A scratch
/// outbox counts them, so that counting does not change the real one; it does not know the
/// incidents opened before the cursor, so their later decisions are not counted: a lower bound,
/// off by a few per open incident.
fn count_messages(journal: &Journal, cursor: u64, outbox: &Outbox) -> Result<u64, FleetError> {
    let mut scratch = Outbox::new(outbox.subjects().clone(), None);
    let mut n = 0;
    for entry in journal.outbox_after(cursor) {
        if scratch.message(&entry?)?.is_some() {
            n += 1;
        }
    }
    Ok(n)
}

async fn heartbeat(
    cfg: &PublishConfig,
    js: &jetstream::Context,
    outbox: &Outbox,
    progress: &Progress,
    now: Millis,
) -> Result<(), FleetError> {
    let m = outbox.heartbeat(
        now,
        Heartbeat {
            version: cfg.version.clone(),
            kernel: cfg.kernel.clone(),
            backlog: progress.backlog.load(Ordering::Acquire),
            dropped: progress.dropped.load(Ordering::Acquire),
        },
    )?;
    publish(js, &m).await.map(drop)
}
