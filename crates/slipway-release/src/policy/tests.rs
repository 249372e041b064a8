use std::time::Duration;

use slipway_config::ReleasePolicy;

use super::{Decision, Evaluation, State, SuiteStatus, Verdict, evaluate};
use crate::facts::Environment;
use crate::testing::{
    MIN, NOW, all_pass, candidate, hold, milestone, policy, release, result, staging,
};

/// A candidate's state and reasons, for exact comparisons.
fn of(e: &Evaluation, id: i64) -> (State, Vec<&str>) {
    let c = e
        .candidate(id)
        .unwrap_or_else(|| panic!("no candidate {id}"));
    (c.state, c.reasons.iter().map(String::as_str).collect())
}

fn suite(e: &Evaluation, id: i64, name: &str) -> SuiteStatus {
    let c = e.candidate(id).expect("candidate");
    c.suites
        .iter()
        .find(|s| s.suite == name)
        .cloned()
        .expect("suite")
}

const PASSED: [&str; 2] = ["required suites passed: lxd_test, pfq", "soaked 30m"];

#[test]
fn the_newest_tested_and_soaked_candidate_is_promoted() {
    let mut f = milestone(vec![candidate(1, 3 * 60 * MIN)]);
    f.results.extend(all_pass(10, 1));
    let e = evaluate(&policy(), &f);
    assert_eq!(of(&e, 1), (State::Eligible, PASSED.to_vec()));
    assert_eq!(
        e.promote,
        Some(Decision {
            candidate_id: 1,
            digest: "d1".into(),
            justification: vec![10, 11],
            reason: "candidate 1 is the newest that satisfies the policy: required suites passed: lxd_test, pfq; soaked 30m".into(),
        })
    );
    assert_eq!(e.candidate(1).unwrap().soak_left_secs, Some(0));
    assert_eq!(e.wake_in_secs, None);
}

#[test]
fn a_newer_untested_candidate_is_never_promoted_ahead_of_a_tested_older_one() {
    let mut f = milestone(vec![candidate(1, 2 * 60 * MIN), candidate(2, 60 * MIN)]);
    f.results.extend(all_pass(10, 1));
    let e = evaluate(&policy(), &f);
    assert_eq!(
        of(&e, 2),
        (
            State::Waiting,
            vec!["missing suite lxd_test", "missing suite pfq"]
        )
    );
    assert_eq!(of(&e, 1), (State::Eligible, PASSED.to_vec()));
    assert_eq!(e.promote.as_ref().map(|d| d.candidate_id), Some(1));
    let ids: Vec<i64> = e.candidates.iter().map(|c| c.id).collect();
    assert_eq!(ids, [2, 1], "newest first");
}

#[test]
fn results_for_an_older_candidate_do_not_count_for_a_newer_one() {
    let mut f = milestone(vec![candidate(1, 2 * 60 * MIN), candidate(2, 60 * MIN)]);
    f.results.extend(all_pass(10, 1));
    f.results.push(staging(12, "pfq", 2, &[]));
    let e = evaluate(&policy(), &f);
    assert_eq!(of(&e, 2), (State::Waiting, vec!["missing suite lxd_test"]));
    assert_eq!(suite(&e, 2, "pfq").result_id, Some(12));
    assert_eq!(suite(&e, 2, "lxd_test").status, Verdict::Missing);
    // Once the newer one passes too, it is the one promoted and the older is superseded.
    f.results.push(staging(13, "lxd_test", 2, &[]));
    let e = evaluate(&policy(), &f);
    assert_eq!(of(&e, 2), (State::Eligible, PASSED.to_vec()));
    assert_eq!(
        of(&e, 1),
        (
            State::Superseded,
            vec!["candidate 2 is newer and satisfies the policy"]
        )
    );
    assert_eq!(e.promote.unwrap().justification, [13, 12]);
}

#[test]
fn results_bind_to_the_digest_not_the_candidate() {
    // Candidate 2 rebuilt the same bytes as candidate 1: results recorded for 1 count for 2.
    let mut second = candidate(2, 60 * MIN);
    second.digest = "d1".into();
    let mut f = milestone(vec![candidate(1, 2 * 60 * MIN), second]);
    f.results.extend(all_pass(10, 1));
    let e = evaluate(&policy(), &f);
    assert_eq!(of(&e, 2), (State::Eligible, PASSED.to_vec()));
    assert_eq!(e.promote.unwrap().candidate_id, 2);
}

