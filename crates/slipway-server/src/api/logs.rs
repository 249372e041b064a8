//! Build logs: the whole text, and a live Server-Sent Events stream that starts at the first
//! line and follows the file until the build ends (`event: line` per line, then `event: end`
//! with the build's status).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use slipway_engine::LogFollower;

use super::ApiPath;
use crate::auth::MaybeCaller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// How often a live stream looks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

async fn check_build(state: &AppState, run_id: i64, build: &str) -> Result<(), ApiError> {
    state.store.run(run_id).await?;
    if state.store.build_status(run_id, build).await?.is_none() {
        return Err(ApiError::NotFound(format!(
            "run {run_id} has no build '{build}'"
        )));
    }
    Ok(())
}

/// A build's whole log as text (empty while the build has not started).
#[utoipa::path(get, path = "/api/v1/runs/{id}/builds/{build}/log",
    params(("id" = i64, Path, description = "run id"), ("build" = String, Path, description = "build name")),
    responses((status = 200, content_type = "text/plain"), (status = 404, body = ErrorBody)))]
pub async fn text(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath((run_id, build)): ApiPath<(i64, String)>,
) -> Result<Response, ApiError> {
    caller.may_read(state.config().server.public_reads)?;
    check_build(&state, run_id, &build).await?;
    let mut follower = LogFollower::new(run_id, &build);
    let chunk = follower.next(&state.store).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        chunk.bytes,
    )
        .into_response())
}

/// A build's log as Server-Sent Events, from the first line, live while the build runs.
#[utoipa::path(get, path = "/api/v1/runs/{id}/builds/{build}/log/stream",
    params(("id" = i64, Path, description = "run id"), ("build" = String, Path, description = "build name")),
    responses((status = 200, content_type = "text/event-stream"), (status = 404, body = ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath((run_id, build)): ApiPath<(i64, String)>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.may_read(state.config().server.public_reads)?;
    check_build(&state, run_id, &build).await?;
    let follow = Follow {
        state,
        follower: LogFollower::new(run_id, &build),
        partial: Vec::new(),
        pending: std::collections::VecDeque::new(),
        done: false,
        first: true,
    };
    let events = futures::stream::unfold(follow, |mut f| async move {
        loop {
            if let Some(e) = f.pending.pop_front() {
                return Some((Ok(e), f));
            }
            if f.done {
                return None;
            }
            if !f.first {
                tokio::select! {
                    _ = tokio::time::sleep(FOLLOW_EVERY) => {}
                    _ = f.state.shutdown.cancelled() => return None,
                }
            }
            f.first = false;
            f.poll().await;
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

struct Follow {
    state: AppState,
    follower: LogFollower,
    /// Bytes of a line not finished yet.
    partial: Vec<u8>,
    pending: std::collections::VecDeque<Event>,
    done: bool,
    first: bool,
}

impl Follow {
    async fn poll(&mut self) {
        let chunk = match self.follower.next(&self.state.store).await {
            Ok(c) => c,
            Err(e) => {
                let text = as_sse_line(e.to_string().as_bytes());
                self.pending
                    .push_back(Event::default().event("error").data(text));
                self.done = true;
                return;
            }
        };
        self.partial.extend_from_slice(&chunk.bytes);
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            let text = as_sse_line(&line[..line.len() - 1]);
            self.pending
                .push_back(Event::default().event("line").data(text));
        }
        if let Some(status) = chunk.ended {
            if !self.partial.is_empty() {
                let text = as_sse_line(&self.partial);
                self.partial.clear();
                self.pending
                    .push_back(Event::default().event("line").data(text));
            }
            let status = status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into());
            self.pending
                .push_back(Event::default().event("end").data(status));
            self.done = true;
        }
    }
}

/// One log line as SSE data: SSE cannot carry a carriage return, so the text of a line a
/// progress bar redrew with `\r` shows what a terminal would, its last state (after the line's
/// `<time> <stream> | ` prefix).
fn as_sse_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if !text.contains('\r') {
        return text.into_owned();
    }
    let (prefix, body) = match text.split_once(" | ") {
        Some((p, b)) => (format!("{p} | "), b.to_string()),
        None => (String::new(), text.to_string()),
    };
    let last = body
        .rsplit('\r')
        .find(|part| !part.is_empty())
        .unwrap_or("");
    format!("{}{last}", prefix.replace('\r', ""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn carriage_returns_keep_the_last_redraw() {
        assert_eq!(super::as_sse_line(b"10%\r50%\r100%"), "100%");
        assert_eq!(
            super::as_sse_line(b"2026-11-26T07:00:00Z out | 10%\r100%"),
            "2026-11-26T07:00:00Z out | 100%"
        );
        assert_eq!(super::as_sse_line(b"done\r"), "done");
        assert_eq!(super::as_sse_line(b"plain"), "plain");
        assert_eq!(super::as_sse_line(b"\xff ok"), "\u{fffd} ok");
    }
}
