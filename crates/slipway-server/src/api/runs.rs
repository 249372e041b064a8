//! Runs: list, trigger, show, cancel; branches with their latest runs; artifacts by sha256.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use slipway_config::Role;
use slipway_store::{ArtifactRow, BuildRow, RunFilter, RunRow};

use super::{ApiPath, ApiQuery};
use crate::auth::MaybeCaller;
use crate::dispatch::{self, Cancelled};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::trigger;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RunsQuery {
    /// Only runs of this job.
    pub job: Option<String>,
    /// Only runs of this milestone.
    pub milestone: Option<u32>,
    /// Only runs in this status (queued, running, success, failure, cancelled, interrupted).
    pub status: Option<String>,
    /// Only runs older than this run id (paging).
    pub before: Option<i64>,
    /// At most this many runs (default 50, at most 1000).
    pub limit: Option<i64>,
}

/// Runs, newest first.
#[utoipa::path(get, path = "/api/v1/runs", params(RunsQuery),
    responses((status = 200, body = [RunRow]), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<Json<Vec<RunRow>>, ApiError> {
    caller.may_read(state.config().server.public_reads)?;
    if let Some(s) = &q.status {
        s.parse::<slipway_store::RunStatus>()
            .map_err(ApiError::BadRequest)?;
    }
    let filter = RunFilter {
        job: q.job,
        milestone: q.milestone,
        status: q.status,
        before: q.before,
        limit: q.limit.unwrap_or(50),
    };
    Ok(Json(state.store.find_runs(&filter).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    pub milestone: u32,
    /// A commit, tag or branch; default: the head of the milestone's branch.
    pub commit: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Queued {
    pub run_id: i64,
    pub status: String,
    /// The run's page.
    pub url: String,
}

/// Queues a run of `job` on a milestone (role `trigger`).
#[utoipa::path(post, path = "/api/v1/jobs/{job}/runs", request_body = TriggerRequest,
    params(("job" = String, Path, description = "job name")),
    responses((status = 201, body = Queued), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(job): ApiPath<String>,
    body: Result<Json<TriggerRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let caller = caller.require(Role::Trigger)?;
    let Json(req) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let id = trigger::trigger_manual(&state, &job, req.milestone, req.commit, &caller.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(Queued {
            run_id: id,
            status: "queued".into(),
            url: format!("{}/runs/{id}", state.base_url()),
        }),
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BuildDetail {
    #[serde(flatten)]
    pub build: BuildRow,
    pub artifacts: Vec<ArtifactRow>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunDetail {
    pub run: RunRow,
    /// In plan order; `needs` make the DAG.
    pub builds: Vec<BuildDetail>,
    /// Whether this server is executing the run now.
    pub executing: bool,
    /// The review change and patch set of a presubmit run, and its vote.
    pub review: Option<RunReview>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunReview {
    pub change: Option<slipway_store::ReviewChange>,
    pub run: slipway_store::ReviewRun,
}

pub async fn run_detail(state: &AppState, id: i64) -> Result<RunDetail, ApiError> {
    let run = state.store.run(id).await?;
    let mut builds = Vec::new();
    for b in state.store.builds(id).await? {
        let artifacts = state.store.artifacts(id, &b.name).await?;
        builds.push(BuildDetail {
            build: b,
            artifacts,
        });
    }
    let review = match state.store.review_run(id).await? {
        Some(r) => Some(RunReview {
            change: state.store.review_change(r.change_number).await?,
            run: r,
        }),
        None => None,
    };
    Ok(RunDetail {
        run,
        builds,
        executing: dispatch::is_running_here(state, id),
        review,
    })
}

/// A run with its builds (the DAG) and their artifacts.
#[utoipa::path(get, path = "/api/v1/runs/{id}", params(("id" = i64, Path, description = "run id")),
    responses((status = 200, body = RunDetail), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RunDetail>, ApiError> {
    caller.may_read(state.config().server.public_reads)?;
    Ok(Json(run_detail(&state, id).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CancelResult {
    pub run_id: i64,
    /// `cancelled` (it had not started), `cancelling` (its builds are being stopped), or the
    /// status it had already ended with.
    pub status: String,
}

/// Cancels a run (role `trigger`).
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", params(("id" = i64, Path, description = "run id")),
    responses((status = 200, body = CancelResult), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<CancelResult>, ApiError> {
    let caller = caller.require(Role::Trigger)?;
    let why = format!("cancelled by {}", caller.name);
    let status = match dispatch::cancel(&state, id, &why).await? {
        Cancelled::Queued => "cancelled".to_string(),
        Cancelled::Running => "cancelling".to_string(),
        Cancelled::AlreadyFinished => state.store.run(id).await?.status.to_string(),
    };
    Ok(Json(CancelResult { run_id: id, status }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BranchRowView {
    pub channel: String,
    pub milestone: u32,
    pub branch: String,
    pub active: bool,
    /// Each job that runs on this row, with its latest run (null: none yet).
    #[schema(value_type = Object)]
    pub jobs: BTreeMap<String, Option<RunRow>>,
}

/// The branch table with each row's latest run per job.
#[utoipa::path(get, path = "/api/v1/branches", responses((status = 200, body = [BranchRowView])))]
pub async fn branches(
    State(state): State<AppState>,
    caller: MaybeCaller,
) -> Result<Json<Vec<BranchRowView>>, ApiError> {
    let config = state.config();
    caller.may_read(config.server.public_reads)?;
    Ok(Json(branch_rows(&state).await?))
}

pub async fn branch_rows(state: &AppState) -> Result<Vec<BranchRowView>, ApiError> {
    let config = state.config();
    let instances: Vec<(String, u32)> = config
        .jobs
        .values()
        .flat_map(|j| {
            config
                .rows_for(j)
                .into_iter()
                .map(|r| (j.name.clone(), r.milestone))
        })
        .collect();
    let mut latest: BTreeMap<(String, u32), RunRow> = BTreeMap::new();
    for r in state.store.latest_runs_of(&instances).await? {
        latest.insert((r.job.clone(), r.milestone), r);
    }
    let mut rows: Vec<BranchRowView> = config
        .branches
        .iter()
        .map(|b| BranchRowView {
            channel: b.channel.clone(),
            milestone: b.milestone,
            branch: b.branch.clone(),
            active: b.active,
            jobs: config
                .jobs
                .values()
                .filter(|j| {
                    config
                        .rows_for(j)
                        .iter()
                        .any(|r| r.milestone == b.milestone)
                })
                .map(|j| {
                    (
                        j.name.clone(),
                        latest.get(&(j.name.clone(), b.milestone)).cloned(),
                    )
                })
                .collect(),
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.milestone));
    Ok(rows)
}

/// An artifact's bytes by sha256 (checked against the digest as it is read).
#[utoipa::path(get, path = "/api/v1/artifacts/{sha256}", params(("sha256" = String, Path, description = "hex sha256")),
    responses((status = 200, content_type = "application/octet-stream"), (status = 404, body = ErrorBody)))]
pub async fn artifact(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(sha256): ApiPath<String>,
) -> Result<Response, ApiError> {
    caller.may_read(state.config().server.public_reads)?;
    let valid = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !valid {
        return Err(ApiError::BadRequest(
            "an artifact is named by its lowercase hex sha256".into(),
        ));
    }
    let Some(name) = state.store.artifact_name(&sha256).await? else {
        return Err(ApiError::NotFound(format!("no artifact {sha256}")));
    };
    let store = state.store.clone();
    let sha = sha256.clone();
    let bytes = tokio::task::spawn_blocking(move || store.cas().read_verified(&sha))
        .await
        .map_err(|e| ApiError::Internal(format!("artifact reader: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let file = name
        .rsplit('/')
        .next()
        .unwrap_or("artifact")
        .replace(['"', '\\'], "_");
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}
