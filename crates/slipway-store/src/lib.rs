//! Slipway's state: runs, builds, steps, artifacts and log index in SQLite (sqlx, migrations),
//! and the content-addressed artifact store on disk.

mod cas;
mod gc;
mod history;
pub mod owner;
mod policy;
mod private;
mod promotion;
mod queue;
mod release;
mod results;
mod review;
mod state;
mod status;
mod suites;
#[cfg(test)]
mod test_support;

pub use cas::{Cas, CasError, StoredFile};
pub use gc::{
    Freed, GcPlan, PublishSource, RetentionPolicy, SweptFiles, publish_hash_cache, remove_tree,
};
pub use history::{RecordedObject, ReleasedCandidate};
pub use policy::{HoldRow, NewPolicyEvent, Notification, PolicyEvent};
pub use private::{PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, create_private_dir, create_private_file};
pub use promotion::{Begin, Promotion};
pub use queue::RunFilter;
pub use release::{Candidate, PublishedObject, Release, manifest_digest};
pub use review::{ReviewChange, ReviewRun, ReviewRunKey, ReviewVote, VoteUpdate};
pub use state::{
    ArtifactRow, BuildRow, LogTotals, NewRun, RunOrigin, RunRow, StepRow, StepStart, Store,
    StoreError,
};
pub use status::{BuildStatus, RunStatus};

/// Current time as RFC 3339 UTC with milliseconds, the one timestamp format of the state.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
pub use results::{
    Environment, NewResult, Recorded, RecordedResult, ResultStatus, ResultTarget, Served,
};
pub use suites::{MAX_FAILED_CASES, SuiteResult, build_source, report_digest};
