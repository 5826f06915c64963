//! The TLS settings: the `[tls]` table of the configuration file (and its `--tls-*` flags), named
//! after RabbitMQ's `ssl_options.*`, and where SASL EXTERNAL takes the user name from in a client
//! certificate (RabbitMQ's `ssl_cert_login_*`).

use std::path::PathBuf;

use serde::Deserialize;

/// `[tls]` in the file; every key is also a `--tls-<key>` flag.
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file with the certificate TLS listeners present, followed by its intermediate
    /// certificates if any (RabbitMQ's ssl_options.certfile). Reread on SIGHUP.
    #[arg(long = "tls-certfile", value_name = "FILE")]
    pub certfile: Option<PathBuf>,

    /// PEM file with that certificate's private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC)
    /// (ssl_options.keyfile). Reread on SIGHUP.
    #[arg(long = "tls-keyfile", value_name = "FILE")]
    pub keyfile: Option<PathBuf>,

    /// PEM file with the certificate authorities client certificates are verified against
    /// (ssl_options.cacertfile); needed for verify_peer. Reread on SIGHUP.
    #[arg(long = "tls-cacertfile", value_name = "FILE")]
    pub cacertfile: Option<PathBuf>,

    /// verify_peer: ask clients for a certificate and refuse one the CA bundle does not vouch
    /// for; verify_none: ask for none (ssl_options.verify) [default: verify_none].
    #[arg(long = "tls-verify", value_name = "verify_peer|verify_none")]
    pub verify: Option<Verify>,

    /// With verify_peer, refuse clients that present no certificate
    /// (ssl_options.fail_if_no_peer_cert) [default: false].
    #[arg(long = "tls-fail-if-no-peer-cert", value_name = "BOOL")]
    pub fail_if_no_peer_cert: Option<bool>,

    /// TLS versions accepted, tlsv1.2 and/or tlsv1.3 (ssl_options.versions)
    /// [default: tlsv1.2,tlsv1.3].
    #[arg(long = "tls-versions", value_name = "VERSIONS", value_delimiter = ',')]
    pub versions: Option<Vec<TlsVersion>>,
}

/// ssl_options.verify.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verify {
    /// Clients are asked for a certificate, which must chain to `cacertfile`.
    #[value(name = "verify_peer")]
    VerifyPeer,
    /// Clients are not asked for a certificate (RabbitMQ's default).
    #[default]
    #[value(name = "verify_none")]
    VerifyNone,
}

/// A TLS version, as RabbitMQ names it. Older versions are not offered: rustls does not speak
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "tlsv1.2")]
    #[value(name = "tlsv1.2")]
    Tls12,
    #[serde(rename = "tlsv1.3")]
    #[value(name = "tlsv1.3")]
    Tls13,
}

/// Where EXTERNAL takes the user name from (RabbitMQ's ssl_cert_login_from).
// The variants are RabbitMQ's values, "_name" and all.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertLoginFrom {
    /// The subject's common name (CN); several are joined with ",".
    #[value(name = "common_name")]
    CommonName,
    /// The whole subject, formatted as RabbitMQ does (RFC 4514, e.g. `CN=alice,O=Example`).
    #[value(name = "distinguished_name")]
    DistinguishedName,
    /// A subject alternative name: the `ssl_cert_login_san_index`th of type
    /// `ssl_cert_login_san_type`.
    #[value(name = "subject_alternative_name", alias = "subject_alt_name")]
    #[serde(alias = "subject_alt_name")]
    SubjectAlternativeName,
}

/// The kinds of subject alternative name a user name can come from
/// (RabbitMQ's ssl_cert_login_san_type).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SanType {
    #[default]
    #[value(name = "dns")]
    Dns,
    #[value(name = "ip")]
    Ip,
    #[value(name = "email")]
    Email,
    #[value(name = "uri")]
    Uri,
    #[value(name = "other_name")]
    OtherName,
}

/// Where a certificate's user name is read, resolved.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertLogin {
    CommonName,
    DistinguishedName,
    SubjectAlternativeName { san_type: SanType, index: usize },
}

impl CertLogin {
    /// From the three `ssl_cert_login_*` settings; the default is the common name (RabbitMQ's
    /// is the distinguished name: see docs/tls.md).
    pub fn from_settings(
        from: Option<CertLoginFrom>,
        san_type: Option<SanType>,
        index: Option<usize>,
    ) -> Self {
        match from.unwrap_or(CertLoginFrom::CommonName) {
            CertLoginFrom::CommonName => CertLogin::CommonName,
            CertLoginFrom::DistinguishedName => CertLogin::DistinguishedName,
            CertLoginFrom::SubjectAlternativeName => CertLogin::SubjectAlternativeName {
                san_type: san_type.unwrap_or_default(),
                index: index.unwrap_or(0),
            },
        }
    }
}

/// The TLS settings after checks and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
    pub cacertfile: Option<PathBuf>,
    pub verify: Verify,
    pub fail_if_no_peer_cert: bool,
    pub versions: Vec<TlsVersion>,
    pub cert_login: CertLogin,
}

impl TlsSettings {
    /// Each field from `self` if set, else from `base` (flags over the file).
    pub fn over(self, base: TlsSettings) -> TlsSettings {
        TlsSettings {
            certfile: self.certfile.or(base.certfile),
            keyfile: self.keyfile.or(base.keyfile),
            cacertfile: self.cacertfile.or(base.cacertfile),
            verify: self.verify.or(base.verify),
            fail_if_no_peer_cert: self.fail_if_no_peer_cert.or(base.fail_if_no_peer_cert),
            versions: self.versions.or(base.versions),
        }
    }

    /// None when TLS is not configured (no certificate nor key); an error for settings that
    /// cannot work together.
    pub fn resolve(self, cert_login: CertLogin) -> anyhow::Result<Option<TlsConfig>> {
        let (certfile, keyfile) = match (self.certfile, self.keyfile) {
            (None, None) => {
                if self.cacertfile.is_some() || self.verify.is_some() || self.versions.is_some() {
                    anyhow::bail!("the [tls] settings need tls.certfile and tls.keyfile");
                }
                return Ok(None);
            }
            (Some(cert), Some(key)) => (cert, key),
            (Some(_), None) => anyhow::bail!("tls.certfile needs tls.keyfile"),
            (None, Some(_)) => anyhow::bail!("tls.keyfile needs tls.certfile"),
        };
        let verify = self.verify.unwrap_or_default();
        let fail_if_no_peer_cert = self.fail_if_no_peer_cert.unwrap_or(false);
        if verify == Verify::VerifyPeer && self.cacertfile.is_none() {
            anyhow::bail!(
                "tls.verify = \"verify_peer\" needs tls.cacertfile to verify client certificates against"
            );
        }
        if fail_if_no_peer_cert && verify == Verify::VerifyNone {
            anyhow::bail!("tls.fail_if_no_peer_cert = true needs tls.verify = \"verify_peer\"");
        }
        let mut versions = self.versions.unwrap_or_else(|| vec![TlsVersion::Tls12, TlsVersion::Tls13]);
        versions.sort_by_key(|v| *v as u8);
        versions.dedup();
        if versions.is_empty() {
            anyhow::bail!("tls.versions needs at least one of tlsv1.2, tlsv1.3");
        }
        Ok(Some(TlsConfig {
            certfile,
            keyfile,
            cacertfile: self.cacertfile,
            verify,
            fail_if_no_peer_cert,
            versions,
            cert_login,
        }))
    }
}
