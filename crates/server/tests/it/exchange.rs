//! exchange.declare / exchange.delete / exchange.bind / exchange.unbind.

use crate::common::*;
use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeUnbindOptions,
    QueueBindOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

fn passive() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions { passive: true, ..Default::default() }
}

async fn declare(ch: &Channel, name: &str, kind: ExchangeKind, opts: ExchangeDeclareOptions) {
    within(ch.exchange_declare(name.into(), kind, opts, FieldTable::default()))
        .await
        .unwrap_or_else(|e| panic!("declare exchange {name}: {e:?}"));
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    within(ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap_or_else(|e| panic!("bind {queue} to {exchange}: {e:?}"));
}

#[tokio::test]
async fn declare_each_type_and_redeclare_identically() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    for kind in [ExchangeKind::Direct, ExchangeKind::Fanout, ExchangeKind::Topic, ExchangeKind::Headers] {
        for durable in [false, true] {
            let name = uniq("x-decl");
            let opts = ExchangeDeclareOptions { durable, ..Default::default() };
            declare(&ch, &name, kind.clone(), opts).await;
            // identical redeclaration is a no-op
            declare(&ch, &name, kind.clone(), opts).await;
            // passive declaration of an existing exchange succeeds
            declare(&ch, &name, kind.clone(), passive()).await;
            within(ch.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())).await.unwrap();
            let ch2 = c.channel().await;
            assert_err(
                ch2.exchange_declare(name.as_str().into(), kind.clone(), passive(), FieldTable::default()),
                404,
                &format!("NOT_FOUND - no exchange '{name}' in vhost '/'"),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn passive_declare_of_missing_exchange_is_404() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let name = uniq("x-missing");
    assert_err(
        ch.exchange_declare(name.as_str().into(), ExchangeKind::Direct, passive(), FieldTable::default()),
        404,
        &format!("NOT_FOUND - no exchange '{name}' in vhost '/'"),
    )
    .await;
    // the channel is closed, the connection is not
    let ch = c.channel().await;
    declare(&ch, &uniq("x-after"), ExchangeKind::Direct, Default::default()).await;
}

#[tokio::test]
async fn passive_declare_ignores_type_and_flags() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let name = uniq("x-passive");
    declare(&ch, &name, ExchangeKind::Direct, Default::default()).await;
    let opts =
        ExchangeDeclareOptions { passive: true, durable: true, auto_delete: true, ..Default::default() };
    declare(&ch, &name, ExchangeKind::Fanout, opts).await;
}

#[tokio::test]
async fn redeclare_with_different_type_is_406() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let name = uniq("x-type");
    declare(&ch, &name, ExchangeKind::Direct, Default::default()).await;
    assert_err(
        ch.exchange_declare(
            name.as_str().into(),
            ExchangeKind::Fanout,
            Default::default(),
            FieldTable::default(),
        ),
        406,
        &format!(
            "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{name}' in vhost '/': \
             received 'fanout' but current is 'direct'"
        ),
    )
    .await;
}

#[tokio::test]
async fn redeclare_with_different_flags_is_406() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let name = uniq("x-flags");
    declare(&ch, &name, ExchangeKind::Topic, Default::default()).await;
    let cases = [
        ("durable", ExchangeDeclareOptions { durable: true, ..Default::default() }),
        ("auto_delete", ExchangeDeclareOptions { auto_delete: true, ..Default::default() }),
        ("internal", ExchangeDeclareOptions { internal: true, ..Default::default() }),
    ];
    for (field, opts) in cases {
        let ch = c.channel().await;
        assert_err(
            ch.exchange_declare(name.as_str().into(), ExchangeKind::Topic, opts, FieldTable::default()),
            406,
            &format!(
                "PRECONDITION_FAILED - inequivalent arg '{field}' for exchange '{name}' in \
                 vhost '/': received 'true' but current is 'false'"
            ),
        )
        .await;
    }
    // arguments are compared too
    let ch = c.channel().await;
    let mut args = FieldTable::default();
    args.insert("alternate-exchange".into(), AMQPValue::LongString("ae".into()));
    assert_err(
        ch.exchange_declare(name.as_str().into(), ExchangeKind::Topic, Default::default(), args),
        406,
        &format!(
            "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '{name}' \
             in vhost '/': received the value 'ae' of type 'longstr' but current is none"
        ),
    )
    .await;
}

