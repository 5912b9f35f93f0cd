//! The fleet's errors.

/// What went wrong between an agent, the journal and the bus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// A site or host name cannot be a NATS subject token.
    #[error(
        "{what} {value:?} cannot be part of a NATS subject: {why} (use letters, digits, - and _)"
    )]
    BadToken {
        /// `site` or `host`.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The NATS server could not be reached or refused.
    #[error("NATS at {url}: {source}")]
    Connect {
        /// The server's URL.
        url: String,
        /// The client's error.
        source: async_nats::ConnectError,
    },
    /// A JetStream request (stream, consumer, publish) failed.
    #[error("JetStream: {0}")]
    JetStream(String),
    /// The journal could not be read or its cursor written.
    #[error(transparent)]
    Journal(#[from] vfguard_journal::JournalError),
    /// A message could not be encoded.
    #[error("encoding a fleet message: {0}")]
    Encode(#[from] serde_json::Error),
}

impl FleetError {
    /// A JetStream error, kept as its text (its types differ by request).
    pub fn jetstream(e: impl std::fmt::Display) -> FleetError {
        FleetError::JetStream(e.to_string())
    }
}
