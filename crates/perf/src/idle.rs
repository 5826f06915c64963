//! `--idle-connections N`: open N connections with one channel each and hold them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::client::Conn;
use crate::options::{AmqpUri, Options};
use crate::stats::round2;

pub struct IdleReport {
    pub requested: usize,
    pub opened: u64,
    pub failed: u64,
    pub open_seconds: f64,
    pub held_seconds: f64,
    pub first_error: Option<String>,
}

impl IdleReport {
    pub fn to_json(&self, uri: &AmqpUri) -> Value {
        json!({
            "uri": uri.to_string(),
            "mode": "idle-connections",
            "requested": self.requested,
            "opened": self.opened,
            "failed": self.failed,
            "open_s": round2(self.open_seconds),
            "connections_per_s": round2(if self.open_seconds > 0.0 { self.opened as f64 / self.open_seconds } else { 0.0 }),
            "held_s": round2(self.held_seconds),
            "error": self.first_error,
        })
    }

    pub fn print_text(&self, uri: &AmqpUri) {
        println!(
            "warren-perf idle connections: {uri}: {} of {} opened in {:.2} s ({} failed), held {:.1} s",
            self.opened, self.requested, self.open_seconds, self.failed, self.held_seconds
        );
        if let Some(e) = &self.first_error {
            println!("  first error: {e}");
        }
    }
}

pub async fn run(opts: &Options, uri: AmqpUri) -> Result<IdleReport> {
    let n = opts.idle_connections;
    let (stop_tx, stop_rx) = watch::channel(false);
    let sem = Arc::new(Semaphore::new(opts.connect_concurrency));
    let opened = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let uri = Arc::new(uri);
    let started = Instant::now();
    if opts.json {
        eprintln!("@measure start");
    }
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (sem, opened, failed, first_error, done_tx, uri) =
            (sem.clone(), opened.clone(), failed.clone(), first_error.clone(), done_tx.clone(), uri.clone());
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let conn = {
                let _permit = sem.acquire().await;
                let r = async {
                    let mut c = Conn::open(&uri, &format!("warren-perf idle {i}")).await?;
                    c.open_channel(1).await?;
                    c.shrink();
                    Ok::<_, anyhow::Error>(c)
                }
                .await;
                match r {
                    Ok(c) => {
                        opened.fetch_add(1, Ordering::Relaxed);
                        Some(c)
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        first_error.lock().get_or_insert_with(|| format!("{e:#}"));
                        None
                    }
                }
            };
            let _ = done_tx.send(());
            if conn.is_some() {
                let _ = stop.changed().await;
            }
            drop(conn);
        }));
    }
    drop(done_tx);
    let mut finished = 0;
    let mut last_print = Instant::now();
    while finished < n {
        tokio::select! {
            r = done_rx.recv() => {
                if r.is_none() { break; }
                finished += 1;
            }
            _ = tokio::signal::ctrl_c() => break,
        }
        if !opts.quiet && last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            let line = format!(
                "{:>7.1}s  opened {} of {n}",
                started.elapsed().as_secs_f64(),
                opened.load(Ordering::Relaxed)
            );
            if opts.json {
                eprintln!("{line}")
            } else {
                println!("{line}")
            }
        }
    }
    let open_seconds = started.elapsed().as_secs_f64();
    let line = format!(
        "all connections attempted: {} open, {} failed, in {open_seconds:.2} s",
        opened.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    if opts.json {
        eprintln!("{line}");
        eprintln!("@measure end");
    } else {
        println!("{line}");
    }
    let held = Instant::now();
    match opts.duration {
        Some(d) => {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs_f64(d)) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    let held_seconds = held.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let first_error = first_error.lock().clone();
    Ok(IdleReport {
        requested: n,
        opened: opened.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        open_seconds,
        held_seconds,
        first_error,
    })
}
