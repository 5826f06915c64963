//! Channel modes: plain, publisher confirms, or transactional; and the replies that wait for
//! the store to make a batch durable (confirms, tx.commit-ok).

use std::collections::VecDeque;

use bytes::Bytes;
use warren_connection::{AmqpError, Confirm, ConfirmTracker, Connection, PublishOutcome};
use warren_protocol::frame::ContentHeader;
use warren_protocol::methods::*;

use warren_broker::{ChannelEntry, ChannelMode, Counter, Settle};
use warren_store::Store;

use super::basic::apply_settle;
use super::Session;
use crate::channel::Unacked;

/// The reply text of a tx.commit whose writes failed.
const COMMIT_NOT_STORED: &str =
    "tx.commit failed: the broker could not write the transaction to disk (see the broker's log)";

pub(super) enum Mode {
    Plain,
    Confirm(ConfirmTracker),
    /// Publishes and settlements wait here for tx.commit.
    Tx(TxBuffer),
}

#[derive(Default)]
pub(super) struct TxBuffer {
    publishes: Vec<(BasicPublish, ContentHeader, Bytes)>,
    settles: Vec<(Vec<Unacked>, Settle)>,
    /// Commits applied but not yet durable, oldest first: each commit-ok waits for its sync
    /// ticket (None until the batch is sealed), and they are answered in order.
    commits: VecDeque<PendingCommit>,
}

#[derive(Clone, Copy)]
struct PendingCommit {
    needs_sync: bool,
    ticket: Option<u64>,
    /// The store could not write what the commit stored: the client gets an error, not
    /// commit-ok.
    failed: bool,
}

impl Mode {
    /// In a transaction, keeps the publish for commit and returns Some.
    pub(super) fn buffer_publish(
        &mut self,
        publish: &BasicPublish,
        header: &ContentHeader,
        body: &Bytes,
    ) -> Option<Result<(), AmqpError>> {
        let Mode::Tx(tx) = self else { return None };
        tx.publishes.push((publish.clone(), header.clone(), body.clone()));
        Some(Ok(()))
    }

    /// In a transaction, keeps settled deliveries for commit; otherwise hands them back.
    pub(super) fn buffer_settle(&mut self, settled: Vec<Unacked>, how: Settle) -> Result<(), Vec<Unacked>> {
        match self {
            Mode::Tx(tx) => {
                tx.settles.push((settled, how));
                Ok(())
            }
            _ => Err(settled),
        }
    }

