//! `uses = "lxd-test"`: boots an image in a private LXD daemon and checks the guest.
//!
//! Slipway itself (trusted, in-process) does what a test script once did as root, so the code
//! under test never gets a root-equivalent power such as the daemon's socket; the image is data
//! and the unprivileged container is the isolation. The daemon:
//!
//! - lives in `/var/lib/slipway/lxd/r<run>-<build>-<random>` (0711, its parents too), so an
//!   unprivileged container can reach its root file system even when the project lies under a
//!   0700 folder, and LXD's socket paths stay short;
//! - runs in its own cgroup (`slipway/<owner>/r<run>-<build>-lxd-<random>`) and its containers in
//!   children of it (`lxc.cgroup.relative`), so removing the cgroup ends everything, and after
//!   a crash the next Slipway ends what is left ([`reap_leftovers`]);
//! - has no network: a `dir` pool and a default profile holding only the root disk.
//!
//! The results are a JUnit suite (`ContainerTest`) written to `<output>/sponge_log.xml` and
//! recorded like the reports of step builds.

mod capture;
mod cleanup;
mod daemon;
mod guest;
mod report;

use std::fs;
use std::path::{Path, PathBuf};

use slipway_config::{LXD_BUILTIN_CASES, LxdTestSpec, PlannedBuild};
use slipway_sandbox::cgroup::Cgroup;
use slipway_store::BuildStatus;
use tokio::time::Instant;

use crate::executor::{BuildResult, Ctx, fail};
use crate::logs::BuildLog;
use crate::workspace::Workspace;

pub use cleanup::reap_leftovers;
use daemon::{Daemon, finish};
use report::{Outcome, Progress, report_xml};

/// Where the private daemons live. Short: LXD's unix sockets must fit in 108 bytes.
const ROOT: &str = "/var/lib/slipway/lxd";
const REPORT: &str = "sponge_log.xml";

pub(crate) async fn run(
    ctx: &Ctx,
    build: &str,
    spec: &LxdTestSpec,
    ws: &Workspace,
    log: &BuildLog,
) -> BuildResult {
    let planned = ctx
        .plan
        .builds
        .iter()
        .find(|b| b.name == build)
        .ok_or_else(|| fail(format!("build '{build}' is not in the plan")))?;
    // The same limit the executor gives step builds, from (nearly) the same moment.
    let timeout = planned.build.timeout;
    let deadline = Instant::now() + timeout;
    let image = image_dir(ws, spec, planned).map_err(fail)?;
    // SAFETY: geteuid(2) has no failure mode.
    if unsafe { libc::geteuid() } != 0 {
        return Err(fail(
            "lxd-test starts a private LXD daemon, which needs root: run Slipway as root, or leave this build out of the job",
        ));
    }

    let swept = tokio::task::spawn_blocking(reap_leftovers)
        .await
        .unwrap_or_default();
    for dir in swept {
        log.info(&format!("removed {dir}, left by a Slipway that is gone"));
    }

    let mut daemon = Daemon::create(ctx.run_id, build, log.clone()).map_err(fail)?;
    log.info(&format!(
        "private LXD daemon in {} (container {}, no network, `dir` pool)",
        daemon.dir.display(),
        daemon.container
    ));
    let resources = planned.build.resources.over(&ctx.config.sandbox.defaults);
    // The folder's random part keeps two daemons of the same run id and build apart (two
    // projects' runs in one Slipway process).
    let name = format!("r{}-{build}-lxd-{}", ctx.run_id, daemon.tag);
    match Cgroup::create(&name, &resources) {
        Ok(Some(cg)) => {
            log.info(&format!("cgroup {} (daemon and container)", cg.name));
            daemon.cgroup = Some(cg);
        }
        Ok(None) => log.info("no cgroups on this host: the daemon is ended by its pid only"),
        Err(e) => {
            finish(daemon).await;
            return Err(fail(format!("cannot create the LXD daemon's cgroup: {e}")));
        }
    }

    let mut progress = Progress::default();
    enum End {
        Done(Result<(), String>),
        Cancelled,
        TimedOut,
    }
    let end = tokio::select! {
        r = session(&mut daemon, spec, &image, log, &mut progress) => End::Done(r),
        _ = ctx.cancel.cancelled() => End::Cancelled,
        _ = tokio::time::sleep_until(deadline) => End::TimedOut,
    };
    let (result, not_run) = match end {
        End::Done(r) => {
            let why = match &r {
                Ok(()) => "the container did not start".to_string(),
                Err(e) => e.clone(),
            };
            (r.map_err(fail), why)
        }
        End::Cancelled => (
            Err((BuildStatus::Cancelled, "cancelled".to_string())),
            "cancelled".to_string(),
        ),
        End::TimedOut => (
            Err(fail(format!(
                "timed out after {}s while {}; the LXD daemon and its container were stopped",
                timeout.as_secs(),
                progress.phase
            ))),
            format!("the build timed out after {}s", timeout.as_secs()),
        ),
    };
    daemon.stop().await;
    finish(daemon).await;

    let mut reported = Ok(());
    if !progress.cases.is_empty() {
        let names = LXD_BUILTIN_CASES
            .iter()
            .map(|n| n.to_string())
            .chain(spec.checks.iter().map(|c| c.name.clone()));
        for name in names {
            if !progress.cases.iter().any(|c| c.name == name) {
                progress.record(&name, Outcome::NotRun(not_run.clone()), Instant::now(), log);
            }
        }
        let dir = ws.work.join(&spec.output);
        let file = dir.join(REPORT);
        let xml = report_xml(&progress.cases);
        reported = match fs::create_dir_all(&dir).and_then(|_| fs::write(&file, xml)) {
            Ok(()) => crate::junit::record_report(ctx, build, &ws.work, &file, log).await,
            Err(e) => Err(fail(format!("cannot write {}: {e}", file.display()))),
        };
    }
    // How the session ended comes first; a report that could not be recorded next.
    result?;
    reported?;
    let failed: Vec<&str> = progress
        .cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
        .map(|c| c.name.as_str())
        .collect();
    let not_run_count = progress
        .cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::NotRun(_)))
        .count();
    if failed.is_empty() && not_run_count == 0 {
        log.info(&format!(
            "all {} container checks passed",
            progress.cases.len()
        ));
        Ok(())
    } else {
        let not_run = if not_run_count > 0 {
            format!("; {not_run_count} not run")
        } else {
            String::new()
        };
        Err(fail(format!(
            "{} of {} container checks failed: {}{not_run}",
            failed.len(),
            progress.cases.len(),
            failed.join(", ")
        )))
    }
}