#[tokio::test]
async fn reserved_amq_prefix_is_403() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let name = format!("amq.{}", uniq("foo"));
    assert_err(
        ch.exchange_declare(
            name.as_str().into(),
            ExchangeKind::Direct,
            Default::default(),
            FieldTable::default(),
        ),
        403,
        &format!("ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'"),
    )
    .await;
}

#[tokio::test]
async fn predeclared_amq_exchanges_exist() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    for (name, kind) in [
        ("amq.direct", ExchangeKind::Direct),
        ("amq.fanout", ExchangeKind::Fanout),
        ("amq.topic", ExchangeKind::Topic),
        ("amq.headers", ExchangeKind::Headers),
        ("amq.match", ExchangeKind::Headers),
    ] {
        declare(&ch, name, kind.clone(), passive()).await;
        // an equivalent (durable, same type) redeclaration is accepted
        declare(&ch, name, kind, durable).await;
    }
    // an inequivalent one is not
    assert_err(
        ch.exchange_declare(
            "amq.direct".into(),
            ExchangeKind::Direct,
            Default::default(),
            FieldTable::default(),
        ),
        406,
        "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'amq.direct' in vhost \
         '/': received 'false' but current is 'true'",
    )
    .await;
    let ch = c.channel().await;
    assert_err(
        ch.exchange_declare("amq.direct".into(), ExchangeKind::Fanout, durable, FieldTable::default()),
        406,
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.direct' in vhost '/': \
         received 'fanout' but current is 'direct'",
    )
    .await;
}

#[tokio::test]
async fn default_exchange_cannot_be_declared_deleted_or_bound() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let text = "ACCESS_REFUSED - operation not permitted on the default exchange";
    let ch = c.channel().await;
    assert_err(
        ch.exchange_declare("".into(), ExchangeKind::Direct, passive(), FieldTable::default()),
        403,
        text,
    )
    .await;
    let ch = c.channel().await;
    assert_err(
        ch.exchange_declare(
            "".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        ),
        403,
        text,
    )
    .await;
    let ch = c.channel().await;
    assert_err(ch.exchange_delete("".into(), ExchangeDeleteOptions::default()), 403, text).await;
    let ch = c.channel().await;
    let q = uniq("q-default-bind");
    declare_queue(&ch, &q).await;
    assert_err(
        ch.queue_bind(
            q.as_str().into(),
            "".into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
        403,
        text,
    )
    .await;
    let ch = c.channel().await;
    assert_err(
        ch.queue_unbind(q.as_str().into(), "".into(), q.as_str().into(), FieldTable::default()),
        403,
        text,
    )
    .await;
    // "amq.default" is not an alias the client can use
    let ch = c.channel().await;
    assert_err(
        ch.exchange_declare("amq.default".into(), ExchangeKind::Direct, passive(), FieldTable::default()),
        404,
        "NOT_FOUND - no exchange 'amq.default' in vhost '/'",
    )
    .await;
}

#[tokio::test]
async fn unknown_exchange_type_is_a_connection_error_503() {
    let b = Broker::start().await;
    let mut c = b.connect().await;
    let ch = c.channel().await;
    let name = uniq("x-badtype");
    // RabbitMQ says "unknown exchange type" for a name that is not an Erlang
    // atom known to the VM (and "invalid exchange type" for e.g. 'foo').
    let text = "COMMAND_INVALID - unknown exchange type 'no-such-type'";
    assert_err(
        ch.exchange_declare(
            name.as_str().into(),
            ExchangeKind::Custom("no-such-type".into()),
            Default::default(),
            FieldTable::default(),
        ),
        503,
        text,
    )
    .await;
    // 503 is a hard error: the whole connection is closed.
    c.assert_next_error(503, text).await;
    eventually("connection closed", || async { (!c.conn.status().connected()).then_some(()) }).await;
    // and the exchange was not created
    let c2 = b.connect().await;
    let ch = c2.channel().await;
    assert_err(
        ch.exchange_declare(name.as_str().into(), ExchangeKind::Direct, passive(), FieldTable::default()),
        404,
        &format!("NOT_FOUND - no exchange '{name}' in vhost '/'"),
    )
    .await;
}