#[test]
fn the_latest_result_by_end_time_decides_whatever_the_arrival_order() {
    let mut f = milestone(vec![candidate(1, 2 * 60 * MIN)]);
    f.results.push(staging(10, "lxd_test", 1, &[]));
    // pfq passed at 12:00, reported at once; an older run of 11:00 that failed arrives later.
    let mut newer_pass = staging(11, "pfq", 1, &[]);
    newer_pass.ended_at = Some(NOW - 60 * MIN);
    newer_pass.recorded_at = NOW - 59 * MIN;
    let mut older_fail = staging(12, "pfq", 1, &["boot"]);
    older_fail.ended_at = Some(NOW - 120 * MIN);
    older_fail.recorded_at = NOW - MIN;
    f.results.extend([older_fail.clone(), newer_pass.clone()]);
    let e = evaluate(&policy(), &f);
    assert_eq!(of(&e, 1), (State::Eligible, PASSED.to_vec()));
    assert_eq!(suite(&e, 1, "pfq").result_id, Some(11));

    // The other way round: the failure is the newer run, the pass arrives late.
    older_fail.ended_at = Some(NOW - 30 * MIN);
    newer_pass.ended_at = Some(NOW - 90 * MIN);
    newer_pass.recorded_at = NOW;
    f.results.truncate(1);
    f.results.extend([older_fail, newer_pass]);
    let e = evaluate(&policy(), &f);
    assert_eq!(of(&e, 1), (State::Blocked, vec!["suite pfq failed: boot"]));
    assert_eq!(e.promote, None);

    // Without end times, arrival decides.
    let mut f = milestone(vec![candidate(1, 2 * 60 * MIN)]);
    f.results.push(staging(10, "lxd_test", 1, &[]));
    f.results.push(staging(12, "pfq", 1, &[]));
    f.results.push(staging(11, "pfq", 1, &["sftp"]));
    assert_eq!(of(&evaluate(&policy(), &f), 1).0, State::Eligible);
}

#[test]
fn duplicated_results_count_once() {
    let mut f = milestone(vec![candidate(1, 2 * 60 * MIN)]);
    let [lxd, pfq] = all_pass(10, 1);
    f.results.extend([lxd.clone(), pfq.clone(), lxd, pfq]);
    let e = evaluate(&policy(), &f);
    assert_eq!(of(&e, 1), (State::Eligible, PASSED.to_vec()));
    assert_eq!(e.promote.unwrap().justification, [10, 11]);
}

#[test]
fn a_failing_case_blocks_and_is_named() {
    let mut f = milestone(vec![candidate(1, 2 * 60 * MIN)]);
    f.results
        .push(staging(10, "lxd_test", 1, &["boot", "sftp"]));
    let e = evaluate(&policy(), &f);
    assert_eq!(
        of(&e, 1),
        (State::Blocked, vec!["suite lxd_test failed: boot, sftp"])
    );
    assert_eq!(
        suite(&e, 1, "lxd_test"),
        SuiteStatus {
            suite: "lxd_test".into(),
            status: Verdict::Failed,
            result_id: Some(10),
            failed_cases: vec!["boot".into(), "sftp".into()],
        }
    );
    assert_eq!(e.promote, None);
    // A failed report without case names still says which suite.
    f.results[0].failed_cases.clear();
    assert_eq!(
        of(&evaluate(&policy(), &f), 1),
        (State::Blocked, vec!["suite lxd_test failed"])
    );
}

#[test]
fn production_results_do_not_satisfy_staging_requirements() {
    let mut f = milestone(vec![candidate(1, 2 * 60 * MIN)]);
    f.results.push(staging(10, "lxd_test", 1, &[]));
    f.results
        .push(result(11, Environment::Production, "pfq", "d1", &[], NOW));
    let e = evaluate(&policy(), &f);
    assert_eq!(of(&e, 1), (State::Waiting, vec!["missing suite pfq"]));
}

#[test]
fn a_candidate_soaking_waits_with_the_time_left() {
    let mut f = milestone(vec![candidate(1, 10 * MIN)]);
    f.results.extend(all_pass(10, 1));
    let e = evaluate(&policy(), &f);
    assert_eq!(of(&e, 1), (State::Waiting, vec!["soak: 20m left of 30m"]));
    assert_eq!(e.candidate(1).unwrap().soak_left_secs, Some(20 * MIN));
    assert_eq!(e.wake_in_secs, Some(20 * MIN));
    assert_eq!(e.promote, None);

    // Missing suites and soak both show; an older soaked and tested candidate goes meanwhile.
    let mut f = milestone(vec![
        candidate(1, 2 * 60 * MIN),
        candidate(2, 29 * MIN + 30),
    ]);
    f.results.extend(all_pass(10, 1));
    f.results.push(staging(12, "pfq", 2, &[]));
    let e = evaluate(&policy(), &f);
    assert_eq!(
        of(&e, 2),
        (
            State::Waiting,
            vec!["missing suite lxd_test", "soak: 30s left of 30m"]
        )
    );
    assert_eq!(e.promote.unwrap().candidate_id, 1);
    assert_eq!(e.wake_in_secs, Some(30));
}

