//! Connecting with retries, bounding each broker operation in time, and the errors of the
//! pipeline's clients.
//!
//! The clients treat every failure of a session (a lost connection, a closed channel, an
//! operation that hangs on a dying broker, a nack) the same way: drop the connection and start
//! over from what the broker is known to have. They give up only after a stretch of time in
//! which they made no progress at all.

use std::future::Future;
use std::time::{Duration, Instant};

use lapin::{Connection, ConnectionProperties};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no progress for {0:?}; last failure: {1}")]
    GaveUp(Duration, Box<Error>),
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    #[error("{0} took longer than {1:?}")]
    Timeout(&'static str, Duration),
    #[error("the broker refused event {0} (basic.nack)")]
    Nacked(String),
    #[error("the consumer of {0} ended")]
    ConsumerEnded(String),
    #[error("{0} ready messages stayed in {1}, but no delivery came")]
    Stalled(u32, String),
}

/// How long clients wait.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    /// Give up after this long without progress (no connection, no confirm, no commit).
    pub give_up_after: Duration,
    /// Bound on one operation (connect, declare, publish, confirm, commit).
    pub op_timeout: Duration,
    /// Pause between two connection attempts.
    pub reconnect_pause: Duration,
}

impl Default for Patience {
    fn default() -> Patience {
        Patience {
            give_up_after: Duration::from_secs(120),
            op_timeout: Duration::from_secs(10),
            reconnect_pause: Duration::from_millis(50),
        }
    }
}

impl Patience {
    /// Awaits `f`, failing with [`Error::Timeout`] after `op_timeout`.
    pub async fn op<T, E: Into<Error>>(
        &self,
        what: &'static str,
        f: impl Future<Output = Result<T, E>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.op_timeout, f).await {
            Ok(r) => r.map_err(Into::into),
            Err(_) => Err(Error::Timeout(what, self.op_timeout)),
        }
    }

    /// Connects, retrying until `progress + give_up_after`.
    pub async fn connect(&self, url: &str, progress: Instant) -> Result<Connection, Error> {
        loop {
            match self.op("connect", Connection::connect(url, ConnectionProperties::default())).await {
                Ok(conn) => return Ok(conn),
                Err(e) => self.pause_or_give_up(progress, e).await?,
            }
        }
    }

    /// After a failed session: waits a little, or gives up if nothing progressed for too long.
    pub async fn pause_or_give_up(&self, progress: Instant, failure: Error) -> Result<(), Error> {
        if progress.elapsed() >= self.give_up_after {
            return Err(Error::GaveUp(self.give_up_after, Box::new(failure)));
        }
        tokio::time::sleep(self.reconnect_pause).await;
        Ok(())
    }
}