#[tokio::test]
async fn delete_if_unused() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let x = uniq("x-ifunused");
    let q = uniq("q-ifunused");
    declare(&ch, &x, ExchangeKind::Direct, Default::default()).await;
    declare_queue(&ch, &q).await;
    bind(&ch, &q, &x, "k").await;
    assert_err(
        ch.exchange_delete(
            x.as_str().into(),
            ExchangeDeleteOptions { if_unused: true, ..Default::default() },
        ),
        406,
        &format!("PRECONDITION_FAILED - exchange '{x}' in vhost '/' in use"),
    )
    .await;
    // still there
    let ch = c.channel().await;
    declare(&ch, &x, ExchangeKind::Direct, passive()).await;
    within(ch.queue_unbind(q.as_str().into(), x.as_str().into(), "k".into(), FieldTable::default()))
        .await
        .unwrap();
    within(
        ch.exchange_delete(
            x.as_str().into(),
            ExchangeDeleteOptions { if_unused: true, ..Default::default() },
        ),
    )
    .await
    .expect("delete unused exchange");
    assert_err(
        ch.exchange_declare(x.as_str().into(), ExchangeKind::Direct, passive(), FieldTable::default()),
        404,
        &format!("NOT_FOUND - no exchange '{x}' in vhost '/'"),
    )
    .await;
}

#[tokio::test]
async fn delete_removes_bindings_and_is_idempotent() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let x = uniq("x-del");
    let q = uniq("q-del");
    declare(&ch, &x, ExchangeKind::Fanout, Default::default()).await;
    declare_queue(&ch, &q).await;
    bind(&ch, &q, &x, "").await;
    within(ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()))
        .await
        .expect("delete bound exchange");
    // deleting a missing exchange succeeds in RabbitMQ 3.10
    within(ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()))
        .await
        .expect("delete missing exchange");
    // recreate it: the old binding must be gone
    declare(&ch, &x, ExchangeKind::Fanout, Default::default()).await;
    publish(&ch, &x, "", b"after recreate").await;
    publish(&ch, "", &q, b"direct").await;
    wait_message_count(&ch, &q, 1).await;
    assert_eq!(bodies(&drain(&ch, &q).await), vec!["direct"]);
}

#[tokio::test]
async fn system_exchanges_cannot_be_deleted() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    assert_err(
        ch.exchange_delete("amq.direct".into(), ExchangeDeleteOptions::default()),
        403,
        "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed",
    )
    .await;
}

