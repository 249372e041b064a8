//! Build, sign and verify together: the properties apt relies on.

use std::path::{Path, PathBuf};

use crate::control::Stanza;
use crate::keys::{self, KeyKind};
use crate::sign::{Digest, sign_repo};
use crate::testdeb::make_deb;
use crate::*;

fn dist(codenames: &[&str]) -> Distribution {
    Distribution {
        origin: Some("Example".into()),
        label: Some("cros-containers".into()),
        suites: codenames
            .iter()
            .zip(["stable", "oldstable", "oldoldstable"])
            .map(|(c, s)| (c.to_string(), s.to_string()))
            .collect(),
        version: Some("1.0".into()),
        codenames: codenames.iter().map(|s| s.to_string()).collect(),
        components: vec!["main".into()],
        architectures: vec!["amd64".into(), "arm64".into()],
        description: Some("test".into()),
        valid_for: None,
    }
}

fn write_deb(dir: &Path, name: &str, version: &str, arch: &str, payload: &[u8]) -> PathBuf {
    let control = format!(
        "Package: {name}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: t <t@example.org>\nDescription: {name}\n long text\n"
    );
    let p = dir.join(format!("{name}_{version}_{arch}.deb"));
    std::fs::write(&p, make_deb(&control, "xz", payload)).unwrap();
    p
}

fn inputs(codename: &str, paths: &[PathBuf]) -> Vec<Input> {
    paths
        .iter()
        .map(|p| Input {
            codename: codename.into(),
            component: "main".into(),
            path: p.clone(),
        })
        .collect()
}

const DATE: i64 = 1_700_000_000;

fn opts() -> BuildOptions {
    BuildOptions {
        date: DATE,
        cache: None,
    }
}

#[test]
fn layout_arch_all_everywhere_versions_coexist_empty_suites_kept() {
    let dir = tempfile::tempdir().unwrap();
    let debs = dir.path().join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let files = vec![
        write_deb(&debs, "cros-garcon", "1.0", "all", b"a"),
        write_deb(&debs, "cros-garcon", "1.1", "all", b"b"),
        write_deb(&debs, "libfoo1", "2:3.0-1", "amd64", b"c"),
    ];
    let out = dir.path().join("repo");
    let report = build_repo(
        &dist(&["bookworm", "stretch"]),
        &inputs("bookworm", &files),
        &out,
        &opts(),
    )
    .unwrap();
    assert_eq!(report.pool_files, 3);
    assert!(
        out.join("pool/main/c/cros-garcon/cros-garcon_1.0_all.deb")
            .exists()
    );
    assert!(
        out.join("pool/main/c/cros-garcon/cros-garcon_1.1_all.deb")
            .exists()
    );
    assert!(
        out.join("pool/main/libf/libfoo1/libfoo1_3.0-1_amd64.deb")
            .exists()
    );
    let amd =
        std::fs::read_to_string(out.join("dists/bookworm/main/binary-amd64/Packages")).unwrap();
    let arm =
        std::fs::read_to_string(out.join("dists/bookworm/main/binary-arm64/Packages")).unwrap();
    assert_eq!(amd.matches("Package: cros-garcon").count(), 2, "{amd}");
    assert!(amd.contains("Package: libfoo1"));
    assert_eq!(arm.matches("Package: cros-garcon").count(), 2);
    assert!(!arm.contains("libfoo1"));
    // Older version first; Description last; file facts present.
    assert!(amd.find("Version: 1.0").unwrap() < amd.find("Version: 1.1").unwrap());
    let stanza = amd.split("\n\n").next().unwrap();
    assert!(stanza.trim_end().ends_with("long text"), "{stanza}");
    assert!(stanza.contains("Filename: pool/main/c/cros-garcon/cros-garcon_1.0_all.deb"));
    assert!(stanza.contains("SHA256: "));
    // The retired codename is an empty but valid suite.
    assert_eq!(
        std::fs::read(out.join("dists/stretch/main/binary-amd64/Packages")).unwrap(),
        b""
    );
    let release = std::fs::read_to_string(out.join("dists/bookworm/Release")).unwrap();
    assert!(
        release.contains("Date: Tue, 14 Nov 2023 22:13:20 +0000"),
        "{release}"
    );
    assert!(release.contains("Acquire-By-Hash: yes"));
    verify_repo(&out, None, DATE).unwrap();
}

