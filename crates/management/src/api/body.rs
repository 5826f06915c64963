//! Request bodies: JSON as RabbitMQ's API takes it, with its `bad_request` / `not_json`
//! refusals, and the 201-or-204 answer of a PUT.

use axum::body::Bytes;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Decodes a JSON body; an empty body is an empty object.
pub(super) fn json<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    json_requiring(bytes, &[])
}

/// The body as a JSON object: anything else (not JSON, or JSON of another kind) is RabbitMQ's
/// `not_json`.
fn object(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    match serde_json::from_slice(bytes) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        _ => Err(ApiError::BadRequest("not_json".to_owned())),
    }
}

/// Decodes a JSON body that must have each of `keys` (RabbitMQ's `with_decode`): the missing
/// ones are refused together, as RabbitMQ lists them (`[{key_missing,write},{key_missing,read}]`).
pub(super) fn json_requiring<T: DeserializeOwned>(bytes: &Bytes, keys: &[&str]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    let value = object(bytes)?;
    let missing: Vec<String> = keys
        .iter()
        .filter(|k| value.get(**k).is_none_or(serde_json::Value::is_null))
        .map(|k| format!("{{key_missing,{k}}}"))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::BadRequest(format!("[{}]", missing.join(","))));
    }
    serde_json::from_value(value).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// A PUT's answer: 201 when it created the object, 204 when it changed an existing one.
pub(super) fn put_status(existed: bool) -> StatusCode {
    if existed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    }
}

/// Tags as RabbitMQ's API takes them: a list, or a comma-separated string.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(untagged)]
pub(super) enum Tags {
    /// `["a", "b"]`.
    List(Vec<String>),
    /// `"a,b"`.
    Text(String),
    /// Absent.
    #[default]
    None,
}

impl Tags {
    pub(super) fn into_vec(self) -> Vec<String> {
        match self {
            Tags::List(tags) => tags.into_iter().filter(|t| !t.is_empty()).collect(),
            Tags::Text(text) => {
                text.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
            }
            Tags::None => Vec::new(),
        }
    }
}
