//! Direct reply-to through lapin: an RPC server answering requests whose reply_to is
//! `amq.rabbitmq.reply-to`, as RabbitMQ's tutorial clients do.

use crate::common::*;
use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Consumer};

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

async fn consume(ch: &Channel, q: &str, no_ack: bool) -> lapin::Result<Consumer> {
    let opts = BasicConsumeOptions { no_ack, ..Default::default() };
    within(ch.basic_consume(q.into(), "".into(), opts, FieldTable::default())).await
}

#[tokio::test]
async fn rpc_round_trip_over_direct_reply_to() {
    let b = Broker::start().await;
    let rpc = uniq("rpc");

    // The server: answers each request with its body reversed, to the request's reply_to.
    let server = b.connect().await;
    let sch = server.channel().await;
    declare_queue(&sch, &rpc).await;
    let mut requests = consume(&sch, &rpc, false).await.unwrap();
    let answering = tokio::spawn(async move {
        let mut names = Vec::new();
        while let Some(Ok(req)) = requests.next().await {
            let reply_to = req.properties.reply_to().clone().expect("reply_to").to_string();
            let correlation_id = req.properties.correlation_id().clone().expect("correlation_id");
            let mut body = req.data.clone();
            body.reverse();
            let props = BasicProperties::default().with_correlation_id(correlation_id);
            sch.basic_publish(
                "".into(),
                reply_to.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await
            .unwrap();
            req.acker.ack(BasicAckOptions::default()).await.unwrap();
            names.push(reply_to);
            if names.len() == 3 {
                return names;
            }
        }
        panic!("the request consumer ended");
    });

    // The client: consumes replies (no-ack) and publishes three requests on the same channel.
    let client = b.connect().await;
    let ch = client.channel().await;
    let mut replies = consume(&ch, REPLY_TO, true).await.unwrap();
    for (i, body) in ["one", "two", "three"].iter().enumerate() {
        let props = BasicProperties::default()
            .with_reply_to(REPLY_TO.into())
            .with_correlation_id(format!("c{i}").as_str().into());
        publish_with(&ch, "", &rpc, body.as_bytes(), props).await;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = next_delivery(&mut replies).await;
        assert_eq!(d.exchange.as_str(), "");
        assert!(d.routing_key.as_str().starts_with("amq.rabbitmq.reply-to."), "{}", d.routing_key);
        got.push((d.properties.correlation_id().clone().unwrap().to_string(), text(&d.data)));
    }
    assert_eq!(
        got,
        [("c0".into(), "eno".into()), ("c1".into(), "owt".into()), ("c2".into(), "eerht".into())]
            as [(String, String); 3]
    );
    // Every request on the channel named the same reply consumer, rewritten from the pseudo-queue.
    let names = within(answering).await.unwrap();
    assert!(names.iter().all(|n| n == &names[0] && n.len() > REPLY_TO.len() + 1), "{names:?}");
    client.close().await;
    server.close().await;
}

#[tokio::test]
async fn direct_reply_to_errors() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    assert_err(consume(&ch, REPLY_TO, false), 406, "PRECONDITION_FAILED - reply consumer cannot acknowledge")
        .await;

    let mut c = b.connect().await;
    let ch = c.channel().await;
    let q = uniq("q");
    declare_queue(&ch, &q).await;
    let props = BasicProperties::default().with_reply_to(REPLY_TO.into());
    // The publish itself succeeds client-side; the broker closes the channel.
    let _ = ch.basic_publish("".into(), q.as_str().into(), BasicPublishOptions::default(), b"x", props).await;
    c.assert_next_error(406, "PRECONDITION_FAILED - fast reply consumer does not exist").await;
}
