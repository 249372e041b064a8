//! Reading changes and queueing presubmit runs. Every observation of a change (a poll, a
//! webhook, a restart's first poll) goes through [`observe_change`]: record the change, cancel
//! runs of patch sets it superseded (or of a change now closed), add the label histories it
//! shows, and queue one run per new crossing of a job's label on the current patch set.
//! Observations in this process are serialised; the store's conditional update makes a
//! crossing start one run even across processes.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use slipway_config::{Config, ReviewConfig};
use slipway_engine::{Prepared, Source, enqueue_review, plan_at};
use slipway_review::gerrit::{ChangeInfo, Gerrit};
use slipway_review::{VoteEvent, crossings, format_gerrit_time, parse_gerrit_time, vote_events};
use slipway_store::{NewRun, ReviewChange, ReviewRunKey, RunOrigin, RunStatus};
use tokio::sync::mpsc;

use super::{client, review_jobs};
use crate::state::{AppState, lock};

/// What one poll (or one webhook's change) did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ReviewPollReport {
    /// Changes read from the review server.
    pub changes: usize,
    /// Runs queued for new crossings.
    pub queued: Vec<i64>,
    /// Runs cancelled: a newer patch set, or the change was closed.
    pub cancelled: Vec<i64>,
    pub errors: Vec<String>,
}

pub async fn run_loop(state: AppState, mut requests: mpsc::UnboundedReceiver<i64>) {
    loop {
        if state.config().review.is_some() {
            let report = poll_once(&state).await;
            log_report(&state, &report);
        }
        let interval = state
            .config()
            .review
            .as_ref()
            .map(|r| r.poll_interval)
            .unwrap_or(Duration::from_secs(60));
        let next_poll = tokio::time::sleep(interval);
        tokio::pin!(next_poll);
        loop {
            tokio::select! {
                _ = &mut next_poll => break,
                _ = state.review.poll_now.notified() => break,
                Some(number) = requests.recv() => {
                    let report = look_at(&state, number).await;
                    log_report(&state, &report);
                }
                _ = state.shutdown.cancelled() => return,
            }
        }
    }
}

fn log_report(state: &AppState, report: &ReviewPollReport) {
    for e in &report.errors {
        tracing::warn!("review: {e}");
    }
    if !report.queued.is_empty() {
        state.dispatcher.wake();
    }
}

/// The cursor's key: one per review server and project.
fn cursor_key(review: &ReviewConfig) -> String {
    format!("{}#{}", review.url, review.project)
}

/// Reads the open changes updated since the cursor (less the overlap) and observes each.
pub async fn poll_once(state: &AppState) -> ReviewPollReport {
    let mut report = ReviewPollReport::default();
    let config = state.config();
    let Some(review) = config.review.clone() else {
        report.errors.push("[review] is not configured".into());
        return report;
    };
    let _one_at_a_time = state.review.intake.lock().await;
    let result = poll_changes(state, &config, &review, &mut report).await;
    if let Err(e) = result {
        report.errors.push(e);
    }
    let mut status = lock(&state.review.status);
    status.last_poll = Some(slipway_store::now());
    status.changes_seen = report.changes;
    status.runs_queued += report.queued.len() as u64;
    status.errors = report.errors.clone();
    report
}

