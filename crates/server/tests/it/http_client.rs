//! A third-party client of the management API, used as-is: the `rabbitmq_http_client` crate
//! (its async API), calling every endpoint it covers that Warren has, checking that each answer
//! deserializes into the crate's types and says what is so, and that AMQP clients see what it
//! changed. What the crate covers that Warren does not have (streams, quorum queues, shovels,
//! federation, feature flags...) is listed in docs/management.md; the answers Warren gives there
//! are checked at the end.

use rabbitmq_http_client::api::Client as ApiClient;
use rabbitmq_http_client::commons::{
    BindingDestinationType, ExchangeType, PaginationParams, PolicyTarget, SupportedProtocol, UserLimitTarget,
    VirtualHostLimitTarget,
};
use rabbitmq_http_client::password_hashing::{base64_encoded_salted_password_hash_sha256, salt};
use rabbitmq_http_client::requests::{
    BindingDeletionParams, EnforcedLimitParams, ExchangeParams, GlobalRuntimeParameterDefinition,
    Permissions, PolicyParams, QueueParams, RuntimeParameterDefinition, TopicPermissions, UserParams,
    VirtualHostParams,
};
use serde_json::{json, Map, Value};

use crate::common::durable::DurableBroker;
use crate::common::*;

type Api = ApiClient<String, &'static str, &'static str>;

/// Awaits a client call that must succeed, naming it when it does not (a 4xx, a 5xx, or an
/// answer that does not deserialize into the crate's type).
macro_rules! ok {
    ($call:expr) => {
        within($call).await.unwrap_or_else(|e| panic!("{}: {e:?}", stringify!($call)))
    };
}

/// Awaits a client call that must fail; its error.
macro_rules! refused {
    ($call:expr) => {
        match within($call).await {
            Ok(v) => panic!("{} succeeded: {v:?}", stringify!($call)),
            Err(e) => e,
        }
    };
}

async fn start() -> (DurableBroker, Api, std::net::SocketAddr) {
    let broker = DurableBroker::start(&["--collect-statistics-interval", "100"]).await;
    let api = broker.management_addr().await;
    (broker, ApiClient::new(format!("http://{api}/api"), "guest", "guest"), api)
}

fn map(value: Value) -> Map<String, Value> {
    value.as_object().expect("a JSON object").clone()
}

fn page(n: usize, size: usize) -> PaginationParams {
    PaginationParams { page: Some(n), page_size: Some(size) }
}

