//! Acting on the policy: the facts of a milestone gathered from the store, the evaluation, and
//! what it decides done through the same crash-safe promotion as `slipway promote` (actor
//! `policy`): a rollback when the live release fails its watch suites (the candidate marked
//! bad, people notified once), then a promotion of the newest candidate that satisfies the
//! policy. Every step is idempotent, so an evaluation cut short (a crash, a stop) is finished by
//! the next one: the decisions are functions of the recorded facts.

use std::collections::BTreeMap;

use serde::Serialize;
use slipway_config::Config;
use slipway_engine::promote::{self, Interrupted, PromoteError};
use slipway_store::{NewPolicyEvent, RecordedResult, Store, StoreError};

use crate::facts::{CandidateFacts, Environment, Hold, MilestoneFacts, ReleaseFacts, ResultFacts};
use crate::notify;
use crate::policy::{Evaluation, evaluate};
use crate::watch::{RollbackDecision, watch};

/// The actor releases made by the policy are recorded with.
pub const ACTOR: &str = "policy";

#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error("milestone {0} is not in the branch table")]
    UnknownMilestone(u32),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one evaluation found and did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub milestone: u32,
    /// Every candidate's state after what was done.
    pub evaluation: Evaluation,
    /// The candidate promoted now.
    pub promoted: Option<i64>,
    /// The rollback done now.
    pub rolled_back: Option<RollbackDecision>,
    /// Actions that failed (the next evaluation tries again).
    pub errors: Vec<String>,
}

