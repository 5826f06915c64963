//! Configuration: defaults, then a TOML file (`--config`), then command-line flags.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;
use warren_broker::FirstStart;
use warren_connection::ConnectionConfig;

use crate::limits::{DiskFreeLimit, MemoryWatermark};
use crate::tls::{CertLogin, CertLoginFrom, SanType, TlsConfig, TlsSettings};

/// Every key of the TOML file is also a flag; a flag wins over the file.
#[derive(Debug, Default, Clone, Parser, Deserialize)]
#[command(
    name = "warren",
    version,
    about = "Warren: an AMQP 0-9-1 message broker compatible with RabbitMQ clients"
)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// What to do instead of running the broker.
    #[command(subcommand)]
    #[serde(skip)]
    pub command: Option<Command>,

    /// TOML file with any of the settings below (keys as the flags, with underscores: `data_dir = "..."`).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Addresses and ports for AMQP clients: repeat the flag or separate them with commas; in the
    /// file a list or a single string [default: 127.0.0.1:5672 and, where the machine has IPv6,
    /// [::1]:5672].
    #[arg(long, value_name = "ADDR:PORT", value_delimiter = ',')]
    #[serde(deserialize_with = "one_or_many")]
    pub listen: Option<Vec<SocketAddr>>,

    /// Addresses and ports for AMQP over TLS (amqps), as `listen`; they need the [tls] settings
    /// (see docs/tls.md) [default, once tls.certfile is set: 127.0.0.1:5671 and, where the
    /// machine has IPv6, [::1]:5671].
    #[arg(long, value_name = "ADDR:PORT", value_delimiter = ',')]
    #[serde(deserialize_with = "one_or_many")]
    pub tls_listen: Option<Vec<SocketAddr>>,

    /// Addresses and ports for Prometheus to scrape (`/metrics`, `/metrics/per-object`,
    /// `/metrics/detailed`, with RabbitMQ's metric names; see docs/metrics.md), as `listen`;
    /// "" on the command line or `[]` in the file turns the endpoint off [default:
    /// 127.0.0.1:15692, RabbitMQ's prometheus port; skipped with a warning if in use].
    #[arg(long, value_name = "ADDR:PORT", value_delimiter = ',')]
    #[serde(deserialize_with = "one_or_many_strings")]
    pub prometheus_listen: Option<Vec<String>>,

    /// The certificate, key and client verification of TLS listeners: `[tls]` in the file.
    #[command(flatten)]
    pub tls: TlsSettings,

    /// Addresses for the management HTTP API and dashboard, as `listen`; "" on the command
    /// line or `[]` in the file turns them off [default: 127.0.0.1:15672].
    #[arg(long, value_name = "ADDR:PORT", value_delimiter = ',')]
    #[serde(deserialize_with = "one_or_many_strings")]
    pub management_listen: Option<Vec<String>>,

    /// Addresses for the management API and dashboard over TLS (https), with the certificate,
    /// key and client verification of the [tls] settings, as RabbitMQ's management.ssl.port
    /// [default: none].
    #[arg(long, value_name = "ADDR:PORT", value_delimiter = ',')]
    #[serde(deserialize_with = "one_or_many")]
    pub management_tls_listen: Option<Vec<SocketAddr>>,

    /// Where SASL EXTERNAL takes the user name from in a TLS client certificate: common_name,
    /// distinguished_name or subject_alternative_name, as RabbitMQ's ssl_cert_login_from
    /// [default: common_name].
    #[arg(long, value_name = "FIELD")]
    pub ssl_cert_login_from: Option<CertLoginFrom>,

    /// With subject_alternative_name: the kind of name, dns, ip, email, uri or other_name
    /// (ssl_cert_login_san_type) [default: dns].
    #[arg(long, value_name = "TYPE")]
    pub ssl_cert_login_san_type: Option<SanType>,

    /// With subject_alternative_name: which name of that kind, from 0
    /// (ssl_cert_login_san_index) [default: 0].
    #[arg(long, value_name = "N")]
    pub ssl_cert_login_san_index: Option<usize>,

    /// Directory for the broker's data [default: ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Highest channel number a client may open, offered in connection.tune [default: 2047].
    #[arg(long, value_name = "N")]
    pub channel_max: Option<u16>,

    /// Largest frame in bytes, offered in connection.tune; at least 4096 [default: 131072].
    #[arg(long, value_name = "BYTES")]
    pub frame_max: Option<u32>,

    /// Heartbeat interval in seconds offered in connection.tune; 0 disables [default: 60].
    #[arg(long, value_name = "SECONDS")]
    pub heartbeat: Option<u16>,

    /// Largest message body accepted, in bytes, at most 512 MiB [default: 134217728].
    #[arg(long, value_name = "BYTES")]
    pub max_message_size: Option<u64>,

    /// When confirms and tx.commit-ok are sent: "always" after the data is fsynced (group commit),
    /// or "never" fsync (faster; a crash of the machine may lose confirmed messages) [default: always].
    #[arg(long, value_name = "always|never")]
    pub sync: Option<SyncSetting>,

    /// Size at which a queue's segment file is rolled, in bytes [default: 8388608].
    #[arg(long, value_name = "BYTES")]
    pub segment_size: Option<u64>,

    /// Bytes of ready messages a queue keeps in memory; beyond this they wait on disk
    /// [default: 4194304].
    #[arg(long, value_name = "BYTES")]
    pub queue_memory: Option<u64>,

    /// Publishers are blocked while the data directory's disk has less free space than this:
    /// bytes, a size with a unit (50MB, 500MiB, 1GB...), or "mem_relative:1.5", a multiple of
    /// the memory available to the broker (in the file also `{ mem_relative = 1.5 }`); 0 turns
    /// the free-space alarm off [default: 50MB].
    #[arg(long, value_name = "SIZE")]
    pub disk_free_limit: Option<DiskFreeLimit>,

    /// Publishers are blocked while the broker's resident memory is above this: a fraction of
    /// the memory available (RAM, or the cgroup's limit if lower), or "absolute:1GB" (in the file
    /// also `{ absolute = "1GB" }`) [default: 0.4].
    #[arg(long, value_name = "FRACTION")]
    pub vm_memory_high_watermark: Option<MemoryWatermark>,

    /// The `product` the server announces in connection.start [default: Warren]. Some client code
    /// turns RabbitMQ-specific behaviour on only when this is "RabbitMQ"; this lets it run unchanged.
    #[arg(long, value_name = "NAME")]
    pub product: Option<String>,

    /// The node's name, as RabbitMQ's `rabbit@host`: what the management API, the metrics'
    /// `rabbitmq_node` label and connection.start's `cluster_name` say. A name without `@` gets
    /// `@` and the host name appended [default: warren@<host name>].
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,

    /// A channel whose oldest unacknowledged delivery is older than this many milliseconds is
    /// closed with 406 and the delivery requeued; 0 disables. The queue argument
    /// `x-consumer-timeout` overrides it [default: 1800000].
    #[arg(long, value_name = "MS")]
    pub consumer_timeout: Option<u64>,

    /// Most client connections open at once (RabbitMQ's connection_max); a client over it is
    /// refused at connection.open with 530 [default: no limit].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Milliseconds a client has from connecting until connection.open before it is dropped;
    /// 0 waits forever [default: 10000].
    #[arg(long, value_name = "MS")]
    pub handshake_timeout: Option<u64>,

    /// Flow control: a queue with consumers whose ready backlog outgrows its memory window
    /// (`queue_memory`, or 10,000 messages) stops reading from the connections that publish to
    /// it until the backlog is half drained [default: true].
    #[arg(long, value_name = "BOOL")]
    pub flow_control: Option<bool>,

    /// Failed logins an address (IPv4, or IPv6 /64) may have within a minute; beyond them its
    /// logins are refused unchecked (403 ACCESS_REFUSED) until that minute is over; 0 is no limit
    /// [default: no limit, as RabbitMQ].
    #[arg(long, value_name = "N")]
    pub max_failed_logins_per_minute: Option<u32>,

    /// How often the management API samples counters for its rates, in ms (RabbitMQ's
    /// collect_statistics_interval) [default: 5000]. Hidden: tests shorten it.
    #[arg(long, value_name = "MS", hide = true)]
    pub collect_statistics_interval: Option<u64>,

    /// How long a management API client may take to send a request's headers, in ms (also
    /// while a kept-alive connection waits for its next request) [default: 30000]. Hidden:
    /// tests shorten it.
    #[arg(long, value_name = "MS", hide = true)]
    pub management_header_timeout: Option<u64>,

    /// The user a first start creates (with the administrator tag), as RabbitMQ's
    /// `default_user` [default: guest]. Only a data directory without users is affected.
    #[arg(long, value_name = "NAME")]
    pub default_user: Option<String>,

    /// The first start's user's password, as RabbitMQ's `default_pass` [default: guest].
    #[arg(long, value_name = "PASSWORD", env = "WARREN_DEFAULT_PASS", hide_env_values = true)]
    pub default_pass: Option<String>,

    /// The vhost a first start creates, as RabbitMQ's `default_vhost` [default: /].
    #[arg(long, value_name = "NAME")]
    pub default_vhost: Option<String>,

    /// Users who may only connect from the local machine, as RabbitMQ's `loopback_users`;
    /// comma-separated, "" for none [default: guest].
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub loopback_users: Option<Vec<String>>,

    /// A definitions file in RabbitMQ's JSON format (`rabbitmqctl export_definitions`), or a
    /// directory of `.json` ones, imported at every start before clients are accepted, as
    /// RabbitMQ's `load_definitions`; with it a first start creates no default user or vhost,
    /// and a file that cannot be imported stops the start [default: none].
    #[arg(long, value_name = "FILE")]
    pub load_definitions: Option<PathBuf>,

    /// Log filter in tracing's EnvFilter syntax, e.g. "info" or "warren=debug" [default: info].
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
}

