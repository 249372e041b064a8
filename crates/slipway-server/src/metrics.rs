//! Prometheus metrics (`GET /metrics`, text format 0.0.4): counters kept here, gauges read
//! from the store and the dispatcher when scraped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::state::{AppState, lock};

#[derive(Default)]
pub struct Metrics {
    pub polls: AtomicU64,
    pub poll_errors: AtomicU64,
    pub runs_started: AtomicU64,
    runs_finished: Mutex<BTreeMap<String, u64>>,
    builds_finished: Mutex<BTreeMap<String, u64>>,
    pub http_requests: AtomicU64,
}

impl Metrics {
    pub fn run_finished(&self, status: &str) {
        *lock(&self.runs_finished)
            .entry(status.to_string())
            .or_default() += 1;
    }

    pub fn build_finished(&self, status: &str) {
        *lock(&self.builds_finished)
            .entry(status.to_string())
            .or_default() += 1;
    }
}

/// The exposition text.
pub async fn render(state: &AppState) -> String {
    let m = &state.metrics;
    let mut out = String::new();
    let counter = |out: &mut String, name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter(
        &mut out,
        "slipway_polls_total",
        "Polls of the branch table.",
        m.polls.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "slipway_poll_errors_total",
        "Problems met while polling.",
        m.poll_errors.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "slipway_runs_started_total",
        "Runs the dispatcher started.",
        m.runs_started.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "slipway_http_requests_total",
        "HTTP requests served.",
        m.http_requests.load(Ordering::Relaxed),
    );
    for (name, help, map) in [
        (
            "slipway_runs_finished_total",
            "Runs this server finished, by status.",
            &m.runs_finished,
        ),
        (
            "slipway_builds_finished_total",
            "Builds this server finished, by status.",
            &m.builds_finished,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (status, n) in lock(map).iter() {
            let _ = writeln!(out, "{name}{{status=\"{status}\"}} {n}");
        }
    }
    let _ = writeln!(
        out,
        "# HELP slipway_runs Runs in the state, by status.\n# TYPE slipway_runs gauge"
    );
    match state.store.run_counts().await {
        Ok(counts) => {
            for (status, n) in counts {
                let _ = writeln!(out, "slipway_runs{{status=\"{status}\"}} {n}");
            }
        }
        Err(e) => tracing::warn!("metrics: cannot count runs: {e}"),
    }
    let _ = writeln!(
        out,
        "# HELP slipway_runs_executing Runs executing in this server.\n# TYPE slipway_runs_executing gauge\nslipway_runs_executing {}",
        state.dispatcher.running_count()
    );
    let _ = writeln!(
        out,
        "# HELP slipway_audit_drift Whether the latest audit of a milestone found drift (1) or not (0).\n# TYPE slipway_audit_drift gauge"
    );
    for (milestone, a) in lock(&state.audits).iter() {
        let _ = writeln!(
            out,
            "slipway_audit_drift{{milestone=\"{milestone}\"}} {}",
            u8::from(a.drift)
        );
    }
    out
}
