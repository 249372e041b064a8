//! Candidates, promotion, rollback and the promotion lease on the example, with file:// buckets.

mod common;

use common::*;

#[test]
fn promote_rollback_and_release_history() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("ex");
    init_example(&ex);
    let out = slipway(&ex, &["promote", "--milestone", "74"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no candidate yet"),
        "{}",
        stderr(&out)
    );

    let first = json(&slipway(
        &ex,
        &["run", "guest_tools", "--milestone", "74", "--json"],
    ));
    assert_eq!(first["status"], "success");
    let c1 = first["candidate"]["id"].as_i64().expect("a candidate");
    assert_eq!(first["candidate"]["digest"].as_str().unwrap().len(), 64);

    let out = slipway(&ex, &["promote", "--milestone", "74", "--json"]);
    ok(&out);
    assert!(
        stderr(&out).contains(&format!("promoting candidate {c1} ")),
        "the chosen candidate is shown: {}",
        stderr(&out)
    );
    assert_eq!(json(&out)["candidate"]["id"], c1);
    assert!(packages(&ex, "cros-packages").contains("Version: 74.0.1"));
    let keyring = ex.join("var/keys/cros-apt.gpg");
    ok(&slipway(
        &ex,
        &[
            "apt",
            "verify",
            "var/buckets/cros-packages/74",
            "--keyring",
            keyring.to_str().unwrap(),
        ],
    ));
    let got = tempfile::tempdir().unwrap();
    let prod = ex.join("var/buckets/cros-packages/74");
    let out = apt_download(
        &format!("file:{}", prod.display()),
        &format!("signed-by={}", keyring.display()),
        &["cros-guest-tools"],
        got.path(),
    );
    ok(&out);
    assert!(got.path().join("cros-guest-tools_74.0.1_all.deb").exists());
    assert!(
        ex.join("var/buckets/cros-containers/74/streams/v1/index.json")
            .exists()
    );
    // The VM image is released with its candidate: production's bytes are those tested.
    let image = "74/debian/bookworm/amd64/guest-rootfs.qcow2";
    let vm = |bucket: &str| std::fs::read(ex.join("var/buckets").join(bucket).join(image)).unwrap();
    let vm1 = vm("termina-component-testing");
    assert!(
        vm("vm-images") == vm1,
        "vm-images serves candidate {c1}'s image"
    );

    // A new build lands in staging only; production keeps serving the promoted candidate.
    commit_version(&ex.join("repo"), "74.0.2");
    let second = json(&slipway(
        &ex,
        &["run", "guest_tools", "--milestone", "74", "--json"],
    ));
    let c2 = second["candidate"]["id"].as_i64().unwrap();
    assert_ne!(c1, c2);
    assert!(packages(&ex, "cros-packages-staging").contains("Version: 74.0.2"));
    assert!(packages(&ex, "cros-packages").contains("Version: 74.0.1"));

    ok(&slipway(&ex, &["promote", "--milestone", "74"]));
    assert!(packages(&ex, "cros-packages").contains("Version: 74.0.2"));

    // Rollback re-promotes candidate 1's exact bytes, although staging now holds 74.0.2.
    let out = slipway(&ex, &["rollback", "--milestone", "74", "--json"]);
    ok(&out);
    assert_eq!(json(&out)["candidate"]["id"], c1);
    assert!(packages(&ex, "cros-packages").contains("Version: 74.0.1"));
    assert!(!packages(&ex, "cros-packages").contains("Version: 74.0.2"));
    assert!(
        vm("vm-images") == vm1,
        "the rollback restores candidate {c1}'s VM image"
    );
    // Production keeps the 74.0.2 pool files for clients that fetched its indices.
    verify_published(&ex);

    let history = json(&slipway(&ex, &["releases", "--milestone", "74", "--json"]));
    let kinds: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["candidate_id"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("rollback".to_string(), c1),
            ("promote".to_string(), c2),
            ("promote".to_string(), c1)
        ]
    );
}

