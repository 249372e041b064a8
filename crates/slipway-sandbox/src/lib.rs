//! Step runners: how a build's script step becomes processes.
//!
//! The engine starts every step through [`StepRunner`]; it never spawns a step itself. Two
//! runners exist: [`PlainRunner`] (a child process in its own process group and cgroup, for
//! trusted builds that opt out with `sandbox = false`) and [`SandboxRunner`] (bubblewrap in new
//! user, mount, pid, ipc, uts, cgroup and network namespaces, as an unprivileged host id range,
//! seeing only what the step is given). Both put the step in its own cgroup, with limits, and
//! end everything in it when the step ends. Remote workers will be another implementation.

pub mod cgroup;
mod ids;
mod plain;
mod runner;
mod sandbox;

pub use ids::IdRange;
pub use plain::PlainRunner;
pub use runner::{
    Access, Discard, LineSink, Mount, Spawned, StepEnd, StepReport, StepRunner, StepSpec,
};
pub use sandbox::{SandboxRunner, SandboxSettings, probe};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}
