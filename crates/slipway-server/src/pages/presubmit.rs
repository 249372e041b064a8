//! `GET /presubmit` and the review box of a presubmit run's page: the store's review records
//! turned into the dashboard's views.

use axum::extract::State;
use axum::response::Html;
use slipway_store::{ReviewChange, ReviewRun};

use super::{PageError, page, page_caller, render};
use crate::api::reviews::{ReviewsView, changes_view};
use crate::api::runs::RunReview;
use crate::auth::MaybeCaller;
use crate::dashboard::{
    ChangeBrief, ChangeRow, Page, PresubmitView, ReviewPollView, ReviewRunRow, RunReviewView,
    VoteFacts,
};
use crate::error::ApiError;
use crate::state::AppState;

/// As many changes as the run list shows runs.
const CHANGES_SHOWN: i64 = 50;

pub(super) async fn presubmit(
    State(state): State<AppState>,
    caller: Result<MaybeCaller, ApiError>,
) -> Result<Html<String>, PageError> {
    let path = "/presubmit";
    let caller = page_caller(&state, caller, path)?;
    let reviews = changes_view(&state, CHANGES_SHOWN)
        .await
        .map_err(|e| PageError(e, path.to_string()))?;
    let view = presubmit_view(
        page(&state, "Presubmit".into(), &caller),
        report_label(&state),
        reviews,
    );
    render(state.dashboard.presubmit(&view), path)
}

/// The label votes are posted on; `None` when the reporter only comments.
pub(super) fn report_label(state: &AppState) -> Option<String> {
    state
        .config()
        .review
        .as_ref()
        .and_then(|r| r.report_label.clone())
}

fn presubmit_view(page: Page, label: Option<String>, reviews: ReviewsView) -> PresubmitView {
    PresubmitView {
        page,
        configured: reviews.configured,
        label,
        poll: ReviewPollView {
            last_poll: reviews.status.last_poll,
            changes_seen: reviews.status.changes_seen,
            runs_queued: reviews.status.runs_queued,
            errors: reviews.status.errors,
        },
        changes: reviews
            .changes
            .into_iter()
            .map(|c| ChangeRow {
                change: change_brief(c.change),
                runs: c.runs.into_iter().map(review_run_row).collect(),
            })
            .collect(),
    }
}

pub(super) fn run_review(review: RunReview, label: Option<String>) -> RunReviewView {
    RunReviewView {
        change_number: review.run.change_number,
        change: review.change.map(change_brief),
        run: review_run_row(review.run),
        label,
    }
}

fn change_brief(c: ReviewChange) -> ChangeBrief {
    ChangeBrief {
        number: c.change_number,
        url: web_url(c.url),
        updated: rfc3339(&c.updated).unwrap_or(c.updated),
        subject: c.subject,
        owner: c.owner,
        branch: c.branch,
        status: c.status,
        current_patchset: c.current_patchset,
    }
}

fn review_run_row(r: ReviewRun) -> ReviewRunRow {
    ReviewRunRow {
        run_id: r.run_id,
        job: r.job,
        patchset: r.patchset,
        status: r.status.to_string(),
        vote: VoteFacts {
            state: r.vote_state,
            value: r.vote_value,
            attempts: r.vote_attempts,
            note: r.vote_note,
        },
    }
}

/// Only http(s) links: the URL comes from the review server, and a `javascript:` or `data:`
/// one must not become a link on our page.
fn web_url(url: String) -> Option<String> {
    let lower = url.trim_start().to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://")).then_some(url)
}

