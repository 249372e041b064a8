//! The plain runner: `/bin/sh -c` as Slipway's own user, in its own process group and cgroup.
//! For trusted builds that set `sandbox = false` (and benchmarks). It sees the whole host.

use std::process::Stdio;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::runner::{LineSink, StepFuture, StepRunner, StepSpec, in_cgroup};

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
                cmd.arg("-c")
                    .arg(spec.command)
                    .current_dir(spec.cwd)
                    .env_clear()
                    .envs(spec.env)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .process_group(0)
                    .kill_on_drop(true);
                if let Some(cg) = cgroup {
                    cg.attach(&mut cmd)
                        .map_err(|e| format!("cannot join the step's cgroup: {e}"))?;
                }
                cmd.spawn().map_err(|e| e.to_string())
            })
            .await
        })
    }
}
