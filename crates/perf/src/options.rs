//! Command-line options (PerfTest-style), the AMQP URI, `--queue-args`, and the topology they
//! describe: which queues exist, where each producer publishes and what each consumer reads.

use std::fmt;

use clap::{Parser, ValueEnum};
use warren_protocol::{FieldTable, FieldValue};

/// Largest confirm window (outstanding unconfirmed messages per producer).
pub const MAX_CONFIRM_WINDOW: u32 = 1 << 20;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "warren-perf",
    version,
    about = "AMQP 0-9-1 load generator for Warren and RabbitMQ (PerfTest-style options)",
    long_about = "AMQP 0-9-1 load generator for Warren and RabbitMQ (PerfTest-style options).\n\n\
        Producers and consumers each get their own connection with one channel. Producers write \
        many publishes per write syscall; consumers parse deliveries straight off the read buffer \
        and acknowledge in batches. Once a second it prints rates and latency percentiles; at the \
        end a summary (or, with --json, one JSON object on stdout).\n\n\
        Consumer latency comes from a timestamp embedded in the body (needs --size >= 16). With \
        --rate, latency is measured from each message's intended send time, so a stall of the \
        broker or of the generator shows up in full (no coordinated omission).\n\n\
        Examples:\n  warren-perf --uri amqp://guest:guest@127.0.0.1:5672/ --duration 10\n  \
        warren-perf --confirm 500 --persistent --duration 10 --json\n  \
        warren-perf --exchange fan --type fanout --queue-pattern 'fan-%d' --queue-count 10 --consumers 10\n  \
        warren-perf --rate 10000 --duration 10\n  \
        warren-perf --self-test --duration 5        # the generator's own ceiling, against an in-process sink"
)]
pub struct Options {
    /// Broker URI: amqp://USER:PASS@HOST:PORT/VHOST (the vhost percent-encoded: %2f is "/"; no path means "/").
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/")]
    pub uri: String,

    /// Number of producers, each with its own connection and channel.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub producers: usize,

    /// Number of consumers, each with its own connection and channel. Consumer i reads queue i mod (number of queues).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub consumers: usize,

    /// Message body size in bytes. At 16 or more the body carries the send timestamp used for consumer latency.
    #[arg(long, default_value_t = 16, value_name = "BYTES")]
    pub size: usize,

    /// Publisher confirms: each producer keeps at most N messages unconfirmed (confirm.select); 0 = no confirms.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub confirm: u32,

    /// basic.qos prefetch count of each consumer; 0 = unlimited.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub prefetch: u16,

    /// Consume with no-ack: the broker considers a message acknowledged once sent.
    #[arg(long)]
    pub auto_ack: bool,

    /// Acknowledge every N messages with one basic.ack (multiple=true); 1 = one basic.ack per message
    /// (acks of one read are still written together). Capped at --prefetch.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub multi_ack: u32,

    /// Transactional consume-transform-publish: each consumer selects tx mode and, for every
    /// message it receives, publishes a new one of the same size to --tx-out and acknowledges the
    /// input; every N messages it sends tx.commit (without waiting for the previous commit-ok).
    /// Commit latency (tx.commit to commit-ok) is reported. 0 = off.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub tx_batch: u32,

    /// The queue transactional consumers (--tx-batch) publish to; declared like the others and
    /// purged before the run.
    #[arg(long, default_value = "warren-perf-out", value_name = "NAME")]
    pub tx_out: String,

    /// Publish persistent messages (delivery-mode 2) and declare the queues durable.
    #[arg(long)]
    pub persistent: bool,

    /// Declare queues (and the exchange) durable even without --persistent.
    #[arg(long)]
    pub durable: bool,

    /// Name of the single queue to declare, bind and consume (default "warren-perf" when no pattern is given).
    #[arg(long, value_name = "NAME", conflicts_with = "queue_pattern")]
    pub queue: Option<String>,

    /// Several queues named by a pattern: %d is replaced by 1..=--queue-count (e.g. 'q-%d').
    #[arg(long, value_name = "PATTERN")]
    pub queue_pattern: Option<String>,

    /// Number of queues made from --queue-pattern.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub queue_count: usize,

    /// Exchange to publish to; "" (the default) is the default exchange, routing by queue name.
    /// A named exchange is declared with --type (unless it starts with "amq." or --predeclared)
    /// and every queue is bound to it.
    #[arg(long, default_value = "", value_name = "NAME")]
    pub exchange: String,

    /// Type of the exchange declared for --exchange.
    #[arg(long = "type", value_enum, default_value_t = ExchangeKind::Direct, value_name = "TYPE")]
    pub exchange_type: ExchangeKind,

