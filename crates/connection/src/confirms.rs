//! Publisher confirms for one channel: sequence numbers, which publishes wait for the store to
//! sync, and the fewest basic.ack/basic.nack frames that settle them in order.

use std::collections::VecDeque;

/// What happened to one publish, for its confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Routed (or not) without anything to wait for.
    Done,
    /// Written to the store: confirmed once the store's sync covering it completes.
    Stored,
    /// Could not be stored: nacked.
    Failed,
}

/// A confirm to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// basic.ack for the publish numbered `delivery_tag`, and every one before it if `multiple`.
    Ack {
        /// The sequence number of the (last) publish confirmed.
        delivery_tag: u64,
        /// Whether every unconfirmed publish up to `delivery_tag` is confirmed too.
        multiple: bool,
    },
    /// basic.nack for the publish numbered `delivery_tag`, and every one before it if `multiple`.
    Nack {
        /// The sequence number of the (last) publish refused.
        delivery_tag: u64,
        /// Whether every unconfirmed publish up to `delivery_tag` is refused too.
        multiple: bool,
    },
}

/// A sealed batch of publishes.
#[derive(Debug, Clone, Copy)]
struct Batch {
    /// Its last sequence number.
    upto: u64,
    /// The store sync ticket it waits for; 0 = none.
    ticket: u64,
    /// The store could not write it: every publish in it is nacked.
    failed: bool,
}

/// The confirm-mode state of one channel: numbers its publishes, groups them into batches (one
/// per batch of input) that wait for the store's sync ticket when one of them was stored, and
/// hands out the confirms of the batches that are ready, in publish order.
#[derive(Debug, Default)]
pub struct ConfirmTracker {
    /// The last sequence number handed out (publishes are numbered from 1).
    published: u64,
    /// Publishes up to here belong to sealed batches.
    sealed: u64,
    /// Publishes up to here have been confirmed.
    confirmed: u64,
    unsealed_needs_sync: bool,
    /// Sealed batches, oldest first.
    batches: VecDeque<Batch>,
    /// Sequence numbers to nack, ascending.
    failed: VecDeque<u64>,
}

impl ConfirmTracker {
    /// Numbers a publish; returns its sequence number.
    pub fn publish(&mut self, outcome: PublishOutcome) -> u64 {
        self.published += 1;
        match outcome {
            PublishOutcome::Done => {}
            PublishOutcome::Stored => self.unsealed_needs_sync = true,
            PublishOutcome::Failed => self.failed.push_back(self.published),
        }
        self.published
    }

    /// Closes the current batch: its publishes wait for `ticket` if any of them was stored.
    pub fn seal(&mut self, ticket: u64) {
        self.seal_batch(ticket, false);
    }

    /// Closes the current batch, whose stored publishes the store could not write: if any of
    /// them was stored, the whole batch is nacked (in order, after the batches before it).
    pub fn seal_failed(&mut self) {
        self.seal_batch(0, true);
    }

    fn seal_batch(&mut self, ticket: u64, write_failed: bool) {
        if self.published > self.sealed {
            let stored = self.unsealed_needs_sync;
            let batch = Batch {
                upto: self.published,
                ticket: if stored && !write_failed { ticket } else { 0 },
                failed: stored && write_failed,
            };
            self.batches.push_back(batch);
            self.sealed = self.published;
            self.unsealed_needs_sync = false;
        }
    }

    /// Confirms every sealed batch whose ticket has an outcome (`synced`), in order: acks, or
    /// nacks for a batch whose ticket `ticket_failed` says the store could not make durable.
    pub fn take_ready(&mut self, synced: u64, ticket_failed: impl Fn(u64) -> bool, out: &mut Vec<Confirm>) {
        while let Some(&Batch { upto, ticket, failed }) = self.batches.front() {
            if ticket > synced {
                break;
            }
            self.batches.pop_front();
            let first = self.confirmed + 1;
            if failed || (ticket > 0 && ticket_failed(ticket)) {
                while self.failed.front().is_some_and(|&f| f <= upto) {
                    self.failed.pop_front();
                }
                out.push(Confirm::Nack { delivery_tag: upto, multiple: upto > first });
            } else if self.failed.front().is_none_or(|&f| f > upto) {
                out.push(Confirm::Ack { delivery_tag: upto, multiple: upto > first });
            } else {
                // Rare: a failure inside the batch; confirm one by one around it.
                for seq in first..=upto {
                    if self.failed.front() == Some(&seq) {
                        self.failed.pop_front();
                        out.push(Confirm::Nack { delivery_tag: seq, multiple: false });
                    } else {
                        out.push(Confirm::Ack { delivery_tag: seq, multiple: false });
                    }
                }
            }
            self.confirmed = upto;
        }
    }

