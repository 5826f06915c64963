//! The broker address `warren publish` and `warren consume` take:
//! `amqp[s]://[user[:password]@]host[:port][/vhost]`, read as RabbitMQ's clients read it.

use crate::url_parts;

/// A parsed AMQP URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpUrl {
    /// amqps: TLS.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
}

/// A URL that is not one the tools can use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad --url \"{url}\": {why} (expected e.g. amqp://guest:guest@127.0.0.1:5672/%2F)")]
pub struct BadAmqpUrl {
    url: String,
    why: &'static str,
}

impl AmqpUrl {
    /// Defaults: guest/guest, port 5672 (amqps: 5671), vhost "/" (also for an empty path, as
    /// most clients read `amqp://host/`).
    pub fn parse(url: &str) -> Result<AmqpUrl, BadAmqpUrl> {
        let bad = |why| BadAmqpUrl { url: url.to_owned(), why };
        let (tls, rest) = match (url.strip_prefix("amqp://"), url.strip_prefix("amqps://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(bad("it must start with amqp:// or amqps://")),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let path = path.split('?').next().unwrap_or("");
        let decode = |s: &str| url_parts::decode(s).ok_or(bad("bad %-escape"));
        let (user, password, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (decode(user)?, decode(password)?, host_port)
            }
            None => ("guest".to_owned(), "guest".to_owned(), authority),
        };
        let (host, port) = url_parts::split_host_port(host_port).ok_or(bad("bad host or port"))?;
        let vhost = if path.is_empty() { "/".to_owned() } else { decode(path)? };
        let port = port.unwrap_or(if tls { 5671 } else { 5672 });
        Ok(AmqpUrl { tls, host, port, user, password, vhost })
    }

    /// Refuses an amqps URL without the CA file its broker's certificate is checked against:
    /// the binary carries no public root store.
    pub fn check_cacert(&self, cacert: Option<&std::path::Path>) -> Result<(), BadAmqpUrl> {
        if self.tls && cacert.is_none() {
            return Err(BadAmqpUrl {
                url: self.show(),
                why: "amqps needs --cacert FILE (the CA that signed the broker's certificate)",
            });
        }
        Ok(())
    }

    /// The URL without the password, for messages.
    pub fn show(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let scheme = if self.tls { "amqps" } else { "amqp" };
        format!(
            "{scheme}://{}@{host}:{}/{}",
            url_parts::encode(&self.user),
            self.port,
            url_parts::encode(&self.vhost)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_as_rabbitmq_clients_read_them() {
        let u = AmqpUrl::parse("amqp://127.0.0.1").unwrap();
        assert_eq!(
            u,
            AmqpUrl {
                tls: false,
                host: "127.0.0.1".into(),
                port: 5672,
                user: "guest".into(),
                password: "guest".into(),
                vhost: "/".into()
            }
        );
        let u = AmqpUrl::parse("amqp://al%40ce:p%3Aw@[::1]:5673/prod%2Fa").unwrap();
        assert_eq!(
            (u.user.as_str(), u.password.as_str(), u.host.as_str(), u.port, u.vhost.as_str()),
            ("al@ce", "p:w", "::1", 5673, "prod/a")
        );
        assert_eq!(u.show(), "amqp://al%40ce@[::1]:5673/prod%2Fa");
        assert_eq!(AmqpUrl::parse("amqp://h/%2F").unwrap().vhost, "/");
        let u = AmqpUrl::parse("amqps://localhost").unwrap();
        assert_eq!((u.tls, u.port, u.show().as_str()), (true, 5671, "amqps://guest@localhost:5671/%2F"));
        assert!(AmqpUrl::parse("http://h").is_err());
        assert!(AmqpUrl::parse("amqp://h:x").is_err());
    }
}
