//! RabbitMQ's management HTTP API: the same paths, methods, JSON shapes and status codes, so
//! `rabbitmqadmin`, HTTP client libraries and scripts written for RabbitMQ work unchanged. Every
//! change goes through the broker's admin commands; listings read the core's registry and
//! counters. One file per group of endpoints.

mod auth;
mod body;
mod definitions;
mod error;
mod list;
mod overview;
mod permissions;
mod policies;
mod users;
mod vhosts;

use std::sync::Arc;
use std::time::Instant;

use axum::routing::get;
use axum::Router;
use warren_broker::Broker;

pub use error::ApiError;

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

/// What every handler is given.
pub struct ApiContext {
    /// The broker.
    pub broker: Arc<Broker>,
    /// The node's description.
    pub node: NodeInfo,
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
        .merge(definitions::routes())
        .fallback(get(|| async { ApiError::NotFound }))
        .with_state(ctx)
}

/// The RabbitMQ version whose management API Warren answers as.
pub const MANAGEMENT_VERSION: &str = "3.10.8";
