//! Routing a published message to its queues (alternate exchanges, delayed-message exchanges,
//! sender-selected keys), storing it in each, and dead-lettering what queues give up on.

use std::sync::Arc;
use std::time::Instant;

use warren_message::ShortStr;

use super::VHost;
use crate::counters::{Counter, Counters};
use crate::deadletter::{DeadLetter, DeathReason};
use crate::dedup::{Admission, Carried, Checked, Deduplicator, Entry, WindowOf};
use crate::delayed::requested_delay;
use crate::effects::Effects;
use crate::error::BrokerError;
use crate::exchange::{dedupe_queues, Exchange, HeadersSource};
use crate::queue::Queue;
use crate::time::Now;
use warren_store::{Message, Store, Transaction};

/// Alternate exchanges may chain; a cycle stops here.
const MAX_ALTERNATE_HOPS: usize = 8;

/// Counts a publish at the exchange it was published to: routed on (or held), or dropped.
#[inline]
fn count_publish(counters: &Counters, routed: bool) {
    counters.add(Counter::Published, 1);
    counters.add(if routed { Counter::Routed } else { Counter::DroppedUnroutable }, 1);
}

/// What routing did with a message, besides finding its queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// It goes to the queues found (perhaps none).
    ToQueues,
    /// A delayed-message exchange holds it; `stored` when in a durable exchange's log, so a
    /// confirm must wait for the store's next sync as for a message stored in a queue.
    Delayed {
        /// Written to the exchange's log.
        stored: bool,
    },
    /// The exchange deduplicates and had seen the message's key: it goes nowhere.
    Duplicate,
}

/// Deduplication's part in a publish: the time it checks keys at, where it notes logs to
/// flush, and whether the publish's confirm must wait for the store's next sync.
pub(super) struct Admitting<'a> {
    now: Now,
    effects: &'a mut Effects,
    wait_for_sync: bool,
    store: &'a dyn Store,
    /// Begun before a window that keeps its keys on disk checks the message: see [`admit`].
    transaction: Option<Transaction>,
    /// The key the published-to exchange's window admitted, until the publish's queues are
    /// known: see [`check_deferred`].
    deferred: Option<Deferred>,
}

/// A key admitted by a window on disk, not yet kept: see [`check_deferred`].
pub(super) struct Deferred {
    dedup: Arc<Deduplicator>,
    entry: Entry,
    /// The exchange whose window it is.
    exchange: ShortStr,
}

impl<'a> Admitting<'a> {
    fn new(now: Now, effects: &'a mut Effects, store: &'a dyn Store) -> Self {
        Admitting { now, effects, wait_for_sync: false, store, transaction: None, deferred: None }
    }

    /// Begins the publish's store transaction if a deferred key may yet need it and none is
    /// under way: before a durable write that could otherwise outlive the key or miss it.
    fn cover_deferred(&mut self) {
        if self.deferred.is_some() && self.transaction.is_none() && !warren_store::applying_transaction() {
            self.transaction = Some(self.store.begin_tx());
        }
    }

    /// Ends the publish's store transaction, if one was begun, handing it to the batch to seal.
    fn end_transaction(transaction: Option<Transaction>, effects: &mut Effects) {
        if let Some(mut transaction) = transaction {
            if transaction.end_writes() {
                effects.applied_in(transaction);
            }
        }
    }
}

/// Checks a message against a deduplication window; true when it is a duplicate. A key
/// written to a durable window's log, or matched there, makes the confirm wait for the next
/// sync (so a duplicate's confirm never overtakes the original's).
///
/// A window that keeps its keys on disk writes the key to a log of its own, and the message goes
/// to the queues' logs: written out at different moments (any connection flushing a queue writes
/// what others appended), so a crash between could keep the message without its key (a retry
/// would be taken as new) or the key without its message (a retry would be dropped). So the rest
/// of the publish is applied as one store transaction, begun here: its records count after a
/// crash together or not at all.
fn admit(dedup: &Arc<Deduplicator>, message: &Message, at: &mut Admitting<'_>) -> Result<bool, BrokerError> {
    if at.transaction.is_none() && dedup.is_logged() && !warren_store::applying_transaction() {
        at.transaction = Some(at.store.begin_tx());
    }
    let admission = dedup
        .admit(&message.properties, at.now)
        .map_err(|e| BrokerError::Storage(format!("cannot store a deduplication key: {e}")))?;
    Ok(match admission {
        Admission::NoKey | Admission::Admitted { logged: false } => false,
        Admission::Admitted { logged: true } => {
            at.effects.dedup_logged(dedup);
            at.wait_for_sync = true;
            false
        }
        Admission::Duplicate { durable } => {
            if durable {
                // The original's key may still be buffered by another batch: flush it with ours.
                at.effects.dedup_logged(dedup);
                at.wait_for_sync = true;
            }
            true
        }
    })
}

