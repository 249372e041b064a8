use slipway_config::ReleasePolicy;

use super::{RollbackDecision, watch};
use crate::facts::{Environment, MilestoneFacts, ResultFacts};
use crate::testing::{MIN, NOW, candidate, hold, milestone, policy, release, result};

/// `rollback_after = 2`, `watch = ["bvt-cq"]`.
fn watching() -> ReleasePolicy {
    ReleasePolicy {
        rollback_after: 2,
        watch: vec!["bvt-cq".into()],
        ..policy()
    }
}

/// Candidates 1 and 2; release 1 of candidate 1, then release 2 of candidate 2 (live) at
/// `NOW - 60m`.
fn two_releases() -> MilestoneFacts {
    let mut f = milestone(vec![candidate(1, 5 * 60 * MIN), candidate(2, 3 * 60 * MIN)]);
    f.releases = vec![
        release(1, 1, NOW - 4 * 60 * MIN, "promote"),
        release(2, 2, NOW - 60 * MIN, "promote"),
    ];
    f
}

/// A production result on candidate `candidate`'s digest, `ago` seconds before `NOW`.
fn production(id: i64, suite: &str, candidate: i64, failed: &[&str], ago: i64) -> ResultFacts {
    result(
        id,
        Environment::Production,
        suite,
        &format!("d{candidate}"),
        failed,
        NOW - ago,
    )
}

#[test]
fn consecutive_failures_on_the_live_release_roll_back_to_the_previous_one() {
    let mut f = two_releases();
    f.results
        .push(production(30, "bvt-cq", 2, &["boot"], 20 * MIN));
    assert_eq!(watch(&watching(), &f), None, "one failure is not two");
    f.results
        .push(production(31, "bvt-cq", 2, &["boot", "sftp"], 10 * MIN));
    assert_eq!(
        watch(&watching(), &f),
        Some(RollbackDecision {
            release_id: 2,
            candidate_id: 2,
            to_candidate_id: Some(1),
            failures: vec![30, 31],
            reason: "2 watched results in a row failed on release 2 (candidate 2): bvt-cq #30 (boot), bvt-cq #31 (boot, sftp); rolling back to candidate 1".into(),
        })
    );
}

#[test]
fn a_pass_resets_the_count() {
    let mut f = two_releases();
    f.results
        .push(production(30, "bvt-cq", 2, &["boot"], 30 * MIN));
    f.results.push(production(31, "bvt-cq", 2, &[], 20 * MIN));
    f.results
        .push(production(32, "bvt-cq", 2, &["boot"], 10 * MIN));
    assert_eq!(watch(&watching(), &f), None);
    f.results
        .push(production(33, "bvt-cq", 2, &["sftp"], 5 * MIN));
    assert_eq!(watch(&watching(), &f).unwrap().failures, [32, 33]);
}

#[test]
fn time_order_decides_not_arrival() {
    let mut f = two_releases();
    f.results
        .push(production(30, "bvt-cq", 2, &["boot"], 30 * MIN));
    f.results
        .push(production(31, "bvt-cq", 2, &["boot"], 10 * MIN));
    // A pass that ran before both failures, reported last: it resets nothing.
    let mut late_pass = production(32, "bvt-cq", 2, &[], MIN);
    late_pass.ended_at = Some(NOW - 40 * MIN);
    f.results.push(late_pass);
    assert_eq!(watch(&watching(), &f).unwrap().failures, [30, 31]);
    // A pass that ran between them, reported last, does.
    f.results[2].ended_at = Some(NOW - 20 * MIN);
    assert_eq!(watch(&watching(), &f), None);
}

#[test]
fn duplicated_failures_count_once() {
    let mut f = two_releases();
    let failure = production(30, "bvt-cq", 2, &["boot"], 10 * MIN);
    f.results.extend([failure.clone(), failure]);
    assert_eq!(watch(&watching(), &f), None);
}

#[test]
fn results_on_a_release_that_is_not_live_are_ignored() {
    let mut f = two_releases();
    // Candidate 1 (release 1, no longer live) fails over and over.
    for (id, ago) in [(30, 50 * MIN), (31, 40 * MIN), (32, 30 * MIN)] {
        f.results.push(production(id, "bvt-cq", 1, &["boot"], ago));
    }
    assert_eq!(watch(&watching(), &f), None);
}

