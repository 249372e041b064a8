//! The server audits every milestone of the branch table on a timer (and one milestone after
//! each promotion or rollback): what its buckets serve against the records. Drift shows as a
//! red banner on the dashboard and as the `slipway_audit_drift` metric.

use crate::state::{AppState, AuditSnapshot, lock};

pub async fn run_loop(state: AppState) {
    loop {
        let milestones: Vec<u32> = state
            .config()
            .branches
            .iter()
            .map(|b| b.milestone)
            .collect();
        for m in milestones {
            if state.shutdown.is_cancelled() {
                return;
            }
            audit_milestone(&state, m).await;
        }
        let every = state.config().server.audit_interval;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = state.shutdown.cancelled() => return,
        }
    }
}

/// Audits one milestone and keeps the result for the API, dashboard and metrics.
pub async fn audit_milestone(state: &AppState, milestone: u32) {
    let config = state.config();
    let snapshot = match slipway_engine::audit::audit(&config, &state.store, milestone).await {
        Ok(report) => {
            if report.drift {
                tracing::warn!(milestone, "audit found drift");
            }
            AuditSnapshot {
                milestone,
                checked_at: slipway_store::now(),
                drift: report.drift,
                lines: report.finding_lines(),
                error: None,
            }
        }
        Err(e) => {
            tracing::warn!(milestone, "audit failed: {e}");
            AuditSnapshot {
                milestone,
                checked_at: slipway_store::now(),
                drift: false,
                lines: Vec::new(),
                error: Some(e.to_string()),
            }
        }
    };
    lock(&state.audits).insert(milestone, snapshot);
}
