//! The release policy in the service: every milestone is evaluated on a timer (soak ends, a
//! notification to retry), after a run that made a candidate, and after a result arrives; one
//! evaluation at a time in this server (the promotion protocol guards against other processes).
//! An evaluation runs in its own task, so a client going away never cuts one short.

use std::time::Duration;

use slipway_release::Report;

use crate::state::AppState;

/// How often every milestone is evaluated without a new fact.
const EVERY: Duration = Duration::from_secs(30);

pub async fn run_loop(state: AppState) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = state.shutdown.cancelled() => return,
        }
        let config = state.config();
        if !config.release.auto && config.release.rollback_after == 0 {
            continue;
        }
        for row in &config.branches {
            if let Err(e) = evaluate(&state, row.milestone).await {
                tracing::warn!(milestone = row.milestone, "release policy: {e}");
            }
        }
    }
}

/// Evaluates the milestone's policy now and does what it decides.
pub async fn evaluate(state: &AppState, milestone: u32) -> Result<Report, String> {
    let task = {
        let state = state.clone();
        tokio::spawn(async move {
            let _one = state.policy_lock.lock().await;
            let config = state.config();
            slipway_release::evaluate_milestone(&config, &state.store, milestone).await
        })
    };
    let report = task
        .await
        .map_err(|e| format!("policy task: {e}"))?
        .map_err(|e| e.to_string())?;
    if report.promoted.is_some() || report.rolled_back.is_some() {
        state.cache.changed();
        let after = state.clone();
        tokio::spawn(async move { crate::audit::audit_milestone(&after, milestone).await });
    }
    Ok(report)
}

/// Evaluates in the background (after a run or a result); problems are logged.
pub fn evaluate_later(state: &AppState, milestone: u32) {
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = evaluate(&state, milestone).await {
            tracing::warn!(milestone, "release policy: {e}");
        }
    });
}