    /// Deliveries acknowledged in a transaction that will now never commit.
    pub(super) fn take_uncommitted_settles(&mut self) -> Vec<Unacked> {
        match self {
            Mode::Tx(tx) => {
                std::mem::take(&mut tx.settles).into_iter().flat_map(|(settled, _)| settled).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Counts a publish for its confirm.
    pub(super) fn published(&mut self, outcome: PublishOutcome) {
        if let Mode::Confirm(tracker) = self {
            tracker.publish(outcome);
        }
    }

    /// Ends a batch of input: what it published or committed waits for `ticket` if it was stored.
    pub(super) fn seal(&mut self, ticket: u64) {
        match self {
            Mode::Confirm(tracker) => tracker.seal(ticket),
            Mode::Tx(tx) => {
                for commit in tx.commits.iter_mut().filter(|c| c.ticket.is_none()) {
                    commit.ticket = Some(if commit.needs_sync { ticket } else { 0 });
                }
            }
            Mode::Plain => {}
        }
    }

    /// Ends a batch of input whose writes failed: what it stored is refused, never confirmed.
    pub(super) fn seal_failed(&mut self) {
        match self {
            Mode::Confirm(tracker) => tracker.seal_failed(),
            Mode::Tx(tx) => {
                for commit in tx.commits.iter_mut().filter(|c| c.ticket.is_none()) {
                    commit.failed = commit.needs_sync;
                    commit.ticket = Some(0);
                }
            }
            Mode::Plain => {}
        }
    }

    /// Sends the confirms and commit-oks that `synced` made durable.
    pub(super) fn send_ready(
        &mut self,
        channel: u16,
        synced: u64,
        store: &dyn Store,
        conn: &mut Connection,
        entry: &ChannelEntry,
    ) {
        match self {
            Mode::Confirm(tracker) => {
                let mut ready = Vec::new();
                let before = tracker.unconfirmed();
                tracker.take_ready(synced, |ticket| store.ticket_failed(ticket), &mut ready);
                let after = tracker.unconfirmed();
                if before != after {
                    entry.counters().add_owned(Counter::Confirmed, before - after);
                }
                entry.set_unconfirmed(after);
                for confirm in ready {
                    let method = match confirm {
                        Confirm::Ack { delivery_tag, multiple } => BasicAck { delivery_tag, multiple }.into(),
                        Confirm::Nack { delivery_tag, multiple } => {
                            BasicNack { delivery_tag, multiple, requeue: false }.into()
                        }
                    };
                    conn.send_method(channel, &method);
                }
            }
            Mode::Tx(tx) => {
                while let Some(&PendingCommit { ticket: Some(ticket), failed, .. }) = tx.commits.front() {
                    if ticket > synced {
                        break;
                    }
                    tx.commits.pop_front();
                    if failed || (ticket > 0 && store.ticket_failed(ticket)) {
                        tx.commits.clear();
                        conn.close_channel(channel, AmqpError::internal_error(COMMIT_NOT_STORED));
                    } else {
                        conn.send_method(channel, &TxCommitOk {}.into());
                    }
                }
            }
            Mode::Plain => {}
        }
    }

    /// The store ticket a reply of this channel waits for, if any.
    pub(super) fn waiting_for(&self) -> Option<u64> {
        match self {
            Mode::Confirm(tracker) => tracker.waiting_for(),
            Mode::Tx(tx) => tx.commits.iter().filter_map(|c| c.ticket).max().filter(|&t| t > 0),
            Mode::Plain => None,
        }
    }
}

impl Session {
    pub(super) fn confirm_select(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        nowait: bool,
    ) -> Result<(), AmqpError> {
        let ch = self.channel_or_err(channel)?;
        match ch.mode {
            Mode::Tx(_) => {
                return Err(AmqpError::precondition_failed("cannot switch from tx to confirm mode"))
            }
            Mode::Plain => {
                ch.mode = Mode::Confirm(ConfirmTracker::default());
                ch.handle.entry.set_mode(ChannelMode::Confirm);
            }
            Mode::Confirm(_) => {}
        }
        if !nowait {
            conn.send_method(channel, &ConfirmSelectOk {}.into());
        }
        Ok(())
    }

    pub(super) fn tx_select(&mut self, conn: &mut Connection, channel: u16) -> Result<(), AmqpError> {
        let ch = self.channel_or_err(channel)?;
        match ch.mode {
            Mode::Confirm(_) => {
                return Err(AmqpError::precondition_failed("cannot switch from confirm to tx mode"))
            }
            Mode::Plain => {
                ch.mode = Mode::Tx(TxBuffer::default());
                ch.handle.entry.set_mode(ChannelMode::Transactional);
            }
            Mode::Tx(_) => {}
        }
        conn.send_method(channel, &TxSelectOk {}.into());
        Ok(())
    }

    fn take_tx(&mut self, channel: u16) -> Result<TxBuffer, AmqpError> {
        let ch = self.channel_or_err(channel)?;
        match &mut ch.mode {
            Mode::Tx(tx) => Ok(TxBuffer {
                publishes: std::mem::take(&mut tx.publishes),
                settles: std::mem::take(&mut tx.settles),
                commits: VecDeque::new(),
            }),
            _ => Err(AmqpError::precondition_failed("channel is not transactional")),
        }
    }

    /// Applies the transaction as one store transaction (its writes to every queue survive a
    /// crash together or not at all); commit-ok goes out once it is durable.
    pub(super) fn tx_commit(&mut self, conn: &mut Connection, channel: u16) -> Result<(), AmqpError> {
        let tx = self.take_tx(channel)?;
        let mut transaction = self.broker.store().begin_tx();
        let applied = self.apply_tx(conn, channel, tx);
        if transaction.end_writes() {
            // Even when applying failed part-way (an exchange deleted since the publish): what
            // was applied stays applied, so it commits too, and the channel closes.
            self.committed.push(transaction);
        }
        let needs_sync = applied?;
        if let Mode::Tx(buffer) = &mut self.channel_or_err(channel)?.mode {
            buffer.commits.push_back(PendingCommit { needs_sync, ticket: None, failed: false });
        }
        Ok(())
    }

    /// Routes a transaction's publishes and applies its settlements; returns whether anything
    /// was stored.
    fn apply_tx(&mut self, conn: &mut Connection, channel: u16, tx: TxBuffer) -> Result<bool, AmqpError> {
        let mut needs_sync = false;
        let handle = self.channel_or_err(channel)?.handle.clone();
        for (publish, header, body) in tx.publishes {
            // Inside a transaction nobody hears of a full queue refusing a message.
            match self.route_message(conn, channel, publish, header, body) {
                Ok(result) => needs_sync |= result.stored,
                Err(e) => {
                    // The acks are not applied: their deliveries go back with the channel.
                    for (settled, _) in tx.settles {
                        handle.restore(settled);
                    }
                    return Err(e);
                }
            }
        }
        for (settled, how) in tx.settles {
            let vhost = self.vhost.as_deref();
            needs_sync |= apply_settle(vhost, &handle, settled, how, self.now, &mut self.effects, true);
        }
        Ok(needs_sync)
    }

    pub(super) fn tx_rollback(&mut self, conn: &mut Connection, channel: u16) -> Result<(), AmqpError> {
        let tx = self.take_tx(channel)?;
        let handle = self.channel_or_err(channel)?.handle.clone();
        for (settled, _) in tx.settles {
            handle.restore(settled);
        }
        conn.send_method(channel, &TxRollbackOk {}.into());
        Ok(())
    }
}
