//! Dashboard routes: fill the dashboard's views from the store and serve them as HTML, plus the
//! login that turns a token into an HttpOnly, SameSite=Strict session cookie.

use std::collections::BTreeMap;

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use slipway_config::{Flow, Role};
use slipway_store::RunFilter;

use crate::api::runs::{branch_rows, run_detail};
use crate::auth::{Caller, MaybeCaller, SESSION_COOKIE};
use crate::dashboard::{
    AuditView, BuildView, BypassView, CandidateBrief, CandidateRow, HomeRow, HomeView, LoginView,
    Page, ReleaseBrief, ReleaseRow, ReleaseView, RunCell, RunListItem, RunSummary, RunView,
    RunsView, SuiteBrief,
};
use crate::error::ApiError;
use crate::state::{AppState, lock};

mod presubmit;
mod release_policy;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run))
        .route("/milestones/{m}", get(release))
        .route("/presubmit", get(presubmit::presubmit))
        .route("/login", get(login_form).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/static/slipway.css", get(css))
        .route("/static/slipway.js", get(js))
}

/// A page's failure as an HTML page; a missing login sends the browser to the login form.
struct PageError(ApiError, String);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let PageError(e, path) = self;
        if matches!(e, ApiError::Unauthorized(_)) {
            return Redirect::to(&format!("/login?next={}", encode(&path))).into_response();
        }
        let status = e.status();
        let body = crate::dashboard::Dashboard::new()
            .and_then(|d| d.error(status.as_u16(), &e.to_string()))
            .unwrap_or_else(|_| e.to_string());
        (status, Html(body)).into_response()
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The caller of a page: a stale or wrong cookie counts as not logged in.
fn page_caller(
    state: &AppState,
    caller: Result<MaybeCaller, ApiError>,
    path: &str,
) -> Result<Option<Caller>, PageError> {
    let caller = caller.unwrap_or(MaybeCaller(None));
    caller
        .may_read(state.config().server.public_reads)
        .map_err(|e| PageError(e, path.to_string()))
}

fn page(state: &AppState, title: String, caller: &Option<Caller>) -> Page {
    Page {
        project: state.config().project.name.clone(),
        title,
        role: caller.as_ref().map(|c| c.role.as_str().to_string()),
        now: slipway_store::now(),
    }
}

fn has(caller: &Option<Caller>, role: Role) -> bool {
    caller.as_ref().is_some_and(|c| c.role >= role)
}

fn short(commit: &Option<String>) -> Option<String> {
    commit
        .as_ref()
        .map(|c| c.get(..10).unwrap_or(c).to_string())
}

fn render(
    result: Result<String, crate::dashboard::DashboardError>,
    path: &str,
) -> Result<Html<String>, PageError> {
    result
        .map(Html)
        .map_err(|e| PageError(ApiError::Internal(e.to_string()), path.to_string()))
}

fn api(path: &str) -> impl Fn(ApiError) -> PageError + '_ {
    move |e| PageError(e, path.to_string())
}

async fn home(
    State(state): State<AppState>,
    caller: Result<MaybeCaller, ApiError>,
) -> Result<Html<String>, PageError> {
    let caller = page_caller(&state, caller, "/")?;
    let config = state.config();
    let project = &config.project.name;
    let jobs: Vec<String> = config.jobs.keys().cloned().collect();
    let err = api("/");
    let candidates: BTreeMap<u32, _> = state
        .store
        .latest_candidates(project)
        .await
        .map_err(|e| err(e.into()))?
        .into_iter()
        .map(|c| (c.milestone, c))
        .collect();
    let releases: BTreeMap<u32, _> = state
        .store
        .latest_releases(project)
        .await
        .map_err(|e| err(e.into()))?
        .into_iter()
        .map(|r| (r.milestone, r))
        .collect();
    let drift: Vec<u32> = lock(&state.audits)
        .values()
        .filter(|a| a.drift)
        .map(|a| a.milestone)
        .collect();
    let rows = branch_rows(&state)
        .await
        .map_err(&err)?
        .into_iter()
        .map(|b| HomeRow {
            cells: jobs
                .iter()
                .map(|j| {
                    b.jobs.get(j).cloned().flatten().map(|r| RunCell {
                        run_id: r.run_id,
                        status: r.status.to_string(),
                        commit_short: short(&r.commit),
                        created_at: r.created_at,
                        finished_at: r.finished_at,
                    })
                })
                .collect(),
            candidate: candidates.get(&b.milestone).map(|c| CandidateBrief {
                id: c.id,
                digest_short: c.digest.get(..12).unwrap_or(&c.digest).to_string(),
            }),
            release: releases.get(&b.milestone).map(|r| ReleaseBrief {
                candidate_id: r.candidate_id,
                promoted_at: r.promoted_at.clone(),
            }),
            drift: drift.contains(&b.milestone),
            channel: b.channel,
            milestone: b.milestone,
            branch: b.branch,
            active: b.active,
        })
        .collect();
    let counts: BTreeMap<String, i64> = state
        .store
        .run_counts()
        .await
        .map_err(|e| err(e.into()))?
        .into_iter()
        .collect();
    let count = |s: &str| counts.get(s).copied().unwrap_or(0).max(0) as u32;
    let view = HomeView {
        page: page(&state, "Release matrix".into(), &caller),
        jobs,
        rows,
        drift_milestones: drift,
        queued: count("queued"),
        running: count("running"),
    };
    render(state.dashboard.home(&view), "/")
}

