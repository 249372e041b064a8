//! The release policy of a milestone: its state (every candidate's promotion state and reasons,
//! the hold, the policy's timeline), an evaluation on demand, holds.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use slipway_config::Role;
use slipway_release::{Evaluation, Report};
use slipway_store::{HoldRow, PolicyEvent};

use crate::api::ApiPath;
use crate::api::releases::{body_or_default, known_milestone, read_milestone};
use crate::auth::MaybeCaller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicySummary {
    pub auto: bool,
    /// Whether this milestone's channel releases automatically.
    pub auto_here: bool,
    pub require: Vec<String>,
    pub soak_secs: u64,
    pub channels: Option<Vec<String>>,
    pub rollback_after: u32,
    pub watch: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyView {
    pub milestone: u32,
    pub policy: PolicySummary,
    pub hold: Option<HoldRow>,
    /// Every candidate's promotion state and reasons, newest first.
    pub evaluation: Evaluation,
    /// What the policy did, newest first.
    pub timeline: Vec<PolicyEvent>,
}

pub async fn policy_view(
    state: &AppState,
    project: &str,
    milestone: u32,
) -> Result<PolicyView, ApiError> {
    let config = state.config();
    let p = &config.release;
    let channel = config
        .row(milestone)
        .map(|r| r.channel.clone())
        .unwrap_or_default();
    let evaluation = slipway_release::states(&config, &state.store, milestone)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(PolicyView {
        milestone,
        policy: PolicySummary {
            auto: p.auto,
            auto_here: p.auto && p.auto_releases(&channel),
            require: p.require.clone(),
            soak_secs: p.soak.as_secs(),
            channels: p.channels.clone(),
            rollback_after: p.rollback_after,
            watch: p.watch.clone(),
        },
        hold: state.store.hold_of(project, milestone).await?,
        evaluation,
        timeline: state.store.policy_events(project, milestone, 50).await?,
    })
}

/// The milestone's release policy: candidates' promotion states and reasons, hold, timeline.
#[utoipa::path(get, path = "/api/v1/milestones/{m}/policy", params(("m" = u32, Path, description = "milestone")),
    responses((status = 200, body = PolicyView), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(milestone): ApiPath<u32>,
) -> Result<Json<PolicyView>, ApiError> {
    let project = read_milestone(&state, caller, milestone)?;
    Ok(Json(policy_view(&state, &project, milestone).await?))
}

/// Evaluates the policy now and does what it decides (role `releaser`).
#[utoipa::path(post, path = "/api/v1/milestones/{m}/evaluate", params(("m" = u32, Path, description = "milestone")),
    responses((status = 200, body = Report), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn evaluate(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(milestone): ApiPath<u32>,
) -> Result<Json<Report>, ApiError> {
    caller.require(Role::Releaser)?;
    known_milestone(&state, milestone)?;
    crate::policy::evaluate(&state, milestone)
        .await
        .map(Json)
        .map_err(ApiError::Internal)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    pub reason: Option<String>,
}

/// Holds the milestone: nothing is promoted automatically until it is lifted (role `releaser`).
#[utoipa::path(post, path = "/api/v1/milestones/{m}/hold", request_body = HoldRequest,
    params(("m" = u32, Path, description = "milestone")),
    responses((status = 200, body = PolicyView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn hold(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(milestone): ApiPath<u32>,
    body: Result<Json<HoldRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<PolicyView>, ApiError> {
    let caller = caller.require(Role::Releaser)?;
    known_milestone(&state, milestone)?;
    let req: HoldRequest = body_or_default(body)?;
    if req.reason.as_ref().is_some_and(|r| r.len() > 500) {
        return Err(ApiError::BadRequest(
            "reason is longer than 500 characters".into(),
        ));
    }
    let project = state.config().project.name.clone();
    let by = format!("{} (slipway serve)", caller.name);
    slipway_release::hold(
        &state.store,
        &project,
        milestone,
        &by,
        req.reason.as_deref(),
    )
    .await?;
    state.cache.changed();
    Ok(Json(policy_view(&state, &project, milestone).await?))
}

/// Lifts the milestone's hold (role `releaser`).
#[utoipa::path(post, path = "/api/v1/milestones/{m}/unhold", params(("m" = u32, Path, description = "milestone")),
    responses((status = 200, body = PolicyView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn unhold(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(milestone): ApiPath<u32>,
) -> Result<Json<PolicyView>, ApiError> {
    let caller = caller.require(Role::Releaser)?;
    known_milestone(&state, milestone)?;
    let project = state.config().project.name.clone();
    let by = format!("{} (slipway serve)", caller.name);
    if slipway_release::unhold(&state.store, &project, milestone, &by)
        .await?
        .is_some()
    {
        crate::policy::evaluate_later(&state, milestone);
    }
    state.cache.changed();
    Ok(Json(policy_view(&state, &project, milestone).await?))
}
