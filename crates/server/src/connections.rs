//! The broker's client connections as a whole: how many are open (against max_connections), and
//! the signal that tells each of them the broker is shutting down.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Notify};

pub struct Connections {
    /// Accepted sockets whose task has not ended, in their handshake or not.
    open: AtomicUsize,
    max: Option<usize>,
    /// Turns true once, when the broker starts shutting down.
    shutdown: watch::Sender<bool>,
    /// Woken when the last connection goes.
    none_left: Notify,
}

/// One accepted connection, counted until this is dropped (when its task ends).
pub struct Registered {
    connections: Arc<Connections>,
}

impl Connections {
    pub fn new(max: Option<usize>) -> Arc<Connections> {
        Arc::new(Connections {
            open: AtomicUsize::new(0),
            max,
            shutdown: watch::Sender::new(false),
            none_left: Notify::new(),
        })
    }

    /// Counts an accepted socket.
    pub fn register(self: &Arc<Self>) -> Registered {
        self.open.fetch_add(1, Ordering::AcqRel);
        Registered { connections: self.clone() }
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// The limit, when more connections than it are open (the asking one included, as RabbitMQ
    /// counts its listener's sockets).
    pub fn over_limit(&self) -> Option<usize> {
        self.max.filter(|&max| self.open() > max)
    }

    /// A receiver that reads true once the broker is shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tells every connection, present and future, that the broker is shutting down.
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// Returns once no connection is left.
    pub async fn all_closed(&self) {
        loop {
            // Created before the check, so a wake-up between the two is not lost.
            let woken = self.none_left.notified();
            if self.open() == 0 {
                return;
            }
            woken.await;
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if self.connections.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.connections.none_left.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_connections_until_they_are_dropped() {
        let connections = Connections::new(Some(1));
        connections.all_closed().await;
        let a = connections.register();
        let b = connections.register();
        assert_eq!(connections.open(), 2);
        assert_eq!(connections.over_limit(), Some(1));
        drop(a);
        assert_eq!(connections.open(), 1);
        assert_eq!(connections.over_limit(), None);
        assert_eq!(Connections::new(None).register().connections.over_limit(), None);
        let waiter = tokio::spawn({
            let connections = connections.clone();
            async move { connections.all_closed().await }
        });
        drop(b);
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter).await.unwrap().unwrap();
        assert_eq!(connections.open(), 0);
    }

    #[tokio::test]
    async fn the_shutdown_signal_reaches_receivers_made_before_and_after() {
        let connections = Connections::new(None);
        let mut before = connections.shutdown_signal();
        assert!(!*before.borrow());
        connections.shut_down();
        assert!(*before.wait_for(|stop| *stop).await.unwrap());
        let mut after = connections.shutdown_signal();
        assert!(*after.wait_for(|stop| *stop).await.unwrap());
    }
}
