//! The publisher and the reader against a real nats-server with JetStream (Debian's package;
//! `scripts/nats.sh install` puts it there, `scripts/test.sh` runs it first): everything the
//! journal records arrives once, a restart that lost its cursor stores nothing twice, an outage
//! loses nothing, and the backlog after an outage is bounded with the drops counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{incidents, last_seq};

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vfguard_fleet::consume::read_into;
use vfguard_fleet::local_server::{free_port, LocalServer};
use vfguard_fleet::publish::{self, Progress, PublishConfig};
use vfguard_fleet::view::{ReportOptions, View};
use vfguard_fleet::Subjects;
use vfguard_journal::Journal;

/// A nats-server on a free (or given) loopback port, its store in `store`.
fn server(store: &Path, port: Option<u16>) -> LocalServer {
    LocalServer::start(store, port).unwrap_or_else(|e| panic!("{e}"))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs a publisher until `until` holds of its progress (or 20 s), then stops it.
fn publish_until(
    cfg: PublishConfig,
    progress: &Arc<Progress>,
    until: impl Fn(&Progress) -> bool + Send + 'static,
) {
    let p = progress.clone();
    let watcher = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !until(&p) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        p.stop.store(true, Ordering::Release);
    });
    rt().block_on(publish::run(cfg, progress.clone(), || None, || 1));
    watcher.join().unwrap();
}

fn config(url: &str, journal: &Path) -> PublishConfig {
    let mut cfg = PublishConfig::new(url, Subjects::new("lab", "hv-1").unwrap(), journal.into());
    cfg.poll_every = Duration::from_millis(20);
    cfg.version = "test".into();
    cfg
}

/// Reads the stream: the view, and the count of incident messages.
fn read(url: &str) -> (View, u64) {
    rt().block_on(async {
        let js = publish::connect(url).await.unwrap();
        let mut view = View::new();
        read_into(&js, None, &mut view, |_| {}).await.unwrap();
        let stream = js.get_stream("VFGUARD").await.unwrap();
        let mut stream = stream;
        let info = stream.info().await.unwrap();
        (view, info.state.messages)
    })
}

#[test]
fn the_journal_arrives_once_even_when_a_restart_lost_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let nats = server(&dir.path().join("nats"), None);
    let db = dir.path().join("j.db");
    let mut j = Journal::open(&db).unwrap();
    incidents(&mut j, 1, 20);
    let end = last_seq(&j);

    let progress = Arc::new(Progress::default());
    publish_until(config(&nats.url(), &db), &progress, move |p| {
        p.acked.load(Ordering::Acquire) >= end
    });
    assert_eq!(progress.acked.load(Ordering::Acquire), end);
    // 20 incidents × (opened, rule): 40 messages, no duplicate.
    assert_eq!(progress.published.load(Ordering::Acquire), 40);
    assert_eq!(progress.duplicates.load(Ordering::Acquire), 0);
    let (view, stored) = read(&nats.url());
    let report = view.report(ReportOptions::default());
    assert_eq!(report.open.len(), 20);
    assert!(report
        .open
        .iter()
        .all(|i| i.incident.class.as_deref() == Some("mdd")));
    let heartbeats = stored - 40;
    assert!((1..=3).contains(&heartbeats), "{stored}");

    // A restart whose cursor was lost (never written to the journal): everything is published
    // again, and JetStream stores none of it twice (Nats-Msg-Id host:seq).
    let again = Arc::new(Progress::default());
    publish_until(config(&nats.url(), &db), &again, move |p| {
        p.acked.load(Ordering::Acquire) >= end
    });
    assert_eq!(again.duplicates.load(Ordering::Acquire), 40);
    let (_, stored_again) = read(&nats.url());
    assert!(
        stored_again - stored <= 3,
        "only heartbeats are new: {stored} -> {stored_again}"
    );

    // With the cursor in the journal, a restart publishes only what is new.
    j.set_cursor(publish::CURSOR, end).unwrap();
    incidents(&mut j, 21, 2);
    let end = last_seq(&j);
    let third = Arc::new(Progress::default());
    publish_until(config(&nats.url(), &db), &third, move |p| {
        p.acked.load(Ordering::Acquire) >= end
    });
    assert_eq!(third.published.load(Ordering::Acquire), 4);
    assert_eq!(third.duplicates.load(Ordering::Acquire), 0);
}

#[test]
fn nothing_is_lost_while_the_server_is_down_and_the_backlog_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("nats");
    let db = dir.path().join("j.db");
    let mut j = Journal::open(&db).unwrap();
    // The server is down when the agent starts: 10 incidents wait in the journal.
    let port = free_port().unwrap();
    incidents(&mut j, 1, 10);
    let end = last_seq(&j);
    let progress = Arc::new(Progress::default());
    let cfg = config(&format!("nats://127.0.0.1:{port}"), &db);
    let p = progress.clone();
    let publisher = std::thread::spawn(move || {
        rt().block_on(publish::run(cfg, p, || None, || 1));
    });
    std::thread::sleep(Duration::from_millis(800));
    assert!(!progress.connected.load(Ordering::Acquire));
    assert_eq!(progress.acked.load(Ordering::Acquire), 0);
    // It comes up: everything arrives.
    let nats = server(&store, Some(port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while progress.acked.load(Ordering::Acquire) < end {
        assert!(Instant::now() < deadline, "not caught up: {progress:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    progress.stop.store(true, Ordering::Release);
    publisher.join().unwrap();
    assert_eq!(progress.published.load(Ordering::Acquire), 20);
    assert_eq!(progress.dropped.load(Ordering::Acquire), 0);
    let (view, _) = read(&nats.url());
    assert_eq!(view.report(ReportOptions::default()).open.len(), 10);

    // A long outage: 30 more incidents (60 messages) against a bound of 8: the oldest 52 are
    // dropped and counted, the newest 8 published; the journal keeps everything.
    drop(nats);
    incidents(&mut j, 11, 30);
    let end = last_seq(&j);
    let mut cfg = config(&format!("nats://127.0.0.1:{port}"), &db);
    cfg.max_backlog = 8;
    let bounded = Arc::new(Progress::default());
    bounded
        .acked
        .store(progress.acked.load(Ordering::Acquire), Ordering::Release);
    let _nats = server(&store, Some(port));
    publish_until(cfg, &bounded, move |p| {
        p.acked.load(Ordering::Acquire) >= end
    });
    assert_eq!(bounded.dropped.load(Ordering::Acquire), 52);
    assert_eq!(bounded.published.load(Ordering::Acquire), 8);
    assert_eq!(bounded.acked.load(Ordering::Acquire), end);
}