/// Whether confirms wait for fsync.
/// Subcommands of the binary.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Operator commands as rabbitmqctl's (add_user, set_permissions, list_queues, ...): over the
    /// management API with --url; else sent to the broker running on the data directory, or
    /// applied to the directory when none runs there (see docs/cli.md).
    Ctl {
        /// Where the management API is (--url), as whom; without --url, the control socket.
        #[command(flatten)]
        target: crate::ctl::http::HttpTarget,
        #[command(subcommand)]
        command: crate::ctl::CtlCommand,
    },
    /// Publishes messages (from --body or stdin) to an exchange, as amqp-publish.
    Publish(crate::shell::PublishArgs),
    /// Consumes messages from a queue (or an exchange) to stdout, one per line, as amqp-consume.
    Consume(crate::shell::ConsumeArgs),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncSetting {
    #[default]
    Always,
    Never,
}

/// The largest max_message_size we accept, as RabbitMQ.
/// RabbitMQ's management port.
const DEFAULT_MANAGEMENT_PORT: u16 = 15672;

const MAX_MESSAGE_SIZE_LIMIT: u64 = 512 * 1024 * 1024;

/// An address to accept AMQP connections on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub addr: SocketAddr,
    /// A default this machine may lack (IPv6 loopback): when it cannot be bound the broker warns
    /// and goes on without it. Addresses the user asked for must all be bound.
    pub optional: bool,
    /// Connections start with a TLS handshake (amqps).
    pub tls: bool,
}

