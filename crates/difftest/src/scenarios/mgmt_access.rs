//! Management API: the objects of access control. Vhosts, users (with bulk delete and the list
//! of users without permissions), permissions and topic permissions, created, shown, changed
//! and deleted over HTTP, with RabbitMQ's status codes (201 created, 204 changed or deleted,
//! 404 missing) and bodies.

use serde_json::json;

use crate::harness::{Ctx, Res};
use crate::mgmt::{has_keys, path, Api, Request};

/// A vhost's life: created (201), put again (204), described and tagged, shown once its
/// statistics exist (RabbitMQ shows a vhost's message counts only after a queue's statistics
/// reached it), listed, the creator's permissions on it, deleted (204), then missing (404).
pub async fn mgmt_vhosts_crud(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let v = cx.vhost("v");
    let at = path("vhosts", &[&v]);
    api.call(Request::new("PUT", &at)).await?;
    api.call(Request::new("PUT", &at)).await?;
    api.put(&at, &json!({"description": "for tests", "tags": "a,b"})).await?;
    api.put(path("queues", &[&v, "q"]), &json!({})).await?;
    api.poll(Request::new("GET", &at), |r| has_keys(r.body(), &["messages"])).await?;
    api.put(&at, &json!({"tags": ["c"]})).await?;
    api.get(format!("/api/vhosts?page=1&name={v}&columns=name,description,tags,tracing")).await?;
    api.get(format!("{at}/permissions")).await?;
    api.get(format!("{at}/topic-permissions")).await?;
    api.delete_vhost(&v).await?;
    api.get(&at).await?;
    api.delete(&at).await?;
    Ok(())
}

