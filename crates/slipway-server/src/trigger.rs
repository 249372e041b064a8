//! Continuous triggers: every poll reads the head of each active branch a continuous job runs
//! on, and queues the job instance's run once per new head (the store's `heads` table makes
//! that exactly once across restarts). A newer head cancels the instance's queued older runs.
//! Manual triggers queue a run for a given (or the branch's current) commit.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::Serialize;
use slipway_config::{Config, PlanError, Trigger};
use slipway_engine::{EngineError, Prepared, Source, enqueue, enqueue_head, plan_at};
use slipway_store::{RunFilter, RunOrigin};

use crate::error::ApiError;
use crate::state::{AppState, PollStatus, lock};

/// What one poll found and did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct PollReport {
    /// Runs queued for new heads.
    pub queued: Vec<i64>,
    /// Queued runs cancelled because a newer head arrived.
    pub superseded: Vec<i64>,
    pub errors: Vec<String>,
}

/// The poller's loop: polls at start, then every `poll_interval` or when asked, until shutdown.
pub async fn run_loop(state: AppState) {
    loop {
        let report = poll_once(&state).await;
        if !report.queued.is_empty() {
            state.dispatcher.wake();
        }
        let interval = state.config().server.poll_interval;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = state.poll_now.notified() => {}
            _ = state.shutdown.cancelled() => return,
        }
    }
}

/// Heads of the branches continuous jobs run on: `(job, milestone) -> commit` and the problems.
type Heads = (Vec<(String, u32, String)>, Vec<String>);

/// Polls once: new heads are queued, superseded queued runs cancelled.
pub async fn poll_once(state: &AppState) -> PollReport {
    let config = state.config();
    let data_dir = state.data_dir.clone();
    let mut report = PollReport::default();
    state.metrics.polls.fetch_add(1, Ordering::Relaxed);
    let heads = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || read_heads(&config, &data_dir)).await
    };
    let (source, (heads, errors)) = match heads {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            report.errors.push(e);
            finish(state, &report, BTreeMap::new());
            return report;
        }
        Err(e) => {
            report.errors.push(format!("poll task failed: {e}"));
            finish(state, &report, BTreeMap::new());
            return report;
        }
    };
    report.errors.extend(errors);
    let mut seen = BTreeMap::new();
    for (job, milestone, commit) in heads {
        seen.insert(format!("{job}/{milestone}"), commit.clone());
        match state.store.head_seen(&job, milestone, &commit).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                report.errors.push(e.to_string());
                continue;
            }
        }
        if let Err(e) = queue_head(
            state,
            &config,
            &source,
            &job,
            milestone,
            &commit,
            &mut report,
        )
        .await
        {
            report.errors.push(format!(
                "{job} on milestone {milestone} at {}: {e}",
                short(&commit)
            ));
        }
    }
    finish(state, &report, seen);
    report
}

fn finish(state: &AppState, report: &PollReport, heads: BTreeMap<String, String>) {
    if !report.errors.is_empty() {
        state
            .metrics
            .poll_errors
            .fetch_add(report.errors.len() as u64, Ordering::Relaxed);
        for e in &report.errors {
            tracing::warn!("poll: {e}");
        }
    }
    *lock(&state.polls) = PollStatus {
        last_poll: Some(slipway_store::now()),
        heads,
        errors: report.errors.clone(),
    };
}

fn read_heads(config: &Config, data_dir: &std::path::Path) -> Result<(Source, Heads), String> {
    let source = Source::open(config, data_dir).map_err(|e| e.to_string())?;
    let mut heads = Vec::new();
    let mut errors = Vec::new();
    for job in config.jobs.values() {
        if job.trigger != Trigger::Continuous {
            continue;
        }
        for row in config.rows_for(job) {
            if !row.active {
                continue;
            }
            match source.branch_head(&row.branch) {
                Ok(commit) => heads.push((job.name.clone(), row.milestone, commit)),
                Err(e) => errors.push(format!("{} on milestone {}: {e}", job.name, row.milestone)),
            }
        }
    }
    Ok((source, (heads, errors)))
}

