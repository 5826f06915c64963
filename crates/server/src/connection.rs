//! One client connection: the socket's read side feeds the sans-IO connection state machine and
//! the broker session; a writer task drains the connection's outbox, one write per batch. When the
//! broker shuts down, the machine is told to close the connection. Plain TCP and TLS connections
//! are both served here (see [`Transport`]).

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, Notify};
use warren_amqp::{Batch, Outbox, Session, READ_PAUSE_MARK};
use warren_broker::{ConnectionEntry, Counter, Now};
use warren_connection::{AmqpError, Connection};

use crate::admission::Admission;
use crate::connections::Registered;
use crate::listener::Shared;
use crate::transport::Transport;

/// The most a single read takes in: up to this much is parsed and routed as one batch.
const READ_CHUNK: usize = 64 * 1024;
/// Where the read buffer starts: an idle connection should cost little memory. A read that
/// fills the buffer doubles its size, up to READ_CHUNK.
const FIRST_READ_CHUNK: usize = 4 * 1024;

/// Who the client is, as the accepting side knows before the AMQP handshake.
pub struct Accepted {
    pub peer: SocketAddr,
    /// When the socket was accepted: the handshake timeout counts from then (a TLS handshake
    /// included).
    pub at: Instant,
    /// The user named by a verified TLS client certificate (SASL EXTERNAL is offered).
    pub certificate_login: Option<String>,
    /// The server's end of the socket, and whether it is TLS (the management API shows them).
    pub endpoint: Option<warren_broker::Endpoint>,
}

/// Serves one accepted connection until it closes; `registered` counts it meanwhile.
pub async fn serve<T: Transport>(stream: T, accepted: Accepted, shared: Arc<Shared>, registered: Registered) {
    let Accepted { peer, at, certificate_login, endpoint } = accepted;
    let mut alarm = shared.alarm.clone();
    let mut shutdown = shared.connections.shutdown_signal();
    let mut stopping = false;
    let (mut reader, writer) = stream.into_split();
    let notify = Arc::new(Notify::new());
    let wake = notify.clone();
    let drained = Arc::new(Notify::new());
    let wake_drained = drained.clone();
    let outbox = Arc::new(Outbox::new(
        Box::new(move || wake.notify_one()),
        Box::new(move || wake_drained.notify_one()),
    ));

    let mut conn = Connection::new(shared.config.clone(), at);
    if let Some(username) = certificate_login {
        conn.offer_external(username);
    }
    let synced = Arc::new(Notify::new());
    let wake = synced.clone();
    let node = shared.node.clone();
    let mut session =
        Session::new(node, Some(peer), outbox.clone(), Arc::new(move || wake.notify_one()), now());
    if let Some(endpoint) = endpoint {
        session.entry().set_endpoint(endpoint);
    }
    let flow = Arc::new(Notify::new());
    let wake = flow.clone();
    session.set_flow_waker(Arc::new(move || wake.notify_one()));
    let writer = tokio::spawn(write_loop(writer, outbox.clone(), notify, session.entry().clone()));
    // The caller's span names the connection on every line logged for it, the machine's too.
    tracing::Span::current().record("id", session.id());
    let mut read_chunk = FIRST_READ_CHUNK;
    let mut input = BytesMut::with_capacity(read_chunk);
    let mut told_blocked = false;
    let mut reading_held = false;
    loop {
        let timeout = conn.poll_timeout();
        // While a resource alarm is on, a publishing connection is not read from: TCP
        // backpressure holds its publishers, as RabbitMQ does. Nor is one whose client does not
        // read what it is sent: replies would pile up.
        // Nor, for a while, is one that publishes to a queue whose consumers are behind (flow
        // control): publishers slow to what consumers take.
        let held = (alarm.borrow().any() && session.blocked_by_alarm()) || session.held_back();
        if held != reading_held {
            conn.hold_reading(held, Instant::now());
            reading_held = held;
        }
        let paused = held || !outbox.has_room(READ_PAUSE_MARK);
        tokio::select! {
            read = reader.read_buf(&mut input), if !paused => match read {
                Ok(0) | Err(_) => conn.handle_eof(),
                Ok(n) => {
                    session.entry().counters().add_owned(Counter::BytesIn, n as u64);
                    if n >= read_chunk / 2 {
                        read_chunk = (read_chunk * 2).min(READ_CHUNK);
                    }
                    let now = now();
                    loop {
                        let mut host = Admission { session: &mut session, connections: &shared.connections };
                        conn.handle_input(&mut input, now.instant, &mut host);
                        if !conn.has_events() {
                            break;
                        }
                        session.handle_events(&mut conn, now);
                    }
                }
            },
            _ = sleep_until(timeout) => conn.handle_timeout(Instant::now()),
            _ = synced.notified() => session.on_synced(&mut conn),
            _ = drained.notified() => session.on_drained(&mut conn, now()),
            _ = flow.notified() => session.flow_released(),
            changed = alarm.changed() => if changed.is_err() { conn.handle_eof() },
            _ = shutting_down(&mut shutdown), if !stopping => {
                stopping = true;
                conn.force_close(AmqpError::broker_forced("shutdown"), Instant::now());
                session.handle_events(&mut conn, now());
            }
        }
        // As RabbitMQ, only connections that publish are blocked, and told so.
        let reason = alarm.borrow_and_update().reason().filter(|_| session.blocked_by_alarm());
        if reason.is_some() != told_blocked && conn.is_open() {
            session.resource_alarm(&mut conn, reason);
            told_blocked = reason.is_some();
        }
        session.end_of_batch(&mut conn);
        if conn.is_closed() {
            break;
        }
        if input.capacity() - input.len() < read_chunk / 4 {
            input.reserve(read_chunk);
        }
    }
    // Channels the state machine released on close produce events too.
    session.handle_events(&mut conn, now());
    session.end_of_batch(&mut conn);
    session.close();
    // Like RabbitMQ, let the client close the socket first: closing ours right after close-ok
    // can make the client read EOF before it has taken in the close-ok.
    if conn.linger_before_close() {
        linger(&mut reader, &mut input).await;
    }
    session.outbox().close();
    let _ = writer.await;
    drop(registered);
}

