//! `slipway bench sandbox`: what starting a step costs. In one run, on the same machine: a plain
//! spawn of `sh -c true`, Slipway's plain runner (own process group and cgroup), Slipway's
//! sandboxed runner (cgroup with limits, staged workspace mounts, bubblewrap in new
//! namespaces, a 65,536-id map), and the peers: `bwrap --unshare-all` and `unshare` with a
//! 65,536-id map. With `--example`, the example's `guest_tools` job with and without the
//! sandbox, side by side.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use slipway_config::Resources;
use slipway_sandbox::{
    Access, Discard, Mount, PlainRunner, SandboxRunner, SandboxSettings, StepEnd, StepRunner,
    StepSpec,
};
use tokio_util::sync::CancellationToken;

pub async fn run(steps: usize, example: bool) -> Result<ExitCode> {
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    let dir = tempfile::Builder::new()
        .prefix("slipway-bench-sandbox")
        .tempdir()?;
    let ws = dir.path().join("ws");
    let folders = ["work", "home", "tmp", "inputs", "cache"];
    for f in folders {
        std::fs::create_dir_all(ws.join(f))?;
    }
    let mounts: Vec<Mount> = folders
        .iter()
        .map(|f| Mount {
            path: ws.join(f),
            access: if *f == "inputs" {
                Access::ReadOnly
            } else {
                Access::ReadWrite
            },
        })
        .collect();
    let env: BTreeMap<String, String> = [(
        "PATH".to_string(),
        "/usr/local/bin:/usr/bin:/bin".to_string(),
    )]
    .into_iter()
    .collect();
    let sandbox = SandboxRunner::new(SandboxSettings::default())?;
    let plain = PlainRunner;

    let mut rows: Vec<(&str, Duration)> = Vec::new();
    rows.push((
        "sh -c true (plain spawn)",
        time_command(steps, "/bin/sh", &["-c", "true"]).await?,
    ));
    rows.push((
        "slipway plain runner",
        time_runner(&plain, steps, &ws, &mounts, &env).await?,
    ));
    rows.push((
        "slipway sandboxed step",
        time_runner(&sandbox, steps, &ws, &mounts, &env).await?,
    ));
    let bwrap_args = [
        "--unshare-all",
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/bin",
        "/bin",
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--",
        "/bin/sh",
        "-c",
        "true",
    ];
    rows.push((
        "bwrap --unshare-all",
        time_command(steps, "bwrap", &bwrap_args).await?,
    ));
    match subordinate_start() {
        Some(start) => {
            let map = format!("{start},0,65536");
            let args = [
                "--user",
                &format!("--map-users={map}"),
                &format!("--map-groups={map}"),
                "--pid",
                "--fork",
                "--mount",
                "--net",
                "--ipc",
                "--uts",
                "--cgroup",
                "--",
                "/bin/sh",
                "-c",
                "true",
            ];
            rows.push((
                "unshare, 65,536-id map",
                time_command(steps, "unshare", &args).await?,
            ));
        }
        None => eprintln!("no /etc/subuid range for this user: unshare with an id map skipped"),
    }

    let mut report = String::new();
    writeln!(report, "step start cost, {steps} sequential starts each")?;
    let base = rows[0].1.as_secs_f64() / steps as f64;
    let sandboxed = rows[2].1.as_secs_f64() / steps as f64;
    for (name, total) in &rows {
        let per = total.as_secs_f64() / steps as f64;
        writeln!(
            report,
            "  {name:<28} {:>8.2} ms/step  {:>6.2}x plain spawn  {:>6.2}x slipway sandbox",
            per * 1000.0,
            per / base,
            per / sandboxed
        )?;
    }
    writeln!(
        report,
        "  sandboxed step - plain spawn {:>8.2} ms (goal: within 10 ms)",
        (sandboxed - base) * 1000.0
    )?;
    print!("{report}");
    if example {
        example_side_by_side().await?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn time_command(n: usize, program: &str, args: &[&str]) -> Result<Duration> {
    let start = Instant::now();
    for _ in 0..n {
        let status = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .with_context(|| format!("cannot run {program}"))?;
        if !status.success() {
            bail!("{program} {} failed: {status}", args.join(" "));
        }
    }
    Ok(start.elapsed())
}

async fn time_runner(
    runner: &dyn StepRunner,
    n: usize,
    ws: &Path,
    mounts: &[Mount],
    env: &BTreeMap<String, String>,
) -> Result<Duration> {
    let resources = Resources::default();
    let cancel = CancellationToken::new();
    let start = Instant::now();
    for _ in 0..n {
        let spec = StepSpec {
            command: "true",
            cwd: &ws.join("work"),
            env,
            mounts,
            network: false,
            resources: &resources,
            deadline: tokio::time::Instant::now() + Duration::from_secs(60),
            untrusted: true,
            on_spawn: &|_| {},
        };
        let report = runner.run(spec, &Discard, &cancel).await;
        if report.end != StepEnd::Exited(0) {
            bail!("a {} step ended with {:?}", runner.kind(), report.end);
        }
    }
    Ok(start.elapsed())
}

/// The first id of this user's `/etc/subuid` range (what `unshare --map-users` may map).
fn subordinate_start() -> Option<u64> {
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    std::fs::read_to_string("/etc/subuid")
        .ok()?
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            (who == user && count.parse::<u64>().ok()? >= 65_536).then(|| start.parse().ok())?
        })
        .next()
}

/// The example's `guest_tools` job (continuous, milestone 74): once to warm the caches, then
/// sandboxed and with every step build set `sandbox = false`, each timed as users run it.
async fn example_side_by_side() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("slipway-bench-example")
        .tempdir()?;
    let project = dir.path().join("demo");
    let exe = std::env::current_exe().context("cannot find the slipway binary")?;
    crate::example::init(&project)?;
    let run = |label: &str| -> Result<f64> {
        let start = Instant::now();
        let status = std::process::Command::new(&exe)
            .args(["run", "guest_tools", "--milestone", "74"])
            .current_dir(&project)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            bail!(
                "the example run ({label}) failed; see `slipway runs` in {}",
                project.display()
            );
        }
        Ok(start.elapsed().as_secs_f64())
    };
    run("warm-up")?;
    let sandboxed = run("sandboxed")?;
    let repo = project.join("repo");
    let builds = repo.join(".slipway/builds.toml");
    let text = std::fs::read_to_string(&builds)?;
    let mut plain = String::new();
    for line in text.lines() {
        plain.push_str(line);
        plain.push('\n');
        if line.starts_with("steps = ") {
            plain.push_str("sandbox = false\n");
        }
    }
    std::fs::write(&builds, plain)?;
    // Untrusted jobs may not run unsandboxed builds: the comparison drops them.
    let service = project.join("slipway.toml");
    let text = std::fs::read_to_string(&service)?;
    let kept = text.split("\n[jobs.presubmit").next().unwrap_or(&text);
    std::fs::write(&service, kept)?;
    crate::bench::git(&repo, &["commit", "--quiet", "-am", "bench: no sandbox"])?;
    let unsandboxed = run("sandbox = false")?;
    println!("example guest_tools job (milestone 74, warm caches), as `slipway run` takes it");
    println!("  sandboxed          {sandboxed:>8.2} s");
    println!(
        "  sandbox = false    {unsandboxed:>8.2} s   sandboxed/unsandboxed {:.2}x",
        sandboxed / unsandboxed
    );
    Ok(())
}
