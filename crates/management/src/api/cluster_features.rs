//! What RabbitMQ keeps for running and upgrading a cluster, answered for one Warren node that
//! has none of it, so tools that ask (rabbitmqadmin v2, HTTP client libraries) get a plain answer
//! instead of a 404: no feature flags (`/api/feature-flags`, RabbitMQ 3.10) and no deprecated
//! features in use (`/api/deprecated-features`, `.../used`, RabbitMQ 3.13); no queue leaders
//! to rebalance (`POST /api/rebalance/queues`: 204, nothing moved).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::ApiContext;

pub(super) fn routes() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/api/feature-flags", get(none))
        .route("/api/deprecated-features", get(none))
        .route("/api/deprecated-features/used", get(none))
        .route("/api/rebalance/queues", post(rebalance))
}

async fn none(caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    Ok(Json(json!([])))
}

async fn rebalance(caller: Caller) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    Ok(StatusCode::NO_CONTENT)
}
