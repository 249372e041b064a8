//! Suite results from labs (`POST /api/v1/results`, role `reporter`), a milestone's results
//! with their staleness, and what its environments serve for labs to test.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde::Deserialize;
use slipway_config::Role;
use slipway_engine::environments::Environments;
use slipway_engine::results::{Ingest, IngestError, ReportFormat, ingest};
use slipway_store::{Recorded, RecordedResult, ResultTarget};

use super::ApiPath;
use super::releases::read_milestone;
use crate::auth::MaybeCaller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Largest request body of `POST /api/v1/results` (the report travels inside it as text).
pub const MAX_RESULT_BODY: usize = 8 << 20;

/// A lab's report about a candidate (staging) or a release (production).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultRequest {
    /// The candidate tested; give this or `release`.
    pub candidate: Option<i64>,
    /// The release tested.
    pub release: Option<i64>,
    /// The suite the report is for (`pfq`, `bvt-cq`).
    pub suite: String,
    pub format: ReportFormat,
    /// The report file's text.
    pub report: String,
    /// Where to read more (http or https).
    pub link: Option<String>,
    /// RFC 3339; default: what the report says (Tast), else none.
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
}

fn target(req: &ResultRequest) -> Result<ResultTarget, ApiError> {
    match (req.candidate, req.release) {
        (Some(c), None) => Ok(ResultTarget::Candidate(c)),
        (None, Some(r)) => Ok(ResultTarget::Release(r)),
        _ => Err(ApiError::BadRequest(
            "name exactly one of `candidate` and `release`".into(),
        )),
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            e if e.is_bad_input() => ApiError::BadRequest(e.to_string()),
            IngestError::Store(s) => s.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Records a lab's result (role `reporter`): 201 with the result, or 200 with `duplicate` when
/// the same report about the same digest was recorded before.
#[utoipa::path(post, path = "/api/v1/results", request_body = ResultRequest,
    responses((status = 201, body = Recorded), (status = 200, body = Recorded, description = "already recorded (duplicate)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn record(
    State(state): State<AppState>,
    caller: MaybeCaller,
    body: Result<Json<ResultRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Recorded>), ApiError> {
    let caller = caller.require(Role::Reporter)?;
    let Json(req) = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(format!(
            "the request body may have at most {MAX_RESULT_BODY} bytes"
        )),
        _ => ApiError::BadRequest(e.body_text()),
    })?;
    let target = target(&req)?;
    let recorded = ingest(
        &state.store,
        &Ingest {
            target,
            suite: Some(&req.suite),
            format: req.format,
            report: req.report.as_bytes(),
            link: req.link.as_deref(),
            started_at: req.started_at.as_deref(),
            ended_at: req.ended_at.as_deref(),
            reporter: &caller.name,
        },
    )
    .await?
    .pop()
    .ok_or_else(|| ApiError::Internal("a named suite recorded no result".into()))?;
    state.cache.changed();
    if !recorded.duplicate {
        if let Some(c) = recorded.result.candidate_id {
            if let Ok(Some(c)) = state.store.candidate(c).await {
                crate::policy::evaluate_later(&state, c.milestone);
            }
        }
    }
    let status = if recorded.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(recorded)))
}

/// Results about the digests of the milestone's candidates (oldest first), each marked `stale`
/// once its environment serves another digest.
#[utoipa::path(get, path = "/api/v1/milestones/{m}/results", params(("m" = u32, Path, description = "milestone")),
    responses((status = 200, body = [RecordedResult]), (status = 404, body = ErrorBody)))]
pub async fn of_milestone(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(milestone): ApiPath<u32>,
) -> Result<Json<Vec<RecordedResult>>, ApiError> {
    let project = read_milestone(&state, caller, milestone)?;
    Ok(Json(
        state
            .store
            .results_for_milestone(&project, milestone)
            .await?,
    ))
}

/// What staging and production of the milestone serve now: buckets, apt URLs and codenames,
/// simplestreams and VM image URLs, and the candidate (and release) with its digest.
#[utoipa::path(get, path = "/api/v1/milestones/{m}/environments", params(("m" = u32, Path, description = "milestone")),
    responses((status = 200, body = Environments), (status = 404, body = ErrorBody)))]
pub async fn environments(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(milestone): ApiPath<u32>,
) -> Result<Json<Environments>, ApiError> {
    read_milestone(&state, caller, milestone)?;
    let config = state.config();
    let envs = slipway_engine::environments::environments(&config, &state.store, milestone).await?;
    Ok(Json(envs))
}
