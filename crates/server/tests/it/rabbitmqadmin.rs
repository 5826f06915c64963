//! RabbitMQ's own `rabbitmqadmin` (3.10.8, unchanged) against Warren's management API: every
//! subcommand it has (list and show of every object type, declare and delete of every kind of
//! object, purge, close, publish, get, export and import), several output formats, `--vhost`,
//! and its error reports; and that what it changes is what an AMQP client meets, and the other
//! way round. Skipped when rabbitmqadmin is not installed, unless `RABBITMQADMIN_REQUIRE=1`.

use lapin::options::{BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::{json, Value};

use crate::common::admin_cli::{arg, temp_file, AdminCli};
use crate::common::durable::DurableBroker;
use crate::common::*;

/// A broker with its management API, and rabbitmqadmin pointed at it (None: skip the test).
async fn start() -> Option<(DurableBroker, AdminCli)> {
    // Skip before starting a broker when there is no rabbitmqadmin to point at it.
    AdminCli::find("127.0.0.1:0".parse().unwrap())?;
    let broker = DurableBroker::start(&["--collect-statistics-interval", "100"]).await;
    let admin = AdminCli::find(broker.management_addr().await)?;
    Some((broker, admin))
}

/// An AMQP URL for `user` on `vhost` (a name that needs no escaping).
fn url(broker: &DurableBroker, user: &str, password: &str, vhost: &str) -> String {
    format!("amqp://{user}:{password}@{}/{vhost}", broker.addr())
}

async fn try_connect(url: &str) -> lapin::Result<lapin::Connection> {
    within(lapin::Connection::connect(url, lapin::ConnectionProperties::default())).await
}

/// The `field` of each item of a listing.
fn column(items: &Value, field: &str) -> Vec<String> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {items}"))
        .iter()
        .map(|item| match &item[field] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// The item of a listing whose `field` is `value`.
fn item<'a>(items: &'a Value, field: &str, value: &str) -> &'a Value {
    items
        .as_array()
        .and_then(|list| list.iter().find(|i| i[field] == value))
        .unwrap_or_else(|| panic!("no item with {field} = {value:?} in {items}"))
}