/// Users: with a password and a tag, with tags as a list, passwordless (`password_hash` ""),
/// without a password at all, changed, listed, the list of users without permissions, bulk
/// delete (also naming a user that does not exist), delete and 404.
pub async fn mgmt_users_crud(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let (u1, u2, u3) = (cx.user("u1"), cx.user("u2"), cx.user("u3"));
    let at = |u: &str| path("users", &[u]);
    api.put(at(&u1), &json!({"password": "dt-secret", "tags": "management"})).await?;
    api.get(at(&u1)).await?;
    api.put(at(&u2), &json!({"password_hash": "", "tags": ["monitoring", "policymaker"]})).await?;
    api.get(at(&u2)).await?;
    api.put(at(&u3), &json!({"tags": ""})).await?;
    api.get(at(&u3)).await?;
    api.put(at(&u1), &json!({"password": "dt-other", "tags": "administrator"})).await?;
    api.get(at(&u1)).await?;
    // The new password works, over HTTP too.
    api.as_user(&u1, "dt-other").get("/api/whoami").await?;
    let prefix = u1.trim_end_matches("u1");
    // RabbitMQ 3.13 pages users as Warren does, 3.10 lists them whole: compare ours, unpaged.
    let listed = api.quiet(&Request::new("GET", "/api/users?columns=name,tags,limits")).await?;
    let mut users: Vec<String> = listed
        .items()
        .iter()
        .filter(|u| u["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .map(|u| u.to_string())
        .collect();
    users.sort();
    cx.log(format!("users (ours): {users:?}"));
    api.put(path("permissions", &["/", &u2]), &json!({"configure": ".*", "write": ".*", "read": ".*"}))
        .await?;
    // Lists every user without permissions (no filter there): keep ours.
    let without = api.quiet(&Request::new("GET", "/api/users/without-permissions")).await?;
    let mut ours: Vec<String> = without
        .items()
        .iter()
        .filter_map(|u| u["name"].as_str().map(str::to_string))
        .filter(|n| n.starts_with(prefix))
        .collect();
    ours.sort();
    cx.log(format!("without-permissions (ours): {ours:?}"));
    api.post("/api/users/bulk-delete", &json!({"users": [u1, u2]})).await?;
    api.get(at(&u1)).await?;
    api.post("/api/users/bulk-delete", &json!({"users": [u3, "dt-no-such-user"]})).await?;
    api.get(at(&u3)).await?;
    api.delete(at(&u3)).await?;
    for u in [&u1, &u2, &u3] {
        cx.forget(u);
    }
    Ok(())
}

/// Permissions and topic permissions: set (201, then 204), shown per user and vhost, listed
/// per vhost and per user, deleted (204), then missing (404); a missing vhost or user.
pub async fn mgmt_permissions_crud(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let v = api.vhost("v").await?;
    let u = cx.user("u");
    api.put(path("users", &[&u]), &json!({"password": "dt-secret", "tags": ""})).await?;
    let perm = path("permissions", &[&v, &u]);
    api.put(&perm, &json!({"configure": "^a", "write": "^b", "read": "^c"})).await?;
    api.get(&perm).await?;
    api.put(&perm, &json!({"configure": ".*", "write": "", "read": ".*"})).await?;
    api.get(&perm).await?;
    api.get(format!("{}/permissions", path("vhosts", &[&v]))).await?;
    api.get(format!("{}/permissions", path("users", &[&u]))).await?;
    let topic = path("topic-permissions", &[&v, &u]);
    api.put(&topic, &json!({"exchange": "amq.topic", "write": "^w", "read": "^r"})).await?;
    api.put(&topic, &json!({"exchange": "amq.topic", "write": "^w2", "read": "^r2"})).await?;
    api.put(&topic, &json!({"exchange": "other", "write": ".*", "read": ".*"})).await?;
    api.call(Request::new("GET", &topic).sorted_by("exchange")).await?;
    api.call(
        Request::new("GET", format!("{}/topic-permissions", path("vhosts", &[&v]))).sorted_by("exchange"),
    )
    .await?;
    api.call(
        Request::new("GET", format!("{}/topic-permissions", path("users", &[&u]))).sorted_by("exchange"),
    )
    .await?;
    // Incomplete bodies.
    api.put(&perm, &json!({"configure": ".*"})).await?;
    api.put(&topic, &json!({"write": ".*", "read": ".*"})).await?;
    api.delete(&topic).await?;
    api.get(&topic).await?;
    api.delete(&perm).await?;
    api.get(&perm).await?;
    api.delete(&perm).await?;
    api.put(
        path("permissions", &["dt-no-such-vhost", &u]),
        &json!({"configure": "", "write": "", "read": ""}),
    )
    .await?;
    api.put(
        path("permissions", &[&v, "dt-no-such-user"]),
        &json!({"configure": "", "write": "", "read": ""}),
    )
    .await?;
    api.delete_vhost(&v).await?;
    api.delete(path("users", &[&u])).await?;
    cx.forget(&u);
    Ok(())
}

/// Vhost limits and user limits: set, listed (per vhost, per user, all), cleared, and refused
/// values (an unknown limit, a value that is not a number).
pub async fn mgmt_limits(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let v = api.vhost("v").await?;
    let u = cx.user("u");
    api.put(path("users", &[&u]), &json!({"password": "dt-secret", "tags": ""})).await?;
    let vlimit = |name: &str| path("vhost-limits", &[&v, name]);
    api.put(vlimit("max-connections"), &json!({"value": 10})).await?;
    api.put(vlimit("max-queues"), &json!({"value": 5})).await?;
    api.get(path("vhost-limits", &[&v])).await?;
    api.put(vlimit("max-bananas"), &json!({"value": 1})).await?;
    api.put(vlimit("max-queues"), &json!({"value": "many"})).await?;
    api.put(vlimit("max-queues"), &json!({})).await?;
    api.delete(vlimit("max-queues")).await?;
    api.get(path("vhost-limits", &[&v])).await?;
    let ulimit = |name: &str| path("user-limits", &[&u, name]);
    api.put(ulimit("max-channels"), &json!({"value": 3})).await?;
    api.put(ulimit("max-connections"), &json!({"value": 2})).await?;
    api.get(path("user-limits", &[&u])).await?;
    api.get(path("users", &[&u])).await?;
    api.put(ulimit("max-bananas"), &json!({"value": 1})).await?;
    api.delete(ulimit("max-channels")).await?;
    api.get(path("user-limits", &[&u])).await?;
    api.get(path("user-limits", &["dt-no-such-user"])).await?;
    api.delete_vhost(&v).await?;
    api.delete(path("users", &[&u])).await?;
    cx.forget(&u);
    Ok(())
}
