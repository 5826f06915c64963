//! The TLS handshake of an accepted socket, bounded by the AMQP handshake timeout (a client that
//! connects and sends nothing must not hold a connection forever), and the user name its client
//! certificate gives SASL EXTERNAL.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::cert_login::login_name;
use super::reloadable::ReloadableTls;

/// An established TLS session.
pub struct Secured {
    pub stream: TlsStream<TcpStream>,
    /// The user named by the client's certificate, which rustls verified (clients are asked for
    /// one only with verify_peer); None without a certificate or a name in it.
    pub certificate_login: Option<String>,
}

/// Runs the handshake within `limit` (zero: no limit). A failure or timeout is logged and
/// gives None: the socket is dropped.
pub async fn handshake(tls: &ReloadableTls, stream: TcpStream, limit: Duration) -> Option<Secured> {
    let accept = tls.acceptor().accept(stream);
    let result = if limit.is_zero() {
        accept.await
    } else {
        match tokio::time::timeout(limit, accept).await {
            Ok(result) => result,
            Err(_) => {
                let timeout_ms = limit.as_millis() as u64;
                tracing::warn!(timeout_ms, "closing connection: TLS handshake not completed in time");
                return None;
            }
        }
    };
    let stream = match result {
        Ok(stream) => stream,
        // A client gone before finishing the handshake is routine (a TCP health check, most
        // likely), as a plain connection closed before sending anything is.
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            tracing::info!("client closed the connection during the TLS handshake");
            return None;
        }
        Err(error) => {
            tracing::warn!(%error, "closing connection: TLS handshake failed");
            return None;
        }
    };
    let (_, session) = stream.get_ref();
    let certificate_login = session.peer_certificates().and_then(|chain| chain.first()).and_then(|leaf| {
        let name = login_name(leaf, tls.cert_login());
        if name.is_none() {
            tracing::warn!(
                login_from = ?tls.cert_login(),
                "the client certificate names no user: EXTERNAL is not offered"
            );
        }
        name
    });
    let version = session.protocol_version().map(|v| format!("{v:?}"));
    tracing::debug!(version, certificate_login, "TLS handshake completed");
    Some(Secured { stream, certificate_login })
}
