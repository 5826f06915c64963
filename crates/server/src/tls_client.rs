//! The TLS client side of the command-line tools (`warren ctl --url https://...`, `warren publish`
//! and `warren consume` with `amqps://`): rustls with the ring provider, as the listeners use,
//! trusting the CA certificates of a PEM file. The binary carries no public root store: a
//! broker's certificate is usually signed by its owner's CA, named with `--cacert`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// A client configuration trusting the certificates in `cacert`; why not, as a sentence.
pub fn config(cacert: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let file = cacert.ok_or("a TLS URL needs --cacert FILE (the CA that signed the broker's certificate)")?;
    let pem = std::fs::read(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate.map_err(|e| format!("{}: {e}", file.display()))?;
        roots.add(certificate).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate in it", file.display()));
    }
    // Explicit, so that another crate enabling a second provider cannot make this ambiguous.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
