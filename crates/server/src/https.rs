//! Serves the management API over TLS (https), with the certificate of the [tls] settings: each
//! accepted socket gets its own task that runs the handshake (bounded, as amqps's) and then
//! serves HTTP/1 on the session, so a slow or silent client holds up no one else.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::backoff::AcceptBackoff;
use crate::tls::ReloadableTls;

/// How long a client gets to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts on `listener` until the runtime stops.
pub async fn serve(listener: TcpListener, app: Router, tls: Arc<ReloadableTls>) {
    let mut backoff = AcceptBackoff::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                backoff.succeeded();
                accepted
            }
            Err(error) => {
                // Out of file descriptors, most likely: wait for some to close, as AMQP's loop does.
                let after = backoff.failed(std::time::Instant::now());
                if after.log.is_some() {
                    tracing::warn!(%error, "management (https) accept failed");
                }
                tokio::time::sleep(after.pause).await;
                continue;
            }
        };
        let (app, tls) = (app.clone(), tls.clone());
        tokio::spawn(async move {
            let Some(secured) = crate::tls::handshake(&tls, stream, HANDSHAKE_TIMEOUT).await else { return };
            // The API reads the peer's address (loopback-only users) as axum's ConnectInfo.
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(request)
                });
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(secured.stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, %peer, "management (https) connection ended with an error");
            }
        });
    }
}
