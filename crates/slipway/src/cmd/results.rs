//! Suite results (listing, recording a lab's report) and what environments serve for labs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use slipway_engine::environments::{EnvironmentView, environments as served_now};
use slipway_engine::results::{Ingest, ReportFormat, ingest, read_report_file};
use slipway_store::{RecordedResult, ResultTarget};

use crate::context::{absolute, load_config, open_store};

fn short(digest: Option<&str>) -> &str {
    digest.map(|d| &d[..d.len().min(12)]).unwrap_or("-")
}

fn verdict(r: &RecordedResult) -> String {
    let mut v = if r.passed { "passed" } else { "FAILED" }.to_string();
    if r.stale {
        v.push_str(" (stale)");
    }
    v
}

pub async fn suites(data_dir: &Path, candidate: i64, json: bool) -> Result<ExitCode> {
    let store = open_store(&absolute(data_dir)?).await?;
    anyhow::ensure!(
        store.candidate(candidate).await?.is_some(),
        "no candidate {candidate}"
    );
    let suites = store.suites_of_candidate(candidate).await?;
    if json {
        super::print_json(&suites)?;
        return Ok(ExitCode::SUCCESS);
    }
    if suites.is_empty() {
        println!("candidate {candidate} has no suite results yet");
    }
    for s in suites {
        let r = &s.result;
        println!(
            "{:>4}  {:<16} {:<10} {:<16} {} tests, {} failures, {} errors, {} skipped  ({}{})",
            s.id,
            s.suite,
            s.environment.as_str(),
            verdict(&s),
            r.tests,
            r.failures,
            r.errors,
            r.skipped,
            r.source,
            s.reporter
                .as_deref()
                .map(|b| format!(", by {b}"))
                .unwrap_or_default()
        );
        if !r.failed_cases.is_empty() {
            println!("      failed: {}", r.failed_cases.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub struct RecordArgs {
    pub candidate: Option<i64>,
    pub release: Option<i64>,
    pub suite: Option<String>,
    pub junit: Option<PathBuf>,
    pub tast: Option<PathBuf>,
    pub link: Option<String>,
    pub json: bool,
}

pub async fn record(config: &Path, data_dir: &Path, args: RecordArgs) -> Result<ExitCode> {
    // clap makes exactly one of each pair present.
    let target = match (args.candidate, args.release) {
        (Some(c), _) => ResultTarget::Candidate(c),
        (None, Some(r)) => ResultTarget::Release(r),
        (None, None) => anyhow::bail!("name the target: --candidate ID or --release ID"),
    };
    let (format, path) = match (&args.junit, &args.tast) {
        (Some(p), _) => (ReportFormat::Junit, p),
        (None, Some(p)) => (ReportFormat::Tast, p),
        (None, None) => anyhow::bail!("name the report: --junit FILE or --tast FILE"),
    };
    let report = read_report_file(path)?;
    let store = open_store(&absolute(data_dir)?).await?;
    let recorded = ingest(
        &store,
        &Ingest {
            target,
            suite: args.suite.as_deref(),
            format,
            report: &report,
            link: args.link.as_deref(),
            started_at: None,
            ended_at: None,
            reporter: "cli",
        },
    )
    .await?;
    let about = recorded.first().and_then(|r| r.result.candidate_id);
    if recorded.iter().any(|r| !r.duplicate) {
        super::policy::after_result(config, data_dir, &store, about).await;
    }
    if args.json {
        match recorded.as_slice() {
            [one] => super::print_json(one)?,
            all => super::print_json(&all)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    for r in &recorded {
        let res = &r.result;
        let candidate = res
            .candidate_id
            .map_or_else(|| "-".to_string(), |c| c.to_string());
        let about = match res.release_id {
            Some(rel) => format!("release {rel} (candidate {candidate})"),
            None => format!("candidate {candidate}"),
        };
        let what = if r.duplicate {
            "already recorded (duplicate)"
        } else {
            "recorded"
        };
        println!(
            "result {} {what}: {} {} on {} {about}, digest {}",
            res.id,
            res.suite,
            verdict(res),
            res.environment.as_str(),
            short(res.target_digest.as_deref()),
        );
        if !res.result.failed_cases.is_empty() {
            println!("  failed: {}", res.result.failed_cases.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_environment(name: &str, v: &EnvironmentView) {
    let Some(candidate) = v.candidate_id else {
        println!("{name}: serves nothing yet");
        return;
    };
    let release = v
        .release_id
        .map(|r| format!("release {r}, "))
        .unwrap_or_default();
    println!(
        "{name}: {release}candidate {candidate}, digest {}",
        v.digest.as_deref().unwrap_or("-")
    );
    for b in &v.buckets {
        println!(
            "  bucket {} {}",
            b.bucket,
            b.url.as_deref().unwrap_or("(not configured)")
        );
    }
    for a in &v.apt {
        println!("  apt {} {}", a.url, a.codenames.join(" "));
    }
    for s in &v.streams {
        println!("  streams {s}");
    }
    for i in &v.vm_images {
        println!("  vm image {i}");
    }
}

pub async fn environments(
    config_path: &Path,
    data_dir: &Path,
    milestone: u32,
    json: bool,
) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    anyhow::ensure!(
        config.row(milestone).is_some(),
        "milestone {milestone} is not in the branch table"
    );
    let store = open_store(&absolute(data_dir)?).await?;
    let envs = served_now(&config, &store, milestone).await?;
    if json {
        super::print_json(&envs)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_environment("staging", &envs.staging);
    print_environment("production", &envs.production);
    Ok(ExitCode::SUCCESS)
}
