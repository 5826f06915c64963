//! `warren consume`: messages from a queue (or from an exchange through a private server-named
//! queue) to stdout, one per line, as amqp-consume does; acknowledged once written out, so a
//! crash loses none. (What went into a pipe counts as written: `| head -n 3` acknowledges what
//! the pipe held when head left; `-n 3` takes exactly three.)

use std::io::{BufWriter, ErrorKind, Write};

use base64::Engine;
use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};
use warren_protocol::methods::{BasicAck, BasicConsume, BasicQos, Method, QueueBind, QueueDeclare};
use warren_protocol::Frame;

use super::amqp_url::AmqpUrl;
use super::client::{AmqpError, Connection};
use super::progress::Progress;
use crate::exit_code;

/// How a message is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The body, then a line break.
    Body,
    /// One JSON object per line: exchange, routing_key, redelivered, properties, body (text,
    /// or body_base64 when it is not UTF-8).
    Json,
}

/// What `warren consume` takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumeArgs {
    /// The broker: amqp://user:password@host:port/vhost (the vhost %-escaped: %2F is "/"), or
    /// amqps:// with --cacert.
    #[arg(long, env = "WARREN_AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2F")]
    pub url: String,
    /// PEM file with the CA certificate(s) an amqps broker's certificate is checked against.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<std::path::PathBuf>,
    /// The queue to consume from.
    #[arg(short = 'q', long, required_unless_present = "exchange", conflicts_with = "exchange")]
    pub queue: Option<String>,
    /// Consume what this exchange routes, through a server-named queue of this run's own.
    #[arg(short = 'e', long)]
    pub exchange: Option<String>,
    /// The binding key of that queue ("#": everything a topic exchange routes).
    #[arg(short = 'r', long = "routing-key", default_value = "#", requires = "exchange")]
    pub routing_key: String,
    /// Stop after this many messages [default: run until interrupted].
    #[arg(short = 'n', long)]
    pub count: Option<u64>,
    /// Let the broker forget each message as it sends it (faster; with -n, messages sent past
    /// the count are lost).
    #[arg(long)]
    pub no_ack: bool,
    /// How many unacknowledged messages the broker may send ahead.
    #[arg(long, default_value_t = 100)]
    pub prefetch: u16,
    /// How each message is written.
    #[arg(long, value_enum, default_value = "body")]
    pub format: Format,
    /// Show the progress line on stderr even when it is not a terminal.
    #[arg(long)]
    pub progress: bool,
}

/// Runs `warren consume`; the exit status.
pub fn run(args: ConsumeArgs) -> i32 {
    let url = match AmqpUrl::parse(&args.url)
        .and_then(|url| url.check_cacert(args.cacert.as_deref()).map(|()| url))
    {
        Ok(url) => url,
        Err(e) => {
            eprintln!("Error: {e}");
            return exit_code::USAGE;
        }
    };
    match consume(&url, &args) {
        Ok(()) => exit_code::OK,
        Err(e) => {
            eprintln!("Error: {e}");
            e.exit_code()
        }
    }
}

/// A delivery being assembled from its frames.
struct Incoming {
    tag: u64,
    exchange: String,
    routing_key: String,
    redelivered: bool,
    properties: Bytes,
    size: u64,
    body: BytesMut,
}