#[test]
fn promotion_refuses_identity_changes_and_held_leases() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("ex");
    init_example(&ex);
    ok(&slipway(&ex, &["run", "guest_tools", "--milestone", "74"]));
    ok(&slipway(&ex, &["promote", "--milestone", "74"]));

    // Another promoter, on another host, holds the lease of the production prefix.
    let lease = ex.join("var/buckets/cros-packages/74/.slipway-lease");
    let far = chrono_like_future();
    let holder = |host: &str, pid: u32, expires: u64| {
        format!(
            "{{\"host\":\"{host}\",\"pid\":{pid},\"start\":\"1\",\"operation\":99,\"by\":\"someone@else\",\"expires\":{expires}}}"
        )
    };
    std::fs::write(&lease, holder("elsewhere", 1, far)).unwrap();
    let out = slipway(&ex, &["promote", "--milestone", "74"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("promotion 99 is running (pid 1 on elsewhere, by someone@else"),
        "{}",
        stderr(&out)
    );
    // Left by a crashed promoter elsewhere: taken over once expired. The refused operation
    // above wrote nothing and is not left for anyone to finish.
    std::fs::write(&lease, holder("elsewhere", 1, 1)).unwrap();
    let out = slipway(&ex, &["promote", "--milestone", "74"]);
    ok(&out);
    assert!(!stdout(&out).contains("interrupted"), "{}", stdout(&out));
    assert!(!lease.exists(), "the lease is released");
    // Left by a killed promoter on this host: taken over at once, however far its expiry.
    let here = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(&lease, holder(here.trim(), i32::MAX as u32, far)).unwrap();
    ok(&slipway(&ex, &["promote", "--milestone", "74"]));
    assert!(!lease.exists(), "the lease is released");

    // A build that would change the Label clients pin is refused at promotion.
    let builds = ex.join("repo/.slipway/builds.toml");
    let text = std::fs::read_to_string(&builds)
        .unwrap()
        .replace("label = \"cros-containers\"", "label = \"cros-other\"");
    std::fs::write(&builds, text).unwrap();
    git(&ex.join("repo"), &["commit", "--quiet", "-am", "Relabel"]);
    ok(&slipway(&ex, &["run", "guest_tools", "--milestone", "74"]));
    let out = slipway(&ex, &["promote", "--milestone", "74"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Label would change from 'cros-containers' to 'cros-other'"),
        "{}",
        stderr(&out)
    );
    assert!(packages(&ex, "cros-packages").contains("Version: 74.0.1"));
}

fn chrono_like_future() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600
}

#[test]
fn labs_record_suite_results_about_a_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("ex");
    init_example(&ex);
    let run = json(&slipway(
        &ex,
        &["run", "guest_tools", "--milestone", "74", "--json"],
    ));
    let c = run["candidate"]["id"].as_i64().unwrap().to_string();
    let report = dir.path().join("pfq.xml");
    std::fs::write(
        &report,
        "<testsuite name=\"pfq\"><testcase name=\"vm.CrostiniStartEverything\"/></testsuite>",
    )
    .unwrap();
    ok(&slipway(
        &ex,
        &[
            "suite",
            "record",
            "--candidate",
            &c,
            "--junit",
            report.to_str().unwrap(),
        ],
    ));
    let suites = json(&slipway(
        &ex,
        &["suite", "list", "--candidate", &c, "--json"],
    ));
    // The run's own container test (JUnit from lxd_test) and the lab's verdict.
    let by_name = |n: &str| {
        suites
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("no {n} in {suites}"))
    };
    assert_eq!(by_name("ContainerTest")["passed"], true);
    assert_eq!(by_name("ContainerTest")["build"], "lxd_test");
    let pfq = by_name("pfq");
    assert_eq!(pfq["passed"], true);
    assert_eq!(pfq["source"], "external");
    std::fs::write(&report, "<html/>").unwrap();
    let out = slipway(
        &ex,
        &[
            "suite",
            "record",
            "--candidate",
            &c,
            "--junit",
            report.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a JUnit report"),
        "{}",
        stderr(&out)
    );
    let out = slipway(&ex, &["suite", "list", "--candidate", "999"]);
    assert!(
        stderr(&out).contains("no candidate 999"),
        "{}",
        stderr(&out)
    );
}
