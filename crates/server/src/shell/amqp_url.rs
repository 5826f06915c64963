//! The broker address `warren publish` and `warren consume` take:
//! `amqp://[user[:password]@]host[:port][/vhost]`, read as RabbitMQ's clients read it.

use crate::url_parts;

/// A parsed AMQP URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpUrl {
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
    /// Defaults: guest/guest, port 5672, vhost "/" (also for an empty path, as most clients
    /// read `amqp://host/`).
    pub fn parse(url: &str) -> Result<AmqpUrl, BadAmqpUrl> {
        let bad = |why| BadAmqpUrl { url: url.to_owned(), why };
        let rest = url
            .strip_prefix("amqp://")
            .ok_or(bad("it must start with amqp:// (amqps is not supported here)"))?;
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
        Ok(AmqpUrl { host, port: port.unwrap_or(5672), user, password, vhost })
    }

    /// The URL without the password, for messages.
    pub fn show(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("amqp://{}@{host}:{}/{}", self.user, self.port, url_parts::encode(&self.vhost))
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
        assert_eq!(u.show(), "amqp://al@ce@[::1]:5673/prod%2Fa");
        assert_eq!(AmqpUrl::parse("amqp://h/%2F").unwrap().vhost, "/");
        assert!(AmqpUrl::parse("http://h").is_err());
        assert!(AmqpUrl::parse("amqp://h:x").is_err());
    }
}
