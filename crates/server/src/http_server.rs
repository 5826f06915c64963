//! Serves the management router on its listeners, plain (http) and TLS (https), with bounds a
//! client cannot talk its way past: at most [`MAX_CONNECTIONS`] at once (beyond that, accepting
//! waits), request headers within the header timeout (a silent or trickling client is dropped),
//! and on https a bounded TLS handshake. Each connection is served by hyper in its own task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::backoff::AcceptBackoff;
use crate::tls::ReloadableTls;

/// Management connections open at once, over every listener (RabbitMQ's web server accepts
/// about as many); the API is for operators and dashboards, not for fleets of clients.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a client gets to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every management connection is served with.
#[derive(Clone)]
pub struct HttpServer {
    app: Router,
    slots: Arc<Semaphore>,
    /// How long a request's headers may take to arrive, also while a kept-alive connection
    /// waits for its next request.
    header_timeout: Duration,
}

impl HttpServer {
    pub fn new(app: Router, header_timeout: Duration) -> HttpServer {
        HttpServer { app, slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)), header_timeout }
    }

    /// Accepts on `listener` until the runtime stops; with `tls`, each connection starts with
    /// the TLS handshake.
    pub async fn serve(self, listener: TcpListener, tls: Option<Arc<ReloadableTls>>) {
        let mut backoff = AcceptBackoff::default();
        loop {
            let Ok(slot) = self.slots.clone().acquire_owned().await else { return };
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => {
                    backoff.succeeded();
                    accepted
                }
                Err(error) => {
                    // Out of file descriptors, most likely: wait for some to close, as the AMQP
                    // listener does.
                    let after = backoff.failed(std::time::Instant::now());
                    if after.log.is_some() {
                        tracing::warn!(%error, "management accept failed");
                    }
                    tokio::time::sleep(after.pause).await;
                    continue;
                }
            };
            let (server, tls) = (self.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    None => server.serve_connection(stream, peer).await,
                    Some(tls) => {
                        if let Some(secured) = crate::tls::handshake(&tls, stream, HANDSHAKE_TIMEOUT).await {
                            server.serve_connection(secured.stream, peer).await;
                        }
                    }
                }
                drop(slot);
            });
        }
    }

    async fn serve_connection<S>(self, stream: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let app = self.app;
        // The API reads the peer's address (loopback-only users) as axum's ConnectInfo.
        let service =
            hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(request)
            });
        let served = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .serve_connection(TokioIo::new(stream), service)
            .await;
        if let Err(error) = served {
            tracing::debug!(%error, %peer, "management connection ended with an error");
        }
    }
}
