//! Sender-selected distribution, length limits, dead-lettering on expiry.

use crate::harness::*;

fn keys(names: &[&str]) -> FieldValue {
    FieldValue::Array(names.iter().map(|n| text(n)).collect())
}

fn death_reason(item: &Item) -> Option<String> {
    let headers = item.props().headers.as_ref()?;
    let Some(FieldValue::Array(deaths)) = headers.get("x-death") else { return None };
    let FieldValue::Table(death) = deaths.first()? else { return None };
    death.get("reason").and_then(FieldValue::as_str).map(str::to_owned)
}

/// A queue "dlq" bound to fanout exchange "dlx", and queue `name` with `args` dead-lettering to it.
fn queue_with_dlx(c: &mut TestClient, name: &str, args: &[(&str, FieldValue)]) {
    c.exchange(1, "dlx", "fanout");
    c.queue(1, "dlq");
    c.bind(1, "dlq", "dlx", "");
    let mut arguments = table(args);
    arguments.insert("x-dead-letter-exchange", text("dlx"));
    c.declare_queue(1, QueueDeclare { queue: name.into(), arguments, ..Default::default() });
}

#[test]
fn cc_and_bcc_route_to_more_queues_and_bcc_is_removed() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "x", "direct");
    for (q, key) in [("main", "k0"), ("cc1", "k1"), ("cc2", "k2"), ("bcc", "k3"), ("other", "k4")] {
        c.queue(1, q);
        c.bind(1, q, "x", key);
    }
    // "main" is also reached through CC: it still gets one copy.
    c.bind(1, "main", "x", "k1");
    let headers = table(&[
        ("before", FieldValue::I32(1)),
        ("CC", keys(&["k1", "k2"])),
        ("BCC", keys(&["k3"])),
        ("after", text("x")),
    ]);
    let props = BasicProperties { headers: Some(headers), ..Default::default() };
    c.publish(1, "x", "k0", &props, b"to many");
    for q in ["main", "cc1", "cc2", "bcc"] {
        let (ok, item) = c.get(1, q, true).unwrap_or_else(|| panic!("{q} got nothing"));
        assert_eq!((&*ok.routing_key, ok.message_count), ("k0", 0), "{q}");
        let h = item.props().headers.as_ref().unwrap();
        let names: Vec<&str> = h.iter().map(|(k, _)| &**k).collect();
        assert_eq!(names, ["before", "CC", "after"], "BCC removed, order kept, in {q}");
    }
    assert!(c.get(1, "other", true).is_none());
}

#[test]
fn cc_routes_through_the_default_exchange() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "a");
    c.queue(1, "b");
    let props =
        BasicProperties { headers: Some(table(&[("CC", keys(&["b", "nowhere"]))])), ..Default::default() };
    c.publish(1, "", "a", &props, b"x");
    assert!(c.get(1, "a", true).is_some());
    let (_, item) = c.get(1, "b", true).unwrap();
    assert!(item.props().headers.as_ref().unwrap().get("CC").is_some(), "CC stays");
}

#[test]
fn max_length_drops_the_oldest_into_the_dead_letter_exchange() {
    let b = broker();
    let mut c = client(&b);
    queue_with_dlx(&mut c, "q", &[("x-max-length", FieldValue::I32(2))]);
    for i in 0..4 {
        c.publish(1, "", "q", &no_props(), format!("m{i}").as_bytes());
    }
    assert_eq!(c.counts(1, "q").0, 2);
    assert_eq!(c.get(1, "q", true).unwrap().1.body(), b"m2");
    assert_eq!(c.get(1, "q", true).unwrap().1.body(), b"m3");
    for expected in ["m0", "m1"] {
        let (_, item) = c.get(1, "dlq", true).unwrap();
        assert_eq!(item.body(), expected.as_bytes());
        assert_eq!(death_reason(&item).as_deref(), Some("maxlen"));
    }
}

#[test]
fn max_length_without_dead_letter_exchange_drops_the_oldest() {
    let b = broker();
    let mut c = client(&b);
    let arguments = table(&[("x-max-length", FieldValue::I32(1))]);
    c.declare_queue(1, QueueDeclare { queue: "q".into(), arguments, ..Default::default() });
    c.publish(1, "", "q", &no_props(), b"old");
    c.publish(1, "", "q", &no_props(), b"new");
    let (ok, item) = c.get(1, "q", true).unwrap();
    assert_eq!((item.body(), ok.message_count), (&b"new"[..], 0));
}

#[test]
fn max_length_bytes_counts_ready_bodies() {
    let b = broker();
    let mut c = client(&b);
    let arguments = table(&[("x-max-length-bytes", FieldValue::I32(10))]);
    c.declare_queue(1, QueueDeclare { queue: "q".into(), arguments, ..Default::default() });
    c.publish(1, "", "q", &no_props(), b"aaaa");
    c.publish(1, "", "q", &no_props(), b"bbbb");
    c.publish(1, "", "q", &no_props(), b"cccc"); // 12 bytes: "aaaa" goes
    assert_eq!(c.counts(1, "q").0, 2);
    // Taking one out frees its bytes.
    assert_eq!(c.get(1, "q", true).unwrap().1.body(), b"bbbb");
    c.publish(1, "", "q", &no_props(), b"dddddd");
    assert_eq!(c.counts(1, "q").0, 2);
    assert_eq!(c.get(1, "q", true).unwrap().1.body(), b"cccc");
}