#[tokio::test]
async fn node_vhosts_users_permissions_and_limits() {
    let (broker, api, _) = start().await;
    let overview = ok!(api.overview());
    assert_eq!(overview.rabbitmq_version, "3.10.8");
    assert_eq!(overview.object_totals.queues, 0);
    assert!(!ok!(api.server_version()).is_empty());
    let me = ok!(api.current_user());
    assert_eq!(me.name, "guest");
    let node = ok!(api.list_nodes()).remove(0);
    assert_eq!(ok!(api.get_node_info(&node.name)).name, node.name);
    assert_eq!(ok!(api.get_cluster_name()).name, node.name);
    ok!(api.health_check_cluster_wide_alarms());
    ok!(api.health_check_local_alarms());
    ok!(api.health_check_port_listener(broker.addr().port()));
    ok!(api.health_check_protocol_listener(SupportedProtocol::AMQP));
    let no_mqtt = refused!(api.health_check_protocol_listener(SupportedProtocol::MQTT));
    assert!(matches!(no_mqtt, rabbitmq_http_client::error::Error::HealthCheckFailed { .. }), "{no_mqtt:?}");
    assert!(refused!(api.health_check_port_listener(1)).to_string().contains("Health check failed"));

    // Vhosts.
    let shop = VirtualHostParams::named("shop").with_description("the shop").with_tags(vec!["a", "b"]);
    ok!(api.create_vhost(&shop));
    ok!(api.update_vhost(&VirtualHostParams::named("shop").with_description("still the shop")));
    let got = ok!(api.get_vhost("shop"));
    assert_eq!(got.description.as_deref(), Some("still the shop"));
    let names: Vec<String> = ok!(api.list_vhosts()).into_iter().map(|v| v.name).collect();
    assert_eq!(names, ["/", "shop"]);
    assert_eq!(ok!(api.list_vhosts_paged(&page(2, 1))).len(), 1);
    ok!(api.create_vhost(&VirtualHostParams::named("gone")));
    ok!(api.delete_vhost("gone", false));
    assert!(refused!(api.delete_vhost("gone", false)).is_not_found());
    ok!(api.delete_vhost("gone", true));

    // Users, with a password hash computed by the client.
    let hash = base64_encoded_salted_password_hash_sha256(&salt(), "pw");
    ok!(api.create_user(&UserParams::management("carol", &hash)));
    ok!(api.create_user(&UserParams::without_tags("dave", &hash)));
    ok!(api.create_user(&UserParams::monitoring("erin", &hash)));
    assert_eq!(ok!(api.get_user("carol")).tags.0, ["management"]);
    let users: Vec<String> = ok!(api.list_users()).into_iter().map(|u| u.name).collect();
    assert_eq!(users, ["carol", "dave", "erin", "guest"]);
    assert_eq!(ok!(api.list_users_paged(&page(1, 2))).len(), 2);
    let without: Vec<String> =
        ok!(api.list_users_without_permissions()).into_iter().map(|u| u.name).collect();
    assert_eq!(without, ["carol", "dave", "erin"]);

    // Permissions and topic permissions; carol then logs in over AMQP with the client's hash.
    ok!(api.declare_permissions(&Permissions {
        user: "carol",
        vhost: "shop",
        configure: "^carol",
        write: "^carol",
        read: "^carol"
    }));
    ok!(api.grant_permissions(&Permissions::read_only("dave", "shop")));
    ok!(api.grant_full_permissions("erin", "shop"));
    assert_eq!(ok!(api.get_permissions("shop", "carol")).configure, "^carol");
    assert_eq!(
        ok!(api.list_permissions()).len(),
        5,
        "guest on / and shop (it created shop), carol, dave, erin"
    );
    assert_eq!(ok!(api.list_permissions_in("shop")).len(), 4);
    assert_eq!(ok!(api.list_permissions_of("dave"))[0].read, ".*");
    ok!(api.clear_permissions("shop", "dave", false));
    assert!(refused!(api.get_permissions("shop", "dave")).is_not_found());
    ok!(api.clear_permissions("shop", "dave", true));
    let topic =
        TopicPermissions { user: "carol", vhost: "shop", exchange: "amq.topic", write: "^x", read: "^y" };
    ok!(api.declare_topic_permissions(&topic));
    assert_eq!(ok!(api.list_topic_permissions()).len(), 1);
    assert_eq!(ok!(api.list_topic_permissions_in("shop"))[0].exchange, "amq.topic");
    assert_eq!(ok!(api.list_topic_permissions_of("carol"))[0].write, "^x");
    assert_eq!(ok!(api.get_topic_permissions_of("shop", "carol")).read, "^y");
    ok!(api.clear_topic_permissions("shop", "carol", false));
    assert!(ok!(api.list_topic_permissions()).is_empty());
    let carol = format!("amqp://carol:pw@{}/shop", broker.addr());
    let client = Client::connect(&carol).await;
    declare_queue(&client.channel().await, "carol.q").await;

    // Limits.
    ok!(api.set_user_limit("carol", EnforcedLimitParams::new(UserLimitTarget::MaxChannels, 7)));
    ok!(api.set_user_limit("dave", EnforcedLimitParams::new(UserLimitTarget::MaxConnections, 1)));
    let limits = ok!(api.list_user_limits("carol"));
    assert_eq!(limits[0].limits.0.get("max-channels"), Some(&json!(7)));
    assert_eq!(ok!(api.list_all_user_limits()).len(), 2);
    ok!(api.clear_user_limit("dave", UserLimitTarget::MaxConnections));
    assert_eq!(ok!(api.list_all_user_limits()).len(), 1);
    ok!(api.set_vhost_limit("shop", EnforcedLimitParams::new(VirtualHostLimitTarget::MaxQueues, 1)));
    assert_eq!(ok!(api.list_vhost_limits("shop"))[0].limits.0.get("max-queues"), Some(&json!(1)));
    assert_eq!(ok!(api.list_all_vhost_limits()).len(), 1);
    let (code, _) = expect_err(client.channel().await.queue_declare(
        "carol.r".into(),
        Default::default(),
        Default::default(),
    ))
    .await;
    assert_eq!(code, 406, "the vhost limit the client set holds over AMQP");
    ok!(api.clear_vhost_limit("shop", VirtualHostLimitTarget::MaxQueues));
    assert!(ok!(api.list_all_vhost_limits()).is_empty());

    ok!(api.delete_user("erin", false));
    ok!(api.delete_users(vec!["carol", "dave"]));
    assert!(refused!(api.get_user("carol")).is_not_found());
    ok!(api.delete_user("carol", true));
}

