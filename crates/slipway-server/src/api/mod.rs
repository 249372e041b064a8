//! API v1 (JSON) and the service endpoints. The OpenAPI document is generated from the
//! handlers' annotations (`utoipa`) and served at `/api/v1/openapi.json`.

pub mod logs;
pub mod policy;
pub mod releases;
pub mod results;
pub mod reviews;
pub mod runs;
pub mod system;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use utoipa::OpenApi;

use crate::error::ApiError;
use crate::state::AppState;

/// `Path`, with its rejections (a run id that is not a number) answered as JSON errors like
/// every other API error.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `Query`, with its rejections (`?milestone=abc`) answered as JSON errors.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Slipway API",
        version = "1",
        description = "Runs, logs, artifacts, candidates, releases of a Slipway server. Mutating endpoints need `Authorization: Bearer <token>` with the role each names."
    ),
    paths(
        system::healthz,
        system::metrics,
        system::poll,
        system::reload,
        runs::list,
        runs::create,
        runs::show,
        runs::cancel,
        runs::branches,
        runs::artifact,
        logs::text,
        logs::stream,
        releases::candidates,
        releases::releases,
        releases::promote,
        releases::rollback,
        releases::latest_audit,
        results::record,
        results::of_milestone,
        results::environments,
        policy::show,
        policy::evaluate,
        policy::hold,
        policy::unhold,
        reviews::list,
        reviews::poll,
        reviews::webhook,
    ),
    components(schemas(
        crate::error::ErrorBody,
        runs::TriggerRequest,
        runs::Queued,
        runs::RunDetail,
        runs::BuildDetail,
        runs::CancelResult,
        runs::BranchRowView,
        releases::PromoteRequest,
        releases::CandidateView,
        releases::RollbackRequest,
        results::ResultRequest,
        slipway_engine::results::ReportFormat,
        slipway_store::Recorded,
        slipway_store::RecordedResult,
        slipway_store::SuiteResult,
        slipway_store::Environment,
        slipway_store::ResultStatus,
        slipway_engine::environments::Environments,
        slipway_engine::environments::EnvironmentView,
        slipway_engine::environments::BucketPlace,
        slipway_engine::environments::AptRepo,
        system::Health,
        system::Reloaded,
        policy::PolicyView,
        policy::PolicySummary,
        policy::HoldRequest,
        slipway_release::Report,
        slipway_release::Evaluation,
        slipway_release::CandidateState,
        slipway_release::SuiteStatus,
        slipway_release::State,
        slipway_release::Verdict,
        slipway_release::Decision,
        slipway_release::RollbackDecision,
        slipway_store::HoldRow,
        slipway_store::PolicyEvent,
        reviews::ReviewsView,
        reviews::ChangeView,
        reviews::Delivery,
        crate::review::ReviewPollReport,
        crate::review::ReviewStatus,
        runs::RunReview,
        slipway_store::ReviewChange,
        slipway_store::ReviewRun,
        crate::trigger::PollReport,
        crate::state::PollStatus,
        crate::state::AuditSnapshot,
        slipway_store::RunRow,
        slipway_store::BuildRow,
        slipway_store::ArtifactRow,
        slipway_store::Candidate,
        slipway_store::Release,
        slipway_store::RunStatus,
        slipway_store::BuildStatus,
    ))
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/metrics", get(system::metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/poll", post(system::poll))
        .route("/api/v1/reload", post(system::reload))
        .route("/api/v1/branches", get(runs::branches))
        .route("/api/v1/runs", get(runs::list))
        .route("/api/v1/jobs/{job}/runs", post(runs::create))
        .route("/api/v1/runs/{id}", get(runs::show))
        .route("/api/v1/runs/{id}/cancel", post(runs::cancel))
        .route("/api/v1/runs/{id}/builds/{build}/log", get(logs::text))
        .route(
            "/api/v1/runs/{id}/builds/{build}/log/stream",
            get(logs::stream),
        )
        .route("/api/v1/artifacts/{sha256}", get(runs::artifact))
        .route(
            "/api/v1/milestones/{m}/candidates",
            get(releases::candidates),
        )
        .route("/api/v1/milestones/{m}/releases", get(releases::releases))
        .route("/api/v1/milestones/{m}/promote", post(releases::promote))
        .route("/api/v1/milestones/{m}/rollback", post(releases::rollback))
        .route("/api/v1/milestones/{m}/audit", get(releases::latest_audit))
        .route(
            "/api/v1/results",
            post(results::record).layer(DefaultBodyLimit::max(results::MAX_RESULT_BODY)),
        )
        .route("/api/v1/milestones/{m}/results", get(results::of_milestone))
        .route(
            "/api/v1/milestones/{m}/environments",
            get(results::environments),
        )
        .route("/api/v1/milestones/{m}/policy", get(policy::show))
        .route("/api/v1/milestones/{m}/evaluate", post(policy::evaluate))
        .route("/api/v1/milestones/{m}/hold", post(policy::hold))
        .route("/api/v1/milestones/{m}/unhold", post(policy::unhold))
        .route("/api/v1/reviews", get(reviews::list))
        .route("/api/v1/review/poll", post(reviews::poll))
        .route("/api/v1/gerrit/events", post(reviews::webhook))
}