    /// Routing key of every publish. Default: the queue names, round-robin over the producer's queues.
    #[arg(long, value_name = "KEY")]
    pub routing_key: Option<String>,

    /// Binding key of every queue to --exchange. Default: --routing-key if given, else the queue's name.
    #[arg(long, value_name = "KEY")]
    pub binding_key: Option<String>,

    /// Messages per second per producer; 0 = as fast as possible. With a rate, latencies are measured
    /// from each message's intended send time.
    #[arg(long, default_value_t = 0.0, value_name = "MSGS_PER_S")]
    pub rate: f64,

    /// Run for this many seconds (producers and consumers stop then).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,

    /// Each producer publishes this many messages (and waits for their confirms), then stops; 0 = no limit.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub pmessages: u64,

    /// Each consumer stops after receiving this many messages; 0 = no limit.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub cmessages: u64,

    /// Queue arguments for queue.declare, as k=v,k=v (integers and true/false are typed; the rest are strings),
    /// e.g. x-queue-type=classic,x-max-length=100000.
    #[arg(long, value_name = "K=V,...", value_parser = parse_queue_args)]
    pub queue_args: Option<QueueArgs>,

    /// Arguments for the exchange.declare of --exchange, as --queue-args,
    /// e.g. x-message-deduplication=true,x-cache-size=100000.
    #[arg(long, value_name = "K=V,...", value_parser = parse_queue_args)]
    pub exchange_args: Option<QueueArgs>,

    /// Give every message a distinct `x-deduplication-header` value (16 hex digits), to measure
    /// deduplication; publishes then use the first routing key only.
    #[arg(long)]
    pub unique_keys: bool,

    /// Declare nothing: the exchange, queues and bindings already exist.
    #[arg(long)]
    pub predeclared: bool,

    /// Declare queues without auto-delete (by default they go away when their last consumer leaves).
    #[arg(long)]
    pub no_auto_delete: bool,

    /// Print one JSON object with totals, rates and percentiles on stdout at the end (progress goes to stderr).
    #[arg(long)]
    pub json: bool,

    /// No live progress lines.
    #[arg(long)]
    pub quiet: bool,

    /// Most publishes per write syscall; a write also ends at 128 KiB.
    #[arg(long, default_value_t = 128, value_name = "N")]
    pub batch: usize,

    /// With --rate, wake the producer at most once per this many microseconds (due messages are sent together).
    #[arg(long, default_value_t = 20, value_name = "MICROS")]
    pub min_pacing_us: u64,

    /// Worker threads of the generator's runtime [default: number of CPUs].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Instead of a workload: open N connections (handshake + one channel each), hold them for --duration
    /// seconds (default: until Ctrl-C), then close them. For measuring the broker's memory per connection.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub idle_connections: usize,

    /// Connections opened concurrently while setting up (consumers, producers, idle connections).
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub connect_concurrency: usize,

    /// Measure the generator itself: run the workload against an in-process sink server that
    /// absorbs publishes (confirming them) and feeds consumers synthetic deliveries. Ignores --uri.
    #[arg(long)]
    pub self_test: bool,

    /// Run only the sink server on ADDR:PORT (until --duration or Ctrl-C), for measuring the generator
    /// from another process: `warren-perf --uri amqp://guest:guest@ADDR:PORT/ ...`. Deliveries have --size bytes.
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "self_test")]
    pub sink: Option<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
    /// The deduplication plugin's type (routes as fanout).
    #[value(name = "x-message-deduplication")]
    MessageDeduplication,
}

impl ExchangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
            ExchangeKind::MessageDeduplication => "x-message-deduplication",
        }
    }
}

/// `--queue-args`: typed queue.declare arguments.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct QueueArgs(pub Vec<(String, FieldValue)>);

impl QueueArgs {
    pub fn to_table(&self) -> FieldTable {
        let mut t = FieldTable::new();
        for (k, v) in &self.0 {
            t.insert(k.as_str(), v.clone());
        }
        t
    }
}

/// Parses `k=v,k=v`: integers become signed 64-bit (`l`), true/false booleans, the rest long strings.
pub fn parse_queue_args(s: &str) -> Result<QueueArgs, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| format!("'{part}' is not key=value"))?;
        let k = k.trim();
        if k.is_empty() || k.len() > 255 {
            return Err(format!("bad argument name in '{part}'"));
        }
        let v = v.trim();
        let value = if let Ok(i) = v.parse::<i64>() {
            FieldValue::I64(i)
        } else if v == "true" || v == "false" {
            FieldValue::Bool(v == "true")
        } else {
            FieldValue::LongStr(bytes::Bytes::copy_from_slice(v.as_bytes()))
        };
        out.push((k.to_string(), value));
    }
    Ok(QueueArgs(out))
}

