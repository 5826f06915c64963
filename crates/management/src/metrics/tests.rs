//! Tests of the three endpoints' output on a real (in-memory) broker: the format's rules
//! (one HELP and TYPE per family, samples only under their family), what each endpoint
//! lists, the cost with 10,000 queues, and the Grafana dashboard shipped in docs/ using only
//! names served here.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use warren_broker::{Actor, Broker, Command, Effects, QueueSpec};

use super::*;

fn identity() -> Identity {
    Identity::for_node("warren@test-host", "0.1.0")
}

/// A node that reads as a Linux node with a store would.
struct FakeNode;

impl NodeSource for FakeNode {
    fn node_stats(&self) -> NodeStats {
        NodeStats {
            resident_memory_bytes: Some(100 << 20),
            memory_limit_bytes: Some(1 << 30),
            disk_free_bytes: Some(10 << 30),
            disk_free_limit_bytes: Some(50_000_000),
            open_fds: Some(40),
            max_fds: Some(1024),
            max_tcp_sockets: Some(1024),
            uptime_seconds: 12.5,
            alarms: AlarmStates { memory: false, disk: true, file_descriptors: false },
            store: Some(StoreStats {
                write_failures: 2,
                write_fault: false,
                corruption: vec![("torn_tails", 1), ("corrupt_records_skipped", 0)],
            }),
        }
    }
}

fn broker_with_queues(vhosts: &[&str], per_vhost: usize) -> Arc<Broker> {
    let broker = Arc::new(Broker::new());
    for name in vhosts {
        let vhost = broker.add_vhost(name);
        for i in 0..per_vhost {
            let spec = QueueSpec { name: format!("q-{i}").as_str().into(), ..QueueSpec::default() };
            let declare = Command::DeclareQueue(spec);
            vhost.apply(declare, Actor::BROKER, Instant::now(), &mut Effects::default()).unwrap();
        }
    }
    broker
}

fn scrape(broker: &Arc<Broker>, endpoint: Endpoint, want: Want) -> String {
    Metrics::new(broker.clone(), Arc::new(FakeNode), identity()).scrape(&endpoint, &want)
}

/// Checks the format's rules and returns the families with their sample lines.
fn families(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut typed = HashSet::new();
    let mut helped = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_owned();
            assert!(helped.insert(name.clone()), "a second HELP for {name}");
            out.push((name, Vec::new()));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(typed.insert(name.to_owned()), "a second TYPE for {name}");
            assert!(["counter", "gauge", "untyped"].contains(&kind), "{line}");
            assert_eq!(out.last().map(|f| f.0.as_str()), Some(name), "TYPE right after HELP");
        } else {
            let (family, samples) = out.last_mut().expect("a sample before any family");
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(name, family, "a sample outside its family: {line}");
            assert!(line.rsplit(' ').next().unwrap().parse::<f64>().is_ok(), "{line}");
            samples.push(line.to_owned());
        }
    }
    out
}

fn sample<'a>(families: &'a [(String, Vec<String>)], name: &str) -> &'a [String] {
    &families.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no family {name}")).1
}

#[test]
fn aggregated_metrics_sum_queues_and_list_none() {
    let broker = broker_with_queues(&["/", "other"], 3);
    let text = scrape(&broker, Endpoint::Aggregated, Want::default());
    let families = families(&text);
    assert!(!text.contains("queue=\""), "no per-queue series on /metrics");
    assert_eq!(sample(&families, "rabbitmq_queues"), ["rabbitmq_queues 6"]);
    assert_eq!(sample(&families, "rabbitmq_queue_messages_ready"), ["rabbitmq_queue_messages_ready 0"]);
    assert_eq!(sample(&families, "rabbitmq_queues_created_total"), ["rabbitmq_queues_created_total 6"]);
    assert_eq!(
        sample(&families, "rabbitmq_alarms_free_disk_space_watermark"),
        ["rabbitmq_alarms_free_disk_space_watermark 1"]
    );
    assert_eq!(
        sample(&families, "rabbitmq_global_messages_received_total"),
        ["rabbitmq_global_messages_received_total{protocol=\"amqp091\"} 0"]
    );
    assert_eq!(sample(&families, "rabbitmq_erlang_uptime_seconds"), ["rabbitmq_erlang_uptime_seconds 12.5"]);
    assert_eq!(
        sample(&families, "rabbitmq_identity_info"),
        ["rabbitmq_identity_info{rabbitmq_node=\"warren@test-host\",rabbitmq_cluster=\"warren@test-host\",\
         rabbitmq_cluster_permanent_id=\"warren-cluster-id-warren@test-host\"} 1"]
    );
    assert_eq!(
        sample(&families, "warren_store_corruption_total"),
        [
            "warren_store_corruption_total{kind=\"torn_tails\"} 1",
            "warren_store_corruption_total{kind=\"corrupt_records_skipped\"} 0"
        ]
    );
}

