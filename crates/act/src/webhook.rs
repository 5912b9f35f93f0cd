//! Notifications by webhook: a JSON POST per notify action, delivered by a background thread
//! with a timeout and retries with exponential backoff, so a slow or dead receiver never holds
//! up the agent's loop. A full queue drops the notification and counts it.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use vfguard_model::Action;

use crate::Notifier;

/// Delivery counters.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Delivered (2xx).
    pub delivered: AtomicU64,
    /// Given up after every retry.
    pub failed: AtomicU64,
    /// Dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// How to reach the receiver.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// First backoff (doubled each retry).
    pub backoff: Duration,
    /// Notifications waiting at most.
    pub queue: usize,
}

/// The JSON body sent for a notify action.
pub fn body(a: &Action) -> serde_json::Value {
    serde_json::json!({
        "source": "vfguard",
        "incident": a.incident.0,
        "action_id": a.id.0,
        "function": a.function.to_string(),
        "pf": a.pf.map(|p| p.to_string()),
        "vf": a.vf.map(|v| v.0),
        "owner": a.owner.as_ref().map(|o| serde_json::json!({"kind": o.kind.as_str(), "name": o.name, "id": o.id})),
        "rule": a.rule.to_string(),
        "at_ms": a.at,
    })
}

/// A notifier that POSTs to a webhook from a background thread.
pub struct WebhookNotifier {
    tx: SyncSender<serde_json::Value>,
    /// Delivery counters.
    pub stats: Arc<WebhookStats>,
}

impl WebhookNotifier {
    /// Starts the delivery thread.
    pub fn start(cfg: WebhookConfig) -> io::Result<WebhookNotifier> {
        let (tx, rx) = sync_channel(cfg.queue.max(1));
        let stats = Arc::new(WebhookStats::default());
        let s = stats.clone();
        std::thread::Builder::new()
            .name("vfguard-webhook".into())
            .spawn(move || deliver(&cfg, &rx, &s))?;
        Ok(WebhookNotifier { tx, stats })
    }
}

fn deliver(cfg: &WebhookConfig, rx: &Receiver<serde_json::Value>, stats: &WebhookStats) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(cfg.timeout))
        .http_status_as_error(true)
        .build()
        .into();
    while let Ok(body) = rx.recv() {
        let mut wait = cfg.backoff;
        let mut ok = false;
        for attempt in 0..=cfg.retries {
            if attempt > 0 {
                std::thread::sleep(wait);
                wait = wait.saturating_mul(2);
            }
            let text = body.to_string();
            match agent
                .post(&cfg.url)
                .header("content-type", "application/json")
                .send(text.as_bytes())
            {
                Ok(_) => {
                    ok = true;
                    break;
                }
                Err(e) => tracing::warn!(
                    url = %cfg.url,
                    attempt = attempt + 1,
                    "webhook attempt failed: {e}"
                ),
            }
        }
        let counter = if ok { &stats.delivered } else { &stats.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Notifier for WebhookNotifier {
    fn notify(&self, a: &Action) -> io::Result<()> {
        match self.tx.try_send(body(a)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                Err(io::Error::from_raw_os_error(libc::EAGAIN))
            }
            Err(TrySendError::Disconnected(_)) => Err(io::Error::from_raw_os_error(libc::EPIPE)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use vfguard_model::{ActionId, ActionKind, IncidentId};

    #[test]
    fn the_body_carries_the_rule_as_the_sentence_it_always_was() {
        let a = Action {
            id: ActionId(9),
            incident: IncidentId(4),
            function: "0000:3c:00.2".parse().unwrap(),
            pf: None,
            pf_netdev: None,
            vf: None,
            owner: None,
            kind: ActionKind::Notify,
            rule: vfguard_model::RuleRef::StillUncontained { faults: 12 },
            dry_run: false,
            at: 5,
        };
        assert_eq!(
            body(&a),
            serde_json::json!({
                "source": "vfguard",
                "incident": 4,
                "action_id": 9,
                "function": "0000:3c:00.2",
                "pf": null,
                "vf": null,
                "owner": null,
                "rule": "still uncontained: 12 faults since the last notice",
                "at_ms": 5,
            })
        );
    }

    /// A loopback receiver answering with the given statuses in turn; returns the bodies.
    fn receiver(statuses: Vec<u16>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let mut bodies = Vec::new();
            for status in statuses {
                let (mut s, _) = l.accept().unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0u8; len];
                r.read_exact(&mut body).unwrap();
                bodies.push(String::from_utf8(body).unwrap());
                write!(
                    s,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                )
                .unwrap();
            }
            bodies
        });
        (url, h)
    }

    #[test]
    fn posts_json_and_retries_after_a_server_error() {
        let (url, h) = receiver(vec![500, 200]);
        let n = WebhookNotifier::start(WebhookConfig {
            url,
            timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(10),
            queue: 8,
        })
        .unwrap();
        let a = Action {
            id: ActionId(7),
            incident: IncidentId(3),
            function: "0000:3c:00.2".parse().unwrap(),
            pf: None,
            pf_netdev: None,
            vf: None,
            owner: None,
            kind: ActionKind::Notify,
            rule: vfguard_model::RuleRef::Rule("mdd".into()),
            dry_run: false,
            at: 5,
        };
        n.notify(&a).unwrap();
        let bodies = h.join().unwrap();
        assert_eq!(bodies.len(), 2, "retried once");
        let v: serde_json::Value = serde_json::from_str(&bodies[1]).unwrap();
        assert_eq!(
            (
                v["incident"].as_u64(),
                v["function"].as_str(),
                v["rule"].as_str()
            ),
            (Some(3), Some("0000:3c:00.2"), Some("mdd"))
        );
        for _ in 0..200 {
            if n.stats.delivered.load(Ordering::Relaxed) == 1 {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("not counted as delivered");
    }
}
