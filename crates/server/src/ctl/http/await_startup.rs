//! `await_startup` over the API: polls the readiness check until it answers 200, or gives up at
//! the deadline with the last reason (a broker still starting is not an error until then).

use std::time::{Duration, Instant};

use hyper::Method;

use super::client::{HttpError, Request};
use super::session::{CtlError, Session};

/// How often the API is asked again.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

const READY: &str = "/api/health/checks/ready-to-serve-clients";

/// Waits up to `timeout` for the broker to serve clients.
pub fn wait(s: &Session, timeout: Duration) -> Result<String, CtlError> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match s.call(Request::new(Method::GET, READY), "the readiness check") {
            Ok(_) => return Ok("Broker is up and serving clients".to_owned()),
            // Wrong credentials will not become right by waiting.
            Err(refusal @ CtlError::NotAuthorised { .. }) => return Err(refusal),
            Err(CtlError::Http(HttpError::Setup(why))) => return Err(CtlError::Http(HttpError::Setup(why))),
            Err(other) => other,
        };
        if Instant::now() + POLL_INTERVAL > deadline {
            return Err(CtlError::Http(HttpError::Unreachable {
                url: s.url(READY),
                cause: format!("not ready within {} s; last: {last}", timeout.as_secs()),
            }));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
