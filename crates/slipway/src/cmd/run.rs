use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use slipway_engine::{RunOptions, execute, load_plan};
use slipway_store::RunStatus;
use tokio_util::sync::CancellationToken;

use crate::context::{absolute, load_config_to_act, open_store};
use crate::progress;

pub struct RunArgs {
    pub job: String,
    pub milestone: u32,
    pub commit: Option<String>,
    pub jobs: Option<usize>,
    pub keep_workspaces: bool,
    pub json: bool,
}

pub async fn run(config_path: &Path, data_dir: &Path, args: RunArgs) -> Result<ExitCode> {
    let data_dir = absolute(data_dir)?;
    let config = Arc::new(load_config_to_act(config_path, &data_dir)?);
    let store = open_store(&data_dir).await?;
    let prepared = load_plan(
        &config,
        &data_dir,
        &args.job,
        args.milestone,
        args.commit.as_deref(),
    )?;

    let cancel = CancellationToken::new();
    tokio::spawn(cancel_on_signal(cancel.clone()));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let live = std::io::stderr().is_terminal();
    let display = tokio::spawn(progress::show(rx, live));

    let mut opts = RunOptions {
        keep_workspaces: args.keep_workspaces,
        ..RunOptions::default()
    };
    if let Some(j) = args.jobs {
        anyhow::ensure!(j > 0, "--jobs must be at least 1");
        opts.jobs = j;
    }
    let outcome = execute(
        config.clone(),
        store.clone(),
        prepared,
        opts,
        cancel,
        Some(tx),
    )
    .await?;
    let _ = display.await;
    // A new candidate (with its builds' suites) may satisfy the release policy at once.
    if config.release.auto {
        if let Some(c) = &outcome.candidate {
            super::policy::after_result(config_path, &data_dir, &store, Some(c.id)).await;
        }
    }

    if args.json {
        super::print_json(&outcome)?;
    } else {
        println!(
            "run {} {}: {}",
            outcome.run_id, outcome.instance, outcome.status
        );
        for b in &outcome.builds {
            let err = b
                .error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            println!("  {:<24} {}{err}", b.name, b.status);
        }
        if let Some(e) = &outcome.error {
            println!("{e}");
        }
    }
    Ok(match outcome.status {
        RunStatus::Success => ExitCode::SUCCESS,
        RunStatus::Cancelled => ExitCode::from(130),
        _ => ExitCode::from(1),
    })
}

async fn cancel_on_signal(cancel: CancellationToken) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    eprintln!("cancelling: stopping running builds");
    cancel.cancel();
}
