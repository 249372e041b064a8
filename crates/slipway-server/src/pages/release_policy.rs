//! The release page's policy parts: the panel (policy, hold, what it promotes next, timeline) and
//! each candidate's promotion state, turned from the API's `PolicyView` into the dashboard's
//! views, so the page and `GET /api/v1/milestones/{m}/policy` say the same thing.

use std::collections::HashMap;

use slipway_release::{CandidateState, Evaluation};

use crate::api::policy::{PolicyView, policy_view};
use crate::dashboard::{
    CandidatePolicy, HoldView, PolicyEventView, PolicyPanel, PromoteBrief, RequiredSuite,
};
use crate::state::AppState;

/// What the release page needs from the policy.
#[derive(Debug, Default)]
pub(super) struct PolicyParts {
    pub panel: Option<PolicyPanel>,
    /// Why there is no panel.
    pub error: Option<String>,
    /// By candidate id.
    pub states: HashMap<i64, CandidatePolicy>,
}

/// A policy that cannot be evaluated (a store error) leaves the rest of the page, promote and
/// roll back included, usable: the panel says why instead.
pub(super) async fn policy_parts(state: &AppState, project: &str, milestone: u32) -> PolicyParts {
    match policy_view(state, project, milestone).await {
        Ok(view) => parts(view),
        Err(e) => {
            tracing::warn!(milestone, error = %e, "release page: the policy was not evaluated");
            PolicyParts {
                error: Some(e.to_string()),
                ..PolicyParts::default()
            }
        }
    }
}

fn parts(view: PolicyView) -> PolicyParts {
    let PolicyView {
        policy,
        hold,
        evaluation,
        timeline,
        ..
    } = view;
    let Evaluation {
        candidates,
        promote,
        wake_in_secs,
    } = evaluation;
    let panel = PolicyPanel {
        auto: policy.auto,
        auto_here: policy.auto_here,
        channels: policy.channels,
        require: policy.require,
        soak_secs: policy.soak_secs,
        rollback_after: policy.rollback_after,
        watch: policy.watch,
        hold: hold.map(|h| HoldView {
            held_by: h.held_by,
            reason: h.reason,
            held_at: h.held_at,
        }),
        promote: promote.map(|d| PromoteBrief {
            candidate_id: d.candidate_id,
            reason: d.reason,
        }),
        wake_in_secs,
        timeline: timeline
            .into_iter()
            .map(|e| PolicyEventView {
                id: e.id,
                kind: e.kind,
                candidate_id: e.candidate_id,
                release_id: e.release_id,
                detail: e.detail,
                results: e.results,
                at: e.at,
            })
            .collect(),
    };
    PolicyParts {
        panel: Some(panel),
        error: None,
        states: candidates
            .into_iter()
            .map(|c| (c.id, candidate_policy(c)))
            .collect(),
    }
}

fn candidate_policy(c: CandidateState) -> CandidatePolicy {
    CandidatePolicy {
        state: c.state.as_str().to_string(),
        reasons: c.reasons,
        suites: c
            .suites
            .into_iter()
            .map(|s| RequiredSuite {
                suite: s.suite,
                // The verdict's own JSON word, so the page and the API agree.
                status: serde_json::to_value(s.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                result_id: s.result_id,
                failed_cases: s.failed_cases,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use slipway_release::{Decision, State, SuiteStatus, Verdict};
    use slipway_store::{HoldRow, PolicyEvent};

    use super::*;
    use crate::api::policy::PolicySummary;

    fn view() -> PolicyView {
        PolicyView {
            milestone: 123,
            policy: PolicySummary {
                auto: true,
                auto_here: false,
                require: vec!["lxd_test".into(), "pfq".into()],
                soak_secs: 1800,
                channels: Some(vec!["stable".into()]),
                rollback_after: 3,
                watch: vec!["bvt-cq".into()],
            },
            hold: Some(HoldRow {
                milestone: 123,
                held_by: "alice (slipway serve)".into(),
                reason: Some("lab fix".into()),
                held_at: "2026-11-26T11:00:00Z".into(),
            }),
            evaluation: Evaluation {
                candidates: vec![CandidateState {
                    id: 9,
                    digest: "sha256:09".into(),
                    state: State::Blocked,
                    reasons: vec!["suite lxd_test failed: boot".into()],
                    suites: vec![
                        SuiteStatus {
                            suite: "lxd_test".into(),
                            status: Verdict::Failed,
                            result_id: Some(41),
                            failed_cases: vec!["boot".into()],
                        },
                        SuiteStatus {
                            suite: "pfq".into(),
                            status: Verdict::Missing,
                            result_id: None,
                            failed_cases: vec![],
                        },
                    ],
                    soak_left_secs: Some(0),
                }],
                promote: Some(Decision {
                    candidate_id: 8,
                    digest: "sha256:08".into(),
                    justification: vec![40],
                    reason: "required suites passed".into(),
                }),
                wake_in_secs: Some(60),
            },
            timeline: vec![PolicyEvent {
                id: 5,
                milestone: 123,
                kind: "error".into(),
                candidate_id: Some(8),
                release_id: None,
                detail: "promotion failed".into(),
                results: vec![40],
                at: "2026-11-26T11:30:00Z".into(),
            }],
        }
    }

    #[test]
    fn the_api_view_becomes_the_panel_and_candidate_states() {
        let p = parts(view());
        assert!(p.error.is_none());
        let panel = p.panel.expect("a panel");
        assert!(panel.auto && !panel.auto_here);
        assert_eq!(panel.require, ["lxd_test", "pfq"]);
        assert_eq!(panel.channels, Some(vec!["stable".to_string()]));
        assert_eq!((panel.soak_secs, panel.rollback_after), (1800, 3));
        let hold = panel.hold.expect("the hold");
        assert_eq!(hold.held_by, "alice (slipway serve)");
        assert_eq!(hold.reason.as_deref(), Some("lab fix"));
        assert_eq!(panel.promote.map(|d| d.candidate_id), Some(8));
        assert_eq!(panel.wake_in_secs, Some(60));
        assert_eq!(panel.timeline.len(), 1);
        assert_eq!(panel.timeline[0].kind, "error");
        assert_eq!(panel.timeline[0].results, [40]);

        let c = &p.states[&9];
        assert_eq!(c.state, "blocked");
        assert_eq!(c.reasons, ["suite lxd_test failed: boot"]);
        let words: Vec<_> = c.suites.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(words, ["failed", "missing"]);
        assert_eq!(c.suites[0].failed_cases, ["boot"]);
        assert_eq!(c.suites[0].result_id, Some(41));
    }
}
