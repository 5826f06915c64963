//! A connection's broker session: applies the [`Event`]s of its [`Connection`] to the broker
//! (declares, bindings, publishes, consumers, acks, confirms, transactions) and writes the
//! replies. One per connection, driven by the connection's task; no I/O of its own.
//!
//! After each event, its effects are applied in one place ([`Session::apply_effects`]):
//! cancelled consumers are told, the replies go to the outbox, then woken queues deliver; the
//! logs the batch wrote are flushed once, at the end of the batch ([`Session::end_of_batch`]).

mod access;
mod basic;
mod channels;
mod declare;
mod modes;
pub(crate) mod reply_to;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use warren_broker::{
    AuthFailure, Broker, ConnectionDetails, ConnectionEntry, ConnectionLease, ConnectionState, Effects,
    FlowWaker, Now, Queue, RefusedLogin, UserAccess, VHost,
};
use warren_connection::{client_capability, AmqpError, ChannelMap, Connection, Event, Host, LoginRefused};
use warren_protocol::{Method, ShortStr};
use warren_store::Transaction;

use crate::channel::ChannelHandle;
use crate::error::amqp_error;
use crate::outbox::Outbox;
use crate::Node;

use modes::Mode;

/// A channel as its own connection sees it.
struct ChannelSession {
    handle: Arc<ChannelHandle>,
    /// basic.qos prefetch_count (global=false) for consumers created from now on.
    consumer_prefetch: u16,
    /// The last queue declared on this channel, for methods that name the queue "".
    last_queue: Option<ShortStr>,
    mode: Mode,
    /// The direct reply-to consumer (basic.consume from `amq.rabbitmq.reply-to`), if any.
    reply: Option<reply_to::ReplyConsumer>,
}

/// See the module documentation.
pub struct Session {
    node: Arc<Node>,
    broker: Arc<Broker>,
    /// This connection in the broker's registry.
    entry: Arc<ConnectionEntry>,
    peer: Option<IpAddr>,
    username: String,
    vhost: Option<Arc<VHost>>,
    /// Counts this connection and its channels against the user's and vhost's limits.
    lease: Option<ConnectionLease>,
    /// The user's permission checks in the vhost.
    checks: Option<UserAccess>,
    outbox: Arc<Outbox>,
    /// Open channels by number: a channel costs the same whatever its number.
    channels: ChannelMap<ChannelSession>,
    exclusive_queues: Vec<Arc<Queue>>,
    /// Reused between publishes so routing allocates nothing.
    routed: Vec<Arc<Queue>>,
    /// What the current event and batch left to do (see the module documentation).
    effects: Effects,
    /// The time of the input being handled.
    now: Now,
    /// Wakes the connection's task when the store has made a batch durable, or a channel
    /// timed out.
    sync_waker: SyncNotify,
    /// The store ticket the connection's task will be woken for, if any.
    wake_registered_for: u64,
    /// The client has published: a resource alarm blocks this connection.
    has_published: bool,
    /// The client understands connection.blocked / unblocked.
    blocked_capability: bool,
    /// Wakes the connection's task when a queue stops holding its publishers back; None: the
    /// connection does not take part in flow control.
    flow_waker: Option<FlowWaker>,
    /// A queue this connection publishes to holds it back: its socket is not read until the
    /// queue releases.
    held_back: bool,
    /// Transactions committed in this batch: sealed once the batch's writes are flushed.
    committed: Vec<Transaction>,
}

/// Called (from the store's syncing thread) to wake a connection waiting for durability.
pub type SyncNotify = Arc<dyn Fn() + Send + Sync>;

impl Host for Session {
    fn authenticate(&mut self, username: &str, password: &str, now: Instant) -> Result<(), LoginRefused> {
        self.broker.authenticate(username, password, self.peer, now).map_err(login_refused)
    }