#[tokio::test]
async fn queues_exchanges_bindings_and_messages() {
    let (broker, api, _) = start().await;
    let args = Some(map(json!({"x-max-length": 10})));
    ok!(api.declare_queue("/", &QueueParams::new_durable_classic_queue("orders", args)));
    ok!(api.declare_classic_queue("/", "audit"));
    ok!(api.declare_queue("/", &QueueParams::new_transient_autodelete("scratch", None)));
    let orders = ok!(api.get_queue_info("/", "orders"));
    assert_eq!((orders.queue_type.as_str(), orders.durable), ("classic", true));
    assert_eq!(orders.arguments.0.get("x-max-length"), Some(&json!(10)));
    assert_eq!(ok!(api.list_queues()).len(), 3);
    assert_eq!(ok!(api.list_queues_in("/")).len(), 3);
    assert_eq!(ok!(api.list_queues_paged(&page(1, 2))).len(), 2);
    assert_eq!(ok!(api.list_queues_in_paged("/", &page(2, 2))).len(), 1);
    assert_eq!(ok!(api.list_queues_with_details()).len(), 3);
    assert_eq!(ok!(api.list_classic_queues()).len(), 3);
    assert_eq!(ok!(api.list_classic_queues_in("/")).len(), 3);
    assert!(ok!(api.list_quorum_queues()).is_empty());
    assert!(ok!(api.list_quorum_queues_in("/")).is_empty());

    ok!(api.declare_exchange("/", &ExchangeParams::durable_topic("events", None)));
    ok!(api.declare_exchange("/", &ExchangeParams::fanout("copies", false, false, None)));
    ok!(api.declare_exchange("/", &ExchangeParams::durable("routes", ExchangeType::Direct, None)));
    assert_eq!(ok!(api.get_exchange_info("/", "events")).exchange_type, "topic");
    assert!(ok!(api.list_exchanges()).iter().any(|x| x.name == "copies"));
    assert!(ok!(api.list_exchanges_in("/")).iter().any(|x| x.name == "amq.topic"));
    assert_eq!(ok!(api.list_exchanges_paged(&page(1, 3))).len(), 3);
    assert_eq!(ok!(api.list_exchanges_in_paged("/", &page(1, 4))).len(), 4);

    ok!(api.bind_queue("/", "orders", "events", Some("order.*"), None));
    ok!(api.bind_exchange("/", "copies", "events", Some("order.new"), Some(map(json!({"x": 1})))));
    ok!(api.bind_queue("/", "audit", "copies", None, None));
    assert_eq!(ok!(api.list_bindings()).len(), 6, "three default bindings and three declared");
    assert_eq!(ok!(api.list_bindings_in("/")).len(), 6);
    assert_eq!(ok!(api.list_queue_bindings("/", "orders")).len(), 2);
    assert_eq!(ok!(api.list_exchange_bindings_with_source("/", "events")).len(), 2);
    let into_copies = ok!(api.list_exchange_bindings_with_destination("/", "copies"));
    assert_eq!(into_copies[0].routing_key, "order.new");

    // What the client declared routes AMQP publishes.
    let client = broker.connect().await;
    let ch = client.channel().await;
    publish(&ch, "events", "order.new", b"first").await;
    wait_message_count(&ch, "orders", 1).await;
    wait_message_count(&ch, "audit", 1).await;

    // Deleting a binding by what the listing says, and recreating it from the listing.
    let e2e = into_copies[0].clone();
    ok!(api.delete_binding(&BindingDeletionParams::from_binding_info(&e2e), false));
    publish(&ch, "events", "order.new", b"second").await;
    wait_message_count(&ch, "orders", 2).await;
    assert_eq!(message_count(&ch, "audit").await, 1, "the exchange binding is gone");
    ok!(api.recreate_binding(&e2e));
    assert_eq!(ok!(api.list_exchange_bindings_with_destination("/", "copies")).len(), 1);
    let unbind = BindingDeletionParams {
        virtual_host: "/",
        source: "events",
        destination: "orders",
        destination_type: BindingDestinationType::Queue,
        routing_key: "order.*",
        arguments: None,
    };
    ok!(api.delete_binding(&unbind, false));
    assert!(refused!(api.delete_binding(&unbind, false)).is_not_found());
    ok!(api.delete_binding(&unbind, true));

    // Publish and get over HTTP, purge.
    let routed = ok!(api.publish_message("/", "", "orders", "over http", map(json!({"delivery_mode": 2}))));
    assert!(routed.routed);
    assert!(!ok!(api.publish_message("/", "routes", "nowhere", "lost", Map::new())).routed);
    wait_message_count(&ch, "orders", 3).await;
    let got = ok!(api.get_messages("/", "orders", 3, "ack_requeue_true"));
    let payloads: Vec<&str> = got.iter().map(|m| m.payload.as_str()).collect();
    assert_eq!(payloads, ["first", "second", "over http"]);
    assert_eq!(got[2].properties.0.get("delivery_mode"), Some(&json!(2)));
    assert_eq!(ok!(api.get_messages("/", "orders", 1, "ack_requeue_false"))[0].message_count, 2);
    wait_message_count(&ch, "orders", 2).await;
    ok!(api.purge_queue("/", "orders"));
    assert_eq!(message_count(&ch, "orders").await, 0);

    ok!(api.delete_queue("/", "scratch", false));
    assert!(refused!(api.delete_queue("/", "scratch", false)).is_not_found());
    ok!(api.delete_queue("/", "scratch", true));
    ok!(api.delete_queues("/", &["orders", "audit"], false));
    assert!(ok!(api.list_queues()).is_empty());
    ok!(api.delete_exchange("/", "routes", false));
    ok!(api.delete_exchanges("/", &["events", "copies"], false));
    assert!(refused!(api.get_exchange_info("/", "events")).is_not_found());
    ok!(api.delete_exchange("/", "events", true));
}

