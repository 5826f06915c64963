//! What the vhost-limits and user-limits endpoints share: a limit's value from a PUT body, and
//! RabbitMQ's refusal of a name it does not know (the names themselves are the core's).

use axum::body::Bytes;
use serde::Deserialize;
use warren_broker::UnknownLimit;

use super::body;
use super::error::ApiError;

#[derive(Deserialize)]
struct LimitBody {
    value: serde_json::Value,
}

/// The limit a `{"value": N}` body sets; a negative N means no limit, as in RabbitMQ.
pub(super) fn value(bytes: &Bytes, name: &str) -> Result<Option<u64>, ApiError> {
    let body: LimitBody = body::json(bytes)?;
    let n = body.value.as_i64().ok_or_else(|| ApiError::BadRequest(format!("{name} must be an integer")))?;
    Ok(u64::try_from(n).ok())
}

/// RabbitMQ's refusal of a limit it does not have.
pub(super) fn unknown(e: UnknownLimit) -> ApiError {
    ApiError::BadRequest(format!("Validation failed\n\n[{{<<\"{}\">>,...}}] are not recognised limits", e.0))
}
