//! Slipway configuration: the service file (`slipway.toml`), the builds file read from the product
//! repository at the commit being built, their validation (every error carries `file:line:col`),
//! and the planner that turns a job + milestone into an ordered DAG with untrusted bypasses.

mod buckets;
mod builds;
mod diag;
mod duration;
mod native;
mod notify;
mod plan;
mod release;
mod resources;
mod retention;
mod review;
mod server;
mod service;
mod validate;

pub use buckets::Bucket;
pub use builds::{ArtifactSpec, Build, Builds};
pub use diag::{ConfigError, ConfigErrors, Loc, SourceText};
pub use duration::parse_duration;
pub use native::{
    AptRepoSpec, AptSignSpec, DebSelection, LXD_BUILTIN_CASES, LxdCheck, LxdTestSpec, NativeAction,
    StreamsSpec,
};
pub use notify::NotifyConfig;
pub use plan::{Bypass, Flow, Plan, PlanError, PlannedBuild, branch_for, plan};
pub use release::{ReleasePolicy, is_suite_name};
pub use resources::{DEFAULT_MEMORY, DEFAULT_PIDS, Limits, Resources, parse_size};
pub use retention::{DEFAULT_KEEP_DAYS, DEFAULT_KEEP_LAST, DEFAULT_KEEP_RELEASES, RetentionConfig};
pub use review::{ReviewConfig, is_label};
pub use server::{DEFAULT_LISTEN, OnShutdown, Role, ServerConfig, TokenConfig};
pub use service::{
    BranchRow, BranchSelector, Config, DEFAULT_LOG_LIMIT, Job, Project, ReviewTrigger,
    SandboxConfig, Secret, SecretSource, Trigger,
};
pub use validate::validate;

#[cfg(test)]
mod tests;
