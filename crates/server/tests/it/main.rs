//! Warren's server integration tests, as one test binary: each module was once a binary of its
//! own, and every one of them linked lapin and tokio again, which made linking most of the
//! cost of building the tests. `common` is the harness they share (a `warren` process per
//! test, or the broker named by `WARREN_TEST_URL`; raw sockets; restarts).
//!
//! Run one module with a filter, e.g. `cargo test -p warren-server --test it malformed::`.

mod common;

mod access;
mod basic;
mod bounds;
mod confirm_tx;
mod connection;
mod crash;
mod ctl_http;
mod dashboard;
mod dedup;
mod definitions;
mod disk_alarm;
mod disk_full;
mod exactly_once;
mod exchange;
mod flow;
mod hostile;
mod http_client;
mod large;
mod large_bodies;
mod malformed;
mod management;
mod management_objects;
mod metrics;
mod plugin_exchanges;
mod policies;
mod queue;
mod rabbitmqadmin;
mod reply_to;
mod resources;
mod restart;
mod routing;
mod tls;
mod torn_tail;
mod tx_atomic;
mod users;
