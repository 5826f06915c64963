//! Users, vhosts, permissions and limits set with `warren ctl`, against a running broker and a
//! stopped one: enforced on real clients, and kept across a restart and a kill -9.

use crate::common::durable::{DurableBroker, Stop};
use crate::common::*;

fn url(broker: &DurableBroker, user: &str, pass: &str, vhost: &str) -> String {
    let vhost = vhost.replace('/', "%2F");
    format!("amqp://{user}:{pass}@{}/{vhost}", broker.addr())
}

async fn refused_open(broker: &DurableBroker, user: &str, pass: &str, vhost: &str) -> (u16, String) {
    let attempt =
        within(lapin::Connection::connect(&url(broker, user, pass, vhost), Default::default())).await;
    let Err(e) = attempt else { panic!("{user} was let into {vhost}") };
    amqp_error(&e).unwrap_or_else(|| panic!("not an AMQP refusal: {e:?}"))
}

#[tokio::test]
async fn ctl_changes_a_running_broker_and_clients_see_it_at_once() {
    let broker = DurableBroker::start(&[]).await;
    broker.ctl_ok(&["add_user", "alice", "s3cret"]);
    broker.ctl_ok(&["add_vhost", "prod"]);
    let (code, text) = refused_open(&broker, "alice", "s3cret", "prod").await;
    assert_eq!((code, text.as_str()), (530, "NOT_ALLOWED - access to vhost 'prod' refused for user 'alice'"));
    broker.ctl_ok(&[
        "set_permissions",
        "-p",
        "prod",
        "alice",
        "^alice\\.",
        "^(alice\\.|amq\\.default$)",
        "^alice\\.",
    ]);
    let mut alice = Client::connect(&url(&broker, "alice", "s3cret", "prod")).await;
    let ch = alice.channel().await;
    declare_queue(&ch, "alice.q").await;
    let durable = lapin::options::QueueDeclareOptions { durable: true, ..Default::default() };
    within(ch.queue_declare("alice.kept".into(), durable, Default::default())).await.unwrap();
    publish_with(
        &ch,
        "",
        "alice.kept",
        b"persistent",
        lapin::BasicProperties::default().with_delivery_mode(2),
    )
    .await;
    let kept_dir = crate::common::durable::queue_dir(broker.data_dir(), "prod", "alice.kept");
    eventually("the durable queue's log exists", || async { kept_dir.exists().then_some(()) }).await;
    let (code, text) =
        expect_err(ch.queue_declare("bob.q".into(), Default::default(), Default::default())).await;
    assert_eq!(
        (code, text.as_str()),
        (403, "ACCESS_REFUSED - access to queue 'bob.q' in vhost 'prod' refused for user 'alice'")
    );

    // Taking a permission away applies to the open connection's next operation.
    let ch = alice.channel().await;
    declare_queue(&ch, "alice.q2").await;
    broker.ctl_ok(&["set_permissions", "-p", "prod", "alice", "", "^(alice\\.|amq\\.default$)", "^alice\\."]);
    let (code, _) =
        expect_err(ch.queue_declare("alice.q3".into(), Default::default(), Default::default())).await;
    assert_eq!(code, 403);

    // Deleting the vhost closes its connections with RabbitMQ's reason.
    let listed = broker.ctl_ok(&["list_vhosts"]);
    assert!(listed.lines().any(|l| l == "prod"), "{listed}");
    broker.ctl_ok(&["delete_vhost", "prod"]);
    let forced = loop {
        let (code, text) = alice.next_error().await;
        if code != 403 {
            break (code, text);
        }
    };
    assert_eq!((forced.0, forced.1.as_str()), (320, "CONNECTION_FORCED - vhost 'prod' is deleted"));
    let (code, text) = refused_open(&broker, "alice", "s3cret", "prod").await;
    assert_eq!((code, text.as_str()), (530, "NOT_ALLOWED - vhost prod not found"));
    assert!(!kept_dir.exists(), "the vhost's messages went with it");

    let (ok, _, stderr) = broker.ctl(&["add_user", "alice", "again"]);
    assert!(!ok && stderr.contains("already exists"), "{stderr}");
    let (ok, _, stderr) = broker.ctl(&["set_permissions", "alice", "(", ".*", ".*"]);
    assert!(!ok && stderr.contains("invalid regular expression"), "{stderr}");
    assert!(!broker.log().contains("s3cret"), "no password in the log");
}

#[tokio::test]
async fn access_definitions_survive_restart_and_kill() {
    let mut broker = DurableBroker::new(None, &[]);
    // Set up before the first start, on the stopped broker's data directory.
    broker.ctl_ok(&["add_user", "app", "pw"]);
    broker.ctl_ok(&["set_user_tags", "app", "impersonator", "monitoring"]);
    broker.ctl_ok(&["add_vhost", "tenant"]);
    broker.ctl_ok(&["set_permissions", "-p", "tenant", "app", ".*", ".*", ".*"]);
    broker.ctl_ok(&["set_topic_permissions", "-p", "tenant", "app", "amq.topic", "^app\\.", ".*"]);
    broker.ctl_ok(&["set_vhost_limits", "-p", "tenant", r#"{"max-connections": 1}"#]);
    broker.spawn().await;
    for stop in [Stop::Term, Stop::Kill] {
        let mut app = Client::connect(&url(&broker, "app", "pw", "tenant")).await;
        let (code, text) = refused_open(&broker, "app", "pw", "tenant").await;
        assert_eq!(
            (code, text.as_str()),
            (530, "NOT_ALLOWED - access to vhost 'tenant' refused for user 'app': connection limit (1) is reached")
        );
        let ch = app.channel().await;
        publish(&ch, "amq.topic", "app.key", b"allowed").await;
        publish(&ch, "amq.topic", "other.key", b"refused").await;
        app.assert_next_error(
            403,
            "ACCESS_REFUSED - access to topic 'other.key' in exchange 'amq.topic' in vhost 'tenant' refused for user 'app'",
        )
        .await;
        app.close().await;
        broker.restart(stop).await;
    }
    let users = broker.ctl_ok(&["list_users"]);
    assert!(users.contains("app\t[impersonator, monitoring]"), "{users}");
    let limits = broker.ctl_ok(&["list_vhost_limits", "-p", "tenant"]);
    assert!(limits.ends_with("{\"max-connections\":1}\n"), "{limits}");
    broker.ctl_ok(&["delete_user", "app"]);
    broker.restart(Stop::Kill).await;
    let (code, _) = refused_open(&broker, "app", "pw", "tenant").await;
    assert_eq!(code, 403, "deleted for good");
}
