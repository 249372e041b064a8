//! What each page shows, as plain owned data the handlers fill from the store. Times are RFC 3339
//! strings as the store keeps them; the templates turn them into compact relative times against
//! `Page::now`, so a page renders the same for the same view (testable, cacheable).

use serde::{Deserialize, Serialize};

/// Header data every page carries.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub project: String,
    pub title: String,
    /// "viewer" | "trigger" | "releaser" | "admin"; `None` when not logged in.
    pub role: Option<String>,
    /// RFC 3339; the reference for relative times.
    pub now: String,
}

/// `GET /`: one row per channel/milestone/branch, one column per job.
#[derive(Debug, Clone, Serialize)]
pub struct HomeView {
    pub page: Page,
    pub jobs: Vec<String>,
    /// Newest milestone first; rendered in the given order.
    pub rows: Vec<HomeRow>,
    /// Milestones whose last audit found drift (a red banner).
    pub drift_milestones: Vec<u32>,
    pub queued: u32,
    pub running: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct HomeRow {
    pub channel: String,
    pub milestone: u32,
    pub branch: String,
    pub active: bool,
    /// Aligned with `HomeView::jobs`; `None`: the job does not run there or has no run yet.
    pub cells: Vec<Option<RunCell>>,
    pub candidate: Option<CandidateBrief>,
    pub release: Option<ReleaseBrief>,
    pub drift: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunCell {
    pub run_id: i64,
    pub status: String,
    pub commit_short: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CandidateBrief {
    pub id: i64,
    pub digest_short: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseBrief {
    pub candidate_id: i64,
    pub promoted_at: String,
}

/// `GET /runs?job=&milestone=&before=`: newest first.
#[derive(Debug, Clone, Serialize)]
pub struct RunsView {
    pub page: Page,
    pub filter_job: Option<String>,
    pub filter_milestone: Option<u32>,
    pub runs: Vec<RunListItem>,
    /// Run id for the "older" link (`?before=<id>`); `None` when there is nothing older.
    pub older_than: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunListItem {
    pub run_id: i64,
    pub job: String,
    pub milestone: u32,
    pub channel: String,
    pub branch: String,
    pub commit_short: Option<String>,
    pub status: String,
    pub trigger: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

/// `GET /runs/{id}`.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub page: Page,
    pub run: RunSummary,
    /// In plan order; the DAG columns are computed from `needs`.
    pub builds: Vec<BuildView>,
    /// Privileged builds the planner removed from an untrusted run.
    pub bypassed: Vec<BypassView>,
    pub can_cancel: bool,
    /// The run is not finished: the page follows it.
    pub live: bool,
    /// The review change and vote of a presubmit run.
    pub review: Option<RunReviewView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: i64,
    pub instance: String,
    pub job: String,
    pub milestone: u32,
    pub channel: String,
    pub branch: String,
    pub commit: Option<String>,
    pub flow: String,
    pub status: String,
    pub error: Option<String>,
    pub trigger: Option<String>,
    pub requested_by: Option<String>,
    pub retry_of: Option<i64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildView {
    pub name: String,
    pub needs: Vec<String>,
    pub status: String,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Preformatted, e.g. "1m 04s"; when `None` the page computes it from the times.
    pub duration: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BypassView {
    pub build: String,
    /// The bypassed build's own (effective) inputs, which its dependents receive instead
    /// (`slipway_config::Bypass::inputs_forwarded`).
    pub inputs_go_to: Vec<String>,
}

/// `GET /milestones/{m}`.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseView {
    pub page: Page,
    pub milestone: u32,
    pub channel: String,
    pub branch: String,
    /// The release production serves now.
    pub live: Option<ReleaseRow>,
    /// Newest first; the first one is shown as "staging candidate". Include the live release's
    /// candidate so its digest and suites can be shown beside it.
    pub candidates: Vec<CandidateRow>,
    /// Newest first.
    pub history: Vec<ReleaseRow>,
    pub audit: Option<AuditView>,
    /// Releaser or admin: promote buttons per candidate and a rollback button.
    pub can_release: bool,
    /// Description of a promotion that did not finish (shown as a warning).
    pub unfinished_promotion: Option<String>,
    /// The release policy panel; `None` with `policy_error` when it could not be evaluated.
    pub policy: Option<PolicyPanel>,
    pub policy_error: Option<String>,
}

/// The release policy of a milestone as the release page shows it (`api::policy::PolicyView`).
#[derive(Debug, Clone, Serialize)]
pub struct PolicyPanel {
    pub auto: bool,
    /// Automatic release is on and this milestone's channel is one it covers.
    pub auto_here: bool,
    /// `[release] channels`; `None`: every channel.
    pub channels: Option<Vec<String>>,
    pub require: Vec<String>,
    pub soak_secs: u64,
    /// 0: never rolls back on its own.
    pub rollback_after: u32,
    pub watch: Vec<String>,
    pub hold: Option<HoldView>,
    /// What the policy would promote now.
    pub promote: Option<PromoteBrief>,
    /// Seconds until a soak ends and the answer may change by itself.
    pub wake_in_secs: Option<i64>,
    /// Newest first.
    pub timeline: Vec<PolicyEventView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HoldView {
    pub held_by: String,
    pub reason: Option<String>,
    pub held_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PromoteBrief {
    pub candidate_id: i64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyEventView {
    pub id: i64,
    /// `promote`, `rollback`, `hold`, `unhold`, `error`.
    pub kind: String,
    pub candidate_id: Option<i64>,
    pub release_id: Option<i64>,
    pub detail: String,
    /// The suite results that justified the action.
    pub results: Vec<i64>,
    pub at: String,
}

/// A candidate's promotion state under the policy ("why not promoted").
#[derive(Debug, Clone, Serialize)]
pub struct CandidatePolicy {
    /// `promoted`, `eligible`, `waiting`, `blocked`, `superseded`, `held`.
    pub state: String,
    /// Most important first.
    pub reasons: Vec<String>,
    /// The required suites, in the policy's order.
    pub suites: Vec<RequiredSuite>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequiredSuite {
    pub suite: String,
    /// `passed`, `failed`, `missing`.
    pub status: String,
    pub result_id: Option<i64>,
    pub failed_cases: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CandidateRow {
    pub id: i64,
    pub run_id: i64,
    pub commit_short: Option<String>,
    pub digest: String,
    pub objects: i64,
    pub created_at: String,
    pub is_live: bool,
    pub suites: Vec<SuiteBrief>,
    /// `None` when the policy could not be evaluated or does not know the candidate.
    pub policy: Option<CandidatePolicy>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteBrief {
    pub name: String,
    pub passed: bool,
    pub tests: i64,
    pub failures: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseRow {
    pub id: i64,
    pub candidate_id: i64,
    /// "promote" | "rollback" | ...
    pub kind: String,
    pub promoted_by: String,
    pub promoted_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditView {
    pub checked_at: String,
    pub drift: bool,
    /// Findings, one per line.
    pub lines: Vec<String>,
    /// The audit itself failed.
    pub error: Option<String>,
}

/// `GET /login`.
#[derive(Debug, Clone, Serialize)]
pub struct LoginView {
    pub page: Page,
    pub error: Option<String>,
    /// Where to go after logging in (a local path).
    pub next: Option<String>,
}

/// `GET /presubmit`: the review changes Slipway watches, newest update first.
#[derive(Debug, Clone, Serialize)]
pub struct PresubmitView {
    pub page: Page,
    /// Whether `[review]` is configured; when not, the page says so instead of listing.
    pub configured: bool,
    /// `[review] report_label` ("Verified"); `None`: votes are comments only.
    pub label: Option<String>,
    pub poll: ReviewPollView,
    pub changes: Vec<ChangeRow>,
}

/// The review poller's last report.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewPollView {
    /// RFC 3339; `None` before the first poll.
    pub last_poll: Option<String>,
    pub changes_seen: usize,
    pub runs_queued: u64,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChangeRow {
    pub change: ChangeBrief,
    /// Newest first.
    pub runs: Vec<ReviewRunRow>,
}

/// A review change as the review server last showed it.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeBrief {
    pub number: i64,
    /// The change's page on the review server; `None` unless it is an http(s) URL, so a
    /// stored value can never become a `javascript:` link.
    pub url: Option<String>,
    pub subject: String,
    pub owner: String,
    pub branch: String,
    /// The review server's status: NEW, MERGED, ABANDONED.
    pub status: String,
    pub current_patchset: u32,
    /// RFC 3339.
    pub updated: String,
}

/// One presubmit run of a change and its vote back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReviewRunRow {
    pub run_id: i64,
    pub job: String,
    pub patchset: u32,
    /// The run's status.
    pub status: String,
    pub vote: VoteFacts,
}

/// A run's vote as recorded; the page words it (`vote_text`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VoteFacts {
    /// `pending`, `sending`, `posted`, `skipped`, `failed`, `none`.
    pub state: String,
    pub value: Option<i32>,
    pub attempts: i64,
    pub note: Option<String>,
}

/// The review box of a presubmit run's page.
#[derive(Debug, Clone, Serialize)]
pub struct RunReviewView {
    pub change_number: i64,
    /// `None` when the change is no longer recorded.
    pub change: Option<ChangeBrief>,
    pub run: ReviewRunRow,
    pub label: Option<String>,
}