#[test]
fn a_hold_stops_promotion_and_says_who_and_why() {
    let mut f = milestone(vec![
        candidate(1, 3 * 60 * MIN),
        candidate(2, 2 * 60 * MIN),
        candidate(3, 60 * MIN),
    ]);
    f.results.push(staging(10, "pfq", 1, &["boot"]));
    f.results.extend(all_pass(11, 2));
    f.hold = Some(hold("alice", Some("waiting for the lab fix")));
    let e = evaluate(&policy(), &f);
    let mut held = vec!["held by alice: waiting for the lab fix"];
    held.extend(PASSED);
    assert_eq!(of(&e, 2), (State::Held, held));
    assert_eq!(
        of(&e, 3),
        (
            State::Held,
            vec![
                "held by alice: waiting for the lab fix",
                "missing suite lxd_test",
                "missing suite pfq"
            ]
        )
    );
    // What a hold cannot change keeps its own state.
    assert_eq!(
        of(&e, 1),
        (
            State::Superseded,
            vec!["candidate 2 is newer and satisfies the policy"]
        )
    );
    assert_eq!(e.promote, None);

    f.hold = Some(hold("bob", None));
    assert_eq!(of(&evaluate(&policy(), &f), 2).1[0], "held by bob");
    f.hold = None;
    assert_eq!(evaluate(&policy(), &f).promote.unwrap().candidate_id, 2);
}

#[test]
fn auto_off_computes_states_but_promotes_nothing() {
    let mut f = milestone(vec![candidate(1, 2 * 60 * MIN), candidate(2, 60 * MIN)]);
    f.results.extend(all_pass(10, 1));
    let manual = ReleasePolicy {
        auto: false,
        ..policy()
    };
    let e = evaluate(&manual, &f);
    let mut eligible = PASSED.to_vec();
    eligible.push("auto release is off");
    assert_eq!(of(&e, 1), (State::Eligible, eligible));
    assert_eq!(
        of(&e, 2),
        (
            State::Waiting,
            vec![
                "missing suite lxd_test",
                "missing suite pfq",
                "auto release is off"
            ]
        )
    );
    assert_eq!(e.promote, None);
}

#[test]
fn an_excluded_channel_does_not_auto_release() {
    let mut f = milestone(vec![candidate(1, 2 * 60 * MIN)]);
    f.channel = "stable".into();
    f.results.extend(all_pass(10, 1));
    let canary_only = ReleasePolicy {
        channels: Some(vec!["canary".into(), "dev".into()]),
        ..policy()
    };
    let e = evaluate(&canary_only, &f);
    let mut eligible = PASSED.to_vec();
    eligible.push("channel stable does not auto-release");
    assert_eq!(of(&e, 1), (State::Eligible, eligible));
    assert_eq!(e.promote, None);
    f.channel = "dev".into();
    assert_eq!(evaluate(&canary_only, &f).promote.unwrap().candidate_id, 1);
}

#[test]
fn a_bad_candidate_is_never_promoted() {
    let mut f = milestone(vec![candidate(1, 3 * 60 * MIN), candidate(2, 2 * 60 * MIN)]);
    f.results.extend(all_pass(10, 1));
    f.results.extend(all_pass(12, 2));
    f.candidates[1].bad = Some("bvt-cq failed twice on release 4".into());
    let e = evaluate(&policy(), &f);
    assert_eq!(
        of(&e, 2),
        (
            State::Blocked,
            vec!["marked bad: bvt-cq failed twice on release 4"]
        )
    );
    // A bad candidate passes nothing: the older good one is not superseded by it.
    assert_eq!(of(&e, 1), (State::Eligible, PASSED.to_vec()));
    assert_eq!(e.promote.unwrap().candidate_id, 1);
}

#[test]
fn the_live_release_and_older_candidates() {
    let mut f = milestone(vec![
        candidate(1, 4 * 60 * MIN),
        candidate(2, 3 * 60 * MIN),
        candidate(3, 2 * 60 * MIN),
        candidate(4, 60 * MIN),
    ]);
    f.releases = vec![
        release(1, 1, NOW - 200 * MIN, "promote"),
        release(2, 3, NOW - 100 * MIN, "promote"),
    ];
    f.results.extend(all_pass(10, 2));
    f.results.extend(all_pass(12, 4));
    let e = evaluate(&policy(), &f);
    assert_eq!(of(&e, 4), (State::Eligible, PASSED.to_vec()));
    assert_eq!(of(&e, 3), (State::Promoted, vec!["live: release 2"]));
    assert_eq!(
        of(&e, 2),
        (
            State::Superseded,
            vec!["older than candidate 3 of the live release 2"]
        )
    );
    assert_eq!(
        of(&e, 1),
        (
            State::Promoted,
            vec!["released as release 1; release 2 (candidate 3) is live"]
        )
    );
    assert_eq!(e.promote.unwrap().candidate_id, 4);
}

