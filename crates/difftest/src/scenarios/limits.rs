//! Vhost limits (max-connections, max-queues) and user limits (max-connections,
//! max-channels), set with the operator commands on both brokers.

use super::access::{attempt, login, PASSWORD};
use crate::harness::{Abort, Ctx, Res};
use crate::raw::{Login, QFlags};
use crate::wire::Table;

/// A vhost with max-connections 1 and max-queues 2: a second connection is refused; a third
/// queue is refused while redeclaring one of the two is fine, and a queue can be declared
/// again after one is deleted.
pub async fn vhost_limits(cx: Ctx) -> Res {
    let vhost = cx.vhost("v");
    cx.ctl(&["add_vhost", &vhost]).await?;
    cx.ctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]).await?;
    cx.ctl(&["set_vhost_limits", "-p", &vhost, r#"{"max-connections": 1, "max-queues": 2}"#]).await?;
    let guest = Login { vhost: vhost.clone(), ..Default::default() };
    let mut c1 = attempt(&cx, "c1", guest.clone()).await?.ok_or_else(|| Abort("c1: refused".into()))?;
    attempt(&cx, "c2", guest.clone()).await?;
    c1.open(1).await?;
    c1.queue(1, "q1").await?;
    c1.queue(1, "q2").await?;
    c1.queue(1, "q3").await?;
    c1.open(1).await?;
    c1.declare_queue(1, "", QFlags::exclusive(), Table::new()).await?;
    c1.open(1).await?;
    c1.queue(1, "q1").await?;
    c1.passive(1, "q2").await?;
    c1.call(1, warren_protocol::methods::QueueDelete { queue: "q2".into(), ..Default::default() }).await?;
    c1.queue(1, "q3").await?;
    c1.close().await?;
    // The connection slot is free again.
    let c3 = attempt(&cx, "c3", guest).await?;
    if let Some(c3) = c3 {
        c3.close().await?;
    }
    Ok(())
}

/// A user with max-connections 1 and max-channels 2: its second connection is refused, and
/// so is a third channel.
pub async fn user_limits(cx: Ctx) -> Res {
    let user = cx.user("u");
    cx.ctl(&["add_user", &user, PASSWORD]).await?;
    cx.ctl(&["set_permissions", &user, ".*", ".*", ".*"]).await?;
    cx.ctl(&["set_user_limits", &user, r#"{"max-connections": 1, "max-channels": 2}"#]).await?;
    let mut c1 = login(&cx, "c1", &user, "/").await?;
    let as_user = Login { user: user.clone(), pass: PASSWORD.into(), ..Default::default() };
    attempt(&cx, "c2", as_user).await?;
    c1.open(1).await?;
    c1.open(2).await?;
    match c1.open(3).await {
        Ok(_) => c1.close().await,
        // A connection error: the close is logged, the socket ends.
        Err(_) => c1.expect_eof().await,
    }
}
