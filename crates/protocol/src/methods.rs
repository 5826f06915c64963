//! Method argument structs (one per spec method, `{Class}{Method}`) and the
//! [`Method`] enum, generated from the spec.

pub use crate::generated::methods::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generated::arbitrary::arbitrary_method;
    use crate::DecodeError;
    use bytes::{Bytes, BytesMut};
    use proptest::prelude::*;

    fn encode(m: &Method) -> Bytes {
        let mut out = BytesMut::new();
        m.encode(&mut out);
        out.freeze()
    }

    #[test]
    fn metadata() {
        let m = Method::from(QueueDeclareOk::default());
        assert_eq!(m.name(), "queue.declare-ok");
        assert_eq!((m.class_id(), m.method_id()), (50, 11));
        assert!(!m.is_synchronous_request());
        let p = Method::from(BasicPublish::default());
        assert_eq!(p.name(), "basic.publish");
        assert!(p.has_content());
        assert!(!p.is_synchronous_request());
        assert!(Method::from(ExchangeDeclare::default()).is_synchronous_request());
        assert!(Method::from(ConfirmSelect::default()).is_synchronous_request());
        assert!(!Method::from(TxCommitOk).is_synchronous_request());
        let content: Vec<_> = [
            Method::from(BasicReturn::default()),
            BasicDeliver::default().into(),
            BasicGetOk::default().into(),
        ]
        .iter()
        .map(Method::has_content)
        .collect();
        assert_eq!(content, [true, true, true]);
        assert!(!Method::from(BasicGet::default()).has_content());
        assert_eq!(BasicAck::NAME, "basic.ack");
        assert_eq!((ExchangeBind::CLASS_ID, ExchangeBind::METHOD_ID), (40, 30));
    }

    #[test]
    fn bits_pack_lsb_first_into_one_octet() {
        let m = Method::from(QueueDeclare {
            queue: "q".into(),
            durable: true,
            auto_delete: true,
            nowait: true,
            ..Default::default()
        });
        // class, method, ticket, "q", bits, empty table
        assert_eq!(&encode(&m)[..], b"\x00\x32\x00\x0a\x00\x00\x01q\x1a\x00\x00\x00\x00");
        let e = Method::from(ExchangeDeclare { kind: "topic".into(), internal: true, ..Default::default() });
        let b = encode(&e);
        assert_eq!(b[b.len() - 5], 0x08);
        assert_eq!(Method::decode(b), Ok(e));
    }

    #[test]
    fn errors() {
        assert_eq!(Method::decode(Bytes::from_static(b"\x00")), Err(DecodeError::Truncated));
        assert_eq!(Method::decode(Bytes::from_static(b"\x00\x3c\x00\x50\x00")), Err(DecodeError::Truncated));
        assert_eq!(
            Method::decode(Bytes::from_static(b"\x00\x5a\x00\x0a\x00")),
            Err(DecodeError::TrailingBytes(1))
        );
        assert_eq!(
            Method::decode(Bytes::from_static(b"\x00\x14\x00\x0a\x01\xff")),
            Err(DecodeError::InvalidUtf8)
        );
    }

    #[test]
    fn publish_decode_is_zero_copy() {
        let m = Method::from(BasicPublish {
            exchange: "amq.direct".into(),
            routing_key: "key".into(),
            ..Default::default()
        });
        let wire = encode(&m);
        let Ok(Method::BasicPublish(p)) = Method::decode(wire.clone()) else {
            panic!("not a publish");
        };
        let range = wire.as_ptr_range();
        assert!(range.contains(&p.exchange.as_bytes().as_ptr()));
        assert!(range.contains(&p.routing_key.as_bytes().as_ptr()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_method_roundtrips(m in arbitrary_method()) {
            let wire = encode(&m);
            prop_assert_eq!(Method::decode(wire.clone()), Ok(m.clone()));
            // Every strict prefix is rejected, never panics.
            for n in 0..wire.len() {
                prop_assert!(Method::decode(wire.slice(..n)).is_err());
            }
        }

        #[test]
        fn random_payloads_never_panic(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = Method::decode(Bytes::from(data));
        }
    }

    #[test]
    fn arbitrary_method_covers_all_66() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let strategy = arbitrary_method();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20_000 {
            seen.insert(strategy.new_tree(&mut runner).unwrap().current().name());
            if seen.len() == 66 {
                break;
            }
        }
        assert_eq!(seen.len(), 66);
    }
}
