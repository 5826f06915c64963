//! The Prometheus endpoint: a broker started with `--prometheus-listen` serves `/metrics`,
//! `/metrics/per-object` and `/metrics/detailed` with RabbitMQ's metric names; the counters
//! move with traffic over AMQP, queues have their own series only per object, and the output
//! passes `promtool check metrics` (Debian's prometheus package; skipped with a note where it
//! is missing, unless `PROMTOOL_REQUIRE=1`, as CI sets).

use std::collections::HashMap;
use std::net::SocketAddr;

use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicGetOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::durable::DurableBroker;
use crate::common::*;

/// A plain HTTP/1.1 GET: the status code and the body.
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8(response).expect("the response is text");
    let (head, body) = response.split_once("\r\n\r\n").expect("a header and a body");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
    Ok((status, body.to_owned()))
}

async fn scrape(addr: SocketAddr, path: &str) -> String {
    let (status, body) = within(http_get(addr, path)).await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Every sample of an exposition, by its name and labels as written.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| panic!("no series {series}"))
}

async fn start_with_metrics() -> (DurableBroker, SocketAddr) {
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let broker = DurableBroker::start(&["--prometheus-listen", &metrics.to_string()]).await;
    eventually("the metrics endpoint answers", || async { http_get(metrics, "/metrics").await.ok() }).await;
    (broker, metrics)
}

