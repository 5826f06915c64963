//! Why a policy could not be set or cleared, worded as `rabbitmqctl` reports it.

/// A refused policy change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The policy is invalid; the reason is RabbitMQ's (e.g. `-1 is not a valid message TTL`).
    #[error("Validation failed\n\n{0}")]
    Invalid(String),
    /// A clear of a policy that does not exist.
    #[error("Parameter does not exist")]
    NotFound,
    /// The definitions store failed (the whole text).
    #[error("{0}")]
    Storage(String),
}

impl From<warren_store::definitions::DefinitionsError> for PolicyError {
    fn from(e: warren_store::definitions::DefinitionsError) -> PolicyError {
        PolicyError::Storage(format!("cannot store definitions: {e}"))
    }
}