fn unix(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

fn result_facts(r: &RecordedResult) -> Option<ResultFacts> {
    Some(ResultFacts {
        id: r.id,
        suite: r.suite.clone(),
        environment: match r.environment {
            slipway_store::Environment::Staging => Environment::Staging,
            slipway_store::Environment::Production => Environment::Production,
        },
        digest: r.target_digest.clone()?,
        release_id: r.release_id,
        passed: r.passed,
        failed_cases: r.result.failed_cases.clone(),
        recorded_at: unix(&r.recorded_at),
        ended_at: r.ended_at.as_deref().map(unix),
    })
}

/// The milestone's facts as the store records them, at `now` (unix seconds).
pub async fn facts(
    config: &Config,
    store: &Store,
    milestone: u32,
    now: i64,
) -> Result<MilestoneFacts, ActError> {
    let row = config
        .row(milestone)
        .ok_or(ActError::UnknownMilestone(milestone))?;
    let project = &config.project.name;
    let bad: BTreeMap<i64, String> = store
        .bad_candidates(project, milestone)
        .await?
        .into_iter()
        .collect();
    let mut candidates: Vec<CandidateFacts> = store
        .candidates(project, milestone)
        .await?
        .into_iter()
        .map(|c| CandidateFacts {
            bad: bad.get(&c.id).cloned(),
            id: c.id,
            digest: c.digest,
            created_at: unix(&c.created_at),
        })
        .collect();
    candidates.sort_by_key(|c| c.id);
    let results = store
        .results_for_milestone(project, milestone)
        .await?
        .iter()
        .filter_map(result_facts)
        .collect();
    let mut releases: Vec<ReleaseFacts> = store
        .releases(project, milestone)
        .await?
        .into_iter()
        .map(|r| ReleaseFacts {
            id: r.id,
            candidate_id: r.candidate_id,
            promoted_at: unix(&r.promoted_at),
            kind: r.kind,
        })
        .collect();
    releases.sort_by_key(|r| r.id);
    let hold = store.hold_of(project, milestone).await?.map(|h| Hold {
        at: unix(&h.held_at),
        by: h.held_by,
        reason: h.reason,
    });
    Ok(MilestoneFacts {
        milestone,
        channel: row.channel.clone(),
        candidates,
        results,
        releases,
        hold,
        now,
    })
}

/// Every candidate's state under the policy now, without acting on it.
pub async fn states(
    config: &Config,
    store: &Store,
    milestone: u32,
) -> Result<Evaluation, ActError> {
    let f = facts(config, store, milestone, chrono::Utc::now().timestamp()).await?;
    Ok(evaluate(&config.release, &f))
}

/// Evaluates the milestone now and does what the policy decides.
pub async fn evaluate_milestone(
    config: &Config,
    store: &Store,
    milestone: u32,
) -> Result<Report, ActError> {
    let policy = &config.release;
    let project = &config.project.name;
    let now = || chrono::Utc::now().timestamp();
    let mut errors = Vec::new();
    let mut rolled_back = None;
    let mut promoted = None;

    let f = facts(config, store, milestone, now()).await?;
    if let Some(decision) = watch(policy, &f) {
        match roll_back(config, store, milestone, &decision).await {
            Ok(()) => rolled_back = Some(decision),
            Err(e) => errors.push(format!("rollback of release {}: {e}", decision.release_id)),
        }
    }
    let f = facts(config, store, milestone, now()).await?;
    let evaluation = evaluate(policy, &f);
    if let Some(decision) = &evaluation.promote {
        let detail = format!(
            "promoted candidate {}: {}",
            decision.candidate_id, decision.reason
        );
        let outcome = promote::promote(
            config,
            store,
            milestone,
            Some(decision.candidate_id),
            "promote",
            Interrupted::Finish,
            ACTOR,
        )
        .await;
        match outcome {
            Ok(o) => {
                store
                    .record_policy_event(&NewPolicyEvent {
                        project,
                        milestone,
                        kind: "promote",
                        key: Some(&format!("promote:{}", o.release.id)),
                        candidate_id: Some(decision.candidate_id),
                        release_id: Some(o.release.id),
                        detail: &detail,
                        results: &decision.justification,
                    })
                    .await?;
                tracing::info!(
                    milestone,
                    candidate = decision.candidate_id,
                    "policy: {detail}"
                );
                promoted = Some(decision.candidate_id);
            }
            Err(e) => errors.push(promote_error(decision.candidate_id, &e)),
        }
    }
    if let Err(e) = notify::send_pending(config, store).await {
        errors.push(e);
    }
    for e in &errors {
        let _ = store
            .record_policy_event(&NewPolicyEvent {
                project,
                milestone,
                kind: "error",
                detail: e,
                ..NewPolicyEvent::default()
            })
            .await;
        tracing::warn!(milestone, "policy: {e}");
    }
    let evaluation = if promoted.is_some() || rolled_back.is_some() {
        evaluate(policy, &facts(config, store, milestone, now()).await?)
    } else {
        evaluation
    };
    Ok(Report {
        milestone,
        evaluation,
        promoted,
        rolled_back,
        errors,
    })
}

fn promote_error(candidate: i64, e: &PromoteError) -> String {
    format!("promotion of candidate {candidate}: {e}")
}

/// Marks the failing candidate bad, owes the notification, then rolls back. Each step is
/// idempotent; the decision repeats until the live release is no longer the failing one.
async fn roll_back(
    config: &Config,
    store: &Store,
    milestone: u32,
    d: &RollbackDecision,
) -> Result<(), String> {
    let project = &config.project.name;
    let key = format!("rollback:{}", d.release_id);
    store
        .mark_bad(d.candidate_id, &d.reason)
        .await
        .map_err(|e| e.to_string())?;
    let body = serde_json::json!({
        "event": "rollback",
        "project": project,
        "milestone": milestone,
        "release_id": d.release_id,
        "candidate_id": d.candidate_id,
        "to_candidate_id": d.to_candidate_id,
        "failures": d.failures,
        "reason": d.reason,
        "at": slipway_store::now(),
    });
    store
        .queue_notification(&key, &body.to_string())
        .await
        .map_err(|e| e.to_string())?;
    let Some(to) = d.to_candidate_id else {
        store
            .record_policy_event(&NewPolicyEvent {
                project,
                milestone,
                kind: "rollback",
                key: Some(&key),
                candidate_id: Some(d.candidate_id),
                release_id: Some(d.release_id),
                detail: &format!("{}; nothing earlier to roll back to", d.reason),
                results: &d.failures,
            })
            .await
            .map_err(|e| e.to_string())?;
        return Ok(());
    };
    let outcome = promote::promote(
        config,
        store,
        milestone,
        Some(to),
        "rollback",
        Interrupted::Finish,
        ACTOR,
    )
    .await
    .map_err(|e| e.to_string())?;
    let detail = format!(
        "rolled back release {} (candidate {}, marked bad) to candidate {to}: {}",
        d.release_id, d.candidate_id, d.reason
    );
    store
        .record_policy_event(&NewPolicyEvent {
            project,
            milestone,
            kind: "rollback",
            key: Some(&key),
            candidate_id: Some(d.candidate_id),
            release_id: Some(outcome.release.id),
            detail: &detail,
            results: &d.failures,
        })
        .await
        .map_err(|e| e.to_string())?;
    tracing::warn!(milestone, "policy: {detail}");
    Ok(())
}
