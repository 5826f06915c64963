//! Scenario helpers around lapin, the client the integration tests use:
//! every helper logs what the application sees (ok / reply code and text,
//! deliveries with tag, redelivered flag, routing and body).

use std::pin::Pin;

use futures_lite::{Stream, StreamExt};
use lapin::message::Delivery;
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ErrorKind, Event};

use crate::harness::{within, Abort, Ctx, Res};
use crate::wire;

/// `NNN TEXT` for an AMQP error, else lapin's description.
pub fn describe_error(e: &lapin::Error) -> String {
    match e.kind() {
        ErrorKind::ProtocolError(err) => format!("{} {}", err.get_id(), err.get_message()),
        other => format!("{other:?}"),
    }
}

/// `ok` or `error NNN TEXT`.
pub fn outcome<T>(r: &lapin::Result<T>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("error {}", describe_error(e)),
    }
}

/// A delivery as the application sees it.
pub fn delivery_line(d: &Delivery) -> String {
    format!(
        "deliver tag={} redelivered={} exchange={} routing-key={} body={}",
        d.delivery_tag,
        d.redelivered,
        wire::quote(d.exchange.as_str().as_bytes()),
        wire::quote(d.routing_key.as_str().as_bytes()),
        wire::render_body(&d.data)
    )
}

/// A lapin connection with its event stream (to see asynchronous closes).
pub struct Lapin {
    cx: Ctx,
    label: String,
    pub conn: Connection,
    // In a Mutex only to make `Lapin` Sync (it is used through `&mut`).
    events: std::sync::Mutex<Pin<Box<dyn Stream<Item = Event> + Send>>>,
}

impl Lapin {
    pub async fn connect(cx: &Ctx, label: &str) -> Res<Lapin> {
        let conn = within("lapin connect", Connection::connect(&cx.url(), ConnectionProperties::default()))
            .await?
            .map_err(|e| Abort(format!("{label}: lapin connect: {}", describe_error(&e))))?;
        let events = std::sync::Mutex::new(
            Box::pin(conn.events_listener()) as Pin<Box<dyn Stream<Item = Event> + Send>>
        );
        Ok(Lapin { cx: cx.clone(), label: label.to_string(), conn, events })
    }

    /// Logs `label what`.
    pub fn log(&self, what: impl AsRef<str>) {
        self.cx.log(format!("{} {}", self.label, what.as_ref()));
    }

    /// Logs `label what: outcome` and passes the result on.
    pub fn note<T>(&self, what: &str, r: lapin::Result<T>) -> lapin::Result<T> {
        self.log(format!("{what}: {}", outcome(&r)));
        r
    }

    pub async fn channel(&self) -> Res<Channel> {
        Ok(within("create channel", self.conn.create_channel()).await??)
    }

    /// Waits for the next asynchronous AMQP error (a close sent by the
    /// server) and logs it.
    pub async fn next_error(&mut self) -> Res<()> {
        loop {
            let ev = within("connection event", self.events.get_mut().unwrap().next())
                .await?
                .ok_or_else(|| Abort("lapin event stream ended".into()))?;
            if let Event::Error(e) = ev {
                if let ErrorKind::ProtocolError(_) = e.kind() {
                    self.log(format!("async error {}", describe_error(&e)));
                    return Ok(());
                }
            }
        }
    }

    /// Next delivery of a consumer (logged).
    pub async fn next_delivery(&self, consumer: &mut Consumer) -> Res<Delivery> {
        let d = within("delivery", consumer.next())
            .await?
            .ok_or_else(|| Abort("consumer stream ended".into()))?
            .map_err(Abort::from)?;
        self.log(delivery_line(&d));
        Ok(d)
    }

    /// Polls with passive declares on `ch` until `queue` holds `want` ready
    /// messages (or the deadline passes), then logs the last observation.
    pub async fn await_count(&self, ch: &Channel, queue: &str, want: u32) -> Res<()> {
        let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        let deadline = std::time::Instant::now() + crate::harness::POLL_DEADLINE;
        let last = loop {
            let r = within("passive declare", ch.queue_declare(queue.into(), passive, Default::default()))
                .await?;
            match r {
                Ok(q) if q.message_count() != want && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Ok(q) => {
                    break format!(
                        "message_count={} consumer_count={}",
                        q.message_count(),
                        q.consumer_count()
                    )
                }
                Err(e) => break format!("error {}", describe_error(&e)),
            }
        };
        self.log(format!("poll {queue} for {want} ready: {last}"));
        Ok(())
    }

    pub async fn close(self) -> Res<()> {
        let r = within("connection close", self.conn.close(200, "bye".into())).await?;
        self.log(format!("close: {}", outcome(&r)));
        Ok(())
    }
}
