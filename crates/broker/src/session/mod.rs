//! A connection's broker session: applies the [`Event`]s of its [`Connection`] to the broker
//! (declares, bindings, publishes, consumers, acks, confirms, transactions) and writes the
//! replies. One per connection, driven by the connection's task; no I/O of its own.

mod basic;
mod declare;
mod modes;
pub mod reply_to;

use std::net::IpAddr;
use std::sync::Arc;

use warren_connection::{client_capability, AmqpError, Connection, Event, Host, LoginRefused};
use warren_protocol::methods::BasicCancel;
use warren_protocol::{frame, Method, ShortStr};

use crate::broker::Broker;
use crate::channel::{ChannelHandle, Unacked};
use crate::outbox::Outbox;
use crate::queue::{Consumer, Queue, Settle};
use crate::vhost::VHost;

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

pub struct Session {
    broker: Arc<Broker>,
    id: u64,
    peer: Option<IpAddr>,
    username: String,
    vhost: Option<Arc<VHost>>,
    outbox: Arc<Outbox>,
    channels: Vec<Option<ChannelSession>>,
    exclusive_queues: Vec<Arc<Queue>>,
    /// Reused between publishes so routing allocates nothing.
    routed: Vec<Arc<Queue>>,
    /// Durable queues written to in this batch of input: flushed together at its end.
    touched: Vec<Arc<Queue>>,
    /// Something other than a queue's log (a durable delayed-message exchange's) was written in
    /// this batch: its end takes a sync ticket even if no queue was touched.
    sync_needed: bool,
    /// Wakes the connection's task when the store has made a batch durable.
    sync_waker: SyncNotify,
    /// The store ticket the connection's task will be woken for, if any.
    wake_registered_for: u64,
    /// The client has published: a resource alarm blocks this connection.
    has_published: bool,
    /// The client understands connection.blocked / unblocked.
    blocked_capability: bool,
}

/// Called (from the store's syncing thread) to wake a connection waiting for durability.
pub type SyncNotify = Arc<dyn Fn() + Send + Sync>;

impl Host for Session {
    fn authenticate(&mut self, username: &str, password: &str) -> Result<(), LoginRefused> {
        use crate::broker::AuthFailure;
        self.broker.authenticate(username, password, self.peer).map_err(|failure| match failure {
            AuthFailure::UnknownUser => LoginRefused::UnknownUser,
            AuthFailure::BadPassword => LoginRefused::BadPassword,
            AuthFailure::NotFromLoopback => LoginRefused::NotFromLoopback,
        })
    }

    fn open_vhost(&mut self, username: &str, vhost: &str) -> Result<(), AmqpError> {
        self.vhost = Some(self.broker.open_vhost(username, vhost)?);
        Ok(())
    }
}