/// Checks a message against the window of the exchange it was published to; true when it is
/// a duplicate. A new key of a window on disk is not kept yet: it waits in `at` until the
/// message's queues are known. A message that goes to one durable queue as a persistent
/// message carries the key in its record (atomic with it, and no write of its own); otherwise
/// the key is written to the window's log in the publish's store transaction, as [`admit`]
/// does. Nothing durable may be written between (see [`Admitting::cover_deferred`]).
fn check_deferred(
    dedup: &Arc<Deduplicator>,
    exchange: &ShortStr,
    message: &Message,
    at: &mut Admitting<'_>,
) -> Result<bool, BrokerError> {
    if !dedup.is_logged() {
        return admit(dedup, message, at);
    }
    Ok(match dedup.check(&message.properties, at.now) {
        Checked::NoKey | Checked::Admitted(None) => false,
        Checked::Admitted(Some(entry)) => {
            at.wait_for_sync = true;
            at.deferred = Some(Deferred { dedup: Arc::clone(dedup), entry, exchange: exchange.clone() });
            false
        }
        Checked::Duplicate { durable } => {
            if durable {
                at.effects.dedup_logged(dedup);
                at.wait_for_sync = true;
            }
            true
        }
    })
}

/// What became of a published message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishResult {
    /// How many queues it reached (0: unroutable, unless `held`).
    pub queues: usize,
    /// A delayed-message exchange holds it.
    pub held: bool,
    /// It was written to disk somewhere: a confirm waits for the store's next sync.
    pub stored: bool,
    /// A full queue refused it (`x-overflow` reject-publish*): a confirm nacks it.
    pub rejected: bool,
    /// A queue could not store it (a write failed): it must not be confirmed.
    pub failed: bool,
    /// The exchange deduplicates and had seen its key: dropped, and confirmed all the same.
    pub duplicate: bool,
}

impl VHost {
    /// The queues a message published to `exchange` reaches, deduplicated, into `out`, routing
    /// with `extra_keys` as well as the message's routing key (sender-selected distribution:
    /// the `CC` and `BCC` headers). A message no queue takes goes on to the exchange's
    /// alternate exchange, if it has one. A delayed-message exchange holds a message with an
    /// `x-delay` (due at `now` plus the delay) instead. The publish is counted at the exchange.
    pub fn route(
        &self,
        exchange: &str,
        message: &Message,
        extra_keys: &[ShortStr],
        now: Instant,
        out: &mut Vec<Arc<Queue>>,
    ) -> Result<Routed, BrokerError> {
        self.route_counting(exchange, message, extra_keys, now, out, true, None)
    }

