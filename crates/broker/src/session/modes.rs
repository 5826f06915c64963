//! Channel modes: plain, publisher confirms, or transactional.

use bytes::Bytes;
use warren_connection::{AmqpError, Connection};
use warren_protocol::frame::ContentHeader;
use warren_protocol::methods::*;

use super::basic::apply_settle;
use super::Session;
use crate::channel::Unacked;
use crate::queue::Settle;

pub(super) enum Mode {
    Plain,
    /// Publisher confirms: `published` publishes seen, `confirmed` of them acknowledged so far.
    Confirm {
        published: u64,
        confirmed: u64,
    },
    /// Publishes and settlements wait here for tx.commit.
    Tx(TxBuffer),
}

#[derive(Default)]
pub(super) struct TxBuffer {
    publishes: Vec<(BasicPublish, ContentHeader, Bytes)>,
    settles: Vec<(Vec<Unacked>, Settle)>,
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

    /// Counts a publish that will be confirmed at the end of the input batch.
    pub(super) fn published(&mut self) {
        if let Mode::Confirm { published, .. } = self {
            *published += 1;
        }
    }

    /// One basic.ack covering every publish since the last one.
    pub(super) fn send_confirms(&mut self, channel: u16, conn: &mut Connection) {
        if let Mode::Confirm { published, confirmed } = self {
            if *published > *confirmed {
                let ack = BasicAck { delivery_tag: *published, multiple: *published - *confirmed > 1 };
                conn.send_method(channel, &ack.into());
                *confirmed = *published;
            }
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
            Mode::Plain => ch.mode = Mode::Confirm { published: 0, confirmed: 0 },
            Mode::Confirm { .. } => {}
        }
        if !nowait {
            conn.send_method(channel, &ConfirmSelectOk {}.into());
        }
        Ok(())
    }

    pub(super) fn tx_select(&mut self, conn: &mut Connection, channel: u16) -> Result<(), AmqpError> {
        let ch = self.channel_or_err(channel)?;
        match ch.mode {
            Mode::Confirm { .. } => {
                return Err(AmqpError::precondition_failed("cannot switch from confirm to tx mode"))
            }
            Mode::Plain => ch.mode = Mode::Tx(TxBuffer::default()),
            Mode::Tx(_) => {}
        }
        conn.send_method(channel, &TxSelectOk {}.into());
        Ok(())
    }

    fn take_tx(&mut self, channel: u16) -> Result<TxBuffer, AmqpError> {
        let ch = self.channel_or_err(channel)?;
        match &mut ch.mode {
            Mode::Tx(tx) => Ok(std::mem::take(tx)),
            _ => Err(AmqpError::precondition_failed("channel is not transactional")),
        }
    }

    pub(super) fn tx_commit(&mut self, conn: &mut Connection, channel: u16) -> Result<(), AmqpError> {
        let tx = self.take_tx(channel)?;
        for (publish, header, body) in tx.publishes {
            self.route_publish(conn, channel, publish, header, body)?;
        }
        let handle = self.channel_or_err(channel)?.handle.clone();
        for (settled, how) in tx.settles {
            apply_settle(self.vhost.as_deref(), &handle, settled, how);
        }
        conn.send_method(channel, &TxCommitOk {}.into());
        Ok(())
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
