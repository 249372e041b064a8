//! Promotion: every candidate's state and the reasons for it ("why not promoted (yet)"), and
//! which candidate, if any, the policy promotes now.
//!
//! Automatic release only moves forward: a candidate older than one production serves or has
//! served is superseded, so a rollback is never undone by promoting a candidate from between
//! the two releases.

use std::fmt;

use serde::Serialize;
use slipway_config::ReleasePolicy;

use crate::facts::{CandidateFacts, Environment, Hold, MilestoneFacts, case_list, human_duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Live, released before, or production serves its bytes.
    Promoted,
    /// Satisfies the policy: the candidate a promotion takes now (if automation allows it).
    Eligible,
    /// Required suites missing, or still soaking.
    Waiting,
    /// A required suite failed, or it was marked bad.
    Blocked,
    /// A newer candidate passed, or production already serves (or served) a newer one.
    Superseded,
    /// The milestone is held by a person.
    Held,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Promoted => "promoted",
            State::Eligible => "eligible",
            State::Waiting => "waiting",
            State::Blocked => "blocked",
            State::Superseded => "superseded",
            State::Held => "held",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Passed,
    Failed,
    Missing,
}

/// A required suite on one candidate: what its latest result says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SuiteStatus {
    pub suite: String,
    pub status: Verdict,
    /// The result that decided, if any.
    pub result_id: Option<i64>,
    pub failed_cases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CandidateState {
    pub id: i64,
    pub digest: String,
    pub state: State,
    /// Short sentences, most important first.
    pub reasons: Vec<String>,
    /// The required suites, in the policy's order.
    pub suites: Vec<SuiteStatus>,
    /// Soak time left (0 once over); `None` when the policy has no soak.
    pub soak_left_secs: Option<i64>,
}

/// Promote this candidate now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Decision {
    pub candidate_id: i64,
    pub digest: String,
    /// The results that satisfied the required suites, in the policy's order.
    pub justification: Vec<i64>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Evaluation {
    /// Newest first.
    pub candidates: Vec<CandidateState>,
    pub promote: Option<Decision>,
    /// Seconds until a soak ends and the evaluation may change without any new fact.
    pub wake_in_secs: Option<i64>,
}

impl Evaluation {
    pub fn candidate(&self, id: i64) -> Option<&CandidateState> {
        self.candidates.iter().find(|c| c.id == id)
    }
}

pub fn evaluate(policy: &ReleasePolicy, facts: &MilestoneFacts) -> Evaluation {
    let soak = soak_secs(policy);
    let frontier = Frontier::of(facts);
    let mut newest_first: Vec<&CandidateFacts> = facts.candidates.iter().collect();
    newest_first.sort_by_key(|c| std::cmp::Reverse(c.id));
    newest_first.dedup_by_key(|c| c.id);

    let mut newer_passing: Option<i64> = None;
    let mut candidates = Vec::with_capacity(newest_first.len());
    for c in newest_first {
        let suites = suite_statuses(policy, facts, c);
        let soak_left_secs = (soak > 0).then(|| {
            c.created_at
                .saturating_add(soak)
                .saturating_sub(facts.now)
                .clamp(0, soak)
        });
        let (state, reasons) = classify(
            policy,
            facts,
            &frontier,
            newer_passing,
            c,
            &suites,
            soak_left_secs,
        );
        if state == State::Eligible {
            newer_passing = Some(c.id);
        }
        candidates.push(CandidateState {
            id: c.id,
            digest: c.digest.clone(),
            state,
            reasons,
            suites,
            soak_left_secs,
        });
    }

    let stops = automation_stops(policy, &facts.channel);
    for c in &mut candidates {
        if !matches!(c.state, State::Waiting | State::Eligible) {
            continue;
        }
        if let Some(hold) = &facts.hold {
            c.state = State::Held;
            c.reasons.insert(0, hold_reason(hold));
        }
        c.reasons.extend(stops.iter().cloned());
    }

    let promote = if stops.is_empty() {
        candidates
            .iter()
            .find(|c| c.state == State::Eligible)
            .map(|c| Decision {
                candidate_id: c.id,
                digest: c.digest.clone(),
                justification: c.suites.iter().filter_map(|s| s.result_id).collect(),
                reason: format!(
                    "candidate {} is the newest that satisfies the policy: {}",
                    c.id,
                    c.reasons.join("; ")
                ),
            })
    } else {
        None
    };
    let wake_in_secs = candidates
        .iter()
        .filter(|c| matches!(c.state, State::Waiting | State::Held))
        .filter_map(|c| c.soak_left_secs.filter(|&s| s > 0))
        .min();
    Evaluation {
        candidates,
        promote,
        wake_in_secs,
    }
}

/// The newest candidate production serves or has served, and how to say a candidate is
/// older than it.
struct Frontier {
    candidate_id: i64,
    reason: String,
}

impl Frontier {
    fn of(facts: &MilestoneFacts) -> Option<Frontier> {
        let live = facts.live()?;
        let live_digest = facts.candidate(live.candidate_id).map(|c| &c.digest);
        let released = facts.releases.iter().map(|r| r.candidate_id);
        let same_bytes = facts
            .candidates
            .iter()
            .filter(|c| Some(&c.digest) == live_digest)
            .map(|c| c.id);
        let newest = released.chain(same_bytes).max()?;
        let reason = if newest == live.candidate_id {
            format!(
                "older than candidate {newest} of the live release {}",
                live.id
            )
        } else if let Some(r) = facts.last_release_of(newest) {
            format!(
                "older than candidate {newest}, released as release {}",
                r.id
            )
        } else {
            format!(
                "older than candidate {newest}, whose bytes the live release {} serves",
                live.id
            )
        };
        Some(Frontier {
            candidate_id: newest,
            reason,
        })
    }
}