    /// Publishes not yet confirmed (or nacked).
    pub fn unconfirmed(&self) -> u64 {
        self.published - self.confirmed
    }

    /// The ticket the oldest waiting batch needs, if one waits.
    pub fn waiting_for(&self) -> Option<u64> {
        self.batches.iter().map(|b| b.ticket).max().filter(|&t| t > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(t: &mut ConfirmTracker, synced: u64) -> Vec<Confirm> {
        let mut out = Vec::new();
        t.take_ready(synced, |_| false, &mut out);
        out
    }

    #[test]
    fn a_batch_the_store_could_not_keep_is_nacked_in_order() {
        let mut t = ConfirmTracker::default();
        t.publish(PublishOutcome::Stored);
        t.seal(3);
        t.publish(PublishOutcome::Stored);
        t.publish(PublishOutcome::Failed);
        t.publish(PublishOutcome::Done);
        t.seal_failed();
        t.publish(PublishOutcome::Done);
        t.seal_failed(); // nothing stored in it: nothing to nack
        t.publish(PublishOutcome::Stored);
        t.seal(4);
        let mut out = Vec::new();
        t.take_ready(2, |_| false, &mut out);
        assert!(out.is_empty(), "a failed batch does not overtake the one before it");
        t.take_ready(4, |ticket| ticket == 4, &mut out);
        assert_eq!(
            out,
            [
                Confirm::Ack { delivery_tag: 1, multiple: false },
                Confirm::Nack { delivery_tag: 4, multiple: true },
                Confirm::Ack { delivery_tag: 5, multiple: false },
                Confirm::Nack { delivery_tag: 6, multiple: false },
            ]
        );
        assert_eq!(t.unconfirmed(), 0);
    }

    #[test]
    fn a_batch_is_one_multiple_ack() {
        let mut t = ConfirmTracker::default();
        for _ in 0..5 {
            t.publish(PublishOutcome::Done);
        }
        t.seal(0);
        assert_eq!(ready(&mut t, 0), [Confirm::Ack { delivery_tag: 5, multiple: true }]);
        t.publish(PublishOutcome::Done);
        t.seal(0);
        assert_eq!(ready(&mut t, 0), [Confirm::Ack { delivery_tag: 6, multiple: false }]);
        assert!(ready(&mut t, 0).is_empty());
    }

    #[test]
    fn stored_publishes_wait_for_their_sync() {
        let mut t = ConfirmTracker::default();
        t.publish(PublishOutcome::Stored);
        t.publish(PublishOutcome::Done);
        t.seal(7);
        t.publish(PublishOutcome::Done);
        t.seal(8);
        assert!(ready(&mut t, 6).is_empty(), "nothing before ticket 7 is durable");
        assert_eq!(t.waiting_for(), Some(7));
        // The second batch needs no sync but must not overtake the first.
        assert_eq!(
            ready(&mut t, 7),
            [
                Confirm::Ack { delivery_tag: 2, multiple: true },
                Confirm::Ack { delivery_tag: 3, multiple: false }
            ]
        );
        assert_eq!(t.waiting_for(), None);
    }

    #[test]
    fn failures_are_nacked_in_order() {
        let mut t = ConfirmTracker::default();
        t.publish(PublishOutcome::Done);
        t.publish(PublishOutcome::Failed);
        t.publish(PublishOutcome::Done);
        t.seal(0);
        assert_eq!(
            ready(&mut t, 0),
            [
                Confirm::Ack { delivery_tag: 1, multiple: false },
                Confirm::Nack { delivery_tag: 2, multiple: false },
                Confirm::Ack { delivery_tag: 3, multiple: false },
            ]
        );
    }

    #[test]
    fn unsealed_publishes_are_not_confirmed() {
        let mut t = ConfirmTracker::default();
        t.publish(PublishOutcome::Done);
        assert!(ready(&mut t, u64::MAX).is_empty());
    }
}