#[tokio::test]
async fn connections_channels_and_consumers() {
    let (broker, api, _) = start().await;
    let client = broker.connect().await;
    let ch = client.channel().await;
    declare_queue(&ch, "work").await;
    let _consumer = within(ch.basic_consume(
        "work".into(),
        "worker".into(),
        lapin::options::BasicConsumeOptions::default(),
        lapin::types::FieldTable::default(),
    ))
    .await
    .unwrap();
    let mut other = broker.connect().await;

    let connections = eventually("both connections are listed", || async {
        let listed = within(api.list_connections()).await.expect("list_connections");
        (listed.len() == 2).then_some(listed)
    })
    .await;
    assert_eq!(ok!(api.list_connections_paged(&page(1, 1))).len(), 1);
    assert_eq!(ok!(api.list_connections_in("/")).len(), 2);
    assert_eq!(ok!(api.list_user_connections("guest")).len(), 2);
    let busy = connections.iter().find(|c| c.channel_count == 1).expect("the connection with a channel");
    let idle = connections.iter().find(|c| c.channel_count == 0).expect("the connection without");
    assert_eq!(ok!(api.get_connection_info(&busy.name)).username, "guest");

    let channels = ok!(api.list_channels());
    assert_eq!(channels.len(), 1);
    assert_eq!(ok!(api.list_channels_paged(&page(1, 10))).len(), 1);
    assert_eq!(ok!(api.list_channels_in("/")).len(), 1);
    assert_eq!(ok!(api.list_channels_on(&busy.name)).len(), 1);
    assert_eq!(ok!(api.get_channel_info(&channels[0].name)).consumer_count, 1);
    let consumers = ok!(api.list_consumers());
    assert_eq!((consumers[0].consumer_tag.as_str(), consumers[0].queue.name.as_str()), ("worker", "work"));
    assert_eq!(ok!(api.list_consumers_in("/")).len(), 1);

    ok!(api.close_connection(&idle.name, Some("going away"), false));
    other.assert_next_error(320, "CONNECTION_FORCED - going away").await;
    eventually("the closed connection is gone", || async {
        within(api.get_connection_info(&idle.name)).await.err().filter(|e| e.is_not_found())
    })
    .await;
    ok!(api.close_connection(&idle.name, None, true));
    let mut client = client;
    ok!(api.close_user_connections("guest", Some("all of them"), false));
    client.assert_next_error(320, "CONNECTION_FORCED - all of them").await;
    eventually("no connection is left", || async {
        within(api.list_connections()).await.expect("list_connections").is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn policies_parameters_and_definitions() {
    let (broker, api, _) = start().await;
    ok!(api.declare_classic_queue("/", "capped"));
    let short = PolicyParams::new("/", "short", "^capped$", map(json!({"max-length": 1})))
        .apply_to(PolicyTarget::Queues)
        .priority(2);
    ok!(api.declare_policy(&short));
    let ttl = PolicyParams::new("/", "ttl", "^x", map(json!({"message-ttl": 1000})));
    ok!(api.declare_policies(vec![&ttl]));
    assert_eq!(ok!(api.get_policy("/", "short")).priority, 2);
    assert_eq!(ok!(api.list_policies()).len(), 2);
    assert_eq!(ok!(api.list_policies_in("/")).len(), 2);
    // `ttl` applies to everything, so to queues as well.
    assert_eq!(ok!(api.list_policies_for_target("/", PolicyTarget::Queues)).len(), 2);
    assert_eq!(ok!(api.list_policies_for_target("/", PolicyTarget::Exchanges)).len(), 1);
    let matching = ok!(api.list_matching_policies("/", "capped", PolicyTarget::Queues));
    assert_eq!(matching.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["short"]);
    let client = broker.connect().await;
    let ch = client.channel().await;
    for body in [b"a", b"b"] {
        publish(&ch, "", "capped", body).await;
    }
    wait_message_count(&ch, "capped", 1).await;
    ok!(api.delete_policy("/", "short", false));
    assert!(refused!(api.get_policy("/", "short")).is_not_found());
    ok!(api.delete_policy("/", "short", true));
    ok!(api.delete_policies_in("/", vec!["ttl"]));
    assert!(ok!(api.list_policies()).is_empty());

    let cap = PolicyParams::new("/", "cap", ".*", map(json!({"max-length": 5})));
    ok!(api.declare_operator_policy(&cap));
    ok!(api.declare_operator_policies(vec![&PolicyParams::new(
        "/",
        "cap2",
        "^y",
        map(json!({"max-length": 6}))
    )]));
    assert_eq!(ok!(api.get_operator_policy("/", "cap")).pattern, ".*");
    assert_eq!(ok!(api.list_operator_policies()).len(), 2);
    assert_eq!(ok!(api.list_operator_policies_in("/")).len(), 2);
    assert_eq!(ok!(api.list_operator_policies_for_target("/", PolicyTarget::All)).len(), 2);
    assert_eq!(ok!(api.list_matching_operator_policies("/", "capped", PolicyTarget::Queues)).len(), 1);

    // Runtime parameters: operator policies and vhost limits are parameters, as in RabbitMQ.
    let parameters = ok!(api.list_runtime_parameters());
    assert_eq!(parameters.len(), 2);
    assert_eq!(ok!(api.list_runtime_parameters_of_component("operator_policy")).len(), 2);
    assert_eq!(ok!(api.list_runtime_parameters_of_component_in("operator_policy", "/")).len(), 2);
    let got = ok!(api.get_runtime_parameter("operator_policy", "/", "cap"));
    assert_eq!(got.value.0.get("pattern"), Some(&json!(".*")));
    let limits = RuntimeParameterDefinition {
        name: "limits",
        vhost: "/",
        component: "vhost-limits",
        value: map(json!({"max-connections": 10})),
    };
    ok!(api.upsert_runtime_parameter(&limits));
    assert_eq!(ok!(api.list_vhost_limits("/"))[0].limits.0.get("max-connections"), Some(&json!(10)));
    let shovel = RuntimeParameterDefinition {
        name: "s",
        vhost: "/",
        component: "shovel",
        value: map(json!({"src-uri": "amqp://"})),
    };
    let refused = refused!(api.upsert_runtime_parameter(&shovel));
    assert_eq!(refused.status_code().map(|s| s.as_u16()), Some(400), "{refused:?}");
    ok!(api.clear_runtime_parameter("vhost-limits", "/", "limits", false));
    assert!(ok!(api.list_all_vhost_limits()).is_empty());
    ok!(api.clear_all_runtime_parameters_of_component("operator_policy"));
    assert!(ok!(api.list_operator_policies()).is_empty());
    ok!(api.declare_operator_policy(&cap));
    ok!(api.clear_all_runtime_parameters());
    assert!(ok!(api.list_runtime_parameters()).is_empty());

    // Global parameters: Warren has none, and takes none.
    assert!(ok!(api.list_global_runtime_parameters()).is_empty());
    assert!(refused!(api.get_global_runtime_parameter("cluster_name")).is_not_found());
    let name = GlobalRuntimeParameterDefinition { name: "cluster_name", value: map(json!({"name": "x"})) };
    assert_eq!(
        refused!(api.upsert_global_runtime_parameter(&name)).status_code().map(|s| s.as_u16()),
        Some(400)
    );

    // Definitions, whole and per vhost, as text and as the crate's types; and imported back.
    ok!(api.declare_exchange("/", &ExchangeParams::durable_fanout("fan", None)));
    ok!(api.bind_queue("/", "capped", "fan", None, None));
    let text = ok!(api.export_cluster_wide_definitions_as_string());
    assert!(text.contains("\"capped\""));
    assert_eq!(ok!(api.export_cluster_wide_definitions()), text);
    let all = ok!(api.export_cluster_wide_definitions_as_data());
    assert!(all.queues.iter().any(|q| q.name == "capped"));
    let vhost = ok!(api.export_vhost_definitions_as_data("/"));
    assert!(vhost.exchanges.iter().any(|x| x.name == "fan"));
    assert!(ok!(api.export_vhost_definitions_as_string("/")).contains("\"fan\""));
    assert!(ok!(api.export_vhost_definitions("/")).contains("\"fan\""));
    let one_vhost: Value = serde_json::from_str(&ok!(api.export_vhost_definitions("/"))).unwrap();
    ok!(api.create_vhost(&VirtualHostParams::named("copy")));
    ok!(api.import_vhost_definitions("copy", one_vhost));
    assert!(ok!(api.list_queues_in("copy")).iter().any(|q| q.name == "capped"));
    let whole: Value = serde_json::from_str(&text).unwrap();
    ok!(api.delete_queue("/", "capped", false));
    ok!(api.import_cluster_wide_definitions(whole.clone()));
    ok!(api.import_definitions(whole));
    assert!(ok!(api.list_queues_in("/")).iter().any(|q| q.name == "capped"));
}

/// What the crate covers that Warren does not have: a plain answer where RabbitMQ 3.10 has one
/// for a node without it (empty lists, nothing to do), 404 where RabbitMQ without the plugin
/// says 404 too. docs/management.md lists them with the reasons.
#[tokio::test]
async fn what_warren_does_not_have_is_answered_plainly() {
    let (broker, api, _) = start().await;
    let node = ok!(api.list_nodes()).remove(0).name;
    assert!(ok!(api.list_feature_flags()).0.is_empty());
    ok!(api.enable_all_stable_feature_flags());
    assert!(ok!(api.list_all_deprecated_features()).0.is_empty());
    assert!(ok!(api.list_deprecated_features_in_use()).0.is_empty());
    ok!(api.rebalance_queue_leaders());
    ok!(api.health_check_if_node_is_quorum_critical());
    assert!(ok!(api.list_all_cluster_plugins()).0.is_empty());
    assert!(ok!(api.list_node_plugins(&node)).0.is_empty());
    assert!(ok!(api.list_federation_upstreams()).is_empty());
    let reached = within(api.probe_reachability()).await;
    assert!(
        matches!(reached, rabbitmq_http_client::responses::ReachabilityProbeOutcome::Reached(_)),
        "{reached:?}"
    );

    // No streams: none are listed, and a quorum queue is served as a durable classic queue.
    assert!(ok!(api.list_streams()).is_empty());
    assert!(ok!(api.list_streams_in("/")).is_empty());
    assert!(ok!(api.list_streams_paged(&page(1, 10))).is_empty());
    assert!(ok!(api.list_streams_in_paged("/", &page(1, 10))).is_empty());
    let stream = rabbitmq_http_client::requests::StreamParams::new("log", "7D");
    let refused = refused!(api.declare_stream("/", &stream));
    assert_eq!(refused.status_code().map(|s| s.as_u16()), Some(400), "{refused:?}");
    assert!(refused!(api.get_stream_info("/", "log")).is_not_found());
    ok!(api.declare_quorum_queue("/", "qq"));
    let qq = ok!(api.get_queue_info("/", "qq"));
    assert_eq!((qq.queue_type.as_str(), qq.durable), ("classic", true));
    let ch = broker.connect().await.channel().await;
    publish(&ch, "", "qq", b"kept").await;
    wait_message_count(&ch, "qq", 1).await;

    // RabbitMQ without the plugin (or before 3.11, or outside Tanzu) answers these 404 as well.
    for (what, refused) in [
        ("stream connections", within(api.list_stream_connections()).await.err()),
        ("stream publishers", within(api.list_stream_publishers()).await.map(|_| ()).err()),
        ("stream consumers", within(api.list_stream_consumers()).await.map(|_| ()).err()),
        ("federation links", within(api.list_federation_links()).await.map(|_| ()).err()),
        ("shovels", within(api.list_shovels()).await.map(|_| ()).err()),
        ("auth attempts", within(api.auth_attempts_statistics(&node)).await.map(|_| ()).err()),
        ("memory footprint", within(api.get_node_memory_footprint(&node)).await.map(|_| ()).err()),
        ("cluster tags", within(api.get_cluster_tags()).await.map(|_| ()).err()),
        ("warm standby", within(api.warm_standby_replication_status()).await.map(|_| ()).err()),
        ("schema sync", within(api.schema_definition_sync_status(None)).await.map(|_| ()).err()),
    ]
    .map(|(what, e)| (what, e.map(|e| e.status_code().map(|s| s.as_u16()))))
    {
        assert_eq!(refused, Some(Some(404)), "{what}");
    }
}
