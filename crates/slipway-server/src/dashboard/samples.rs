//! Sample views shaped like the example project (tests and screenshots).

use super::views::*;

pub const NOW: &str = "2026-11-26T12:00:00.000Z";
pub const JOBS: [&str; 5] = [
    "continuous",
    "nightly",
    "presubmit",
    "lxd_boot",
    "publish_docs",
];

pub fn page(title: &str, role: Option<&str>) -> Page {
    Page {
        project: "crostini-guest".into(),
        title: title.into(),
        role: role.map(str::to_string),
        now: NOW.into(),
    }
}

/// `minutes` before [`NOW`].
pub fn at(minutes: i64) -> String {
    let now = chrono::DateTime::parse_from_rfc3339(NOW).expect("sample time");
    (now - chrono::Duration::minutes(minutes)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn cell(run_id: i64, status: &str, age: i64) -> RunCell {
    RunCell {
        run_id,
        status: status.into(),
        commit_short: Some(format!("{:07x}", run_id * 7_919_113 % 0xfff_ffff)),
        created_at: at(age + 4),
        finished_at: matches!(status, "success" | "failure" | "cancelled" | "interrupted")
            .then(|| at(age)),
    }
}

pub fn home(milestones: u32) -> HomeView {
    let statuses = [
        "success",
        "success",
        "running",
        "failure",
        "success",
        "queued",
        "cancelled",
        "interrupted",
    ];
    let rows = (0..milestones)
        .map(|i| {
            let m = 124 - i;
            let channel = match i {
                0 => "canary",
                1 => "dev",
                2 => "beta",
                3 => "stable",
                _ => "ltc",
            };
            let cells = (0..JOBS.len())
                .map(|j| {
                    let k = i as usize * JOBS.len() + j;
                    // presubmit runs only on the newest two, docs only on canary
                    if (j == 2 && i > 1) || (j == 4 && i > 0) {
                        None
                    } else {
                        let id = 5000 - k as i64;
                        Some(cell(id, statuses[k % statuses.len()], (k as i64) * 17))
                    }
                })
                .collect();
            HomeRow {
                channel: channel.into(),
                milestone: m,
                branch: if i == 0 {
                    "main".into()
                } else {
                    format!("release-R{m}-16{m}.B")
                },
                active: i < 4 || i % 3 == 0,
                cells,
                candidate: (i < 6).then(|| CandidateBrief {
                    id: 900 - i64::from(i) * 3,
                    digest_short: format!("{:012x}", 0xabcdef123456u64 - u64::from(i)),
                }),
                release: (i > 0 && i < 6).then(|| ReleaseBrief {
                    candidate_id: 900 - i64::from(i) * 3 - i64::from(i % 2),
                    promoted_at: at(60 * 24 * i64::from(i)),
                }),
                drift: i == 3,
            }
        })
        .collect();
    HomeView {
        page: page("Release matrix", Some("releaser")),
        jobs: JOBS.iter().map(|s| s.to_string()).collect(),
        rows,
        drift_milestones: if milestones > 3 { vec![121] } else { vec![] },
        queued: 3,
        running: 2,
    }
}

pub fn runs() -> RunsView {
    let runs = (0..25)
        .map(|i: i64| {
            let status = ["success", "running", "failure", "queued", "cancelled"][i as usize % 5];
            RunListItem {
                run_id: 5000 - i,
                job: JOBS[i as usize % 3].into(),
                milestone: 124 - (i as u32 % 4),
                channel: ["canary", "dev", "beta", "stable"][i as usize % 4].into(),
                branch: if i % 4 == 0 {
                    "main".into()
                } else {
                    format!("release-R{}-16{}.B", 124 - i % 4, 124 - i % 4)
                },
                commit_short: (status != "queued").then(|| format!("{:07x}", i * 977_123)),
                status: status.into(),
                trigger: Some(["poll", "manual", "retry"][i as usize % 3].into()),
                created_at: at(i * 13 + 5),
                finished_at: matches!(status, "success" | "failure" | "cancelled")
                    .then(|| at(i * 13)),
                error: (status == "failure")
                    .then(|| "build 'lxd_container' failed: step 2 exited with status 1".into()),
            }
        })
        .collect();
    RunsView {
        page: page("Runs", Some("viewer")),
        filter_job: None,
        filter_milestone: None,
        runs,
        older_than: Some(4975),
    }
}

fn build(
    name: &str,
    needs: &[&str],
    status: &str,
    start: Option<i64>,
    end: Option<i64>,
) -> BuildView {
    BuildView {
        name: name.into(),
        needs: needs.iter().map(|s| s.to_string()).collect(),
        status: status.into(),
        error: None,
        started_at: start.map(at),
        finished_at: end.map(at),
        duration: None,
    }
}

pub fn run(live: bool) -> RunView {
    let mut builds = vec![
        build("guest_tools", &[], "success", Some(12), Some(10)),
        build("kernel_modules", &[], "success", Some(12), Some(9)),
        build(
            "apt_repo",
            &["guest_tools", "kernel_modules"],
            "success",
            Some(9),
            Some(8),
        ),
        build("apt_signer", &["apt_repo"], "success", Some(8), Some(8)),
        build(
            "lxd_container",
            &["apt_signer"],
            if live { "running" } else { "failure" },
            Some(7),
            (!live).then_some(2),
        ),
        build(
            "publish",
            &["apt_signer", "lxd_container"],
            if live { "pending" } else { "skipped" },
            None,
            None,
        ),
    ];
    if !live {
        builds[4].error = Some("step 2 (boot test) exited with status 1".into());
    }
    builds[0].duration = Some("2m 00s".into());
    RunView {
        page: page("Run 4998", Some("trigger")),
        run: RunSummary {
            run_id: 4998,
            instance: "crostini-guest/124/continuous".into(),
            job: "continuous".into(),
            milestone: 124,
            channel: "canary".into(),
            branch: "main".into(),
            commit: Some("3f9c2a17be04d5e6f7a8b9c0d1e2f3a4b5c6d7e8".into()),
            flow: "continuous".into(),
            status: if live { "running" } else { "failure" }.into(),
            error: (!live).then(|| "build 'lxd_container' failed".into()),
            trigger: Some("poll".into()),
            requested_by: None,
            retry_of: Some(4990),
            created_at: at(13),
            started_at: Some(at(12)),
            finished_at: (!live).then(|| at(2)),
        },
        builds,
        bypassed: vec![],
        can_cancel: live,
        live,
        review: None,
    }
}

pub fn untrusted_run() -> RunView {
    let mut v = run(false);
    v.run.flow = "presubmit".into();
    v.run.job = "presubmit".into();
    v.builds
        .retain(|b| b.name != "apt_signer" && b.name != "publish");
    v.builds[3].needs = vec!["apt_repo".into()];
    v.bypassed = vec![
        BypassView {
            build: "apt_signer".into(),
            inputs_go_to: vec!["apt_repo".into()],
        },
        BypassView {
            build: "publish".into(),
            inputs_go_to: vec!["apt_repo".into(), "lxd_container".into()],
        },
    ];
    let change = presubmit().changes[1].change.clone();
    v.review = Some(RunReviewView {
        change_number: change.number,
        change: Some(change),
        run: review_run(4998, "presubmit", 1, "failure", "posted", Some(-1), 1, None),
        label: Some("Verified".into()),
    });
    v
}

/// 64 hex digits that look like a sha256 (splitmix64 of the id).
fn fake_digest(mut x: u64) -> String {
    let mut out = String::from("sha256:");
    for _ in 0..4 {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.push_str(&format!("{:016x}", z ^ (z >> 31)));
    }
    out
}

fn required(suite: &str, status: &str, result_id: Option<i64>, failed: &[&str]) -> RequiredSuite {
    RequiredSuite {
        suite: suite.into(),
        status: status.into(),
        result_id,
        failed_cases: failed.iter().map(|c| c.to_string()).collect(),
    }
}

/// Each sample candidate's promotion state under a policy requiring `lxd-boot` and `pfq`.
pub fn candidate_policy(id: i64) -> CandidatePolicy {
    let passed = |r| required("lxd-boot", "passed", Some(r), &[]);
    let (state, reasons, suites) = match id {
        899 => (
            "waiting",
            vec!["missing suite pfq", "soak: 12m left of 30m"],
            vec![passed(4121), required("pfq", "missing", None, &[])],
        ),
        898 => (
            "blocked",
            vec!["suite lxd-boot failed: boot, sftp"],
            vec![
                required("lxd-boot", "failed", Some(4117), &["boot", "sftp"]),
                required("pfq", "passed", Some(4118), &[]),
            ],
        ),
        897 => (
            "promoted",
            vec!["live: release 31"],
            vec![passed(4090), required("pfq", "passed", Some(4093), &[])],
        ),
        _ => (
            "superseded",
            vec![
                "older than candidate 897 of the live release 31",
                "released as release 29; release 31 (candidate 897) is live",
            ],
            vec![passed(4011), required("pfq", "passed", Some(4012), &[])],
        ),
    };
    CandidatePolicy {
        state: state.into(),
        reasons: reasons.into_iter().map(str::to_string).collect(),
        suites,
    }
}

/// The sample milestone's policy: automatic on its channel, no hold, an error among the events.
pub fn policy() -> PolicyPanel {
    let event = |id, kind: &str, candidate_id, release_id, detail: &str, results: Vec<i64>, age| {
        PolicyEventView {
            id,
            kind: kind.into(),
            candidate_id,
            release_id,
            detail: detail.into(),
            results,
            at: at(age),
        }
    };
    PolicyPanel {
        auto: true,
        auto_here: true,
        channels: Some(vec!["dev".into(), "beta".into()]),
        require: vec!["lxd-boot".into(), "pfq".into()],
        soak_secs: 1800,
        rollback_after: 3,
        watch: vec!["bvt-cq".into()],
        hold: None,
        promote: None,
        wake_in_secs: Some(720),
        timeline: vec![
            event(
                14,
                "error",
                Some(898),
                None,
                "promotion of candidate 898 failed: production bucket lease held by host ci-2",
                vec![],
                40,
            ),
            event(
                13,
                "unhold",
                None,
                None,
                "hold lifted by alice (slipway serve)",
                vec![],
                60 * 20,
            ),
            event(
                12,
                "hold",
                None,
                None,
                "held by alice (slipway serve): lab outage",
                vec![],
                60 * 23,
            ),
            event(
                11,
                "promote",
                Some(897),
                Some(31),
                "promoted candidate 897: required suites passed: lxd-boot, pfq; soaked 30m",
                vec![4090, 4093],
                60 * 26,
            ),
            event(
                10,
                "rollback",
                Some(894),
                Some(30),
                "3 failed bvt-cq results in a row on release 29: rolled back to candidate 894",
                vec![4051, 4055, 4060],
                60 * 24 * 3,
            ),
        ],
    }
}

fn candidate(id: i64, live: bool, failing: bool) -> CandidateRow {
    CandidateRow {
        policy: Some(candidate_policy(id)),
        id,
        run_id: id * 5,
        commit_short: Some(format!("{:07x}", id * 31_337)),
        digest: fake_digest(id as u64),
        objects: 40 + id,
        created_at: at(id * 3),
        is_live: live,
        suites: vec![
            SuiteBrief {
                name: "lxd-boot".into(),
                passed: !failing,
                tests: 12,
                failures: i64::from(failing) * 2,
            },
            SuiteBrief {
                name: "apt-install".into(),
                passed: true,
                tests: 48,
                failures: 0,
            },
        ],
    }
}

pub fn release(can_release: bool) -> ReleaseView {
    let history = vec![
        ReleaseRow {
            id: 31,
            candidate_id: 897,
            kind: "promote".into(),
            promoted_by: "alice".into(),
            promoted_at: at(60 * 26),
        },
        ReleaseRow {
            id: 30,
            candidate_id: 894,
            kind: "rollback".into(),
            promoted_by: "bob".into(),
            promoted_at: at(60 * 24 * 3),
        },
        ReleaseRow {
            id: 29,
            candidate_id: 896,
            kind: "promote".into(),
            promoted_by: "alice".into(),
            promoted_at: at(60 * 24 * 4),
        },
    ];
    ReleaseView {
        page: page(
            "Milestone 123",
            Some(if can_release { "releaser" } else { "viewer" }),
        ),
        milestone: 123,
        channel: "dev".into(),
        branch: "release-R123-16123.B".into(),
        live: Some(history[0].clone()),
        candidates: vec![
            candidate(899, false, false),
            candidate(898, false, true),
            candidate(897, true, false),
            candidate(896, false, false),
        ],
        history,
        audit: Some(AuditView {
            checked_at: at(8),
            drift: false,
            lines: vec![],
            error: None,
        }),
        can_release,
        unfinished_promotion: None,
        policy: Some(policy()),
        policy_error: None,
    }
}

pub fn login() -> LoginView {
    LoginView {
        page: page("Log in", None),
        error: Some("That token is not valid.".into()),
        next: Some("/milestones/123".into()),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn review_run(
    run_id: i64,
    job: &str,
    patchset: u32,
    status: &str,
    vote: &str,
    value: Option<i32>,
    attempts: i64,
    note: Option<&str>,
) -> ReviewRunRow {
    ReviewRunRow {
        run_id,
        job: job.into(),
        patchset,
        status: status.into(),
        vote: VoteFacts {
            state: vote.into(),
            value,
            attempts,
            note: note.map(str::to_string),
        },
    }
}

fn change(
    number: i64,
    subject: &str,
    owner: &str,
    branch: &str,
    status: &str,
    ps: u32,
) -> ChangeBrief {
    ChangeBrief {
        number,
        url: Some(format!(
            "https://review.example.org/c/crostini/guest/+/{number}"
        )),
        subject: subject.into(),
        owner: owner.into(),
        branch: branch.into(),
        status: status.into(),
        current_patchset: ps,
        updated: at(number % 100),
    }
}

/// Four changes: runs in every vote state, outdated patch sets, one change without runs.
pub fn presubmit() -> PresubmitView {
    let changes = vec![
        ChangeRow {
            change: change(
                4711,
                "guest-tools: retry apt fetches",
                "alice",
                "main",
                "NEW",
                3,
            ),
            runs: vec![
                review_run(5012, "presubmit", 3, "running", "pending", None, 0, None),
                review_run(
                    5011,
                    "presubmit_lxd",
                    3,
                    "success",
                    "posted",
                    Some(1),
                    1,
                    Some("Verified+1 on patch set 3"),
                ),
                review_run(
                    5008,
                    "presubmit",
                    2,
                    "failure",
                    "posted",
                    Some(-1),
                    1,
                    Some("Verified-1 on patch set 2"),
                ),
                review_run(
                    5005,
                    "presubmit",
                    1,
                    "cancelled",
                    "none",
                    None,
                    0,
                    Some("the run ended cancelled: no vote"),
                ),
            ],
        },
        ChangeRow {
            change: change(
                4702,
                "kernel: bump modules to 6.6.40",
                "bob",
                "release-R123-16123.B",
                "NEW",
                2,
            ),
            runs: vec![
                review_run(
                    5010,
                    "presubmit",
                    2,
                    "failure",
                    "sending",
                    Some(-1),
                    2,
                    Some("attempt 2 failed, trying again: 503 Service Unavailable"),
                ),
                review_run(
                    5003,
                    "presubmit",
                    1,
                    "success",
                    "skipped",
                    None,
                    0,
                    Some("patch set 1 is no longer current"),
                ),
            ],
        },
        ChangeRow {
            change: change(4690, "docs: fix a typo", "carol", "main", "MERGED", 1),
            runs: vec![review_run(
                5001,
                "presubmit",
                1,
                "success",
                "failed",
                None,
                5,
                Some("gave up after 5 attempts: 502 Bad Gateway"),
            )],
        },
        ChangeRow {
            change: change(
                4688,
                "WIP: try a new base image",
                "dave",
                "main",
                "ABANDONED",
                1,
            ),
            runs: vec![],
        },
    ];
    PresubmitView {
        page: page("Presubmit", Some("viewer")),
        configured: true,
        label: Some("Verified".into()),
        poll: ReviewPollView {
            last_poll: Some(at(1)),
            changes_seen: 4,
            runs_queued: 6,
            errors: vec![],
        },
        changes,
    }
}