/// A parsed `amqp://` URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpUri {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
}

impl fmt::Display for AmqpUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "amqp://{}@{}:{}/{}", self.user, self.host, self.port, percent_encode(&self.vhost))
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(|| format!("bad percent escape in '{s}'"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad percent escape in '{s}'"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("'{s}' is not UTF-8 once decoded"))
}

impl AmqpUri {
    /// `amqp://[user[:pass]@]host[:port][/vhost]`; defaults guest/guest, 5672, vhost "/".
    /// An empty path ("amqp://h" or "amqp://h/") means "/", as most clients read it.
    pub fn parse(s: &str) -> Result<AmqpUri, String> {
        let rest =
            s.strip_prefix("amqp://").ok_or_else(|| format!("'{s}': only amqp:// URIs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let path = path.split('?').next().unwrap_or("");
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(ui) => match ui.split_once(':') {
                Some((u, p)) => (percent_decode(u)?, percent_decode(p)?),
                None => (percent_decode(ui)?, String::new()),
            },
            None => ("guest".to_string(), "guest".to_string()),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let end = v6.find(']').ok_or_else(|| format!("'{s}': unterminated [ in host"))?;
            let host = &v6[..end];
            match v6[end + 1..].strip_prefix(':') {
                Some(p) => (host.to_string(), p),
                None => (host.to_string(), ""),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p),
                None => (hostport.to_string(), ""),
            }
        };
        let port = if port.is_empty() {
            5672
        } else {
            port.parse::<u16>().map_err(|_| format!("'{s}': bad port '{port}'"))?
        };
        let host = if host.is_empty() { "localhost".to_string() } else { host };
        let vhost = if path.is_empty() { "/".to_string() } else { percent_decode(path)? };
        Ok(AmqpUri { host, port, user, password, vhost })
    }
}

/// Who publishes where and who consumes what.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    pub queues: Vec<String>,
    /// Routing keys of each producer, used round-robin message by message.
    pub producer_keys: Vec<Vec<String>>,
    /// The queue each consumer reads.
    pub consumer_queues: Vec<String>,
    /// (queue, binding key) pairs, when publishing to a named exchange.
    pub bindings: Vec<(String, String)>,
}

