//! What the vhost-limits and user-limits endpoints share: a limit's value from a PUT body, and
//! RabbitMQ's refusal of a name it does not know (the names themselves are the core's).

use axum::body::Bytes;
use serde::Deserialize;
use warren_broker::{erlang_term, UnknownLimit};

use super::body;
use super::error::ApiError;

#[derive(Deserialize)]
struct LimitBody {
    value: serde_json::Value,
}

/// Whose limits a request sets: RabbitMQ validates them as different parameters and words
/// the refusals differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// `vhost-limits` (the parameter RabbitMQ calls `limits`).
    Vhost,
    /// `user-limits`.
    User,
}

impl Scope {
    fn refusal(self, text: String) -> ApiError {
        match self {
            Scope::Vhost => ApiError::BadRequest(format!("Validation failed\n\n{text}\n")),
            Scope::User => ApiError::BadRequest(text),
        }
    }

    fn parameter(self) -> &'static str {
        match self {
            Scope::Vhost => "limits",
            Scope::User => "user-limits",
        }
    }
}

/// The value of the limit `name` (one of `names`) in a PUT body: None for a negative one (no
/// limit, as RabbitMQ).
pub(super) fn value(
    bytes: &Bytes,
    name: &str,
    names: &[&str],
    scope: Scope,
) -> Result<Option<u64>, ApiError> {
    let body: LimitBody = body::json_requiring(bytes, &["value"])?;
    let shown = erlang_term(&body.value);
    if !names.contains(&name) {
        let key = erlang_term(&serde_json::Value::String(name.to_owned()));
        return Err(scope.refusal(format!("Unrecognised terms [{{{key},{shown}}}] in {}", scope.parameter())));
    }
    let n = body
        .value
        .as_i64()
        .ok_or_else(|| scope.refusal(format!("{name} should be a number, actually was {shown}")))?;
    Ok(u64::try_from(n).ok())
}

/// RabbitMQ's refusal of a limit name it does not know.
pub(super) fn unknown(e: UnknownLimit) -> ApiError {
    ApiError::BadRequest(format!("Validation failed\n\n[{{<<\"{}\">>,...}}] are not recognised limits", e.0))
}
