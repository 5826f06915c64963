//! DiskLog against a model: random appends, deliveries, requeues, settles, purges, flushes and
//! reopens (restarts) with a tiny window and tiny segments, so paging, rolling, segment
//! deletion and recovery all happen often.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use warren_store::{DiskConfig, DiskLog, DiskStore, QueueLog, QueuedMessage, SyncMode};

#[derive(Debug, Clone)]
enum Op {
    Append { persistent: bool, size: usize },
    Pop,
    Requeue(usize),
    Settle(usize),
    Purge,
    Flush,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        48 => (any::<bool>(), 0usize..120).prop_map(|(persistent, size)| Op::Append { persistent, size }),
        32 => Just(Op::Pop),
        8 => any::<usize>().prop_map(Op::Requeue),
        24 => any::<usize>().prop_map(Op::Settle),
        8 => Just(Op::Flush),
        8 => Just(Op::Reopen),
        // Rare: a purge empties everything the other operations built up.
        1 => Just(Op::Purge),
    ]
}

#[derive(Debug, Clone)]
struct Expected {
    body: String,
    persistent: bool,
    redelivered: bool,
}

fn config() -> DiskConfig {
    DiskConfig {
        segment_size: 300,
        memory_window_bytes: 250,
        memory_window_messages: 4,
        sync: SyncMode::Never,
    }
}

fn run(ops: Vec<Op>, durable: bool) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Some(DiskStore::open(tmp.path(), config()).unwrap());
    let reopen = |store: &DiskStore| -> DiskLog { store.open_log("/", "model", durable).unwrap() };
    let mut log = Some(reopen(store.as_ref().unwrap()));
    let mut ready: BTreeMap<u64, Expected> = BTreeMap::new();
    let mut unacked: Vec<(QueuedMessage, Expected)> = Vec::new();
    let mut max_offset: Option<u64> = None;
    let mut counter = 0;
    for op in ops {
        let l = log.as_mut().unwrap();
        match op {
            Op::Append { persistent, size } => {
                counter += 1;
                let body = format!("{counter}:{}", "b".repeat(size));
                let offset = l.append(msg(&body), None, persistent).unwrap();
                prop_assert!(max_offset.is_none_or(|m| offset > m), "offset {offset} after {max_offset:?}");
                max_offset = Some(offset);
                ready
                    .insert(offset, Expected { body, persistent: persistent && durable, redelivered: false });
            }
            Op::Pop => {
                let got = l.pop_front();
                match ready.pop_first() {
                    None => prop_assert!(got.is_none()),
                    Some((offset, e)) => {
                        let m = got.expect("model has a message");
                        prop_assert_eq!(m.offset, offset);
                        prop_assert_eq!(body(&m), e.body.clone());
                        prop_assert_eq!(m.redelivered, e.redelivered);
                        prop_assert_eq!(m.stored, e.persistent);
                        unacked.push((m, e));
                    }
                }
            }
            Op::Requeue(i) if !unacked.is_empty() => {
                let (mut m, mut e) = unacked.swap_remove(i % unacked.len());
                m.redelivered = true;
                e.redelivered = true;
                ready.insert(m.offset, e);
                l.requeue(m);
            }
            Op::Settle(i) if !unacked.is_empty() => {
                let (m, _) = unacked.swap_remove(i % unacked.len());
                l.settle(m.offset, m.stored);
            }
            Op::Requeue(_) | Op::Settle(_) => {}
            Op::Purge => {
                prop_assert_eq!(l.purge(), ready.len());
                ready.clear();
            }
            Op::Flush => l.flush().unwrap(),
            Op::Reopen => {
                // A restart: deliveries in flight are lost with their channels; what was
                // persistent and not settled comes back, redelivered.
                l.flush().unwrap();
                drop(log.take());
                drop(store.take());
                store = Some(DiskStore::open(tmp.path(), config()).unwrap());
                log = Some(reopen(store.as_ref().unwrap()));
                let mut survivors: BTreeMap<u64, Expected> = BTreeMap::new();
                for (offset, e) in std::mem::take(&mut ready)
                    .into_iter()
                    .chain(unacked.drain(..).map(|(m, e)| (m.offset, e)))
                {
                    if e.persistent {
                        survivors.insert(offset, Expected { redelivered: true, ..e });
                    }
                }
                ready = survivors;
                // Offsets of messages that never reached the disk may be handed out again.
                max_offset = ready.keys().next_back().copied();
            }
        }
        let l = log.as_ref().unwrap();
        prop_assert_eq!(l.len(), ready.len());
        let stats = l.memory_stats();
        prop_assert!(stats.window_messages <= config().memory_window_messages, "{:?}", stats);
    }
    // Drain and settle everything: only the active segment remains.
    let l = log.as_mut().unwrap();
    let rest: Vec<u64> = drain_settle_offsets(l);
    prop_assert_eq!(rest, ready.keys().copied().collect::<Vec<_>>());
    for (m, _) in unacked.drain(..) {
        l.settle(m.offset, m.stored);
    }
    l.flush().unwrap();
    prop_assert!(l.segment_count() <= 1, "{} segments left", l.segment_count());
    Ok(())
}

fn drain_settle_offsets(log: &mut DiskLog) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some(m) = log.pop_front() {
        log.settle(m.offset, m.stored);
        out.push(m.offset);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96),
        ..ProptestConfig::default()
    })]

    #[test]
    fn durable_log_matches_the_model(ops in proptest::collection::vec(op(), 1..250)) {
        run(ops, true)?;
    }

    #[test]
    fn non_durable_log_matches_the_model(ops in proptest::collection::vec(op(), 1..250)) {
        run(ops, false)?;
    }
}

#[test]
fn regression_purge_then_page_out() {
    let a = |persistent, size| Op::Append { persistent, size };
    let ops = vec![
        a(false, 0),
        a(true, 27),
        a(true, 15),
        a(false, 0),
        a(false, 18),
        a(false, 41),
        Op::Purge,
        a(true, 25),
        a(false, 69),
        a(true, 106),
        a(false, 90),
        a(false, 0),
        a(false, 0),
    ];
    run(ops, true).unwrap();
}
