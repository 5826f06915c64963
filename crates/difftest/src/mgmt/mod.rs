//! The management HTTP API side of the differential tests: the same requests to RabbitMQ's
//! management plugin and to Warren's API, each answer logged to the transcript as its status
//! line and its JSON body flattened field by field (`render`), with volatile values masked and
//! fields Warren cannot know left out (`masks`). The transcripts are then compared like any
//! other.

pub mod http;
pub mod masks;
pub mod render;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use tokio::time::Instant;

use crate::harness::{Abort, Ctx, Res};
pub use http::segment;
pub use render::View;

/// How long a scenario polls for the statistics of an object to appear (RabbitMQ shows a new
/// object's counters only once its statistics went through the collectors).
pub const STATS_DEADLINE: Duration = Duration::from_secs(10);

/// Pause between two polls (the reference emits statistics every 500 ms in these tests).
const POLL_EVERY: Duration = Duration::from_millis(100);

/// An answer: status, body as JSON when it is JSON, and the raw response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub json: Option<Value>,
    pub raw: http::Response,
}

impl Reply {
    /// The JSON body, or Null.
    pub fn body(&self) -> &Value {
        static NULL: Value = Value::Null;
        self.json.as_ref().unwrap_or(&NULL)
    }

    /// The items of a listing (an array, or the `items` of a page object).
    pub fn items(&self) -> Vec<Value> {
        match self.body() {
            Value::Array(items) => items.clone(),
            other => other.get("items").and_then(Value::as_array).cloned().unwrap_or_default(),
        }
    }
}

/// One request as a scenario describes it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: &'static str,
    pub path: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub view: View,
    /// How the transcript shows the path, when it holds something that differs between the
    /// brokers (a connection's name has its ports).
    pub shown: Option<String>,
    /// Sort the items of an array answer by this key before logging (`mgmt-unordered-lists`).
    pub sort_by: Option<&'static str>,
}

impl Request {
    pub fn new(method: &'static str, path: impl Into<String>) -> Request {
        Request {
            method,
            path: path.into(),
            body: Vec::new(),
            headers: Vec::new(),
            view: View::Full,
            shown: None,
            sort_by: None,
        }
    }

    /// A JSON body.
    pub fn json(mut self, body: &Value) -> Request {
        self.body = body.to_string().into_bytes();
        self.headers.push(("Content-Type".into(), "application/json".into()));
        self
    }

    /// A body sent as is (malformed JSON).
    pub fn raw_body(mut self, body: &str) -> Request {
        self.body = body.as_bytes().to_vec();
        self.headers.push(("Content-Type".into(), "application/json".into()));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn view(mut self, view: View) -> Request {
        self.view = view;
        self
    }

    /// Logs the items of an array answer sorted by `key` (for listings whose order RabbitMQ
    /// leaves to its tables).
    pub fn sorted_by(mut self, key: &'static str) -> Request {
        self.sort_by = Some(key);
        self
    }

    /// Shows the path as `shown` in the transcript.
    pub fn shown(mut self, shown: impl Into<String>) -> Request {
        self.shown = Some(shown.into());
        self
    }
}

/// Who the requests are sent as.
#[derive(Debug, Clone)]
enum Auth {
    None,
    Basic(String, String),
}

/// The management API of the scenario's broker, as one user.
#[derive(Clone)]
pub struct Api {
    cx: Ctx,
    auth: Auth,
}

impl Api {
    /// As guest (an administrator on both brokers).
    pub fn guest(cx: &Ctx) -> Api {
        Api { cx: cx.clone(), auth: Auth::Basic("guest".into(), "guest".into()) }
    }

    pub fn as_user(&self, user: &str, password: &str) -> Api {
        Api { cx: self.cx.clone(), auth: Auth::Basic(user.into(), password.into()) }
    }

    /// Without an `Authorization` header.
    pub fn anonymous(&self) -> Api {
        Api { cx: self.cx.clone(), auth: Auth::None }
    }

    fn addr(&self) -> Res<SocketAddr> {
        self.cx.mgmt_addr().ok_or_else(|| Abort("this broker has no management API address".into()))
    }

