//! Where the agent's notifications go: the log, always (stderr; journald under systemd), and
//! the configured webhook beside it.

use std::sync::Arc;

use vfguard_act::webhook::{WebhookConfig, WebhookNotifier};
use vfguard_act::Notifier;
use vfguard_model::Action;

/// The log, and the webhook when one is configured (its delivery thread started here).
pub fn notifier(webhook: Option<&WebhookConfig>) -> anyhow::Result<Arc<dyn Notifier>> {
    Ok(match webhook {
        None => Arc::new(LogNotifier),
        Some(w) => Arc::new(LogAndWebhook(WebhookNotifier::start(w.clone())?)),
    })
}

/// The log first, then the webhook.
struct LogAndWebhook(WebhookNotifier);

impl Notifier for LogAndWebhook {
    fn notify(&self, a: &Action) -> std::io::Result<()> {
        LogNotifier.notify(a)?;
        self.0.notify(a)
    }
}

/// Notifications to the log (stderr; journald under systemd).
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn notify(&self, a: &Action) -> std::io::Result<()> {
        let owner = a
            .owner
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), vfguard_model::Owner::label);
        tracing::warn!(
            incident = a.incident.0,
            function = %a.function,
            owner = %owner,
            rule = %a.rule,
            "NOTIFY incident={} function={} owner={owner} rule={:?}",
            a.incident.0,
            a.function,
            a.rule.to_string()
        );
        Ok(())
    }
}
