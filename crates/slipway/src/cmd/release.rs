//! Candidates, promotion, rollback, release history.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use slipway_engine::promote::{self, PromoteOutcome};

use crate::context::{absolute, load_config, load_config_to_act, open_store};

pub async fn publish(
    config_path: &Path,
    data_dir: &Path,
    dir: &Path,
    bucket: &str,
    prefix: &str,
    abort_after: Option<usize>,
) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let target = slipway_engine::buckets::open_bucket(&config, bucket)?;
    // Files unchanged since the last publish of this folder to this place are not hashed again.
    let hash_cache = slipway_store::publish_hash_cache(
        &absolute(data_dir)?,
        slipway_store::PublishSource::Dir(dir),
        bucket,
        prefix,
    );
    let opts = slipway_publish::PublishOptions {
        abort_after,
        concurrency: if abort_after.is_some() { 1 } else { 16 },
        hash_cache,
        ..Default::default()
    };
    let report = slipway_publish::publish_dir(dir, &target, prefix, &opts).await?;
    println!(
        "published {} objects to {}/{prefix}: {} written, {} unchanged; read back and verified",
        report.objects.len(),
        target.url,
        report.uploaded,
        report.unchanged
    );
    Ok(ExitCode::SUCCESS)
}

fn report(outcome: &PromoteOutcome, json: bool) -> Result<ExitCode> {
    if json {
        super::print_json(outcome)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(first) = &outcome.finished_first {
        println!("finished interrupted promotion {} first:", first.operation);
        print_outcome(first);
    }
    print_outcome(outcome);
    Ok(ExitCode::SUCCESS)
}

fn print_outcome(outcome: &PromoteOutcome) {
    let c = &outcome.candidate;
    for copy in &outcome.copies {
        println!(
            "  {}/{prefix} -> {}/{prefix}: {} objects ({} copied), verified",
            copy.from,
            copy.to,
            copy.objects,
            copy.uploaded,
            prefix = copy.prefix
        );
    }
    println!(
        "release {}: milestone {} now serves candidate {} (run {}, digest {}) [{} by {}, operation {}]",
        outcome.release.id,
        c.milestone,
        c.id,
        c.run_id,
        c.digest,
        outcome.release.kind,
        outcome.release.promoted_by,
        outcome.operation
    );
}

pub async fn promote(
    config_path: &Path,
    data_dir: &Path,
    milestone: u32,
    candidate: Option<i64>,
    interrupted: promote::Interrupted,
    json: bool,
) -> Result<ExitCode> {
    let data_dir = absolute(data_dir)?;
    let config = load_config_to_act(config_path, &data_dir)?;
    let store = open_store(&data_dir).await?;
    let chosen = match candidate {
        Some(id) => store.candidate(id).await?,
        None => store
            .candidates(&config.project.name, milestone)
            .await?
            .into_iter()
            .next(),
    };
    if let Some(c) = &chosen {
        eprintln!(
            "promoting candidate {} of milestone {}: run {}, commit {}, {} objects, digest {}{}",
            c.id,
            c.milestone,
            c.run_id,
            c.commit.as_deref().unwrap_or("-"),
            c.objects,
            c.digest,
            if candidate.is_none() {
                " (the newest)"
            } else {
                ""
            }
        );
    }
    let outcome = promote::promote(
        &config,
        &store,
        milestone,
        candidate,
        "promote",
        interrupted,
        &promote::local_actor(),
    )
    .await?;
    report(&outcome, json)
}

pub async fn rollback(
    config_path: &Path,
    data_dir: &Path,
    milestone: u32,
    interrupted: promote::Interrupted,
    json: bool,
) -> Result<ExitCode> {
    let data_dir = absolute(data_dir)?;
    let config = load_config_to_act(config_path, &data_dir)?;
    let store = open_store(&data_dir).await?;
    let outcome = promote::rollback(
        &config,
        &store,
        milestone,
        interrupted,
        &promote::local_actor(),
    )
    .await?;
    report(&outcome, json)
}

pub async fn releases(
    config_path: &Path,
    data_dir: &Path,
    milestone: u32,
    json: bool,
) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let store = open_store(&absolute(data_dir)?).await?;
    let releases = store.releases(&config.project.name, milestone).await?;
    if json {
        super::print_json(&releases)?;
        return Ok(ExitCode::SUCCESS);
    }
    if releases.is_empty() {
        println!("milestone {milestone} has no release yet");
    }
    for (i, r) in releases.iter().enumerate() {
        let live = if i == 0 { "  <- live" } else { "" };
        println!(
            "{:>4}  candidate {:<5} {:<9} {}  {}{live}",
            r.id, r.candidate_id, r.kind, r.promoted_at, r.promoted_by
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn candidates(
    config_path: &Path,
    data_dir: &Path,
    milestone: u32,
    json: bool,
) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let store = open_store(&absolute(data_dir)?).await?;
    let list = store.candidates(&config.project.name, milestone).await?;
    let states = super::policy::states(&config, &store, milestone).await?;
    let promotion = |id: i64| states.candidate(id);
    if json {
        let with: Vec<CandidateView> = list
            .iter()
            .map(|c| CandidateView {
                candidate: c,
                promotion: promotion(c.id),
            })
            .collect();
        super::print_json(&with)?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        println!("milestone {milestone} has no candidate yet");
    }
    for c in &list {
        let commit = c
            .commit
            .as_deref()
            .map(|s| &s[..s.len().min(12)])
            .unwrap_or("-");
        let p = promotion(c.id);
        println!(
            "{:>4}  {:<10}  run {:<5} {commit}  {} objects  {}  {}",
            c.id,
            p.map_or("-", |p| p.state.as_str()),
            c.run_id,
            c.objects,
            c.digest,
            c.created_at
        );
        if let Some(first) = p.and_then(|p| p.reasons.first()) {
            println!("      {first}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A candidate with its promotion state under the release policy: `{state, reasons, suites,
/// soak_left_secs}` (as `slipway why` shows it).
#[derive(serde::Serialize)]
struct CandidateView<'a> {
    #[serde(flatten)]
    candidate: &'a slipway_store::Candidate,
    promotion: Option<&'a slipway_release::CandidateState>,
}
