//! The planner: job + milestone -> instance name and an ordered DAG, with untrusted bypasses.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::builds::{Build, Builds};
use crate::diag::ConfigErrors;
use crate::service::{BranchRow, Config, Job, Trigger};

/// Why a run exists; exported to builds as `SLIPWAY_FLOW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flow {
    Continuous,
    Presubmit,
    Manual,
}

impl Flow {
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Continuous => "continuous",
            Flow::Presubmit => "presubmit",
            Flow::Manual => "manual",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PlannedBuild {
    pub name: String,
    /// Inputs after bypass rewiring.
    pub needs: Vec<String>,
    pub build: Build,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bypass {
    pub build: String,
    /// Builds whose artifacts the bypassed build's dependents receive instead.
    pub inputs_forwarded: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub instance: String,
    pub project: String,
    pub job: String,
    pub milestone: u32,
    pub channel: String,
    pub branch: String,
    pub flow: Flow,
    pub untrusted: bool,
    /// In execution order: every build comes after all of its `needs`.
    pub builds: Vec<PlannedBuild>,
    pub bypassed: Vec<Bypass>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("no job named '{0}' in the config (jobs: {1})")]
    UnknownJob(String, String),
    #[error("milestone {0} is not in the branch table (milestones: {1})")]
    UnknownMilestone(u32, String),
    #[error("job '{job}' does not run on milestone {milestone} (branch '{branch}'{inactive})")]
    NotOnBranch {
        job: String,
        milestone: u32,
        branch: String,
        inactive: &'static str,
    },
    #[error(transparent)]
    Invalid(#[from] ConfigErrors),
}

/// Builds of an untrusted job with privileged ones removed and their dependents rewired to the
/// removed build's own inputs, transitively. Returns (kept builds with new needs, bypasses).
pub(crate) fn bypass_needs(
    job: &Job,
    builds: &Builds,
) -> (Vec<(String, Vec<String>)>, Vec<Bypass>) {
    let dropped = |name: &str| job.untrusted && builds.get(name).is_some_and(|b| b.privileged);
    let mut memo: BTreeMap<String, Vec<String>> = BTreeMap::new();

    // Effective inputs of `name`: its needs with every dropped build replaced by that build's
    // own effective inputs. Builds come without cycles (checked at load), so this terminates.
    fn effective(
        name: &str,
        builds: &Builds,
        dropped: &dyn Fn(&str) -> bool,
        memo: &mut BTreeMap<String, Vec<String>>,
    ) -> Vec<String> {
        if let Some(v) = memo.get(name) {
            return v.clone();
        }
        let mut out: Vec<String> = Vec::new();
        if let Some(b) = builds.get(name) {
            for (need, _) in &b.needs {
                let add = if dropped(need) {
                    effective(need, builds, dropped, memo)
                } else {
                    vec![need.clone()]
                };
                for a in add {
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
        }
        memo.insert(name.to_string(), out.clone());
        out
    }

    let mut kept = Vec::new();
    let mut bypassed = Vec::new();
    for (name, _) in &job.builds {
        let needs = effective(name, builds, &dropped, &mut memo);
        if dropped(name) {
            bypassed.push(Bypass {
                build: name.clone(),
                inputs_forwarded: needs,
            });
        } else {
            kept.push((name.clone(), needs));
        }
    }
    (kept, bypassed)
}

/// Plans one instance of `job_name` for `milestone`.
pub fn plan(
    config: &Config,
    builds: &Builds,
    job_name: &str,
    milestone: u32,
) -> Result<Plan, PlanError> {
    let row = branch_for(config, job_name, milestone)?;
    let job = &config.jobs[job_name];
    crate::validate(config, builds)?;

    let (kept, bypassed) = bypass_needs(job, builds);
    let order = topo_order(&kept);
    let by_name: BTreeMap<&str, &Vec<String>> = kept.iter().map(|(n, v)| (n.as_str(), v)).collect();
    let planned = order
        .into_iter()
        .filter_map(|name| {
            let build = builds.get(&name)?.clone();
            let needs = by_name
                .get(name.as_str())
                .map(|v| (*v).clone())
                .unwrap_or_default();
            Some(PlannedBuild { name, needs, build })
        })
        .collect();

    let flow = match job.trigger {
        Trigger::Continuous => Flow::Continuous,
        Trigger::Review(_) => Flow::Presubmit,
        Trigger::Manual => Flow::Manual,
    };
    Ok(Plan {
        instance: format!("{}/{}/{}", config.project.name, milestone, job.name),
        project: config.project.name.clone(),
        job: job.name.clone(),
        milestone,
        channel: row.channel.clone(),
        branch: row.branch.clone(),
        flow,
        untrusted: job.untrusted,
        builds: planned,
        bypassed,
    })
}

/// The branch-table row a job instance runs on, or why it does not run there.
pub fn branch_for<'a>(
    config: &'a Config,
    job_name: &str,
    milestone: u32,
) -> Result<&'a BranchRow, PlanError> {
    let job = config.jobs.get(job_name).ok_or_else(|| {
        PlanError::UnknownJob(
            job_name.into(),
            config.jobs.keys().cloned().collect::<Vec<_>>().join(", "),
        )
    })?;
    let row = config.row(milestone).ok_or_else(|| {
        PlanError::UnknownMilestone(
            milestone,
            config
                .branches
                .iter()
                .map(|b| b.milestone.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        )
    })?;
    if !config
        .rows_for(job)
        .iter()
        .any(|r| r.milestone == milestone)
    {
        return Err(PlanError::NotOnBranch {
            job: job.name.clone(),
            milestone,
            branch: row.branch.clone(),
            inactive: if row.active { "" } else { ", inactive" },
        });
    }
    Ok(row)
}

/// Kahn's algorithm; among ready builds, the one listed first in the job goes first, so the
/// order is stable and reads like the job.
fn topo_order(kept: &[(String, Vec<String>)]) -> Vec<String> {
    let names: BTreeSet<&str> = kept.iter().map(|(n, _)| n.as_str()).collect();
    let mut remaining: Vec<(&str, BTreeSet<&str>)> = kept
        .iter()
        .map(|(n, needs)| {
            (
                n.as_str(),
                needs
                    .iter()
                    .map(|s| s.as_str())
                    .filter(|s| names.contains(s))
                    .collect(),
            )
        })
        .collect();
    let mut order = Vec::with_capacity(kept.len());
    while !remaining.is_empty() {
        let Some(i) = remaining.iter().position(|(_, deps)| deps.is_empty()) else {
            // A cycle; load-time checks reject these, so keep the rest in listed order.
            order.extend(remaining.iter().map(|(n, _)| n.to_string()));
            break;
        };
        let (done, _) = remaining.remove(i);
        for (_, deps) in remaining.iter_mut() {
            deps.remove(done);
        }
        order.push(done.to_string());
    }
    order
}
