//! Definition commands: every change to a vhost's exchanges, queues and bindings is a
//! [`Command`] applied by [`VHost::apply`], one at a time. The AMQP session uses it today; the
//! management API, definitions import and replication will send the same commands.

use std::sync::Arc;
use std::time::Instant;

use warren_message::{FieldTable, ShortStr};

use super::VHost;
use crate::effects::Effects;
use crate::error::BrokerError;
use crate::exchange::Exchange;
use crate::queue::Queue;

/// What exchange.declare asks for.
#[derive(Debug, Clone, Default)]
pub struct ExchangeSpec {
    /// The exchange's name ("" is the default exchange, which cannot be declared).
    pub name: ShortStr,
    /// The exchange type.
    pub kind: ShortStr,
    /// Only check that it exists.
    pub passive: bool,
    /// Survives a restart.
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Clients cannot publish to it directly.
    pub internal: bool,
    /// Declare arguments (`alternate-exchange`, plugin settings).
    pub arguments: FieldTable,
}

/// What queue.declare asks for.
#[derive(Debug, Clone, Default)]
pub struct QueueSpec {
    /// The queue's name; "" asks the broker to generate one.
    pub name: ShortStr,
    /// Only check that it exists.
    pub passive: bool,
    /// Survives a restart.
    pub durable: bool,
    /// Belongs to the declaring connection and goes with it.
    pub exclusive: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Declare arguments (`x-message-ttl`, `x-max-length`, ...).
    pub arguments: FieldTable,
}

/// What a binding leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationKind {
    /// A queue.
    Queue,
    /// Another exchange (an exchange-to-exchange binding).
    Exchange,
}

/// A binding to add or remove.
#[derive(Debug, Clone)]
pub struct BindingSpec {
    /// The exchange messages come from.
    pub source: ShortStr,
    /// The queue or exchange they go to.
    pub destination: ShortStr,
    /// Whether `destination` names a queue or an exchange.
    pub destination_kind: DestinationKind,
    /// The binding key.
    pub key: ShortStr,
    /// Binding arguments (headers exchanges match on them).
    pub arguments: FieldTable,
}

/// A change to a vhost's definitions.
#[derive(Debug, Clone)]
pub enum Command {
    /// Declares an exchange (or checks one, passively).
    DeclareExchange(ExchangeSpec),
    /// Deletes an exchange; deleting one that does not exist succeeds, as in RabbitMQ 3.x.
    DeleteExchange {
        /// The exchange.
        name: ShortStr,
        /// Only if it has no bindings.
        if_unused: bool,
    },
    /// Declares a queue (or checks one, passively).
    DeclareQueue(QueueSpec),
    /// Deletes a queue; deleting one that does not exist succeeds with a count of 0.
    DeleteQueue {
        /// The queue.
        name: ShortStr,
        /// Only if it has no consumers.
        if_unused: bool,
        /// Only if it holds no messages.
        if_empty: bool,
    },
    /// Adds a binding.
    Bind(BindingSpec),
    /// Removes a binding; removing one that is not there succeeds, as in RabbitMQ.
    Unbind(BindingSpec),
}

/// Who applies a command: exclusive queues belong to the connection that declared them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    /// The connection's id; [`Actor::BROKER`] for the broker itself (no connection).
    pub connection: u64,
}

impl Actor {
    /// The broker itself: owns no exclusive queue, may not touch any.
    pub const BROKER: Actor = Actor { connection: 0 };

    /// A client connection.
    pub fn connection(id: u64) -> Actor {
        Actor { connection: id }
    }
}

/// What a command did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The exchange declared (or found).
    Exchange(Arc<Exchange>),
    /// The queue declared (or found).
    Queue(Arc<Queue>),
    /// A queue was deleted with this many messages.
    QueueDeleted {
        /// Ready messages it held.
        messages: u32,
    },
    /// Done; nothing to report.
    Done,
}