#[test]
fn each_codename_gets_its_own_suite_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let debs = dir.path().join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let files = vec![write_deb(&debs, "cros-garcon", "1.0", "all", b"a")];
    let out = dir.path().join("repo");
    let mut d = dist(&["bookworm", "bullseye", "trixie"]);
    d.suites.remove("trixie");
    build_repo(&d, &inputs("bookworm", &files), &out, &opts()).unwrap();
    let read = |p: &str| std::fs::read_to_string(out.join("dists").join(p)).unwrap();
    for (codename, suite) in [("bookworm", "stable"), ("bullseye", "oldstable")] {
        let release = Stanza::parse(&read(&format!("{codename}/Release"))).unwrap();
        assert_eq!(release.get("Suite"), Some(suite));
        assert_eq!(release.get("Codename"), Some(codename));
        let arch = Stanza::parse(&read(&format!("{codename}/main/binary-arm64/Release"))).unwrap();
        assert_eq!(arch.get("Archive"), Some(suite));
    }
    let release = Stanza::parse(&read("trixie/Release")).unwrap();
    assert_eq!(release.get("Suite"), None);
    assert_eq!(release.get("Codename"), Some("trixie"));
    let arch = Stanza::parse(&read("trixie/main/binary-amd64/Release")).unwrap();
    assert_eq!(arch.get("Archive"), None);
    let report = verify_repo(&out, None, DATE).unwrap();
    let suites: Vec<_> = report.suites.iter().map(|s| s.suite.as_deref()).collect();
    assert_eq!(suites, [Some("stable"), Some("oldstable"), None]);

    // A tree where two codenames claim one suite (as older Slipway wrote) fails verification.
    let path = out.join("dists/bullseye/Release");
    let text = read("bullseye/Release").replace("Suite: oldstable", "Suite: stable");
    std::fs::write(&path, text).unwrap();
    let e = verify_repo(&out, None, DATE).unwrap_err().to_string();
    assert!(
        e.contains("dists/bookworm and dists/bullseye both have Suite 'stable'"),
        "{e}"
    );
}

#[test]
fn shared_or_foreign_suites_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("repo");
    let mut shared = dist(&["bookworm", "bullseye"]);
    shared.suites.insert("bullseye".into(), "stable".into());
    let mut unknown = dist(&["bookworm"]);
    unknown.suites.insert("trixie".into(), "testing".into());
    let mut other_codename = dist(&["bookworm", "bullseye"]);
    other_codename
        .suites
        .insert("bookworm".into(), "bullseye".into());
    for (d, want) in [
        (
            shared,
            "codenames 'bookworm' and 'bullseye' both have suite 'stable'",
        ),
        (unknown, "is for codename 'trixie', which is not one of"),
        (
            other_codename,
            "suite 'bullseye' of codename 'bookworm' is itself a codename",
        ),
    ] {
        let e = build_repo(&d, &[], &out, &opts()).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
        assert!(!out.exists());
    }
}

#[test]
fn output_is_deterministic_and_incremental() {
    let dir = tempfile::tempdir().unwrap();
    let debs = dir.path().join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let mut files: Vec<PathBuf> = (0..20)
        .map(|i| {
            write_deb(
                &debs,
                &format!("pkg{i}"),
                "1.0",
                "all",
                format!("{i}").as_bytes(),
            )
        })
        .collect();
    let cache = dir.path().join("cache.json");
    let with_cache = BuildOptions {
        date: DATE,
        cache: Some(cache.clone()),
    };
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    build_repo(
        &dist(&["bookworm"]),
        &inputs("bookworm", &files),
        &a,
        &with_cache,
    )
    .unwrap();
    let second = build_repo(
        &dist(&["bookworm"]),
        &inputs("bookworm", &files),
        &b,
        &with_cache,
    )
    .unwrap();
    assert_eq!((second.debs_read, second.debs_cached), (0, 20));
    for f in [
        "dists/bookworm/Release",
        "dists/bookworm/main/binary-amd64/Packages.gz",
        "dists/bookworm/main/binary-amd64/Packages.xz",
    ] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs"
        );
    }
    files.push(write_deb(&debs, "newpkg", "1.0", "all", b"new"));
    let third = build_repo(
        &dist(&["bookworm"]),
        &inputs("bookworm", &files),
        &a,
        &with_cache,
    )
    .unwrap();
    assert_eq!((third.debs_read, third.debs_cached), (1, 20));
    assert!(
        std::fs::read_to_string(a.join("dists/bookworm/main/binary-amd64/Packages"))
            .unwrap()
            .contains("Package: newpkg")
    );
}

