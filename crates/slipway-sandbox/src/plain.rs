//! The plain runner: `/bin/sh -c` as Slipway's own user, in its own process group and cgroup.
//! For trusted builds that set `sandbox = false` (and benchmarks). It sees the whole host.

use std::process::Stdio;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::runner::{LineSink, StepFuture, StepRunner, StepSpec, in_cgroup};

/// `sh -c JOIN_THEN_RUN sh <cgroup.procs files> -- <command>`: joins each cgroup (exit 126 if
/// one refuses), then runs the command as `sh -c` would, with no positional parameters.
pub(crate) const JOIN_THEN_RUN: &str =
    r#"while [ "$1" != -- ]; do echo 0 > "$1" || exit 126; shift; done; shift; eval "set --; $1""#;

#[derive(Debug, Default, Clone)]
pub struct PlainRunner;

impl StepRunner for PlainRunner {
    fn kind(&self) -> &'static str {
        "plain"
    }

    fn run<'a>(
        &'a self,
        spec: StepSpec<'a>,
        sink: &'a dyn LineSink,
        cancel: &'a CancellationToken,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            in_cgroup(&spec, sink, cancel, false, async |cgroup| {
                let mut cmd = Command::new("/bin/sh");
                cmd.arg("-c");
                match cgroup {
                    // The shell joins the step's cgroups itself before it runs the step, so
                    // nothing the step starts is outside them, and the spawn needs no hook
                    // between fork and exec: it is a vfork (posix_spawn), not a fork of
                    // Slipway's whole address space (most of a no-op step's cost).
                    Some(cg) => {
                        cmd.arg(JOIN_THEN_RUN)
                            .arg("sh")
                            .args(cg.procs_paths())
                            .arg("--")
                            .arg(spec.command);
                    }
                    None => {
                        cmd.arg(spec.command);
                    }
                }
                cmd.current_dir(spec.cwd)
                    .env_clear()
                    .envs(spec.env)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .process_group(0)
                    .kill_on_drop(true);
                cmd.spawn().map_err(|e| e.to_string())
            })
            .await
        })
    }
}