#[tokio::test]
async fn exchange_to_exchange_bind_and_unbind_routing() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let src = uniq("x-src");
    let dst = uniq("x-dst");
    let q = uniq("q-e2e");
    declare(&ch, &src, ExchangeKind::Direct, Default::default()).await;
    declare(&ch, &dst, ExchangeKind::Fanout, Default::default()).await;
    declare_queue(&ch, &q).await;
    bind(&ch, &q, &dst, "").await;
    within(ch.exchange_bind(
        dst.as_str().into(),
        src.as_str().into(),
        "k1".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("exchange.bind");
    publish(&ch, &src, "k1", b"one").await;
    publish(&ch, &src, "other", b"dropped").await;
    publish(&ch, &dst, "whatever", b"two").await;
    wait_message_count(&ch, &q, 2).await;
    assert_eq!(bodies(&drain(&ch, &q).await), vec!["one", "two"]);

    within(ch.exchange_unbind(
        dst.as_str().into(),
        src.as_str().into(),
        "k1".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("exchange.unbind");
    publish(&ch, &src, "k1", b"after unbind").await;
    publish(&ch, &dst, "", b"marker").await;
    wait_message_count(&ch, &q, 1).await;
    assert_eq!(bodies(&drain(&ch, &q).await), vec!["marker"]);
}

#[tokio::test]
async fn exchange_to_exchange_chain_and_cycle_deliver_once() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let a = uniq("x-a");
    let bx = uniq("x-b");
    let q = uniq("q-cycle");
    declare(&ch, &a, ExchangeKind::Fanout, Default::default()).await;
    declare(&ch, &bx, ExchangeKind::Fanout, Default::default()).await;
    declare_queue(&ch, &q).await;
    for (d, s) in [(&bx, &a), (&a, &bx)] {
        within(ch.exchange_bind(
            d.as_str().into(),
            s.as_str().into(),
            "".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        ))
        .await
        .unwrap();
    }
    bind(&ch, &q, &a, "").await;
    bind(&ch, &q, &bx, "").await;
    publish(&ch, &a, "", b"once").await;
    publish(&ch, "", &q, b"marker").await;
    wait_message_count(&ch, &q, 2).await;
    assert_eq!(bodies(&drain(&ch, &q).await), vec!["once", "marker"]);
}

#[tokio::test]
async fn exchange_bind_with_missing_exchange_is_404() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let x = uniq("x-present");
    let missing = uniq("x-absent");
    declare(&ch, &x, ExchangeKind::Direct, Default::default()).await;
    assert_err(
        ch.exchange_bind(
            missing.as_str().into(),
            x.as_str().into(),
            "k".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        ),
        404,
        &format!("NOT_FOUND - no exchange '{missing}' in vhost '/'"),
    )
    .await;
    let ch = c.channel().await;
    assert_err(
        ch.exchange_bind(
            x.as_str().into(),
            missing.as_str().into(),
            "k".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        ),
        404,
        &format!("NOT_FOUND - no exchange '{missing}' in vhost '/'"),
    )
    .await;
}

#[tokio::test]
async fn internal_exchange_rejects_publish_but_routes_bound_traffic() {
    let b = Broker::start().await;
    let mut c = b.connect().await;
    let ch = c.channel().await;
    let front = uniq("x-front");
    let internal = uniq("x-internal");
    let q = uniq("q-internal");
    declare(&ch, &front, ExchangeKind::Fanout, Default::default()).await;
    declare(
        &ch,
        &internal,
        ExchangeKind::Fanout,
        ExchangeDeclareOptions { internal: true, ..Default::default() },
    )
    .await;
    declare_queue(&ch, &q).await;
    bind(&ch, &q, &internal, "").await;
    within(ch.exchange_bind(
        internal.as_str().into(),
        front.as_str().into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    publish(&ch, &front, "", b"via front").await;
    wait_message_count(&ch, &q, 1).await;
    assert_eq!(bodies(&drain(&ch, &q).await), vec!["via front"]);

    publish(&ch, &internal, "", b"direct to internal").await;
    c.assert_next_error(
        403,
        &format!("ACCESS_REFUSED - cannot publish to internal exchange '{internal}' in vhost '/'"),
    )
    .await;
}

#[tokio::test]
async fn auto_delete_exchange_goes_away_with_its_last_binding() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let x = uniq("x-autodel");
    let q = uniq("q-autodel");
    declare(
        &ch,
        &x,
        ExchangeKind::Direct,
        ExchangeDeclareOptions { auto_delete: true, ..Default::default() },
    )
    .await;
    declare_queue(&ch, &q).await;
    // never bound: stays
    declare(&ch, &x, ExchangeKind::Direct, passive()).await;
    bind(&ch, &q, &x, "a").await;
    bind(&ch, &q, &x, "b").await;
    within(ch.queue_unbind(q.as_str().into(), x.as_str().into(), "a".into(), FieldTable::default()))
        .await
        .unwrap();
    declare(&ch, &x, ExchangeKind::Direct, passive()).await;
    within(ch.queue_unbind(q.as_str().into(), x.as_str().into(), "b".into(), FieldTable::default()))
        .await
        .unwrap();
    let x2 = x.clone();
    let c2 = &c;
    eventually("auto-delete exchange removed", || {
        let x = x2.clone();
        async move {
            let ch = c2.channel().await;
            ch.exchange_declare(x.as_str().into(), ExchangeKind::Direct, passive(), FieldTable::default())
                .await
                .err()
                .and_then(|e| amqp_error(&e))
                .filter(|(code, _)| *code == 404)
        }
    })
    .await;
}

#[tokio::test]
async fn alternate_exchange_receives_unroutable_messages() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let ae = uniq("x-ae");
    let main = uniq("x-main");
    let q_ae = uniq("q-ae");
    let q_main = uniq("q-main");
    declare(&ch, &ae, ExchangeKind::Fanout, Default::default()).await;
    let mut args = FieldTable::default();
    args.insert("alternate-exchange".into(), AMQPValue::LongString(ae.as_str().into()));
    within(ch.exchange_declare(main.as_str().into(), ExchangeKind::Direct, Default::default(), args))
        .await
        .unwrap();
    declare_queue(&ch, &q_ae).await;
    declare_queue(&ch, &q_main).await;
    bind(&ch, &q_ae, &ae, "").await;
    bind(&ch, &q_main, &main, "routed").await;
    publish(&ch, &main, "routed", b"r").await;
    publish(&ch, &main, "unrouted", b"u").await;
    wait_message_count(&ch, &q_main, 1).await;
    wait_message_count(&ch, &q_ae, 1).await;
    assert_eq!(bodies(&drain(&ch, &q_main).await), vec!["r"]);
    assert_eq!(bodies(&drain(&ch, &q_ae).await), vec!["u"]);
}