#[test]
fn bad_input_leaves_the_previous_repository_whole() {
    let dir = tempfile::tempdir().unwrap();
    let debs = dir.path().join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let good = write_deb(&debs, "good", "1.0", "all", b"x");
    let out = dir.path().join("repo");
    build_repo(
        &dist(&["bookworm"]),
        &inputs("bookworm", std::slice::from_ref(&good)),
        &out,
        &opts(),
    )
    .unwrap();
    let before = std::fs::read(out.join("dists/bookworm/Release")).unwrap();

    let broken = debs.join("broken.deb");
    std::fs::write(&broken, b"!<arch>\nnot really").unwrap();
    let e = build_repo(
        &dist(&["bookworm"]),
        &inputs("bookworm", &[good.clone(), broken]),
        &out,
        &opts(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("broken.deb"), "{e}");

    // Same package and version, different bytes: refused.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let twin = write_deb(&other, "good", "1.0", "all", b"different");
    let e = build_repo(
        &dist(&["bookworm"]),
        &inputs("bookworm", &[good.clone(), twin]),
        &out,
        &opts(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("differ"), "{e}");

    let wrong_arch = write_deb(&debs, "armonly", "1.0", "armhf", b"x");
    let e = build_repo(
        &dist(&["bookworm"]),
        &inputs("bookworm", &[wrong_arch]),
        &out,
        &opts(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("armhf"), "{e}");

    assert_eq!(
        std::fs::read(out.join("dists/bookworm/Release")).unwrap(),
        before
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("slipway-new"))
        .collect();
    assert!(leftovers.is_empty());
    verify_repo(&out, None, DATE).unwrap();
}

fn signed_repo(
    dir: &Path,
    key_kinds: &[KeyKind],
) -> (PathBuf, Vec<pgp::composed::SignedPublicKey>) {
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let files = vec![write_deb(&debs, "hello", "1.0", "all", b"hello")];
    let out = dir.join("repo");
    build_repo(
        &dist(&["bookworm"]),
        &inputs("bookworm", &files),
        &out,
        &BuildOptions {
            date: chrono::Utc::now().timestamp() - 10,
            cache: None,
        },
    )
    .unwrap();
    let secret: Vec<_> = key_kinds
        .iter()
        .map(|k| keys::generate("T <t@example.org>", *k).unwrap())
        .collect();
    sign_repo(&out, &secret, Digest::Sha512, None).unwrap();
    (out, secret.iter().map(|k| k.to_public_key()).collect())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[test]
fn signatures_verify_and_tampering_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, public) = signed_repo(dir.path(), &[KeyKind::Ed25519, KeyKind::Ed25519]);
    let report = verify_repo(&repo, Some(&public), now()).unwrap();
    assert_eq!(
        report.suites[0].signed_by.len(),
        2,
        "both rotation keys signed"
    );
    // Either key alone is enough.
    verify_repo(&repo, Some(&public[1..]), now()).unwrap();

    let other = keys::generate("Other <o@example.org>", KeyKind::Ed25519)
        .unwrap()
        .to_public_key();
    let e = verify_repo(&repo, Some(std::slice::from_ref(&other)), now())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no good signature"), "{e}");

    let packages = repo.join("dists/bookworm/main/binary-amd64/Packages");
    let original = std::fs::read(&packages).unwrap();
    std::fs::write(&packages, [original.as_slice(), b"\n"].concat()).unwrap();
    let e = verify_repo(&repo, Some(&public), now())
        .unwrap_err()
        .to_string();
    assert!(e.contains("binary-amd64/Packages: size"), "{e}");
    std::fs::write(&packages, &original).unwrap();

    let release = repo.join("dists/bookworm/Release");
    let text = std::fs::read_to_string(&release).unwrap();
    std::fs::write(
        &release,
        text.replace("Label: cros-containers", "Label: evil"),
    )
    .unwrap();
    let e = verify_repo(&repo, Some(&public), now())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("InRelease: its text differs") && e.contains("Release.gpg: no good signature"),
        "{e}"
    );
    std::fs::write(&release, text).unwrap();

    std::fs::write(repo.join("pool/main/h/hello/stray.deb"), b"x").unwrap();
    let e = verify_repo(&repo, Some(&public), now())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("stray.deb: in the pool but not in any Packages index"),
        "{e}"
    );
}

#[test]
fn rsa_keys_sign_too() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, public) = signed_repo(dir.path(), &[KeyKind::Rsa(3072)]);
    verify_repo(&repo, Some(&public), now()).unwrap();
}

#[test]
fn rebuilding_in_place_prunes_removed_packages() {
    let dir = tempfile::tempdir().unwrap();
    let debs = dir.path().join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let a = write_deb(&debs, "keep", "1.0", "all", b"a");
    let b = write_deb(&debs, "drop", "1.0", "all", b"b");
    let out = dir.path().join("repo");
    build_repo(
        &dist(&["bookworm"]),
        &inputs("bookworm", &[a.clone(), b]),
        &out,
        &opts(),
    )
    .unwrap();
    assert!(out.join("pool/main/d/drop/drop_1.0_all.deb").exists());
    build_repo(
        &dist(&["bookworm"]),
        &inputs("bookworm", &[a]),
        &out,
        &opts(),
    )
    .unwrap();
    assert!(
        !out.join("pool/main/d/drop").exists(),
        "stale pool file and its folder are removed"
    );
    assert!(out.join("pool/main/k/keep/keep_1.0_all.deb").exists());
    let packages =
        std::fs::read_to_string(out.join("dists/bookworm/main/binary-amd64/Packages")).unwrap();
    assert!(!packages.contains("Package: drop"));
    verify_repo(&out, None, DATE).unwrap();
}

