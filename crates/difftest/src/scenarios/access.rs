//! Access control, set up with the same operator commands on both brokers: refused logins
//! and vhosts, server-named queues under a configure permission, the user_id property and
//! the impersonator tag, and deleting a vhost or a user under open connections. The
//! permission matrix is in `access_matrix`, topic permissions in `topic_access`, limits in
//! `limits`.

use warren_protocol::methods::*;

use crate::harness::{Abort, Ctx, Res};
use crate::lapin_client::describe_error;
use crate::raw::{Login, Opened, QFlags, Raw};
use crate::wire::{Props, Table};

/// The password of every user the scenarios add.
pub const PASSWORD: &str = "dt-secret";

/// A handshake as `user` on `vhost` whose outcome is logged either way: the open connection,
/// or None after a refusal (what the server sent, then how the socket ended).
pub async fn attempt(cx: &Ctx, label: &str, login: Login) -> Res<Option<Raw>> {
    let mut c = Raw::tcp(cx, label).await?;
    match c.handshake(&login).await {
        Ok(Opened::Yes) => Ok(Some(c)),
        Ok(Opened::Refused) => Ok(None),
        // The socket closed before any close method (the transcript shows `<- EOF`).
        Err(Abort(m)) => {
            cx.log(format!("{label} handshake ended: {m}"));
            Ok(None)
        }
    }
}

/// Logs in as `user` (password [`PASSWORD`]) on `vhost`; a refusal aborts.
pub async fn login(cx: &Ctx, label: &str, user: &str, vhost: &str) -> Res<Raw> {
    let login = Login { user: user.into(), pass: PASSWORD.into(), vhost: vhost.into(), ..Default::default() };
    attempt(cx, label, login).await?.ok_or_else(|| Abort(format!("{label}: login refused")))
}

/// A user with all permissions on "/".
async fn add_full_user(cx: &Ctx, user: &str) -> Res {
    cx.ctl(&["add_user", user, PASSWORD]).await?;
    cx.ctl(&["set_permissions", "-p", "/", user, ".*", ".*", ".*"]).await
}

/// Calls `m` on channel 1; after a channel error, opens channel 1 again.
pub async fn try_call(c: &mut Raw, m: impl Into<Method>) -> Res {
    let r = c.call(1, m).await?;
    if r.is("channel.close") {
        c.open(1).await?;
    }
    Ok(())
}

/// Refused logins: a vhost that does not exist, a vhost the user has no permissions on, a
/// wrong password (with and without the authentication_failure_close capability) and an
/// unknown user, from the raw client and as lapin sees them.
pub async fn access_login_refusals(cx: Ctx) -> Res {
    let user = cx.user("u");
    cx.ctl(&["add_user", &user, PASSWORD]).await?;
    let as_user = |vhost: &str, pass: &str| Login {
        user: user.clone(),
        pass: pass.into(),
        vhost: vhost.into(),
        ..Default::default()
    };
    attempt(&cx, "c1", as_user("dt-no-such-vhost", PASSWORD)).await?;
    // No permissions anywhere yet.
    attempt(&cx, "c2", as_user("/", PASSWORD)).await?;
    attempt(&cx, "c3", as_user("/", "wrong")).await?;
    attempt(&cx, "c4", Login { auth_failure_close: false, ..as_user("/", "wrong") }).await?;
    let unknown = Login { user: "dt-no-such-user".into(), pass: PASSWORD.into(), ..Default::default() };
    // (Without the capability RabbitMQ waits 3 s before it closes: one such case is enough.)
    attempt(&cx, "c5", unknown).await?;
    for (label, pass, vhost) in
        [("l1", "wrong", "%2f"), ("l2", PASSWORD, "%2f"), ("l3", PASSWORD, "dt-no-such-vhost")]
    {
        let url = format!("amqp://{user}:{pass}@{}/{vhost}", cx.addr());
        let r = crate::harness::within(
            "lapin connect",
            lapin::Connection::connect(&url, lapin::ConnectionProperties::default()),
        )
        .await?;
        match r {
            Ok(conn) => {
                cx.log(format!("{label} lapin connect: ok"));
                let _ = conn.close(200, "bye".into()).await;
            }
            Err(e) => cx.log(format!("{label} lapin connect: error {}", describe_error(&e))),
        }
    }
    // Any permissions, even empty ones, open the vhost.
    cx.ctl(&["set_permissions", &user, "", "", ""]).await?;
    let c = login(&cx, "c6", &user, "/").await?;
    c.close().await
}

