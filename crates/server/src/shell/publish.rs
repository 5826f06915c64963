//! `warren publish`: messages from the command line or stdin to an exchange, as amqp-publish
//! does, with publisher confirms on request and a progress line on long runs.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};

use bytes::{Bytes, BytesMut};
use warren_protocol::methods::{BasicPublish, ConfirmSelect, ExchangeDeclare, Method};
use warren_protocol::{BasicProperties, FieldTable, FieldValue, Frame};

use super::amqp_url::AmqpUrl;
use super::client::{AmqpError, Connection};
use super::progress::Progress;
use crate::exit_code;

/// Flush once this much is buffered.
const MAX_WRITE: usize = 64 * 1024;
/// At most this many messages wait for their confirm.
const CONFIRM_WINDOW: usize = 1024;

/// What `warren publish` takes.
#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {
    /// The broker: amqp://user:password@host:port/vhost (the vhost %-escaped: %2F is "/"), or
    /// amqps:// with --cacert.
    #[arg(long, env = "WARREN_AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2F")]
    pub url: String,
    /// PEM file with the CA certificate(s) an amqps broker's certificate is checked against.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<std::path::PathBuf>,
    /// The exchange ("" is the default exchange, which routes to the queue named by the key).
    #[arg(short = 'e', long, default_value = "")]
    pub exchange: String,
    /// The routing key.
    #[arg(short = 'r', long = "routing-key", default_value = "")]
    pub routing_key: String,
    /// The body; without it, standard input is read (all of it as one message, or one message
    /// per line with --lines).
    #[arg(short = 'b', long)]
    pub body: Option<String>,
    /// One message per line of standard input (the line break is not part of the body).
    #[arg(short = 'l', long, conflicts_with_all = ["body", "count"])]
    pub lines: bool,
    /// How many times to send the body.
    #[arg(short = 'n', long, default_value_t = 1)]
    pub count: u64,
    /// The content-type property.
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
    /// Persistent messages (delivery-mode 2): on disk in durable queues.
    #[arg(long)]
    pub persistent: bool,
    /// A header, NAME=VALUE (a string); repeat for more.
    #[arg(short = 'H', long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// Wait for the broker to confirm every message (publisher confirms); a nack fails.
    #[arg(long)]
    pub confirm: bool,
    /// Unroutable messages come back and fail the run (turns on --confirm, to know when every
    /// return has come).
    #[arg(long)]
    pub mandatory: bool,
    /// Show the progress line on stderr even when it is not a terminal.
    #[arg(long)]
    pub progress: bool,
}

/// Why a run failed, with its exit status.
#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error("{0}")]
    Amqp(#[from] AmqpError),
    #[error("{0}")]
    Usage(String),
    #[error("reading standard input: {0}")]
    Input(std::io::Error),
    #[error("{nacked} of {published} messages were refused (nack) by the broker")]
    Nacked { nacked: u64, published: u64 },
    #[error("{returned} of {published} messages were returned as unroutable")]
    Returned { returned: u64, published: u64 },
}

/// Runs `warren publish`; the exit status.
pub fn run(args: PublishArgs) -> i32 {
    match publish(&args) {
        Ok(()) => exit_code::OK,
        Err(e) => {
            eprintln!("Error: {e}");
            match e {
                PublishError::Amqp(e) => e.exit_code(),
                PublishError::Usage(_) => exit_code::USAGE,
                _ => exit_code::FAILED,
            }
        }
    }
}

fn publish(args: &PublishArgs) -> Result<(), PublishError> {
    let url = AmqpUrl::parse(&args.url).map_err(|e| PublishError::Usage(e.to_string()))?;
    url.check_cacert(args.cacert.as_deref()).map_err(|e| PublishError::Usage(e.to_string()))?;
    let properties = properties(args)?;
    let mut conn = Connection::open(&url, "warren publish", args.cacert.as_deref())?;
    if !args.exchange.is_empty() {
        // A publish to a missing exchange only closes the channel later: ask first, for a
        // clear 404 before anything is read from stdin.
        conn.rpc(ExchangeDeclare {
            exchange: args.exchange.as_str().into(),
            passive: true,
            ..Default::default()
        })?;
    }
    let confirm = args.confirm || args.mandatory;
    if confirm {
        match conn.rpc(ConfirmSelect { nowait: false })? {
            Method::ConfirmSelectOk(_) => {}
            m => {
                return Err(AmqpError::Broken {
                    url: url.show(),
                    cause: format!("expected confirm.select-ok, got {}", m.name()),
                }
                .into())
            }
        }
    }
    let mut run = Run {
        conn,
        args,
        properties,
        confirm,
        unconfirmed: BTreeSet::new(),
        published: 0,
        nacked: 0,
        returned: 0,
        progress: Progress::new("published", args.progress),
    };
    if let Some(body) = &args.body {
        run.repeat(body.as_bytes())?;
    } else if args.lines {
        run.lines()?;
    } else {
        let mut body = Vec::new();
        std::io::stdin().lock().read_to_end(&mut body).map_err(PublishError::Input)?;
        run.repeat(&body)?;
    }
    run.finish()
}

