//! Reading recorded state: runs, one run, logs, artifacts.

use std::io::Write;
use std::path::{Component, Path};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::context::{absolute, open_store};

pub async fn runs(data_dir: &Path, limit: i64, json: bool) -> Result<ExitCode> {
    let store = open_store(&absolute(data_dir)?).await?;
    let runs = store.list_runs(limit).await?;
    if json {
        super::print_json(&runs)?;
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        println!("no runs yet");
    }
    for r in runs {
        let commit = r
            .commit
            .as_deref()
            .map(|c| &c[..c.len().min(12)])
            .unwrap_or("-");
        println!(
            "{:>5}  {:<11} {:<40} {commit}  {}",
            r.run_id,
            r.status.as_str(),
            r.instance,
            r.created_at
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn show(data_dir: &Path, run_id: i64, json: bool) -> Result<ExitCode> {
    let store = open_store(&absolute(data_dir)?).await?;
    let run = store.run(run_id).await?;
    let mut builds = Vec::new();
    for b in store.builds(run_id).await? {
        let steps = store.steps(run_id, &b.name).await?;
        let artifacts = store.artifacts(run_id, &b.name).await?;
        builds.push((b, steps, artifacts));
    }
    let suites = store.suites_of_run(run_id).await?;
    if json {
        let mut value = serde_json::to_value(&run)?;
        value["suites"] = serde_json::to_value(&suites)?;
        value["builds"] = builds
            .iter()
            .map(|(b, steps, artifacts)| {
                let mut v = serde_json::to_value(b).unwrap_or_default();
                v["steps"] = json!(steps);
                v["artifacts"] = json!(artifacts);
                v
            })
            .collect();
        super::print_json(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("run {} {}: {}", run.run_id, run.instance, run.status);
    println!(
        "  branch {} ({} {}), commit {}",
        run.branch,
        run.channel,
        run.flow,
        run.commit.as_deref().unwrap_or("-")
    );
    println!(
        "  started {}, finished {}",
        run.created_at,
        run.finished_at.as_deref().unwrap_or("-")
    );
    if let Some(e) = &run.error {
        println!("  error: {e}");
    }
    for s in &suites {
        let r = &s.result;
        let verdict = if s.passed { "passed" } else { "FAILED" };
        println!(
            "  suite {} {verdict}: {} tests, {} failures, {} errors, {} skipped",
            r.name, r.tests, r.failures, r.errors, r.skipped
        );
    }
    for (b, steps, artifacts) in &builds {
        let err = b
            .error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        let cut = b
            .log_dropped_bytes
            .map(|d| format!(" [log truncated at its limit; {d} bytes of output dropped]"))
            .unwrap_or_default();
        println!("  {} {}{err}{cut}", b.name, b.status);
        for s in steps {
            let code = s
                .exit_code
                .map(|c| format!(" exit {c}"))
                .unwrap_or_default();
            println!("      step {}: {} [{}{code}]", s.idx, s.command, s.status);
        }
        for a in artifacts {
            println!("      {}  {}  {}", a.sha256, a.size, a.path);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn logs(data_dir: &Path, run_id: i64, build: &str, follow: bool) -> Result<ExitCode> {
    let store = open_store(&absolute(data_dir)?).await?;
    store.run(run_id).await?;
    if store.build_status(run_id, build).await?.is_none() {
        let names: Vec<String> = store
            .builds(run_id)
            .await?
            .into_iter()
            .map(|b| b.name)
            .collect();
        bail!(
            "run {run_id} has no build '{build}' (builds: {})",
            names.join(", ")
        );
    }
    let mut out = std::io::stdout().lock();
    let mut follower = slipway_engine::LogFollower::new(run_id, build);
    loop {
        let chunk = follower.next(&store).await?;
        let done = chunk.ended.is_some();
        if chunk.exists {
            out.write_all(&chunk.bytes)?;
            out.flush()?;
        } else if !follow || done {
            bail!("build '{build}' of run {run_id} has no log (it did not start)");
        }
        if !follow || done {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn artifacts(
    data_dir: &Path,
    run_id: i64,
    build: &str,
    export: Option<&Path>,
    json: bool,
) -> Result<ExitCode> {
    let store = open_store(&absolute(data_dir)?).await?;
    store.run(run_id).await?;
    if store.build_status(run_id, build).await?.is_none() {
        bail!("run {run_id} has no build '{build}'");
    }
    let rows = store.artifacts(run_id, build).await?;
    if let Some(dir) = export {
        for a in &rows {
            let clean = Path::new(&a.path)
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
            if !clean {
                bail!(
                    "artifact path '{}' in the state is not a plain relative path; refusing to export it",
                    a.path
                );
            }
            store
                .cas()
                .export(&a.sha256, &dir.join(&a.path))
                .with_context(|| format!("exporting {}", a.path))?;
        }
        eprintln!("exported {} artifacts to {}", rows.len(), dir.display());
    }
    if json {
        super::print_json(&rows)?;
    } else if export.is_none() {
        for a in &rows {
            println!("{}  {:>10}  {}", a.sha256, a.size, a.path);
        }
    }
    Ok(ExitCode::SUCCESS)
}
