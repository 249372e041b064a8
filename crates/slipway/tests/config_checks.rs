//! Configs that would do the wrong thing are refused by `slipway validate` (and by every command
//! that loads them) with one positioned line each: buckets that publish into Slipway's own
//! folders or nowhere, `promote_to` loops, options a bucket kind ignores, secrets that are
//! missing or readable by others.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

const SECRET: &str = "var/secrets/apt-signing.asc";

/// `slipway.toml:L:C` of the first `needle` in `text`.
fn position(text: &str, needle: &str) -> String {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in the config"));
    let line = text[..offset].matches('\n').count() + 1;
    let col = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("slipway.toml:{line}:{col}")
}

/// The positioned lines of a command's error output.
fn positioned(out: &std::process::Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("slipway.toml:"))
        .map(String::from)
        .collect()
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn validate_refuses_each_bad_edit_with_one_positioned_line() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("ex");
    init_example(&ex);
    let mode = std::fs::metadata(ex.join(SECRET))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the example's secret is private");
    ok(&slipway(&ex, &["validate"]));
    let original = std::fs::read_to_string(ex.join("slipway.toml")).unwrap();

    let packages = "packages           = \"file://var/buckets/cros-packages\"";
    let vm = "vm-testing         = { url = \"file://var/buckets/termina-component-testing\", promote_to = \"vm-images\" }";
    let secret = "apt-signing-key = { file = \"var/secrets/apt-signing.asc\" }";
    // (what to replace, with what, where the error points, what it says)
    let cases = [
        (
            packages,
            "packages = \"file://\"",
            "\"file://\"",
            "bucket 'packages': url 'file://' names no folder",
        ),
        (
            packages,
            "packages = \"file://../../../etc\"",
            "\"file://..",
            "bucket 'packages': url 'file://../../../etc' leaves its folder through '..'",
        ),
        (
            "promote_to = \"packages\" }",
            "promote_to = \"packages-staging\" }",
            "\"packages-staging\" }",
            "bucket 'packages-staging' promotes to itself",
        ),
        (
            packages,
            "packages = { url = \"file://var/buckets/cros-packages\", promote_to = \"packages-staging\" }",
            "\"packages-staging\" }",
            "promote_to forms a cycle: packages -> packages-staging -> packages",
        ),
        (
            packages,
            "packages = \"s3:///cros-packages\"",
            "\"s3://",
            "bucket 'packages': url 's3:///cros-packages' names no bucket",
        ),
        (
            vm,
            "vm-testing = { url = \"gs://termina-testing\", region = \"us-east1\" }",
            "\"us-east1\"",
            "bucket 'vm-testing': `region` does nothing for a gs:// bucket",
        ),
        (
            vm,
            "vm-testing = { url = \"file://var/vm\", endpoint = \"https://storage.example\" }",
            "\"https://storage.example\"",
            "bucket 'vm-testing': `endpoint` does nothing for a file:// bucket",
        ),
        (
            vm,
            "vm-testing = \"file://var/secrets\"",
            "\"file://var/secrets\"",
            "holds the file of secret 'apt-signing-key', which publishing would expose",
        ),
        (
            vm,
            "vm-testing = \"file://repo/vm\"",
            "\"file://repo/vm\"",
            "is inside the product repository",
        ),
        (
            secret,
            "apt-signing-key = { file = \"var/secrets/missing.asc\" }",
            "apt-signing-key",
            "secret 'apt-signing-key': ./var/secrets/missing.asc does not exist",
        ),
        (
            secret,
            "apt-signing-key = { env = \"SLIPWAY_TEST_UNSET_SECRET\" }",
            "apt-signing-key",
            "secret 'apt-signing-key': environment variable SLIPWAY_TEST_UNSET_SECRET is not set",
        ),
    ];
    for (from, to, at, says) in cases {
        assert!(original.contains(from), "the example changed: {from}");
        let text = original.replacen(from, to, 1);
        std::fs::write(ex.join("slipway.toml"), &text).unwrap();
        let out = slipway(&ex, &["validate"]);
        assert!(!out.status.success(), "{to}: validated");
        let lines = positioned(&out);
        let want = format!("{}: ", position(&text, at));
        assert_eq!(lines.len(), 1, "{to}: {}", stderr(&out));
        assert!(
            lines[0].starts_with(&want) && lines[0].contains(says),
            "{to}: want {want}...{says}, got {}",
            lines[0]
        );
    }

    // A secret others can read is refused, as ssh refuses such a key.
    std::fs::write(ex.join("slipway.toml"), &original).unwrap();
    set_mode(&ex.join(SECRET), 0o644);
    let out = slipway(&ex, &["validate"]);
    assert!(!out.status.success());
    assert_eq!(
        positioned(&out),
        [format!(
            "{}: secret 'apt-signing-key': ./{SECRET} is open to group or others (mode 0644); run `chmod 600 ./{SECRET}`",
            position(&original, "apt-signing-key =")
        )]
    );
    // `run` and `promote` refuse it too, before a run or a promotion is recorded.
    for args in [
        &["run", "guest_tools", "--milestone", "74"][..],
        &["promote", "--milestone", "74"][..],
    ] {
        let out = slipway(&ex, args);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    }
    let runs = json(&slipway(&ex, &["runs", "--json"]));
    assert_eq!(runs.as_array().map(Vec::len), Some(0), "{runs}");
    set_mode(&ex.join(SECRET), 0o600);

    // A data dir inside a bucket's folder (only the command line knows where it is).
    let out = slipway(
        &ex,
        &["--data-dir", "var/buckets/cros-packages/state", "validate"],
    );
    assert!(!out.status.success());
    let lines = positioned(&out);
    assert_eq!(lines.len(), 1, "{}", stderr(&out));
    assert!(
        lines[0].starts_with(&format!(
            "{}: bucket 'packages': folder ",
            position(&original, "\"file://var/buckets/cros-packages\"\n")
        )) && lines[0].contains("overlaps the data dir"),
        "{}",
        lines[0]
    );

    // Every problem at once, and every command that loads the config refuses it the same way.
    let text = original
        .replacen(packages, "packages = \"file://\"", 1)
        .replacen(vm, "vm-testing = \"s3://\"", 1);
    std::fs::write(ex.join("slipway.toml"), &text).unwrap();
    for args in [
        &["validate"][..],
        &["plan", "guest_tools", "--milestone", "74"],
    ] {
        let out = slipway(&ex, args);
        assert!(!out.status.success());
        let lines = positioned(&out);
        assert_eq!(lines.len(), 2, "{args:?}: {}", stderr(&out));
        assert!(
            lines[0].starts_with(&position(&text, "\"file://\"")),
            "{lines:?}"
        );
        assert!(
            lines[1].starts_with(&position(&text, "\"s3://\"")),
            "{lines:?}"
        );
    }

    std::fs::write(ex.join("slipway.toml"), &original).unwrap();
    ok(&slipway(&ex, &["validate"]));
}
