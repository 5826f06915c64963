//! TLS listeners (amqps): their settings, the rustls configuration built from the certificate
//! files and reloaded on SIGHUP, the handshake, and the user name a client certificate gives
//! SASL EXTERNAL. The connection is then served like a plain TCP one.

mod cert_login;
mod handshake;
mod reloadable;
mod server_config;
pub mod settings;

pub use handshake::handshake;
pub use reloadable::{reload_on_sighup, ReloadableTls};
pub use settings::{CertLogin, CertLoginFrom, SanType, TlsConfig, TlsSettings};
