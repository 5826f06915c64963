//! Prometheus metrics with RabbitMQ's rabbitmq_prometheus names, types, HELP texts and labels,
//! so dashboards made for RabbitMQ (its Grafana "RabbitMQ-Overview") work against Warren.
//!
//! * [`families`]: the catalogue of names;
//! * [`collect`]: one read of the broker core and the node ([`NodeSource`]) into a snapshot;
//! * [`render`]: a snapshot as `/metrics`, `/metrics/per-object` or `/metrics/detailed`;
//! * [`text`]: the text exposition format;
//! * [`http`]: the axum router;
//! * [`monotonic`]: node-wide counters never go backwards.
//!
//! Nothing here touches the message path: a scrape reads counters the core keeps anyway.

mod collect;
mod families;
mod http;
mod monotonic;
mod node;
mod render;
mod text;

use std::sync::Arc;

use warren_broker::Broker;

pub use collect::Want;
pub use families::Group;
pub use http::router;
pub use node::{AlarmStates, Identity, NoNodeStats, NodeSource, NodeStats, StoreStats};
pub use render::Endpoint;
pub use text::CONTENT_TYPE;

/// The RabbitMQ release whose behaviour and metric names Warren follows
/// (`rabbitmq_version` in `rabbitmq_build_info`).
pub const RABBITMQ_VERSION: &str = "3.10.8";

/// What the metrics endpoints read: the broker, the node, and how the node names itself.
pub struct Metrics {
    broker: Arc<Broker>,
    node: Arc<dyn NodeSource>,
    identity: Identity,
    monotonic: monotonic::Monotonic,
}

impl Metrics {
    /// Metrics of `broker` on the node `node` describes.
    pub fn new(broker: Arc<Broker>, node: Arc<dyn NodeSource>, identity: Identity) -> Metrics {
        Metrics { broker, node, identity, monotonic: monotonic::Monotonic::default() }
    }

    /// Collects and renders one endpoint now (what a scrape gets).
    pub fn scrape(&self, endpoint: &Endpoint, want: &Want) -> String {
        self.render(collect::collect(&self.broker, &*self.node, want), endpoint)
    }

    fn render(&self, mut snapshot: collect::Snapshot, endpoint: &Endpoint) -> String {
        self.monotonic.hold(&mut snapshot.counters);
        render::render(&snapshot, &self.identity, endpoint)
    }
}

#[cfg(test)]
mod tests;
