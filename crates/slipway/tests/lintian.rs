//! The example's guest packages, built by the product's own packaging script (the step of its
//! `guest_tools` build), pass lintian without errors.

mod common;

use std::process::Command;

use common::*;

#[test]
fn example_packages_have_no_lintian_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("ex");
    init_example(&ex);
    let repo = ex.join("repo");
    let out = dir.path().join("debs");
    ok(&Command::new("sh")
        .arg("scripts/build-debs.sh")
        .arg(&out)
        .current_dir(&repo)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap());
    let mut debs: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    debs.sort();
    assert_eq!(debs.len(), 5, "{debs:?}");

    let lint = Command::new("lintian")
        .args(["--fail-on", "error", "--no-tag-display-limit"])
        .args(&debs)
        .output()
        .expect("lintian is not installed (Debian package 'lintian')");
    let report = format!("{}{}", stdout(&lint), stderr(&lint));
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E: ")).collect();
    assert!(
        lint.status.success() && errors.is_empty(),
        "lintian errors:\n{}\n\nfull report:\n{report}",
        errors.join("\n")
    );
}
