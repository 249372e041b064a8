//! Health, metrics, polling on demand, config reload.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use slipway_config::Role;

use crate::auth::MaybeCaller;
use crate::error::{ApiError, ErrorBody};
use crate::state::{AppState, PollStatus, lock};
use crate::trigger::{self, PollReport};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `stopping` while the server shuts down.
    pub status: String,
    pub executing: usize,
    pub poll: PollStatus,
}

/// Liveness and what the server is doing (always public).
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: if state.shutdown.is_cancelled() {
            "stopping"
        } else {
            "ok"
        }
        .into(),
        executing: state.dispatcher.running_count(),
        poll: lock(&state.polls).clone(),
    })
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(
    State(state): State<AppState>,
    caller: MaybeCaller,
) -> Result<impl IntoResponse, ApiError> {
    caller.may_read(state.config().server.public_reads)?;
    let text = crate::metrics::render(&state).await;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

/// Polls the branch table now and returns what it queued (role `trigger`).
#[utoipa::path(post, path = "/api/v1/poll", responses((status = 200, body = PollReport),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn poll(
    State(state): State<AppState>,
    caller: MaybeCaller,
) -> Result<Json<PollReport>, ApiError> {
    caller.require(Role::Trigger)?;
    let report = trigger::poll_once(&state).await;
    if !report.queued.is_empty() {
        state.dispatcher.wake();
    }
    Ok(Json(report))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    pub reloaded: bool,
}

/// Reads the config file again (role `admin`); an invalid file is refused and the running
/// config stays.
#[utoipa::path(post, path = "/api/v1/reload", responses((status = 200, body = Reloaded),
    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn reload(
    State(state): State<AppState>,
    caller: MaybeCaller,
) -> Result<Json<Reloaded>, ApiError> {
    caller.require(Role::Admin)?;
    state.reload().map_err(ApiError::BadRequest)?;
    Ok(Json(Reloaded { reloaded: true }))
}