    /// Sends the request without logging it.
    pub async fn quiet(&self, req: &Request) -> Res<Reply> {
        let mut headers = req.headers.clone();
        if let Auth::Basic(user, password) = &self.auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            headers.push(("Authorization".into(), format!("Basic {token}")));
        }
        let raw =
            http::request(self.addr()?, req.method, &req.path, &headers, &req.body).await.map_err(Abort)?;
        let json = serde_json::from_slice(&raw.body).ok();
        Ok(Reply { status: raw.status, json, raw })
    }

    /// Sends the request and logs the answer.
    pub async fn call(&self, req: Request) -> Res<Reply> {
        let reply = self.quiet(&req).await?;
        self.log(&req, &reply);
        Ok(reply)
    }

    /// Logs `METHOD PATH -> STATUS`, the headers that carry meaning, then the body.
    pub fn log(&self, req: &Request, reply: &Reply) {
        let shown = req.shown.as_deref().unwrap_or(&req.path);
        let status = masks::status_shown(req.method, shown, reply.status);
        self.cx.log(format!("{} {shown} -> {status}", req.method));
        for name in ["location", "www-authenticate"] {
            if let Some(value) = reply.raw.header(name) {
                self.cx.log(format!("  header {name}: {value}"));
            }
        }
        match &reply.json {
            Some(json) => {
                let mut json = json.clone();
                if let (Some(key), Value::Array(items)) = (req.sort_by, &mut json) {
                    items.sort_by(|a, b| a[key].to_string().cmp(&b[key].to_string()));
                }
                for line in render::lines(&json, req.view) {
                    self.cx.log(line);
                }
            }
            None if reply.raw.body.is_empty() => {}
            None if req.view == View::Status => self.cx.log("  (a body that is not JSON)"),
            None => self.cx.log(format!("  body (not JSON): {}", crate::wire::quote(&reply.raw.body))),
        }
    }

    pub async fn get(&self, path: impl Into<String>) -> Res<Reply> {
        self.call(Request::new("GET", path)).await
    }

    pub async fn put(&self, path: impl Into<String>, body: &Value) -> Res<Reply> {
        self.call(Request::new("PUT", path).json(body)).await
    }

    pub async fn post(&self, path: impl Into<String>, body: &Value) -> Res<Reply> {
        self.call(Request::new("POST", path).json(body)).await
    }

    pub async fn delete(&self, path: impl Into<String>) -> Res<Reply> {
        self.call(Request::new("DELETE", path)).await
    }

    /// Repeats `req` (unlogged) until `ready` holds for the answer or [`STATS_DEADLINE`]
    /// passes, then logs the last answer: what a broker shows once its statistics settled.
    pub async fn poll(&self, req: Request, ready: impl Fn(&Reply) -> bool) -> Res<Reply> {
        let deadline = Instant::now() + STATS_DEADLINE;
        loop {
            let reply = self.quiet(&req).await?;
            if ready(&reply) || Instant::now() >= deadline {
                self.log(&req, &reply);
                return Ok(reply);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Creates a vhost for the scenario (deleted after it unless the scenario does), logged.
    pub async fn vhost(&self, suffix: &str) -> Res<String> {
        let vhost = self.cx.vhost(suffix);
        self.call(Request::new("PUT", format!("/api/vhosts/{}", segment(&vhost)))).await?;
        Ok(vhost)
    }

    /// Deletes a vhost made with [`Api::vhost`], logged.
    pub async fn delete_vhost(&self, vhost: &str) -> Res<Reply> {
        let reply = self.delete(format!("/api/vhosts/{}", segment(vhost))).await?;
        self.cx.forget(vhost);
        Ok(reply)
    }
}

/// Whether a JSON value has every one of `keys` (dotted paths).
pub fn has_keys(value: &Value, keys: &[&str]) -> bool {
    keys.iter().all(|k| k.split('.').try_fold(value, |v, key| v.get(key)).is_some())
}

/// `/api/{kind}/{parts...}` with each part percent-encoded.
pub fn path(kind: &str, parts: &[&str]) -> String {
    let mut out = format!("/api/{kind}");
    for part in parts {
        out.push('/');
        out.push_str(&segment(part));
    }
    out
}
