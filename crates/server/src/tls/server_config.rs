//! Reads the certificate, key and CA files and builds the rustls server configuration TLS
//! listeners hand to each handshake. Every error names the file it is about.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::settings::{TlsConfig, TlsVersion, Verify};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read {}: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{} holds no PEM certificate", file.display())]
    NoCertificate { file: PathBuf },
    #[error("{} is not a valid PEM file: {source}", file.display())]
    BadPem { file: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", file.display())]
    NoKey { file: PathBuf },
    #[error("{} holds a CA certificate that cannot be used: {source}", file.display())]
    BadCa { file: PathBuf, source: rustls::Error },
    #[error("cannot verify client certificates against {}: {source}", file.display())]
    Verifier { file: PathBuf, source: rustls::server::VerifierBuilderError },
    #[error("certificate {} with key {}: {source}", certfile.display(), keyfile.display())]
    CertificateAndKey { certfile: PathBuf, keyfile: PathBuf, source: rustls::Error },
    #[error("TLS versions: {0}")]
    Versions(rustls::Error),
}

/// Builds the server configuration from the files `config` names, reading them now.
pub fn build(config: &TlsConfig) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let chain = read_certificates(&config.certfile)?;
    let key = read_key(&config.keyfile)?;
    // Explicit, so that another crate enabling a second provider cannot make this ambiguous.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = config
        .versions
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(TlsConfigError::Versions)?;
    let builder = match (&config.verify, &config.cacertfile) {
        (Verify::VerifyPeer, Some(cacertfile)) => builder.with_client_cert_verifier(client_verifier(
            cacertfile,
            config.fail_if_no_peer_cert,
            provider,
        )?),
        _ => builder.with_no_client_auth(),
    };
    let server =
        builder.with_single_cert(chain, key).map_err(|source| TlsConfigError::CertificateAndKey {
            certfile: config.certfile.clone(),
            keyfile: config.keyfile.clone(),
            source,
        })?;
    Ok(Arc::new(server))
}

/// Verifies client certificates against the CA bundle; without fail_if_no_peer_cert a client
/// may also present none (and then cannot use EXTERNAL).
fn client_verifier(
    cacertfile: &Path,
    fail_if_no_peer_cert: bool,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for ca in read_certificates(cacertfile)? {
        roots.add(ca).map_err(|source| TlsConfigError::BadCa { file: cacertfile.to_owned(), source })?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = if fail_if_no_peer_cert { builder } else { builder.allow_unauthenticated() };
    builder.build().map_err(|source| TlsConfigError::Verifier { file: cacertfile.to_owned(), source })
}

fn read(file: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(file).map_err(|source| TlsConfigError::Read { file: file.to_owned(), source })
}

/// Every certificate in a PEM file, in order (a leaf and its chain, or a CA bundle).
fn read_certificates(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = read(file)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsConfigError::BadPem { file: file.to_owned(), source })?;
    if certificates.is_empty() {
        return Err(TlsConfigError::NoCertificate { file: file.to_owned() });
    }
    Ok(certificates)
}

/// The first private key in a PEM file.
fn read_key(file: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let pem = read(file)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => TlsConfigError::NoKey { file: file.to_owned() },
        source => TlsConfigError::BadPem { file: file.to_owned(), source },
    })
}