#[test]
fn per_object_metrics_have_a_series_per_queue_with_escaped_labels() {
    let broker = broker_with_queues(&["/"], 2);
    let vhost = broker.add_vhost("v\"1");
    let spec = QueueSpec { name: "odd\\name".into(), ..QueueSpec::default() };
    vhost.apply(Command::DeclareQueue(spec), Actor::BROKER, Instant::now(), &mut Effects::default()).unwrap();
    let families = families(&scrape(&broker, Endpoint::PerObject, Want::default()));
    assert_eq!(
        sample(&families, "rabbitmq_queue_messages"),
        [
            "rabbitmq_queue_messages{vhost=\"/\",queue=\"q-0\"} 0",
            "rabbitmq_queue_messages{vhost=\"/\",queue=\"q-1\"} 0",
            "rabbitmq_queue_messages{vhost=\"v\\\"1\",queue=\"odd\\\\name\"} 0",
        ]
    );
    assert_eq!(sample(&families, "rabbitmq_queues"), ["rabbitmq_queues 3"]);
}

#[test]
fn detailed_metrics_are_the_families_and_vhosts_asked_for() {
    let broker = broker_with_queues(&["/", "other"], 2);
    let groups = vec![Group::ConnectionChurn, Group::QueueCoarse, Group::ExchangeNames];
    let want = Want { vhosts: Some(HashSet::from(["other".to_owned()])), exchanges: true };
    let detailed = families(&scrape(&broker, Endpoint::Detailed(groups), want));
    let names: Vec<&str> = detailed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "rabbitmq_detailed_connections_opened_total",
            "rabbitmq_detailed_connections_closed_total",
            "rabbitmq_detailed_channels_opened_total",
            "rabbitmq_detailed_channels_closed_total",
            "rabbitmq_detailed_queues_declared_total",
            "rabbitmq_detailed_queues_created_total",
            "rabbitmq_detailed_queues_deleted_total",
            "rabbitmq_detailed_queue_messages_ready",
            "rabbitmq_detailed_queue_messages_unacked",
            "rabbitmq_detailed_queue_messages",
            "rabbitmq_cluster_exchange_name",
            "rabbitmq_build_info",
            "rabbitmq_identity_info",
        ]
    );
    assert_eq!(
        sample(&detailed, "rabbitmq_detailed_queue_messages_ready"),
        [
            "rabbitmq_detailed_queue_messages_ready{vhost=\"other\",queue=\"q-0\"} 0",
            "rabbitmq_detailed_queue_messages_ready{vhost=\"other\",queue=\"q-1\"} 0",
        ]
    );
    assert!(sample(&detailed, "rabbitmq_cluster_exchange_name").contains(
        &"rabbitmq_cluster_exchange_name{vhost=\"/\",exchange=\"amq.topic\",type=\"topic\"} 1".to_owned()
    ));
    // Nothing asked for: identity alone, as RabbitMQ.
    let bare = families(&scrape(&broker, Endpoint::Detailed(Vec::new()), Want::default()));
    assert_eq!(bare.len(), 2);
}

#[test]
fn ten_thousand_queues_render_per_object_well_under_a_second() {
    let broker = broker_with_queues(&["/"], 10_000);
    let metrics = Metrics::new(broker, Arc::new(FakeNode), identity());
    let started = Instant::now();
    let text = metrics.scrape(&Endpoint::PerObject, &Want::default());
    let elapsed = started.elapsed();
    eprintln!("/metrics/per-object with 10,000 queues: {elapsed:?}, {} bytes", text.len());
    assert!(text.lines().filter(|l| l.starts_with("rabbitmq_queue_messages{")).count() == 10_000);
    // About 30 ms in a release build and 70 ms unoptimized: the bound leaves room for a busy
    // machine.
    assert!(elapsed < Duration::from_secs(1), "per-object with 10,000 queues took {elapsed:?}");
    let aggregated = metrics.scrape(&Endpoint::Aggregated, &Want::default());
    assert!(aggregated.len() < 20_000, "the aggregated output does not grow with queues");
}

/// Every family name any endpoint can serve.
fn served_names() -> BTreeSet<String> {
    let broker = broker_with_queues(&["/"], 1);
    let all_groups = Group::ALL.to_vec();
    let want = Want { vhosts: None, exchanges: true };
    let mut names = BTreeSet::new();
    for (endpoint, want) in [
        (Endpoint::Aggregated, Want::default()),
        (Endpoint::PerObject, Want::default()),
        (Endpoint::Detailed(all_groups), want),
    ] {
        names.extend(families(&scrape(&broker, endpoint, want)).into_iter().map(|(n, _)| n));
    }
    names
}

#[test]
fn the_grafana_dashboard_uses_only_names_warren_serves() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/grafana/warren-overview.json");
    let text = std::fs::read_to_string(path).expect("docs/grafana/warren-overview.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut expressions = Vec::new();
    collect_expressions(&dashboard, &mut expressions);
    assert!(expressions.len() > 20, "the dashboard has its queries");
    let served = served_names();
    // Label names dashboards join on, not metrics.
    let labels = ["rabbitmq_node", "rabbitmq_cluster"];
    let mut missing = BTreeSet::new();
    for expr in &expressions {
        for name in metric_names(expr) {
            if !served.contains(&name) && !labels.contains(&name.as_str()) {
                missing.insert(name);
            }
        }
    }
    assert!(missing.is_empty(), "the dashboard uses names Warren does not serve: {missing:?}");
}

/// The PromQL of every query in a dashboard: `expr` of targets, template variables' queries.
fn collect_expressions(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "definition" | "query", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_expressions(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_expressions(v, out)),
        _ => {}
    }
}

/// Words in `expr` that start with `rabbitmq_` or `warren_`.
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("rabbitmq_") || w.starts_with("warren_"))
        .map(str::to_owned)
        .collect()
}