#[tokio::test]
async fn lists_every_object_type_and_shows_the_overview() {
    let Some((broker, admin)) = start().await else { return };
    let client = broker.connect().await;
    let ch = client.channel().await;
    declare_queue(&ch, "amqp.q").await;
    within(ch.exchange_declare(
        "amqp.x".into(),
        lapin::ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    within(ch.queue_bind(
        "amqp.q".into(),
        "amqp.x".into(),
        "a.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let _consumer = within(ch.basic_consume(
        "amqp.q".into(),
        "ctag".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();

    let connections = eventually("the AMQP connection is listed", || async {
        let c = admin.json(&["list", "connections"]).await;
        (c.as_array().unwrap().len() == 1).then_some(c)
    })
    .await;
    assert_eq!(
        (connections[0]["user"].clone(), connections[0]["vhost"].clone()),
        (json!("guest"), json!("/"))
    );
    let connection_name = connections[0]["name"].as_str().unwrap().to_owned();
    let channels = admin.json(&["list", "channels"]).await;
    assert_eq!(column(&channels, "name"), [format!("{connection_name} (1)")]);
    let consumers = admin.json(&["list", "consumers"]).await;
    assert_eq!(
        (consumers[0]["consumer_tag"].clone(), consumers[0]["queue"]["name"].clone()),
        (json!("ctag"), json!("amqp.q"))
    );
    assert_eq!(column(&admin.json(&["--vhost", "/", "list", "consumers"]).await, "consumer_tag"), ["ctag"]);

    let exchanges = admin.json(&["list", "exchanges"]).await;
    assert_eq!(item(&exchanges, "name", "amqp.x")["type"], "topic");
    assert_eq!(item(&exchanges, "name", "")["type"], "direct");
    let queues = admin.json(&["list", "queues"]).await;
    assert_eq!(item(&queues, "name", "amqp.q")["consumers"], 1);
    let bindings = admin.json(&["list", "bindings"]).await;
    let bound = item(&bindings, "source", "amqp.x");
    assert_eq!((bound["destination"].clone(), bound["routing_key"].clone()), (json!("amqp.q"), json!("a.#")));
    assert_eq!(column(&admin.json(&["list", "users"]).await, "name"), ["guest"]);
    assert_eq!(column(&admin.json(&["list", "vhosts"]).await, "name"), ["/"]);
    let permissions = admin.json(&["list", "permissions"]).await;
    assert_eq!(
        permissions,
        json!([{"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}])
    );
    let overview = admin.json(&["show", "overview"]).await;
    let nodes = admin.json(&["list", "nodes"]).await;
    assert_eq!(column(&nodes, "name"), [overview[0]["node"].as_str().unwrap()]);
    for empty in ["parameters", "policies", "operator_policies", "vhost_limits"] {
        assert_eq!(admin.json(&["list", empty]).await, json!([]), "list {empty}");
        assert_eq!(admin.ok(&["list", empty]).await, "No items\n", "list {empty}");
    }

    // The default table of every listing, with the columns rabbitmqadmin picks for each.
    let table = admin.ok(&["list", "queues"]).await;
    assert_eq!(
        table,
        "+--------+----------+\n|  name  | messages |\n+--------+----------+\n| amqp.q | 0        |\n+--------+----------+\n"
    );
    let table = admin.ok(&["list", "connections"]).await;
    let header: Vec<&str> = table.lines().nth(1).unwrap().split('|').map(str::trim).collect();
    assert_eq!(header, ["", "name", "user", "channels", ""], "{table}");
    assert!(table.contains(&format!("| {connection_name} | guest | 1        |")), "{table}");
    for listing in
        ["channels", "consumers", "exchanges", "bindings", "users", "vhosts", "permissions", "nodes"]
    {
        let out = admin.ok(&["list", listing]).await;
        assert!(out.starts_with("+-") && out.lines().count() >= 5, "list {listing}:\n{out}");
    }
    let shown = admin.ok(&["show", "overview"]).await;
    let header = shown.lines().nth(1).unwrap();
    for col in ["rabbitmq_version", "cluster_name", "queue_totals.messages", "object_totals.queues"] {
        assert!(header.contains(col), "{shown}");
    }
    assert!(shown.lines().nth(3).unwrap().ends_with("| 1                    |"), "one queue:\n{shown}");
}

#[tokio::test]
async fn output_formats_sorting_and_vhost_selection() {
    let Some((broker, admin)) = start().await else { return };
    admin.ok(&["declare", "vhost", "name=other"]).await;
    for name in ["b.q", "a.q"] {
        admin.ok(&["declare", "queue", &format!("name={name}"), "durable=false"]).await;
    }
    admin.ok(&["--vhost", "other", "declare", "queue", "name=elsewhere"]).await;
    let client = broker.connect().await;
    let ch = client.channel().await;
    publish(&ch, "", "b.q", b"one").await;
    wait_message_count(&ch, "b.q", 1).await;
    // Statistics are sampled: wait until the listing counts the message.
    eventually("the listing counts b.q's message", || async {
        admin
            .ok(&["-f", "kvp", "list", "queues", "name", "messages"])
            .await
            .contains("name=\"b.q\" messages=\"1\"")
            .then_some(())
    })
    .await;

    let listing = ["list", "queues", "name", "messages"];
    let with = |format: &'static str| [&["-f", format][..], &listing[..]].concat();
    assert_eq!(admin.ok(&with("tsv")).await, "name\tmessages\na.q\t0\nb.q\t1\nelsewhere\t0\n");
    assert_eq!(
        admin.ok(&with("kvp")).await,
        "name=\"a.q\" messages=\"0\"\nname=\"b.q\" messages=\"1\"\nname=\"elsewhere\" messages=\"0\"\n"
    );
    let bar = "-".repeat(80);
    assert_eq!(
        admin.ok(&with("long")).await,
        format!("\n{bar}\n\n    name: a.q\nmessages: 0\n\n{bar}\n\n    name: b.q\nmessages: 1\n\n{bar}\n\n    name: elsewhere\nmessages: 0\n\n{bar}\n\n")
    );
    assert_eq!(admin.ok(&["-f", "bash", "list", "queues"]).await, "a.q b.q elsewhere\n");
    let pretty = admin.ok(&with("pretty_json")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&pretty).unwrap(),
        json!([{"name": "a.q", "messages": 0}, {"name": "b.q", "messages": 1}, {"name": "elsewhere", "messages": 0}])
    );
    assert!(pretty.starts_with("[\n  {\n    \"messages\": 0,\n    \"name\": \"a.q\"\n  },"), "{pretty}");
    assert_eq!(
        admin.ok(&with("table")).await,
        "+-----------+----------+\n|   name    | messages |\n+-----------+----------+\n| a.q       | 0        |\n| b.q       | 1        |\n| elsewhere | 0        |\n+-----------+----------+\n"
    );

    assert_eq!(
        admin.ok(&["-f", "tsv", "-S", "name", "-R", "list", "queues", "name"]).await,
        "name\nelsewhere\nb.q\na.q\n"
    );
    assert_eq!(
        admin.ok(&["-f", "tsv", "-S", "messages", "-R", "list", "queues", "name"]).await.lines().nth(1),
        Some("b.q")
    );
    assert_eq!(admin.ok(&["-f", "bash", "--vhost", "other", "list", "queues"]).await, "elsewhere\n");
    // Bindings of every vhost, ordered by source and destination as RabbitMQ orders them once the
    // columns leave the vhost out.
    admin.ok(&["declare", "binding", "source=amq.topic", "destination=a.q", "routing_key=k"]).await;
    assert_eq!(
        admin.ok(&["-f", "tsv", "list", "bindings"]).await,
        "source\tdestination\trouting_key\n\ta.q\ta.q\n\tb.q\tb.q\n\telsewhere\telsewhere\namq.topic\ta.q\tk\n"
    );
    // Warren has no firehose tracing, so no amq.rabbitmq.trace (see docs/management.md).
    assert_eq!(
        admin.ok(&["-f", "bash", "-V", "/", "list", "exchanges"]).await,
        " amq.direct amq.fanout amq.headers amq.match amq.topic\n",
        "the default exchange is named \"\""
    );
    assert_eq!(
        admin.ok(&["-f", "tsv", "-q", "list", "vhosts", "name"]).await,
        "/\nother\n",
        "-q drops the header"
    );
}

#[tokio::test]
async fn declares_and_deletes_every_object_type_and_amqp_sees_them() {
    let Some((broker, admin)) = start().await else { return };
    assert_eq!(admin.ok(&["declare", "vhost", "name=shop", "tracing=false"]).await, "vhost declared\n");
    assert_eq!(
        admin.ok(&["declare", "user", "name=carol", "password=pw", "tags=management"]).await,
        "user declared\n"
    );
    let perm = [
        "declare",
        "permission",
        "vhost=shop",
        "user=carol",
        "configure=^carol",
        "write=^carol",
        "read=^carol",
    ];
    assert_eq!(admin.ok(&perm).await, "permission declared\n");
    let shop = ["--vhost", "shop", "declare"];
    let declare = |args: &'static [&'static str]| {
        let admin = admin.clone();
        async move { admin.ok(&[&shop[..], args].concat()).await }
    };
    assert_eq!(declare(&["exchange", "name=carol.x", "type=topic"]).await, "exchange declared\n");
    declare(&["exchange", "name=carol.fan", "type=fanout", "durable=false", "auto_delete=false"]).await;
    declare(&["queue", "name=carol.q", "durable=true", "arguments={\"x-max-length\": 10}"]).await;
    declare(&["queue", "name=carol.fanned", "queue_type=classic", "durable=false"]).await;
    assert_eq!(
        declare(&["binding", "source=carol.x", "destination=carol.q", "routing_key=order.*"]).await,
        "binding declared\n"
    );
    declare(&[
        "binding",
        "source=carol.x",
        "destination=carol.fan",
        "destination_type=exchange",
        "routing_key=order.new",
        "arguments={\"x\": 1}",
    ])
    .await;
    declare(&["binding", "source=carol.fan", "destination=carol.fanned"]).await;

    // carol reaches all of it over AMQP with the permissions rabbitmqadmin gave her.
    let carol = Client::connect(&url(&broker, "carol", "pw", "shop")).await;
    let ch = carol.channel().await;
    let args = FieldTable::from(std::collections::BTreeMap::from([(
        "x-max-length".into(),
        lapin::types::AMQPValue::LongLongInt(10),
    )]));
    within(ch.queue_declare(
        "carol.q".into(),
        QueueDeclareOptions { durable: true, ..Default::default() },
        args,
    ))
    .await
    .expect("the queue rabbitmqadmin declared is equivalent");
    publish(&ch, "carol.x", "order.new", b"first order").await;
    wait_message_count(&ch, "carol.q", 1).await;
    wait_message_count(&ch, "carol.fanned", 1).await;
    assert_eq!(bodies(&drain(&ch, "carol.fanned").await), ["first order"]);

    let bindings = admin.json(&["--vhost", "shop", "list", "bindings"]).await;
    let e2e = item(&bindings, "destination", "carol.fan");
    assert_eq!(
        (e2e["destination_type"].clone(), e2e["arguments"].clone()),
        (json!("exchange"), json!({"x": 1}))
    );
    let key = e2e["properties_key"].as_str().unwrap().to_owned();
    assert_eq!(key, "order.new~9nmLZQ");
    let unbind = [
        "--vhost",
        "shop",
        "delete",
        "binding",
        "source=carol.x",
        "destination_type=exchange",
        "destination=carol.fan",
    ];
    assert_eq!(
        admin.ok(&[&unbind[..], &[&format!("properties_key={key}")]].concat()).await,
        "binding deleted\n"
    );
    publish(&ch, "carol.x", "order.new", b"second order").await;
    wait_message_count(&ch, "carol.q", 2).await;
    assert_eq!(message_count(&ch, "carol.fanned").await, 0, "the exchange binding is gone");

    // A user declared with a password hash logs in with the password behind it.
    let users = admin.json(&["list", "users"]).await;
    let hash = item(&users, "name", "carol")["password_hash"].as_str().unwrap().to_owned();
    let algorithm = item(&users, "name", "carol")["hashing_algorithm"].as_str().unwrap().to_owned();
    let hashed = [
        "declare",
        "user",
        "name=dave",
        &format!("password_hash={hash}"),
        &format!("hashing_algorithm={algorithm}"),
        "tags=",
    ];
    admin.ok(&hashed).await;
    admin.ok(&["declare", "permission", "vhost=shop", "user=dave", "configure=", "write=", "read=.*"]).await;
    try_connect(&url(&broker, "dave", "pw", "shop")).await.expect("dave logs in with carol's password");

    // Policies, operator policies, limits and parameters.
    let policy = [
        "--vhost",
        "shop",
        "declare",
        "policy",
        "name=short",
        "pattern=^carol\\.q$",
        "definition={\"max-length\": 1}",
        "priority=1",
        "apply-to=queues",
    ];
    assert_eq!(admin.ok(&policy).await, "policy declared\n");
    wait_message_count(&ch, "carol.q", 1).await;
    let op = [
        "--vhost",
        "shop",
        "declare",
        "operator_policy",
        "name=cap",
        "pattern=.*",
        "definition={\"max-length\": 5}",
    ];
    assert_eq!(admin.ok(&op).await, "operator_policy declared\n");
    assert_eq!(
        admin.ok(&["declare", "vhost_limit", "vhost=shop", "name=max-queues", "value=2"]).await,
        "vhost_limit declared\n"
    );
    assert_eq!(
        admin.json(&["list", "policies"]).await,
        json!([{"vhost": "shop", "name": "short", "pattern": "^carol\\.q$", "apply-to": "queues", "definition": {"max-length": 1}, "priority": 1}])
    );
    assert_eq!(
        admin.json(&["list", "operator_policies"]).await,
        json!([{"vhost": "shop", "name": "cap", "pattern": ".*", "apply-to": "all", "definition": {"max-length": 5}, "priority": 0}])
    );
    assert_eq!(
        admin.json(&["list", "vhost_limits"]).await,
        json!([{"vhost": "shop", "value": {"max-queues": 2}}])
    );
    let (code, text) =
        expect_err(ch.queue_declare("carol.many".into(), Default::default(), Default::default())).await;
    assert_eq!(
        (code, text.as_str()),
        (406, "PRECONDITION_FAILED - cannot declare queue 'carol.many': queue limit in vhost 'shop' (2) is reached")
    );
    let ch = carol.channel().await;
    let parameter = [
        "--vhost",
        "shop",
        "declare",
        "parameter",
        "component=vhost-limits",
        "name=limits",
        "value={\"max-queues\": 3}",
    ];
    assert_eq!(admin.ok(&parameter).await, "parameter declared\n");
    declare_queue(&ch, "carol.many").await;
    let parameters = admin.json(&["list", "parameters"]).await;
    assert_eq!(
        parameters,
        json!([
            {"vhost": "shop", "component": "vhost-limits", "name": "limits", "value": {"max-queues": 3}},
            {"vhost": "shop", "component": "operator_policy", "name": "cap", "value": {"pattern": ".*", "definition": {"max-length": 5}, "priority": 0, "apply-to": "all"}},
        ])
    );
    let table = admin.ok(&["list", "parameters"]).await;
    assert!(table.contains("| shop  | limits | vhost-limits    | {\"max-queues\": 3}"), "{table}");

    // And every one of them deleted again.
    let deletions: [&[&str]; 13] = [
        &["--vhost", "shop", "delete", "parameter", "component=vhost-limits", "name=limits"],
        &["delete", "vhost_limit", "vhost=shop", "name=max-connections"],
        &["--vhost", "shop", "delete", "operator_policy", "name=cap"],
        &["--vhost", "shop", "delete", "policy", "name=short"],
        &[
            "--vhost",
            "shop",
            "delete",
            "binding",
            "source=carol.x",
            "destination_type=queue",
            "destination=carol.q",
            "properties_key=order.*",
        ],
        &[
            "--vhost",
            "shop",
            "delete",
            "binding",
            "source=carol.fan",
            "destination_type=queue",
            "destination=carol.fanned",
        ],
        &["--vhost", "shop", "delete", "queue", "name=carol.fanned"],
        &["--vhost", "shop", "delete", "queue", "name=carol.many"],
        &["--vhost", "shop", "delete", "exchange", "name=carol.fan"],
        &["--vhost", "shop", "delete", "exchange", "name=carol.x"],
        &["delete", "permission", "vhost=shop", "user=dave"],
        &["delete", "user", "name=dave"],
        &["delete", "permission", "vhost=shop", "user=carol"],
    ];
    for args in deletions {
        let out = admin.ok(args).await;
        let what = args.iter().position(|a| *a == "delete").map(|i| args[i + 1]).unwrap();
        assert_eq!(out, format!("{what} deleted\n"), "{args:?}");
    }
    for listing in ["parameters", "policies", "operator_policies", "vhost_limits"] {
        let left = admin.json(&["list", listing]).await;
        let in_shop = left.as_array().unwrap().iter().filter(|i| i["vhost"] == "shop").count();
        assert_eq!(in_shop, 0, "list {listing}: {left}");
    }
    // guest created the vhost over the API, and so was given all permissions in it.
    let permissions = admin.json(&["list", "permissions"]).await;
    let in_shop: Vec<&Value> =
        permissions.as_array().unwrap().iter().filter(|p| p["vhost"] == "shop").collect();
    assert_eq!(
        in_shop,
        [&json!({"user": "guest", "vhost": "shop", "configure": ".*", "write": ".*", "read": ".*"})]
    );
    assert_eq!(column(&admin.json(&["--vhost", "shop", "list", "queues"]).await, "name"), ["carol.q"]);
    let bindings = admin.json(&["--vhost", "shop", "list", "bindings"]).await;
    assert_eq!(column(&bindings, "source"), [""], "only the default exchange's binding: {bindings}");
    let exchanges = admin.json(&["--vhost", "shop", "list", "exchanges"]).await;
    assert!(!column(&exchanges, "name").iter().any(|n| n.starts_with("carol")), "{exchanges}");
    let refused = try_connect(&url(&broker, "dave", "pw", "shop")).await;
    assert!(refused.is_err(), "dave is gone");
    assert_eq!(admin.ok(&["delete", "user", "name=carol"]).await, "user deleted\n");
    assert_eq!(admin.ok(&["delete", "vhost", "name=shop"]).await, "vhost deleted\n");
    assert_eq!(column(&admin.json(&["list", "vhosts"]).await, "name"), ["/"]);
    assert_eq!(column(&admin.json(&["list", "users"]).await, "name"), ["guest"]);
}

#[tokio::test]
async fn publish_get_purge_and_close_connection() {
    let Some((broker, admin)) = start().await else { return };
    admin.ok(&["declare", "queue", "name=inbox", "durable=false"]).await;
    let properties = r#"properties={"delivery_mode": 2, "content_type": "text/plain", "headers": {"h": 1}}"#;
    assert_eq!(
        admin.ok(&["publish", "routing_key=inbox", "payload=hello", properties]).await,
        "Message published\n"
    );
    let run = admin.run_as(("guest", "guest"), &["publish", "routing_key=inbox"], "from stdin").await;
    assert_eq!((run.code, run.stdout.as_str()), (0, "Message published\n"), "{run:?}");
    admin
        .ok(&[
            "publish",
            "exchange=amq.direct",
            "routing_key=inbox",
            "payload=aGk=",
            "payload_encoding=base64",
        ])
        .await;
    assert_eq!(
        admin.ok(&["publish", "routing_key=nowhere", "payload=x"]).await,
        "Message published but NOT routed\n"
    );
    admin.ok(&["declare", "binding", "source=amq.direct", "destination=inbox", "routing_key=inbox"]).await;
    assert_eq!(
        admin
            .ok(&[
                "publish",
                "exchange=amq.direct",
                "routing_key=inbox",
                "payload=aGk=",
                "payload_encoding=base64"
            ])
            .await,
        "Message published\n"
    );

    // What rabbitmqadmin published is what an AMQP client gets, properties and all.
    let client = broker.connect().await;
    let ch = client.channel().await;
    wait_message_count(&ch, "inbox", 3).await;
    let first = get(&ch, "inbox").await.expect("a message");
    assert_eq!(text(&first.delivery.data), "hello");
    let props = &first.delivery.properties;
    assert_eq!(
        (props.delivery_mode(), props.content_type().as_ref().map(|s| s.as_str())),
        (&Some(2), Some("text/plain"))
    );
    within(first.delivery.nack(lapin::options::BasicNackOptions { requeue: true, ..Default::default() }))
        .await
        .unwrap();
    publish(&ch, "", "inbox", b"over amqp").await;
    wait_message_count(&ch, "inbox", 4).await;

    let got = admin.json(&["get", "queue=inbox", "count=10", "ackmode=ack_requeue_true"]).await;
    assert_eq!(column(&got, "payload"), ["hello", "from stdin", "hi", "over amqp"]);
    assert_eq!(column(&got, "redelivered"), ["true", "false", "false", "false"]);
    assert_eq!(column(&got, "message_count"), ["3", "2", "1", "0"]);
    assert_eq!(
        got[0]["properties"],
        json!({"delivery_mode": 2, "content_type": "text/plain", "headers": {"h": 1}})
    );
    assert_eq!((got[2]["exchange"].clone(), got[2]["properties"].clone()), (json!("amq.direct"), json!([])));
    let base64 = admin.json(&["get", "queue=inbox", "count=2", "encoding=base64"]).await;
    assert_eq!(
        (column(&base64, "payload"), column(&base64, "payload_encoding")),
        (
            vec!["aGVsbG8=".to_owned(), "ZnJvbSBzdGRpbg==".to_owned()],
            vec!["base64".to_owned(), "base64".to_owned()]
        )
    );
    let table = admin.ok(&["get", "queue=inbox"]).await;
    assert!(
        table.contains(
            "| inbox       |          | 3             | hello   | 5             | string           |"
        ),
        "{table}"
    );
    let kvp = admin.ok(&["-f", "kvp", "get", "queue=inbox", "ackmode=ack_requeue_false"]).await;
    assert!(
        kvp.starts_with("routing_key=\"inbox\" exchange=\"\" message_count=\"3\" payload=\"hello\""),
        "{kvp}"
    );
    let rejected = admin.json(&["get", "queue=inbox", "ackmode=reject_requeue_false"]).await;
    assert_eq!(column(&rejected, "payload"), ["from stdin"]);
    admin.ok(&["get", "queue=inbox", "ackmode=reject_requeue_true"]).await;
    let (_dir, file) = temp_file("payload");
    let out = admin.ok(&["get", "queue=inbox", &format!("payload_file={}", arg(&file))]).await;
    assert!(
        out.contains("| inbox       | amq.direct | 1             | 2             | True        |"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hi");
    assert_eq!(
        message_count(&ch, "inbox").await,
        2,
        "only ack_requeue_false and reject_requeue_false took one"
    );

    assert_eq!(admin.ok(&["purge", "queue", "name=inbox"]).await, "queue purged\n");
    assert_eq!(message_count(&ch, "inbox").await, 0);
    assert_eq!(admin.ok(&["get", "queue=inbox"]).await, "No items\n");

    // A second connection, without channels, so the listing tells it from the first.
    let mut victim = broker.connect().await;
    let victim_name = eventually("both connections are listed", || async {
        let listed = admin.json(&["list", "connections"]).await;
        let idle = listed.as_array().unwrap().iter().find(|c| c["channels"] == 0)?;
        (listed.as_array().unwrap().len() == 2).then(|| idle["name"].as_str().unwrap().to_owned())
    })
    .await;
    assert!(victim_name.ends_with(&format!(" -> {}", broker.addr())), "{victim_name}");
    let close = format!("name={victim_name}");
    assert_eq!(admin.ok(&["close", "connection", &close]).await, "connection closed\n");
    victim.assert_next_error(320, "CONNECTION_FORCED - Closed via management plugin").await;
    eventually("the closed connection is gone", || async {
        (admin.json(&["list", "connections"]).await.as_array().unwrap().len() == 1).then_some(())
    })
    .await;
    drop(client);
}

#[tokio::test]
async fn exports_and_imports_definitions() {
    let Some((broker, admin)) = start().await else { return };
    admin.ok(&["declare", "vhost", "name=src"]).await;
    admin.ok(&["declare", "vhost", "name=dst"]).await;
    admin.ok(&["--vhost", "src", "declare", "queue", "name=kept"]).await;
    admin.ok(&["--vhost", "src", "declare", "exchange", "name=ex", "type=fanout"]).await;
    admin.ok(&["--vhost", "src", "declare", "binding", "source=ex", "destination=kept"]).await;
    admin.ok(&["declare", "user", "name=erin", "password=pw", "tags=monitoring"]).await;

    let (_dir, whole) = temp_file("all.json");
    let out = admin.ok(&["export", arg(&whole)]).await;
    assert_eq!(out, format!("Exported definitions for 127.0.0.1 to \"{}\"\n", arg(&whole)));
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(&whole).unwrap()).unwrap();
    assert!(column(&exported["users"], "name").contains(&"erin".to_owned()), "{exported}");
    assert_eq!(item(&exported["queues"], "name", "kept")["vhost"], "src");

    admin.ok(&["delete", "user", "name=erin"]).await;
    admin.ok(&["--vhost", "src", "delete", "queue", "name=kept"]).await;
    let out = admin.ok(&["import", arg(&whole)]).await;
    assert!(
        out.starts_with(&format!("Uploaded definitions from \"127.0.0.1\" to {}.", arg(&whole))),
        "{out}"
    );
    assert!(column(&admin.json(&["list", "users"]).await, "name").contains(&"erin".to_owned()));
    let client = Client::connect(&url(&broker, "guest", "guest", "src")).await;
    let ch = client.channel().await;
    publish(&ch, "ex", "", b"via the imported binding").await;
    wait_message_count(&ch, "kept", 1).await;

    // One vhost's definitions, imported into another.
    let (_dir2, one) = temp_file("src.json");
    admin.ok(&["--vhost", "src", "export", arg(&one)]).await;
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(&one).unwrap()).unwrap();
    assert_eq!(column(&exported["queues"], "name"), ["kept"]);
    assert!(exported.get("users").is_none(), "a vhost's export has no users: {exported}");
    admin.ok(&["--vhost", "dst", "import", arg(&one)]).await;
    assert_eq!(column(&admin.json(&["--vhost", "dst", "list", "queues"]).await, "name"), ["kept"]);
    let bindings = admin.json(&["--vhost", "dst", "list", "bindings"]).await;
    assert_eq!(item(&bindings, "source", "ex")["destination"], "kept");
}

#[tokio::test]
async fn errors_are_reported_as_rabbitmqadmin_reports_them() {
    let Some((_broker, admin)) = start().await else { return };
    let wrong = admin.run_as(("guest", "wrong"), &["list", "queues"], "").await;
    assert_eq!(
        (wrong.code, wrong.stderr.as_str()),
        (1, "*** Access refused: /api/queues?columns=name,messages\n\n")
    );
    admin.fails(&["delete", "queue", "name=nope"], "Not found: /api/queues/%2F/nope").await;
    admin
        .fails(
            &["--vhost", "nowhere", "list", "queues"],
            "Not found: /api/queues/nowhere?columns=name,messages",
        )
        .await;
    admin.fails(&["get", "queue=nope"], "Not found: /api/queues/%2F/nope/get").await;
    admin.fails(&["purge", "queue", "name=nope"], "Not found: /api/queues/%2F/nope/contents").await;
    admin.fails(&["delete", "policy", "name=nope"], "Not found: /api/policies/%2F/nope").await;
    admin
        .fails(
            &["delete", "parameter", "component=vhost-limits", "name=nope"],
            "Not found: /api/parameters/vhost-limits/%2F/nope",
        )
        .await;
    admin.fails(&["close", "connection", "name=nope"], "Not found: /api/connections/nope").await;

    admin.ok(&["declare", "queue", "name=q1", "durable=false"]).await;
    admin
        .fails(
            &["declare", "queue", "name=q1", "durable=true"],
            "inequivalent arg 'durable' for queue 'q1' in vhost '/': received 'true' but current is 'false'",
        )
        .await;
    admin
        .fails(
            &["declare", "parameter", "component=shovel", "name=s", "value={}"],
            "Validation failed\n\ncomponent shovel not found\n",
        )
        .await;
    admin
        .fails(
            &["declare", "policy", "name=p", "pattern=.*", "definition={\"message-ttl\": -1}"],
            "Validation failed\n\n-1 is not a valid message TTL\n",
        )
        .await;

    // A management user may not reach an administrator's endpoints.
    admin.ok(&["declare", "user", "name=mallory", "password=pw", "tags=management"]).await;
    let denied = admin.run_as(("mallory", "pw"), &["list", "users"], "").await;
    assert_eq!((denied.code, denied.stderr.as_str()), (1, "*** Access refused: /api/users\n\n"));
}
