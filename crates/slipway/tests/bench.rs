//! Benchmarks are not timed tests: this only checks that the benchmark runs and reports.

mod common;

#[test]
fn bench_plan_runs_as_a_smoke_test() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::slipway(
        dir.path(),
        &["bench", "plan", "--builds", "20", "--jobs", "2"],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert!(text.contains("20 no-op builds"), "{text}");
    assert!(text.contains("overhead per build"), "{text}");
}

#[test]
fn bench_apt_runs_as_a_smoke_test() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::slipway(
        dir.path(),
        &["bench", "apt", "--debs", "5", "--max-size", "20000"],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert!(
        text.contains("slipway apt build (cold)") && text.contains("slipway apt build (+1 deb)"),
        "{text}"
    );
    assert!(text.contains("sha256sum (1 process)"), "{text}");
    assert!(
        text.contains("openssl dgst -sha256 (floor)") && text.contains("cold within 2x of openssl"),
        "{text}"
    );
    assert!(
        text.contains("slipway apt sign") && text.contains("gpg --clearsign Release"),
        "{text}"
    );
    assert!(text.contains("apt sign under 50 ms"), "{text}");
    assert!(text.contains("slipway apt verify"), "{text}");
}

#[test]
fn bench_publish_runs_as_a_smoke_test() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::slipway_cmd(
        dir.path(),
        &["bench", "publish", "--objects", "10", "--mib", "1"],
    )
    .env_remove("AWS_CA_BUNDLE")
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert!(
        text.contains("slipway publish (cold)") && text.contains("rclone sync (cold)"),
        "{text}"
    );
    assert!(text.contains("(1 uploaded, 9 unchanged)"), "{text}");
    assert!(
        text.contains("slipway publish CLI (1 changed)")
            && text.contains("CLI republish uses the hash cache"),
        "{text}"
    );
}

#[test]
fn bench_sandbox_runs_as_a_smoke_test() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::slipway(dir.path(), &["bench", "sandbox", "--steps", "3"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    for row in [
        "sh -c true (plain spawn)",
        "slipway plain runner",
        "slipway sandboxed step",
        "bwrap --unshare-all",
        "unshare, 65,536-id map",
        "sandboxed step - plain spawn",
    ] {
        assert!(text.contains(row), "{row} missing:\n{text}");
    }
}

#[test]
fn bench_serve_runs_as_a_smoke_test() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::slipway(
        dir.path(),
        &[
            "bench",
            "serve",
            "--runs",
            "500",
            "--milestones",
            "5",
            "--connections",
            "20",
            "--seconds",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert!(text.contains("500 runs of history"), "{text}");
    for path in ["/api/v1/branches", "/api/v1/runs"] {
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with(path))
            .unwrap_or_else(|| panic!("no row for {path}:\n{text}"));
        // bytes, p50 ms, p99 ms, requests/s: all measured, none zero.
        let numbers: Vec<f64> = row
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert_eq!(numbers.len(), 4, "{row}");
        assert!(numbers.iter().all(|n| *n > 0.0), "{row}");
    }
    assert!(text.contains("worst p99 / target"), "{text}");
}