impl VHost {
    /// Applies a definition command for `actor`. Commands are applied one at a time; durable
    /// changes are written to the definitions store before this returns, outside the locks
    /// routing takes. Consumers cancelled by a delete are left in `effects`.
    pub fn apply(
        &self,
        command: Command,
        actor: Actor,
        now: Instant,
        effects: &mut Effects,
    ) -> Result<Outcome, BrokerError> {
        let _one_at_a_time = self.commands.lock();
        match command {
            Command::DeclareExchange(spec) => self.declare_exchange(spec, now).map(Outcome::Exchange),
            Command::DeleteExchange { name, if_unused } => {
                self.delete_exchange(&name, if_unused).map(|()| Outcome::Done)
            }
            Command::DeclareQueue(spec) => self.declare_queue(spec, actor, now).map(Outcome::Queue),
            Command::DeleteQueue { name, if_unused, if_empty } => {
                let messages = self.delete_queue(&name, if_unused, if_empty, actor, effects)?;
                Ok(Outcome::QueueDeleted { messages })
            }
            Command::Bind(spec) => self.bind(spec, actor).map(|()| Outcome::Done),
            Command::Unbind(spec) => self.unbind(spec).map(|()| Outcome::Done),
        }
    }

    /// Removes a queue the broker decided to delete (its exclusive owner left, its last
    /// consumer of an auto-delete queue went, it expired): only this very queue, not one
    /// declared since under the same name.
    pub fn remove_queue(&self, queue: &Arc<Queue>, effects: &mut Effects) {
        let _one_at_a_time = self.commands.lock();
        self.remove_queue_locked(queue, effects);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    use parking_lot::Mutex;
    use warren_store::{MemoryStore, QueueLog, Store, SyncWaker};

    use crate::time::Now;

    /// A store whose opening of durable logs waits until the test lets it go, as a directory
    /// fsync on a slow disk does.
    struct SlowStore {
        entered: Mutex<Option<mpsc::Sender<()>>>,
        release: Mutex<mpsc::Receiver<()>>,
    }

    impl Store for SlowStore {
        fn open_queue(&self, vhost: &str, queue: &str, durable: bool) -> std::io::Result<Box<dyn QueueLog>> {
            if durable {
                if let Some(entered) = self.entered.lock().take() {
                    entered.send(()).unwrap();
                }
                self.release.lock().recv_timeout(Duration::from_secs(10)).expect("released");
            }
            MemoryStore.open_queue(vhost, queue, durable)
        }
        fn sync_ticket(&self) -> u64 {
            0
        }
        fn synced(&self) -> u64 {
            0
        }
        fn on_synced(&self, _ticket: u64, waker: SyncWaker) {
            waker()
        }
    }

    #[test]
    fn a_durable_declare_waiting_on_the_store_does_not_stall_routing() {
        let (entered_tx, entered) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let store = SlowStore { entered: Mutex::new(Some(entered_tx)), release: Mutex::new(release_rx) };
        let vhost = Arc::new(VHost::new("/", Arc::new(store), None));
        let now = Now::new(Instant::now(), 0);
        let declare = move |v: &VHost, name: &str, durable: bool| {
            let spec = QueueSpec { name: name.into(), durable, ..Default::default() };
            v.apply(Command::DeclareQueue(spec), Actor::connection(1), now.instant, &mut Effects::default())
        };
        declare(&vhost, "busy", false).unwrap();
        let slow = {
            let vhost = vhost.clone();
            std::thread::spawn(move || declare(&vhost, "durable", true).map(|_| ()))
        };
        entered.recv_timeout(Duration::from_secs(10)).expect("the declare reached the store");
        // The declare now waits on the store: publishes to the vhost still go through.
        let message = crate::Message {
            exchange: "".into(),
            routing_key: "busy".into(),
            properties: Default::default(),
            body: Default::default(),
        };
        let mut routed = Vec::new();
        let (result, _) = vhost.publish(message, &[], now, &mut Effects::default(), &mut routed).unwrap();
        assert_eq!(result.queues, 1);
        assert_eq!(vhost.queue("busy").unwrap().stats().ready, 1);
        assert!(vhost.queue("durable").is_err(), "not there until stored");
        release.send(()).unwrap();
        slow.join().unwrap().unwrap();
        assert!(vhost.queue("durable").is_ok());
    }
}