impl Session {
    pub fn new(
        broker: Arc<Broker>,
        peer: Option<IpAddr>,
        outbox: Arc<Outbox>,
        sync_waker: SyncNotify,
    ) -> Self {
        Session {
            id: broker.next_connection_id(),
            broker,
            peer,
            username: String::new(),
            vhost: None,
            outbox,
            channels: Vec::new(),
            exclusive_queues: Vec::new(),
            routed: Vec::new(),
            touched: Vec::new(),
            sync_needed: false,
            sync_waker,
            wake_registered_for: 0,
            has_published: false,
            blocked_capability: false,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether a resource alarm stops reading from this connection (it publishes).
    pub fn blocked_by_alarm(&self) -> bool {
        self.has_published
    }

    /// Tells the client about a resource alarm starting or ending, if it asked to be told.
    pub fn resource_alarm(&mut self, conn: &mut Connection, on: bool) {
        if !self.blocked_capability || !conn.is_open() {
            return;
        }
        if on {
            conn.send_blocked("low on disk");
        } else {
            conn.send_unblocked();
        }
        self.flush(conn);
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Applies every pending event of `conn`.
    pub fn handle_events(&mut self, conn: &mut Connection) {
        while let Some(event) = conn.poll_event() {
            self.handle_event(conn, event);
        }
    }

    fn handle_event(&mut self, conn: &mut Connection, event: Event) {
        match event {
            Event::Opened { client_properties, username, .. } => {
                self.username = username;
                self.blocked_capability = client_capability(&client_properties, "connection.blocked");
                self.outbox.set_frame_max(conn.frame_max());
                self.outbox
                    .set_cancel_notify(client_capability(&client_properties, "consumer_cancel_notify"));
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

    /// Moves the connection's replies to the outbox, ahead of deliveries about to be made.
    pub fn flush(&self, conn: &mut Connection) {
        if conn.has_output() {
            let out = conn.take_output();
            self.outbox.write(|buf| buf.extend_from_slice(&out));
        }
    }

    /// Called after a batch of input: hands what the batch stored to the OS in one go, takes a
    /// sync ticket if anything must become durable, and sends the confirms and commit-oks that
    /// need not wait. The others go out from [`Session::on_synced`].
    pub fn end_of_batch(&mut self, conn: &mut Connection) {
        self.close_timed_out_channels(conn);
        let ticket = self.flush_touched();
        for slot in self.channels.iter_mut().flatten() {
            slot.mode.seal(ticket);
        }
        self.on_synced(conn);
    }

    /// Sends whatever the store has made durable since, and asks to be woken for the rest.
    pub fn on_synced(&mut self, conn: &mut Connection) {
        let store = self.broker.store();
        let synced = store.synced();
        let mut waiting = 0;
        for (number, slot) in self.channels.iter_mut().enumerate() {
            if let Some(ch) = slot {
                ch.mode.send_ready(number as u16, synced, conn);
                waiting = waiting.max(ch.mode.waiting_for().unwrap_or(0));
            }
        }
        if waiting > synced && waiting > self.wake_registered_for {
            self.wake_registered_for = waiting;
            let wake = self.sync_waker.clone();
            store.on_synced(waiting, Box::new(move || wake()));
        }
        self.flush(conn);
    }

    /// Closes the channels the broker found with a delivery unacknowledged past the consumer
    /// timeout, with RabbitMQ's error; their outstanding deliveries are requeued.
    fn close_timed_out_channels(&mut self, conn: &mut Connection) {
        let mut any = false;
        for (number, slot) in self.channels.iter().enumerate() {
            let Some(ch) = slot else { continue };
            if let Some(ms) = ch.handle.take_timed_out() {
                let text = format!(
                    "delivery acknowledgement on channel {number} timed out. Timeout value used: {ms} ms. \
                     This timeout value can be configured, see consumers doc guide to learn more"
                );
                tracing::warn!(connection = self.id, channel = number, timeout_ms = ms, "consumer timed out");
                conn.close_channel(number as u16, AmqpError::precondition_failed(text));
                any = true;
            }
        }
        if any {
            self.handle_events(conn);
        }
    }

    /// Flushes the logs this batch wrote to; returns the sync ticket covering them (0 if none).
    fn flush_touched(&mut self) -> u64 {
        if self.touched.is_empty() && !self.sync_needed {
            return 0;
        }
        self.sync_needed = false;
        self.touched.sort_unstable_by_key(|q| Arc::as_ptr(q) as usize);
        self.touched.dedup_by(|a, b| Arc::ptr_eq(a, b));
        for q in self.touched.drain(..) {
            if let Err(error) = q.flush() {
                tracing::error!(queue = %q.name, %error, "writing to the queue's log failed");
            }
        }
        self.broker.store().sync_ticket()
    }

    fn open_channel(&mut self, number: u16) {
        let index = number as usize;
        if self.channels.len() <= index {
            self.channels.resize_with(index + 1, || None);
        }
        let wake = self.sync_waker.clone();
        let handle = Arc::new(ChannelHandle::new(number, self.outbox.clone()).with_waker(wake));
        self.broker.register_channel(&handle);
        self.channels[index] = Some(ChannelSession {
            handle,
            consumer_prefetch: 0,
            last_queue: None,
            mode: Mode::Plain,
            reply: None,
        });
    }

    fn channel(&mut self, number: u16) -> Option<&mut ChannelSession> {
        self.channels.get_mut(number as usize).and_then(Option::as_mut)
    }

    fn channel_or_err(&mut self, number: u16) -> Result<&mut ChannelSession, AmqpError> {
        self.channel(number).ok_or_else(|| AmqpError::channel_error(format!("channel {number} is not open")))
    }

    fn vhost(&self) -> Result<Arc<VHost>, AmqpError> {
        self.vhost.clone().ok_or_else(|| AmqpError::command_invalid("connection is not open"))
    }

    /// Releases a channel: its consumers go, its unacknowledged deliveries are requeued.
    fn close_channel(&mut self, number: u16) {
        let Some(mut ch) = self.channels.get_mut(number as usize).and_then(Option::take) else {
            return;
        };
        let mut unacked = ch.handle.close();
        // Acks of an uncommitted transaction never happened: those messages go back too.
        unacked.extend(ch.mode.take_uncommitted_settles());
        unacked.sort_by_key(|u| u.tag);
        let mut single_active = Vec::new();
        for (tag, queue) in ch.handle.take_consumers() {
            if queue.remove_consumer(&ch.handle, &tag) {
                self.auto_delete_queue(&queue);
            } else if queue.single_active() {
                single_active.push(queue);
            }
        }
        // Only messages over an `x-delivery-limit` are dead-lettered by a requeue.
        basic::apply_settle(self.vhost.as_deref(), &ch.handle, unacked, Settle::Requeue, &mut self.touched);
        // The next consumer of a single-active-consumer queue takes over, after the requeue.
        for queue in single_active {
            queue.wake();
            if queue.durable {
                basic::touch(&mut self.touched, &queue);
            }
        }
    }

    /// The connection is gone: release every channel and the exclusive queues it owned.
    /// The outbox stays open so the last replies can still be written; the caller closes it.
    pub fn close(&mut self) {
        for number in 0..self.channels.len() {
            self.close_channel(number as u16);
        }
        if let Some(vhost) = self.vhost.clone() {
            for q in std::mem::take(&mut self.exclusive_queues) {
                let (consumers, _) = vhost.remove_queue(&q);
                notify_cancelled(consumers);
            }
        }
        // Messages dead-lettered by the requeues (`x-delivery-limit`) reach their logs.
        self.flush_touched();
    }

    fn auto_delete_queue(&self, queue: &Arc<Queue>) {
        if let Some(vhost) = &self.vhost {
            let (consumers, _) = vhost.remove_queue(queue);
            notify_cancelled(consumers);
        }
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
            Method::BasicAck(m) => self.settle(channel, m.delivery_tag, m.multiple, Settle::Ack),
            Method::BasicReject(m) => self.settle(channel, m.delivery_tag, false, Settle::reject(m.requeue)),
            Method::BasicNack(m) => {
                self.settle(channel, m.delivery_tag, m.multiple, Settle::reject(m.requeue))
            }
            Method::BasicRecover(m) => {
                if !m.requeue {
                    return Err(AmqpError::not_implemented("requeue=false"));
                }
                // recover-ok goes out before the redeliveries, as clients wait for it first.
                conn.send_method(channel, &warren_protocol::methods::BasicRecoverOk {}.into());
                self.flush(conn);
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

/// Calls `f` once per run of consecutive deliveries from the same queue.
fn for_each_queue_run(unacked: Vec<Unacked>, mut f: impl FnMut(&Arc<Queue>, Vec<Unacked>)) {
    let mut run: Vec<Unacked> = Vec::new();
    for u in unacked {
        if run.last().is_some_and(|last| !Arc::ptr_eq(&last.queue, &u.queue)) {
            let queue = run[0].queue.clone();
            f(&queue, std::mem::take(&mut run));
        }
        run.push(u);
    }
    if let Some(first) = run.first() {
        let queue = first.queue.clone();
        f(&queue, run);
    }
}

/// Tells consumers of a deleted queue they are gone (when their client asked to be told).
pub(crate) fn notify_cancelled(consumers: Vec<Consumer>) {
    for c in consumers {
        c.channel.unregister_consumer(&c.tag);
        if c.channel.outbox.cancel_notify() {
            let cancel = BasicCancel { consumer_tag: c.tag.clone(), nowait: true };
            c.channel
                .outbox
                .write(|buf| frame::write_method(buf, c.channel.number, &Method::BasicCancel(cancel)));
        }
    }
}
