//! Runs a planned job instance: builds start as soon as their inputs succeeded, at most
//! `jobs` at a time; a failed build skips its dependents while independent branches go on;
//! cancellation ends every running process group and marks the run `cancelled`.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use slipway_config::{ArtifactSpec, Config, Flow, Plan, PlannedBuild};
use slipway_sandbox::{
    Access, Mount, PlainRunner, SandboxRunner, SandboxSettings, Spawned, StepEnd, StepRunner,
    StepSpec,
};
use slipway_store::{
    ArtifactRow, BuildStatus, Candidate, LogTotals, NewRun, ReviewRunKey, RunOrigin, RunStatus,
    StepStart, Store,
};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::artifacts;
use crate::error::{EngineError, io_err};
use crate::events::{Event, RunEvent};
use crate::logs::BuildLog;
use crate::native;
use crate::secrets;
use crate::source::{Prepared, short};
use crate::workspace::Workspace;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Builds running at once.
    pub jobs: usize,
    /// Keep each build's workspace after it ends (for debugging).
    pub keep_workspaces: bool,
    /// Whose build cache an untrusted run uses (a review change: `change-<n>`), so one
    /// change's code cannot poison the cache another change's run reads.
    pub cache_scope: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            keep_workspaces: false,
            cache_scope: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildOutcome {
    pub name: String,
    pub status: BuildStatus,
    pub error: Option<String>,
    pub artifacts: Vec<ArtifactRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    pub run_id: i64,
    pub instance: String,
    pub commit: String,
    pub status: RunStatus,
    pub error: Option<String>,
    pub builds: Vec<BuildOutcome>,
    /// The candidate this run's publishing made (successful continuous runs that published).
    pub candidate: Option<Candidate>,
}

pub(crate) struct Ctx {
    pub(crate) config: Arc<Config>,
    pub(crate) store: Arc<Store>,
    pub(crate) plan: Arc<Plan>,
    pub(crate) commit: String,
    pub(crate) commit_time: i64,
    pub(crate) run_id: i64,
    pub(crate) opts: RunOptions,
    pub(crate) cancel: CancellationToken,
    pub(crate) events: Option<UnboundedSender<RunEvent>>,
    /// The sandbox, or why there is none on this host (then only `sandbox = false` builds run).
    pub(crate) sandbox: Result<SandboxRunner, String>,
    pub(crate) plain: PlainRunner,
}

impl Ctx {
    fn emit(&self, event: Event) {
        if let Some(tx) = &self.events {
            let _ = tx.send(RunEvent {
                run_id: self.run_id,
                event,
            });
        }
    }
}

/// Records `prepared` as a run owned by this process and executes it (the one-shot CLI).
/// Returns once the run has a final status; `Err` only when the state itself cannot be written.
pub async fn execute(
    config: Arc<Config>,
    store: Arc<Store>,
    prepared: Prepared,
    opts: RunOptions,
    cancel: CancellationToken,
    events: Option<UnboundedSender<RunEvent>>,
) -> Result<RunOutcome, EngineError> {
    let run_id = store
        .create_run(&new_run(&prepared), &build_names(&prepared.plan))
        .await?;
    execute_run(config, store, run_id, prepared, opts, cancel, events).await
}

/// Records `prepared` as a `queued` run for a dispatcher to claim and execute later.
pub async fn enqueue(
    store: &Store,
    prepared: &Prepared,
    origin: &RunOrigin,
) -> Result<i64, EngineError> {
    Ok(store
        .enqueue_run(&new_run(prepared), &build_names(&prepared.plan), origin)
        .await?)
}

/// Queues the run of a continuous instance's new head, once per head however often it is
/// seen (restarts, racing pollers). `None`: that head already has its run.
pub async fn enqueue_head(
    store: &Store,
    prepared: &Prepared,
    origin: &RunOrigin,
) -> Result<Option<i64>, EngineError> {
    Ok(store
        .enqueue_for_head(
            &new_run(prepared),
            &build_names(&prepared.plan),
            origin,
            &prepared.commit,
        )
        .await?)
}

fn new_run(prepared: &Prepared) -> NewRun<'_> {
    let plan = &prepared.plan;
    NewRun {
        instance: &plan.instance,
        project: &plan.project,
        job: &plan.job,
        milestone: plan.milestone,
        channel: &plan.channel,
        branch: &plan.branch,
        commit: Some(&prepared.commit),
        flow: plan.flow.as_str(),
    }
}