/// Where the broker listens when no address is given: loopback only, over IPv4 and (where the
/// machine has it) IPv6, as RabbitMQ listens on both families by default.
const DEFAULT_LISTEN: [(SocketAddr, bool); 2] = [
    (SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5672), false),
    (SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 5672), true),
];

/// Where Prometheus scrapes when `prometheus_listen` is not given: RabbitMQ's prometheus
/// plugin's port, loopback only. Optional: a second broker on the machine (or a RabbitMQ)
/// may have it, and metrics are not worth refusing to start for.
const DEFAULT_PROMETHEUS_LISTEN: [(SocketAddr, bool); 1] =
    [(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 15692), true)];

/// Where TLS listeners go when `tls_listen` is not given: RabbitMQ's amqps port, loopback only
/// as the plain default.
const DEFAULT_TLS_LISTEN: [(SocketAddr, bool); 2] = [
    (SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5671), false),
    (SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 5671), true),
];

/// Settings after defaults are applied.
#[derive(Debug, Clone)]
pub struct Config {
    /// Plain and TLS listeners.
    pub listen: Vec<Listen>,
    /// Where Prometheus scrapes the metrics (none: off).
    pub prometheus_listen: Vec<Listen>,
    /// The management API's and dashboard's listeners.
    pub management_listen: Vec<SocketAddr>,
    /// The management API's and dashboard's https listeners.
    pub management_tls_listen: Vec<SocketAddr>,
    /// The product name clients and the management API are told.
    pub product: String,
    /// The node's name (`warren@host`).
    pub node_name: String,
    /// What TLS listeners serve (None: TLS is not configured).
    pub tls: Option<TlsConfig>,
    pub data_dir: PathBuf,
    pub sync: SyncSetting,
    pub segment_size: u64,
    pub queue_memory: u64,
    pub disk_free_limit: DiskFreeLimit,
    pub vm_memory_high_watermark: MemoryWatermark,
    /// Consumer timeout in ms (0 = none).
    pub consumer_timeout: u64,
    /// None: no limit.
    pub max_connections: Option<usize>,
    /// Failed logins per address and minute; None: no limit.
    pub max_failed_logins_per_minute: Option<u32>,
    /// How often the management API samples counters for its rates.
    pub collect_statistics_interval: std::time::Duration,
    /// How long a management client may take to send a request's headers.
    pub management_header_timeout: std::time::Duration,
    pub connection: ConnectionConfig,
    pub flow_control: bool,
    /// What a first start creates.
    pub first_start: FirstStart,
    pub loopback_users: Vec<String>,
    /// Definitions imported at every start.
    pub load_definitions: Option<PathBuf>,
    pub log: String,
}

