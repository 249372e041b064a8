//! The HTTP side: Basic auth on `/a/`, the XSSI guard, request recording, the routes Slipway
//! uses and review fault injection.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

use super::FailMode;
use super::render::Opts;
use super::state::{Gerrit, ReviewInput};

/// An error answer: Gerrit's are plain text.
pub(super) struct HttpError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let HttpError(status, mut body) = self;
        if !body.ends_with('\n') {
            body.push('\n');
        }
        let mut r = (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
            body,
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            let realm = HeaderValue::from_static("Basic realm=\"Gerrit Code Review\"");
            r.headers_mut().insert(header::WWW_AUTHENTICATE, realm);
        }
        r
    }
}

pub(super) fn bad_request(msg: impl Into<String>) -> HttpError {
    HttpError(StatusCode::BAD_REQUEST, msg.into())
}

pub(super) fn not_found(what: &str) -> HttpError {
    HttpError(StatusCode::NOT_FOUND, format!("Not found: {what}"))
}

pub(super) fn conflict(msg: impl Into<String>) -> HttpError {
    HttpError(StatusCode::CONFLICT, msg.into())
}

pub(super) struct Shared {
    pub(super) user: String,
    pub(super) password: String,
    pub(super) state: Mutex<Gerrit>,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Gerrit> {
        // A test helper that panicked mid-update must not hide the state from the next assertion.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn gerrit_json(v: &Value) -> Response {
    let body = format!(")]}}'\n{v}\n");
    (
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body,
    )
        .into_response()
}

fn authorized(s: &Shared, headers: &HeaderMap) -> bool {
    let Some(b64) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    raw == format!("{}:{}", s.user, s.password).as_bytes()
}

/// Records every request, then lets only authenticated `/a/` requests through.
async fn guard(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    s.lock().requests.push((req.method().to_string(), target));
    if !req.uri().path().starts_with("/a/") {
        return not_found(req.uri().path()).into_response();
    }
    if !authorized(&s, req.headers()) {
        return HttpError(StatusCode::UNAUTHORIZED, "Unauthorized".into()).into_response();
    }
    next.run(req).await
}

fn query_pairs(raw: Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

async fn query_changes(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    match s.lock().query(&query_pairs(q)) {
        Ok(v) => gerrit_json(&v),
        Err(e) => e.into_response(),
    }
}

fn one_change(s: &Shared, id: &str, q: Option<String>, base: Opts) -> Result<Value, HttpError> {
    let params = query_pairs(q);
    let mut o = Opts::from_params(&params)?;
    o.labels |= base.labels;
    o.detailed_labels |= base.detailed_labels;
    o.detailed_accounts |= base.detailed_accounts;
    o.messages |= base.messages;
    let g = s.lock();
    let number = g.find(id)?;
    Ok(g.change_info(g.change(number), o))
}

async fn get_change(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    one_change(&s, &id, q, Opts::default())
        .map_or_else(IntoResponse::into_response, |v| gerrit_json(&v))
}

/// `/detail` implies labels, detailed labels and accounts, and messages.
async fn get_detail(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let base = Opts {
        current_revision: false,
        all_revisions: false,
        ..Opts::ALL
    };
    one_change(&s, &id, q, base).map_or_else(IntoResponse::into_response, |v| gerrit_json(&v))
}

async fn post_review(
    State(s): State<Arc<Shared>>,
    Path((id, revision)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    // Like a servlet, the review goes on when the client hangs up (a timeout during Hang).
    let work = tokio::spawn(review_task(s, id, revision, body));
    work.await.unwrap_or_else(|e| {
        HttpError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("review task failed: {e}"),
        )
        .into_response()
    })
}

async fn review_task(s: Arc<Shared>, id: String, revision: String, body: Bytes) -> Response {
    let failure = {
        let mut g = s.lock();
        match g.failures {
            Some((n, mode)) if n > 0 => {
                g.failures = (n > 1).then_some((n - 1, mode));
                Some(mode)
            }
            _ => None,
        }
    };
    let unavailable = || {
        HttpError(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable".into(),
        )
    };
    match failure {
        Some(FailMode::Before) => return unavailable().into_response(),
        Some(FailMode::Hang(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    let input: ReviewInput = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => return bad_request(format!("Invalid ReviewInput: {e}")).into_response(),
    };
    let applied = s.lock().bot_review(&id, &revision, &input);
    match (applied, failure) {
        (Err(e), _) => e.into_response(),
        (Ok(()), Some(FailMode::After)) => unavailable().into_response(),
        (Ok(()), _) => gerrit_json(&json!({"labels": input.labels})),
    }
}

async fn fallback(req: Request) -> Response {
    not_found(req.uri().path()).into_response()
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/a/changes/", get(query_changes))
        .route("/a/changes/{id}", get(get_change))
        .route("/a/changes/{id}/detail", get(get_detail))
        .route(
            "/a/changes/{id}/revisions/{revision}/review",
            post(post_review),
        )
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}