fn build_names(plan: &Plan) -> Vec<(String, Vec<String>)> {
    plan.builds
        .iter()
        .map(|b| (b.name.clone(), b.needs.clone()))
        .collect()
}

/// Queues the run of a review crossing: `fired` goes from `before` to `now` in the same
/// transaction, so one crossing of a label starts one run however often it is observed.
/// `None`: another observation queued it.
pub async fn enqueue_review(
    store: &Store,
    prepared: &Prepared,
    origin: &RunOrigin,
    key: ReviewRunKey<'_>,
    before: u32,
    now: u32,
) -> Result<Option<i64>, EngineError> {
    Ok(store
        .enqueue_review_run(
            &new_run(prepared),
            &build_names(&prepared.plan),
            origin,
            key,
            before,
            now,
        )
        .await?)
}

/// Executes run `run_id` (already recorded and owned by this process) as `prepared` plans it,
/// recording everything in `store`. Returns once the run has a final status; `Err` only when
/// the state itself cannot be written.
pub async fn execute_run(
    config: Arc<Config>,
    store: Arc<Store>,
    run_id: i64,
    prepared: Prepared,
    opts: RunOptions,
    cancel: CancellationToken,
    events: Option<UnboundedSender<RunEvent>>,
) -> Result<RunOutcome, EngineError> {
    let plan = Arc::new(prepared.plan);
    let names = build_names(&plan);
    let ctx = Arc::new(Ctx {
        config: config.clone(),
        store: store.clone(),
        plan: plan.clone(),
        commit: prepared.commit.clone(),
        commit_time: prepared.commit_time,
        run_id,
        plain: PlainRunner,
        sandbox: sandbox_runner(&config, &store),
        opts,
        cancel,
        events,
    });
    ctx.emit(Event::RunStarted {
        run_id,
        builds: names.iter().map(|(n, _)| n.clone()).collect(),
    });
    tracing::info!(run = run_id, instance = %plan.instance, commit = %prepared.commit, "run started");

    let run_dir = store.run_dir(run_id);
    let src = run_dir.join("src");
    // A git export can take seconds; it must not hold a runtime thread the API also needs.
    let exported = {
        let (source, commit, src) = (
            prepared.source.clone(),
            prepared.commit.clone(),
            src.clone(),
        );
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&src)
                .map_err(io_err(&src))
                .and_then(|_| source.export(&commit, &src))
        })
        .await
        .unwrap_or_else(|e| Err(EngineError::Internal(format!("checkout task: {e}"))))
    };
    let (status, error) = match exported {
        Err(e) => (
            RunStatus::Failure,
            Some(format!("cannot check out {}: {e}", short(&prepared.commit))),
        ),
        Ok(()) => schedule(&ctx).await?,
    };
    let _ = std::fs::remove_dir_all(&src);
    // The step cgroups kept for reuse go with the run: an idle Slipway holds none.
    slipway_sandbox::cgroup::Cgroup::remove_idle();
    if !ctx.opts.keep_workspaces {
        let _ = std::fs::remove_dir_all(run_dir.join("builds"));
    }
    store.finish_run(run_id, status, error.as_deref()).await?;
    // What a successful continuous run published is a candidate for production.
    let candidate = if status == RunStatus::Success && plan.flow == Flow::Continuous {
        store.create_candidate(run_id).await?
    } else {
        None
    };
    if let Some(c) = &candidate {
        tracing::info!(run = run_id, candidate = c.id, digest = %c.digest, "candidate recorded");
    }
    tracing::info!(run = run_id, %status, "run finished");

    let mut artifacts = store.run_artifacts(run_id).await?;
    let builds = store
        .builds(run_id)
        .await?
        .into_iter()
        .map(|b| BuildOutcome {
            artifacts: artifacts.remove(&b.name).unwrap_or_default(),
            name: b.name,
            status: b.status,
            error: b.error,
        })
        .collect();
    Ok(RunOutcome {
        run_id,
        instance: plan.instance.clone(),
        commit: prepared.commit,
        status,
        error,
        builds,
        candidate,
    })
}

