//! Reading the fleet's stream into a [`View`]: an ephemeral pull consumer from the start (or
//! from a time), without acknowledgements, in batches until nothing is pending.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};
use futures_util::StreamExt;

use crate::error::FleetError;
use crate::event::Envelope;
use crate::subject::STREAM;
use crate::view::View;

/// What reading found besides the view.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadStats {
    /// Messages read.
    pub messages: u64,
    /// Messages that were not vfguard's JSON (skipped).
    pub unreadable: u64,
}

/// Reads every message of the stream (from `since`, a Unix time in seconds, when given) into
/// `view`; `progress` is told the count every 10 000 messages.
pub async fn read_into(
    js: &jetstream::Context,
    since: Option<time_since::Since>,
    view: &mut View,
    mut progress: impl FnMut(u64),
) -> Result<ReadStats, FleetError> {
    let stream = js.get_stream(STREAM).await.map_err(FleetError::jetstream)?;
    let deliver_policy = match since {
        None => DeliverPolicy::All,
        Some(s) => DeliverPolicy::ByStartTime {
            start_time: s.into_offset(),
        },
    };
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy,
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .map_err(FleetError::jetstream)?;
    let mut stats = ReadStats::default();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(1000)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .map_err(FleetError::jetstream)?;
        let mut got = 0;
        let mut pending = 0;
        while let Some(m) = batch.next().await {
            let m = m.map_err(FleetError::jetstream)?;
            got += 1;
            pending = m.info().map_or(0, |i| i.pending);
            stats.messages += 1;
            match serde_json::from_slice::<Envelope>(&m.payload) {
                Ok(e) => view.apply(&e),
                Err(_) => stats.unreadable += 1,
            }
            if stats.messages % 10_000 == 0 {
                progress(stats.messages);
            }
        }
        if got == 0 || pending == 0 {
            return Ok(stats);
        }
    }
}

/// A start time for reading.
pub mod time_since {
    /// Seconds since the Unix epoch.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Since(pub i64);

    impl Since {
        pub(crate) fn into_offset(self) -> time::OffsetDateTime {
            time::OffsetDateTime::from_unix_timestamp(self.0)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        }
    }
}
