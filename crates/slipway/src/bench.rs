//! `slipway bench plan`: the scheduler's overhead per build. Plans and runs a synthetic DAG of
//! no-op builds (`true`) through the real engine (state, logs, workspaces), then spawns the same
//! processes directly with the same parallelism, in the same process, and prints both. The
//! builds use the plain runner unless `--sandbox` (what the sandbox adds per step is
//! `bench sandbox`'s subject). The data dir is a temporary folder under `$TMPDIR`; the report
//! names its file system (`TMPDIR=/dev/shm` measures on tmpfs) and, besides wall time, the CPU
//! time of each phase (Slipway and its children), which a busy shared machine disturbs less.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use slipway_config::Config;
use slipway_engine::{RunOptions, execute, load_plan};
use slipway_store::{RunStatus, Store};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub async fn plan(builds: usize, jobs: usize, sandbox: bool) -> Result<ExitCode> {
    if builds == 0 || jobs == 0 {
        bail!("--builds and --jobs must be at least 1");
    }
    let dir = tempfile::Builder::new().prefix("slipway-bench").tempdir()?;
    let config_path = write_project(dir.path(), builds, sandbox)?;
    let config = Arc::new(Config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?);
    let data_dir = dir.path().join("data");
    let store = Arc::new(Store::open(&data_dir).await?);

    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let prepared = load_plan(&config, &data_dir, "bench", 1, None)?;
    let planned = t0.elapsed();
    let t1 = Instant::now();
    let outcome = execute(
        config,
        store,
        prepared,
        RunOptions {
            jobs,
            ..RunOptions::default()
        },
        CancellationToken::new(),
        None,
    )
    .await?;
    let executed = t1.elapsed();
    let slipway_cpu = cpu_time().saturating_sub(cpu0);
    if outcome.status != RunStatus::Success {
        bail!(
            "benchmark run {} ended {}: {:?}",
            outcome.run_id,
            outcome.status,
            outcome.error
        );
    }
    let cpu1 = cpu_time();
    let direct = spawn_directly(builds, jobs).await?;
    let direct_cpu = cpu_time().saturating_sub(cpu1);

    let slipway = planned + executed;
    let overhead_ms = (slipway.as_secs_f64() - direct.as_secs_f64()) * 1000.0 / builds as f64;
    let mut report = String::new();
    writeln!(
        report,
        "scheduler benchmark: {builds} no-op builds (`true`), --jobs {jobs}, {}",
        if sandbox { "sandboxed" } else { "plain runner" }
    )?;
    writeln!(
        report,
        "  data dir on {} ({})",
        fs_kind(dir.path()),
        dir.path().display()
    )?;
    writeln!(
        report,
        "  slipway plan              {:>9.3} s",
        planned.as_secs_f64()
    )?;
    writeln!(
        report,
        "  slipway execute           {:>9.3} s",
        executed.as_secs_f64()
    )?;
    writeln!(
        report,
        "  direct spawn (sh -c true) {:>9.3} s",
        direct.as_secs_f64()
    )?;
    writeln!(
        report,
        "  ratio slipway/direct      {:>9.2}x",
        slipway.as_secs_f64() / direct.as_secs_f64().max(1e-9)
    )?;
    writeln!(
        report,
        "  overhead per build        {overhead_ms:>9.3} ms (target < 1 ms)"
    )?;
    writeln!(
        report,
        "  cpu slipway / direct      {:>9.3} s / {:.3} s (user+sys, children included)",
        slipway_cpu.as_secs_f64(),
        direct_cpu.as_secs_f64()
    )?;
    writeln!(
        report,
        "  cpu overhead per build    {:>9.3} ms",
        (slipway_cpu.as_secs_f64() - direct_cpu.as_secs_f64()) * 1000.0 / builds as f64
    )?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// User + system CPU time of this process and its waited-for children so far.
fn cpu_time() -> Duration {
    let used = |who| {
        // SAFETY: getrusage only writes the struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut u) } != 0 {
            return Duration::ZERO;
        }
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec.max(0) as u64)
                + Duration::from_micros(t.tv_usec.max(0) as u64)
        };
        tv(u.ru_utime) + tv(u.ru_stime)
    };
    used(libc::RUSAGE_SELF) + used(libc::RUSAGE_CHILDREN)
}

/// The kind of file system holding `path`, for the report (tmpfs and disks differ a lot).
fn fs_kind(path: &std::path::Path) -> &'static str {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return "an unknown file system";
    };
    // SAFETY: statfs writes only the struct it is given; `c` is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return "an unknown file system";
    }
    match st.f_type as i64 {
        0x0102_1994 => "tmpfs",
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x794C_7630 => "overlayfs",
        _ => "another file system",
    }
}

/// A project whose repo holds one file and whose builds form a binary tree: build i needs
/// build (i-1)/2, so there is always work for every job slot.
fn write_project(
    dir: &std::path::Path,
    builds: usize,
    sandbox: bool,
) -> Result<std::path::PathBuf> {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo)?;
    std::fs::write(repo.join("README"), "benchmark\n")?;
    git(&repo, &["init", "--quiet", "--initial-branch=main"])?;
    git(&repo, &["add", "README"])?;
    git(&repo, &["commit", "--quiet", "-m", "bench"])?;
    let mut toml = String::from(
        "[project]\nname = \"bench\"\nrepo = \"repo\"\n\n[[branches]]\nchannel = \"canary\"\nmilestone = 1\nbranch = \"main\"\n\n",
    );
    let names: Vec<String> = (0..builds).map(|i| format!("b{i:05}")).collect();
    writeln!(
        toml,
        "[jobs.bench]\ntrigger = \"manual\"\nbranches = \"active\"\nbuilds = {:?}\n",
        names
    )?;
    for (i, name) in names.iter().enumerate() {
        writeln!(toml, "[builds.{name}]\nsteps = [\"true\"]")?;
        if !sandbox {
            // The scheduler's own cost; `bench sandbox` measures what isolation adds.
            writeln!(toml, "sandbox = false")?;
        }
        if i > 0 {
            writeln!(toml, "needs = [\"{}\"]", names[(i - 1) / 2])?;
        }
    }
    let path = dir.join("slipway.toml");
    std::fs::write(&path, toml)?;
    Ok(path)
}

/// Runs git in a benchmark's repository, as a fixed committer.
pub(crate) fn git(repo: &std::path::Path, args: &[&str]) -> Result<()> {
    let ok = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.org",
        ])
        .args(args)
        .status()
        .context("cannot run git")?;
    if !ok.success() {
        bail!("git {} failed", args.join(" "));
    }
    Ok(())
}

async fn spawn_directly(n: usize, jobs: usize) -> Result<Duration> {
    let permits = Arc::new(Semaphore::new(jobs));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let permits = permits.clone();
        tasks.spawn(async move {
            let _p = permits.acquire_owned().await.ok()?;
            tokio::process::Command::new("/bin/sh")
                .args(["-c", "true"])
                .status()
                .await
                .ok()
        });
    }
    while let Some(r) = tasks.join_next().await {
        if !r.ok().flatten().is_some_and(|s| s.success()) {
            bail!("a directly spawned process failed");
        }
    }
    Ok(start.elapsed())
}
