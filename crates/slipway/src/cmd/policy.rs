//! The release policy from the command line: holds.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use slipway_store::NewPolicyEvent;

use crate::context::{absolute, load_config, open_store};

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
        if !store.unhold(project, milestone).await? {
            println!("milestone {milestone} was not held");
            return Ok(ExitCode::SUCCESS);
        }
        let detail = format!("hold lifted by {by}");
        store
            .record_policy_event(&NewPolicyEvent {
                project,
                milestone,
                kind: "unhold",
                detail: &detail,
                ..NewPolicyEvent::default()
            })
            .await?;
        println!("milestone {milestone}: {detail}");
    } else {
        store
            .hold(project, milestone, &by, reason.as_deref())
            .await?;
        let detail = match &reason {
            Some(r) => format!("held by {by}: {r}"),
            None => format!("held by {by}"),
        };
        store
            .record_policy_event(&NewPolicyEvent {
                project,
                milestone,
                kind: "hold",
                detail: &detail,
                ..NewPolicyEvent::default()
            })
            .await?;
        println!(
            "milestone {milestone}: {detail}; no automatic promotion until `slipway unhold --milestone {milestone}`"
        );
    }
    Ok(ExitCode::SUCCESS)
}