    fn authenticate_external(&mut self, username: &str, now: Instant) -> Result<(), LoginRefused> {
        self.broker.authenticate_external(username, self.peer, now).map_err(login_refused)
    }

    fn login_refused(&mut self, username: &str, mechanism: &str, reason: LoginRefused, now: Instant) {
        let login = RefusedLogin { username, mechanism, peer: self.peer, reason: auth_failure(reason) };
        self.broker.login_refused(login, now);
    }

    fn open_vhost(&mut self, username: &str, vhost: &str) -> Result<(), AmqpError> {
        let (vhost, lease) = self.broker.open_vhost(username, vhost).map_err(amqp_error)?;
        self.vhost = Some(vhost);
        self.checks = Some(lease.user_access());
        self.lease = Some(lease);
        Ok(())
    }

    fn open_channel(&mut self) -> Result<(), AmqpError> {
        match &mut self.lease {
            Some(lease) => lease.open_channel().map_err(amqp_error),
            None => Ok(()),
        }
    }
}

fn login_refused(failure: AuthFailure) -> LoginRefused {
    match failure {
        AuthFailure::UnknownUser => LoginRefused::UnknownUser,
        AuthFailure::BadPassword => LoginRefused::BadPassword,
        AuthFailure::NotFromLoopback => LoginRefused::NotFromLoopback,
        AuthFailure::TooManyFailures => LoginRefused::TooManyFailures,
        AuthFailure::Malformed => LoginRefused::Malformed,
    }
}

fn auth_failure(refused: LoginRefused) -> AuthFailure {
    match refused {
        LoginRefused::UnknownUser => AuthFailure::UnknownUser,
        LoginRefused::BadPassword => AuthFailure::BadPassword,
        LoginRefused::NotFromLoopback => AuthFailure::NotFromLoopback,
        LoginRefused::TooManyFailures => AuthFailure::TooManyFailures,
        LoginRefused::Malformed => AuthFailure::Malformed,
    }
}

impl Session {
    /// A session for a connection from `peer`, registered with the broker (until
    /// [`Session::close`]); replies and deliveries go to `outbox`. `sync_waker` wakes the
    /// connection's task (durability reached, a channel timed out, a close was requested).
    pub fn new(
        node: Arc<Node>,
        peer: Option<SocketAddr>,
        outbox: Arc<Outbox>,
        sync_waker: SyncNotify,
        now: Now,
    ) -> Self {
        let broker = node.broker.clone();
        let wake = sync_waker.clone();
        let entry = broker.registry().add("AMQP 0-9-1", peer, now.unix_ms, Box::new(move || wake()));
        Session {
            node,
            broker,
            entry,
            peer: peer.map(|p| p.ip()),
            username: String::new(),
            vhost: None,
            lease: None,
            checks: None,
            outbox,
            channels: ChannelMap::default(),
            exclusive_queues: Vec::new(),
            routed: Vec::new(),
            effects: Effects::default(),
            now,
            sync_waker,
            wake_registered_for: 0,
            has_published: false,
            blocked_capability: false,
            flow_waker: None,
            held_back: false,
            committed: Vec::new(),
        }
    }

    /// Makes the connection take part in flow control: when a queue it publishes to holds its
    /// publishers back, [`Session::held_back`] turns true and `waker` is called once the queue
    /// releases (then call [`Session::flow_released`]).
    pub fn set_flow_waker(&mut self, waker: FlowWaker) {
        self.flow_waker = Some(waker);
    }

    /// Whether flow control holds this connection back: its socket should not be read.
    pub fn held_back(&self) -> bool {
        self.held_back
    }

    /// The queue that held this connection back released it (or may have: reading again
    /// finds out).
    pub fn flow_released(&mut self) {
        if self.held_back {
            self.held_back = false;
            self.show_flow(false);
        }
    }

