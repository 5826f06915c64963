//! Policies set with `warren ctl` on a running broker: applied to existing queues at once, with
//! RabbitMQ's validation errors, and kept across a restart.

use crate::common::durable::{DurableBroker, Stop};
use crate::common::*;

#[tokio::test]
async fn a_policy_set_on_a_running_broker_trims_its_queues_and_survives_restart() {
    let mut broker = DurableBroker::start(&[]).await;
    let client = broker.connect().await;
    let ch = client.channel().await;
    let q = uniq("limited");
    within(ch.queue_declare(
        q.as_str().into(),
        lapin::options::QueueDeclareOptions { durable: true, ..Default::default() },
        Default::default(),
    ))
    .await
    .unwrap();
    for i in 0..10 {
        publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
    }
    wait_message_count(&ch, &q, 10).await;
    broker.ctl_ok(&["set_policy", "--apply-to", "queues", "cap", "^limited", r#"{"max-length": 3}"#]);
    assert_eq!(message_count(&ch, &q).await, 3, "trimmed at once");
    let listed = broker.ctl_ok(&["list_policies"]);
    assert!(listed.contains("/\tcap\t^limited\tqueues\t{\"max-length\":3}\t0"), "{listed}");

    let (ok, _, stderr) = broker.ctl(&["set_policy", "bad", ".*", r#"{"message-ttl": -1}"#]);
    assert!(!ok && stderr.contains("-1 is not a valid message TTL"), "{stderr}");
    let (ok, _, stderr) = broker.ctl(&["clear_policy", "nope"]);
    assert!(!ok && stderr.contains("Parameter does not exist"), "{stderr}");

    // An operator policy lowers the limit further.
    broker.ctl_ok(&["set_operator_policy", "tighter", "^limited", r#"{"max-length": 2}"#]);
    assert_eq!(message_count(&ch, &q).await, 2);
    client.close().await;

    broker.restart(Stop::Kill).await;
    let client = broker.connect().await;
    let ch = client.channel().await;
    for i in 0..5 {
        publish(&ch, "", &q, format!("n{i}").as_bytes()).await;
    }
    wait_message_count(&ch, &q, 2).await;
    broker.ctl_ok(&["clear_operator_policy", "tighter"]);
    broker.ctl_ok(&["clear_policy", "cap"]);
    for i in 0..5 {
        publish(&ch, "", &q, format!("o{i}").as_bytes()).await;
    }
    wait_message_count(&ch, &q, 7).await;
}

#[tokio::test]
async fn a_ttl_policy_expires_the_messages_already_waiting_into_its_dead_letter_queue() {
    let broker = DurableBroker::start(&[]).await;
    let client = broker.connect().await;
    let ch = client.channel().await;
    let q = uniq("waiting");
    let dead = uniq("expired");
    declare_queue(&ch, &q).await;
    declare_queue(&ch, &dead).await;
    for i in 0..5 {
        publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
    }
    wait_message_count(&ch, &q, 5).await;
    // The default exchange routes the dead letters to `dead` by the routing key.
    let definition =
        format!(r#"{{"message-ttl": 200, "dead-letter-exchange": "", "dead-letter-routing-key": "{dead}"}}"#);
    broker.ctl_ok(&["set_policy", "--apply-to", "queues", "ttl", "^waiting-", &definition]);
    wait_message_count(&ch, &q, 0).await;
    wait_message_count(&ch, &dead, 5).await;
    let m = get(&ch, &dead).await.expect("a dead letter");
    assert_eq!(m.delivery.data, b"m0");
    let headers = m.delivery.properties.headers().as_ref().expect("x-death headers");
    let reason = headers.inner().get("x-first-death-reason");
    assert!(
        matches!(reason, Some(lapin::types::AMQPValue::LongString(r)) if r.as_bytes() == b"expired"),
        "{reason:?}"
    );
    client.close().await;
}
