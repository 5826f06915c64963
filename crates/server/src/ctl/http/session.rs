//! Requests as the command mapping makes them: an answer's status turned into a typed error
//! that names what was missing or refused, the URL and the API's reason, with the exit status
//! each deserves.

use hyper::Method;
use serde_json::Value;

use super::client::{HttpClient, HttpError, Request, Response};
use crate::exit_code;

/// What sends requests: the HTTP client, or a fake in tests.
pub trait Api {
    /// Sends one request; any status is an answer.
    fn send(&self, request: &Request) -> Result<Response, HttpError>;
    /// The full URL of `path`, for messages.
    fn url(&self, path: &str) -> String;
}

impl Api for HttpClient {
    fn send(&self, request: &Request) -> Result<Response, HttpError> {
        HttpClient::send(self, request)
    }

    fn url(&self, path: &str) -> String {
        HttpClient::url(self, path)
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// No answer (exit status 2).
    #[error("{0}")]
    Http(#[from] HttpError),
    /// 401: wrong credentials, or a user without the tag or permission it takes (exit 3).
    #[error("not authorised: {reason} ({method} {url}: 401)")]
    NotAuthorised { reason: String, method: Method, url: String },
    /// 404 (exit 4).
    #[error("{what} not found ({method} {url}: 404)")]
    NotFound { what: String, method: Method, url: String },
    /// Another error status: the broker refused (400) or failed (exit 1).
    #[error("{reason} ({method} {url}: {status})")]
    Refused { reason: String, status: u16, method: Method, url: String },
    /// Something on this side: an unreadable file, an argument that is not JSON (exit 1).
    #[error("{0}")]
    Local(String),
    /// The command line asks for something that cannot be (an unknown column; exit 64).
    #[error("{0}")]
    Usage(String),
}

impl CtlError {
    /// The process's exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CtlError::Http(HttpError::Setup(_)) => exit_code::FAILED,
            CtlError::Http(_) => exit_code::UNREACHABLE,
            CtlError::NotAuthorised { .. } => exit_code::NOT_AUTHORISED,
            CtlError::NotFound { .. } => exit_code::NOT_FOUND,
            CtlError::Refused { .. } | CtlError::Local(_) => exit_code::FAILED,
            CtlError::Usage(_) => exit_code::USAGE,
        }
    }
}

/// The API's `{"error": ..., "reason": ...}`, or the body as it came.
fn reason(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(json) => match json.get("reason").or_else(|| json.get("error")) {
            Some(Value::String(text)) => text.trim_end().to_owned(),
            Some(other) => other.to_string(),
            None => json.to_string(),
        },
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    }
}

/// Requests with their answers checked.
pub struct Session<'a> {
    api: &'a dyn Api,
}

impl<'a> Session<'a> {
    pub fn new(api: &'a dyn Api) -> Self {
        Session { api }
    }

    /// Sends `request`; a status outside 2xx is an error naming `what` the path is about.
    pub fn call(&self, request: Request, what: &str) -> Result<Response, CtlError> {
        let response = self.api.send(&request)?;
        let url = self.api.url(&request.path);
        let method = request.method;
        match response.status {
            200..=299 => Ok(response),
            401 => Err(CtlError::NotAuthorised { reason: reason(&response.body), method, url }),
            404 => Err(CtlError::NotFound { what: what.to_owned(), method, url }),
            status => Err(CtlError::Refused { reason: reason(&response.body), status, method, url }),
        }
    }

    /// The full URL of `path`, for messages.
    pub fn url(&self, path: &str) -> String {
        self.api.url(path)
    }

    /// Sends `request` and gives back any answer unchecked (health checks answer 503).
    pub fn send(&self, request: &Request) -> Result<Response, CtlError> {
        Ok(self.api.send(request)?)
    }

    /// GET, as JSON.
    pub fn get(&self, path: String, what: &str) -> Result<Value, CtlError> {
        let response = self.call(Request::new(Method::GET, path), what)?;
        serde_json::from_slice(&response.body)
            .map_err(|e| CtlError::Local(format!("the API's answer is not JSON: {e}")))
    }

    /// PUT with a JSON body.
    pub fn put(&self, path: String, body: &Value, what: &str) -> Result<(), CtlError> {
        self.call(Request::new(Method::PUT, path).json(body), what).map(drop)
    }

    /// DELETE.
    pub fn delete(&self, path: String, what: &str) -> Result<(), CtlError> {
        self.call(Request::new(Method::DELETE, path), what).map(drop)
    }

    /// DELETE where nothing there is as good as deleting it (a limit never set).
    pub fn delete_if_there(&self, path: String, what: &str) -> Result<(), CtlError> {
        match self.delete(path, what) {
            Err(CtlError::NotFound { .. }) => Ok(()),
            other => other,
        }
    }
}