    /// After a batch: if a queue it published to holds publishers back, waits for it.
    fn wait_if_held_back(&mut self) {
        let Some(queue) = self.effects.take_held_back() else { return };
        let Some(waker) = &self.flow_waker else { return };
        // A connection that also consumes is not held back: its acks arrive on the socket that
        // would not be read, and its consumers could not drain the queue that holds it.
        if self.channels.values().any(|ch| ch.handle.has_consumers()) {
            return;
        }
        if !self.held_back && queue.wait_for_flow(waker.clone()) {
            self.held_back = true;
            self.show_flow(true);
        }
    }

    /// Listings show the connection and its channels as in `flow` (or no longer).
    fn show_flow(&self, in_flow: bool) {
        let (from, to) = if in_flow {
            (ConnectionState::Running, ConnectionState::Flow)
        } else {
            (ConnectionState::Flow, ConnectionState::Running)
        };
        if self.entry.state() == from {
            self.entry.set_state(to);
        }
        for ch in self.channels.values() {
            ch.handle.entry.set_flow(in_flow);
        }
    }

    /// The connection's id in the broker (what exclusive queues belong to).
    pub fn id(&self) -> u64 {
        self.entry.id
    }

    /// This connection's registry entry (counters, close requests).
    pub fn entry(&self) -> &Arc<ConnectionEntry> {
        &self.entry
    }

    /// Whether a resource alarm stops reading from this connection (it publishes).
    pub fn blocked_by_alarm(&self) -> bool {
        self.has_published
    }

    /// Tells the client that a resource alarm blocks it (`Some` reason, e.g. "low on disk") or
    /// no longer does (`None`), if it asked to be told.
    pub fn resource_alarm(&mut self, conn: &mut Connection, blocked: Option<&str>) {
        self.entry.set_state(match (blocked.is_some(), self.held_back) {
            (true, _) => ConnectionState::Blocked,
            (false, true) => ConnectionState::Flow,
            (false, false) => ConnectionState::Running,
        });
        if !self.blocked_capability || !conn.is_open() {
            return;
        }
        match blocked {
            Some(reason) => conn.send_blocked(reason),
            None => conn.send_unblocked(),
        }
        self.flush(conn);
    }

    /// The connection's outbox.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Applies every pending event of `conn`, read at `now`.
    pub fn handle_events(&mut self, conn: &mut Connection, now: Now) {
        self.now = now;
        while let Some(event) = conn.poll_event() {
            self.handle_event(conn, event);
            self.apply_effects(conn);
        }
    }

    fn handle_event(&mut self, conn: &mut Connection, event: Event) {
        match event {
            Event::Opened { client_properties, username, vhost, mechanism } => {
                self.username = username.clone();
                self.blocked_capability = client_capability(&client_properties, "connection.blocked");
                self.outbox.set_frame_max(conn.frame_max());
                self.outbox
                    .set_cancel_notify(client_capability(&client_properties, "consumer_cancel_notify"));
                self.entry.opened(ConnectionDetails {
                    user: username,
                    vhost,
                    client_properties,
                    auth_mechanism: mechanism.to_owned(),
                    channel_max: conn.channel_max(),
                    frame_max: conn.frame_max(),
                    heartbeat: conn.heartbeat().as_secs() as u16,
                });
            }
            Event::ChannelOpened(number) => self.open_channel(number),
            Event::ChannelClosed(number) => self.close_channel(number),
            Event::Publish { channel, publish, header, body } => {
                self.has_published = true;
                if let Err(e) = self.publish(conn, channel, publish, header, body) {
                    conn.fail(channel, e.at(60, 40));
                }
            }
            Event::Method { channel, method } => {
                if let Err(e) = self.handle_method(conn, channel, &method) {
                    conn.fail(channel, e.during(&method));
                }
            }
        }
    }

    /// Applies what an event left to do, in a fixed order: cancelled consumers are told, the
    /// event's replies go to the outbox, then woken queues deliver (a client hears of a
    /// cancellation before the delete-ok that caused it, and of consume-ok before the first
    /// delivery).
    fn apply_effects(&mut self, conn: &mut Connection) {
        self.effects.notify_cancelled();
        self.flush(conn);
        self.effects.wake_queues(self.now.instant);
    }

