//! Where `warren ctl --url` sends its requests and as whom: the flags (and their environment
//! variables) and the parsed base URL.
//!
//! The flags avoid `-p`, which rabbitmqctl's commands use for the vhost: the password is
//! `--password` (or `WARREN_PASS`, or the URL's `user:password@`), never a short flag.

use std::path::PathBuf;

/// The management API to talk to; without `--url`, `warren ctl` uses the control socket.
/// (The ids are explicit: global arguments share their id with any subcommand argument of
/// the same name, and `change_password`'s password is not the API's.)
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HttpTarget {
    /// The management API's base URL, e.g. http://127.0.0.1:15672 (https with --cacert);
    /// user:password@ in it are the credentials. Without it, commands go to the broker on the
    /// data directory through its control socket.
    #[arg(id = "api_url", long = "url", env = "WARREN_URL", value_name = "URL", global = true)]
    pub url: Option<String>,
    /// The user to log in as [default: the URL's, else guest].
    // Not --user: list_user_limits takes that, as in rabbitmqctl.
    #[arg(
        id = "api_user",
        short = 'u',
        long = "username",
        env = "WARREN_USER",
        value_name = "USER",
        global = true
    )]
    pub user: Option<String>,
    /// Its password [default: the URL's, else guest].
    #[arg(
        id = "api_password",
        long = "password",
        env = "WARREN_PASS",
        value_name = "PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// PEM file with the CA certificate(s) an https URL's server certificate is checked against.
    #[arg(id = "api_cacert", long = "cacert", value_name = "FILE", global = true)]
    pub cacert: Option<PathBuf>,
    /// Listings as a JSON array of objects (the chosen columns), status as the API's overview.
    #[arg(id = "api_json", long = "json", global = true)]
    pub json: bool,
}

/// A parsed `--url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// Whether it is https.
    pub tls: bool,
    /// The host name or address (IPv6 without brackets).
    pub host: String,
    /// The port (15672 when the URL has none, 443 for https).
    pub port: u16,
    /// A path the API lives under (a reverse proxy's prefix), without a trailing slash.
    pub prefix: String,
    /// Credentials written in the URL.
    pub credentials: Option<(String, String)>,
}

/// A URL that is not one `warren ctl` can use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad --url \"{url}\": {why} (expected e.g. http://127.0.0.1:15672)")]
pub struct BadUrl {
    url: String,
    why: &'static str,
}

impl BaseUrl {
    /// Parses `http[s]://[user:password@]host[:port][/prefix]`.
    pub fn parse(url: &str) -> Result<BaseUrl, BadUrl> {
        let bad = |why| BadUrl { url: url.to_owned(), why };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else {
            return Err(bad("it must start with http:// or https://"));
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let decode =
                    |s: &str| crate::url_parts::decode(s).ok_or(bad("bad %-escape in the credentials"));
                (Some((decode(user)?, decode(password)?)), host_port)
            }
            None => (None, authority),
        };
        let (host, port) = crate::url_parts::split_host_port(host_port).ok_or(bad("bad host or port"))?;
        let port = port.unwrap_or(if tls { 443 } else { 15672 });
        Ok(BaseUrl { tls, host, port, prefix: prefix.to_owned(), credentials })
    }

    /// The URL of `path` (which starts with `/api`), for messages: never with credentials.
    pub fn show(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("{scheme}://{host}:{}{}{path}", self.port, self.prefix)
    }
}

/// One path segment (a vhost, a queue's name) escaped for the API's paths: `/` is `%2F`.
pub fn segment(s: &str) -> String {
    crate::url_parts::encode(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults_credentials_and_prefixes() {
        let u = BaseUrl::parse("http://127.0.0.1:15672").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port, u.prefix.as_str()), (false, "127.0.0.1", 15672, ""));
        assert_eq!(u.credentials, None);
        let u = BaseUrl::parse("https://admin:p%40ss@[::1]/rabbit/").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port, u.prefix.as_str()), (true, "::1", 443, "/rabbit"));
        assert_eq!(u.credentials, Some(("admin".into(), "p@ss".into())));
        assert_eq!(u.show("/api/overview"), "https://[::1]:443/rabbit/api/overview");
        assert_eq!(BaseUrl::parse("localhost").unwrap_err().why, "it must start with http:// or https://");
        assert!(BaseUrl::parse("http://host:port").is_err());
        assert!(BaseUrl::parse("http://:80").is_err());
    }
}
