//! `/api/global-parameters`: RabbitMQ's global runtime parameters (`cluster_name` and the
//! like, set by operators and plugins).
//!
//! Warren has none: its cluster name is the node's name and it has no plugins that keep
//! parameters. The listing is empty, a name is not found, and a PUT is refused with RabbitMQ's
//! `Validation failed` wording rather than accepted and forgotten.

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::ApiContext;

pub(super) fn routes() -> Router<Arc<ApiContext>> {
    Router::new().route("/api/global-parameters", get(list)).route(
        "/api/global-parameters/{name}",
        get(|c: Caller| async move { c.require_administrator().and(Err::<Json<Value>, _>(ApiError::NotFound)) })
            .put(|c: Caller| async move { c.require_administrator().and(Err::<(), _>(refused())) })
            .delete(|c: Caller| async move { c.require_administrator().and(Err::<(), _>(ApiError::NotFound)) }),
    )
}

async fn list(caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    Ok(Json(json!([])))
}

fn refused() -> ApiError {
    ApiError::BadRequest("Validation failed\n\nglobal parameters are not supported by Warren\n".to_owned())
}
