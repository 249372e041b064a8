//! Native apt repositories against the real clients: apt-get, gpgv, reprepro.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }
    fn keyring(&self) -> PathBuf {
        self.dir.path().join("keys/keyring.gpg")
    }
    fn url(&self) -> String {
        format!("file:{}", self.path().display())
    }
}

fn build(sign: bool) -> Repo {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let debs = corpus(d, "debs", "");
    let run = |args: &[&str]| slipway(d, args);
    ok(&run(&[
        "apt",
        "build",
        "--debs",
        debs.to_str().unwrap(),
        "--out",
        "repo",
        "--codename",
        "bookworm",
        "--codename",
        "stretch",
        "--arch",
        "amd64",
        "--arch",
        "arm64",
        "--origin",
        "Example",
        "--label",
        "cros-containers",
        "--suite",
        "bookworm=stable",
    ]));
    if sign {
        ok(&run(&["key", "generate", "--out", "keys"]));
        ok(&run(&[
            "apt",
            "sign",
            "repo",
            "--key",
            "keys/signing-key.asc",
        ]));
    }
    Repo { dir }
}

fn apt_text(o: &std::process::Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

fn apt_ok(o: &std::process::Output) {
    let text = apt_text(o);
    assert!(
        o.status.success() && !text.contains("W: ") && !text.contains("E: "),
        "apt failed:\n{text}"
    );
}

fn apt_fails(o: &std::process::Output, why: &str) {
    let text = apt_text(o);
    assert!(
        !o.status.success() || text.contains("W: ") || text.contains("E: "),
        "apt accepted {why}:\n{text}"
    );
}

#[test]
fn apt_accepts_the_signed_repository_by_inrelease_and_by_release_gpg() {
    let repo = build(true);
    let signed_by = format!("signed-by={}", repo.keyring().display());
    let got = tempfile::tempdir().unwrap();
    let out = apt_download(
        &repo.url(),
        &signed_by,
        &["cros-guest-tools", "libcros-wl0", "cros-garcon=1.0-1"],
        got.path(),
    );
    apt_ok(&out);
    assert!(
        got.path().join("cros-garcon_1.0-1_all.deb").exists(),
        "older version is still installable"
    );
    assert!(got.path().join("libcros-wl0_3.2_amd64.deb").exists());

    for suite in ["bookworm", "stretch"] {
        let dists = repo.path().join("dists").join(suite);
        let g = Command::new("gpgv")
            .arg("--keyring")
            .arg(repo.keyring())
            .arg(dists.join("InRelease"))
            .output()
            .unwrap();
        assert!(g.status.success(), "{}", stderr(&g));
        let g = Command::new("gpgv")
            .arg("--keyring")
            .arg(repo.keyring())
            .arg(dists.join("Release.gpg"))
            .arg(dists.join("Release"))
            .output()
            .unwrap();
        assert!(g.status.success(), "{}", stderr(&g));
    }

    // The retired codename is a valid, empty suite apt reads without error.
    let stretch = tempfile::tempdir().unwrap();
    let out = apt_download_suite(&repo.url(), &signed_by, "stretch", &[], stretch.path());
    apt_ok(&out);

    // Old-style clients: only Release + Release.gpg.
    for suite in ["bookworm", "stretch"] {
        std::fs::remove_file(repo.path().join("dists").join(suite).join("InRelease")).unwrap();
    }
    let got = tempfile::tempdir().unwrap();
    apt_ok(&apt_download(
        &repo.url(),
        &signed_by,
        &["cros-sftp"],
        got.path(),
    ));
    let v = slipway(
        repo.dir.path(),
        &[
            "apt",
            "verify",
            "repo",
            "--keyring",
            repo.keyring().to_str().unwrap(),
        ],
    );
    ok(&v);
}

#[test]
fn apt_refuses_tampered_repositories_and_the_wrong_key() {
    let repo = build(true);
    let signed_by = format!("signed-by={}", repo.keyring().display());
    let got = tempfile::tempdir().unwrap();

    // Wrong key.
    let other = tempfile::tempdir().unwrap();
    ok(&slipway(other.path(), &["key", "generate", "--out", "k"]));
    let wrong = format!("signed-by={}", other.path().join("k/keyring.gpg").display());
    apt_fails(
        &apt_download(&repo.url(), &wrong, &["cros-sftp"], got.path()),
        "a repository signed by another key",
    );

    // Tampered Packages: every copy apt could fetch (plain, .gz, .xz, canonical and by-hash) is
    // replaced by a consistent but altered index that the signed Release does not vouch for.
    let bin = repo.path().join("dists/bookworm/main/binary-amd64");
    let saved = snapshot(&bin);
    let plain = std::fs::read(bin.join("Packages")).unwrap();
    let gz = std::fs::read(bin.join("Packages.gz")).unwrap();
    let xz = std::fs::read(bin.join("Packages.xz")).unwrap();
    let tampered = String::from_utf8(plain.clone())
        .unwrap()
        .replace("Priority: optional", "Priority: required");
    let tampered_file = repo.dir.path().join("tampered");
    std::fs::write(&tampered_file, &tampered).unwrap();
    let compress = |tool: &str| {
        Command::new(tool)
            .arg("-c")
            .arg(&tampered_file)
            .output()
            .unwrap()
            .stdout
    };
    let (tampered_gz, tampered_xz) = (compress("gzip"), compress("xz"));
    for (path, bytes) in &saved {
        let replacement = if *bytes == plain {
            tampered.as_bytes()
        } else if *bytes == gz {
            &tampered_gz
        } else if *bytes == xz {
            &tampered_xz
        } else {
            continue;
        };
        std::fs::write(path, replacement).unwrap();
    }
    apt_fails(
        &apt_download(&repo.url(), &signed_by, &["cros-sftp"], got.path()),
        "a tampered Packages",
    );
    let v = slipway(
        repo.dir.path(),
        &[
            "apt",
            "verify",
            "repo",
            "--keyring",
            repo.keyring().to_str().unwrap(),
        ],
    );
    assert!(!v.status.success());
    assert!(
        stderr(&v).contains("binary-amd64/Packages"),
        "{}",
        stderr(&v)
    );
    for (p, b) in saved {
        std::fs::write(p, b).unwrap();
    }
    apt_ok(&apt_download(
        &repo.url(),
        &signed_by,
        &["cros-sftp"],
        got.path(),
    ));

    // Tampered Release and InRelease text: signatures no longer match.
    for name in ["Release", "InRelease"] {
        let p = repo.path().join("dists/bookworm").join(name);
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, t.replace("Label: cros-containers", "Label: cros-evil")).unwrap();
    }
    apt_fails(
        &apt_download(&repo.url(), &signed_by, &["cros-sftp"], got.path()),
        "a tampered Release",
    );
}