impl Settings {
    /// Reads the file named by `--config`, if any, under the flags.
    pub fn load(flags: Settings) -> anyhow::Result<Config> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => Settings::default(),
        };
        flags.over(file).resolve()
    }

    fn over(self, base: Settings) -> Settings {
        Settings {
            command: None,
            config: self.config,
            listen: self.listen.or(base.listen),
            tls_listen: self.tls_listen.or(base.tls_listen),
            prometheus_listen: self.prometheus_listen.or(base.prometheus_listen),
            management_listen: self.management_listen.or(base.management_listen),
            management_tls_listen: self.management_tls_listen.or(base.management_tls_listen),
            tls: self.tls.over(base.tls),
            ssl_cert_login_from: self.ssl_cert_login_from.or(base.ssl_cert_login_from),
            ssl_cert_login_san_type: self.ssl_cert_login_san_type.or(base.ssl_cert_login_san_type),
            ssl_cert_login_san_index: self.ssl_cert_login_san_index.or(base.ssl_cert_login_san_index),
            data_dir: self.data_dir.or(base.data_dir),
            channel_max: self.channel_max.or(base.channel_max),
            frame_max: self.frame_max.or(base.frame_max),
            heartbeat: self.heartbeat.or(base.heartbeat),
            max_message_size: self.max_message_size.or(base.max_message_size),
            product: self.product.or(base.product),
            node_name: self.node_name.or(base.node_name),
            sync: self.sync.or(base.sync),
            segment_size: self.segment_size.or(base.segment_size),
            queue_memory: self.queue_memory.or(base.queue_memory),
            disk_free_limit: self.disk_free_limit.or(base.disk_free_limit),
            vm_memory_high_watermark: self.vm_memory_high_watermark.or(base.vm_memory_high_watermark),
            consumer_timeout: self.consumer_timeout.or(base.consumer_timeout),
            handshake_timeout: self.handshake_timeout.or(base.handshake_timeout),
            flow_control: self.flow_control.or(base.flow_control),
            default_user: self.default_user.or(base.default_user),
            default_pass: self.default_pass.or(base.default_pass),
            default_vhost: self.default_vhost.or(base.default_vhost),
            loopback_users: self.loopback_users.or(base.loopback_users),
            load_definitions: self.load_definitions.or(base.load_definitions),
            max_connections: self.max_connections.or(base.max_connections),
            max_failed_logins_per_minute: self
                .max_failed_logins_per_minute
                .or(base.max_failed_logins_per_minute),
            collect_statistics_interval: self
                .collect_statistics_interval
                .or(base.collect_statistics_interval),
            management_header_timeout: self.management_header_timeout.or(base.management_header_timeout),
            log: self.log.or(base.log),
        }
    }

    fn resolve(self) -> anyhow::Result<Config> {
        let defaults = ConnectionConfig::default();
        let frame_max = self.frame_max.unwrap_or(defaults.frame_max);
        if frame_max < warren_connection::FRAME_MIN_SIZE {
            anyhow::bail!("frame_max must be at least {}", warren_connection::FRAME_MIN_SIZE);
        }
        let max_message_size = self.max_message_size.unwrap_or(defaults.max_message_size);
        if max_message_size > MAX_MESSAGE_SIZE_LIMIT {
            anyhow::bail!("max_message_size must be at most {MAX_MESSAGE_SIZE_LIMIT}");
        }
        let channel_max = self.channel_max.unwrap_or(defaults.channel_max);
        if channel_max == 0 {
            anyhow::bail!("channel_max must be at least 1");
        }
        let cert_login = CertLogin::from_settings(
            self.ssl_cert_login_from,
            self.ssl_cert_login_san_type,
            self.ssl_cert_login_san_index,
        );
        let tls = self.tls.resolve(cert_login)?;
        let management_tls_listen = self.management_tls_listen.unwrap_or_default();
        if !management_tls_listen.is_empty() && tls.is_none() {
            anyhow::bail!("management_tls_listen needs the [tls] settings tls.certfile and tls.keyfile");
        }
        let tls_listen = match (self.tls_listen, &tls) {
            (Some(addrs), Some(_)) => listeners(addrs, true),
            (None, Some(_)) => default_listeners(&DEFAULT_TLS_LISTEN, true),
            (Some(addrs), None) if !addrs.is_empty() => {
                anyhow::bail!("tls_listen needs the [tls] settings tls.certfile and tls.keyfile")
            }
            (_, None) => Vec::new(),
        };
        let mut listen = match self.listen {
            None => default_listeners(&DEFAULT_LISTEN, false),
            Some(addrs) => listeners(addrs, false),
        };
        // `listen = []` with TLS listeners: TLS only.
        if listen.is_empty() && tls_listen.is_empty() {
            anyhow::bail!("listen needs at least one address");
        }
        listen.extend(tls_listen);
        let prometheus_listen = match self.prometheus_listen {
            None => default_listeners(&DEFAULT_PROMETHEUS_LISTEN, false),
            Some(addrs) => listeners(addresses("prometheus_listen", &addrs)?, false),
        };
        let management_listen = match self.management_listen {
            None => vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_MANAGEMENT_PORT)],
            Some(addrs) => addresses("management_listen", &addrs)?,
        };
        let node_name = full_node_name(self.node_name.as_deref(), &host_name());
        Ok(Config {
            listen,
            prometheus_listen,
            tls,
            management_listen,
            management_tls_listen,
            product: self.product.clone().unwrap_or_else(|| "Warren".to_owned()),
            node_name: node_name.clone(),
            data_dir: self.data_dir.unwrap_or_else(|| PathBuf::from("data")),
            sync: self.sync.unwrap_or_default(),
            segment_size: self.segment_size.unwrap_or(8 * 1024 * 1024),
            queue_memory: self.queue_memory.unwrap_or(4 * 1024 * 1024),
            disk_free_limit: self.disk_free_limit.unwrap_or_default(),
            vm_memory_high_watermark: self.vm_memory_high_watermark.unwrap_or_default(),
            consumer_timeout: self.consumer_timeout.unwrap_or(warren_broker::DEFAULT_CONSUMER_TIMEOUT_MS),
            max_connections: self.max_connections,
            max_failed_logins_per_minute: self.max_failed_logins_per_minute.filter(|&n| n > 0),
            collect_statistics_interval: std::time::Duration::from_millis(
                self.collect_statistics_interval.unwrap_or(5000).max(10),
            ),
            management_header_timeout: std::time::Duration::from_millis(
                self.management_header_timeout.unwrap_or(30_000).max(10),
            ),
            connection: ConnectionConfig {
                channel_max,
                frame_max,
                heartbeat: self.heartbeat.unwrap_or(defaults.heartbeat),
                max_message_size,
                handshake_timeout: self
                    .handshake_timeout
                    .map_or(defaults.handshake_timeout, std::time::Duration::from_millis),
                server_properties: warren_connection::server_properties(
                    self.product.as_deref().unwrap_or("Warren"),
                    env!("CARGO_PKG_VERSION"),
                    &node_name,
                ),
            },
            flow_control: self.flow_control.unwrap_or(true),
            first_start: {
                let defaults = FirstStart::default();
                FirstStart {
                    user: self.default_user.unwrap_or(defaults.user),
                    password: self.default_pass.unwrap_or(defaults.password),
                    vhost: self.default_vhost.unwrap_or(defaults.vhost),
                }
            },
            // `--loopback-users ""` names nobody.
            loopback_users: self.loopback_users.map_or_else(
                || vec!["guest".to_owned()],
                |names| names.into_iter().filter(|n| !n.is_empty()).collect(),
            ),
            load_definitions: self.load_definitions,
            log: self.log.unwrap_or_else(|| "info".to_owned()),
        })
    }
}