#[tokio::test]
async fn counters_move_with_traffic_and_queues_have_series_per_object() {
    let (broker, metrics) = start_with_metrics().await;
    let before = samples(&scrape(metrics, "/metrics").await);
    assert_eq!(value(&before, "rabbitmq_connections"), 0.0);

    let client = broker.connect().await;
    let ch = client.channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    let q = uniq("metrics");
    declare_queue(&ch, &q).await;
    for i in 0..5 {
        publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
    }
    let got = within(ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })).await.unwrap();
    assert!(got.is_some());
    let consuming = client.channel().await;
    let mut consumer = within(consuming.basic_consume(
        q.as_str().into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    for _ in 0..4 {
        let delivery = next_delivery(&mut consumer).await;
        within(delivery.acker.ack(BasicAckOptions::default())).await.unwrap();
    }

    let counted = |name: &str| format!("{name}{{protocol=\"amqp091\"}}");
    let typed = |name: &str| format!("{name}{{protocol=\"amqp091\",queue_type=\"rabbit_classic_queue\"}}");
    let after = eventually("the acks are counted", || async {
        let s = samples(&scrape(metrics, "/metrics").await);
        (value(&s, &typed("rabbitmq_global_messages_acknowledged_total")) >= 4.0).then_some(s)
    })
    .await;
    let grew = |series: &str, by: f64| {
        let (old, new) = (before.get(series).copied().unwrap_or(0.0), value(&after, series));
        assert!(new - old >= by, "{series}: {old} -> {new}, expected +{by}");
    };
    grew(&counted("rabbitmq_global_messages_received_total"), 5.0);
    grew(&counted("rabbitmq_global_messages_received_confirm_total"), 5.0);
    grew(&counted("rabbitmq_global_messages_routed_total"), 5.0);
    grew(&counted("rabbitmq_global_messages_confirmed_total"), 5.0);
    grew(&typed("rabbitmq_global_messages_delivered_consume_manual_ack_total"), 4.0);
    grew(&typed("rabbitmq_global_messages_delivered_get_auto_ack_total"), 1.0);
    grew("rabbitmq_channel_messages_published_total", 5.0);
    grew("rabbitmq_connections_opened_total", 1.0);
    grew("rabbitmq_channels_opened_total", 2.0);
    grew("rabbitmq_queues_created_total", 1.0);
    grew(&counted("rabbitmq_auth_attempts_succeeded_total"), 1.0);
    assert_eq!(value(&after, "rabbitmq_connections"), 1.0);
    assert_eq!(value(&after, "rabbitmq_consumers"), 1.0);
    assert!(value(&after, "rabbitmq_queues") >= 1.0);
    assert!(value(&after, "rabbitmq_process_resident_memory_bytes") > 0.0);
    assert!(value(&after, "rabbitmq_disk_space_available_bytes") > 0.0);
    assert!(after.keys().any(|k| k.starts_with("rabbitmq_identity_info{rabbitmq_node=\"warren@")));

    let aggregated = scrape(metrics, "/metrics").await;
    assert!(!aggregated.contains("queue=\""), "no per-queue series on /metrics");
    let per_object = samples(&scrape(metrics, "/metrics/per-object").await);
    let series = |name: &str| format!("{name}{{vhost=\"/\",queue=\"{q}\"}}");
    assert_eq!(value(&per_object, &series("rabbitmq_queue_messages_ready")), 0.0);
    assert_eq!(value(&per_object, &series("rabbitmq_queue_consumers")), 1.0);
    assert_eq!(value(&per_object, &series("rabbitmq_queue_messages_published_total")), 5.0);
    let detailed = samples(&scrape(metrics, "/metrics/detailed?family=queue_coarse_metrics&vhost=%2F").await);
    assert_eq!(value(&detailed, &series("rabbitmq_detailed_queue_messages")), 0.0);
    assert!(!detailed.keys().any(|k| k.starts_with("rabbitmq_global_")), "only the families asked for");

    // Closing the connection moves the churn counters; the message counters do not go back.
    client.close().await;
    let closed = eventually("the close is counted", || async {
        let s = samples(&scrape(metrics, "/metrics").await);
        (value(&s, "rabbitmq_connections_closed_total") >= 1.0).then_some(s)
    })
    .await;
    assert_eq!(value(&closed, "rabbitmq_connections"), 0.0);
    assert!(value(&closed, "rabbitmq_channels_closed_total") >= 2.0);
    let received = counted("rabbitmq_global_messages_received_total");
    assert_eq!(value(&closed, &received), value(&after, &received));
}

#[tokio::test]
async fn promtool_accepts_every_endpoint() {
    let Some(promtool) = promtool() else {
        eprintln!("promtool not found (Debian's prometheus package): skipping the format check");
        return;
    };
    let (broker, metrics) = start_with_metrics().await;
    let client = broker.connect().await;
    let ch = client.channel().await;
    // A queue name that needs escaping in a label value.
    let q = format!("{}-\"quoted\"\\back", uniq("promtool"));
    declare_queue(&ch, &q).await;
    publish(&ch, "", &q, b"x").await;
    wait_message_count(&ch, &q, 1).await;
    let everything = "/metrics/detailed?family=connection_churn_metrics&family=node_coarse_metrics\
        &family=node_metrics&family=auth_attempt_metrics&family=queue_coarse_metrics&family=queue_metrics\
        &family=channel_metrics&family=channel_exchange_metrics&family=channel_queue_metrics\
        &family=connection_coarse_metrics&family=connection_metrics&family=channel_queue_exchange_metrics\
        &family=vhost_status&family=exchange_bindings&family=exchange_names";
    for path in ["/metrics", "/metrics/per-object", everything] {
        let text = scrape(metrics, path).await;
        let (ok, report) = check_with_promtool(&promtool, &text);
        assert!(ok, "promtool check metrics failed on {path}:\n{report}\n--- output ---\n{text}");
    }
}

/// promtool, from PATH; a missing one fails the test when `PROMTOOL_REQUIRE=1`.
fn promtool() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join("promtool")).find(|p| p.is_file()));
    if found.is_none() && std::env::var("PROMTOOL_REQUIRE").is_ok_and(|v| v == "1") {
        panic!("promtool is required (PROMTOOL_REQUIRE=1) but not installed: apt-get install prometheus");
    }
    found
}

/// Runs `promtool check metrics` on `text`: whether it passed, and what it said.
fn check_with_promtool(promtool: &std::path::Path, text: &str) -> (bool, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), report)
}
