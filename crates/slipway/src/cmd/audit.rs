//! `slipway audit`: what the buckets of a milestone serve against what the records say.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use slipway_engine::audit::{self, AuditReport};

use crate::context::{absolute, load_config, open_store};

/// Exit 0 when every bucket serves what the records say, 1 on drift (JSON or not), so a timer
/// or a CI job can act on the status alone.
pub async fn audit(
    config_path: &Path,
    data_dir: &Path,
    milestone: u32,
    json: bool,
) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let store = open_store(&absolute(data_dir)?).await?;
    let report = audit::audit(&config, &store, milestone).await?;
    if json {
        super::print_json(&report)?;
    } else {
        print_text(&report);
    }
    Ok(if report.drift {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_text(report: &AuditReport) {
    for line in report.finding_lines() {
        println!("{line}");
    }
    if report.buckets.is_empty() && !report.drift {
        println!(
            "milestone {} has published nothing yet: nothing to audit",
            report.milestone
        );
        return;
    }
    let findings: usize = report
        .buckets
        .iter()
        .map(|b| b.findings.len())
        .sum::<usize>()
        + usize::from(report.unfinished_promotion.is_some());
    if report.drift {
        eprintln!(
            "drift: {findings} findings in milestone {}'s buckets",
            report.milestone
        );
        return;
    }
    for b in &report.buckets {
        let serves = match b.serves {
            Some(s) => format!("serves {s}"),
            None => "nothing released yet".into(),
        };
        println!(
            "ok  {}/{}: {} objects, {serves}",
            b.bucket, b.prefix, b.objects
        );
    }
    println!("no drift in milestone {}", report.milestone);
}
