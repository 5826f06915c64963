//! Adding and removing a queue's consumers.

use std::sync::Arc;
use std::time::Instant;

use super::consumer::{Consumer, TargetId};
use super::Queue;

/// Why a consumer could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeRefused {
    /// The queue has an exclusive consumer, or others when an exclusive one was asked for.
    ExclusiveUse,
    /// The queue was deleted meanwhile.
    Deleted,
}

impl Queue {
    /// Adds a consumer; the caller wakes the queue once the client was told (consume-ok first).
    pub fn add_consumer(self: &Arc<Self>, consumer: Consumer, now: Instant) -> Result<(), ConsumeRefused> {
        let mut st = self.state.lock();
        if st.deleted {
            return Err(ConsumeRefused::Deleted);
        }
        if st.consumers.iter().any(|c| c.exclusive)
            || (consumer.exclusive && (self.single_active || !st.consumers.is_empty()))
        {
            return Err(ConsumeRefused::ExclusiveUse);
        }
        st.consumer_priorities |= consumer.priority != 0;
        st.consumers.push(consumer);
        st.last_used = now;
        Ok(())
    }

    /// Removes a consumer; true when an auto-delete queue has just lost its last consumer.
    pub fn remove_consumer(&self, target: TargetId, tag: &str, now: Instant) -> bool {
        self.remove_consumers_where(now, |c| c.is(target, tag))
    }

    fn remove_consumers_where(&self, now: Instant, doomed: impl Fn(&Consumer) -> bool) -> bool {
        let mut st = self.state.lock();
        let before = st.consumers.len();
        st.consumers.retain(|c| !doomed(c));
        let removed = st.consumers.len() != before;
        st.consumers_left(now);
        if st.consumers.is_empty() {
            // Nobody to wait for: the backlog may grow, as in RabbitMQ.
            self.flow.release_all();
        }
        removed && self.auto_delete && st.consumers.is_empty() && !st.deleted
    }

    /// Calls `f` with each consumer (for listings).
    pub fn for_each_consumer(&self, mut f: impl FnMut(&Consumer)) {
        for c in &self.state.lock().consumers {
            f(c);
        }
    }
}
