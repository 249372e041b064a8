//! Rollback: production suites (`watch`) failing on the live release `rollback_after` times in a
//! row send the milestone back to the previous release.
//!
//! Independent of `auto`, channels and holds: those stop promotions, this is the safety net.
//! The decision is a function of the facts alone, so it is repeated until the facts change
//! (the rollback is recorded, the candidate marked bad); acting on it must be idempotent.

use serde::Serialize;
use slipway_config::ReleasePolicy;

use crate::facts::{Environment, MilestoneFacts, ResultFacts, case_list};

/// Roll the live release back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RollbackDecision {
    /// The live release that failed.
    pub release_id: i64,
    /// Its candidate, to mark bad.
    pub candidate_id: i64,
    /// The candidate of the previous release; `None` when there is nothing to go back to (the
    /// live candidate is still to be marked bad and people told).
    pub to_candidate_id: Option<i64>,
    /// The failed results that decided, oldest first.
    pub failures: Vec<i64>,
    pub reason: String,
}

pub fn watch(policy: &ReleasePolicy, facts: &MilestoneFacts) -> Option<RollbackDecision> {
    let needed = policy.rollback_after as usize;
    if needed == 0 {
        return None;
    }
    let live = facts.live()?;
    let digest = &facts.candidate(live.candidate_id)?.digest;
    let mut watched: Vec<&ResultFacts> = facts
        .results
        .iter()
        .filter(|r| {
            r.environment == Environment::Production
                && &r.digest == digest
                && r.recorded_at >= live.promoted_at
                && policy.watch.contains(&r.suite)
        })
        .collect();
    watched.sort_by_key(|r| r.order_key());
    watched.dedup_by_key(|r| r.id);
    let failing_tail = watched.iter().rev().take_while(|r| !r.passed).count();
    if failing_tail < needed {
        return None;
    }
    let failed = &watched[watched.len() - needed..];

    // The release before the live one that serves something else, skipping candidates known
    // to be bad: the same choice as `slipway rollback`, minus what must not come back.
    let to_candidate_id = facts
        .releases
        .iter()
        .rev()
        .filter(|r| r.candidate_id != live.candidate_id)
        .find(|r| {
            facts
                .candidate(r.candidate_id)
                .is_none_or(|c| c.bad.is_none())
        })
        .map(|r| r.candidate_id);
    let listed: Vec<String> = failed.iter().map(|r| describe(r)).collect();
    let target = match to_candidate_id {
        Some(c) => format!("rolling back to candidate {c}"),
        None => "no earlier release to roll back to".to_string(),
    };
    Some(RollbackDecision {
        release_id: live.id,
        candidate_id: live.candidate_id,
        to_candidate_id,
        failures: failed.iter().map(|r| r.id).collect(),
        reason: format!(
            "{needed} watched results in a row failed on release {} (candidate {}): {}; {target}",
            live.id,
            live.candidate_id,
            listed.join(", ")
        ),
    })
}

/// `bvt-cq #31 (boot, sftp)`.
fn describe(r: &ResultFacts) -> String {
    if r.failed_cases.is_empty() {
        format!("{} #{}", r.suite, r.id)
    } else {
        format!("{} #{} ({})", r.suite, r.id, case_list(&r.failed_cases))
    }
}

#[cfg(test)]
mod tests;
