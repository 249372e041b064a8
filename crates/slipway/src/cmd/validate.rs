use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use slipway_engine::{Source, load_builds_at};

use crate::context::{absolute, load_config};

/// Checks the service file (with the data dir and the secrets it names), then the builds file
/// at the head of every branch a job runs on (each branch builds with its own recipe, so each
/// must be valid with this service config).
pub async fn validate(config_path: &Path, data_dir: &Path) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let data_dir = absolute(data_dir)?;
    let mut failed = false;
    // What the service file alone cannot tell: where the data dir is, and whether each secret
    // is there and private on this host.
    for checked in [
        config.check_data_dir(&data_dir),
        slipway_engine::check_secrets(&config),
    ] {
        if let Err(errors) = checked {
            failed = true;
            eprintln!("{errors}");
        }
    }
    let source = Source::open(&config, &data_dir)?;
    let mut branches = BTreeSet::new();
    for job in config.jobs.values() {
        for row in config.rows_for(job) {
            branches.insert(row.branch.clone());
        }
    }
    for branch in &branches {
        let checked = source
            .branch_head(branch)
            .and_then(|commit| load_builds_at(&config, &source, &commit).map(|b| (commit, b)));
        let result = checked
            .map_err(anyhow::Error::from)
            .and_then(|(commit, builds)| {
                slipway_config::validate(&config, &builds).map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok((commit, builds.map.len()))
            });
        match result {
            Ok((commit, n)) => println!(
                "ok: {branch} at {} ({n} builds)",
                &commit[..commit.len().min(12)]
            ),
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    if failed {
        eprintln!("error: {} is not valid", config_path.display());
        return Ok(ExitCode::from(1));
    }
    println!(
        "ok: {} ({} jobs, {} branches)",
        config_path.display(),
        config.jobs.len(),
        branches.len()
    );
    Ok(ExitCode::SUCCESS)
}
