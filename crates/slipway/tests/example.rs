//! The crostini-guest example end to end, as a new user runs it: `slipway example init`, then
//! the continuous flow for canary and a release branch, presubmit, and a real `apt-get` against
//! what was published to the staging bucket.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn init() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["example", "init"])
        .arg(dir.path().join("ex"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    dir
}

fn build<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["builds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no build {name} in {v}"))
}

fn artifact_paths(b: &serde_json::Value) -> Vec<String> {
    b["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn example_continuous_and_presubmit_flows() {
    let dir = init();
    let ex = dir.path().join("ex");

    let out = slipway(&ex, &["validate"]);
    ok(&out);

    // The presubmit plan bypasses the signer and rewires the container to the unsigned repo.
    let plan = json(&slipway(
        &ex,
        &["plan", "presubmit", "--milestone", "74", "--json"],
    ));
    assert_eq!(plan["instance"], "crostini-guest/74/presubmit");
    let names: Vec<_> = plan["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["guest_tools", "apt_repo", "lxd_container", "lxd_test"]
    );
    assert_eq!(plan["builds"][2]["needs"], serde_json::json!(["apt_repo"]));
    assert_eq!(plan["bypassed"], serde_json::json!(["apt_signer"]));
    let out = slipway(&ex, &["plan", "presubmit", "--milestone", "71"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("does not run on milestone 71"),
        "{}",
        stderr(&out)
    );

    // Continuous on canary.
    let out = slipway(&ex, &["run", "guest_tools", "--milestone", "74", "--json"]);
    ok(&out);
    let run74 = json(&out);
    assert_eq!(run74["status"], "success");
    assert!(run74["run_id"].as_i64().is_some());
    let debs = artifact_paths(build(&run74, "guest_tools"));
    assert!(
        debs.contains(&"guest_debs/cros-guest-tools_74.0.1_all.deb".to_string()),
        "{debs:?}"
    );
    assert!(debs.len() >= 4);
    let signed = artifact_paths(build(&run74, "apt_signer"));
    assert!(signed.contains(&"apt_signed/dists/bookworm/InRelease".to_string()));
    assert!(signed.contains(&"apt_signed/dists/bookworm/Release.gpg".to_string()));
    let image = artifact_paths(build(&run74, "lxd_container"));
    assert_eq!(
        image,
        [
            "lxd/debian/bookworm/amd64/default/lxd.tar.xz",
            "lxd/debian/bookworm/amd64/default/rootfs.squashfs"
        ]
    );
    for a in build(&run74, "guest_tools")["artifacts"]
        .as_array()
        .unwrap()
    {
        assert_eq!(a["sha256"].as_str().unwrap().len(), 64);
        assert!(a["size"].as_u64().unwrap() > 0);
    }

    // The staging bucket holds a signed repository that apt accepts with the generated keyring.
    let staging = ex.join("var/buckets/cros-packages-staging/74");
    let keyring = ex.join("var/keys/cros-apt.gpg");
    let gpgv = Command::new("gpgv")
        .arg("--keyring")
        .arg(&keyring)
        .arg(staging.join("dists/bookworm/InRelease"))
        .output()
        .unwrap();
    assert!(gpgv.status.success(), "{}", stderr(&gpgv));
    let got = tempfile::tempdir().unwrap();
    let out = apt_download(
        &format!("file:{}", staging.display()),
        &format!("signed-by={}", keyring.display()),
        &["cros-guest-tools", "cros-garcon"],
        got.path(),
    );
    ok(&out);
    assert!(got.path().join("cros-guest-tools_74.0.1_all.deb").exists());

    // apt refuses the same repository when it is checked against another key.
    let other = tempfile::tempdir().unwrap();
    let wrong = other.path().join("wrong.gpg");
    let generated = Command::new("gpg")
        .env("GNUPGHOME", other.path())
        .args([
            "--batch",
            "--quiet",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Wrong <w@example.org>",
            "ed25519",
            "sign",
            "never",
        ])
        .status()
        .unwrap();
    assert!(generated.success());
    let exported = Command::new("gpg")
        .env("GNUPGHOME", other.path())
        .args(["--batch", "--export"])
        .output()
        .unwrap();
    std::fs::write(&wrong, exported.stdout).unwrap();
    let _ = Command::new("gpgconf")
        .env("GNUPGHOME", other.path())
        .args(["--kill", "all"])
        .status();
    let out = apt_download(
        &format!("file:{}", staging.display()),
        &format!("signed-by={}", wrong.display()),
        &["cros-garcon"],
        got.path(),
    );
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("NO_PUBKEY") || text.contains("not signed"),
        "apt accepted a repo signed by another key: {text}"
    );

    // The image is published as an LXD simplestreams tree.
    let streams = ex.join("var/buckets/cros-containers-staging/74");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(streams.join("streams/v1/index.json")).unwrap())
            .unwrap();
    assert_eq!(
        index["index"]["images"]["products"],
        serde_json::json!(["debian:bookworm:amd64:default"])
    );
    let images: serde_json::Value =
        serde_json::from_slice(&std::fs::read(streams.join("streams/v1/images.json")).unwrap())
            .unwrap();
    let versions = images["products"]["debian:bookworm:amd64:default"]["versions"]
        .as_object()
        .unwrap();
    assert_eq!(versions.len(), 1);
    let items = &versions.values().next().unwrap()["items"];
    let rootfs = streams.join(items["root.squashfs"]["path"].as_str().unwrap());
    let meta = std::fs::read(streams.join(items["lxd.tar.xz"]["path"].as_str().unwrap())).unwrap();
    let combined = {
        use std::io::Write;
        let mut h = Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = h.stdin.take().unwrap();
        stdin.write_all(&meta).unwrap();
        stdin.write_all(&std::fs::read(&rootfs).unwrap()).unwrap();
        drop(stdin);
        String::from_utf8(h.wait_with_output().unwrap().stdout).unwrap()[..64].to_string()
    };
    assert_eq!(
        items["lxd.tar.xz"]["combined_squashfs_sha256"],
        combined.as_str()
    );
    let listing = Command::new("unsquashfs")
        .arg("-l")
        .arg(&rootfs)
        .output()
        .unwrap();
    let files = stdout(&listing);
    assert!(
        files.contains("usr/lib/systemd/system/cros-sftp.service"),
        "{files}"
    );
    assert!(
        files.contains("usr/lib/systemd/user/cros-garcon.service"),
        "{files}"
    );

    // The VM image for device tests is in the testing bucket, a valid qcow2.
    let vm = ex
        .join("var/buckets/termina-component-testing/74/debian/bookworm/amd64/guest-rootfs.qcow2");
    let info = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&vm)
        .output()
        .unwrap();
    assert!(info.status.success(), "{}", stderr(&info));
    assert!(
        stdout(&info).contains("\"format\": \"qcow2\""),
        "{}",
        stdout(&info)
    );

    // Continuous on a release branch: its own VERSION, its own bucket prefix.
    let out = slipway(&ex, &["run", "guest_tools", "--milestone", "71", "--json"]);
    ok(&out);
    let run71 = json(&out);
    assert_eq!(run71["instance"], "crostini-guest/71/guest_tools");
    assert!(
        artifact_paths(build(&run71, "guest_tools"))
            .contains(&"guest_debs/cros-guest-tools_71.0.1_all.deb".to_string())
    );
    assert!(ex.join("var/buckets/cros-packages-staging/71/pool/main/c/cros-guest-tools/cros-guest-tools_71.0.1_all.deb").exists());
    let out = slipway(&ex, &["run", "guest_tools", "--milestone", "73", "--json"]);
    ok(&out);
    assert_eq!(json(&out)["status"], "success");

    // Presubmit: no signer, no publishing, the container built from the unsigned repository.
    let before = list(&ex.join("var/buckets"));
    let out = slipway(&ex, &["run", "presubmit", "--milestone", "74", "--json"]);
    ok(&out);
    let pre = json(&out);
    let names: Vec<_> = pre["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["guest_tools", "apt_repo", "lxd_container", "lxd_test"]
    );
    let id = pre["run_id"].as_i64().unwrap().to_string();
    let log = stdout(&slipway(&ex, &["logs", &id, "lxd_container"]));
    assert!(
        log.contains("using the unsigned repository (presubmit)"),
        "{log}"
    );
    assert!(!log.contains("SLIPWAY_SECRETS"));
    assert_eq!(
        list(&ex.join("var/buckets")),
        before,
        "presubmit changed a bucket"
    );
    let out = slipway(&ex, &["run", "presubmit-cr", "--milestone", "74", "--json"]);
    ok(&out);

    // Re-running canary republishes no apt object: the repository and its signatures are
    // reproducible, and identical bytes are skipped. (The container's root filesystem is not
    // byte-reproducible: apt and useradd leave times in it.)
    let out = slipway(&ex, &["run", "guest_tools", "--milestone", "74", "--json"]);
    ok(&out);
    let id = json(&out)["run_id"].as_i64().unwrap().to_string();
    let log = stdout(&slipway(&ex, &["logs", &id, "publish_apt_staging"]));
    assert!(log.contains(" 0 written, "), "{log}");
    let log = stdout(&slipway(&ex, &["logs", &id, "publish_lxd_staging"]));
    assert!(
        log.contains("lxd.tar.xz") && log.contains("read back and verified"),
        "{log}"
    );
}

fn list(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(list(&p));
            } else {
                out.push((
                    p.display().to_string(),
                    std::fs::read(&p).unwrap_or_default(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn example_init_refuses_a_non_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    let out = Command::new(bin())
        .args(["example", "init"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(),
        "mine"
    );
}
