//! Events per second through the bus (issue 15 item 2), against a local nats-server with
//! JetStream on file storage (Debian's 2.9; `scripts/nats.sh install`):
//!
//! - **core NATS** (the baseline): fire-and-forget publishes, one flush at the end: nothing
//!   stored, nothing acknowledged;
//! - **JetStream, one ack at a time**: each publish waits for its acknowledgement;
//! - **the agent's publisher** (`publish::run`): from a journal of incidents, each message with
//!   its `Nats-Msg-Id`, acknowledged in windows of 256, the cursor moved past each: end to end,
//!   SQLite reads included.
//!
//! ```sh
//! cargo bench -p vfguard-fleet --bench bus
//! VFGUARD_BENCH_EVENTS=100000 cargo bench -p vfguard-fleet --bench bus
//! ```

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use async_nats::jetstream;
use vfguard_fleet::local_server::LocalServer;
use vfguard_fleet::publish::{self, Progress, PublishConfig};
use vfguard_fleet::Subjects;
use vfguard_journal::Journal;

fn events() -> u64 {
    std::env::var("VFGUARD_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn row(name: &str, n: u64, took: Duration, baseline: Option<f64>) -> f64 {
    let rate = n as f64 / took.as_secs_f64();
    let ratio = baseline.map_or("1.00 (baseline)".to_owned(), |b| format!("{:.2}", rate / b));
    println!(
        "| {name} | {n} | {:.3} s | {rate:.0} | {ratio} |",
        took.as_secs_f64()
    );
    rate
}

/// A payload the size of an incident message (~600 bytes of JSON).
fn payload() -> Vec<u8> {
    vec![b'x'; 600]
}

fn main() {
    let n = events();
    let dir = tempfile::tempdir().unwrap();
    let server =
        LocalServer::start(&dir.path().join("nats"), None).unwrap_or_else(|e| panic!("{e}"));
    let url = server.url();
    println!("| path | events | time | events/s | vs core NATS |");
    println!("|---|---|---|---|---|");
    let rt = rt();
    let core = rt.block_on(async {
        let client = async_nats::connect(&url).await.unwrap();
        let body: bytes::Bytes = payload().into();
        let t0 = Instant::now();
        for i in 0..n {
            client
                .publish(format!("bench.core.{}", i % 8), body.clone())
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
        row(
            "core NATS publish (no storage, no ack)",
            n,
            t0.elapsed(),
            None,
        )
    });
    rt.block_on(async {
        let js = publish::connect(&url).await.unwrap();
        let body: bytes::Bytes = payload().into();
        let t0 = Instant::now();
        for i in 0..n {
            js.publish(format!("vfguard.v1.bench.seq.{}", i % 8), body.clone())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        row(
            "JetStream, each publish acknowledged before the next",
            n,
            t0.elapsed(),
            Some(core),
        );
        let _ = jetstream::new(async_nats::connect(&url).await.unwrap());
    });
    // The agent's publisher, from a journal: n / 2 incidents make n messages (opened, rule).
    let db = dir.path().join("j.db");
    let mut j = Journal::open(&db).unwrap();
    common::incidents(&mut j, 1, n / 2);
    let end = common::last_seq(&j);
    drop(j);
    let mut cfg = PublishConfig::new(&url, Subjects::new("bench", "hv-1").unwrap(), db);
    cfg.poll_every = Duration::from_millis(5);
    cfg.max_backlog = u64::MAX;
    let progress = Arc::new(Progress::default());
    let p = progress.clone();
    let t0 = Instant::now();
    let watcher = std::thread::spawn(move || {
        while p.acked.load(Ordering::Acquire) < end {
            std::thread::sleep(Duration::from_millis(2));
        }
        let took = t0.elapsed();
        p.stop.store(true, Ordering::Release);
        took
    });
    rt.block_on(publish::run(cfg, progress.clone(), || None, || 0));
    let took = watcher.join().unwrap();
    let published = progress.published.load(Ordering::Acquire);
    assert_eq!(published, n, "every message acknowledged once");
    row(
        "vfguard's publisher: journal → JetStream, msg id, acks in windows of 256",
        published,
        took,
        Some(core),
    );
}
