//! Opens the data directory: the message store (which locks the directory against a second
//! broker) and the definitions, drops the logs of queues that no longer exist, and rebuilds the
//! broker from what is stored.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use warren_broker::Broker;
use warren_store::definitions::Definitions;
use warren_store::{DiskConfig, DiskStore, Store, SyncMode};

use crate::config::{Config, SyncSetting};

pub const DEFINITIONS_FILE: &str = "definitions.redb";

/// The broker opened on the data directory, with what the resource alarms watch in the store
/// and the store's corruption counters (for metrics).
pub struct Opened {
    pub broker: Arc<Broker>,
    pub watched: crate::alarms::Store,
    pub corruption: Arc<warren_store::CorruptionCounters>,
}

/// Opens the broker on the data directory.
pub fn open_broker(config: &Config) -> anyhow::Result<Opened> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let started = Instant::now();
    let disk_config = DiskConfig {
        segment_size: config.segment_size,
        memory_window_bytes: usize::try_from(config.queue_memory).unwrap_or(usize::MAX),
        sync: match config.sync {
            SyncSetting::Always => SyncMode::Always,
            SyncSetting::Never => SyncMode::Never,
        },
        ..DiskConfig::default()
    };
    let disk = DiskStore::open(&config.data_dir, disk_config)
        .with_context(|| format!("opening the message store in {}", config.data_dir.display()))?;
    let definitions = Arc::new(
        Definitions::open(&config.data_dir.join(DEFINITIONS_FILE)).context("opening the definitions")?,
    );
    let stored = definitions.load().context("reading the definitions")?;
    let mut known: HashSet<(String, String)> =
        stored.queues.iter().map(|q| (q.vhost.clone(), q.name.clone())).collect();
    // A priority queue keeps each priority above 0 in a log of its own.
    for q in &stored.queues {
        let levels = warren_broker::priority_level_log_names(&q.name, &q.arguments);
        known.extend(levels.map(|log| (q.vhost.clone(), log)));
    }
    // Durable delayed-message exchanges keep their held messages in a log of their own.
    known.extend(
        stored
            .exchanges
            .iter()
            .filter(|x| x.kind == "x-delayed-message")
            .map(|x| (x.vhost.clone(), warren_broker::delayed_log_name(&x.name))),
    );
    // Durable exchanges and queues that deduplicate keep their window of keys in a log too
    // (keeping a name that has no log costs nothing).
    known.extend(
        stored.exchanges.iter().map(|x| (x.vhost.clone(), warren_broker::dedup_log_name(true, &x.name))),
    );
    known.extend(
        stored.queues.iter().map(|q| (q.vhost.clone(), warren_broker::dedup_log_name(false, &q.name))),
    );
    for (vhost, queue) in disk.durable_queue_dirs() {
        if !known.contains(&(vhost.clone(), queue.clone())) {
            tracing::warn!(%vhost, %queue, "removing the log of a queue that no longer exists");
            if let Err(error) = disk.remove_queue_dir(&vhost, &queue) {
                tracing::error!(%vhost, %queue, %error, "could not remove an orphaned queue log");
            }
        }
    }
    let watched = crate::alarms::Store { health: disk.health().clone(), space: disk.space().clone() };
    let corruption = disk.corruption_counters();
    let store: Arc<dyn Store> = Arc::new(disk);
    // As RabbitMQ: with definitions to load, a first start seeds no default user or vhost.
    let first_start = config.load_definitions.is_none().then_some(&config.first_start);
    let broker = Broker::open(store, definitions, first_start, crate::connection::now())
        .context("restoring the broker's definitions")?;
    let (queues, messages) = broker
        .vhosts()
        .iter()
        .flat_map(|v| v.queues())
        .fold((0usize, 0u64), |(n, m), q| (n + 1, m + q.stats().ready));
    tracing::info!(
        queues,
        messages,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovered the data directory"
    );
    Ok(Opened { broker: Arc::new(broker), watched, corruption })
}

/// How long a clean stop waits for the final fsync.
const FINAL_SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Hands every queue's buffered writes to the OS and waits until the store has fsynced all that
/// was written: a clean stop loses nothing, confirmed or not.
pub async fn flush_and_sync(broker: &Broker) {
    for vhost in broker.vhosts() {
        for queue in vhost.queues() {
            if let Err(error) = queue.flush() {
                tracing::error!(vhost = %vhost.name, queue = %queue.name, %error, "could not write a queue's log at shutdown");
            }
        }
    }
    let store = broker.store();
    let ticket = store.sync_ticket();
    let (synced, wait) = tokio::sync::oneshot::channel();
    store.on_synced(
        ticket,
        Box::new(move || {
            let _ = synced.send(());
        }),
    );
    if tokio::time::timeout(FINAL_SYNC_WAIT, wait).await.is_err() {
        tracing::error!("the data written before shutdown could not be made durable in time");
    }
}
