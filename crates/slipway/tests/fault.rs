//! Fault injection: a publish aborted after the k-th object, for every k, leaves the bucket
//! serving the previous or the new repository whole, as `slipway apt verify --published` and a
//! real `apt-get update` see it; never a mix.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn repo(d: &Path, debs: &Path, out: &str) {
    ok(&slipway(
        d,
        &[
            "apt",
            "build",
            "--debs",
            debs.to_str().unwrap(),
            "--out",
            out,
            "--codename",
            "bookworm",
            "--arch",
            "amd64",
            "--origin",
            "Example",
            "--label",
            "cros-containers",
        ],
    ));
    ok(&slipway(
        d,
        &["apt", "sign", out, "--key", "keys/signing-key.asc"],
    ));
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    ok(&Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap());
}

/// The cros-garcon version apt sees after `apt-get update` against the bucket.
fn apt_sees(d: &Path, bucket: &Path) -> String {
    let got = tempfile::tempdir().unwrap();
    let keyring = d.join("keys/keyring.gpg");
    let out = apt_download(
        &format!("file:{}", bucket.display()),
        &format!("signed-by={}", keyring.display()),
        &["cros-garcon"],
        got.path(),
    );
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success() && !text.contains("E: ") && !text.contains("W: "),
        "apt failed:\n{text}"
    );
    std::fs::read_dir(got.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".deb"))
        .expect("no package downloaded")
}

#[test]
fn an_aborted_publish_never_shows_a_mixed_repository() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("slipway.toml"),
        "[project]\nname = \"t\"\nrepo = \"repo\"\n\n[buckets]\napt = \"file://bucket\"\n",
    )
    .unwrap();
    ok(&slipway(d, &["key", "generate", "--out", "keys"]));
    let v1 = corpus(d, "debs1", "");
    let v2 = corpus(d, "debs2", "+2");
    repo(d, &v1, "r1");
    repo(d, &v2, "r2");

    ok(&slipway(
        d,
        &["publish", "r1", "--bucket", "apt", "--prefix", "74"],
    ));
    let bucket = d.join("bucket/74");
    let before = apt_sees(d, &bucket);
    assert_eq!(before, "cros-garcon_1.1-1_all.deb");
    copy_dir(&d.join("bucket"), &d.join("snapshot"));

    // How many objects the new version writes.
    let full = slipway(d, &["publish", "r2", "--bucket", "apt", "--prefix", "74"]);
    ok(&full);
    let written: usize = stdout(&full)
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("written count");
    let after = apt_sees(d, &bucket);
    assert_eq!(after, "cros-garcon_1.1-1+2_all.deb");
    assert!(written > 10, "{}", stdout(&full));

    let mut seen = Vec::new();
    for k in 0..written {
        copy_dir(&d.join("snapshot"), &d.join("bucket"));
        let out = slipway(
            d,
            &[
                "publish",
                "r2",
                "--bucket",
                "apt",
                "--prefix",
                "74",
                "--abort-after",
                &k.to_string(),
            ],
        );
        assert!(!out.status.success(), "k={k}: the publish was not aborted");
        assert!(stderr(&out).contains("fault injection"), "{}", stderr(&out));
        let verify = slipway(
            d,
            &[
                "apt",
                "verify",
                "bucket/74",
                "--keyring",
                "keys/keyring.gpg",
                "--published",
            ],
        );
        assert!(verify.status.success(), "k={k}: {}", stderr(&verify));
        let v = apt_sees(d, &bucket);
        assert!(v == before || v == after, "k={k}: apt saw {v}");
        seen.push(v);
    }
    // Old until the last object (InRelease) switches; never back and forth.
    let first_new = seen.iter().position(|v| *v == after).unwrap_or(seen.len());
    assert!(seen[first_new..].iter().all(|v| *v == after), "{seen:?}");
    assert_eq!(seen[0], before);
}
