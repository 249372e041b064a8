//! `slipway serve`: continuous triggers per milestone, the run queue and its dispatcher, the
//! HTTP API (v1, JSON), live logs, the release dashboard, and bearer-token auth.
//!
//! Seams: the engine executes a run it is handed (`execute_run`); this crate decides when
//! (queue, limits, locks), and everything it knows lives in the store, so a restart loses
//! nothing: queued runs stay queued, runs a stop interrupted are retried once.

pub mod api;
mod audit;
pub mod auth;
mod cache;
pub mod dashboard;
mod dispatch;
mod error;
mod metrics;
mod pages;
mod policy;
mod reload;
mod review;
mod state;
mod trigger;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use slipway_config::{Config, OnShutdown};
use slipway_store::Store;

pub use auth::{ADMIN_TOKEN_ENV, Tokens};
pub use error::{ApiError, ServerError};
use state::{AppState, StateParts};

pub struct ServeOptions {
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
    /// Checked config (secrets and data dir included).
    pub config: Config,
    pub store: Arc<Store>,
    /// Overrides `[server] listen`.
    pub listen: Option<String>,
    /// The bootstrap admin token (`SLIPWAY_ADMIN_TOKEN`).
    pub bootstrap_token: Option<String>,
}

/// Runs the server until SIGTERM or Ctrl-C. `on_ready` gets the dashboard URL once the socket
/// listens (so a caller can print it, or a test can connect).
pub async fn serve(opts: ServeOptions, on_ready: impl FnOnce(&str)) -> Result<(), ServerError> {
    let tokens =
        Tokens::load(&opts.config, opts.bootstrap_token.as_deref()).map_err(ServerError::Config)?;
    let listen = opts
        .listen
        .clone()
        .unwrap_or_else(|| opts.config.server.listen.clone());
    let addr: SocketAddr = listen.parse().map_err(|_| {
        ServerError::Config(format!(
            "--listen '{listen}' is not an address and port such as 127.0.0.1:8080"
        ))
    })?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Listen {
            addr: listen.clone(),
            source,
        })?;
    let bound = listener.local_addr().map_err(ServerError::Serve)?;
    let base_url = opts
        .config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"));
    if tokens.is_empty() {
        tracing::warn!(
            "no tokens: nothing can trigger, cancel or promote through the API (set {ADMIN_TOKEN_ENV} or [server.tokens])"
        );
    }
    let state = AppState::new(StateParts {
        config_path: opts.config_path,
        data_dir: opts.data_dir,
        config: opts.config,
        tokens,
        bootstrap: opts.bootstrap_token,
        store: opts.store,
        base_url: base_url.clone(),
    })?;
    for id in dispatch::queue_retries(&state).await? {
        tracing::info!(run = id, "retry queued");
    }

    let mut background = vec![
        tokio::spawn(dispatch::run_loop(state.clone())),
        tokio::spawn(trigger::run_loop(state.clone())),
        tokio::spawn(audit::run_loop(state.clone())),
        tokio::spawn(reload::run_loop(state.clone())),
        tokio::spawn(policy::run_loop(state.clone())),
    ];
    background.extend(review::spawn(&state));
    state.dispatcher.wake();

    let app = Router::new()
        .merge(api::router())
        .merge(pages::router())
        .layer(middleware::from_fn_with_state(state.clone(), cached_reads))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            common_headers,
        ))
        .with_state(state.clone());
    on_ready(&base_url);
    tracing::info!(%bound, "listening");

    let stop = state.shutdown.clone();
    tokio::spawn(stop_on_signal(stop.clone()));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        .map_err(ServerError::Serve)?;

    // No new requests now. Runs end as `[server] on_shutdown` says; their ends are recorded.
    match state.config().server.on_shutdown {
        OnShutdown::Cancel => {
            tracing::info!("stopping: cancelling running runs");
            state.dispatcher.cancel_all();
        }
        OnShutdown::Wait => tracing::info!("stopping: waiting for running runs to finish"),
    }
    state.dispatcher.drain().await;
    for task in background {
        task.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

async fn stop_on_signal(stop: tokio_util::sync::CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("stop requested");
    stop.cancel();
}

/// Paths whose GET responses are shared for up to a second (see `cache.rs`).
const CACHED: [&str; 3] = ["/", "/api/v1/branches", "/api/v1/runs"];

async fn cached_reads(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != axum::http::Method::GET || !CACHED.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let role = auth::role_key(request.headers(), &state.tokens());
    let key = format!("{role} {}", request.uri());
    if let Some((content_type, body)) = state.cache.get(&key) {
        return ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response();
    }
    let _computing = state.cache.computing.lock().await;
    if let Some((content_type, body)) = state.cache.get(&key) {
        return ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response();
    }
    let generation = state.cache.generation();
    let response = next.run(request).await;
    if response.status() != axum::http::StatusCode::OK {
        return response;
    }
    let content_type = match response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        Some(t) if t.starts_with("text/html") => "text/html; charset=utf-8",
        Some(t) if t.starts_with("application/json") => "application/json",
        _ => return response,
    };
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, 16 * 1024 * 1024).await {
        Ok(bytes) => {
            state
                .cache
                .put(key, generation, content_type, bytes.clone());
            Response::from_parts(parts, axum::body::Body::from(bytes))
        }
        Err(e) => ApiError::Internal(format!("reading a response: {e}")).into_response(),
    }
}

/// Counts requests and sets the headers every response carries: the dashboard loads nothing
/// from elsewhere and is never framed.
async fn common_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    state.metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        (
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}