async fn schedule(ctx: &Arc<Ctx>) -> Result<(RunStatus, Option<String>), EngineError> {
    let builds = &ctx.plan.builds;
    let index: BTreeMap<&str, usize> = builds
        .iter()
        .enumerate()
        .map(|(i, b)| (b.name.as_str(), i))
        .collect();
    // Each build counts its unfinished needs and knows who needs it: a completion touches only
    // its dependents, so scheduling stays linear in the size of the DAG.
    let mut waiting: Vec<usize> = vec![0; builds.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); builds.len()];
    for (i, b) in builds.iter().enumerate() {
        for need in &b.needs {
            if let Some(&n) = index.get(need.as_str()) {
                waiting[i] += 1;
                dependents[n].push(i);
            }
        }
    }
    let mut state: Vec<BuildStatus> = vec![BuildStatus::Pending; builds.len()];
    // A build gets a task only when a slot is free: ready builds wait here as indices, not as
    // parked futures, so memory stays flat however wide the DAG is (and with it the cost of
    // every fork the runners make).
    let slots = ctx.opts.jobs.max(1);
    let mut ready: VecDeque<usize> = (0..builds.len()).filter(|&i| waiting[i] == 0).collect();
    let mut tasks: JoinSet<(usize, BuildStatus, Option<String>)> = JoinSet::new();
    let mut first_failure: Option<String> = None;
    loop {
        while tasks.len() < slots && !ctx.cancel.is_cancelled() {
            let Some(i) = ready.pop_front() else { break };
            state[i] = BuildStatus::Running;
            let ctx = ctx.clone();
            tasks.spawn(async move {
                let (status, error) = run_build(&ctx, &ctx.plan.builds[i]).await;
                (i, status, error)
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (i, status, error) = match joined {
            Ok(r) => r,
            Err(e) => {
                // A panicking build task is a bug; record it against the run rather than crash.
                return Ok((
                    RunStatus::Failure,
                    Some(format!("internal error in a build task: {e}")),
                ));
            }
        };
        state[i] = status;
        if status == BuildStatus::Failure && first_failure.is_none() {
            first_failure = Some(format!(
                "build '{}' failed: {}",
                builds[i].name,
                error.as_deref().unwrap_or("unknown error")
            ));
        }
        if status != BuildStatus::Success {
            skip_dependents(ctx, i, &index, &dependents, &mut state).await?;
            continue;
        }
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 && state[d] == BuildStatus::Pending {
                ready.push_back(d);
            }
        }
    }

    if ctx.cancel.is_cancelled() && state.iter().any(|s| *s != BuildStatus::Success) {
        return Ok((RunStatus::Cancelled, Some("cancelled".into())));
    }
    Ok(match first_failure {
        Some(e) => (RunStatus::Failure, Some(e)),
        None => (RunStatus::Success, None),
    })
}

/// Marks every build downstream of `failed` skipped, naming the needs that did not succeed.
async fn skip_dependents(
    ctx: &Ctx,
    failed: usize,
    index: &BTreeMap<&str, usize>,
    dependents: &[Vec<usize>],
    state: &mut [BuildStatus],
) -> Result<(), EngineError> {
    let builds = &ctx.plan.builds;
    let mut stack = vec![failed];
    while let Some(n) = stack.pop() {
        for &d in &dependents[n] {
            if state[d] != BuildStatus::Pending {
                continue;
            }
            let reason = format!(
                "skipped: needs {}",
                builds[d]
                    .needs
                    .iter()
                    .filter(|need| {
                        index.get(need.as_str()).is_some_and(|&k| {
                            state[k].is_finished() && state[k] != BuildStatus::Success
                        })
                    })
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            state[d] = BuildStatus::Skipped;
            ctx.store
                .set_build_status(
                    ctx.run_id,
                    &builds[d].name,
                    BuildStatus::Skipped,
                    Some(&reason),
                )
                .await?;
            ctx.emit(Event::BuildFinished {
                build: builds[d].name.clone(),
                status: BuildStatus::Skipped,
                error: Some(reason),
            });
            stack.push(d);
        }
    }
    Ok(())
}

/// Runs one build to its final status, recording it. Never panics on build input.
async fn run_build(ctx: &Ctx, build: &PlannedBuild) -> (BuildStatus, Option<String>) {
    if ctx.cancel.is_cancelled() {
        return (BuildStatus::Cancelled, Some("cancelled".into()));
    }
    let _ = ctx
        .store
        .set_build_status(ctx.run_id, &build.name, BuildStatus::Running, None)
        .await;
    ctx.emit(Event::BuildStarted {
        build: build.name.clone(),
    });

    let log_path = ctx.store.log_path(ctx.run_id, &build.name);
    let created = BuildLog::create_with_limit(&log_path, ctx.config.sandbox.log_limit);
    let (status, error, log) = match &created {
        Err(e) => (
            BuildStatus::Failure,
            Some(format!("cannot create the log: {e}")),
            None,
        ),
        Ok(log) => {
            let ws_root = ctx
                .store
                .run_dir(ctx.run_id)
                .join("builds")
                .join(&build.name);
            let result = build_in_workspace(ctx, build, log, ws_root).await;
            let (status, error) = match result {
                Ok(()) => (BuildStatus::Success, None),
                Err((status, msg)) => {
                    log.info(&format!("build {status}: {msg}"));
                    (status, Some(msg))
                }
            };
            let (lines, bytes, failed) = log.totals();
            let totals = LogTotals {
                path: log.path(),
                lines,
                bytes,
                dropped_bytes: log.truncated().then(|| log.dropped().1),
            };
            if failed && status == BuildStatus::Success {
                (
                    BuildStatus::Failure,
                    Some(format!("cannot write the log {}", log.path().display())),
                    Some(totals),
                )
            } else {
                (status, error, Some(totals))
            }
        }
    };
    // The log's totals, then the status: the store writes them in that order.
    let recorded = match &log {
        Some(totals) => {
            ctx.store
                .finish_build(ctx.run_id, &build.name, status, error.as_deref(), totals)
                .await
        }
        None => {
            ctx.store
                .set_build_status(ctx.run_id, &build.name, status, error.as_deref())
                .await
        }
    };
    if let Err(e) = recorded {
        tracing::error!(build = %build.name, "cannot record build status: {e}");
    }
    ctx.emit(Event::BuildFinished {
        build: build.name.clone(),
        status,
        error: error.clone(),
    });
    (status, error)
}

pub(crate) type BuildResult = Result<(), (BuildStatus, String)>;

pub(crate) fn fail(msg: impl Into<String>) -> (BuildStatus, String) {
    (BuildStatus::Failure, msg.into())
}

async fn build_in_workspace(
    ctx: &Ctx,
    build: &PlannedBuild,
    log: &BuildLog,
    ws_root: std::path::PathBuf,
) -> BuildResult {
    let plan = &ctx.plan;
    let b = &build.build;
    log.info(&format!(
        "build {} of {} (run {}) at {} on {}",
        build.name, plan.instance, ctx.run_id, ctx.commit, plan.branch
    ));
    // Defence in depth: the planner already removed these from untrusted jobs.
    if plan.untrusted && (b.privileged || !b.secrets.is_empty()) {
        return Err(fail(
            "refusing to run a privileged or secret-reading build in an untrusted run",
        ));
    }
    let src = ctx.store.run_dir(ctx.run_id).join("src");
    let ws = Workspace::create(ws_root, &src)
        .map_err(|e| fail(format!("cannot prepare the workspace: {e}")))?;
    let result = async {
        let n = ws
            .add_inputs(&ctx.store, ctx.run_id, &build.needs, b.action.is_some())
            .await
            .map_err(|e| fail(format!("cannot place inputs: {e}")))?;
        if !build.needs.is_empty() {
            log.info(&format!(
                "inputs: {n} files from {}",
                build.needs.join(", ")
            ));
        }
        let mut env = base_env(ctx, build, &ws);
        // Native builds read their secrets in-process; only step builds get the folder.
        let _secret_dir = if b.secrets.is_empty() || b.action.is_some() {
            None
        } else {
            let names: Vec<String> = b.secrets.iter().map(|(n, _)| n.clone()).collect();
            let dir = secrets::materialize(&ctx.config, &names, &ws.secrets, log).map_err(fail)?;
            env.insert("SLIPWAY_SECRETS".into(), ws.secrets.display().to_string());
            log.info(&format!("secrets available: {}", names.join(", ")));
            Some(dir)
        };
        let deadline = Instant::now() + b.timeout;
        match &b.action {
            Some(action) => native::run(ctx, &build.name, action, &ws, log).await?,
            None => {
                let steps = run_steps(ctx, build, &ws, &env, deadline, log).await;
                let reports = record_junit(ctx, build, &ws, log, steps.is_ok()).await;
                steps?;
                reports?;
            }
        }
        let cas = ctx.store.cas().clone();
        let mut specs = b.artifacts.clone();
        if let Some(output) = b.action.as_ref().and_then(native::output_dir) {
            specs.push(ArtifactSpec {
                glob: format!("{output}/**"),
                strip_prefix: None,
                loc: b.loc.clone(),
            });
        }
        let (work, allow_empty, from_steps) = (ws.work.clone(), b.allow_empty, b.action.is_none());
        // Nothing declared, nothing to walk: no hand-over to a blocking thread.
        let rows = if specs.is_empty() {
            Vec::new()
        } else {
            tokio::task::spawn_blocking(move || {
                artifacts::collect(&work, &specs, allow_empty, &cas, from_steps)
            })
            .await
            .map_err(|e| fail(format!("artifact collection stopped: {e}")))?
            .map_err(fail)?
        };
        for r in &rows {
            log.info(&format!("artifact {} {} {}", r.path, r.size, r.sha256));
        }
        if !rows.is_empty() {
            ctx.store
                .record_artifacts(ctx.run_id, &build.name, &rows)
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        Ok(())
    }
    .await;
    if !ctx.opts.keep_workspaces {
        ws.remove();
    }
    result
}

/// Reads the JUnit reports the build declares and records them as suite results of the run.
/// A declared report that is missing after successful steps, or that cannot be read, fails the
/// build; after failed steps a missing report is only noted.
async fn record_junit(
    ctx: &Ctx,
    build: &PlannedBuild,
    ws: &Workspace,
    log: &BuildLog,
    steps_ok: bool,
) -> BuildResult {
    for pattern in &build.build.junit {
        let matcher = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| fail(format!("junit glob '{pattern}': {e}")))?
            .compile_matcher();
        let files: Vec<std::path::PathBuf> = walkdir::WalkDir::new(&ws.work)
            .sort_by_file_name()
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_type().is_file()
                    && e.path()
                        .strip_prefix(&ws.work)
                        .is_ok_and(|r| matcher.is_match(r))
            })
            .map(|e| e.path().to_path_buf())
            .collect();
        if files.is_empty() {
            if steps_ok {
                return Err(fail(format!("junit report '{pattern}' was not written")));
            }
            log.info(&format!("no junit report matches '{pattern}'"));
        }
        for file in files {
            crate::junit::record_report(ctx, &build.name, &ws.work, &file, log).await?;
        }
    }
    Ok(())
}