#[test]
fn reject_publish_nacks_in_confirm_mode() {
    let b = broker();
    let mut c = client(&b);
    let arguments = table(&[("x-max-length", FieldValue::I32(1)), ("x-overflow", text("reject-publish"))]);
    c.declare_queue(1, QueueDeclare { queue: "q".into(), arguments, ..Default::default() });
    c.queue(1, "roomy");
    c.bind(1, "q", "amq.fanout", "");
    c.bind(1, "roomy", "amq.fanout", "");
    c.rpc(1, ConfirmSelect { nowait: false }, "confirm.select-ok");
    c.publish(1, "", "q", &no_props(), b"kept");
    let ack = c.expect_one(1, "basic.ack");
    assert_eq!(ack.method, Method::BasicAck(BasicAck { delivery_tag: 1, multiple: false }));
    c.publish(1, "", "q", &no_props(), b"refused");
    let nack = c.expect_one(1, "basic.nack");
    assert_eq!(
        nack.method,
        Method::BasicNack(BasicNack { delivery_tag: 2, multiple: false, requeue: false })
    );
    // Refused by one of the queues it reached: still nacked, though the other kept it.
    c.publish(1, "amq.fanout", "", &no_props(), b"half");
    c.expect_one(1, "basic.nack");
    assert_eq!(c.get(1, "roomy", true).unwrap().1.body(), b"half");
    let (ok, item) = c.get(1, "q", true).unwrap();
    assert_eq!((item.body(), ok.message_count), (&b"kept"[..], 0));
}

#[test]
fn reject_publish_without_confirms_drops_quietly() {
    let b = broker();
    let mut c = client(&b);
    let arguments = table(&[("x-max-length", FieldValue::I32(1)), ("x-overflow", text("reject-publish"))]);
    c.declare_queue(1, QueueDeclare { queue: "q".into(), arguments, ..Default::default() });
    c.publish(1, "", "q", &no_props(), b"kept");
    c.publish(1, "", "q", &no_props(), b"refused");
    c.expect_nothing();
    let (ok, item) = c.get(1, "q", true).unwrap();
    assert_eq!((item.body(), ok.message_count), (&b"kept"[..], 0));
}

#[test]
fn reject_publish_dlx_dead_letters_the_refused_message() {
    let b = broker();
    let mut c = client(&b);
    queue_with_dlx(
        &mut c,
        "q",
        &[("x-max-length", FieldValue::I32(1)), ("x-overflow", text("reject-publish-dlx"))],
    );
    c.rpc(1, ConfirmSelect { nowait: false }, "confirm.select-ok");
    c.publish(1, "", "q", &no_props(), b"kept");
    c.expect_one(1, "basic.ack");
    c.publish(1, "", "q", &no_props(), b"refused");
    c.expect_one(1, "basic.nack");
    assert_eq!(c.get(1, "q", true).unwrap().1.body(), b"kept");
    let (_, item) = c.get(1, "dlq", true).unwrap();
    assert_eq!(item.body(), b"refused");
    assert_eq!(death_reason(&item).as_deref(), Some("maxlen"));
}

#[test]
fn ttl_zero_dead_letters_at_once_on_publish() {
    let b = broker();
    let mut c = client(&b);
    queue_with_dlx(&mut c, "q", &[("x-message-ttl", FieldValue::I32(0))]);
    c.publish(1, "", "q", &no_props(), b"queue ttl");
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "q2".into(),
            arguments: table(&[("x-dead-letter-exchange", text("dlx"))]),
            ..Default::default()
        },
    );
    let props = BasicProperties { expiration: Some("0".into()), ..Default::default() };
    c.publish(1, "", "q2", &props, b"message ttl");
    assert_eq!(c.counts(1, "q").0, 0);
    let (_, item) = c.get(1, "dlq", true).unwrap();
    assert_eq!((item.body(), death_reason(&item).as_deref()), (&b"queue ttl"[..], Some("expired")));
    let (_, item) = c.get(1, "dlq", true).unwrap();
    assert_eq!((item.body(), death_reason(&item).as_deref()), (&b"message ttl"[..], Some("expired")));
    let headers = item.props().headers.as_ref().unwrap();
    let Some(FieldValue::Array(deaths)) = headers.get("x-death") else { panic!() };
    let FieldValue::Table(death) = &deaths[0] else { panic!() };
    assert_eq!(death.get("original-expiration").and_then(FieldValue::as_str), Some("0"));
    assert_eq!(item.props().expiration, None);
}

#[test]
fn expire_all_dead_letters_messages_nobody_reads() {
    let b = broker();
    let mut c = client(&b);
    queue_with_dlx(&mut c, "q", &[("x-message-ttl", FieldValue::I32(300))]);
    c.queue(1, "plain");
    let props = BasicProperties { expiration: Some("300".into()), ..Default::default() };
    c.publish(1, "", "plain", &props, b"dropped");
    c.publish(1, "", "q", &no_props(), b"late");
    tick(&b);
    assert_eq!(c.counts(1, "dlq").0, 0, "not due yet");
    // The TTL has to run out: wait for it (generous, so a loaded machine cannot expire them early).
    advance(350);
    tick(&b);
    let (_, item) = c.get(1, "dlq", true).expect("dead-lettered without anyone reading q");
    assert_eq!((item.body(), death_reason(&item).as_deref()), (&b"late"[..], Some("expired")));
    assert_eq!(c.counts(1, "plain").0, 0);
    assert_eq!(c.counts(1, "q").0, 0);
}
