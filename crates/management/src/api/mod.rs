//! RabbitMQ's management HTTP API: the same paths, methods, JSON shapes and status codes, so
//! `rabbitmqadmin`, HTTP client libraries and scripts written for RabbitMQ work unchanged. Every
//! change goes through the broker's admin commands; listings read the core's registry and
//! counters. One file per group of endpoints.

mod auth;
mod bindings;
mod body;
mod cluster_features;
mod connections;
mod definitions;
mod error;
mod exchanges;
mod format;
mod global_parameters;
mod health;
mod limits;
mod list;
mod overview;
mod parameters;
mod permissions;
mod policies;
mod queue_get;
mod queues;
pub mod rates;
mod scope;
mod users;
mod vhosts;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use warren_broker::Broker;

pub use error::ApiError;
pub use format::message_properties;

/// What the node says about itself in `/api/overview` and `/api/nodes`.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node's name, RabbitMQ-style (`rabbit@host`).
    pub name: String,
    /// What clients are told the product is (`Warren`, or `RabbitMQ` when configured so).
    pub product_name: String,
    /// The product's version.
    pub product_version: String,
    /// The AMQP and management listeners: (protocol, address).
    pub listeners: Vec<(String, std::net::SocketAddr)>,
    /// When the node started.
    pub started_at: Instant,
}

/// What the health checks read that the broker core does not know: the resource alarms the
/// server watches.
pub trait NodeHealth: Send + Sync {
    /// The resource alarms in effect, by RabbitMQ's resource name (`disk`, `memory`).
    fn alarms(&self) -> Vec<&'static str>;
}

/// A node without alarms (tests, or a server that does not watch resources).
#[derive(Debug, Default)]
pub struct NoAlarms;

impl NodeHealth for NoAlarms {
    fn alarms(&self) -> Vec<&'static str> {
        Vec::new()
    }
}

/// What every handler is given.
pub struct ApiContext {
    /// The broker.
    pub broker: Arc<Broker>,
    /// The node's description.
    pub node: NodeInfo,
    /// The resource alarms.
    pub health: Arc<dyn NodeHealth>,
    /// Sampled message rates (see [`rates::spawn_sampler`]).
    pub rates: Arc<rates::Rates>,
    /// The node's memory, disk and file descriptors, as the metrics read them.
    pub node_stats: Arc<dyn crate::metrics::NodeSource>,
}

impl ApiContext {
    /// A context without alarms, with rates sampled at RabbitMQ's default interval (the caller
    /// starts the sampler).
    pub fn new(broker: Arc<Broker>, node: NodeInfo) -> Self {
        ApiContext {
            broker,
            node,
            health: Arc::new(NoAlarms),
            rates: Arc::default(),
            node_stats: Arc::new(crate::metrics::NoNodeStats),
        }
    }
}

/// The API's routes, under `/api`.
pub fn router(ctx: Arc<ApiContext>) -> Router {
    Router::new()
        .merge(crate::dashboard::routes())
        .merge(overview::routes())
        .merge(vhosts::routes())
        .merge(users::routes())
        .merge(permissions::routes())
        .merge(policies::routes())
        .merge(parameters::routes())
        .merge(global_parameters::routes())
        .merge(definitions::routes())
        .merge(queues::routes())
        .merge(queue_get::routes())
        .merge(exchanges::routes())
        .merge(bindings::routes())
        .merge(connections::routes())
        .merge(health::routes())
        .merge(cluster_features::routes())
        .fallback(get(|| async { ApiError::NotFound }))
        .layer(DefaultBodyLimit::max(MAX_BODY_SIZE))
        .layer(axum::middleware::from_fn(refuse_announced_oversize))
        .with_state(ctx)
}

/// Refuses a body announced larger than [`MAX_BODY_SIZE`] at once, before reading any of it
/// (the body limit alone answers only once that much has arrived).
async fn refuse_announced_oversize(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_SIZE as u64) {
        return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    next.run(request).await
}

/// The largest request body taken (RabbitMQ's `management.http.max_body_size` default): a
/// definitions file of tens of thousands of queues fits; more is refused with 413.
pub const MAX_BODY_SIZE: usize = 20 * 1024 * 1024;

/// The RabbitMQ version whose management API Warren answers as.
pub const MANAGEMENT_VERSION: &str = "3.10.8";
