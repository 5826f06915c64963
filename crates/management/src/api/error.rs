//! API errors as RabbitMQ's management plugin reports them: a status code and a JSON body
//! `{"error": ..., "reason": ...}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use warren_broker::BrokerError;

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No credentials (401 with a Basic challenge and no body).
    #[error("no credentials")]
    NoCredentials,
    /// Wrong credentials (401 with a Basic challenge).
    #[error("Login failed")]
    LoginFailed,
    /// A user without a management tag, or without the tag the request needs (401).
    #[error("{0}")]
    NotAuthorised(&'static str),
    /// Nothing at that path (404).
    #[error("Not Found")]
    NotFound,
    /// The request cannot be carried out as sent (400, RabbitMQ's `bad_request`).
    #[error("{0}")]
    BadRequest(String),
    /// The broker refused the change (400 with its reason).
    #[error("{0}")]
    Refused(String),
    /// The method is not one this path takes (405).
    #[error("Method Not Allowed")]
    MethodNotAllowed,
    /// The broker failed (500).
    #[error("{0}")]
    Internal(String),
    /// A refusal RabbitMQ words with its own `error` and a `reason` that need not be text
    /// (`["no_such_user", "u"]`).
    #[error("{error}: {reason}")]
    Custom {
        /// The status code.
        status: StatusCode,
        /// The `error` field.
        error: &'static str,
        /// The `reason` field.
        reason: Value,
    },
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::NoCredentials | ApiError::LoginFailed | ApiError::NotAuthorised(_) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) | ApiError::Refused(_) => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Custom { status, .. } => *status,
        }
    }

    /// 400 with RabbitMQ's `error` and `reason`.
    pub(crate) fn bad_request_as(error: &'static str, reason: impl Into<Value>) -> ApiError {
        ApiError::Custom { status: StatusCode::BAD_REQUEST, error, reason: reason.into() }
    }

    /// 404 `{"error": "not_found", "reason": ...}`: what RabbitMQ answers when an operation
    /// names a vhost, queue or exchange that is not there (rather than the path's own object).
    pub(crate) fn not_found_as(reason: impl Into<Value>) -> ApiError {
        ApiError::Custom { status: StatusCode::NOT_FOUND, error: "not_found", reason: reason.into() }
    }

    /// `vhost_not_found` (404), for a change in a vhost that does not exist.
    pub(crate) fn vhost_not_found() -> ApiError {
        ApiError::not_found_as("vhost_not_found")
    }

    fn error(&self) -> &'static str {
        match self {
            ApiError::NoCredentials | ApiError::LoginFailed => "not_authorized",
            ApiError::NotAuthorised(_) => "not_authorised",
            ApiError::NotFound => "Object Not Found",
            ApiError::BadRequest(_) | ApiError::Refused(_) => "bad_request",
            ApiError::MethodNotAllowed => "Method Not Allowed",
            ApiError::Internal(_) => "internal_error",
            ApiError::Custom { error, .. } => error,
        }
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> ApiError {
        match e {
            BrokerError::VhostNotFound(_)
            | BrokerError::UserNotFound(_)
            | BrokerError::QueueNotFound { .. }
            | BrokerError::ExchangeNotFound { .. } => ApiError::NotFound,
            BrokerError::Storage(text) => ApiError::Internal(text),
            other => ApiError::Refused(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Without credentials RabbitMQ answers the challenge alone, with an empty body.
        if self == ApiError::NoCredentials {
            let mut response = StatusCode::UNAUTHORIZED.into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"RabbitMQ Management\""),
            );
            return response;
        }
        let reason = match &self {
            ApiError::Custom { reason, .. } => reason.clone(),
            other => Value::String(other.to_string()),
        };
        let body = json!({"error": self.error(), "reason": reason});
        let mut response = (self.status(), Json(body)).into_response();
        if self == ApiError::LoginFailed {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"RabbitMQ Management\""),
            );
        }
        response
    }
}