/// A folder that persists between runs for one build of one project (e.g. a debootstrap base).
/// Untrusted runs get their own, so presubmit code cannot poison what trusted runs reuse.
/// Takes the cache folder's lock (waiting for a build of another run that holds it).
async fn lock_cache(
    cache: &std::path::Path,
    log: &BuildLog,
) -> Result<slipway_publish::FolderLock, (BuildStatus, String)> {
    let dir = cache.to_path_buf();
    if let Ok(Some(lock)) = slipway_publish::FolderLock::try_take(&dir) {
        return Ok(lock);
    }
    log.info("waiting for this build's cache: another run's build is using it");
    tokio::task::spawn_blocking(move || slipway_publish::FolderLock::take(&dir))
        .await
        .map_err(|e| fail(format!("cache lock task: {e}")))?
        .map_err(|e| fail(format!("cannot lock the build cache: {e}")))
}

fn build_cache(ctx: &Ctx, build: &PlannedBuild) -> String {
    let base = ctx
        .store
        .data_dir()
        .join("cache/builds")
        .join(&ctx.plan.project);
    let dir = if ctx.plan.untrusted {
        let scope = ctx.opts.cache_scope.as_deref().unwrap_or("local");
        base.join("untrusted").join(scope).join(&build.name)
    } else {
        base.join("trusted").join(&build.name)
    };
    let _ = std::fs::create_dir_all(&dir);
    dir.display().to_string()
}