fn default_listeners(addrs: &[(SocketAddr, bool)], tls: bool) -> Vec<Listen> {
    addrs.iter().map(|&(addr, optional)| Listen { addr, optional, tls }).collect()
}

fn listeners(addrs: Vec<SocketAddr>, tls: bool) -> Vec<Listen> {
    addrs.into_iter().map(|addr| Listen { addr, optional: false, tls }).collect()
}

/// `listen` in the file: one address as a string (the older form) or a list of them.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<SocketAddr>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(SocketAddr),
        Many(Vec<SocketAddr>),
    }
    Ok(Some(match OneOrMany::deserialize(d)? {
        OneOrMany::One(addr) => vec![addr],
        OneOrMany::Many(addrs) => addrs,
    }))
}

/// A list of strings in the file: one string or a list of them.
fn one_or_many_strings<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Some(match OneOrMany::deserialize(d)? {
        OneOrMany::One(addr) => vec![addr],
        OneOrMany::Many(addrs) => addrs,
    }))
}

fn read_file(path: &Path) -> anyhow::Result<Settings> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// A list of addresses, where empty entries (`--prometheus-listen ""`) stand for none.
fn addresses(setting: &str, given: &[String]) -> anyhow::Result<Vec<SocketAddr>> {
    let given = given.iter().map(|a| a.trim()).filter(|a| !a.is_empty());
    given.map(|a| a.parse().with_context(|| format!("{setting}: {a:?} is not an ADDR:PORT"))).collect()
}

/// A node name in RabbitMQ's `name@host` shape: `warren@<host>` by default, and a short name
/// completed with the host, as RabbitMQ completes `RABBITMQ_NODENAME`.
fn full_node_name(setting: Option<&str>, host: &str) -> String {
    match setting {
        Some(name) if name.contains('@') => name.to_owned(),
        Some(name) => format!("{name}@{host}"),
        None => format!("warren@{host}"),
    }
}

