//! Transactions (tx.*) and publisher confirms (confirm.select).

use warren_protocol::methods::*;

use crate::harness::{Ctx, Res};
use crate::raw::{QFlags, Raw};
use crate::wire::{Props, Table, Val};

/// Publishes in a transaction are invisible until commit; rollback drops
/// them; the channel stays transactional.
pub async fn tx_commit_and_rollback_publishes(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.open(2).await?;
    c.queue(2, &q).await?;
    c.call(1, TxSelect).await?;
    c.call(1, TxSelect).await?;
    c.publish_to_queue(1, &q, b"t1").await;
    c.publish_to_queue(1, &q, b"t2").await;
    c.passive(2, &q).await?;
    c.call(1, TxCommit).await?;
    // commit-ok does not wait for the queue: poll from the other channel
    c.await_count(2, &q, 2).await?;
    c.publish_to_queue(1, &q, b"rolled back").await;
    c.call(1, TxRollback).await?;
    c.passive(2, &q).await?;
    c.call(1, TxCommit).await?;
    c.publish_to_queue(1, &q, b"t3").await;
    c.call(1, TxCommit).await?;
    c.await_count(2, &q, 3).await?;
    c.drain(2, &q).await?;
    // mandatory unroutable publish in a transaction: returned at commit
    c.publish_mandatory(1, "", &cx.name("nowhere"), &Props::new(), b"returned").await;
    c.call(1, TxCommit).await?;
    c.close().await
}

/// Acks in a transaction take effect at commit; rollback forgets them
/// (the messages stay unacked).
pub async fn tx_acks(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.open(2).await?;
    c.queue(2, &q).await?;
    for i in 0..4 {
        c.publish_to_queue(2, &q, format!("m{i}").as_bytes()).await;
    }
    c.await_count(2, &q, 4).await?;
    c.call(1, TxSelect).await?;
    for _ in 0..4 {
        c.get(1, &q, false).await?;
    }
    c.ack(1, 1, false).await;
    c.send(1, BasicReject { delivery_tag: 2, requeue: true }).await;
    c.passive(2, &q).await?;
    c.call(1, TxRollback).await?;
    c.passive(2, &q).await?;
    c.ack(1, 2, true).await;
    c.send(1, BasicNack { delivery_tag: 3, multiple: false, requeue: true }).await;
    c.call(1, TxCommit).await?;
    c.await_count(2, &q, 1).await?;
    c.get(2, &q, true).await?;
    c.close_channel(1).await?;
    c.await_count(2, &q, 1).await?;
    c.close().await
}

/// Mode errors: commit/rollback without tx.select, switching between tx
/// and confirm mode.
pub async fn tx_and_confirm_mode_errors(cx: Ctx) -> Res {
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.call(1, TxCommit).await?;
    c.open(1).await?;
    c.call(1, TxRollback).await?;
    c.open(1).await?;
    c.call(1, TxSelect).await?;
    c.confirm_select(1).await?;
    c.open(1).await?;
    c.confirm_select(1).await?;
    c.confirm_select(1).await?;
    c.call(1, TxSelect).await?;
    c.open(1).await?;
    c.send(1, ConfirmSelect { nowait: true }).await;
    // no reply to a nowait select: the next reply is the qos-ok
    c.qos(1, 5, false).await?;
    c.publish_to_queue(1, "", b"confirmed").await;
    c.await_confirms(1, 1, 1).await?;
    c.close().await
}

/// Confirm sequence numbers count publishes on the channel from 1,
/// whatever the routing outcome; an unroutable mandatory message is
/// returned before it is acked.
pub async fn confirm_sequence_and_returns(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.queue(1, &q).await?;
    c.publish_to_queue(1, &q, b"before confirm mode").await;
    c.confirm_select(1).await?;
    for i in 0..3 {
        c.publish_to_queue(1, &q, format!("c{i}").as_bytes()).await;
    }
    c.await_confirms(1, 1, 3).await?;
    c.publish(1, "", &cx.name("nowhere"), &Props::new(), b"unroutable").await;
    c.await_confirms(1, 4, 4).await?;
    c.publish_mandatory(1, "", &cx.name("nowhere"), &Props::new(), b"returned").await;
    c.recv(1).await?;
    c.recv(1).await?;
    c.publish_mandatory(1, "", &q, &Props::new(), b"routed").await;
    c.recv(1).await?;
    c.passive(1, &q).await?;
    c.close().await
}

/// A queue with x-overflow=reject-publish nacks publishes beyond its
/// length; a drop-head queue acks them.
pub async fn confirm_nack_on_reject_publish(cx: Ctx) -> Res {
    let q = cx.name("q");
    let q2 = cx.name("q2");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    let args = Table::new().with("x-max-length", Val::i32(2)).with("x-overflow", Val::str("reject-publish"));
    c.declare_queue(1, &q, QFlags::default(), args).await?;
    let args = Table::new().with("x-max-length", Val::i32(2));
    c.declare_queue(1, &q2, QFlags::default(), args).await?;
    c.confirm_select(1).await?;
    for i in 0..4 {
        c.publish_to_queue(1, &q, format!("r{i}").as_bytes()).await;
        c.await_confirms(1, i + 1, i + 1).await?;
    }
    for i in 0..4 {
        c.publish_to_queue(1, &q2, format!("d{i}").as_bytes()).await;
    }
    c.await_confirms(1, 5, 8).await?;
    c.drain(1, &q).await?;
    c.drain(1, &q2).await?;
    // a mandatory publish rejected by the queue: returned? nacked?
    for i in 0..3 {
        c.publish_mandatory(1, "", &q, &Props::new(), format!("m{i}").as_bytes()).await;
        c.await_confirms(1, 9 + i, 9 + i).await?;
    }
    c.drain(1, &q).await?;
    c.close().await
}