/// A server-named queue is checked against the configure permission with its generated
/// name (`amq.gen-…`).
pub async fn access_server_named_queue(cx: Ctx) -> Res {
    let user = cx.user("u");
    cx.ctl(&["add_user", &user, PASSWORD]).await?;
    cx.ctl(&["set_permissions", &user, r"^amq\.gen", "", ""]).await?;
    let mut c = login(&cx, "c1", &user, "/").await?;
    c.open(1).await?;
    c.declare_queue(1, "", QFlags::exclusive(), Table::new()).await?;
    let plain = c.declare_queue(1, "", QFlags::default(), Table::new()).await?.queue()?;
    let q = c.declare_queue(1, "", QFlags::auto_delete(), Table::new()).await?.queue()?;
    // Declaring the generated name is refused for its reserved prefix, a name outside the
    // expression for the permission.
    try_call(&mut c, QueueDeclare { queue: q.as_str().into(), auto_delete: true, ..Default::default() })
        .await?;
    c.declare_queue(1, &q, QFlags { passive: true, ..Default::default() }, Table::new()).await?;
    try_call(&mut c, QueueDeclare { queue: "dt-not-generated".into(), ..Default::default() }).await?;
    // Neither goes away by itself.
    for name in [&plain, &q] {
        c.call(1, QueueDelete { queue: name.as_str().into(), ..Default::default() }).await?;
    }
    c.close().await?;
    cx.ctl(&["set_permissions", &user, r"^dt-", "", ""]).await?;
    let mut c = login(&cx, "c2", &user, "/").await?;
    c.open(1).await?;
    c.declare_queue(1, "", QFlags::exclusive(), Table::new()).await?;
    c.close().await
}

/// The user_id property must name the connection's user unless the user has the
/// impersonator tag (as it was when the connection opened).
pub async fn access_user_id_impersonator(cx: Ctx) -> Res {
    let user = cx.user("u");
    let q = cx.name("q");
    add_full_user(&cx, &user).await?;
    let mut c1 = login(&cx, "c1", &user, "/").await?;
    c1.open(1).await?;
    c1.queue(1, &q).await?;
    c1.publish(1, "", &q, &Props::new().user_id(&user), b"own name").await;
    c1.get(1, &q, true).await?;
    c1.publish(1, "", &q, &Props::new().user_id("guest"), b"someone else").await;
    c1.recv(1).await?;
    cx.ctl(&["set_user_tags", &user, "impersonator"]).await?;
    let mut c2 = login(&cx, "c2", &user, "/").await?;
    c2.open(1).await?;
    c2.publish(1, "", &q, &Props::new().user_id("guest"), b"impersonated").await;
    c2.get(1, &q, true).await?;
    c2.close().await?;
    // c1 logged in before the tag was set.
    c1.open(1).await?;
    c1.publish(1, "", &q, &Props::new().user_id("guest"), b"before the tag").await;
    c1.recv(1).await?;
    c1.close().await
}

/// Deleting a vhost closes the connections on it.
pub async fn access_delete_vhost_with_connection(cx: Ctx) -> Res {
    let vhost = cx.vhost("v");
    cx.ctl(&["add_vhost", &vhost]).await?;
    cx.ctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]).await?;
    let mut c = Raw::tcp(&cx, "c1").await?;
    let guest = Login { vhost: vhost.clone(), ..Default::default() };
    if c.handshake(&guest).await? == Opened::Refused {
        return Ok(());
    }
    c.open(1).await?;
    c.queue(1, "q").await?;
    cx.ctl(&["delete_vhost", &vhost]).await?;
    c.expect_eof().await
}

/// Deleting a user closes its connections.
pub async fn access_delete_user_with_connection(cx: Ctx) -> Res {
    let user = cx.user("u");
    add_full_user(&cx, &user).await?;
    let mut c = login(&cx, "c1", &user, "/").await?;
    c.open(1).await?;
    c.open(2).await?;
    cx.ctl(&["delete_user", &user]).await?;
    c.expect_eof().await?;
    attempt(&cx, "c2", Login { user: user.clone(), pass: PASSWORD.into(), ..Default::default() }).await?;
    Ok(())
}
