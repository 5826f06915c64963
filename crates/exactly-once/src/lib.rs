//! An exactly-once pipeline written with a common AMQP client library (lapin) and nothing of
//! Warren's own code, so it runs against any AMQP 0-9-1 broker and shows what that broker
//! guarantees:
//!
//! * [`producer`]: numbered events with a deduplication key, persistent, with publisher
//!   confirms; after a failure it publishes again everything that was not confirmed;
//! * [`worker`]: consume from `in`, and in one transaction publish to `out` and `audit` and ack
//!   the input;
//! * [`check`]: the verdict, a pure function; [`drain`] reads the output queues for it;
//! * [`bench`]: the transactional benchmark (consume-transform-publish, N inputs per commit).
//!
//! The `exactly-once` binary runs each role against an AMQP URL; Warren's integration tests run
//! them as tasks while killing the broker (see `docs/delivery-guarantees.md`).

pub mod bench;
pub mod check;
pub mod drain;
pub mod event;
pub mod producer;
pub mod retry;
pub mod topology;
pub mod worker;

pub use check::{check_queue, Delivered, Expected, QueueReport};
pub use drain::{drain, RunReport};
pub use event::{Event, Stage};
pub use producer::{produce, ProducerOptions, ProducerStats};
pub use retry::{Error, Patience};
pub use topology::{Declared, Topology};
pub use worker::{work, WorkerOptions, WorkerStats};
