//! Facts for unit tests: a canary milestone and short constructors.

use std::time::Duration;

use slipway_config::ReleasePolicy;

use crate::facts::{CandidateFacts, Environment, Hold, MilestoneFacts, ReleaseFacts, ResultFacts};

pub(crate) const MIN: i64 = 60;
pub(crate) const NOW: i64 = 1_000_000;

/// `auto = true`, `require = ["lxd_test", "pfq"]`, `soak = "30m"`.
pub(crate) fn policy() -> ReleasePolicy {
    ReleasePolicy {
        auto: true,
        require: vec!["lxd_test".into(), "pfq".into()],
        soak: Duration::from_secs(30 * 60),
        ..ReleasePolicy::default()
    }
}

pub(crate) fn milestone(candidates: Vec<CandidateFacts>) -> MilestoneFacts {
    MilestoneFacts {
        milestone: 74,
        channel: "canary".into(),
        candidates,
        results: Vec::new(),
        releases: Vec::new(),
        hold: None,
        now: NOW,
    }
}

/// Candidate `id` with digest `d<id>`, created `age` seconds before [`NOW`].
pub(crate) fn candidate(id: i64, age: i64) -> CandidateFacts {
    CandidateFacts {
        id,
        digest: format!("d{id}"),
        created_at: NOW - age,
        bad: None,
    }
}

pub(crate) fn result(
    id: i64,
    environment: Environment,
    suite: &str,
    digest: &str,
    failed_cases: &[&str],
    recorded_at: i64,
) -> ResultFacts {
    ResultFacts {
        id,
        suite: suite.into(),
        environment,
        digest: digest.into(),
        release_id: None,
        passed: failed_cases.is_empty(),
        failed_cases: failed_cases.iter().map(|c| c.to_string()).collect(),
        recorded_at,
        ended_at: None,
    }
}

/// A staging result on candidate `candidate`'s digest; passed when `failed_cases` is empty.
pub(crate) fn staging(id: i64, suite: &str, candidate: i64, failed_cases: &[&str]) -> ResultFacts {
    result(
        id,
        Environment::Staging,
        suite,
        &format!("d{candidate}"),
        failed_cases,
        NOW - 5 * MIN + id,
    )
}

/// Both required suites passed on `candidate`, as results `first` and `first + 1`.
pub(crate) fn all_pass(first: i64, candidate: i64) -> [ResultFacts; 2] {
    [
        staging(first, "lxd_test", candidate, &[]),
        staging(first + 1, "pfq", candidate, &[]),
    ]
}

pub(crate) fn release(id: i64, candidate_id: i64, promoted_at: i64, kind: &str) -> ReleaseFacts {
    ReleaseFacts {
        id,
        candidate_id,
        promoted_at,
        kind: kind.into(),
    }
}

pub(crate) fn hold(by: &str, reason: Option<&str>) -> Hold {
    Hold {
        by: by.into(),
        reason: reason.map(str::to_string),
        at: NOW - MIN,
    }
}
