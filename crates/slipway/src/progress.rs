//! Live run progress on stderr: spinners on a terminal, timestamped lines otherwise.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use slipway_engine::{Event, RunEvent};
use slipway_store::BuildStatus;
use tokio::sync::mpsc::UnboundedReceiver;

pub async fn show(mut rx: UnboundedReceiver<RunEvent>, live: bool) {
    if !live {
        while let Some(RunEvent { event, .. }) = rx.recv().await {
            if let Some(line) = plain(&event) {
                eprintln!("{} {line}", chrono::Utc::now().format("%H:%M:%S"));
            }
        }
        return;
    }
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{spinner} {prefix:<24} {elapsed:>4} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    while let Some(RunEvent { event, .. }) = rx.recv().await {
        match event {
            Event::RunStarted { run_id, builds } => {
                let _ = multi.println(format!("run {run_id}: {} builds", builds.len()));
            }
            Event::BuildStarted { build } => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(build.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.insert(build, bar);
            }
            Event::StepStarted {
                build,
                idx,
                total,
                command,
            } => {
                if let Some(bar) = bars.get(&build) {
                    bar.set_message(format!("step {idx}/{total}: {command}"));
                }
            }
            Event::BuildFinished {
                build,
                status,
                error,
            } => {
                let bar = bars.remove(&build).unwrap_or_else(|| {
                    let b = multi.add(ProgressBar::new_spinner());
                    b.set_style(style.clone());
                    b.set_prefix(build.clone());
                    b
                });
                let mark = if status == BuildStatus::Success {
                    "ok"
                } else {
                    "!!"
                };
                bar.finish_with_message(format!(
                    "{mark} {status}{}",
                    error.map(|e| format!(": {e}")).unwrap_or_default()
                ));
            }
        }
    }
}

fn plain(e: &Event) -> Option<String> {
    Some(match e {
        Event::RunStarted { run_id, builds } => {
            format!("run {run_id} started: {}", builds.join(" "))
        }
        Event::BuildStarted { build } => format!("{build}: started"),
        Event::StepStarted {
            build,
            idx,
            total,
            command,
        } => format!("{build}: step {idx}/{total}: {command}"),
        Event::BuildFinished {
            build,
            status,
            error,
        } => {
            format!(
                "{build}: {status}{}",
                error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )
        }
    })
}