async fn queue_head(
    state: &AppState,
    config: &std::sync::Arc<Config>,
    source: &Source,
    job: &str,
    milestone: u32,
    commit: &str,
    report: &mut PollReport,
) -> Result<(), String> {
    let prepared = plan_blocking(config, source, job, milestone, commit).await;
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            // Seen, so a head whose builds file does not plan is reported once, not every poll.
            let _ = state.store.mark_head_seen(job, milestone, commit).await;
            return Err(e);
        }
    };
    let origin = RunOrigin {
        trigger: "continuous".into(),
        requested_by: None,
        retry_of: None,
    };
    let Some(id) = enqueue_head(&state.store, &prepared, &origin)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    tracing::info!(run = id, job, milestone, commit = %short(commit), "queued a run for a new head");
    report.queued.push(id);
    state.cache.changed();
    if config.server.cancel_superseded {
        report
            .superseded
            .extend(cancel_older_queued(state, job, milestone, id).await);
    }
    Ok(())
}

/// Cancels the queued (not started) runs of the instance older than `newer`.
async fn cancel_older_queued(state: &AppState, job: &str, milestone: u32, newer: i64) -> Vec<i64> {
    let filter = RunFilter {
        job: Some(job.to_string()),
        milestone: Some(milestone),
        status: Some("queued".into()),
        before: Some(newer),
        limit: 1000,
    };
    let mut cancelled = Vec::new();
    let Ok(older) = state.store.find_runs(&filter).await else {
        return cancelled;
    };
    for run in older {
        let why = format!("superseded by run {newer} (a newer head)");
        if let Ok(true) = state.store.cancel_queued(run.run_id, &why).await {
            tracing::info!(run = run.run_id, newer, "cancelled a superseded queued run");
            cancelled.push(run.run_id);
        }
    }
    cancelled
}

async fn plan_blocking(
    config: &std::sync::Arc<Config>,
    source: &Source,
    job: &str,
    milestone: u32,
    commit: &str,
) -> Result<Prepared, String> {
    let (config, source) = (config.clone(), source.clone());
    let (job, commit) = (job.to_string(), commit.to_string());
    tokio::task::spawn_blocking(move || plan_at(&config, &source, &job, milestone, &commit))
        .await
        .map_err(|e| format!("planning task failed: {e}"))?
        .map_err(|e| e.to_string())
}

/// A manual trigger: queues `job` on `milestone` at `commit` (default: the branch's head).
pub async fn trigger_manual(
    state: &AppState,
    job: &str,
    milestone: u32,
    commit: Option<String>,
    by: &str,
) -> Result<i64, ApiError> {
    let config = state.config();
    let data_dir = state.data_dir.clone();
    let (j, c) = (job.to_string(), commit.clone());
    let cfg = config.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        slipway_engine::load_plan(&cfg, &data_dir, &j, milestone, c.as_deref())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("planning task failed: {e}")))?
    .map_err(|e| match e {
        // A job or milestone that does not exist is a missing resource, not a malformed request.
        EngineError::Plan(PlanError::UnknownJob(..) | PlanError::UnknownMilestone(..)) => {
            ApiError::NotFound(e.to_string())
        }
        other => ApiError::BadRequest(other.to_string()),
    })?;
    if prepared.plan.untrusted {
        return Err(ApiError::BadRequest(format!(
            "job '{job}' is untrusted (review-triggered); it runs on review votes, not by hand"
        )));
    }
    let origin = RunOrigin {
        trigger: "manual".into(),
        requested_by: Some(by.to_string()),
        retry_of: None,
    };
    let id = enqueue(&state.store, &prepared, &origin)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::info!(run = id, job, milestone, by, "queued a manual run");
    state.cache.changed();
    state.dispatcher.wake();
    Ok(id)
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