fn consume(url: &AmqpUrl, args: &ConsumeArgs) -> Result<(), AmqpError> {
    let mut conn = Connection::open(url, "warren consume", args.cacert.as_deref())?;
    let queue = match (&args.queue, &args.exchange) {
        (Some(queue), _) => queue.clone(),
        (None, Some(exchange)) => {
            let declared =
                conn.rpc(QueueDeclare { exclusive: true, auto_delete: true, ..Default::default() })?;
            let Method::QueueDeclareOk(ok) = declared else {
                return Err(AmqpError::Broken {
                    url: url.show(),
                    cause: format!("expected queue.declare-ok, got {}", declared.name()),
                });
            };
            conn.rpc(QueueBind {
                queue: ok.queue.clone(),
                exchange: exchange.as_str().into(),
                routing_key: args.routing_key.as_str().into(),
                ..Default::default()
            })?;
            ok.queue.to_string()
        }
        (None, None) => unreachable!("clap requires --queue or --exchange"),
    };
    if !args.no_ack {
        conn.rpc(BasicQos { prefetch_count: args.prefetch, ..Default::default() })?;
    }
    conn.rpc(BasicConsume { queue: queue.as_str().into(), no_ack: args.no_ack, ..Default::default() })?;

    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let mut progress = Progress::new("consumed", args.progress);
    let mut incoming: Option<Incoming> = None;
    let mut consumed = 0u64;
    let mut unacked_up_to: Option<u64> = None;
    let mut output_closed = false;
    let limit = args.count.unwrap_or(u64::MAX);
    while consumed < limit && !output_closed {
        let frame = match conn.buffered_frame()? {
            Some(frame) => frame,
            None => {
                // About to wait: what was written goes out, then its acks.
                if !written(out.flush()) {
                    output_closed = true;
                    break;
                }
                settle(&mut conn, &mut unacked_up_to)?;
                conn.frame()?
            }
        };
        let complete = match frame {
            Frame::Method { method: Method::BasicDeliver(d), .. } => {
                incoming = Some(Incoming {
                    tag: d.delivery_tag,
                    exchange: d.exchange.to_string(),
                    routing_key: d.routing_key.to_string(),
                    redelivered: d.redelivered,
                    properties: Bytes::new(),
                    size: 0,
                    body: BytesMut::new(),
                });
                false
            }
            Frame::Method { method: Method::BasicCancel(_), .. } => {
                return Err(AmqpError::Closed {
                    url: url.show(),
                    what: "consumer",
                    code: 0,
                    text: format!("the broker cancelled it (queue \"{queue}\" deleted?)"),
                });
            }
            Frame::Header { header, .. } => match incoming.as_mut() {
                Some(m) => {
                    m.size = header.body_size;
                    m.properties = header.properties;
                    m.size == 0
                }
                None => false,
            },
            Frame::Body { payload, .. } => match incoming.as_mut() {
                Some(m) => {
                    m.body.extend_from_slice(&payload);
                    m.body.len() as u64 >= m.size
                }
                None => false,
            },
            _ => false,
        };
        if !complete {
            continue;
        }
        let message = incoming.take().expect("a complete delivery");
        if !written(write_message(&mut out, &message, args.format)) {
            output_closed = true;
            break;
        }
        consumed += 1;
        if !args.no_ack {
            unacked_up_to = Some(message.tag);
        }
        progress.tick(consumed);
    }
    if !output_closed && written(out.flush()) {
        settle(&mut conn, &mut unacked_up_to)?;
    }
    progress.finish(consumed);
    // Deliveries read past the count and not acknowledged go back to the queue with the
    // connection.
    conn.close()
}

/// Acknowledges everything written so far, in one ack.
fn settle(conn: &mut Connection, unacked_up_to: &mut Option<u64>) -> Result<(), AmqpError> {
    if let Some(tag) = unacked_up_to.take() {
        conn.send(BasicAck { delivery_tag: tag, multiple: true });
        conn.flush()?;
    }
    Ok(())
}

/// Whether the output took it; a closed pipe ends the run quietly, other errors too (there is
/// nowhere left to write), after saying so.
fn written(result: std::io::Result<()>) -> bool {
    match result {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::BrokenPipe => false,
        Err(e) => {
            eprintln!("Error: writing to standard output: {e}");
            false
        }
    }
}

fn write_message(out: &mut impl Write, m: &Incoming, format: Format) -> std::io::Result<()> {
    match format {
        Format::Body => {
            out.write_all(&m.body)?;
            out.write_all(b"\n")
        }
        Format::Json => {
            let mut line = json!({
                "exchange": m.exchange,
                "routing_key": m.routing_key,
                "redelivered": m.redelivered,
                "properties": Value::Object(warren_management::api::message_properties(&m.properties)),
            });
            match std::str::from_utf8(&m.body) {
                Ok(text) => line["body"] = json!(text),
                Err(_) => {
                    line["body_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(&m.body))
                }
            }
            writeln!(out, "{line}")
        }
    }
}