#[test]
fn signatures_at_a_fixed_time_are_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let key = keys::generate("T <t@example.org>", KeyKind::Ed25519).unwrap();
    let text = "Origin: x\nCodename: bookworm\n";
    let at = crate::sign::signing_time(std::slice::from_ref(&key), Some(now()));
    let a =
        crate::sign::sign_release(text, std::slice::from_ref(&key), Digest::Sha512, at).unwrap();
    let b =
        crate::sign::sign_release(text, std::slice::from_ref(&key), Digest::Sha512, at).unwrap();
    assert_eq!(a, b);
    // Never before the key existed.
    let early = crate::sign::signing_time(std::slice::from_ref(&key), Some(1));
    assert!(early.as_secs() as i64 >= now() - 60);
    let _ = dir;
}

#[test]
fn signing_checks_the_signatures_and_never_reads_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let debs = dir.path().join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let files = vec![write_deb(&debs, "hello", "1.0", "all", b"hello")];
    let repo = dir.path().join("repo");
    build_repo(
        &dist(&["bookworm"]),
        &inputs("bookworm", &files),
        &repo,
        &BuildOptions {
            date: now() - 10,
            cache: None,
        },
    )
    .unwrap();
    // The pool is gone after the build: signing and its check cost the Release files only.
    std::fs::remove_dir_all(repo.join("pool")).unwrap();
    let secret: Vec<_> = [KeyKind::Ed25519, KeyKind::Ed25519]
        .iter()
        .map(|k| keys::generate("T <t@example.org>", *k).unwrap())
        .collect();
    let public: Vec<_> = secret.iter().map(|k| k.to_public_key()).collect();
    sign_repo(&repo, &secret, Digest::Sha256, None).unwrap();
    let report = verify_signatures(&repo, &public, now()).unwrap();
    assert_eq!(report.suites.len(), 1);
    assert_eq!(report.suites[0].signed_by.len(), 2, "{report:?}");
    // The complete check still reads the pool and fails on it.
    let e = verify_repo(&repo, Some(&public), now())
        .unwrap_err()
        .to_string();
    assert!(e.contains("pool/main/h/hello/"), "{e}");

    let suite = repo.join("dists/bookworm");
    let inrelease = std::fs::read_to_string(suite.join("InRelease")).unwrap();
    // Every key must have signed both files: a keyring with one more key is not satisfied.
    let other = keys::generate("O <o@example.org>", KeyKind::Ed25519)
        .unwrap()
        .to_public_key();
    let e = verify_signatures(&repo, &[public[0].clone(), other], now())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("InRelease: no good signature by key")
            && e.contains("Release.gpg: no good signature by key"),
        "{e}"
    );
    // A Release that differs from InRelease's text, even only in its trailing bytes.
    let release = suite.join("Release");
    let text = std::fs::read_to_string(&release).unwrap();
    std::fs::write(&release, format!("{text}\n")).unwrap();
    let e = verify_signatures(&repo, &public, now())
        .unwrap_err()
        .to_string();
    assert!(e.contains("InRelease: its signed text is not"), "{e}");
    std::fs::write(&release, &text).unwrap();
    // A tampered InRelease, and a missing Release.gpg.
    std::fs::write(
        suite.join("InRelease"),
        inrelease.replace("Label: cros-containers", "Label: evil"),
    )
    .unwrap();
    std::fs::remove_file(suite.join("Release.gpg")).unwrap();
    let e = verify_signatures(&repo, &public, now())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("InRelease: no good signature from the keyring")
            && e.contains("Release.gpg: missing"),
        "{e}"
    );
}

#[test]
fn verify_checks_each_listed_file_by_its_strongest_digest() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, public) = signed_repo(dir.path(), &[KeyKind::Ed25519]);
    verify_repo(&repo, Some(&public), now()).unwrap();
    // A pool file with its size kept but its bytes changed: caught by SHA256.
    let deb = walk_files(&repo.join("pool"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .unwrap();
    let mut bytes = std::fs::read(&deb).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&deb, &bytes).unwrap();
    let e = verify_repo(&repo, Some(&public), now())
        .unwrap_err()
        .to_string();
    assert!(e.contains("sha256 does not match Packages"), "{e}");
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}