impl Options {
    /// Checks combinations clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = &self.queue_pattern {
            if !p.contains("%d") {
                return Err(format!("--queue-pattern '{p}' must contain %d"));
            }
        }
        if self.queue_count == 0 {
            return Err("--queue-count must be at least 1".into());
        }
        if self.queue_pattern.is_none() && self.queue_count != 1 {
            return Err("--queue-count needs --queue-pattern".into());
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err("--rate must be a number >= 0".into());
        }
        if let Some(d) = self.duration {
            if !(d > 0.0 && d.is_finite()) {
                return Err("--duration must be > 0".into());
            }
        }
        if self.multi_ack == 0 {
            return Err("--multi-ack must be at least 1".into());
        }
        if self.tx_batch > 0 && self.auto_ack {
            return Err("--tx-batch acknowledges in transactions: it cannot go with --auto-ack".into());
        }
        if self.tx_batch > 0 && self.prefetch > 0 && u32::from(self.prefetch) < self.tx_batch {
            return Err("--prefetch must be at least --tx-batch (a batch must fit in the prefetch)".into());
        }
        if self.confirm > MAX_CONFIRM_WINDOW {
            return Err(format!("--confirm must be at most {MAX_CONFIRM_WINDOW}"));
        }
        if self.batch == 0 {
            return Err("--batch must be at least 1".into());
        }
        if self.connect_concurrency == 0 {
            return Err("--connect-concurrency must be at least 1".into());
        }
        if self.size > 128 * 1024 * 1024 {
            return Err("--size must be at most 128 MiB".into());
        }
        AmqpUri::parse(&self.uri)?;
        Ok(())
    }

    pub fn queue_names(&self) -> Vec<String> {
        match (&self.queue, &self.queue_pattern) {
            (Some(q), _) => vec![q.clone()],
            (None, Some(p)) => (1..=self.queue_count).map(|i| p.replace("%d", &i.to_string())).collect(),
            (None, None) => vec!["warren-perf".to_string()],
        }
    }

    /// Acks are sent every this many messages (never more than the prefetch, which would stall).
    pub fn effective_multi_ack(&self) -> u32 {
        if self.prefetch > 0 {
            self.multi_ack.min(u32::from(self.prefetch))
        } else {
            self.multi_ack
        }
    }

    pub fn topology(&self) -> Topology {
        let queues = self.queue_names();
        let nq = queues.len();
        let producer_keys = (0..self.producers)
            .map(|i| {
                if let Some(rk) = &self.routing_key {
                    return vec![rk.clone()];
                }
                if self.producers >= nq {
                    vec![queues[i % nq].clone()]
                } else {
                    queues.iter().skip(i).step_by(self.producers).cloned().collect()
                }
            })
            .collect();
        let consumer_queues = (0..self.consumers).map(|i| queues[i % nq].clone()).collect();
        let bindings = if self.exchange.is_empty() {
            Vec::new()
        } else {
            queues
                .iter()
                .map(|q| {
                    let key =
                        self.binding_key.clone().or_else(|| self.routing_key.clone()).unwrap_or(q.clone());
                    (q.clone(), key)
                })
                .collect()
        };
        Topology { queues, producer_keys, consumer_queues, bindings }
    }

    pub fn durable_queues(&self) -> bool {
        self.persistent || self.durable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Options {
        let mut v = vec!["warren-perf"];
        v.extend_from_slice(args);
        let o = Options::try_parse_from(v).expect("parse");
        o.validate().expect("valid");
        o
    }

    fn parse_err(args: &[&str]) -> String {
        let mut v = vec!["warren-perf"];
        v.extend_from_slice(args);
        match Options::try_parse_from(v) {
            Err(e) => e.to_string(),
            Ok(o) => o.validate().expect_err("should be invalid"),
        }
    }

    #[test]
    fn defaults() {
        let o = opts(&[]);
        assert_eq!((o.producers, o.consumers, o.size, o.confirm, o.prefetch), (1, 1, 16, 0, 0));
        assert_eq!(o.multi_ack, 1);
        assert!(!o.auto_ack && !o.persistent && !o.json && !o.predeclared);
        assert_eq!(o.exchange, "");
        assert_eq!(o.exchange_type, ExchangeKind::Direct);
        assert_eq!(o.rate, 0.0);
        assert_eq!(o.duration, None);
        assert_eq!(o.queue_names(), ["warren-perf"]);
        assert_eq!(AmqpUri::parse(&o.uri).unwrap().vhost, "/");
    }

    #[test]
    fn perftest_style_flags() {
        let o = opts(&[
            "--producers",
            "2",
            "--consumers",
            "3",
            "--size",
            "1024",
            "--confirm",
            "500",
            "--prefetch",
            "100",
            "--multi-ack",
            "10",
            "--persistent",
            "--exchange",
            "ex",
            "--type",
            "topic",
            "--routing-key",
            "a.b",
            "--binding-key",
            "a.*",
            "--rate",
            "1000",
            "--duration",
            "2.5",
            "--pmessages",
            "7",
            "--cmessages",
            "9",
            "--queue-args",
            "x-max-length=10,x-queue-type=classic,x-single-active-consumer=true",
            "--predeclared",
            "--json",
        ]);
        assert_eq!((o.producers, o.consumers, o.size, o.confirm, o.prefetch), (2, 3, 1024, 500, 100));
        assert_eq!(o.multi_ack, 10);
        assert!(o.persistent && o.durable_queues() && o.predeclared && o.json);
        assert_eq!(o.exchange_type, ExchangeKind::Topic);
        assert_eq!(o.exchange_type.as_str(), "topic");
        assert_eq!(o.rate, 1000.0);
        assert_eq!(o.duration, Some(2.5));
        assert_eq!((o.pmessages, o.cmessages), (7, 9));
        let args = o.queue_args.as_ref().unwrap();
        assert_eq!(args.0[0], ("x-max-length".into(), FieldValue::I64(10)));
        assert_eq!(args.0[1], ("x-queue-type".into(), FieldValue::LongStr("classic".into())));
        assert_eq!(args.0[2], ("x-single-active-consumer".into(), FieldValue::Bool(true)));
        assert_eq!(args.to_table().len(), 3);
        let t = o.topology();
        assert_eq!(t.producer_keys, vec![vec!["a.b".to_string()]; 2]);
        assert_eq!(t.bindings, vec![("warren-perf".to_string(), "a.*".to_string())]);
    }

    #[test]
    fn queue_args_parsing() {
        assert_eq!(parse_queue_args(""), Ok(QueueArgs(vec![])));
        assert_eq!(
            parse_queue_args(" x-message-ttl = -5 , x-dead-letter-exchange=dlx ").unwrap().0,
            vec![
                ("x-message-ttl".to_string(), FieldValue::I64(-5)),
                ("x-dead-letter-exchange".to_string(), FieldValue::LongStr("dlx".into()))
            ]
        );
        assert!(parse_queue_args("novalue").is_err());
        assert!(parse_queue_args("=v").is_err());
        assert!(parse_err(&["--queue-args", "oops"]).contains("key=value"));
    }

    #[test]
    fn queue_patterns_and_assignment() {
        let o =
            opts(&["--queue-pattern", "q-%d", "--queue-count", "5", "--producers", "2", "--consumers", "7"]);
        let t = o.topology();
        assert_eq!(t.queues, ["q-1", "q-2", "q-3", "q-4", "q-5"]);
        // Fewer producers than queues: each cycles over its share.
        assert_eq!(t.producer_keys, vec![vec!["q-1", "q-3", "q-5"], vec!["q-2", "q-4"]]);
        assert_eq!(t.consumer_queues, ["q-1", "q-2", "q-3", "q-4", "q-5", "q-1", "q-2"]);
        assert!(t.bindings.is_empty());
        // More producers than queues: each sticks to one queue.
        let o = opts(&["--queue", "only", "--producers", "3"]);
        assert_eq!(o.topology().producer_keys, vec![vec!["only"]; 3]);
        // A named fanout exchange binds every queue by its name.
        let o =
            opts(&["--exchange", "fan", "--type", "fanout", "--queue-pattern", "f%d", "--queue-count", "2"]);
        let t = o.topology();
        assert_eq!(t.bindings, vec![("f1".into(), "f1".into()), ("f2".into(), "f2".into())]);
        assert_eq!(t.producer_keys, vec![vec!["f1", "f2"]]);
    }

    #[test]
    fn invalid_combinations() {
        assert!(parse_err(&["--queue-pattern", "nopct", "--queue-count", "2"]).contains("%d"));
        assert!(parse_err(&["--queue-count", "2"]).contains("--queue-pattern"));
        assert!(parse_err(&["--queue", "a", "--queue-pattern", "b%d"]).contains("cannot be used"));
        assert!(parse_err(&["--multi-ack", "0"]).contains("multi-ack"));
        assert!(parse_err(&["--rate=-1"]).contains("rate"));
        assert!(parse_err(&["--duration", "0"]).contains("duration"));
        assert!(parse_err(&["--type", "bogus"]).contains("bogus"));
        assert!(parse_err(&["--uri", "http://x"]).contains("amqp://"));
        assert!(parse_err(&["--self-test", "--sink", "127.0.0.1:1"]).contains("cannot be used"));
    }

    #[test]
    fn multi_ack_is_capped_by_prefetch() {
        assert_eq!(opts(&["--multi-ack", "500", "--prefetch", "100"]).effective_multi_ack(), 100);
        assert_eq!(opts(&["--multi-ack", "50", "--prefetch", "100"]).effective_multi_ack(), 50);
        assert_eq!(opts(&["--multi-ack", "500"]).effective_multi_ack(), 500);
    }

    #[test]
    fn uri_parsing() {
        let u = AmqpUri::parse("amqp://u%40x:p%3Aw@broker:5673/my%2fvh").unwrap();
        assert_eq!(
            u,
            AmqpUri {
                host: "broker".into(),
                port: 5673,
                user: "u@x".into(),
                password: "p:w".into(),
                vhost: "my/vh".into()
            }
        );
        let u = AmqpUri::parse("amqp://localhost").unwrap();
        assert_eq!(
            (u.user.as_str(), u.password.as_str(), u.port, u.vhost.as_str()),
            ("guest", "guest", 5672, "/")
        );
        assert_eq!(AmqpUri::parse("amqp://h/").unwrap().vhost, "/");
        assert_eq!(AmqpUri::parse("amqp://h/%2f").unwrap().vhost, "/");
        assert_eq!(AmqpUri::parse("amqp://h/prod?heartbeat=5").unwrap().vhost, "prod");
        assert_eq!(AmqpUri::parse("amqp://[::1]:5000/").unwrap().host, "::1");
        assert_eq!(AmqpUri::parse("amqp://[::1]:5000/").unwrap().port, 5000);
        assert!(AmqpUri::parse("amqp://h:99999/").is_err());
        assert!(AmqpUri::parse("amqps://h/").is_err());
        assert!(AmqpUri::parse("amqp://h/%zz").is_err());
        assert_eq!(AmqpUri::parse("amqp://a:b@h:1/%2f").unwrap().to_string(), "amqp://a@h:1/%2f");
    }
}
