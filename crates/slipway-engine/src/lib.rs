//! The engine: resolves the source at a commit, plans, and executes a run's builds through a
//! step runner (sandboxed by default, see `slipway-sandbox`) with bounded parallelism,
//! timeouts, cancellation, timestamped logs, secrets for trusted privileged builds only, and
//! artifacts stored by sha256.

mod artifacts;
pub mod audit;
pub mod buckets;
pub mod environments;
mod error;
mod events;
mod executor;
mod junit;
mod log_follow;
mod logs;
mod lxd_test;
mod native;
pub mod promote;
pub mod results;
mod secrets;
mod source;
mod tast;
mod workspace;

pub use error::EngineError;
pub use events::{Event, RunEvent};
pub use executor::{
    BuildOutcome, RunOptions, RunOutcome, enqueue, enqueue_head, enqueue_review, execute,
    execute_run,
};
pub use log_follow::{LogChunk, LogFollower};
pub use logs::log_tail;
pub use lxd_test::reap_leftovers as reap_lxd_leftovers;
pub use secrets::{check_secrets, read_secret};
pub use slipway_sandbox::cgroup::reap_orphans;
pub use source::{Prepared, Source, load_builds_at, load_plan, plan_at};
pub use workspace::remove_run_workspaces;
