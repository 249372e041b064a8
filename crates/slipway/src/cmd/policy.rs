//! The release policy from the command line: holds.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::context::{absolute, load_config, load_config_to_act, open_store};

/// Holds (or lifts the hold on) a milestone: no automatic promotion while held.
pub async fn hold(
    config_path: &Path,
    data_dir: &Path,
    milestone: u32,
    reason: Option<String>,
    lift: bool,
) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    anyhow::ensure!(
        config.row(milestone).is_some(),
        "milestone {milestone} is not in the branch table"
    );
    let store = open_store(&absolute(data_dir)?).await?;
    let project = &config.project.name;
    let by = slipway_engine::promote::local_actor();
    if lift {
        match slipway_release::unhold(&store, project, milestone, &by).await? {
            Some(detail) => println!("milestone {milestone}: {detail}"),
            None => println!("milestone {milestone} was not held"),
        }
    } else {
        let detail =
            slipway_release::hold(&store, project, milestone, &by, reason.as_deref()).await?;
        println!(
            "milestone {milestone}: {detail}; no automatic promotion until `slipway unhold --milestone {milestone}`"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `slipway release evaluate`: evaluates the milestone's policy now and does what it decides.
pub async fn evaluate(
    config_path: &Path,
    data_dir: &Path,
    milestone: u32,
    json: bool,
) -> Result<ExitCode> {
    let config = load_config_to_act(config_path, data_dir)?;
    let store = open_store(&absolute(data_dir)?).await?;
    let report = slipway_release::evaluate_milestone(&config, &store, milestone).await?;
    if json {
        super::print_json(&report)?;
    } else {
        if let Some(r) = &report.rolled_back {
            println!("rolled back release {}: {}", r.release_id, r.reason);
        }
        if let Some(c) = report.promoted {
            println!("promoted candidate {c}");
        }
        if report.promoted.is_none() && report.rolled_back.is_none() {
            println!("nothing to do");
        }
        print_states(&report.evaluation, None);
        for e in &report.errors {
            eprintln!("error: {e}");
        }
    }
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `slipway why`: every candidate's promotion state and reasons (or one candidate's).
pub async fn why(
    config_path: &Path,
    data_dir: &Path,
    milestone: u32,
    candidate: Option<i64>,
    json: bool,
) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let store = open_store(&absolute(data_dir)?).await?;
    let evaluation = states(&config, &store, milestone).await?;
    if let Some(id) = candidate {
        anyhow::ensure!(
            evaluation.candidate(id).is_some(),
            "milestone {milestone} has no candidate {id}"
        );
    }
    if json {
        let list: Vec<_> = evaluation
            .candidates
            .iter()
            .filter(|c| candidate.is_none_or(|id| c.id == id))
            .collect();
        super::print_json(&list)?;
    } else {
        print_states(&evaluation, candidate);
    }
    Ok(ExitCode::SUCCESS)
}

/// The policy's view of the milestone now, without acting on it.
pub async fn states(
    config: &slipway_config::Config,
    store: &slipway_store::Store,
    milestone: u32,
) -> Result<slipway_release::Evaluation> {
    Ok(slipway_release::states(config, store, milestone).await?)
}

fn print_states(evaluation: &slipway_release::Evaluation, only: Option<i64>) {
    if evaluation.candidates.is_empty() {
        println!("no candidate yet");
    }
    for c in &evaluation.candidates {
        if only.is_some_and(|id| id != c.id) {
            continue;
        }
        println!(
            "candidate {:>4}  {:<10}  {}",
            c.id,
            c.state.as_str(),
            &c.digest[..c.digest.len().min(12)]
        );
        for r in &c.reasons {
            println!("    {r}");
        }
        for s in &c.suites {
            let cases = if s.failed_cases.is_empty() {
                String::new()
            } else {
                format!(" ({})", s.failed_cases.join(", "))
            };
            println!("    suite {:<12} {:?}{cases}", s.suite, s.status);
        }
    }
}

/// After a result is recorded from the command line: evaluates its milestone's policy (when
/// the config allows acting), so a passing suite can promote at once and a failing watch suite
/// can roll back. The result stays recorded whatever happens here.
pub async fn after_result(
    config_path: &Path,
    data_dir: &Path,
    store: &slipway_store::Store,
    candidate_id: Option<i64>,
) {
    let Some(candidate) = candidate_id else {
        return;
    };
    let config = match load_config_to_act(config_path, data_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("note: the release policy was not evaluated: {e:#}");
            return;
        }
    };
    let milestone = match store.candidate(candidate).await {
        Ok(Some(c)) => c.milestone,
        _ => return,
    };
    match slipway_release::evaluate_milestone(&config, store, milestone).await {
        Ok(report) => {
            if let Some(r) = &report.rolled_back {
                eprintln!(
                    "release policy: rolled back release {}: {}",
                    r.release_id, r.reason
                );
            }
            if let Some(c) = report.promoted {
                eprintln!("release policy: promoted candidate {c} on milestone {milestone}");
            }
            for e in &report.errors {
                eprintln!("release policy: {e}");
            }
        }
        Err(e) => eprintln!("release policy: {e}"),
    }
}
