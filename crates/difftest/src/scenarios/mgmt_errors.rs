//! Management API: refusals. Missing or wrong credentials, a user without a management tag,
//! a management user outside its vhosts and outside its rights, objects that do not exist
//! (each 404 with its body), methods a path does not take, bodies that are not JSON.

use serde_json::json;

use crate::harness::{Ctx, Res};
use crate::mgmt::{path, Api, Request};

/// 401 without credentials, with a wrong password, for an unknown user and for a user
/// without a management tag; a management user's view: its own vhost, and refusals outside.
pub async fn mgmt_auth_errors(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let v = api.vhost("v").await?;
    let other = api.vhost("other").await?;
    let (plain, manager, monitor) = (cx.user("plain"), cx.user("manager"), cx.user("monitor"));
    api.put(path("users", &[&plain]), &json!({"password": "dt-secret", "tags": ""})).await?;
    api.put(path("users", &[&manager]), &json!({"password": "dt-secret", "tags": "management"})).await?;
    api.put(path("users", &[&monitor]), &json!({"password": "dt-secret", "tags": "monitoring"})).await?;
    api.put(path("permissions", &[&v, &manager]), &json!({"configure": ".*", "write": ".*", "read": ".*"}))
        .await?;
    api.put(path("queues", &[&v, "q"]), &json!({})).await?;
    api.put(path("queues", &[&other, "q"]), &json!({})).await?;
    api.anonymous().get("/api/overview").await?;
    api.anonymous().get(path("queues", &[&v])).await?;
    api.as_user("guest", "wrong").get("/api/whoami").await?;
    api.as_user("dt-no-such-user", "x").get("/api/whoami").await?;
    api.as_user(&plain, "dt-secret").get("/api/whoami").await?;
    let as_manager = api.as_user(&manager, "dt-secret");
    as_manager.get("/api/whoami").await?;
    as_manager.get(format!("{}?columns=name", path("queues", &[&v]))).await?;
    as_manager.get(path("vhosts", &[&v])).await?;
    as_manager.get(path("vhosts", &[&other])).await?;
    as_manager.get(path("queues", &[&other])).await?;
    as_manager.get(path("queues", &[&other, "q"])).await?;
    as_manager.get(format!("/api/vhosts?page=1&name={}&columns=name", v.trim_end_matches(".v"))).await?;
    as_manager.get("/api/users").await?;
    as_manager.put(path("vhosts", &[&format!("{v}.new")]), &json!({})).await?;
    as_manager
        .put(path("policies", &[&v, "p"]), &json!({"pattern": ".*", "definition": {"max-length": 1}}))
        .await?;
    as_manager.put(path("queues", &[&other, "q2"]), &json!({})).await?;
    as_manager.delete(path("queues", &[&other, "q"])).await?;
    as_manager.get("/api/definitions").await?;
    let as_monitor = api.as_user(&monitor, "dt-secret");
    as_monitor.get(format!("{}?columns=name", path("queues", &[&other]))).await?;
    as_monitor.get(path("queues", &[&other, "q"])).await?;
    as_monitor.delete(path("queues", &[&other, "q"])).await?;
    as_monitor.get("/api/users?columns=name&page=1&name=dt-no-such-user").await?;
    api.delete_vhost(&v).await?;
    api.delete_vhost(&other).await?;
    for u in [&plain, &manager, &monitor] {
        api.delete(path("users", &[u])).await?;
        cx.forget(u);
    }
    Ok(())
}

/// 404 for each kind of missing object, with its error body; paths that do not exist at all.
pub async fn mgmt_not_found(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let v = api.vhost("v").await?;
    let missing = "dt-no-such-vhost";
    for at in [
        path("vhosts", &[missing]),
        path("queues", &[missing]),
        path("queues", &[&v, "q.missing"]),
        path("queues", &[missing, "q"]),
        path("exchanges", &[missing]),
        path("exchanges", &[&v, "e.missing"]),
        path("bindings", &[missing]),
        path("users", &["dt-no-such-user"]),
        path("permissions", &[&v, "guest2"]),
        path("policies", &[missing]),
        path("connections", &["no such connection"]),
        path("channels", &["no such channel"]),
        path("vhosts", &[missing, "connections"]),
        "/api/no-such-endpoint".to_string(),
        "/api/queues/a/b/c/d/e".to_string(),
    ] {
        api.get(at).await?;
    }
    api.delete(path("queues", &[&v, "q.missing"])).await?;
    api.delete(path("exchanges", &[&v, "e.missing"])).await?;
    api.delete(format!("{}/contents", path("queues", &[&v, "q.missing"]))).await?;
    api.put(path("queues", &[missing, "q"]), &json!({})).await?;
    api.put(path("exchanges", &[missing, "e"]), &json!({"type": "direct"})).await?;
    api.delete_vhost(&v).await?;
    Ok(())
}

/// 405 for methods a path does not take; 400 for bodies that are not JSON, or not the JSON
/// the path wants.
pub async fn mgmt_method_and_body_errors(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let v = api.vhost("v").await?;
    let q = path("queues", &[&v, "q"]);
    api.delete("/api/overview").await?;
    api.post(path("vhosts", &[&v]), &json!({})).await?;
    api.call(Request::new("PATCH", &q).json(&json!({}))).await?;
    api.put("/api/queues", &json!({})).await?;
    api.post(&q, &json!({})).await?;
    api.call(Request::new("PUT", &q).raw_body("{\"durable\": tru")).await?;
    api.call(Request::new("PUT", &q).raw_body("[1, 2]")).await?;
    api.put(&q, &json!({"durable": "yes"})).await?;
    api.call(Request::new("PUT", path("users", &["dt-user"])).raw_body("not json")).await?;
    api.call(Request::new("POST", format!("{}/get", q)).raw_body("{")).await?;
    api.get(&q).await?;
    api.delete_vhost(&v).await?;
    Ok(())
}