#[test]
fn after_a_rollback_release_only_moves_forward() {
    // 1 released, 3 released then rolled back to 1 and marked bad; 2 passes but lies between.
    let mut f = milestone(vec![
        candidate(1, 4 * 60 * MIN),
        candidate(2, 3 * 60 * MIN),
        candidate(3, 2 * 60 * MIN),
        candidate(4, 60 * MIN),
    ]);
    f.releases = vec![
        release(1, 1, NOW - 200 * MIN, "promote"),
        release(2, 3, NOW - 100 * MIN, "promote"),
        release(3, 1, NOW - 50 * MIN, "rollback"),
    ];
    f.candidates[2].bad = Some("bvt-cq failed 2 times".into());
    f.results.extend(all_pass(10, 2));
    let e = evaluate(&policy(), &f);
    assert_eq!(of(&e, 1), (State::Promoted, vec!["live: release 3"]));
    assert_eq!(
        of(&e, 2),
        (
            State::Superseded,
            vec!["older than candidate 3, released as release 2"]
        )
    );
    assert_eq!(
        of(&e, 3),
        (
            State::Blocked,
            vec!["marked bad: bvt-cq failed 2 times", "was release 2"]
        )
    );
    assert_eq!(
        of(&e, 4),
        (
            State::Waiting,
            vec!["missing suite lxd_test", "missing suite pfq"]
        )
    );
    assert_eq!(e.promote, None);
    // A rolled-back candidate that is not bad is not promoted again by the policy.
    f.candidates[2].bad = None;
    f.results.extend(all_pass(20, 3));
    let e = evaluate(&policy(), &f);
    assert_eq!(
        of(&e, 3),
        (
            State::Promoted,
            vec!["released as release 2; release 3 (candidate 1) is live"]
        )
    );
    assert_eq!(e.promote, None);
}

#[test]
fn a_candidate_with_the_live_bytes_is_not_promoted_again() {
    let mut rebuilt = candidate(2, 60 * MIN);
    rebuilt.digest = "d1".into();
    let mut f = milestone(vec![candidate(1, 2 * 60 * MIN), rebuilt]);
    f.releases = vec![release(1, 1, NOW - 100 * MIN, "promote")];
    f.results.extend(all_pass(10, 1));
    let e = evaluate(&policy(), &f);
    assert_eq!(
        of(&e, 2),
        (
            State::Promoted,
            vec!["live: release 1 of candidate 1 serves the same bytes"]
        )
    );
    assert_eq!(e.promote, None);
}

#[test]
fn without_requirements_every_new_candidate_is_promoted() {
    let f = milestone(vec![candidate(1, 2 * MIN), candidate(2, MIN)]);
    let bare = ReleasePolicy {
        auto: true,
        ..ReleasePolicy::default()
    };
    let e = evaluate(&bare, &f);
    assert_eq!(of(&e, 2), (State::Eligible, vec!["no suite is required"]));
    assert_eq!(e.candidate(2).unwrap().soak_left_secs, None);
    let d = e.promote.unwrap();
    assert_eq!((d.candidate_id, d.justification), (2, vec![]));
}

#[test]
fn a_soak_of_seconds_reads_exactly() {
    let mut f = milestone(vec![candidate(1, 0)]);
    f.results.extend(all_pass(10, 1));
    let odd = ReleasePolicy {
        soak: Duration::from_secs(3900),
        ..policy()
    };
    assert_eq!(
        of(&evaluate(&odd, &f), 1),
        (State::Waiting, vec!["soak: 1h5m left of 1h5m"])
    );
    // A clock behind the candidate's creation never shows more than the whole soak.
    f.candidates[0].created_at = NOW + 60 * MIN;
    assert_eq!(
        evaluate(&odd, &f).candidate(1).unwrap().soak_left_secs,
        Some(3900)
    );
}

#[test]
fn states_serialise_in_lowercase() {
    let mut f = milestone(vec![candidate(1, 2 * 60 * MIN)]);
    f.results.push(staging(10, "lxd_test", 1, &["boot"]));
    let json = serde_json::to_value(evaluate(&policy(), &f)).unwrap();
    let c = &json["candidates"][0];
    assert_eq!(c["state"], "blocked");
    assert_eq!(c["suites"][0]["status"], "failed");
    assert_eq!(c["suites"][1]["status"], "missing");
    assert_eq!(json["promote"], serde_json::Value::Null);
}