#[test]
fn results_from_before_the_live_release_are_ignored() {
    // Candidate 1 is live again (a rollback at NOW - 60m): its failures from its first time
    // live do not count for this one.
    let mut f = two_releases();
    f.releases.push(release(3, 1, NOW - 60 * MIN, "rollback"));
    f.results
        .push(production(30, "bvt-cq", 1, &["boot"], 3 * 60 * MIN));
    f.results
        .push(production(31, "bvt-cq", 1, &["boot"], 2 * 60 * MIN));
    f.results
        .push(production(32, "bvt-cq", 1, &["boot"], 30 * MIN));
    assert_eq!(watch(&watching(), &f), None);
    f.results
        .push(production(33, "bvt-cq", 1, &["boot"], 20 * MIN));
    let d = watch(&watching(), &f).unwrap();
    assert_eq!(
        (d.release_id, d.candidate_id, d.to_candidate_id, d.failures),
        (3, 1, Some(2), vec![32, 33])
    );
}

#[test]
fn only_watched_production_suites_count() {
    let mut f = two_releases();
    f.results
        .push(production(30, "smoke", 2, &["boot"], 30 * MIN));
    f.results
        .push(production(31, "smoke", 2, &["boot"], 20 * MIN));
    let mut staging = production(32, "bvt-cq", 2, &["boot"], 15 * MIN);
    staging.environment = Environment::Staging;
    f.results.push(staging);
    f.results
        .push(production(33, "bvt-cq", 2, &["boot"], 10 * MIN));
    assert_eq!(watch(&watching(), &f), None);
    // Several watched suites form one sequence.
    let both = ReleasePolicy {
        watch: vec!["bvt-cq".into(), "smoke".into()],
        ..watching()
    };
    assert_eq!(watch(&both, &f).unwrap().failures, [31, 33]);
}

#[test]
fn the_target_skips_bad_candidates_and_the_live_one() {
    let mut f = milestone(vec![
        candidate(1, 5 * 60 * MIN),
        candidate(2, 4 * 60 * MIN),
        candidate(3, 3 * 60 * MIN),
    ]);
    f.releases = vec![
        release(1, 1, NOW - 5 * 60 * MIN, "promote"),
        release(2, 2, NOW - 4 * 60 * MIN, "promote"),
        release(3, 3, NOW - 3 * 60 * MIN, "promote"),
        release(4, 3, NOW - 2 * 60 * MIN, "promote"),
    ];
    f.candidates[1].bad = Some("broke sftp".into());
    f.results
        .push(production(30, "bvt-cq", 3, &["boot"], 20 * MIN));
    f.results
        .push(production(31, "bvt-cq", 3, &["boot"], 10 * MIN));
    let d = watch(&watching(), &f).unwrap();
    assert_eq!((d.release_id, d.to_candidate_id), (4, Some(1)));
}

#[test]
fn with_nothing_to_go_back_to_the_failure_is_still_reported() {
    let mut f = milestone(vec![candidate(1, 5 * 60 * MIN)]);
    f.releases = vec![release(1, 1, NOW - 60 * MIN, "promote")];
    f.results.push(production(30, "bvt-cq", 1, &[], 20 * MIN));
    f.results.push(production(31, "bvt-cq", 1, &[], 10 * MIN));
    assert_eq!(watch(&watching(), &f), None);
    f.results[0].passed = false;
    f.results[1].passed = false;
    let d = watch(&watching(), &f).unwrap();
    assert_eq!(d.to_candidate_id, None);
    assert_eq!(
        d.reason,
        "2 watched results in a row failed on release 1 (candidate 1): bvt-cq #30, bvt-cq #31; no earlier release to roll back to"
    );
}

#[test]
fn rollback_ignores_auto_channels_and_holds_but_not_being_off() {
    let mut f = two_releases();
    f.results
        .push(production(30, "bvt-cq", 2, &["boot"], 20 * MIN));
    f.results
        .push(production(31, "bvt-cq", 2, &["boot"], 10 * MIN));
    f.hold = Some(hold("alice", None));
    f.channel = "stable".into();
    let manual = ReleasePolicy {
        auto: false,
        channels: Some(vec!["canary".into()]),
        ..watching()
    };
    assert!(watch(&manual, &f).is_some());
    let off = ReleasePolicy {
        rollback_after: 0,
        ..watching()
    };
    assert_eq!(watch(&off, &f), None);
    assert_eq!(watch(&watching(), &milestone(vec![])), None, "nothing live");
}