/// The machine's host name, or `localhost` when it has none.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if ok && !name.is_empty() => name.to_owned(),
        _ => "localhost".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_user_vhost_and_loopback_users_as_rabbitmq_names_them() {
        let file: Settings = toml::from_str(
            r#"
            default_user = "admin"
            default_pass = "s3cret"
            default_vhost = "prod"
            loopback_users = []
            "#,
        )
        .unwrap();
        let c = file.clone().resolve().unwrap();
        assert_eq!(
            c.first_start,
            FirstStart { user: "admin".into(), password: "s3cret".into(), vhost: "prod".into() }
        );
        assert!(c.loopback_users.is_empty(), "an empty list lets every user in from afar");
        let flags = Settings::try_parse_from(["warren", "--loopback-users", "guest,ops"]).unwrap();
        assert_eq!(flags.over(file).resolve().unwrap().loopback_users, ["guest", "ops"]);
        let none = Settings::try_parse_from(["warren", "--loopback-users", ""]).unwrap();
        assert!(none.resolve().unwrap().loopback_users.is_empty());
    }

    #[test]
    fn prometheus_listen_defaults_to_rabbitmq_s_port_and_can_be_turned_off() {
        let addrs = |c: Config| {
            c.prometheus_listen.iter().map(|l| (l.addr.to_string(), l.optional)).collect::<Vec<_>>()
        };
        let default = Settings::default().resolve().unwrap();
        assert_eq!(addrs(default), [("127.0.0.1:15692".to_owned(), true)]);
        let file: Settings = toml::from_str(r#"prometheus_listen = ["0.0.0.0:9419"]"#).unwrap();
        assert_eq!(addrs(file.clone().resolve().unwrap()), [("0.0.0.0:9419".to_owned(), false)]);
        let off: Settings = toml::from_str("prometheus_listen = []").unwrap();
        assert!(off.resolve().unwrap().prometheus_listen.is_empty());
        let flag_off = Settings::try_parse_from(["warren", "--prometheus-listen", ""]).unwrap();
        assert!(flag_off.over(file).resolve().unwrap().prometheus_listen.is_empty(), "a flag wins");
        let flags =
            Settings::try_parse_from(["warren", "--prometheus-listen", "127.0.0.1:1,[::1]:2"]).unwrap();
        assert_eq!(addrs(flags.resolve().unwrap()).len(), 2);
        let bad = Settings::try_parse_from(["warren", "--prometheus-listen", "localhost"]).unwrap();
        assert!(bad.resolve().unwrap_err().to_string().contains("prometheus_listen"));
    }

    #[test]
    fn load_definitions_from_flag_or_file() {
        let file: Settings = toml::from_str(r#"load_definitions = "/etc/warren/definitions.json""#).unwrap();
        assert_eq!(
            file.clone().resolve().unwrap().load_definitions,
            Some("/etc/warren/definitions.json".into())
        );
        let flags = Settings::try_parse_from(["warren", "--load-definitions", "defs.json"]).unwrap();
        assert_eq!(flags.over(file).resolve().unwrap().load_definitions, Some("defs.json".into()));
        assert_eq!(Settings::default().resolve().unwrap().load_definitions, None);
    }

    #[test]
    fn defaults_match_the_readme() {
        let c = Settings::default().resolve().unwrap();
        let listen: Vec<_> = c.listen.iter().map(|l| (l.addr.to_string(), l.optional)).collect();
        assert_eq!(listen, [("127.0.0.1:5672".to_owned(), false), ("[::1]:5672".to_owned(), true)]);
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(c.connection.frame_max, 131_072);
        assert_eq!(c.connection.channel_max, 2047);
        assert_eq!(c.connection.heartbeat, 60);
        assert_eq!(c.consumer_timeout, 1_800_000);
        assert_eq!(c.connection.handshake_timeout, std::time::Duration::from_secs(10));
        assert_eq!(c.max_connections, None);
        assert_eq!(c.max_failed_logins_per_minute, None);
        assert_eq!(c.first_start, FirstStart::default());
        assert_eq!(c.loopback_users, ["guest"]);
        assert_eq!(c.disk_free_limit, DiskFreeLimit::Bytes(50_000_000));
        assert_eq!(c.vm_memory_high_watermark, MemoryWatermark::Relative(0.4));
        let product = c.connection.server_properties.get("product").and_then(|v| v.as_str());
        assert_eq!(product, Some("Warren"));
    }

    #[test]
    fn flags_override_the_file() {
        let file: Settings =
            toml::from_str("heartbeat = 10\nframe_max = 8192\nlisten = \"127.0.0.1:7000\"\nsync = \"never\"")
                .unwrap();
        let timeout: Settings = toml::from_str("consumer_timeout = 60000").unwrap();
        let flags = Settings::try_parse_from(["warren", "--consumer-timeout", "0"]).unwrap();
        assert_eq!(flags.clone().over(timeout.clone()).resolve().unwrap().consumer_timeout, 0);
        let none = Settings::try_parse_from(["warren"]).unwrap();
        assert_eq!(none.over(timeout).resolve().unwrap().consumer_timeout, 60_000);
        let flags =
            Settings::try_parse_from(["warren", "--handshake-timeout", "1500", "--max-connections", "3"])
                .unwrap();
        let c = flags.resolve().unwrap();
        assert_eq!(c.max_connections, Some(3));
        let limit: Settings = toml::from_str("max_failed_logins_per_minute = 20").unwrap();
        assert_eq!(limit.clone().resolve().unwrap().max_failed_logins_per_minute, Some(20));
        let flags = Settings::try_parse_from(["warren", "--max-failed-logins-per-minute", "0"]).unwrap();
        assert_eq!(flags.over(limit).resolve().unwrap().max_failed_logins_per_minute, None, "0 is no limit");
        assert_eq!(c.connection.handshake_timeout, std::time::Duration::from_millis(1500));
        let flags = Settings::try_parse_from(["warren", "--heartbeat", "5"]).unwrap();
        let c = flags.over(file).resolve().unwrap();
        assert_eq!(c.consumer_timeout, 1_800_000);
        assert_eq!(c.connection.heartbeat, 5);
        assert_eq!(c.connection.frame_max, 8192);
        assert_eq!(
            c.listen,
            [Listen { addr: "127.0.0.1:7000".parse().unwrap(), optional: false, tls: false }]
        );
        assert_eq!(c.sync, SyncSetting::Never);
    }

    #[test]
    fn listen_takes_a_list_from_flags_and_file() {
        let addrs = |c: Config| c.listen.iter().map(|l| (l.addr.to_string(), l.optional)).collect::<Vec<_>>();
        let flags =
            Settings::try_parse_from(["warren", "--listen", "127.0.0.1:1,[::1]:2", "--listen", "0.0.0.0:3"])
                .unwrap();
        let given = |a: &str| (a.to_owned(), false);
        assert_eq!(
            addrs(flags.resolve().unwrap()),
            [given("127.0.0.1:1"), given("[::1]:2"), given("0.0.0.0:3")]
        );
        let file: Settings = toml::from_str(r#"listen = ["127.0.0.1:5672", "[::1]:5673"]"#).unwrap();
        assert_eq!(addrs(file.resolve().unwrap()), [given("127.0.0.1:5672"), given("[::1]:5673")]);
        let file: Settings = toml::from_str(r#"listen = "[::]:5672""#).unwrap();
        assert_eq!(addrs(file.clone().resolve().unwrap()), [given("[::]:5672")]);
        // Flags replace the file's list rather than adding to it.
        let flags = Settings::try_parse_from(["warren", "--listen", "127.0.0.1:9"]).unwrap();
        assert_eq!(addrs(flags.over(file).resolve().unwrap()), [given("127.0.0.1:9")]);
        let empty: Settings = toml::from_str("listen = []").unwrap();
        assert!(empty.resolve().is_err());
        assert!(toml::from_str::<Settings>(r#"listen = "localhost""#).is_err());
    }

    #[test]
    fn tls_settings_as_rabbitmq_names_them() {
        let file: Settings = toml::from_str(
            r#"
            tls_listen = ["0.0.0.0:5671"]
            ssl_cert_login_from = "subject_alternative_name"
            ssl_cert_login_san_type = "email"
            ssl_cert_login_san_index = 1
            [tls]
            certfile = "server.pem"
            keyfile = "server.key"
            cacertfile = "ca.pem"
            verify = "verify_peer"
            fail_if_no_peer_cert = true
            versions = ["tlsv1.3"]
            "#,
        )
        .unwrap();
        let c = file.clone().resolve().unwrap();
        let tls = c.tls.expect("TLS configured");
        assert_eq!(tls.certfile, PathBuf::from("server.pem"));
        assert_eq!(tls.keyfile, PathBuf::from("server.key"));
        assert_eq!(tls.cacertfile, Some(PathBuf::from("ca.pem")));
        assert_eq!(tls.verify, crate::tls::settings::Verify::VerifyPeer);
        assert!(tls.fail_if_no_peer_cert);
        assert_eq!(tls.versions, [crate::tls::settings::TlsVersion::Tls13]);
        assert_eq!(tls.cert_login, CertLogin::SubjectAlternativeName { san_type: SanType::Email, index: 1 });
        let listen: Vec<_> = c.listen.iter().map(|l| (l.addr.to_string(), l.tls)).collect();
        assert_eq!(
            listen,
            [
                ("127.0.0.1:5672".to_owned(), false),
                ("[::1]:5672".to_owned(), false),
                ("0.0.0.0:5671".to_owned(), true)
            ]
        );
        let flags = Settings::try_parse_from([
            "warren",
            "--tls-verify",
            "verify_none",
            "--tls-fail-if-no-peer-cert",
            "false",
        ])
        .unwrap();
        let tls = flags.over(file).resolve().unwrap().tls.unwrap();
        assert_eq!((tls.verify, tls.fail_if_no_peer_cert), (crate::tls::settings::Verify::VerifyNone, false));
    }

    #[test]
    fn tls_defaults_to_port_5671_on_loopback() {
        let flags = Settings::try_parse_from(["warren", "--tls-certfile", "c.pem", "--tls-keyfile", "k.pem"])
            .unwrap();
        let c = flags.resolve().unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.verify, crate::tls::settings::Verify::VerifyNone);
        assert!(!tls.fail_if_no_peer_cert);
        assert_eq!(
            tls.versions,
            [crate::tls::settings::TlsVersion::Tls12, crate::tls::settings::TlsVersion::Tls13]
        );
        assert_eq!(tls.cert_login, CertLogin::CommonName);
        let tls_listen: Vec<_> =
            c.listen.iter().filter(|l| l.tls).map(|l| (l.addr.to_string(), l.optional)).collect();
        assert_eq!(tls_listen, [("127.0.0.1:5671".to_owned(), false), ("[::1]:5671".to_owned(), true)]);
        assert!(Settings::default().resolve().unwrap().tls.is_none());
        // TLS only.
        let only: Settings = toml::from_str(
            "listen = []\ntls_listen = \"127.0.0.1:5671\"\n[tls]\ncertfile = \"c\"\nkeyfile = \"k\"",
        )
        .unwrap();
        assert!(only.resolve().unwrap().listen.iter().all(|l| l.tls));
    }

    #[test]
    fn tls_settings_that_cannot_work_are_refused() {
        let refused = |toml: &str| {
            let settings: Settings = toml::from_str(toml).unwrap();
            settings.resolve().expect_err("accepted").to_string()
        };
        assert!(refused("tls_listen = [\"127.0.0.1:5671\"]").contains("tls.certfile"));
        assert!(refused("[tls]\ncertfile = \"c\"").contains("tls.keyfile"));
        assert!(refused("[tls]\ncertfile = \"c\"\nkeyfile = \"k\"\nverify = \"verify_peer\"")
            .contains("cacertfile"));
        assert!(refused("[tls]\ncertfile = \"c\"\nkeyfile = \"k\"\nfail_if_no_peer_cert = true")
            .contains("verify_peer"));
        assert!(refused("[tls]\ncertfile = \"c\"\nkeyfile = \"k\"\nversions = []").contains("tls.versions"));
        assert!(toml::from_str::<Settings>("[tls]\nversions = [\"tlsv1.1\"]").is_err());
        assert!(toml::from_str::<Settings>("[tls]\ncertfle = \"c\"").is_err(), "unknown keys in [tls] too");
    }

    #[test]
    fn unknown_keys_and_bad_limits_are_refused() {
        assert!(toml::from_str::<Settings>("no_such_key = 1").is_err());
        let flags = Settings::try_parse_from(["warren", "--frame-max", "100"]).unwrap();
        assert!(flags.resolve().is_err());
        let flags = Settings::try_parse_from(["warren", "--max-message-size", "1000000000"]).unwrap();
        assert!(flags.resolve().is_err());
    }

    #[test]
    fn resource_limits_from_flags_and_file() {
        let file: Settings = toml::from_str(
            "disk_free_limit = { mem_relative = 1.5 }\nvm_memory_high_watermark = { absolute = \"2GB\" }",
        )
        .unwrap();
        let c = file.clone().resolve().unwrap();
        assert_eq!(c.disk_free_limit, DiskFreeLimit::MemRelative(1.5));
        assert_eq!(c.vm_memory_high_watermark, MemoryWatermark::Absolute(2_000_000_000));
        let flags = Settings::try_parse_from([
            "warren",
            "--disk-free-limit",
            "500MiB",
            "--vm-memory-high-watermark",
            "0.6",
        ])
        .unwrap();
        let c = flags.over(file).resolve().unwrap();
        assert_eq!(c.disk_free_limit, DiskFreeLimit::Bytes(500 << 20));
        assert_eq!(c.vm_memory_high_watermark, MemoryWatermark::Relative(0.6));
        let flags =
            Settings::try_parse_from(["warren", "--vm-memory-high-watermark", "absolute:1G"]).unwrap();
        assert_eq!(flags.resolve().unwrap().vm_memory_high_watermark, MemoryWatermark::Absolute(1 << 30));
        assert!(Settings::try_parse_from(["warren", "--disk-free-limit", "lots"]).is_err());
        assert!(toml::from_str::<Settings>("disk_free_limit = \"50XB\"").is_err());
    }

    #[test]
    fn node_names_take_rabbitmqs_name_at_host_shape() {
        assert_eq!(full_node_name(None, "box"), "warren@box");
        assert_eq!(full_node_name(Some("edge"), "box"), "edge@box");
        assert_eq!(full_node_name(Some("edge@elsewhere"), "box"), "edge@elsewhere");
        let config =
            Settings::try_parse_from(["warren", "--node-name", "edge@elsewhere"]).unwrap().resolve().unwrap();
        let cluster = config.connection.server_properties.get("cluster_name").and_then(|v| v.as_str());
        assert_eq!((config.node_name.as_str(), cluster), ("edge@elsewhere", Some("edge@elsewhere")));
    }

    #[test]
    fn the_management_api_over_tls_needs_the_tls_settings() {
        let refused =
            Settings::try_parse_from(["warren", "--management-tls-listen", "127.0.0.1:15671"]).unwrap();
        let error = refused.resolve().unwrap_err().to_string();
        assert!(error.contains("management_tls_listen needs the [tls] settings"), "{error}");
    }

    #[test]
    fn an_empty_management_listen_turns_the_api_off() {
        let off = Settings::try_parse_from(["warren", "--management-listen", ""]).unwrap();
        assert!(off.resolve().unwrap().management_listen.is_empty());
        let file: Settings = toml::from_str("management_listen = []").unwrap();
        assert!(file.resolve().unwrap().management_listen.is_empty());
        let bad = Settings::try_parse_from(["warren", "--management-listen", "nowhere"]).unwrap();
        let error = bad.resolve().unwrap_err().to_string();
        assert!(error.contains("management_listen: \"nowhere\" is not an ADDR:PORT"), "{error}");
    }
}
