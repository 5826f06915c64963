//! Sans-IO tests of the AMQP session over the broker core: a `Connection` and a `Session` per
//! client, driven the way the server's I/O loop drives them, on simulated time, with everything
//! the client would receive read back from the session's `Outbox`. Several clients may share one
//! broker.

mod consumer_timeout;
mod consumers;
mod dead_letter_cycles;
mod declare_rules;
mod delivery_limit;
mod exclusive_and_delete;
mod flow;
mod get_and_acks;
mod harness;
mod limits_and_dead_letters;
mod permissions;
mod publish_consume;
mod queue_features;
mod registry;
mod reply_to;
mod routing;
mod store_faults;
mod ttl;
mod tx_and_confirms;
