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

/// `slipway suite record ... --json`, which must succeed.
fn record(ex: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["suite", "record", "--json"];
    all.extend_from_slice(args);
    json(&slipway(ex, &all))
}

#[test]
fn labs_record_results_bound_to_digests_and_read_environments() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("ex");
    init_example(&ex);
    let run = json(&slipway(
        &ex,
        &["run", "guest_tools", "--milestone", "74", "--json"],
    ));
    let r1 = run["run_id"].as_i64().unwrap();
    let c1 = run["candidate"]["id"].as_i64().unwrap();
    let d1 = run["candidate"]["digest"].as_str().unwrap().to_string();
    let c = c1.to_string();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };

    // The run's own boot test is a staging result of its candidate, named by its build.
    let list = json(&slipway(
        &ex,
        &["suite", "list", "--candidate", &c, "--json"],
    ));
    let built = &list[0];
    assert_eq!(built["suite"], "lxd_test");
    assert_eq!(built["name"], "ContainerTest");
    assert_eq!(built["build"], "lxd_test");
    assert_eq!(built["status"], "passed");
    assert_eq!(built["source"], format!("build:{r1}/lxd_test"));
    assert_eq!(built["candidate_id"], c1);
    assert_eq!(built["target_digest"], d1.as_str());

    // JUnit from a lab, with a link; the same report again is the same result.
    let pfq = file(
        "pfq.xml",
        "<testsuite name=\"vm\"><testcase name=\"vm.CrostiniStartEverything\"/></testsuite>",
    );
    let args = [
        "--candidate",
        &c,
        "--suite",
        "pfq",
        "--junit",
        &pfq,
        "--link",
        "https://lab.example/pfq/1",
    ];
    let first = record(&ex, &args);
    assert_eq!(first["duplicate"], false);
    assert_eq!(
        (&first["suite"], &first["status"], &first["environment"]),
        (&"pfq".into(), &"passed".into(), &"staging".into())
    );
    assert_eq!(first["target_digest"], d1.as_str());
    assert_eq!(first["reporter"], "cli");
    assert_eq!(first["link"], "https://lab.example/pfq/1");
    let again = record(&ex, &args);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["id"], first["id"]);
    let mut text_args = vec!["suite", "record"];
    text_args.extend_from_slice(&args);
    let text = stdout(&slipway(&ex, &text_args));
    assert!(
        text.contains(&format!(
            "result {} already recorded (duplicate): pfq passed",
            first["id"]
        )),
        "{text}"
    );

    // Tast's results.json from the device lab: a failed test names the case.
    let tast = file(
        "results.json",
        r#"[{"name": "crostini.Basic", "errors": null, "skipReason": "", "start": "2026-01-01T10:00:00Z", "end": "2026-01-01T10:01:00Z"},
            {"name": "crostini.Sftp", "errors": [{"time": "2026-01-01T10:01:30Z", "reason": "cros-sftp inactive", "file": "sftp.go", "line": 7, "stack": ""}],
             "skipReason": "", "start": "2026-01-01T10:01:00Z", "end": "2026-01-01T10:02:00Z"}]"#,
    );
    let red = record(
        &ex,
        &["--candidate", &c, "--suite", "pfq-tast", "--tast", &tast],
    );
    assert_eq!(red["status"], "failed");
    assert_eq!(red["failed_cases"], serde_json::json!(["crostini.Sftp"]));
    assert_eq!(
        (&red["started_at"], &red["ended_at"]),
        (
            &"2026-01-01T10:00:00.000Z".into(),
            &"2026-01-01T10:02:00.000Z".into()
        )
    );
    let shown = stdout(&slipway(
        &ex,
        &[
            "suite",
            "record",
            "--candidate",
            &c,
            "--suite",
            "pfq-tast",
            "--tast",
            &tast,
        ],
    ));
    assert!(
        shown.contains("pfq-tast FAILED") && shown.contains("failed: crostini.Sftp"),
        "{shown}"
    );

    // The earlier form: each <testsuite> under its own name.
    let lab = file(
        "lab.xml",
        "<testsuite name=\"lab\"><testcase name=\"a\"/></testsuite>",
    );
    ok(&slipway(
        &ex,
        &["suite", "record", "--candidate", &c, "--junit", &lab],
    ));

    // Refused, with the reason.
    for (args, says) in [
        (vec!["--candidate", &c, "--tast", &tast], "names no suite"),
        (
            vec!["--candidate", "999", "--suite", "pfq", "--junit", &pfq],
            "no candidate 999",
        ),
        (
            vec!["--release", "5", "--suite", "bvt-cq", "--junit", &pfq],
            "no release 5",
        ),
        (
            vec![
                "--candidate",
                &c,
                "--suite",
                "pfq",
                "--junit",
                &file("bad.xml", "<html/>"),
            ],
            "not a JUnit report",
        ),
        (
            vec![
                "--candidate",
                &c,
                "--suite",
                "pfq",
                "--tast",
                &file("bad.json", "{\"name\": \"x\"}"),
            ],
            "expected a JSON list of tests",
        ),
        (
            vec![
                "--candidate",
                &c,
                "--suite",
                "pfq",
                "--junit",
                "/nonexistent/r.xml",
            ],
            "report /nonexistent/r.xml",
        ),
        (
            vec![
                "--candidate",
                &c,
                "--release",
                "1",
                "--suite",
                "pfq",
                "--junit",
                &pfq,
            ],
            "cannot be used with",
        ),
    ] {
        let mut all = vec!["suite", "record"];
        all.extend(args.iter().copied());
        let out = slipway(&ex, &all);
        assert!(!out.status.success(), "{all:?}");
        assert!(stderr(&out).contains(says), "{all:?}: {}", stderr(&out));
    }

    // What staging serves now, for labs.
    let envs = json(&slipway(
        &ex,
        &["environments", "--milestone", "74", "--json"],
    ));
    let staging = &envs["staging"];
    assert_eq!(staging["candidate_id"], c1);
    assert_eq!(staging["digest"], d1.as_str());
    let buckets = ex.join("var/buckets");
    let url = |tail: &str| format!("file://{}/{tail}", buckets.display());
    assert_eq!(
        staging["apt"],
        serde_json::json!([{"url": url("cros-packages-staging/74"), "codenames": ["bookworm", "bullseye"]}])
    );
    assert_eq!(
        staging["streams"],
        serde_json::json!([url("cros-containers-staging/74/streams/v1/index.json")])
    );
    assert_eq!(
        staging["vm_images"],
        serde_json::json!([url(
            "termina-component-testing/74/debian/bookworm/amd64/guest-rootfs.qcow2"
        )])
    );
    assert_eq!(envs["production"]["candidate_id"], serde_json::Value::Null);
    let text = stdout(&slipway(&ex, &["environments", "--milestone", "74"]));
    assert!(text.contains("production: serves nothing yet"), "{text}");
    assert!(
        text.contains(&format!(
            "apt {} bookworm bullseye",
            url("cros-packages-staging/74")
        )),
        "{text}"
    );

    // A newer candidate: every result about the older digest is kept, and stale.
    commit_version(&ex.join("repo"), "74.0.2");
    let second = json(&slipway(
        &ex,
        &["run", "guest_tools", "--milestone", "74", "--json"],
    ));
    let c2 = second["candidate"]["id"].as_i64().unwrap();
    let d2 = second["candidate"]["digest"].as_str().unwrap().to_string();
    assert_ne!(d1, d2);
    let old = json(&slipway(
        &ex,
        &["suite", "list", "--candidate", &c, "--json"],
    ));
    let suites: Vec<(&str, bool)> = old
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["suite"].as_str().unwrap(), r["stale"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        suites,
        [
            ("lxd_test", true),
            ("pfq", true),
            ("pfq-tast", true),
            ("lab", true)
        ]
    );
    let new = json(&slipway(
        &ex,
        &["suite", "list", "--candidate", &c2.to_string(), "--json"],
    ));
    assert_eq!(new[0]["suite"], "lxd_test");
    assert_eq!(new[0]["stale"], false);

    // Promoted, candidate 2 is production's: bvt-cq reports against its release.
    let promoted = json(&slipway(&ex, &["promote", "--milestone", "74", "--json"]));
    let release = promoted["release"]["id"].as_i64().unwrap().to_string();
    let bvt = record(
        &ex,
        &["--release", &release, "--suite", "bvt-cq", "--tast", &tast],
    );
    assert_eq!(bvt["environment"], "production");
    assert_eq!(bvt["release_id"].to_string(), release);
    assert_eq!(bvt["candidate_id"], c2);
    assert_eq!(bvt["target_digest"], d2.as_str());
    assert_eq!(bvt["stale"], false);
    let envs = json(&slipway(
        &ex,
        &["environments", "--milestone", "74", "--json"],
    ));
    let production = &envs["production"];
    assert_eq!(production["release_id"].to_string(), release);
    assert_eq!(production["candidate_id"], c2);
    assert_eq!(production["digest"], d2.as_str());
    assert_eq!(
        production["apt"],
        serde_json::json!([{"url": url("cros-packages/74"), "codenames": ["bookworm", "bullseye"]}])
    );
    assert_eq!(
        production["streams"],
        serde_json::json!([url("cros-containers/74/streams/v1/index.json")])
    );
}
