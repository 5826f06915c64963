//! Differential behaviour tests: each scenario (client code, lapin or the
//! raw-frame client) runs against a reference RabbitMQ 3.10 and against
//! Warren; the observable outcomes are recorded as transcripts, normalized
//! for the documented differences (`differences`), and compared.
//!
//! Entry point: `tests/differential.rs`. See `docs/differences.md`.

pub mod brokers;
pub mod ctl;
pub mod differences;
pub mod harness;
pub mod lapin_client;
pub mod mgmt;
pub mod raw;
pub mod scenarios;
pub mod wire;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use harness::{Outcome, Scenario, Target};

/// A short id shared by both brokers' runs of a scenario (names in the
/// transcripts are the same on both sides) and distinct between runs.
pub fn run_id() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:06x}", (nanos as u64 ^ u64::from(std::process::id()) << 20) & 0xff_ffff)
}

/// Time budget for a whole run (`DIFF_BUDGET_SECS`, default 240): once it
/// is spent, the remaining scenarios are not run and count as failed, so a
/// broker that times out everywhere cannot make the run take hours.
pub fn budget() -> Duration {
    let secs = std::env::var("DIFF_BUDGET_SECS").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(240);
    Duration::from_secs(secs)
}

/// Runs every scenario on RabbitMQ, then on Warren, one after the other,
/// and compares. `progress` is called after each scenario.
pub async fn run(
    rabbitmq: &Target,
    warren: &Target,
    scenarios: &[Scenario],
    mut progress: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    let run_id = run_id();
    let mut outcomes = Vec::new();
    let started = Instant::now();
    let budget = budget();
    for sc in scenarios {
        let t0 = Instant::now();
        if started.elapsed() > budget {
            let r = vec!["(not run)".to_string()];
            let w = vec![format!("NOT RUN: the run's time budget of {budget:?} is spent (DIFF_BUDGET_SECS)")];
            let diff = harness::compare(&r, &w);
            let o = Outcome { name: sc.name, rabbitmq: r, warren: w, diff, seconds: 0.0 };
            progress(&o);
            outcomes.push(o);
            continue;
        }
        let r = harness::run_scenario(rabbitmq, sc, &run_id).await;
        let w = harness::run_scenario(warren, sc, &run_id).await;
        let diff = harness::compare(&r, &w);
        let o = Outcome { name: sc.name, rabbitmq: r, warren: w, diff, seconds: t0.elapsed().as_secs_f64() };
        progress(&o);
        outcomes.push(o);
    }
    outcomes
}

/// The scenarios of `suite` selected by `DIFF_SCENARIOS` (comma-separated
/// substrings of names; all if unset).
pub fn selected(suite: Vec<Scenario>) -> Vec<Scenario> {
    let filter = std::env::var("DIFF_SCENARIOS").unwrap_or_default();
    let pats: Vec<&str> = filter.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    suite.into_iter().filter(|s| pats.is_empty() || pats.iter().any(|p| s.name.contains(p))).collect()
}
