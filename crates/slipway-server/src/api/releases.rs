//! Candidates, releases, promotion and rollback of a milestone, and its latest audit.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use slipway_config::Role;
use slipway_engine::promote::{self, Interrupted};
use slipway_store::{Candidate, Release};

use super::ApiPath;
use crate::audit;
use crate::auth::MaybeCaller;
use crate::error::{ApiError, ErrorBody};
use crate::state::{AppState, AuditSnapshot, lock};

pub(super) fn known_milestone(state: &AppState, milestone: u32) -> Result<(), ApiError> {
    if state.config().row(milestone).is_none() {
        return Err(ApiError::NotFound(format!(
            "milestone {milestone} is not in the branch table"
        )));
    }
    Ok(())
}

/// The project name for a read about `milestone`: the caller may read, the milestone exists.
pub(super) fn read_milestone(
    state: &AppState,
    caller: MaybeCaller,
    milestone: u32,
) -> Result<String, ApiError> {
    let config = state.config();
    caller.may_read(config.server.public_reads)?;
    known_milestone(state, milestone)?;
    Ok(config.project.name.clone())
}

/// Candidates of a milestone (what staging received from successful continuous runs), newest first.
#[utoipa::path(get, path = "/api/v1/milestones/{m}/candidates", params(("m" = u32, Path, description = "milestone")),
    responses((status = 200, body = [CandidateView]), (status = 404, body = ErrorBody)))]
pub async fn candidates(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(milestone): ApiPath<u32>,
) -> Result<Json<Vec<CandidateView>>, ApiError> {
    let project = read_milestone(&state, caller, milestone)?;
    let list = state.store.candidates(&project, milestone).await?;
    let states = slipway_release::states(&state.config(), &state.store, milestone)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(
        list.into_iter()
            .map(|c| CandidateView {
                promotion: states.candidate(c.id).cloned(),
                candidate: c,
            })
            .collect(),
    ))
}

/// A candidate with its promotion state under the release policy.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CandidateView {
    #[serde(flatten)]
    pub candidate: Candidate,
    /// `{state, reasons, suites, soak_left_secs}`.
    pub promotion: Option<slipway_release::CandidateState>,
}

/// Releases of a milestone (promotions and rollbacks), newest first: the first is live.
#[utoipa::path(get, path = "/api/v1/milestones/{m}/releases", params(("m" = u32, Path, description = "milestone")),
    responses((status = 200, body = [Release]), (status = 404, body = ErrorBody)))]
pub async fn releases(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(milestone): ApiPath<u32>,
) -> Result<Json<Vec<Release>>, ApiError> {
    let project = read_milestone(&state, caller, milestone)?;
    Ok(Json(state.store.releases(&project, milestone).await?))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// The candidate to promote; default: the newest.
    pub candidate: Option<i64>,
    /// Give up an interrupted promotion of the milestone instead of finishing it first.
    #[serde(default)]
    pub abandon_interrupted: bool,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    #[serde(default)]
    pub abandon_interrupted: bool,
}

fn interrupted(abandon: bool) -> Interrupted {
    if abandon {
        Interrupted::Abandon
    } else {
        Interrupted::Finish
    }
}

pub(super) fn body_or_default<T: Default>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    match body {
        Ok(Json(v)) => Ok(v),
        // No body at all means the defaults.
        Err(axum::extract::rejection::JsonRejection::MissingJsonContentType(_)) => Ok(T::default()),
        Err(e) => Err(ApiError::BadRequest(e.body_text())),
    }
}

/// Promotes a candidate of the milestone to production (role `releaser`). The promotion runs to
/// its end even if the client goes away.
#[utoipa::path(post, path = "/api/v1/milestones/{m}/promote", request_body = PromoteRequest,
    params(("m" = u32, Path, description = "milestone")),
    responses((status = 200, description = "the promotion outcome (release, copies, candidate)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn promote(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(milestone): ApiPath<u32>,
    body: Result<Json<PromoteRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = caller.require(Role::Releaser)?;
    known_milestone(&state, milestone)?;
    let req = body_or_default(body)?;
    let by = format!("{} (slipway serve)", caller.name);
    let (config, store) = (state.config(), state.store.clone());
    let op = async move {
        let how = interrupted(req.abandon_interrupted);
        promote::promote(
            &config,
            &store,
            milestone,
            req.candidate,
            "promote",
            how,
            &by,
        )
        .await
    };
    release_op(&state, milestone, op).await
}

/// Rolls the milestone back to its previous release (role `releaser`).
#[utoipa::path(post, path = "/api/v1/milestones/{m}/rollback", request_body = RollbackRequest,
    params(("m" = u32, Path, description = "milestone")),
    responses((status = 200, description = "the rollback outcome"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rollback(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(milestone): ApiPath<u32>,
    body: Result<Json<RollbackRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = caller.require(Role::Releaser)?;
    known_milestone(&state, milestone)?;
    let req = body_or_default(body)?;
    let by = format!("{} (slipway serve)", caller.name);
    let (config, store) = (state.config(), state.store.clone());
    let op = async move {
        let how = interrupted(req.abandon_interrupted);
        promote::rollback(&config, &store, milestone, how, &by).await
    };
    release_op(&state, milestone, op).await
}

/// Runs a promotion or rollback in its own task (a dropped request never stops it halfway),
/// then audits the milestone so the dashboard shows what production serves now.
async fn release_op(
    state: &AppState,
    milestone: u32,
    op: impl Future<Output = Result<promote::PromoteOutcome, promote::PromoteError>> + Send + 'static,
) -> Result<Json<serde_json::Value>, ApiError> {
    let task = tokio::spawn(op);
    let outcome = task.await;
    state.cache.changed();
    let outcome = outcome
        .map_err(|e| ApiError::Internal(format!("release task: {e}")))?
        .map_err(|e| match e {
            promote::PromoteError::Refused(m) => ApiError::Conflict(m),
            other => ApiError::Internal(other.to_string()),
        })?;
    let after = state.clone();
    tokio::spawn(async move { audit::audit_milestone(&after, milestone).await });
    serde_json::to_value(&outcome)
        .map(Json)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The latest audit of the milestone (the server audits every milestone on a timer and after
/// each promotion or rollback).
#[utoipa::path(get, path = "/api/v1/milestones/{m}/audit", params(("m" = u32, Path, description = "milestone")),
    responses((status = 200, body = AuditSnapshot), (status = 404, body = ErrorBody)))]
pub async fn latest_audit(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(milestone): ApiPath<u32>,
) -> Result<Json<AuditSnapshot>, ApiError> {
    read_milestone(&state, caller, milestone)?;
    lock(&state.audits)
        .get(&milestone)
        .cloned()
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound(format!("milestone {milestone} has not been audited yet"))
        })
}
