//! The TLS configuration every handshake starts from, replaced on SIGHUP: the certificate, key
//! and CA files are read again and new handshakes use them, while connections already open keep
//! the session they negotiated. A reload that fails is logged and changes nothing.

use std::sync::Arc;

use parking_lot::RwLock;
use rustls::ServerConfig;
use tokio::signal::unix::{signal, SignalKind};

use super::server_config::{build, TlsConfigError};
use super::settings::{CertLogin, TlsConfig};

/// The TLS listeners' current configuration.
pub struct ReloadableTls {
    settings: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
}

impl ReloadableTls {
    /// Reads the files now: a startup with a bad certificate or key fails, naming the file.
    pub fn load(settings: TlsConfig) -> Result<Self, TlsConfigError> {
        let current = RwLock::new(build(&settings)?);
        Ok(ReloadableTls { settings, current })
    }

    /// Reads the files again; on success new handshakes use them.
    pub fn reload(&self) -> Result<(), TlsConfigError> {
        let fresh = build(&self.settings)?;
        *self.current.write() = fresh;
        Ok(())
    }

    /// What the next handshake uses.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.read().clone())
    }

    /// Where EXTERNAL takes a client certificate's user name from.
    pub fn cert_login(&self) -> CertLogin {
        self.settings.cert_login
    }
}

/// Reloads `tls` on every SIGHUP, for as long as the runtime runs. (SIGHUP is taken over only
/// when TLS is configured: without it, it ends the process as it always did.)
pub fn reload_on_sighup(tls: Arc<ReloadableTls>) -> std::io::Result<()> {
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!(
                    certfile = %tls.settings.certfile.display(),
                    "SIGHUP: TLS certificate files reloaded; new connections use them"
                ),
                Err(error) => tracing::error!(
                    %error,
                    "SIGHUP: TLS certificate files not reloaded; still using the previous ones"
                ),
            }
        }
    });
    Ok(())
}
