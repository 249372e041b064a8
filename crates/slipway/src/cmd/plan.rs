use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use slipway_engine::load_plan;

use crate::context::{absolute, load_config};

pub fn plan(
    config_path: &Path,
    data_dir: &Path,
    job: &str,
    milestone: u32,
    commit: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let prepared = load_plan(&config, &absolute(data_dir)?, job, milestone, commit)?;
    let p = &prepared.plan;
    if json {
        super::print_json(&json!({
            "instance": p.instance,
            "job": p.job,
            "milestone": p.milestone,
            "channel": p.channel,
            "branch": p.branch,
            "commit": prepared.commit,
            "flow": p.flow,
            "untrusted": p.untrusted,
            "builds": p.builds.iter().map(|b| json!({"name": b.name, "needs": b.needs})).collect::<Vec<_>>(),
            "bypassed": p.bypassed.iter().map(|b| &b.build).collect::<Vec<_>>(),
            "bypasses": p.bypassed,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} ({} {}, branch {} at {})",
        p.instance,
        p.channel,
        p.flow.as_str(),
        p.branch,
        &prepared.commit[..12.min(prepared.commit.len())]
    );
    for (i, b) in p.builds.iter().enumerate() {
        let kind = b.build.action.as_ref().map(|a| a.kind()).unwrap_or("steps");
        let needs = if b.needs.is_empty() {
            String::new()
        } else {
            format!(" <- {}", b.needs.join(", "))
        };
        let privileged = if b.build.privileged {
            " [privileged]"
        } else {
            ""
        };
        println!("  {:>2}. {} ({kind}){privileged}{needs}", i + 1, b.name);
    }
    for b in &p.bypassed {
        let to = if b.inputs_forwarded.is_empty() {
            "nothing".to_string()
        } else {
            b.inputs_forwarded.join(", ")
        };
        println!(
            "  bypassed: {} (untrusted job; its dependents receive {to})",
            b.build
        );
    }
    Ok(ExitCode::SUCCESS)
}