#[derive(Debug, Deserialize)]
struct RunsQuery {
    job: Option<String>,
    milestone: Option<u32>,
    before: Option<i64>,
}

const PAGE_SIZE: i64 = 50;

async fn runs(
    State(state): State<AppState>,
    caller: Result<MaybeCaller, ApiError>,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Html<String>, PageError> {
    let caller = page_caller(&state, caller, "/runs")?;
    let Query(q) =
        query.map_err(|e| PageError(ApiError::BadRequest(e.body_text()), "/runs".into()))?;
    let filter = RunFilter {
        job: q.job.clone().filter(|j| !j.is_empty()),
        milestone: q.milestone,
        status: None,
        before: q.before,
        limit: PAGE_SIZE + 1,
    };
    let mut found = state
        .store
        .find_runs(&filter)
        .await
        .map_err(|e| PageError(e.into(), "/runs".into()))?;
    let more = found.len() as i64 > PAGE_SIZE;
    found.truncate(PAGE_SIZE as usize);
    let older_than = if more {
        found.last().map(|r| r.run_id)
    } else {
        None
    };
    let view = RunsView {
        page: page(&state, "Runs".into(), &caller),
        filter_job: filter.job,
        filter_milestone: filter.milestone,
        runs: found
            .into_iter()
            .map(|r| RunListItem {
                commit_short: short(&r.commit),
                run_id: r.run_id,
                job: r.job,
                milestone: r.milestone,
                channel: r.channel,
                branch: r.branch,
                status: r.status.to_string(),
                trigger: r.trigger,
                created_at: r.created_at,
                finished_at: r.finished_at,
                error: r.error,
            })
            .collect(),
        older_than,
    };
    render(state.dashboard.runs(&view), "/runs")
}

async fn run(
    State(state): State<AppState>,
    caller: Result<MaybeCaller, ApiError>,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Html<String>, PageError> {
    let path = "/runs".to_string();
    let caller = page_caller(&state, caller, &path)?;
    let Path(id) =
        id.map_err(|_| PageError(ApiError::NotFound("no such run".into()), path.clone()))?;
    let detail = run_detail(&state, id)
        .await
        .map_err(|e| PageError(e, format!("/runs/{id}")))?;
    let r = detail.run;
    let review = detail
        .review
        .map(|review| presubmit::run_review(review, presubmit::report_label(&state)));
    let bypassed = bypasses(&state, &r).await;
    let live = !r.status.is_finished();
    let view = RunView {
        page: page(&state, format!("Run {id}"), &caller),
        can_cancel: live && has(&caller, Role::Trigger),
        live,
        review,
        bypassed,
        builds: detail
            .builds
            .into_iter()
            .map(|b| BuildView {
                name: b.build.name,
                needs: b.build.needs,
                status: b.build.status.to_string(),
                error: b.build.error,
                started_at: b.build.started_at,
                finished_at: b.build.finished_at,
                duration: None,
            })
            .collect(),
        run: RunSummary {
            run_id: r.run_id,
            instance: r.instance,
            job: r.job,
            milestone: r.milestone,
            channel: r.channel,
            branch: r.branch,
            commit: r.commit,
            flow: r.flow,
            status: r.status.to_string(),
            error: r.error,
            trigger: r.trigger,
            requested_by: r.requested_by,
            retry_of: r.retry_of,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        },
    };
    render(state.dashboard.run(&view), &format!("/runs/{id}"))
}

/// The privileged builds an untrusted run went without. Not recorded with the run: planned
/// again from the run's commit (git work on the blocking pool), for untrusted runs only.
async fn bypasses(state: &AppState, run: &slipway_store::RunRow) -> Vec<BypassView> {
    if run.flow != Flow::Presubmit.as_str() {
        return Vec::new();
    }
    let Some(commit) = run.commit.clone() else {
        return Vec::new();
    };
    let (config, data_dir) = (state.config(), state.data_dir.clone());
    let (job, milestone) = (run.job.clone(), run.milestone);
    let planned = tokio::task::spawn_blocking(move || {
        let source = slipway_engine::Source::open(&config, &data_dir)?;
        slipway_engine::plan_at(&config, &source, &job, milestone, &commit)
    })
    .await;
    match planned {
        Ok(Ok(p)) => p
            .plan
            .bypassed
            .into_iter()
            .map(|b| BypassView {
                build: b.build,
                inputs_go_to: b.inputs_forwarded,
            })
            .collect(),
        _ => Vec::new(),
    }
}

async fn release(
    State(state): State<AppState>,
    caller: Result<MaybeCaller, ApiError>,
    m: Result<Path<u32>, axum::extract::rejection::PathRejection>,
) -> Result<Html<String>, PageError> {
    let caller = page_caller(&state, caller, "/")?;
    let Path(milestone) =
        m.map_err(|_| PageError(ApiError::NotFound("no such milestone".into()), "/".into()))?;
    let path = format!("/milestones/{milestone}");
    let err = api(&path);
    let config = state.config();
    let row = config.row(milestone).ok_or_else(|| {
        err(ApiError::NotFound(format!(
            "milestone {milestone} is not in the branch table"
        )))
    })?;
    let project = &config.project.name;
    let history: Vec<ReleaseRow> = state
        .store
        .releases(project, milestone)
        .await
        .map_err(|e| err(e.into()))?
        .into_iter()
        .map(|r| ReleaseRow {
            id: r.id,
            candidate_id: r.candidate_id,
            kind: r.kind,
            promoted_by: r.promoted_by,
            promoted_at: r.promoted_at,
        })
        .collect();
    let live = history.first().cloned();
    let mut policy = release_policy::policy_parts(&state, project, milestone).await;
    let mut candidates = Vec::new();
    let all = state
        .store
        .candidates(project, milestone)
        .await
        .map_err(|e| err(e.into()))?;
    // The newest twenty, and the live one wherever it is.
    for (i, c) in all.into_iter().enumerate() {
        let is_live = live.as_ref().is_some_and(|l| l.candidate_id == c.id);
        if i >= 20 && !is_live {
            continue;
        }
        let suites = state
            .store
            .suites_of_candidate(c.id)
            .await
            .map_err(|e| err(e.into()))?
            .into_iter()
            .map(|s| SuiteBrief {
                name: s.result.name,
                passed: s.passed,
                tests: s.result.tests as i64,
                failures: (s.result.failures + s.result.errors) as i64,
            })
            .collect();
        candidates.push(CandidateRow {
            id: c.id,
            run_id: c.run_id,
            commit_short: short(&c.commit),
            digest: c.digest,
            objects: c.objects,
            created_at: c.created_at,
            is_live,
            suites,
            policy: policy.states.remove(&c.id),
        });
    }
    let audit = lock(&state.audits).get(&milestone).map(|a| AuditView {
        checked_at: a.checked_at.clone(),
        drift: a.drift,
        lines: a.lines.clone(),
        error: a.error.clone(),
    });
    let unfinished = state
        .store
        .unfinished_promotion(project, milestone)
        .await
        .map_err(|e| err(e.into()))?
        .map(|p| {
            format!(
                "promotion {} ({} of candidate {} by {}) did not finish; the next promote or rollback finishes it first",
                p.id, p.kind, p.candidate_id, p.promoted_by
            )
        });
    let view = ReleaseView {
        page: page(&state, format!("Milestone {milestone}"), &caller),
        milestone,
        channel: row.channel.clone(),
        branch: row.branch.clone(),
        live,
        candidates,
        history,
        audit,
        can_release: has(&caller, Role::Releaser),
        unfinished_promotion: unfinished,
        policy: policy.panel,
        policy_error: policy.error,
    };
    render(state.dashboard.release(&view), &path)
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

async fn login_form(
    State(state): State<AppState>,
    caller: Result<MaybeCaller, ApiError>,
    Query(q): Query<LoginQuery>,
) -> Result<Html<String>, PageError> {
    let caller = caller.ok().and_then(|c| c.0);
    let view = LoginView {
        page: page(&state, "Log in".into(), &caller),
        error: None,
        next: q.next.filter(|n| local_path(n)),
    };
    render(state.dashboard.login(&view), "/login")
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Only a path on this server: never an open redirect to another site.
fn local_path(next: &str) -> bool {
    next.starts_with('/') && !next.starts_with("//") && !next.contains('\\')
}

fn cookie_safe(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b";,\"\\".contains(&b))
}

async fn login(
    State(state): State<AppState>,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (token, next) = match form {
        Ok(Form(f)) => (f.token.trim().to_string(), f.next),
        Err(e) => return login_failed(&state, &e.body_text(), None),
    };
    let next = next.filter(|n| local_path(n)).unwrap_or_else(|| "/".into());
    let known = cookie_safe(&token) && state.tokens().caller_for(&token).is_some();
    if !known {
        tracing::warn!("dashboard login refused: unknown token");
        return login_failed(&state, "That token is not valid.", Some(next));
    }
    let secure = state.base_url().starts_with("https://");
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    let mut response = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

fn login_failed(state: &AppState, message: &str, next: Option<String>) -> Response {
    let view = LoginView {
        page: page(state, "Log in".into(), &None),
        error: Some(message.to_string()),
        next,
    };
    match state.dashboard.login(&view) {
        Ok(html) => (StatusCode::UNAUTHORIZED, Html(html)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn logout() -> Response {
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("slipway_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", crate::dashboard::STYLE_CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", crate::dashboard::APP_JS)
}

/// Pages name assets with `?v=<fingerprint>`, so the files may be cached for long.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}