    /// Moves the connection's replies to the outbox, ahead of deliveries about to be made.
    pub fn flush(&self, conn: &mut Connection) {
        if conn.has_output() {
            let out = conn.take_output();
            self.outbox.write(|buf| buf.extend_from_slice(&out));
        }
    }

    /// Called after a batch of input: closes channels that timed out and the connection if a
    /// close was requested, hands what the batch stored to the OS in one go, takes a sync ticket
    /// if anything must become durable, and sends the confirms and commit-oks that need not
    /// wait. The others go out from [`Session::on_synced`].
    pub fn end_of_batch(&mut self, conn: &mut Connection) {
        self.close_timed_out_channels(conn);
        if let Some(reason) = self.entry.take_close_request() {
            // As at shutdown: the client gets its close-ok time from now, not from its last input.
            let error = AmqpError::new(warren_connection::error::CONNECTION_FORCED, reason);
            conn.force_close(error, self.now.instant);
            self.handle_events(conn, self.now);
        }
        self.apply_effects(conn);
        let flushed = self.effects.flush_dirty();
        // Sealed before the ticket is taken, so that the ticket's round commits them; a batch
        // whose writes failed drops them instead (recovery ignores what they wrote).
        // With them, the publishes applied as transactions (deduplicated by a window on disk).
        for transaction in self.committed.drain(..).chain(self.effects.take_transactions()) {
            if !flushed.failed {
                transaction.seal();
            }
        }
        let ticket =
            if flushed.needs_sync && !flushed.failed { self.broker.store().sync_ticket() } else { 0 };
        for ch in self.channels.values_mut() {
            if flushed.failed {
                ch.mode.seal_failed();
            } else {
                ch.mode.seal(ticket);
            }
        }
        self.wait_if_held_back();
        self.on_synced(conn);
    }

    /// Sends whatever the store has made durable since, and asks to be woken for the rest.
    pub fn on_synced(&mut self, conn: &mut Connection) {
        let store = self.broker.store();
        let synced = store.synced();
        let mut waiting = 0;
        for (number, ch) in self.channels.iter_mut() {
            ch.mode.send_ready(number, synced, store.as_ref(), conn, &ch.handle.entry);
            waiting = waiting.max(ch.mode.waiting_for().unwrap_or(0));
        }
        if waiting > synced && waiting > self.wake_registered_for {
            self.wake_registered_for = waiting;
            let wake = self.sync_waker.clone();
            store.on_synced(waiting, Box::new(move || wake()));
        }
        self.flush(conn);
    }

    /// The outbox drained after refusing deliveries: the channels' consumers may take more.
    pub fn on_drained(&mut self, conn: &mut Connection, now: Now) {
        self.now = now;
        for ch in self.channels.values() {
            for queue in ch.handle.consumer_queues() {
                self.effects.wake(&queue);
            }
        }
        self.apply_effects(conn);
    }

    /// Closes the channels the broker found with a delivery unacknowledged past the consumer
    /// timeout, with RabbitMQ's error; their outstanding deliveries are requeued.
    fn close_timed_out_channels(&mut self, conn: &mut Connection) {
        let mut any = false;
        for (number, ch) in self.channels.iter() {
            if let Some(ms) = ch.handle.take_timed_out() {
                let text = format!(
                    "delivery acknowledgement on channel {number} timed out. Timeout value used: {ms} ms. \
                     This timeout value can be configured, see consumers doc guide to learn more"
                );
                tracing::warn!(
                    connection = self.id(),
                    channel = number,
                    timeout_ms = ms,
                    "consumer timed out"
                );
                conn.close_channel(number, AmqpError::precondition_failed(text));
                any = true;
            }
        }
        if any {
            self.handle_events(conn, self.now);
        }
    }

