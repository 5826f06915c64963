//! What time does to a vhost, one tick at a time: expired messages leave (dead-lettered if their
//! queue says so), unused queues with `x-expires` are deleted, delayed messages fall due.

use super::VHost;
use crate::deadletter::DeathReason;
use crate::delayed::released_properties;
use crate::effects::Effects;
use crate::time::Now;
use crate::vhost::PublishResult;

impl VHost {
    /// Applies what is due at `now`; what it stores or cancels is left in `effects`.
    pub fn tick(&self, now: Now, effects: &mut Effects) {
        for q in self.queues() {
            // `x-expires`: a queue unused for that long is deleted, its messages with it.
            if q.unused_expired(now.instant) {
                self.remove_queue(&q, effects);
                continue;
            }
            for message in q.expire_due(now.instant) {
                self.dead_letter(&q, message, DeathReason::Expired, now, effects);
            }
            q.check_flow(now.instant);
        }
        self.release_delayed(now, effects);
    }

    /// Routes the held messages whose delay has passed, with their exchange's routing type (and
    /// its alternate exchange).
    fn release_delayed(&self, now: Now, effects: &mut Effects) {
        for exchange in self.exchanges() {
            let Some(delayed) = exchange.delayed() else { continue };
            let due = delayed.take_due(now.instant);
            if due.is_empty() {
                continue;
            }
            let mut routed = Vec::new();
            for held in &due {
                let mut message = held.message.clone();
                message.properties = released_properties(&message.properties);
                routed.clear();
                // The exchange counted the message when it took it in.
                let (extra, instant) = (&held.extra_keys, now.instant);
                let result =
                    self.route_counting(&exchange.name, &message, extra, instant, &mut routed, false, None);
                if let Err(error) = result {
                    tracing::warn!(exchange = %exchange.name, %error, "a delayed message could not be routed");
                    continue;
                }
                for q in routed.drain(..) {
                    self.append(&q, message.clone(), now, effects, &mut PublishResult::default());
                }
            }
            // Only once the queues have them: a crash in between delivers twice rather than not at all.
            // If the queues could not write them, the delayed log keeps them (released again
            // after a restart: twice rather than never).
            if !effects.flush_dirty().failed {
                delayed.settle(due.iter().filter_map(|h| h.offset));
            }
        }
    }
}
