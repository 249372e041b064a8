//! Presubmit from code review (Gerrit): `intake.rs` reads changes (a poll of the project's open
//! changes from a persisted cursor, or one change a webhook named) and queues a run once per
//! crossing of a job's label on the current patch set; `report.rs` votes each finished run's
//! verdict back, exactly once. The bot's password is read here, by the server, never by a run.

mod intake;
mod report;

use std::sync::Mutex;

use serde::Serialize;
use slipway_config::{Config, ReviewConfig, Trigger};
use slipway_review::gerrit::Gerrit;
use tokio::sync::{Notify, mpsc};

pub use intake::{ReviewPollReport, poll_once};

use crate::state::{AppState, lock};

/// The review side of the server's state.
pub struct ReviewState {
    /// Changes a webhook asked to look at now.
    requests: mpsc::UnboundedSender<i64>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<i64>>>,
    /// Wakes the reporter (a run ended).
    pub votes_wake: Notify,
    /// Wakes the intake for a poll now.
    pub poll_now: Notify,
    /// Observations of changes in this process, one at a time.
    intake: tokio::sync::Mutex<()>,
    pub status: Mutex<ReviewStatus>,
}

impl Default for ReviewState {
    fn default() -> Self {
        let (requests, receiver) = mpsc::unbounded_channel();
        ReviewState {
            requests,
            receiver: Mutex::new(Some(receiver)),
            votes_wake: Notify::new(),
            poll_now: Notify::new(),
            intake: tokio::sync::Mutex::new(()),
            status: Mutex::new(ReviewStatus::default()),
        }
    }
}

impl ReviewState {
    /// Asks the intake to read change `number` now (a webhook delivery).
    pub fn look_at(&self, number: i64) {
        let _ = self.requests.send(number);
    }
}

/// The last poll of the review server.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ReviewStatus {
    pub last_poll: Option<String>,
    /// Changes the last poll read.
    pub changes_seen: usize,
    /// Runs queued since the server started.
    pub runs_queued: u64,
    pub errors: Vec<String>,
}

/// The review-triggered jobs of the config.
fn review_jobs(config: &Config) -> Vec<(&slipway_config::Job, &slipway_config::ReviewTrigger)> {
    config
        .jobs
        .values()
        .filter_map(|j| match &j.trigger {
            Trigger::Review(t) => Some((j, t)),
            _ => None,
        })
        .collect()
}

/// A client of the configured review server with the bot's credentials.
fn client(config: &Config, review: &ReviewConfig) -> Result<Gerrit, String> {
    let password = slipway_engine::read_secret(config, &review.password_secret)?;
    let password = String::from_utf8(password)
        .map_err(|_| format!("secret '{}' is not text", review.password_secret))?;
    Gerrit::new(&review.url, &review.user, password.trim()).map_err(|e| e.to_string())
}

/// Starts the intake and reporter loops when `[review]` is configured (they read the config
/// again at every turn, so a reload that adds or removes it takes effect).
pub fn spawn(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let receiver = lock(&state.review.receiver).take();
    let mut tasks = Vec::new();
    if let Some(rx) = receiver {
        tasks.push(tokio::spawn(intake::run_loop(state.clone(), rx)));
    }
    tasks.push(tokio::spawn(report::run_loop(state.clone())));
    let config = state.config();
    if config.review.is_none() && !review_jobs(&config).is_empty() {
        tracing::warn!(
            "jobs {} are review-triggered but [review] is not configured: they will not run",
            review_jobs(&config)
                .iter()
                .map(|(j, _)| j.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    tasks
}
