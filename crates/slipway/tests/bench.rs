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
