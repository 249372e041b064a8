//! The dispatcher: takes queued runs oldest first and executes them within the limits
//! (`[server] max_runs` in all, a job's `max_concurrent`), one run at a time per job instance
//! (they share the instance's caches) and per milestone for runs that publish (they write the
//! same staging prefixes). Planning (git) runs on the blocking pool, never on the API's threads.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use slipway_config::NativeAction;
use slipway_engine::{Prepared, RunEvent, RunOptions, Source, execute_run, plan_at};
use slipway_store::{RunOrigin, RunRow, RunStatus};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::{AppState, lock};

#[derive(Default)]
pub struct Dispatcher {
    wake: Notify,
    running: Mutex<HashMap<i64, Running>>,
    tasks: TaskTracker,
}

struct Running {
    job: String,
    locks: Vec<String>,
    cancel: CancellationToken,
}

/// What cancelling a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// It had not started: it is `cancelled` now.
    Queued,
    /// It was running: its builds are being stopped.
    Running,
    /// It had already ended.
    AlreadyFinished,
}

impl Dispatcher {
    /// Asks the dispatcher to look at the queue now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn running_count(&self) -> usize {
        lock(&self.running).len()
    }

    pub fn running_ids(&self) -> Vec<i64> {
        lock(&self.running).keys().copied().collect()
    }

    fn cancel_running(&self, run_id: i64) -> bool {
        match lock(&self.running).get(&run_id) {
            Some(r) => {
                r.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Stops every running run (they end `cancelled`).
    pub fn cancel_all(&self) {
        for r in lock(&self.running).values() {
            r.cancel.cancel();
        }
    }

    /// Waits until every run this dispatcher started has recorded its end.
    pub async fn drain(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Cancels run `run_id`: a queued run at once, a running one by stopping its builds.
pub async fn cancel(
    state: &AppState,
    run_id: i64,
    why: &str,
) -> Result<Cancelled, crate::error::ApiError> {
    state.cache.changed();
    if state.store.cancel_queued(run_id, why).await? {
        tracing::info!(run = run_id, "cancelled a queued run: {why}");
        return Ok(Cancelled::Queued);
    }
    if state.dispatcher.cancel_running(run_id) {
        tracing::info!(run = run_id, "cancelling a running run: {why}");
        return Ok(Cancelled::Running);
    }
    let run = state.store.run(run_id).await?;
    if run.status == RunStatus::Running {
        // Claimed by this server a moment ago, or owned by another process (a CLI run).
        return Err(crate::error::ApiError::Conflict(format!(
            "run {run_id} is not executed by this server; stop it where it runs"
        )));
    }
    Ok(Cancelled::AlreadyFinished)
}

/// The dispatcher's loop: looks at the queue when woken and every few seconds, until shutdown.
pub async fn run_loop(state: AppState) {
    loop {
        tokio::select! {
            _ = state.dispatcher.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = state.shutdown.cancelled() => return,
        }
        if let Err(e) = dispatch_once(&state).await {
            tracing::error!("dispatcher: {e}");
        }
    }
}

/// Starts every queued run the limits allow now.
pub async fn dispatch_once(state: &AppState) -> Result<(), slipway_store::StoreError> {
    let config = state.config();
    for run in state.store.queued_runs().await? {
        if state.shutdown.is_cancelled() {
            return Ok(());
        }
        // Presubmit runs of different changes use different caches: they may run side by side.
        let review_change = if run.flow == "presubmit" {
            state
                .store
                .review_run(run.run_id)
                .await?
                .map(|r| r.change_number)
        } else {
            None
        };
        {
            let running = lock(&state.dispatcher.running);
            if running.len() >= config.server.max_runs {
                return Ok(());
            }
            let limit = config.jobs.get(&run.job).and_then(|j| j.max_concurrent);
            if let Some(max) = limit {
                if running.values().filter(|r| r.job == run.job).count() >= max {
                    continue;
                }
            }
            let instance = instance_lock(&run, review_change);
            if running.values().any(|r| r.locks.contains(&instance)) {
                continue;
            }
        }
        if !state.store.claim_run(run.run_id).await? {
            continue;
        }
        state.cache.changed();
        // Registered at once, so a cancel during planning reaches it.
        let cancel = CancellationToken::new();
        lock(&state.dispatcher.running).insert(
            run.run_id,
            Running {
                job: run.job.clone(),
                locks: vec![instance_lock(&run, review_change)],
                cancel: cancel.clone(),
            },
        );
        match prepare(state, &run).await {
            Ok(prepared) => {
                let locks = locks_of(&run, review_change, &prepared);
                let taken = {
                    let mut running = lock(&state.dispatcher.running);
                    let busy = running.iter().any(|(id, r)| {
                        *id != run.run_id && r.locks.iter().any(|l| locks.contains(l))
                    });
                    if busy {
                        running.remove(&run.run_id);
                    } else if let Some(r) = running.get_mut(&run.run_id) {
                        r.locks = locks;
                    }
                    !busy
                };
                if !taken {
                    // Another run of the milestone publishes now: back to the queue.
                    state.store.unclaim_run(run.run_id).await?;
                    continue;
                }
                start(state, run, prepared, cancel, review_change);
            }
            Err(message) => {
                lock(&state.dispatcher.running).remove(&run.run_id);
                tracing::warn!(run = run.run_id, "cannot start: {message}");
                state
                    .store
                    .finish_run(run.run_id, RunStatus::Failure, Some(&message))
                    .await?;
                state.metrics.run_finished("failure");
            }
        }
    }
    Ok(())
}

fn instance_lock(run: &RunRow, review_change: Option<i64>) -> String {
    match review_change {
        Some(n) => format!("instance {} change {n}", run.instance),
        None => format!("instance {}", run.instance),
    }
}

/// What a run must hold alone: its instance, and the milestone's staging when it publishes.
fn locks_of(run: &RunRow, review_change: Option<i64>, prepared: &Prepared) -> Vec<String> {
    let mut locks = vec![instance_lock(run, review_change)];
    let publishes = prepared
        .plan
        .builds
        .iter()
        .any(|b| matches!(b.build.action, Some(NativeAction::Publish { .. })));
    if publishes {
        locks.push(format!("publish {}/{}", run.project, run.milestone));
    }
    locks
}

/// Plans a claimed run again at its commit with the config in force (the git work on the
/// blocking pool). The plan must still have the builds recorded when it was queued.
async fn prepare(state: &AppState, run: &RunRow) -> Result<Prepared, String> {
    let config = state.config();
    let data_dir = state.data_dir.clone();
    let (job, milestone) = (run.job.clone(), run.milestone);
    let Some(commit) = run.commit.clone() else {
        return Err("the run has no commit".into());
    };
    let prepared = tokio::task::spawn_blocking(move || {
        let source = Source::open(&config, &data_dir)?;
        plan_at(&config, &source, &job, milestone, &commit)
    })
    .await
    .map_err(|e| format!("planning task failed: {e}"))?
    .map_err(|e| e.to_string())?;
    let recorded: Vec<String> = state
        .store
        .builds(run.run_id)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|b| b.name)
        .collect();
    let planned: Vec<String> = prepared
        .plan
        .builds
        .iter()
        .map(|b| b.name.clone())
        .collect();
    if recorded != planned {
        return Err(format!(
            "job '{}' changed since the run was queued (builds now: {}); trigger it again",
            run.job,
            planned.join(", ")
        ));
    }
    Ok(prepared)
}

fn start(
    state: &AppState,
    run: RunRow,
    prepared: Prepared,
    cancel: CancellationToken,
    review_change: Option<i64>,
) {
    state
        .metrics
        .runs_started
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(run = run.run_id, instance = %run.instance, commit = %prepared.commit, "run starting");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<RunEvent>();
    let forward = {
        let state = state.clone();
        async move {
            while let Some(e) = rx.recv().await {
                state.cache.changed();
                if let slipway_engine::Event::BuildFinished { status, .. } = &e.event {
                    state.metrics.build_finished(status.as_str());
                }
                let _ = state.events.send(e);
            }
        }
    };
    state.dispatcher.tasks.spawn(forward);
    let state = state.clone();
    let config = state.config();
    let opts = RunOptions {
        jobs: config.server.build_jobs,
        keep_workspaces: false,
        cache_scope: review_change.map(|n| format!("change-{n}")),
    };
    state.dispatcher.tasks.clone().spawn(async move {
        let id = run.run_id;
        let outcome = execute_run(
            config,
            state.store.clone(),
            id,
            prepared,
            opts,
            cancel,
            Some(tx),
        )
        .await;
        match outcome {
            Ok(o) => {
                tracing::info!(run = id, status = %o.status, "run finished");
                state.metrics.run_finished(o.status.as_str());
                if let Some(c) = &o.candidate {
                    crate::policy::evaluate_later(&state, c.milestone);
                }
            }
            Err(e) => {
                tracing::error!(run = id, "run could not be recorded: {e}");
                let _ = state
                    .store
                    .finish_run(
                        id,
                        RunStatus::Failure,
                        Some(&format!("internal error: {e}")),
                    )
                    .await;
                state.metrics.run_finished("failure");
            }
        }
        lock(&state.dispatcher.running).remove(&id);
        state.cache.changed();
        state.dispatcher.wake();
        state.review.votes_wake.notify_one();
    });
}

/// Queues a retry of each service run a crash interrupted (once per run).
pub async fn queue_retries(state: &AppState) -> Result<Vec<i64>, slipway_store::StoreError> {
    let mut queued = Vec::new();
    for old in state.store.runs_to_retry().await? {
        let builds: Vec<(String, Vec<String>)> = state
            .store
            .builds(old.run_id)
            .await?
            .into_iter()
            .map(|b| (b.name, b.needs))
            .collect();
        let origin = RunOrigin {
            trigger: "retry".into(),
            requested_by: Some("slipway serve (restart)".into()),
            retry_of: Some(old.run_id),
        };
        let id = state
            .store
            .enqueue_run(&new_run_of(&old), &builds, &origin)
            .await?;
        // A presubmit's retry keeps its change and votes in its place.
        state.store.copy_review_run(old.run_id, id).await?;
        tracing::warn!(
            run = id,
            retry_of = old.run_id,
            "queued a retry of a run a stop interrupted"
        );
        queued.push(id);
    }
    Ok(queued)
}

fn new_run_of(run: &RunRow) -> slipway_store::NewRun<'_> {
    slipway_store::NewRun {
        instance: &run.instance,
        project: &run.project,
        job: &run.job,
        milestone: run.milestone,
        channel: &run.channel,
        branch: &run.branch,
        commit: run.commit.as_deref(),
        flow: &run.flow,
    }
}

/// Shared for tests and the API: whether the run is executing here.
pub fn is_running_here(state: &AppState, run_id: i64) -> bool {
    lock(&state.dispatcher.running).contains_key(&run_id)
}