#[test]
fn unsigned_presubmit_repositories_install_only_when_trusted() {
    let repo = build(false);
    let got = tempfile::tempdir().unwrap();
    apt_ok(&apt_download(
        &repo.url(),
        "trusted=yes",
        &["cros-guest-tools"],
        got.path(),
    ));
    assert!(got.path().join("cros-guest-tools_1.1-1_all.deb").exists());
    apt_fails(
        &apt_download(&repo.url(), "", &["cros-guest-tools"], got.path()).clone(),
        "an unsigned repository without trusted=yes",
    );
    ok(&slipway(repo.dir.path(), &["apt", "verify", "repo"]));
}

fn packages_by_key(text: &str) -> std::collections::BTreeMap<String, Vec<(String, String)>> {
    let mut out = std::collections::BTreeMap::new();
    for stanza in text.split("\n\n").filter(|s| !s.trim().is_empty()) {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines() {
            if line.starts_with(' ') {
                if let Some(last) = fields.last_mut() {
                    last.1.push('\n');
                    last.1.push_str(line);
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.push((k.to_string(), v.trim().to_string()));
            }
        }
        let get = |k: &str| {
            fields
                .iter()
                .find(|(f, _)| f == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let key = format!(
            "{} {} {}",
            get("Package"),
            get("Version"),
            get("Architecture")
        );
        // The package's own control fields, not the tool-specific checksum set.
        fields.retain(|(k, _)| {
            ![
                "Filename",
                "MD5sum",
                "SHA1",
                "SHA256",
                "SHA512",
                "Size",
                "Description-md5",
            ]
            .contains(&k.as_str())
        });
        fields.sort();
        out.insert(key, fields);
    }
    out
}

#[test]
fn same_package_set_and_control_fields_as_reprepro() {
    if Command::new("reprepro").arg("--version").output().is_err() {
        panic!("reprepro is not installed (Debian package 'reprepro'; .ci/run installs it)");
    }
    let dir = tempfile::tempdir().unwrap();
    let debs = corpus(dir.path(), "debs", "");
    // reprepro keeps one version per package and suite, so the parity corpus has no duplicates.
    let older = debs.join("cros-garcon_1.0-1_all.deb");
    std::fs::remove_file(&older).unwrap();

    let rr = dir.path().join("reprepro");
    std::fs::create_dir_all(rr.join("conf")).unwrap();
    std::fs::write(
        rr.join("conf/distributions"),
        "Origin: Example\nLabel: cros-containers\nSuite: stable\nCodename: bookworm\nArchitectures: amd64 arm64\nComponents: main\n",
    )
    .unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&debs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let out = Command::new("reprepro")
        .arg("-b")
        .arg(&rr)
        .arg("includedeb")
        .arg("bookworm")
        .args(&files)
        .output()
        .unwrap();
    ok(&out);

    ok(&slipway(
        dir.path(),
        &[
            "apt",
            "build",
            "--debs",
            debs.to_str().unwrap(),
            "--out",
            "ours",
            "--codename",
            "bookworm",
            "--arch",
            "amd64",
            "--arch",
            "arm64",
        ],
    ));
    for arch in ["amd64", "arm64"] {
        let theirs =
            std::fs::read_to_string(rr.join(format!("dists/bookworm/main/binary-{arch}/Packages")))
                .unwrap();
        let ours = std::fs::read_to_string(
            dir.path()
                .join(format!("ours/dists/bookworm/main/binary-{arch}/Packages")),
        )
        .unwrap();
        let (theirs, ours) = (packages_by_key(&theirs), packages_by_key(&ours));
        assert_eq!(
            theirs.keys().collect::<Vec<_>>(),
            ours.keys().collect::<Vec<_>>(),
            "package sets differ for {arch}"
        );
        assert_eq!(theirs, ours, "control fields differ for {arch}");
        assert!(!ours.is_empty());
    }
    // Filenames: both use pool/<component>/<prefix>/<source>/<canonical name>.
    let ours = std::fs::read_to_string(
        dir.path()
            .join("ours/dists/bookworm/main/binary-amd64/Packages"),
    )
    .unwrap();
    let theirs =
        std::fs::read_to_string(rr.join("dists/bookworm/main/binary-amd64/Packages")).unwrap();
    let filenames = |t: &str| {
        let mut v: Vec<String> = t
            .lines()
            .filter(|l| l.starts_with("Filename:"))
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(filenames(&ours), filenames(&theirs));
}

#[test]
fn malformed_debs_are_named_and_leave_the_repository_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let debs = corpus(d, "debs", "");
    ok(&slipway(
        d,
        &[
            "apt",
            "build",
            "--debs",
            debs.to_str().unwrap(),
            "--out",
            "repo",
            "--codename",
            "bookworm",
        ],
    ));
    let before = std::fs::read(d.join("repo/dists/bookworm/Release")).unwrap();
    std::fs::write(
        debs.join("zz-broken_1.0_all.deb"),
        b"!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n",
    )
    .unwrap();
    let out = slipway(
        d,
        &[
            "apt",
            "build",
            "--debs",
            debs.to_str().unwrap(),
            "--out",
            "repo",
            "--codename",
            "bookworm",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("zz-broken_1.0_all.deb") && stderr(&out).contains("no control.tar"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(d.join("repo/dists/bookworm/Release")).unwrap(),
        before
    );
    let stray: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| e.file_name() != ".slipway")
        .collect();
    assert!(stray.is_empty(), "left {stray:?}");
}

#[test]
fn key_generate_writes_apt_ready_files() {
    let dir = tempfile::tempdir().unwrap();
    ok(&slipway(dir.path(), &["key", "generate", "--out", "k"]));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("k/signing-key.asc"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let armored = std::fs::read_to_string(dir.path().join("k/signing-key.asc")).unwrap();
    assert!(armored.starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----"));
    // gpg reads the public keyring, and the key is v4 Ed25519.
    let show = Command::new("gpg")
        .args(["--batch", "--with-colons", "--show-keys"])
        .arg(dir.path().join("k/keyring.gpg"))
        .env("GNUPGHOME", dir.path())
        .output()
        .unwrap();
    assert!(show.status.success(), "{}", stderr(&show));
    assert!(
        stdout(&show).contains(":22:"),
        "not EdDSA: {}",
        stdout(&show)
    );
    let again = slipway(dir.path(), &["key", "generate", "--out", "k"]);
    assert!(!again.status.success(), "overwrote an existing key");
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let p = e.path();
        if p.is_dir() {
            out.extend(snapshot(&p));
        } else {
            let b = std::fs::read(&p).unwrap();
            out.push((p, b));
        }
    }
    out
}

#[test]
fn signing_costs_the_release_files_not_the_pool() {
    let repo = build(false);
    let d = repo.dir.path();
    ok(&slipway(d, &["key", "generate", "--out", "keys"]));
    // The pool is gone after the build (the build verified it): signing must not read it.
    let pool = repo.path().join("pool");
    let away = d.join("pool-away");
    std::fs::rename(&pool, &away).unwrap();
    let signed = slipway(d, &["apt", "sign", "repo", "--key", "keys/signing-key.asc"]);
    ok(&signed);
    assert!(
        stderr(&signed).contains("verified InRelease and Release.gpg"),
        "{}",
        stderr(&signed)
    );
    // gpgv, as apt runs it, accepts both signatures.
    for codename in ["bookworm", "stretch"] {
        let suite = repo.path().join("dists").join(codename);
        for args in [
            vec![suite.join("InRelease")],
            vec![suite.join("Release.gpg"), suite.join("Release")],
        ] {
            let out = Command::new("gpgv")
                .arg("--keyring")
                .arg(repo.keyring())
                .args(&args)
                .output()
                .unwrap();
            assert!(out.status.success(), "gpgv {args:?}: {}", stderr(&out));
        }
    }
    // The complete check still reads every pool file, and fails without them.
    let keyring = repo.keyring();
    let verify = |d: &Path| {
        slipway(
            d,
            &[
                "apt",
                "verify",
                "repo",
                "--keyring",
                keyring.to_str().unwrap(),
            ],
        )
    };
    let failed = verify(d);
    assert!(!failed.status.success(), "verify passed without a pool");
    assert!(stderr(&failed).contains("pool/"), "{}", stderr(&failed));
    std::fs::rename(&away, &pool).unwrap();
    ok(&verify(d));
}