fn properties(args: &PublishArgs) -> Result<Bytes, PublishError> {
    let mut headers = FieldTable::new();
    for header in &args.headers {
        let (name, value) = header
            .split_once('=')
            .ok_or_else(|| PublishError::Usage(format!("--header \"{header}\": expected NAME=VALUE")))?;
        headers.insert(name, FieldValue::LongStr(Bytes::copy_from_slice(value.as_bytes())));
    }
    let properties = BasicProperties {
        content_type: args.content_type.as_deref().map(Into::into),
        delivery_mode: args.persistent.then_some(2),
        headers: (!headers.is_empty()).then_some(headers),
        ..Default::default()
    };
    let mut raw = BytesMut::new();
    properties.encode(&mut raw);
    Ok(raw.freeze())
}

/// One run's connection and counts.
struct Run<'a> {
    conn: Connection,
    args: &'a PublishArgs,
    properties: Bytes,
    confirm: bool,
    /// Delivery tags sent and not yet acked or nacked.
    unconfirmed: BTreeSet<u64>,
    published: u64,
    nacked: u64,
    returned: u64,
    progress: Progress,
}

impl Run<'_> {
    fn repeat(&mut self, body: &[u8]) -> Result<(), PublishError> {
        for _ in 0..self.args.count {
            self.send(body)?;
        }
        Ok(())
    }

    fn lines(&mut self) -> Result<(), PublishError> {
        let mut input = BufReader::with_capacity(64 * 1024, std::io::stdin().lock());
        let mut line = Vec::new();
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line).map_err(PublishError::Input)? == 0 {
                return Ok(());
            }
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            self.send(body)?;
            // Typed lines go out as they come; piped ones in batches.
            if input.buffer().is_empty() {
                self.conn.flush()?;
            }
        }
    }

    fn send(&mut self, body: &[u8]) -> Result<(), PublishError> {
        self.conn.send(BasicPublish {
            exchange: self.args.exchange.as_str().into(),
            routing_key: self.args.routing_key.as_str().into(),
            mandatory: self.args.mandatory,
            ..Default::default()
        });
        self.conn.send_content(&self.properties, body);
        self.published += 1;
        if self.confirm {
            self.unconfirmed.insert(self.published);
        }
        if self.conn.buffered() >= MAX_WRITE {
            self.conn.flush()?;
        }
        while let Some(frame) = self.conn.buffered_frame()? {
            self.handle(frame);
        }
        while self.unconfirmed.len() >= CONFIRM_WINDOW {
            self.conn.flush()?;
            let frame = self.conn.frame()?;
            self.handle(frame);
        }
        self.progress.tick(self.published);
        Ok(())
    }

    fn handle(&mut self, frame: Frame) {
        let Frame::Method { method, .. } = frame else { return };
        match method {
            Method::BasicAck(a) => {
                self.settle(a.delivery_tag, a.multiple);
            }
            Method::BasicNack(n) => self.nacked += self.settle(n.delivery_tag, n.multiple),
            Method::BasicReturn(_) => self.returned += 1,
            _ => {}
        }
    }

    /// Settles `tag` (and every earlier one with `multiple`); how many that was.
    fn settle(&mut self, tag: u64, multiple: bool) -> u64 {
        if multiple {
            let later = self.unconfirmed.split_off(&(tag + 1));
            let settled = self.unconfirmed.len() as u64;
            self.unconfirmed = later;
            settled
        } else {
            u64::from(self.unconfirmed.remove(&tag))
        }
    }

    fn finish(mut self) -> Result<(), PublishError> {
        self.conn.flush()?;
        while !self.unconfirmed.is_empty() {
            let frame = self.conn.frame()?;
            self.handle(frame);
        }
        self.progress.finish(self.published);
        let Run { conn, published, nacked, returned, .. } = self;
        conn.close()?;
        if nacked > 0 {
            return Err(PublishError::Nacked { nacked, published });
        }
        if returned > 0 {
            return Err(PublishError::Returned { returned, published });
        }
        Ok(())
    }
}
