//! `slipway gc`: removes what the `[retention]` policy no longer keeps.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;
use slipway_config::RetentionConfig;
use slipway_store::{Freed, RetentionPolicy};

use crate::context::{absolute, load_config, open_store};

#[derive(Serialize)]
struct GcReport {
    dry_run: bool,
    keep_days: u32,
    keep_last: u32,
    keep_releases: u32,
    /// Runs whose builds, steps, artifacts, logs and folders went.
    runs_removed: Vec<i64>,
    /// Those of them kept as the record of what they published (with their candidates).
    runs_pruned: Vec<i64>,
    runs_kept: usize,
    /// Kept whatever their age: live, rollback chain, open, or being promoted.
    candidates_protected: Vec<i64>,
    /// Build workspaces and checked-out sources of ended runs (`files` counts folders).
    workspaces: Freed,
    logs: Freed,
    objects: Freed,
    caches: Freed,
    bytes_freed: u64,
}

pub async fn gc(
    config_path: &Path,
    data_dir: &Path,
    dry_run: bool,
    json: bool,
) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let store = open_store(&absolute(data_dir)?).await?;
    let RetentionConfig {
        keep_days,
        keep_last,
        keep_releases,
    } = config.retention;
    let policy = RetentionPolicy {
        keep_days,
        keep_last,
        keep_releases,
    };
    let plan = store.plan_gc(&policy, chrono::Utc::now()).await?;
    // Rows first: a stop after this leaves only files no row names, for the next gc.
    if !dry_run {
        store
            .delete_gc_rows(&plan)
            .await
            .context("nothing was removed (run gc again)")?;
    }
    let mut workspaces = Freed::default();
    for run in plan.ended_run_dirs() {
        let (folders, bytes) = slipway_engine::remove_run_workspaces(&store.run_dir(run), dry_run)?;
        workspaces += Freed {
            files: folders,
            bytes,
        };
    }
    let files = store.sweep_gc_files(&plan, dry_run).await?;
    let report = GcReport {
        dry_run,
        keep_days,
        keep_last,
        keep_releases,
        bytes_freed: workspaces.bytes + files.logs.bytes + files.objects.bytes + files.caches.bytes,
        runs_removed: plan.runs,
        runs_pruned: plan.pruned,
        runs_kept: plan.kept_runs,
        candidates_protected: plan.protected_candidates,
        workspaces,
        logs: files.logs,
        objects: files.objects,
        caches: files.caches,
    };
    if json {
        super::print_json(&report)?;
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(r: &GcReport) {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    println!(
        "{verb} {} runs ({} of them kept as the record of what they published); {} kept: \
         younger than {} days, the last {} of each job instance, or needed by a release",
        r.runs_removed.len(),
        r.runs_pruned.len(),
        r.runs_kept,
        r.keep_days,
        r.keep_last,
    );
    for (what, freed) in [
        ("workspaces", r.workspaces),
        ("logs", r.logs),
        ("artifact-store objects", r.objects),
        ("publish caches", r.caches),
    ] {
        println!("  {what}: {} ({})", freed.files, size(freed.bytes));
    }
    if !r.candidates_protected.is_empty() {
        let ids: Vec<String> = r
            .candidates_protected
            .iter()
            .map(|c| c.to_string())
            .collect();
        println!(
            "  kept candidates {} (live, the {} newest releases, open or being promoted)",
            ids.join(", "),
            r.keep_releases
        );
    }
    let freed = if r.dry_run { "would free" } else { "freed" };
    println!("{freed} {}", size(r.bytes_freed));
}

fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_like_du() {
        assert_eq!(super::size(512), "512 bytes");
        assert_eq!(super::size(1536), "1.5 KiB");
        assert_eq!(super::size(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
