//! Presubmit endpoints: the review changes Slipway watches with their runs and votes, a poll of
//! the review server on demand, and Gerrit webhook deliveries.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use slipway_config::Role;
use slipway_store::{ReviewChange, ReviewRun};
use subtle::ConstantTimeEq;

use crate::api::ApiQuery;
use crate::auth::MaybeCaller;
use crate::error::{ApiError, ErrorBody};
use crate::review::{ReviewPollReport, ReviewStatus, poll_once};
use crate::state::{AppState, lock};

/// A change with its presubmit runs (newest first) and their votes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangeView {
    pub change: ReviewChange,
    pub runs: Vec<ReviewRun>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReviewsView {
    /// Whether `[review]` is configured.
    pub configured: bool,
    pub status: ReviewStatus,
    pub changes: Vec<ChangeView>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ReviewsQuery {
    /// At most this many changes (default 50, at most 500).
    pub limit: Option<i64>,
}

/// The changes seen most recently, with their runs and votes.
pub async fn changes_view(state: &AppState, limit: i64) -> Result<ReviewsView, ApiError> {
    let mut changes = Vec::new();
    for change in state.store.recent_review_changes(limit).await? {
        let runs = state.store.review_runs_of(change.change_number).await?;
        changes.push(ChangeView { change, runs });
    }
    Ok(ReviewsView {
        configured: state.config().review.is_some(),
        status: lock(&state.review.status).clone(),
        changes,
    })
}

/// Review changes with their presubmit runs and votes (newest update first).
#[utoipa::path(get, path = "/api/v1/reviews", params(ReviewsQuery),
    responses((status = 200, body = ReviewsView), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiQuery(q): ApiQuery<ReviewsQuery>,
) -> Result<Json<ReviewsView>, ApiError> {
    caller.may_read(state.config().server.public_reads)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be from 1 to 500".into()));
    }
    Ok(Json(changes_view(&state, limit).await?))
}

/// Polls the review server now and returns what it queued (role `trigger`).
#[utoipa::path(post, path = "/api/v1/review/poll", responses((status = 200, body = ReviewPollReport),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn poll(
    State(state): State<AppState>,
    caller: MaybeCaller,
) -> Result<Json<ReviewPollReport>, ApiError> {
    caller.require(Role::Trigger)?;
    if state.config().review.is_none() {
        return Err(ApiError::NotFound("[review] is not configured".into()));
    }
    let report = poll_once(&state).await;
    if !report.queued.is_empty() {
        state.dispatcher.wake();
    }
    Ok(Json(report))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// Whether the delivery names a change of the watched project that Slipway reads now.
    pub accepted: bool,
    pub change: Option<i64>,
    pub reason: String,
}

/// A Gerrit webhook delivery (`comment-added`, `patchset-created`, ... as the webhooks plugin
/// posts them). The shared secret (`[review] webhook_secret`) comes as `?secret=` (the plugin
/// can only be given a URL) or an `X-Slipway-Webhook-Secret` header. The delivery only names
/// the change: Slipway reads it from the REST API and decides as a poll would.
#[utoipa::path(post, path = "/api/v1/gerrit/events", request_body(content = String, content_type = "application/json"),
    params(("secret" = Option<String>, Query, description = "the shared secret")),
    responses((status = 202, body = Delivery), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn webhook(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    let config = state.config();
    let Some(review) = &config.review else {
        return Err(ApiError::NotFound("[review] is not configured".into()));
    };
    let Some(secret_name) = &review.webhook_secret else {
        return Err(ApiError::NotFound(
            "webhooks are not enabled (set [review] webhook_secret)".into(),
        ));
    };
    let expected = slipway_engine::read_secret(&config, secret_name)
        .map_err(|_| ApiError::Internal("the webhook secret cannot be read".into()))?;
    let given = query
        .get("secret")
        .map(|s| s.as_bytes().to_vec())
        .or_else(|| {
            headers
                .get("x-slipway-webhook-secret")
                .map(|v| v.as_bytes().to_vec())
        });
    let expected = trim(&expected);
    let valid = given.is_some_and(|g| !expected.is_empty() && bool::from(g.ct_eq(expected)));
    if !valid {
        return Err(ApiError::Unauthorized(
            "missing or wrong webhook secret".into(),
        ));
    }
    let event = slipway_review::parse_webhook(&body).map_err(ApiError::BadRequest)?;
    let (accepted, reason) = if event.project != review.project {
        (false, format!("project '{}' is not watched", event.project))
    } else if !event.relevant() {
        (
            false,
            format!("'{}' events do not affect presubmit", event.kind),
        )
    } else {
        state.review.look_at(event.change);
        (true, format!("reading change {}", event.change))
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(Delivery {
            accepted,
            change: Some(event.change),
            reason,
        }),
    ))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..end]
}