fn classify(
    policy: &ReleasePolicy,
    facts: &MilestoneFacts,
    frontier: &Option<Frontier>,
    newer_passing: Option<i64>,
    c: &CandidateFacts,
    suites: &[SuiteStatus],
    soak_left_secs: Option<i64>,
) -> (State, Vec<String>) {
    if let Some(live) = facts.live() {
        if c.id == live.candidate_id {
            return (State::Promoted, vec![format!("live: release {}", live.id)]);
        }
        if facts
            .candidate(live.candidate_id)
            .is_some_and(|l| l.digest == c.digest)
        {
            return (
                State::Promoted,
                vec![format!(
                    "live: release {} of candidate {} serves the same bytes",
                    live.id, live.candidate_id
                )],
            );
        }
    }
    let released = facts.last_release_of(c.id);
    if let Some(why) = &c.bad {
        let mut reasons = vec![format!("marked bad: {why}")];
        if let Some(r) = released {
            reasons.push(format!("was release {}", r.id));
        }
        return (State::Blocked, reasons);
    }
    if let (Some(r), Some(live)) = (released, facts.live()) {
        return (
            State::Promoted,
            vec![format!(
                "released as release {}; release {} (candidate {}) is live",
                r.id, live.id, live.candidate_id
            )],
        );
    }
    if let Some(f) = frontier.as_ref().filter(|f| c.id < f.candidate_id) {
        return (State::Superseded, vec![f.reason.clone()]);
    }
    if let Some(newer) = newer_passing {
        return (
            State::Superseded,
            vec![format!(
                "candidate {newer} is newer and satisfies the policy"
            )],
        );
    }
    let failed: Vec<String> = suites
        .iter()
        .filter(|s| s.status == Verdict::Failed)
        .map(failure_reason)
        .collect();
    if !failed.is_empty() {
        return (State::Blocked, failed);
    }
    let mut waiting: Vec<String> = suites
        .iter()
        .filter(|s| s.status == Verdict::Missing)
        .map(|s| format!("missing suite {}", s.suite))
        .collect();
    if let Some(left) = soak_left_secs.filter(|&s| s > 0) {
        waiting.push(format!(
            "soak: {} left of {}",
            human_duration(left),
            human_duration(soak_secs(policy))
        ));
    }
    if !waiting.is_empty() {
        return (State::Waiting, waiting);
    }
    let mut passed = vec![if policy.require.is_empty() {
        "no suite is required".to_string()
    } else {
        format!("required suites passed: {}", policy.require.join(", "))
    }];
    if !policy.soak.is_zero() {
        passed.push(format!("soaked {}", human_duration(soak_secs(policy))));
    }
    (State::Eligible, passed)
}

/// Per required suite, the latest staging result on the candidate's digest.
fn suite_statuses(
    policy: &ReleasePolicy,
    facts: &MilestoneFacts,
    c: &CandidateFacts,
) -> Vec<SuiteStatus> {
    policy
        .require
        .iter()
        .map(|suite| {
            let latest = facts
                .results
                .iter()
                .filter(|r| {
                    r.environment == Environment::Staging
                        && r.digest == c.digest
                        && &r.suite == suite
                })
                .max_by_key(|r| r.order_key());
            match latest {
                None => SuiteStatus {
                    suite: suite.clone(),
                    status: Verdict::Missing,
                    result_id: None,
                    failed_cases: Vec::new(),
                },
                Some(r) => SuiteStatus {
                    suite: suite.clone(),
                    status: if r.passed {
                        Verdict::Passed
                    } else {
                        Verdict::Failed
                    },
                    result_id: Some(r.id),
                    failed_cases: if r.passed {
                        Vec::new()
                    } else {
                        r.failed_cases.clone()
                    },
                },
            }
        })
        .collect()
}

fn failure_reason(s: &SuiteStatus) -> String {
    if s.failed_cases.is_empty() {
        format!("suite {} failed", s.suite)
    } else {
        format!("suite {} failed: {}", s.suite, case_list(&s.failed_cases))
    }
}

/// Why the policy would not promote on its own even a candidate that satisfies it.
fn automation_stops(policy: &ReleasePolicy, channel: &str) -> Vec<String> {
    let mut stops = Vec::new();
    if !policy.auto {
        stops.push("auto release is off".to_string());
    }
    if !policy.auto_releases(channel) {
        stops.push(format!("channel {channel} does not auto-release"));
    }
    stops
}

fn soak_secs(policy: &ReleasePolicy) -> i64 {
    i64::try_from(policy.soak.as_secs()).unwrap_or(i64::MAX)
}

fn hold_reason(hold: &Hold) -> String {
    match hold.reason.as_deref().map(str::trim) {
        Some(r) if !r.is_empty() => format!("held by {}: {r}", hold.by),
        _ => format!("held by {}", hold.by),
    }
}

#[cfg(test)]
mod tests;
