//! What a request may reach: the vhost it names (404 when there is none, 401 when the caller
//! may not see it) and the permission an operation needs on a queue or exchange there, as
//! RabbitMQ's management plugin checks them (with the user's AMQP permissions, whatever its
//! tags).

use std::sync::Arc;

use warren_broker::{Permission, VHost};

use super::auth::Caller;
use super::error::ApiError;
use super::vhosts::visible;
use super::ApiContext;

/// The vhost `name`, if the caller may work in it: an administrator, or a user with
/// permissions there (RabbitMQ's `is_authorized_vhost`: the monitoring tag lets a user see
/// every vhost in listings, not reach into one).
pub(crate) fn vhost(ctx: &ApiContext, caller: &Caller, name: &str) -> Result<Arc<VHost>, ApiError> {
    let vhost = ctx.broker.vhost(name).ok_or(ApiError::NotFound)?;
    let member = ctx.broker.access().permissions(&caller.name, name).is_some();
    if !caller.is_administrator() && !member {
        return Err(ApiError::NotAuthorised("User not authorised to access virtual host"));
    }
    Ok(vhost)
}

/// The vhosts the caller may see, by name; only `only` when given (404 if it does not exist).
pub(crate) fn vhosts(
    ctx: &ApiContext,
    caller: &Caller,
    only: Option<&str>,
) -> Result<Vec<Arc<VHost>>, ApiError> {
    if let Some(name) = only {
        return Ok(vec![vhost(ctx, caller, name)?]);
    }
    // Across vhosts: those the caller may see (monitors: all).
    let mut all: Vec<_> = ctx.broker.vhosts().into_iter().filter(|v| visible(ctx, caller, &v.name)).collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// Refuses an operation the caller's permissions in `vhost` do not allow on `name`.
pub(crate) fn require(
    ctx: &ApiContext,
    caller: &Caller,
    vhost: &str,
    permission: Permission,
    name: &str,
) -> Result<(), ApiError> {
    let name = if name.is_empty() { "amq.default" } else { name };
    let allowed = ctx.broker.access().permissions(&caller.name, vhost).is_some_and(|p| {
        match permission {
            Permission::Configure => &p.configure,
            Permission::Write => &p.write,
            Permission::Read => &p.read,
        }
        .allows(name)
    });
    if allowed {
        Ok(())
    } else {
        Err(ApiError::NotAuthorised("Access refused."))
    }
}
