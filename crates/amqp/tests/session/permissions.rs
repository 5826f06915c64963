//! Permissions, as RabbitMQ's table has them: every operation with every permission it needs
//! taken away in turn is refused with RabbitMQ's 403 text, and with all of them it succeeds;
//! topic permissions, impersonation, and the per-user and per-vhost limits.

use warren_broker::{AdminCommand, TopicPermission, User, UserLimits, VhostLimits, VhostSettings};

use crate::harness::*;

/// Every name the operations below use: a permission is granted as an alternation of these.
const NAMES: [&str; 9] = ["x", "s", "d", "ae", "dlx", "q", "fresh", "amq.default", "amq.gen-.*"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Need {
    Configure,
    Write,
    Read,
}

/// The broker set up by guest: exchanges x (topic), s, d, ae, dlx, queue q bound to x; user u.
fn setup() -> (TestBroker, TestClient) {
    let b = broker();
    let mut guest = client(&b);
    guest.exchange(1, "x", "topic");
    for name in ["s", "d", "ae", "dlx"] {
        guest.exchange(1, name, "direct");
    }
    guest.queue(1, "q");
    guest.bind(1, "q", "x", "k");
    b.admin(AdminCommand::AddUser(User::new("u", "pw")), now()).unwrap();
    (b, guest)
}

/// Grants u everything in [`NAMES`] except `missing`.
fn grant_all_but(b: &Broker, missing: Option<(Need, &str)>) {
    let pattern = |need: Need| {
        let names: Vec<String> = NAMES
            .iter()
            .filter(|n| missing != Some((need, **n)))
            .map(|n| if n.ends_with(".*") { n.to_string() } else { n.replace('.', "\\.") })
            .collect();
        format!("^({})$", names.join("|"))
    };
    b.admin(
        AdminCommand::SetPermissions {
            user: "u".into(),
            vhost: "/".into(),
            configure: pattern(Need::Configure),
            write: pattern(Need::Write),
            read: pattern(Need::Read),
        },
        now(),
    )
    .unwrap();
}

fn args(pairs: &[(&str, &str)]) -> FieldTable {
    table(&pairs.iter().map(|(k, v)| (*k, text(v))).collect::<Vec<_>>())
}

struct Case {
    name: &'static str,
    needs: &'static [(Need, &'static str, &'static str)],
    run: fn(&mut TestClient),
}

/// Each operation, the permissions it needs (kind of resource and name as the refusal names
/// them), and how to make it; the last method on channel 1 is answered by its -ok or a close.
const CASES: &[Case] = &[
    Case {
        name: "exchange.declare",
        needs: &[(Need::Configure, "exchange", "fresh")],
        run: |c| {
            c.send(
                1,
                ExchangeDeclare { exchange: "fresh".into(), kind: "direct".into(), ..Default::default() },
            )
        },
    },
    Case {
        name: "exchange.declare passive",
        needs: &[],
        run: |c| c.send(1, ExchangeDeclare { exchange: "x".into(), passive: true, ..Default::default() }),
    },
    Case {
        name: "exchange.declare with an alternate exchange",
        needs: &[
            (Need::Configure, "exchange", "fresh"),
            (Need::Read, "exchange", "fresh"),
            (Need::Write, "exchange", "ae"),
        ],
        run: |c| {
            c.send(
                1,
                ExchangeDeclare {
                    exchange: "fresh".into(),
                    kind: "direct".into(),
                    arguments: args(&[("alternate-exchange", "ae")]),
                    ..Default::default()
                },
            )
        },
    },
    Case {
        name: "exchange.delete",
        needs: &[(Need::Configure, "exchange", "d")],
        run: |c| c.send(1, ExchangeDelete { exchange: "d".into(), ..Default::default() }),
    },
    Case {
        name: "queue.declare",
        needs: &[(Need::Configure, "queue", "fresh")],
        run: |c| c.send(1, QueueDeclare { queue: "fresh".into(), ..Default::default() }),
    },
    Case {
        name: "queue.declare passive",
        needs: &[],
        run: |c| c.send(1, QueueDeclare { queue: "q".into(), passive: true, ..Default::default() }),
    },
    Case {
        name: "queue.declare with a dead-letter exchange",
        needs: &[
            (Need::Configure, "queue", "fresh"),
            (Need::Read, "queue", "fresh"),
            (Need::Write, "exchange", "dlx"),
        ],
        run: |c| {
            c.send(
                1,
                QueueDeclare {
                    queue: "fresh".into(),
                    arguments: args(&[("x-dead-letter-exchange", "dlx")]),
                    ..Default::default()
                },
            )
        },
    },
    Case {
        name: "queue.delete",
        needs: &[(Need::Configure, "queue", "q")],
        run: |c| c.send(1, QueueDelete { queue: "q".into(), ..Default::default() }),
    },
    Case {
        name: "queue.purge",
        needs: &[(Need::Read, "queue", "q")],
        run: |c| c.send(1, QueuePurge { queue: "q".into(), ..Default::default() }),
    },
    Case {
        name: "queue.bind",
        needs: &[(Need::Write, "queue", "q"), (Need::Read, "exchange", "s")],
        run: |c| {
            c.send(
                1,
                QueueBind {
                    queue: "q".into(),
                    exchange: "s".into(),
                    routing_key: "k".into(),
                    ..Default::default()
                },
            )
        },
    },
    Case {
        name: "queue.unbind",
        needs: &[(Need::Write, "queue", "q"), (Need::Read, "exchange", "x")],
        run: |c| {
            c.send(
                1,
                QueueUnbind {
                    queue: "q".into(),
                    exchange: "x".into(),
                    routing_key: "k".into(),
                    ..Default::default()
                },
            )
        },
    },
    Case {
        name: "exchange.bind",
        needs: &[(Need::Write, "exchange", "d"), (Need::Read, "exchange", "s")],
        run: |c| {
            c.send(
                1,
                ExchangeBind {
                    destination: "d".into(),
                    source: "s".into(),
                    routing_key: "k".into(),
                    ..Default::default()
                },
            )
        },
    },
    Case {
        name: "exchange.unbind",
        needs: &[(Need::Write, "exchange", "d"), (Need::Read, "exchange", "s")],
        run: |c| {
            c.send(
                1,
                ExchangeUnbind {
                    destination: "d".into(),
                    source: "s".into(),
                    routing_key: "k".into(),
                    ..Default::default()
                },
            )
        },
    },
    Case {
        name: "basic.get",
        needs: &[(Need::Read, "queue", "q")],
        run: |c| c.send(1, BasicGet { queue: "q".into(), ..Default::default() }),
    },
    Case {
        name: "basic.consume",
        needs: &[(Need::Read, "queue", "q")],
        run: |c| {
            c.send(1, BasicConsume { queue: "q".into(), consumer_tag: "t".into(), ..Default::default() })
        },
    },
    Case {
        name: "basic.publish",
        needs: &[(Need::Write, "exchange", "x")],
        run: |c| {
            c.publish(1, "x", "k", &no_props(), b"m");
            c.send(1, BasicQos::default());
        },
    },
    Case {
        name: "basic.publish to the default exchange",
        needs: &[(Need::Write, "exchange", "amq.default")],
        run: |c| {
            c.publish(1, "", "q", &no_props(), b"m");
            c.send(1, BasicQos::default());
        },
    },
    Case {
        name: "queue.declare server-named",
        needs: &[(Need::Configure, "queue", "amq.gen-")],
        run: |c| c.send(1, QueueDeclare::default()),
    },
];

#[test]
fn every_operation_needs_exactly_the_permissions_rabbitmq_names() {
    for case in CASES {
        let (b, _guest) = setup();
        grant_all_but(&b, None);
        let mut u = TestClient::connect_as(&b, "u", "pw", "/").unwrap();
        u.open_channel(1);
        (case.run)(&mut u);
        let items = u.recv_items();
        assert!(
            !items.iter().any(|i| matches!(i.method, Method::ChannelClose(_))),
            "{}: refused with every permission: {items:#?}",
            case.name
        );
        for &(need, kind, name) in case.needs {
            let (b, _guest) = setup();
            let regex_name = if name == "amq.gen-" { "amq.gen-.*" } else { name };
            grant_all_but(&b, Some((need, regex_name)));
            let mut u = TestClient::connect_as(&b, "u", "pw", "/").unwrap();
            u.open_channel(1);
            (case.run)(&mut u);
            let close = u.expect_channel_close(1);
            assert_eq!(close.reply_code, 403, "{} without {need:?} on {name}", case.name);
            let expected = format!("ACCESS_REFUSED - access to {kind} '{name}");
            assert!(close.reply_text.starts_with(&expected), "{}: {}", case.name, close.reply_text);
            assert!(close.reply_text.ends_with("in vhost '/' refused for user 'u'"), "{}", close.reply_text);
        }
    }
}

#[test]
fn connection_open_needs_permissions_in_the_vhost() {
    let (b, _guest) = setup();
    let close = TestClient::connect_as(&b, "u", "pw", "/").err().expect("refused");
    assert_eq!(
        (close.reply_code, &*close.reply_text),
        (530, "NOT_ALLOWED - access to vhost '/' refused for user 'u'")
    );
    let close = TestClient::connect_as(&b, "u", "pw", "nope").err().expect("refused");
    assert_eq!(&*close.reply_text, "NOT_ALLOWED - vhost nope not found");
    grant_all_but(&b, None);
    assert!(TestClient::connect_as(&b, "u", "pw", "/").is_ok());
}

#[test]
fn a_permission_change_applies_to_open_connections_at_once() {
    let (b, _guest) = setup();
    grant_all_but(&b, None);
    let mut u = TestClient::connect_as(&b, "u", "pw", "/").unwrap();
    u.open_channel(1);
    u.publish(1, "x", "k", &no_props(), b"1");
    grant_all_but(&b, Some((Need::Write, "x")));
    u.publish(1, "x", "k", &no_props(), b"2");
    let close = u.expect_channel_close(1);
    assert_eq!(
        &*close.reply_text,
        "ACCESS_REFUSED - access to exchange 'x' in vhost '/' refused for user 'u'"
    );
    u.open_channel(1);
    assert_eq!(u.counts(1, "q"), (1, 0), "the first publish went through, the second did not");
}

#[test]
fn topic_permissions_check_routing_and_binding_keys() {
    let (b, _guest) = setup();
    grant_all_but(&b, None);
    let permission =
        TopicPermission { exchange: "x".into(), write: "^{username}\\.".into(), read: "^public\\.".into() };
    b.admin(AdminCommand::SetTopicPermissions { user: "u".into(), vhost: "/".into(), permission }, now())
        .unwrap();
    let mut u = TestClient::connect_as(&b, "u", "pw", "/").unwrap();
    u.open_channel(1);
    u.publish(1, "x", "u.k", &no_props(), b"mine");
    u.publish(1, "x", "v.k", &no_props(), b"theirs");
    let close = u.expect_channel_close(1);
    assert_eq!(close.reply_code, 403);
    assert_eq!(
        &*close.reply_text,
        "ACCESS_REFUSED - access to topic 'v.k' in exchange 'x' in vhost '/' refused for user 'u'"
    );
    u.open_channel(1);
    u.send(
        1,
        QueueBind {
            queue: "q".into(),
            exchange: "x".into(),
            routing_key: "public.#".into(),
            ..Default::default()
        },
    );
    u.expect_one(1, "queue.bind-ok");
    u.send(
        1,
        QueueBind {
            queue: "q".into(),
            exchange: "x".into(),
            routing_key: "private.#".into(),
            ..Default::default()
        },
    );
    assert_eq!(u.expect_channel_close(1).reply_code, 403);
    // Other exchanges (and the default one) are not checked.
    u.open_channel(1);
    u.publish(1, "", "q", &no_props(), b"direct");
    u.send(1, BasicQos::default());
    u.expect_one(1, "basic.qos-ok");
}

#[test]
fn only_an_impersonator_may_claim_another_user_id() {
    let (b, _guest) = setup();
    grant_all_but(&b, None);
    let mut u = TestClient::connect_as(&b, "u", "pw", "/").unwrap();
    u.open_channel(1);
    let claim = BasicProperties { user_id: Some("someone".into()), ..Default::default() };
    u.publish(1, "", "q", &claim, b"m");
    assert_eq!(u.expect_channel_close(1).reply_code, 406);
    b.admin(AdminCommand::SetUserTags { user: "u".into(), tags: vec!["impersonator".into()] }, now())
        .unwrap();
    // As in RabbitMQ, the tag counts from the next connection on.
    u.open_channel(1);
    u.publish(1, "", "q", &claim, b"m");
    assert_eq!(u.expect_channel_close(1).reply_code, 406);
    let mut v = TestClient::connect_as(&b, "u", "pw", "/").unwrap();
    v.open_channel(1);
    v.publish(1, "", "q", &claim, b"m");
    v.send(1, BasicQos::default());
    v.expect_one(1, "basic.qos-ok");
}

#[test]
fn user_and_vhost_limits_refuse_as_rabbitmq() {
    let (b, mut guest) = setup();
    grant_all_but(&b, None);
    let limits = UserLimits { max_connections: Some(1), max_channels: Some(2) };
    b.admin(AdminCommand::SetUserLimits { user: "u".into(), limits }, now()).unwrap();
    let mut first = TestClient::connect_as(&b, "u", "pw", "/").unwrap();
    let close = TestClient::connect_as(&b, "u", "pw", "/").err().expect("over the limit");
    assert_eq!(
        (close.reply_code, &*close.reply_text),
        (530, "NOT_ALLOWED - connection refused for user 'u': user connection limit (1) is reached")
    );
    first.open_channel(1);
    first.open_channel(2);
    first.send(3, ChannelOpen::default());
    let close = first.expect_connection_close();
    assert_eq!(
        (close.reply_code, &*close.reply_text),
        (530, "NOT_ALLOWED - number of channels opened for user 'u' has reached the maximum allowed user limit of (2)")
    );
    first.disconnect();
    // The closed connection and its channels no longer count.
    let mut again = TestClient::connect_as(&b, "u", "pw", "/").unwrap();
    again.open_channel(1);
    again.open_channel(2);

    let limits = VhostLimits { max_connections: Some(2), max_queues: Some(2) };
    b.admin(AdminCommand::SetVhostLimits { vhost: "/".into(), limits }, now()).unwrap();
    let close = TestClient::connect_as(&b, "guest", "guest", "/").err().expect("guest + u are two");
    assert_eq!(
        &*close.reply_text,
        "NOT_ALLOWED - access to vhost '/' refused for user 'guest': connection limit (2) is reached"
    );
    guest.queue(1, "q2");
    guest.send(1, QueueDeclare { queue: "q3".into(), ..Default::default() });
    let close = guest.expect_channel_close(1);
    assert_eq!(
        (close.reply_code, &*close.reply_text),
        (406, "PRECONDITION_FAILED - cannot declare queue 'q3': queue limit in vhost '/' (2) is reached")
    );
    guest.open_channel(1);
    guest.queue(1, "q2");
    guest.expect_nothing();
    b.admin(AdminCommand::SetVhostLimits { vhost: "/".into(), limits: VhostLimits::default() }, now())
        .unwrap();
    guest.queue(1, "q3");
}

#[test]
fn deleting_a_user_or_vhost_closes_its_connections() {
    let (b, _guest) = setup();
    b.admin(AdminCommand::AddVhost { name: "v".into(), settings: VhostSettings::default() }, now()).unwrap();
    b.admin(
        AdminCommand::SetPermissions {
            user: "u".into(),
            vhost: "v".into(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        },
        now(),
    )
    .unwrap();
    let mut u = TestClient::connect_as(&b, "u", "pw", "v").unwrap();
    u.open_channel(1);
    u.queue(1, "in-v");
    b.admin(AdminCommand::DeleteVhost("v".into()), now()).unwrap();
    u.session.end_of_batch(&mut u.conn);
    let close = u.expect_connection_close();
    assert_eq!((close.reply_code, &*close.reply_text), (320, "CONNECTION_FORCED - vhost 'v' is deleted"));
    assert!(b.vhost("v").is_none());
    let close = TestClient::connect_as(&b, "u", "pw", "v").err().expect("gone");
    assert_eq!(&*close.reply_text, "NOT_ALLOWED - vhost v not found");

    grant_all_but(&b, None);
    let mut u = TestClient::connect_as(&b, "u", "pw", "/").unwrap();
    b.admin(AdminCommand::DeleteUser("u".into()), now()).unwrap();
    u.session.end_of_batch(&mut u.conn);
    let close = u.expect_connection_close();
    assert_eq!(&*close.reply_text, "CONNECTION_FORCED - user 'u' is deleted");
    assert!(b.access().permissions("u", "/").is_none());
}
