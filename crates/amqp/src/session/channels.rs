//! Opening and closing channels: each is registered with the broker and becomes a delivery
//! target; closing one requeues what it had outstanding and removes its consumers.

use std::sync::Arc;

use warren_broker::{ChannelEntry, DeliveryTarget, Settle};

use super::basic::apply_settle;
use super::modes::Mode;
use super::{ChannelSession, Session};
use crate::channel::ChannelHandle;

impl Session {
    pub(super) fn open_channel(&mut self, number: u16) {
        let wake = self.sync_waker.clone();
        let (outbox, entry, registry) = (self.outbox.clone(), self.entry.clone(), self.broker.clone());
        let handle = Arc::new_cyclic(|me: &std::sync::Weak<ChannelHandle>| {
            let target: std::sync::Weak<dyn DeliveryTarget> = me.clone();
            let channel_entry: Arc<ChannelEntry> = entry.add_channel(registry.registry(), number, target);
            ChannelHandle::new(number, outbox, channel_entry, wake)
        });
        self.channels.insert(
            number,
            ChannelSession { handle, consumer_prefetch: 0, last_queue: None, mode: Mode::Plain, reply: None },
        );
    }

    /// Releases a channel: its consumers go, its unacknowledged deliveries are requeued.
    pub(super) fn close_channel(&mut self, number: u16) {
        let Some(mut ch) = self.channels.remove(&number) else {
            return;
        };
        if let Some(lease) = &mut self.lease {
            lease.close_channel();
        }
        let mut unacked = ch.handle.close();
        // Acks of an uncommitted transaction never happened: those messages go back too.
        unacked.extend(ch.mode.take_uncommitted_settles());
        unacked.sort_by_key(|u| u.tag);
        let target = ch.handle.id();
        let now = self.now.instant;
        for (tag, queue) in ch.handle.take_consumers() {
            if queue.remove_consumer(target, &tag, now) {
                self.auto_delete_queue(&queue);
            } else if queue.single_active() {
                // The next consumer takes over, after the requeue.
                self.effects.wake(&queue);
            }
        }
        // Only messages over an `x-delivery-limit` are dead-lettered by a requeue.
        let vhost = self.vhost.as_deref();
        apply_settle(vhost, &ch.handle, unacked, Settle::Requeue, self.now, &mut self.effects, true);
        if let Some(entry) = self.entry.remove_channel(number) {
            self.broker.registry().retire_channel(&self.entry, &entry);
        }
    }

    /// An auto-delete queue lost its last consumer: it goes.
    pub(super) fn auto_delete_queue(&mut self, queue: &Arc<warren_broker::Queue>) {
        if let Some(vhost) = &self.vhost {
            vhost.remove_queue(queue, &mut self.effects);
        }
    }
}