/// The image folder among the inputs, with both files LXD imports.
fn image_dir(ws: &Workspace, spec: &LxdTestSpec, build: &PlannedBuild) -> Result<PathBuf, String> {
    let from = spec.image.split('/').next().unwrap_or("");
    if !build.needs.iter().any(|n| n == from) {
        return Err(format!(
            "`with.image` '{}' is not among the inputs: this build needs {}",
            spec.image,
            if build.needs.is_empty() {
                "nothing".to_string()
            } else {
                build.needs.join(", ")
            }
        ));
    }
    let dir = ws.inputs.join(&spec.image);
    let inputs = ws.inputs.canonicalize().map_err(|e| e.to_string())?;
    let real = dir
        .canonicalize()
        .map_err(|e| format!("image folder {}: {e}", spec.image))?;
    if !real.starts_with(&inputs) {
        return Err(format!("image folder {} is outside the inputs", spec.image));
    }
    for f in ["lxd.tar.xz", "rootfs.squashfs"] {
        if !real.join(f).is_file() {
            return Err(format!(
                "image folder {} has no {f} (an LXD image is lxd.tar.xz + rootfs.squashfs)",
                spec.image
            ));
        }
    }
    Ok(real)
}

async fn session(
    d: &mut Daemon,
    spec: &LxdTestSpec,
    image: &Path,
    log: &BuildLog,
    p: &mut Progress,
) -> Result<(), String> {
    p.phase = "starting the LXD daemon".into();
    d.start().await?;
    p.phase = "initialising LXD".into();
    d.init().await?;

    p.phase = "launching the container".into();
    let started = Instant::now();
    match d.launch(image).await {
        Ok(()) => p.record(LXD_BUILTIN_CASES[0], Outcome::Passed, started, log),
        Err(why) => {
            p.record(LXD_BUILTIN_CASES[0], Outcome::Failed(why), started, log);
            return Ok(());
        }
    }

    p.phase = "waiting for the system to boot".into();
    let started = Instant::now();
    let boot = d.wait_boot(spec.boot_timeout).await;
    p.record(LXD_BUILTIN_CASES[1], boot, started, log);

    for check in &spec.checks {
        p.phase = format!("checking {}", check.name);
        let started = Instant::now();
        let outcome = d.check(check).await;
        p.record(&check.name, outcome, started, log);
    }
    Ok(())
}