/// Returns once the broker is shutting down.
async fn shutting_down(signal: &mut watch::Receiver<bool>) {
    let _ = signal.wait_for(|stop| *stop).await;
}

/// How long a closed connection waits for the client to close its side.
const LINGER: std::time::Duration = std::time::Duration::from_secs(3);

/// Reads and discards until the peer closes its side, or LINGER passes.
async fn linger(reader: &mut (impl AsyncRead + Unpin), scratch: &mut BytesMut) {
    let _ = tokio::time::timeout(LINGER, async {
        loop {
            scratch.clear();
            match reader.read_buf(scratch).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Writes whatever the outbox holds, in one write per wake-up, until it is closed and drained.
async fn write_loop(
    mut writer: impl AsyncWrite + Unpin,
    outbox: Arc<Outbox>,
    notify: Arc<Notify>,
    entry: Arc<ConnectionEntry>,
) {
    loop {
        let batch = outbox.take();
        if batch.is_empty() {
            if outbox.is_closed() {
                break;
            }
            notify.notified().await;
            continue;
        }
        let written = batch.len();
        if write_batch(&mut writer, &batch).await.is_err() {
            outbox.close();
            break;
        }
        entry.counters().add_owned(Counter::BytesOut, written as u64);
        outbox.recycle(batch.tail);
    }
    let _ = writer.shutdown().await;
}

/// Writes a batch: one write when it is a single buffer (the common case), else one vectored
/// write of its shared parts and its tail (large bodies are not copied).
async fn write_batch(writer: &mut (impl AsyncWrite + Unpin), batch: &Batch) -> std::io::Result<()> {
    if batch.parts.is_empty() {
        return writer.write_all(&batch.tail).await;
    }
    let mut slices: Vec<IoSlice<'_>> = batch.parts.iter().map(|p| IoSlice::new(p)).collect();
    slices.push(IoSlice::new(&batch.tail));
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        let n = writer.write_vectored(slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// The time, as the broker core takes it.
pub fn now() -> Now {
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Now::new(Instant::now(), unix_ms)
}