async fn poll_changes(
    state: &AppState,
    config: &Arc<Config>,
    review: &ReviewConfig,
    report: &mut ReviewPollReport,
) -> Result<(), String> {
    let gerrit = client(config, review)?;
    let key = cursor_key(review);
    let cursor = state
        .store
        .review_cursor(&key)
        .await
        .map_err(|e| e.to_string())?;
    let after = cursor.as_deref().and_then(parse_gerrit_time).map(|t| {
        let overlap = review.overlap.as_nanos().min(i64::MAX as u128) as i64;
        format_gerrit_time(t.saturating_sub(overlap))
    });
    let mut changes = gerrit
        .open_changes(&review.project, after.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    // Oldest update first, so a patch set's runs are queued in the order reviewers voted.
    changes.sort_by_key(|c| parse_gerrit_time(&c.updated).unwrap_or(0));
    report.changes = changes.len();
    let mut newest = cursor.clone();
    let mut failed = false;
    let mut source = None;
    for change in &changes {
        match observe_change(state, config, &gerrit, change, &mut source, report).await {
            Ok(()) => {
                let later = match &newest {
                    Some(n) => parse_gerrit_time(&change.updated) > parse_gerrit_time(n),
                    None => true,
                };
                if later {
                    newest = Some(change.updated.clone());
                }
            }
            Err(e) => {
                failed = true;
                report.errors.push(format!("change {}: {e}", change.number));
            }
        }
    }
    // A change that could not be handled keeps the cursor where it was: the next poll reads
    // it again (observing a change twice never queues twice).
    if !failed && newest != cursor {
        if let Some(n) = newest {
            state
                .store
                .set_review_cursor(&key, &n)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Reads one change (a webhook named it) and observes it.
pub(super) async fn look_at(state: &AppState, number: i64) -> ReviewPollReport {
    let mut report = ReviewPollReport::default();
    let config = state.config();
    let Some(review) = config.review.clone() else {
        return report;
    };
    let _one_at_a_time = state.review.intake.lock().await;
    let gerrit = match client(&config, &review) {
        Ok(g) => g,
        Err(e) => {
            report.errors.push(e);
            return report;
        }
    };
    match gerrit.change(&review.project, number).await {
        Ok(Some(change)) => {
            report.changes = 1;
            let mut source = None;
            if let Err(e) =
                observe_change(state, &config, &gerrit, &change, &mut source, &mut report).await
            {
                report.errors.push(format!("change {number}: {e}"));
            }
        }
        Ok(None) => report.errors.push(format!(
            "change {number} is not visible on the review server"
        )),
        Err(e) => report.errors.push(e.to_string()),
    }
    lock(&state.review.status).runs_queued += report.queued.len() as u64;
    report
}

/// Everything one observation of a change does (see the module doc). `source` is the product
/// repository, opened the first time a run has to be planned.
pub async fn observe_change(
    state: &AppState,
    config: &Arc<Config>,
    gerrit: &Gerrit,
    change: &ChangeInfo,
    source: &mut Option<Source>,
    report: &mut ReviewPollReport,
) -> Result<(), String> {
    let Some(review) = &config.review else {
        return Ok(());
    };
    if change.project != review.project {
        return Ok(());
    }
    let Some((patchset, revision, git_ref)) = change.current() else {
        return Err("Gerrit sent no current revision (is o=CURRENT_REVISION honoured?)".into());
    };
    let store = &state.store;
    store
        .save_review_change(&ReviewChange {
            change_number: change.number,
            project: change.project.clone(),
            branch: change.branch.clone(),
            change_id: change
                .change_id
                .clone()
                .unwrap_or_else(|| change.id.clone()),
            subject: change.subject.clone(),
            owner: change.owner.display(),
            status: change.status.clone(),
            current_patchset: patchset,
            current_revision: revision.to_string(),
            url: gerrit.change_url(change.number),
            updated: change.updated.clone(),
        })
        .await
        .map_err(|e| e.to_string())?;
    state.cache.changed();

    // Runs of an older patch set (or of a change no longer open) test code nobody will merge.
    let newer = if change.is_open() { patchset } else { u32::MAX };
    for old in store
        .review_runs_superseded(change.number, newer)
        .await
        .map_err(|e| e.to_string())?
    {
        let why = if change.is_open() {
            format!(
                "superseded by patch set {patchset} of change {}",
                change.number
            )
        } else {
            format!(
                "change {} is {}",
                change.number,
                change.status.to_lowercase()
            )
        };
        if crate::dispatch::cancel(state, old.run_id, &why)
            .await
            .is_ok()
        {
            tracing::info!(run = old.run_id, "cancelled: {why}");
            report.cancelled.push(old.run_id);
        }
    }
    if !change.is_open() {
        return Ok(());
    }

    for (job, trigger) in review_jobs(config) {
        let Some(row) = config
            .rows_for(job)
            .into_iter()
            .find(|r| r.branch == change.branch)
        else {
            continue; // not a branch this job runs on
        };
        let known: Vec<VoteEvent> = store
            .review_votes(change.number, patchset, &trigger.label)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(at, account, value)| VoteEvent { at, account, value })
            .collect();
        let events = vote_events(change, &trigger.label, patchset, &known);
        if events.len() != known.len() {
            let rows: Vec<_> = events
                .iter()
                .map(|e| (e.at, e.account.clone(), e.value))
                .collect();
            store
                .add_review_votes(change.number, patchset, &trigger.label, &rows)
                .await
                .map_err(|e| e.to_string())?;
        }
        let crossed = crossings(&events, trigger.min);
        let fired = store
            .review_fired(change.number, patchset, &job.name)
            .await
            .map_err(|e| e.to_string())?;
        if crossed <= fired {
            continue;
        }
        let key = ReviewRunKey {
            change_number: change.number,
            patchset,
            revision,
            job: &job.name,
        };
        let origin = RunOrigin {
            trigger: "review".into(),
            requested_by: Some(format!(
                "{} +{} on change {},{patchset}",
                trigger.label, trigger.min, change.number
            )),
            retry_of: None,
        };
        let planned = prepare(
            state,
            config,
            source,
            &job.name,
            row.milestone,
            &git_ref,
            revision,
        )
        .await;
        let prepared = match planned {
            Ok(p) => p,
            Err(e) => {
                // The change (its builds file, its ref) cannot run: it still gets its verdict,
                // a failed run that says why, voted -1 like any failure; once per crossing like
                // every review run, and reported once, not at every poll.
                let why = format!("cannot start: {e}");
                let instance = format!("{}/{}/{}", config.project.name, row.milestone, job.name);
                let run = NewRun {
                    instance: &instance,
                    project: &config.project.name,
                    job: &job.name,
                    milestone: row.milestone,
                    channel: &row.channel,
                    branch: &row.branch,
                    commit: Some(revision),
                    flow: "presubmit",
                };
                if let Ok(Some(id)) = store
                    .enqueue_review_run(&run, &[], &origin, key, fired, crossed)
                    .await
                {
                    let _ = store.end_queued(id, RunStatus::Failure, &why).await;
                    state.cache.changed();
                    state.review.votes_wake.notify_one();
                }
                report.errors.push(format!(
                    "change {} patch set {patchset}, job {}: {why}",
                    change.number, job.name
                ));
                continue;
            }
        };
        match enqueue_review(store, &prepared, &origin, key, fired, crossed).await {
            Ok(Some(id)) => {
                tracing::info!(
                    run = id,
                    change = change.number,
                    patchset,
                    job = %job.name,
                    "queued a presubmit run"
                );
                report.queued.push(id);
                state.cache.changed();
            }
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// Fetches the patch set's ref (a mirror) and plans the job at its commit, on the blocking pool.
async fn prepare(
    state: &AppState,
    config: &Arc<Config>,
    source: &mut Option<Source>,
    job: &str,
    milestone: u32,
    git_ref: &str,
    revision: &str,
) -> Result<Prepared, String> {
    let opened = match source {
        Some(s) => s.clone(),
        None => {
            let (config, data_dir) = (config.clone(), state.data_dir.clone());
            let s = tokio::task::spawn_blocking(move || Source::open(&config, &data_dir))
                .await
                .map_err(|e| format!("opening the repository: {e}"))?
                .map_err(|e| e.to_string())?;
            *source = Some(s.clone());
            s
        }
    };
    let config = config.clone();
    let (job, git_ref, revision) = (job.to_string(), git_ref.to_string(), revision.to_string());
    tokio::task::spawn_blocking(move || {
        let commit = opened.change_commit(config.project.is_remote(), &git_ref, &revision)?;
        plan_at(&config, &opened, &job, milestone, &commit)
    })
    .await
    .map_err(|e| format!("planning task failed: {e}"))?
    .map_err(|e| e.to_string())
}