    /// As [`VHost::route`]; `count` is false for a message the exchange already counted (a
    /// delayed message it releases). With `admitting` (a publish), an exchange that
    /// deduplicates checks the message's key first.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn route_counting(
        &self,
        exchange: &str,
        message: &Message,
        extra_keys: &[ShortStr],
        now: Instant,
        out: &mut Vec<Arc<Queue>>,
        count: bool,
        admitting: Option<&mut Admitting<'_>>,
    ) -> Result<Routed, BrokerError> {
        if exchange.is_empty() {
            let queues = self.queues.read();
            for key in std::iter::once(&message.routing_key).chain(extra_keys) {
                if let Some(q) = queues.get(&**key) {
                    out.push(q.clone());
                }
            }
            drop(queues);
            dedupe_queues(out);
            if count {
                count_publish(&self.default_exchange, !out.is_empty());
            }
            return Ok(Routed::ToQueues);
        }
        let e = self.exchanges.read().get(exchange).cloned().ok_or_else(|| self.no_exchange(exchange))?;
        if e.internal {
            return Err(BrokerError::InternalExchange {
                name: exchange.to_owned(),
                vhost: self.name.clone(),
            });
        }
        let mut admitting = admitting;
        if let (Some(dedup), Some(at)) = (e.dedup(), admitting.as_deref_mut()) {
            // A delayed-message exchange may write the message to its log at once: its key
            // goes with it in the publish's transaction.
            let duplicate = match e.delayed() {
                None => check_deferred(dedup, &e.name, message, at)?,
                Some(_) => admit(dedup, message, at)?,
            };
            if duplicate {
                if count {
                    // Published, but neither routed nor unroutable.
                    e.counters().add(Counter::Published, 1);
                }
                return Ok(Routed::Duplicate);
            }
        }
        let routed = self.route_through(&e, message, extra_keys, now, out, admitting);
        match routed {
            Ok(Routed::Delayed { .. }) if count => count_publish(e.counters(), true),
            Ok(Routed::ToQueues) if count => count_publish(e.counters(), !out.is_empty()),
            _ => {}
        }
        routed
    }

    /// Routes by `first`, then by its alternate exchanges while no queue takes the message.
    /// With `admitting` (a publish), a deduplicating exchange reached on the way (an alternate
    /// exchange, or through an exchange-to-exchange binding) checks the message's key too: a
    /// duplicate goes no further from it.
    fn route_through(
        &self,
        first: &Arc<Exchange>,
        message: &Message,
        extra_keys: &[ShortStr],
        now: Instant,
        out: &mut Vec<Arc<Queue>>,
        mut admitting: Option<&mut Admitting<'_>>,
    ) -> Result<Routed, BrokerError> {
        let mut alternate: Option<Arc<Exchange>> = None;
        let mut failed = None;
        for _ in 0..MAX_ALTERNATE_HOPS {
            let exchange = alternate.as_ref().unwrap_or(first);
            if alternate.is_some() {
                if let (Some(dedup), Some(at)) = (exchange.dedup(), admitting.as_deref_mut()) {
                    if admit(dedup, message, at)? {
                        return Ok(Routed::Duplicate);
                    }
                }
            }
            // A delayed-message exchange holds a message with an x-delay: it reaches no queue
            // now (a mandatory publish is returned, as with the plugin), and no alternate exchange.
            if exchange.delayed().is_some() {
                if let Some(at) = admitting.as_deref_mut() {
                    at.cover_deferred();
                }
            }
            if let Some(stored) = self.hold_if_delayed(exchange, message, extra_keys, now)? {
                return Ok(Routed::Delayed { stored });
            }
            let mut headers = HeadersSource::new(&message.properties);
            let windows_behind = self.dedup_exchanges.load(std::sync::atomic::Ordering::Relaxed);
            match admitting.as_deref_mut().filter(|_| windows_behind) {
                Some(at) => {
                    let mut gate = |e: &Exchange| match e.dedup().map(|d| admit(d, message, at)) {
                        None | Some(Ok(false)) => true,
                        Some(Ok(true)) => false,
                        Some(Err(error)) => {
                            failed.get_or_insert(error);
                            false
                        }
                    };
                    exchange.route_message_gated(
                        &message.routing_key,
                        extra_keys,
                        &mut headers,
                        out,
                        &mut gate,
                    );
                }
                None => exchange.route_message(&message.routing_key, extra_keys, &mut headers, out),
            }
            if let Some(error) = failed.take() {
                out.clear();
                return Err(error);
            }
            if !out.is_empty() {
                break;
            }
            let name = exchange.alternate_exchange();
            let Some(next) = name.and_then(|name| self.exchanges.read().get(&name).cloned()) else {
                break;
            };
            alternate = Some(next);
        }
        dedupe_queues(out);
        Ok(Routed::ToQueues)
    }

    /// Holds `message` if `exchange` delays it: `Some(stored)` when it was held, `stored` when
    /// it went to the exchange's log.
    fn hold_if_delayed(
        &self,
        exchange: &Exchange,
        message: &Message,
        extra_keys: &[ShortStr],
        now: Instant,
    ) -> Result<Option<bool>, BrokerError> {
        let Some(delayed) = exchange.delayed() else { return Ok(None) };
        let Some(delay) = requested_delay(&message.properties) else { return Ok(None) };
        let stored = delayed.hold(message.clone(), extra_keys.to_vec(), now + delay).map_err(|e| {
            BrokerError::Storage(format!(
                "cannot store a delayed message of exchange '{}': {e}",
                exchange.name
            ))
        })?;
        Ok(Some(stored))
    }

    /// Publishes `message` to its exchange: routes it (see [`VHost::route`], which counts it at
    /// the exchange), appends it to every queue reached and dead-letters what those queues give
    /// up on. The message comes back when no queue took it (to be returned to its publisher).
    /// `routed` is scratch space, handed in so the hot path allocates nothing.
    #[inline]
    pub fn publish(
        &self,
        message: Message,
        extra_keys: &[ShortStr],
        now: Now,
        effects: &mut Effects,
        routed: &mut Vec<Arc<Queue>>,
    ) -> Result<(PublishResult, Option<Message>), BrokerError> {
        routed.clear();
        let mut admitting = Admitting::new(now, &mut *effects, &*self.store);
        let exchange = &message.exchange;
        let how = self.route_counting(
            exchange,
            &message,
            extra_keys,
            now.instant,
            routed,
            true,
            Some(&mut admitting),
        );
        let mut transaction = admitting.transaction.take();
        let deferred = admitting.deferred.take();
        let wait_for_sync = admitting.wait_for_sync;
        let how = match how {
            Ok(how) => how,
            Err(e) => {
                routed.clear();
                Admitting::end_transaction(transaction, effects);
                return Err(e);
            }
        };
        // The deferred key travels with the message if it goes to one queue that can carry it;
        // otherwise it is written now, in the publish's transaction.
        let carry = match deferred {
            Some(d) if how == Routed::ToQueues && routed.len() == 1 && routed[0].can_carry(&message) => {
                Some(d)
            }
            Some(d) => {
                if transaction.is_none() && !warren_store::applying_transaction() {
                    transaction = Some(self.store.begin_tx());
                }
                if let Err(e) = d.dedup.log_now(&d.entry) {
                    routed.clear();
                    Admitting::end_transaction(transaction, effects);
                    return Err(BrokerError::Storage(format!("cannot store a deduplication key: {e}")));
                }
                effects.dedup_logged(&d.dedup);
                None
            }
            None => None,
        };
        let mut result =
            PublishResult { queues: routed.len(), stored: wait_for_sync, ..PublishResult::default() };
        match how {
            Routed::Delayed { stored } => {
                result.held = true;
                result.stored |= stored;
                if stored {
                    effects.stored_elsewhere();
                }
            }
            Routed::Duplicate => result.duplicate = true,
            Routed::ToQueues => {}
        }
        let mut queues = routed.drain(..);
        let Some(last) = queues.next_back() else {
            Admitting::end_transaction(transaction, effects);
            return Ok((result, Some(message)));
        };
        for q in queues {
            self.append(&q, message.clone(), now, effects, &mut result);
        }
        // The last queue takes the message itself: one queue, no copy.
        match carry {
            Some(d) => self.append_carrying(&last, message, now, effects, &mut result, Some(d)),
            None => self.append(&last, message, now, effects, &mut result),
        }
        Admitting::end_transaction(transaction, effects);
        Ok((result, None))
    }

    /// Appends a message to a queue that [`Queue::can_carry`] it: the key `exchange_key` admitted
    /// (the published-to exchange's), and the key the queue's own window admits, travel in the
    /// message's record; the windows' logs get them lazily once it is stored.
    fn append_carrying(
        &self,
        q: &Arc<Queue>,
        message: Message,
        now: Now,
        effects: &mut Effects,
        result: &mut PublishResult,
        exchange_key: Option<Deferred>,
    ) {
        let mut carried = Carried::default();
        if let Some(d) = &exchange_key {
            carried.push(&WindowOf::Exchange(d.exchange.clone()), &d.entry);
        }
        let mut queue_key = None;
        if let Some(dedup) = q.dedup() {
            match dedup.check(&message.properties, now) {
                Checked::NoKey | Checked::Admitted(None) => {}
                Checked::Admitted(Some(entry)) => {
                    carried.push(&WindowOf::Queue, &entry);
                    queue_key = Some((dedup, entry));
                    result.stored = true;
                }
                Checked::Duplicate { durable } => {
                    if durable {
                        effects.dedup_logged(dedup);
                        result.stored = true;
                    }
                    // Reached the queue, which drops it: the exchange's key is kept all the
                    // same (a retry reaches the same queue, which drops it too).
                    if let Some(d) = exchange_key {
                        if let Err(error) = d.dedup.log_now(&d.entry) {
                            tracing::debug!(vhost = %self.name, %error, "storing a deduplication key failed");
                            result.failed = true;
                        }
                        effects.dedup_logged(&d.dedup);
                    }
                    return;
                }
            }
        }
        if self.append_admitted_carrying(q, message, now, effects, result, carried.bytes()) {
            if let Some(d) = exchange_key {
                d.dedup.log_carried(&d.entry);
            }
            if let Some((dedup, entry)) = queue_key {
                dedup.log_carried(&entry);
            }
        }
    }

    /// Appends a routed message to one queue, dead-lettering what the queue gives up on.
    #[inline]
    pub(super) fn append(
        &self,
        q: &Arc<Queue>,
        message: Message,
        now: Now,
        effects: &mut Effects,
        result: &mut PublishResult,
    ) {
        if let Some(dedup) = q.dedup() {
            if dedup.is_logged() && q.can_carry(&message) {
                return self.append_carrying(q, message, now, effects, result, None);
            }
            let mut at = Admitting::new(now, &mut *effects, &*self.store);
            let duplicate = admit(dedup, &message, &mut at);
            result.stored |= at.wait_for_sync;
            let transaction = at.transaction.take();
            match duplicate {
                Ok(false) => self.append_admitted(q, message, now, effects, result),
                // Reached the queue, which drops it: the publish counts as routed.
                Ok(true) => {}
                Err(error) => {
                    tracing::debug!(vhost = %self.name, queue = %q.name, %error, "storing a deduplication key failed");
                    result.failed = true;
                }
            }
            Admitting::end_transaction(transaction, effects);
            return;
        }
        self.append_admitted(q, message, now, effects, result);
    }

    /// Appends a message (past any deduplication) to one queue, dead-lettering what the queue
    /// gives up on.
    #[inline]
    fn append_admitted(
        &self,
        q: &Arc<Queue>,
        message: Message,
        now: Now,
        effects: &mut Effects,
        result: &mut PublishResult,
    ) {
        self.append_admitted_carrying(q, message, now, effects, result, &[]);
    }

    /// As [`VHost::append_admitted`], the message's record carrying `carried`; returns whether
    /// the message was stored (with what it carries).
    #[inline]
    fn append_admitted_carrying(
        &self,
        q: &Arc<Queue>,
        message: Message,
        now: Now,
        effects: &mut Effects,
        result: &mut PublishResult,
        carried: &[u8],
    ) -> bool {
        match q.publish_carrying(message, now.instant, carried) {
            Ok(published) => {
                if q.flow_engaged() {
                    effects.held_back_by(q);
                }
                result.stored |= published.stored;
                // Even without storing this message, dispatching it may have settled stored
                // ones (no-ack consumers): their ack records go out with the batch.
                effects.dirty(q);
                result.rejected |= published.rejected;
                for (dead, reason) in published.dead {
                    self.dead_letter(q, dead, reason, now, effects);
                }
                published.stored
            }
            Err(error) => {
                // Whatever went where, the publisher learns it was not kept everywhere.
                // An I/O failure is logged once by the store's health, not once per message.
                tracing::debug!(vhost = %self.name, queue = %q.name, %error, "storing a message failed");
                result.failed = true;
                false
            }
        }
    }

    /// Routes `message`, given up on by `from` for `reason`, to `from`'s dead-letter exchange,
    /// if it has one. A message whose dead-letter exchange is missing is dropped, as in
    /// RabbitMQ; so is what the dead-letter queue itself gives up on (following it could loop).
    pub fn dead_letter(
        &self,
        from: &Queue,
        message: Message,
        reason: DeathReason,
        now: Now,
        effects: &mut Effects,
    ) {
        let Some(to) = from.dead_letter_to() else { return };
        let dead = DeadLetter::new(&from.name, to, message, reason, now.unix_secs());
        from.counters().add(reason.counter(), 1);
        let mut routed = Vec::new();
        if self.route(&dead.exchange, &dead.message, &dead.extra_keys, now.instant, &mut routed).is_err() {
            return;
        }
        for q in routed {
            if !dead.may_enter(&q.name) {
                tracing::debug!(queue = %q.name, from = %from.name, "dead-letter cycle: message dropped");
                continue;
            }
            // The key and the message in one transaction, as for a publish (see `admit`).
            let mut transaction = None;
            if let Some(dedup) = q.dedup() {
                let mut at = Admitting::new(now, &mut *effects, &*self.store);
                let duplicate = admit(dedup, &dead.message, &mut at).unwrap_or(false);
                transaction = at.transaction.take();
                if duplicate {
                    Admitting::end_transaction(transaction, effects);
                    continue;
                }
            }
            match q.publish(dead.message.clone(), now.instant) {
                Ok(_) => effects.dirty(&q),
                Err(error) => {
                    tracing::error!(queue = %q.name, %error, "storing a dead-lettered message failed")
                }
            }
            Admitting::end_transaction(transaction, effects);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vhost::{Actor, BindingSpec, Command, DestinationKind, ExchangeSpec, Outcome, QueueSpec};
    use bytes::{Bytes, BytesMut};
    use warren_message::{BasicProperties, FieldTable, FieldValue};

    fn text(s: &str) -> FieldValue {
        FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn now() -> Now {
        Now::new(Instant::now(), 1_767_225_600_000)
    }

    fn apply(vhost: &VHost, command: Command) -> Outcome {
        vhost.apply(command, Actor::connection(1), now().instant, &mut Effects::default()).unwrap()
    }

    /// A vhost where queue `q` dead-letters to direct exchange `dlx` (with `dlrk`, if given),
    /// which routes `k0`, `k1`, `k2` and `k9` to queues of those names.
    fn dead_letter_setup(dlrk: Option<&str>) -> (VHost, Arc<Queue>) {
        let vhost = VHost::new("/", Arc::new(warren_store::MemoryStore), None);
        let spec = ExchangeSpec { name: "dlx".into(), kind: "direct".into(), ..Default::default() };
        apply(&vhost, Command::DeclareExchange(spec));
        for key in ["k0", "k1", "k2", "k9"] {
            apply(&vhost, Command::DeclareQueue(QueueSpec { name: key.into(), ..Default::default() }));
            let binding = BindingSpec {
                source: "dlx".into(),
                destination: key.into(),
                destination_kind: DestinationKind::Queue,
                key: key.into(),
                arguments: FieldTable::new(),
            };
            apply(&vhost, Command::Bind(binding));
        }
        let mut args = FieldTable::new();
        args.insert("x-dead-letter-exchange", text("dlx"));
        if let Some(key) = dlrk {
            args.insert("x-dead-letter-routing-key", text(key));
        }
        let spec = QueueSpec { name: "q".into(), arguments: args, ..Default::default() };
        let Outcome::Queue(q) = apply(&vhost, Command::DeclareQueue(spec)) else { unreachable!() };
        (vhost, q)
    }

    /// A message routed by `k0` whose `CC` header holds `keys`.
    fn cc_message(keys: &[&str]) -> Message {
        let mut headers = FieldTable::new();
        headers.insert("CC", FieldValue::Array(keys.iter().map(|k| text(k)).collect()));
        let mut out = BytesMut::new();
        BasicProperties { headers: Some(headers), ..Default::default() }.encode(&mut out);
        Message {
            exchange: "".into(),
            routing_key: "k0".into(),
            properties: out.freeze(),
            body: Bytes::new(),
        }
    }

    /// The queues of `dead_letter_setup` that hold a message, and that message's headers.
    fn reached(vhost: &VHost) -> Vec<(String, FieldTable)> {
        ["k0", "k1", "k2", "k9"]
            .into_iter()
            .filter_map(|name| {
                let (m, _) = vhost.queue(name).unwrap().get(true, now().instant)?;
                let headers = BasicProperties::decode(&m.message.properties).unwrap().headers.unwrap();
                Some((name.to_owned(), headers))
            })
            .collect()
    }

    #[test]
    fn dead_letters_are_routed_by_their_cc_keys_too() {
        let (vhost, q) = dead_letter_setup(None);
        vhost.dead_letter(&q, cc_message(&["k1"]), DeathReason::Rejected, now(), &mut Effects::default());
        let got = reached(&vhost);
        assert_eq!(got.iter().map(|(q, _)| q.as_str()).collect::<Vec<_>>(), ["k0", "k1"]);
        assert!(got.iter().all(|(_, h)| h.get("CC").is_some()));
        // Counted at the queue that gave it up, and kept in the vhost's totals once it is gone.
        let dead_lettered = |v: &VHost| v.queue_totals().get(Counter::DeadLetteredRejected);
        assert_eq!(dead_lettered(&vhost), 1);
        apply(&vhost, Command::DeleteQueue { name: "q".into(), if_unused: false, if_empty: false });
        assert_eq!(dead_lettered(&vhost), 1);
    }

    #[test]
    fn a_dead_letter_routing_key_replaces_the_cc_keys() {
        let (vhost, q) = dead_letter_setup(Some("k9"));
        vhost.dead_letter(
            &q,
            cc_message(&["k1", "k2"]),
            DeathReason::Rejected,
            now(),
            &mut Effects::default(),
        );
        let got = reached(&vhost);
        assert_eq!(got.iter().map(|(q, _)| q.as_str()).collect::<Vec<_>>(), ["k9"]);
        assert_eq!(got[0].1.get("CC"), None);
    }
}