    fn channel(&mut self, number: u16) -> Option<&mut ChannelSession> {
        self.channels.get_mut(&number)
    }

    fn channel_or_err(&mut self, number: u16) -> Result<&mut ChannelSession, AmqpError> {
        self.channel(number).ok_or_else(|| AmqpError::channel_error(format!("channel {number} is not open")))
    }

    fn vhost(&self) -> Result<Arc<VHost>, AmqpError> {
        self.vhost.clone().ok_or_else(|| AmqpError::command_invalid("connection is not open"))
    }

    /// The connection is gone: release every channel and the exclusive queues it owned, and
    /// leave the broker's registry. The outbox stays open so the last replies can still be
    /// written; the caller closes it.
    pub fn close(&mut self) {
        let numbers: Vec<u16> = self.channels.keys().collect();
        for number in numbers {
            self.close_channel(number);
        }
        if let Some(vhost) = self.vhost.clone() {
            for q in std::mem::take(&mut self.exclusive_queues) {
                vhost.remove_queue(&q, &mut self.effects);
            }
        }
        // Messages dead-lettered by the requeues (`x-delivery-limit`) reach their logs.
        self.effects.apply(self.now.instant);
        self.broker.registry().remove(self.entry.id);
        self.lease = None;
    }

    fn handle_method(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        method: &Method,
    ) -> Result<(), AmqpError> {
        match method {
            Method::AccessRequest(_) => {
                let ok = warren_protocol::methods::AccessRequestOk { ticket: 1 };
                conn.send_method(channel, &ok.into());
                Ok(())
            }
            Method::ExchangeDeclare(m) => self.exchange_declare(conn, channel, m),
            Method::ExchangeDelete(m) => self.exchange_delete(conn, channel, m),
            Method::ExchangeBind(m) => self.exchange_bind(conn, channel, m),
            Method::ExchangeUnbind(m) => self.exchange_unbind(conn, channel, m),
            Method::QueueDeclare(m) => self.queue_declare(conn, channel, m),
            Method::QueueBind(m) => self.queue_bind(conn, channel, m),
            Method::QueueUnbind(m) => self.queue_unbind(conn, channel, m),
            Method::QueuePurge(m) => self.queue_purge(conn, channel, m),
            Method::QueueDelete(m) => self.queue_delete(conn, channel, m),
            Method::BasicQos(m) => self.basic_qos(conn, channel, m),
            Method::BasicConsume(m) => self.basic_consume(conn, channel, m),
            Method::BasicCancel(m) => self.basic_cancel(conn, channel, m),
            Method::BasicGet(m) => self.basic_get(conn, channel, m),
            Method::BasicAck(m) => {
                self.settle(channel, m.delivery_tag, m.multiple, warren_broker::Settle::Ack)
            }
            Method::BasicReject(m) => {
                self.settle(channel, m.delivery_tag, false, warren_broker::Settle::reject(m.requeue))
            }
            Method::BasicNack(m) => {
                self.settle(channel, m.delivery_tag, m.multiple, warren_broker::Settle::reject(m.requeue))
            }
            Method::BasicRecover(m) => {
                if !m.requeue {
                    return Err(AmqpError::not_implemented("requeue=false"));
                }
                // recover-ok goes out before the redeliveries, as clients wait for it first.
                conn.send_method(channel, &warren_protocol::methods::BasicRecoverOk {}.into());
                self.recover(channel, m.requeue)
            }
            Method::BasicRecoverAsync(m) => self.recover(channel, m.requeue),
            Method::ConfirmSelect(m) => self.confirm_select(conn, channel, m.nowait),
            Method::TxSelect(_) => self.tx_select(conn, channel),
            Method::TxCommit(_) => self.tx_commit(conn, channel),
            Method::TxRollback(_) => self.tx_rollback(conn, channel),
            _ => Err(AmqpError::command_invalid("unimplemented method")),
        }
    }
}
