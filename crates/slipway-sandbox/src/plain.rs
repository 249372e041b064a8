//! The plain runner: `/bin/sh -c` as Slipway's own user, in its own process group and cgroup.
//! For trusted builds that set `sandbox = false` (and benchmarks). It sees the whole host.

use std::process::Stdio;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::cgroup::Cgroup;
use crate::runner::{LineSink, Spawned, StepFuture, StepRunner, StepSpec, spawn_failed, supervise};

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
            let cgroup = match Cgroup::create(spec.id, spec.resources) {
                Ok(cg) => cg,
                Err(e) => return spawn_failed(format!("cannot create the step's cgroup: {e}")),
            };
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
            if let Some(cg) = &cgroup {
                if let Err(e) = cg.attach(&mut cmd) {
                    cg.remove();
                    return spawn_failed(format!("cannot join the step's cgroup: {e}"));
                }
            }
            let child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    if let Some(cg) = &cgroup {
                        cg.remove();
                    }
                    return spawn_failed(e.to_string());
                }
            };
            (spec.on_spawn)(&Spawned {
                pid: child.id().map(|p| p as i32).unwrap_or(0),
                cgroup: cgroup.as_ref().map(|c| c.name.clone()),
            });
            let report = supervise(child, cgroup.as_ref(), spec.deadline, sink, cancel).await;
            if let Some(cg) = &cgroup {
                cg.remove();
            }
            report
        })
    }
}
