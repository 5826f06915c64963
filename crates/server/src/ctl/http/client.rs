//! A small blocking HTTP/1.1 client for the management API: hyper's connection-level client
//! on a current-thread runtime (hyper is already built for the management server, so this
//! costs no new crate), one connection per request, basic auth, https with a CA file.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::target::BaseUrl;

/// How long connecting may take before the broker counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole request may take (a large definitions import is the slowest).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Nothing answered at the address (refused, no route, unknown host, TLS refused).
    #[error("cannot reach {url}: {cause}")]
    Unreachable { url: String, cause: String },
    /// The connection was made but the answer did not come in time.
    #[error("{url}: no answer within {} s", REQUEST_TIMEOUT.as_secs())]
    TimedOut { url: String },
    /// The connection broke, or what came back was not HTTP.
    #[error("{url}: {cause}")]
    Broken { url: String, cause: String },
    /// The client itself could not be set up (an unreadable CA file).
    #[error("{0}")]
    Setup(String),
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    /// GET, PUT, POST or DELETE.
    pub method: hyper::Method,
    /// The path with its query, from `/api`.
    pub path: String,
    /// A JSON body.
    pub body: Option<Vec<u8>>,
    /// Extra headers (X-Reason).
    pub headers: Vec<(&'static str, String)>,
    /// Credentials other than the client's (authenticate_user checks a user's own).
    pub credentials: Option<(String, String)>,
}

impl Request {
    /// A request without a body.
    pub fn new(method: hyper::Method, path: impl Into<String>) -> Request {
        Request { method, path: path.into(), body: None, headers: Vec::new(), credentials: None }
    }

    /// With a JSON body.
    pub fn json(mut self, body: &serde_json::Value) -> Request {
        self.body = Some(body.to_string().into_bytes());
        self
    }
}

/// A stream hyper can drive: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The client: where, as whom, and the runtime its requests run on.
pub struct HttpClient {
    base: BaseUrl,
    auth: String,
    tls: Option<tokio_rustls::TlsConnector>,
    runtime: tokio::runtime::Runtime,
}

impl HttpClient {
    /// A client for `base`, logging in as `user`; https URLs check the server's certificate
    /// against `cacert`.
    pub fn new(
        base: BaseUrl,
        (user, password): (&str, &str),
        cacert: Option<&Path>,
    ) -> Result<Self, HttpError> {
        let tls = if base.tls { Some(connector(cacert)?) } else { None };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HttpError::Setup(format!("cannot start the runtime: {e}")))?;
        Ok(HttpClient { auth: basic(user, password), base, tls, runtime })
    }

    /// The full URL of `path`, for messages.
    pub fn url(&self, path: &str) -> String {
        self.base.show(path)
    }

    /// Sends `request`; any status is an answer.
    pub fn send(&self, request: &Request) -> Result<Response, HttpError> {
        let url = self.url(&request.path);
        self.runtime.block_on(async {
            match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(request, &url)).await {
                Ok(answer) => answer,
                Err(_) => Err(HttpError::TimedOut { url }),
            }
        })
    }

    async fn connect(&self, url: &str) -> Result<Box<dyn Io>, HttpError> {
        let unreachable = |cause: String| HttpError::Unreachable { url: url.to_owned(), cause };
        let address = (self.base.host.as_str(), self.base.port);
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => {
                return Err(unreachable(format!("no connection within {} s", CONNECT_TIMEOUT.as_secs())))
            }
        };
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else { return Ok(Box::new(tcp)) };
        let name = rustls::pki_types::ServerName::try_from(self.base.host.clone())
            .map_err(|e| unreachable(format!("{e}")))?;
        let stream = tls.connect(name, tcp).await.map_err(|e| unreachable(format!("TLS: {e}")))?;
        Ok(Box::new(stream))
    }

    async fn exchange(&self, request: &Request, url: &str) -> Result<Response, HttpError> {
        let broken = |cause: String| HttpError::Broken { url: url.to_owned(), cause };
        let io = self.connect(url).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(io))
                .await
                .map_err(|e| broken(e.to_string()))?;
        tokio::spawn(connection);
        let auth = match &request.credentials {
            Some((user, password)) => basic(user, password),
            None => self.auth.clone(),
        };
        let host = if self.base.host.contains(':') {
            format!("[{}]", self.base.host)
        } else {
            self.base.host.clone()
        };
        let mut builder = hyper::Request::builder()
            .method(request.method.clone())
            .uri(format!("{}{}", self.base.prefix, request.path))
            .header(HOST, format!("{host}:{}", self.base.port))
            .header(AUTHORIZATION, auth)
            .header(CONTENT_TYPE, "application/json");
        for (name, value) in &request.headers {
            let value = HeaderValue::from_str(value).map_err(|e| broken(format!("header {name}: {e}")))?;
            builder = builder.header(*name, value);
        }
        let body = Full::new(Bytes::from(request.body.clone().unwrap_or_default()));
        let http_request = builder.body(body).map_err(|e| broken(e.to_string()))?;
        let answer = sender.send_request(http_request).await.map_err(|e| broken(e.to_string()))?;
        let status = answer.status().as_u16();
        let body = answer.into_body().collect().await.map_err(|e| broken(e.to_string()))?.to_bytes();
        Ok(Response { status, body })
    }
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn connector(cacert: Option<&Path>) -> Result<tokio_rustls::TlsConnector, HttpError> {
    let config = crate::tls_client::config(cacert).map_err(HttpError::Setup)?;
    Ok(tokio_rustls::TlsConnector::from(config))
}
