//! Watches the free space on the data directory's disk and raises the resource alarm while it
//! is below the limit: publishing connections are then blocked until space comes back.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

/// How often free space is checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Starts the watcher; the receiver reads true while the alarm is on.
pub fn spawn(data_dir: PathBuf, limit: u64) -> watch::Receiver<bool> {
    let low_at_start = low_on_disk(&data_dir, limit);
    if low_at_start {
        tracing::warn!(limit, "free disk space is below the limit: publishers are blocked");
    }
    let (alarm, receiver) = watch::channel(low_at_start);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(CHECK_EVERY);
        while !alarm.is_closed() {
            ticker.tick().await;
            let low = low_on_disk(&data_dir, limit);
            if low != *alarm.borrow() {
                if low {
                    tracing::warn!(limit, "free disk space is below the limit: publishers are blocked");
                } else {
                    tracing::info!("free disk space is back above the limit: publishers may resume");
                }
                alarm.send_replace(low);
            }
        }
    });
    receiver
}

fn low_on_disk(data_dir: &PathBuf, limit: u64) -> bool {
    match fs4::available_space(data_dir) {
        Ok(free) => free < limit,
        Err(error) => {
            tracing::warn!(%error, dir = %data_dir.display(), "cannot read free disk space");
            false
        }
    }
}