/// Gerrit's "2026-11-26 09:59:32.126000000" (UTC) as RFC 3339, which the pages' relative
/// times read.
fn rfc3339(gerrit_time: &str) -> Option<String> {
    let nanos = slipway_review::parse_gerrit_time(gerrit_time)?;
    Some(
        chrono::DateTime::from_timestamp_nanos(nanos)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::reviews::ChangeView;
    use crate::review::ReviewStatus;
    use slipway_store::RunStatus;

    fn change(url: &str) -> ReviewChange {
        ReviewChange {
            change_number: 4711,
            project: "crostini/guest".into(),
            branch: "main".into(),
            change_id: "I0123456789abcdef0123456789abcdef01234567".into(),
            subject: "guest-tools: retry apt fetches".into(),
            owner: "alice".into(),
            status: "NEW".into(),
            current_patchset: 3,
            current_revision: "ab".repeat(20),
            url: url.into(),
            updated: "2026-11-26 09:59:32.126000000".into(),
        }
    }

    fn run(patchset: u32, status: RunStatus, vote: &str, value: Option<i32>) -> ReviewRun {
        ReviewRun {
            run_id: 5000 + i64::from(patchset),
            change_number: 4711,
            patchset,
            revision: "cd".repeat(20),
            job: "presubmit".into(),
            status,
            vote_state: vote.into(),
            vote_value: value,
            vote_attempts: 1,
            vote_next_at: None,
            vote_note: Some(format!("note {patchset}")),
        }
    }

    fn page() -> Page {
        Page {
            project: "crostini-guest".into(),
            title: "Presubmit".into(),
            role: None,
            now: "2026-11-26T12:00:00.000Z".into(),
        }
    }

    #[test]
    fn review_records_fill_the_presubmit_view() {
        let reviews = ReviewsView {
            configured: true,
            status: ReviewStatus {
                last_poll: Some("2026-11-26T11:59:00.000Z".into()),
                changes_seen: 1,
                runs_queued: 2,
                errors: vec!["GET /changes/: 503".into()],
            },
            changes: vec![ChangeView {
                change: change("https://review.example.org/c/crostini/guest/+/4711"),
                runs: vec![
                    run(3, RunStatus::Success, "posted", Some(1)),
                    run(2, RunStatus::Cancelled, "none", None),
                ],
            }],
        };
        let v = presubmit_view(page(), Some("Verified".into()), reviews);
        assert!(v.configured);
        assert_eq!(v.label.as_deref(), Some("Verified"));
        assert_eq!(v.poll.errors, ["GET /changes/: 503"]);
        assert_eq!(v.poll.runs_queued, 2);
        let c = &v.changes[0];
        assert_eq!(c.change.number, 4711);
        assert_eq!(c.change.updated, "2026-11-26T09:59:32.126Z");
        assert_eq!(
            c.change.url.as_deref(),
            Some("https://review.example.org/c/crostini/guest/+/4711")
        );
        assert_eq!(c.runs.len(), 2);
        assert_eq!(c.runs[0].status, "success");
        assert_eq!(c.runs[0].vote.state, "posted");
        assert_eq!(c.runs[0].vote.value, Some(1));
        assert_eq!(c.runs[1].status, "cancelled");
        assert_eq!(c.runs[1].vote.note.as_deref(), Some("note 2"));
        let html = crate::dashboard::Dashboard::new()
            .unwrap()
            .presubmit(&v)
            .unwrap();
        assert!(html.contains("Verified +1 posted"));
        assert!(html.contains("none (cancelled)"));
    }

    #[test]
    fn only_web_urls_become_links_and_odd_times_stay_as_given() {
        for bad in [
            "javascript:alert(1)",
            " data:text/html,x",
            "",
            "//evil.example",
        ] {
            assert_eq!(change_brief(change(bad)).url, None, "{bad}");
        }
        assert!(
            change_brief(change("HTTP://review.local/4711"))
                .url
                .is_some()
        );
        let mut c = change("https://r/1");
        c.updated = "yesterday".into();
        assert_eq!(change_brief(c).updated, "yesterday");
    }

    #[test]
    fn a_run_review_keeps_the_change_number_without_the_change() {
        let v = run_review(
            RunReview {
                change: None,
                run: run(1, RunStatus::Failure, "skipped", None),
            },
            None,
        );
        assert_eq!(v.change_number, 4711);
        assert!(v.change.is_none());
        assert_eq!(v.run.patchset, 1);
        assert_eq!(v.run.vote.state, "skipped");
    }
}
