//! The management HTTP API against a running broker: authentication and tags, users,
//! permissions, vhosts, limits, policies and definitions as RabbitMQ's API answers them, and
//! that what it changes is what AMQP clients meet.

use crate::common::durable::DurableBroker;
use crate::common::http::request;
use crate::common::*;

async fn start() -> (DurableBroker, std::net::SocketAddr) {
    start_with(&[]).await
}

/// A broker with these flags, and its management API's address.
async fn start_with(args: &[&str]) -> (DurableBroker, std::net::SocketAddr) {
    let broker = DurableBroker::start(args).await;
    let addr = broker.management_addr().await;
    (broker, addr)
}

#[tokio::test]
async fn users_created_over_http_connect_over_amqp_with_their_permissions() {
    let (broker, api) = start().await;
    let get = |path: &'static str, user: &'static str, pass: &'static str| {
        request(api, "GET", path, user, pass, None)
    };
    let who = get("/api/whoami", "guest", "guest").await;
    assert_eq!(
        (who.status, who.json()),
        (200, serde_json::json!({"name": "guest", "tags": ["administrator"]}))
    );
    let refused = get("/api/whoami", "guest", "wrong").await;
    assert_eq!((refused.status, refused.json()["error"].clone()), (401, serde_json::json!("not_authorized")));

    let put =
        |path: &'static str, body: &'static str| request(api, "PUT", path, "guest", "guest", Some(body));
    assert_eq!(put("/api/vhosts/shop", "").await.status, 201);
    assert_eq!(put("/api/vhosts/shop", r#"{"description": "the shop"}"#).await.status, 204);
    assert_eq!(put("/api/users/carol", r#"{"password": "pw", "tags": "management"}"#).await.status, 201);
    let perms = r#"{"configure": "^carol\\.", "write": "^(carol\\.|amq\\.default$)", "read": "^carol\\."}"#;
    assert_eq!(put("/api/permissions/shop/carol", perms).await.status, 201);
    assert_eq!(put("/api/vhost-limits/shop/max-queues", r#"{"value": 1}"#).await.status, 204);

    let carol = Client::connect(&format!("amqp://carol:pw@{}/shop", broker.addr())).await;
    let ch = carol.channel().await;
    declare_queue(&ch, "carol.one").await;
    let (code, text) =
        expect_err(ch.queue_declare("carol.two".into(), Default::default(), Default::default())).await;
    assert_eq!((code, text.as_str()), (406, "PRECONDITION_FAILED - cannot declare queue 'carol.two': queue limit in vhost 'shop' (1) is reached"));
    carol.close().await;

    // A management user sees its own vhosts only, and may not list users.
    let vhosts = request(api, "GET", "/api/vhosts", "carol", "pw", None).await.json();
    let names: Vec<&str> = vhosts.as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["shop"]);
    let users = request(api, "GET", "/api/users", "carol", "pw", None).await;
    assert_eq!(
        (users.status, users.json()["reason"].clone()),
        (401, serde_json::json!("Not administrator user"))
    );

    let bad = put("/api/policies/shop/p", r#"{"pattern": ".*", "definition": {"message-ttl": -1}}"#).await;
    assert_eq!(
        (bad.status, bad.json()["reason"].clone()),
        (400, serde_json::json!("Validation failed\n\n-1 is not a valid message TTL\n"))
    );
    assert_eq!(
        put(
            "/api/policies/shop/p",
            r#"{"pattern": "^carol", "definition": {"max-length": 5}, "apply-to": "queues"}"#
        )
        .await
        .status,
        201
    );
    let policy = get("/api/policies/shop", "guest", "guest").await.json();
    assert_eq!(policy[0]["definition"], serde_json::json!({"max-length": 5}));

    let definitions = get("/api/definitions", "guest", "guest").await.json();
    assert!(definitions["users"].as_array().unwrap().iter().any(|u| u["name"] == "carol"), "{definitions}");
    assert_eq!(request(api, "DELETE", "/api/vhosts/shop", "guest", "guest", None).await.status, 204);
    assert_eq!(get("/api/vhosts/shop", "guest", "guest").await.status, 404);
    assert_eq!(request(api, "DELETE", "/api/users/carol", "guest", "guest", None).await.status, 204);
    let gone = request(api, "DELETE", "/api/users/carol", "guest", "guest", None).await;
    assert_eq!(
        (gone.status, gone.json()),
        (404, serde_json::json!({"error": "Object Not Found", "reason": "Not Found"}))
    );
}

#[tokio::test]
async fn the_node_name_setting_names_the_node_everywhere_the_api_shows_it() {
    let (_broker, api) = start_with(&["--node-name", "edge@box"]).await;
    let overview = eventually("the management API answers", || async {
        let r = request(api, "GET", "/api/overview", "guest", "guest", None).await;
        (r.status == 200).then(|| r.json())
    })
    .await;
    assert_eq!(
        (&overview["node"], &overview["cluster_name"]),
        (&serde_json::json!("edge@box"), &serde_json::json!("edge@box"))
    );
    // The listeners are the bound addresses (the test's broker binds port 0 for the API).
    let http = overview["listeners"].as_array().unwrap().iter().find(|l| l["protocol"] == "http").cloned();
    assert_eq!(http.map(|l| l["port"].clone()), Some(serde_json::json!(api.port())), "{overview}");
    let cluster = request(api, "GET", "/api/cluster-name", "guest", "guest", None).await.json();
    assert_eq!(cluster, serde_json::json!({"name": "edge@box"}));
    let nodes = request(api, "GET", "/api/nodes", "guest", "guest", None).await.json();
    assert_eq!(nodes[0]["name"], "edge@box");
    // What the dashboard's overview shows of the node: memory, disk, descriptors, alarms.
    for key in
        ["mem_used", "mem_limit", "disk_free", "disk_free_limit", "fd_used", "fd_total", "sockets_total"]
    {
        assert!(nodes[0][key].as_u64().is_some_and(|n| n > 0), "{key}: {}", nodes[0]);
    }
    assert_eq!(
        (&nodes[0]["mem_alarm"], &nodes[0]["disk_free_alarm"]),
        (&serde_json::json!(false), &serde_json::json!(false))
    );
    assert_eq!(request(api, "GET", "/api/nodes/edge@box", "guest", "guest", None).await.status, 200);
}

#[tokio::test]
async fn request_bodies_up_to_rabbitmqs_20_mib_are_taken_and_larger_ones_refused() {
    let (_broker, api) = start().await;
    // A definitions file over axum's default 2 MB limit, as one with many queues is.
    let description = "d".repeat(3 * 1024 * 1024);
    let definitions =
        serde_json::json!({"vhosts": [{"name": "big", "description": description}]}).to_string();
    let imported = request(api, "POST", "/api/definitions", "guest", "guest", Some(&definitions)).await;
    assert_eq!(imported.status, 204, "{}", imported.body);
    let vhost = request(api, "GET", "/api/vhosts/big", "guest", "guest", None).await.json();
    assert_eq!(vhost["description"].as_str().map(str::len), Some(3 * 1024 * 1024));
    // The broker refuses on the announced length, and may hang up before a body that size is
    // sent: announce it, send a little, then read the answer.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(api).await.unwrap();
    let head = format!(
        "POST /api/definitions HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{",
        21 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Its status line, without waiting for the connection to end (the unsent body is owed).
    let mut answer = Vec::new();
    within(async {
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok());
    assert_eq!(status, Some(413), "{answer}");
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_or_idles_is_dropped_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_broker, api) = start_with(&["--management-header-timeout", "300"]).await;
    // Half a request line, then nothing: the broker hangs up (read_to_end ends) on its own.
    let mut trickling = tokio::net::TcpStream::connect(api).await.unwrap();
    trickling.write_all(b"GET /api/whoami HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut answer = Vec::new();
    within(trickling.read_to_end(&mut answer)).await.unwrap();
    assert!(!String::from_utf8_lossy(&answer).contains("guest"));
    // A kept-alive connection is answered, then dropped once idle for as long.
    let mut idle = tokio::net::TcpStream::connect(api).await.unwrap();
    idle.write_all(b"GET /api/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    within(idle.read_to_end(&mut answer)).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("\"guest\""), "{answer}");
}