/// The sandbox for this run: the service's `[sandbox]` settings, with the config folder, the
/// data dir and every secret file hidden even where they lie under a folder the sandbox shows.
fn sandbox_runner(config: &Config, store: &Store) -> Result<SandboxRunner, String> {
    tracing::info!(
        cgroups = %slipway_sandbox::cgroup::layout().describe(),
        "step cgroups"
    );
    let mut hide = vec![config.base_dir.clone(), store.data_dir().to_path_buf()];
    for secret in config.secrets.values() {
        if let slipway_config::SecretSource::File(path) = &secret.source {
            hide.push(config.base_dir.join(path));
        }
    }
    let hide = hide
        .into_iter()
        .map(|p| p.canonicalize().unwrap_or(p))
        .collect();
    SandboxRunner::new(SandboxSettings {
        id_base: config.sandbox.id_base,
        read_only: config.sandbox.read_only.clone(),
        hide,
        ..SandboxSettings::default()
    })
    .map_err(|e| e.to_string())
}

fn base_env(ctx: &Ctx, build: &PlannedBuild, ws: &Workspace) -> BTreeMap<String, String> {
    let plan = &ctx.plan;
    let mut env = BTreeMap::new();
    // Only harmless host variables pass: credentials in the service's environment stay there.
    for key in ["PATH", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(key) {
            env.insert(key.to_string(), v);
        }
    }
    env.entry("PATH".into())
        .or_insert_with(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    env.insert("HOME".into(), ws.home.display().to_string());
    env.insert("TMPDIR".into(), ws.tmp.display().to_string());
    env.insert("SOURCE_DATE_EPOCH".into(), ctx.commit_time.to_string());
    for (k, v) in &build.build.env {
        env.insert(k.clone(), v.clone());
    }
    let vars = [
        ("SLIPWAY_PROJECT", plan.project.clone()),
        ("SLIPWAY_JOB", plan.job.clone()),
        ("SLIPWAY_INSTANCE", plan.instance.clone()),
        ("SLIPWAY_MILESTONE", plan.milestone.to_string()),
        ("SLIPWAY_BRANCH", plan.branch.clone()),
        ("SLIPWAY_CHANNEL", plan.channel.clone()),
        ("SLIPWAY_COMMIT", ctx.commit.clone()),
        ("SLIPWAY_FLOW", plan.flow.as_str().to_string()),
        ("SLIPWAY_RUN_ID", ctx.run_id.to_string()),
        ("SLIPWAY_BUILD", build.name.clone()),
        ("SLIPWAY_INPUTS", ws.inputs.display().to_string()),
        ("SLIPWAY_WORKSPACE", ws.work.display().to_string()),
        ("SLIPWAY_CACHE", build_cache(ctx, build)),
    ];
    for (k, v) in vars {
        env.insert(k.into(), v);
    }
    env
}

async fn run_steps(
    ctx: &Ctx,
    build: &PlannedBuild,
    ws: &Workspace,
    env: &BTreeMap<String, String>,
    deadline: Instant,
    log: &BuildLog,
) -> BuildResult {
    let steps = &build.build.steps;
    let runner: &dyn StepRunner = if build.build.sandbox {
        match &ctx.sandbox {
            Ok(r) => r,
            Err(why) => return Err(fail(format!("cannot sandbox the build: {why}"))),
        }
    } else if ctx.plan.untrusted {
        // Validation refuses this; the executor refuses it again.
        return Err(fail(
            "refusing to run an untrusted build outside the sandbox",
        ));
    } else {
        &ctx.plain
    };
    let defaults = &ctx.config.sandbox.defaults;
    let mut resources = build.build.resources.over(defaults);
    if ctx.plan.untrusted {
        // The builds file of an untrusted run is the change's own: it may lower its limits,
        // never raise them past the service's.
        resources = resources.capped_by(defaults);
    }
    // The folder base_env made for $SLIPWAY_CACHE.
    let cache = env.get("SLIPWAY_CACHE").map(PathBuf::from);
    let mount = |path: &std::path::Path, access| Mount {
        path: path.to_path_buf(),
        access,
    };
    let mut mounts = vec![
        mount(&ws.work, Access::ReadWrite),
        mount(&ws.home, Access::ReadWrite),
        mount(&ws.tmp, Access::ReadWrite),
        mount(&ws.inputs, Access::ReadOnly),
    ];
    // Runs of several milestones share a build's cache: one build writes it at a time.
    let mut _cache_lock = None;
    if let Some(cache) = cache.filter(|c| c.is_dir()) {
        _cache_lock = Some(lock_cache(&cache, log).await?);
        mounts.push(mount(&cache, Access::ReadWrite));
    }
    if env.contains_key("SLIPWAY_SECRETS") {
        mounts.push(mount(&ws.secrets, Access::Private));
    }
    log.info(&match runner.kind() {
        "sandbox" => format!(
            "runner: sandbox (network: {}, {})",
            if build.build.network { "host" } else { "none" },
            resources.describe()
        ),
        kind => format!("runner: {kind} ({})", resources.describe()),
    });
    for (idx, command) in steps.iter().enumerate() {
        let n = idx + 1;
        ctx.emit(Event::StepStarted {
            build: build.name.clone(),
            idx: n,
            total: steps.len(),
            command: command.clone(),
        });
        log.info(&format!("step {n}/{}: {command}", steps.len()));
        let started = std::time::Instant::now();
        let started_at = slipway_store::now();
        // The step's row is written once, with its process group and cgroup, while the step
        // runs: the runner reports the spawn, and the write goes on beside the step in this
        // task, finished before the step's end is recorded.
        let (spawned_tx, spawned_rx) = tokio::sync::oneshot::channel::<Spawned>();
        let spawned_tx = std::sync::Mutex::new(Some(spawned_tx));
        let take_tx = || spawned_tx.lock().ok().and_then(|mut tx| tx.take());
        let record = |spawned: &Spawned| {
            if let Some(tx) = take_tx() {
                let _ = tx.send(spawned.clone());
            }
        };
        let spec = StepSpec {
            command,
            cwd: &ws.work,
            env,
            mounts: &mounts,
            network: build.build.network,
            resources: &resources,
            deadline,
            untrusted: ctx.plan.untrusted,
            on_spawn: &record,
        };
        let step = async {
            let report = runner.run(spec, log, &ctx.cancel).await;
            // Not spawned: the row is written without a process.
            drop(take_tx());
            report
        };
        let recording = async {
            let spawned = spawned_rx.await.ok();
            let start = StepStart {
                idx: n,
                command,
                started_at: &started_at,
                pgid: spawned.as_ref().map(|s| s.pid),
                cgroup: spawned.as_ref().and_then(|s| s.cgroup.as_deref()),
            };
            if let Err(e) = ctx
                .store
                .step_started(ctx.run_id, &build.name, &start)
                .await
            {
                tracing::warn!(build = %build.name, "cannot record the step's start: {e}");
            }
        };
        let (report, ()) = tokio::join!(step, recording);
        let end = &report.end;
        let limits = if report.limits.is_empty() {
            String::new()
        } else {
            format!(" ({})", report.limits.join("; "))
        };
        let took = started.elapsed().as_secs_f64();
        let (step_status, code, outcome) = match &end {
            StepEnd::Exited(0) => ("success", Some(0), Ok(())),
            StepEnd::Exited(c) => (
                "failure",
                Some(*c),
                Err(fail(format!(
                    "step {n} (`{command}`) exited with status {c}{limits}"
                ))),
            ),
            StepEnd::Signaled(s) => (
                "failure",
                None,
                Err(fail(format!(
                    "step {n} (`{command}`) was killed by signal {s}{limits}"
                ))),
            ),
            StepEnd::TimedOut => (
                "timeout",
                None,
                Err(fail(format!(
                    "timed out after {}s in step {n} (`{command}`); its processes were killed{limits}",
                    build.build.timeout.as_secs()
                ))),
            ),
            StepEnd::Cancelled => (
                "cancelled",
                None,
                Err((BuildStatus::Cancelled, "cancelled".to_string())),
            ),
            StepEnd::SpawnFailed(e) => (
                "failure",
                None,
                Err(fail(format!("cannot start step {n}: {e}"))),
            ),
        };
        log.info(&format!("step {n} ended: {step_status} ({took:.2}s)"));
        let _ = ctx
            .store
            .step_finished(ctx.run_id, &build.name, n, step_status, code)
            .await;
        outcome?;
    }
    Ok(())
}

impl slipway_sandbox::LineSink for BuildLog {
    fn line(&self, stream: &'static str, text: &str) {
        BuildLog::line(self, stream, text);
    }
    fn info(&self, text: &str) {
        BuildLog::info(self, text);
    }
}
