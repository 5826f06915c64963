//! Who is asking: HTTP basic authentication with the broker's users, and what their tags let
//! them see and do, as RabbitMQ's management plugin decides it (`management`: its own vhosts,
//! `policymaker`: also policies and parameters, `monitoring`: every vhost and node data,
//! `administrator`: everything).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use base64::Engine;
use warren_broker::RefusedLogin;

use super::error::ApiError;
use super::ApiContext;

/// An authenticated user of the API.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The user name.
    pub(crate) name: String,
    /// Its tags.
    pub(crate) tags: Vec<String>,
}

impl Caller {
    fn has(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// Administrator: users, vhosts, permissions, everything.
    pub(crate) fn is_administrator(&self) -> bool {
        self.has("administrator")
    }

    /// Sees every vhost (monitoring or administrator).
    pub(crate) fn is_monitor(&self) -> bool {
        self.has("monitoring") || self.is_administrator()
    }

    /// May change policies and parameters (policymaker or administrator).
    pub(crate) fn is_policymaker(&self) -> bool {
        self.has("policymaker") || self.is_administrator()
    }

    /// Refuses a caller who is not an administrator, as RabbitMQ words it.
    pub(crate) fn require_administrator(&self) -> Result<(), ApiError> {
        if self.is_administrator() {
            Ok(())
        } else {
            Err(ApiError::NotAuthorised("Not administrator user"))
        }
    }

    /// Refuses a caller who may not change policies (RabbitMQ's wording for any object the
    /// caller's tags do not reach).
    pub(crate) fn require_policymaker(&self) -> Result<(), ApiError> {
        if self.is_policymaker() {
            Ok(())
        } else {
            Err(ApiError::NotAuthorised("User not authorised to access object"))
        }
    }

    /// Refuses a caller who may not see every vhost.
    pub(crate) fn require_monitor(&self) -> Result<(), ApiError> {
        if self.is_monitor() {
            Ok(())
        } else {
            Err(ApiError::NotAuthorised("Not monitor user"))
        }
    }
}

/// The tags that let a user into the management API at all.
const MANAGEMENT_TAGS: [&str; 4] = ["management", "policymaker", "monitoring", "administrator"];

impl FromRequestParts<Arc<ApiContext>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Arc<ApiContext>) -> Result<Caller, ApiError> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let (user, password) = basic_credentials(parts).ok_or(ApiError::NoCredentials)?;
        let now = std::time::Instant::now();
        if let Err(reason) = ctx.broker.authenticate(&user, &password, peer, now) {
            let login = RefusedLogin { username: &user, mechanism: "HTTP basic", peer, reason };
            ctx.broker.login_refused(login, now);
            return Err(ApiError::LoginFailed);
        }
        let tags = ctx.broker.access().user(&user).map(|u| u.tags.clone()).unwrap_or_default();
        if !tags.iter().any(|t| MANAGEMENT_TAGS.contains(&t.as_str())) {
            return Err(ApiError::NotAuthorised("Not management user"));
        }
        Ok(Caller { name: user, tags })
    }
}

/// The user and password of an `Authorization: Basic` header.
fn basic_credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}
