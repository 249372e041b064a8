//! A published repository with two codenames, each with its own Suite, mirrored over HTTP on
//! 127.0.0.1 by the real mirror tools: debmirror and aptly, both checking the signatures.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::*;

const SUITES: [(&str, &str); 2] = [("bookworm", "stable"), ("bullseye", "oldstable")];

/// A static file server (python's http.server) on a free port of 127.0.0.1; killed on drop.
struct HttpServer {
    child: Child,
    port: u16,
}

impl HttpServer {
    fn serve(root: &Path) -> HttpServer {
        // Port 0: the kernel picks a free port, and the server says which on its first line.
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"])
            .arg("--directory")
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is not installed (Debian package 'python3')");
        let mut first = String::new();
        let stdout = child.stdout.take().unwrap();
        BufReader::new(stdout).read_line(&mut first).unwrap();
        let port = first
            .split(" port ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("http.server did not say its port: {first:?}");
        };
        HttpServer { child, port }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two signed codenames published to a file bucket at `bucket/74`, and a second key that did
/// not sign them.
fn published(d: &Path) -> PathBuf {
    std::fs::write(
        d.join("slipway.toml"),
        "[project]\nname = \"t\"\nrepo = \"repo\"\n\n[buckets]\napt = \"file://bucket\"\n",
    )
    .unwrap();
    let debs = corpus(d, "debs", "");
    let mut build = vec![
        "apt",
        "build",
        "--debs",
        debs.to_str().unwrap(),
        "--out",
        "repo",
        "--arch",
        "amd64",
        "--origin",
        "Example",
        "--label",
        "cros-containers",
    ];
    let suite_args: Vec<String> = SUITES.iter().map(|(c, s)| format!("{c}={s}")).collect();
    for ((codename, _), suite) in SUITES.iter().zip(&suite_args) {
        build.extend(["--codename", codename, "--suite", suite]);
    }
    ok(&slipway(d, &build));
    ok(&slipway(d, &["key", "generate", "--out", "keys"]));
    ok(&slipway(d, &["key", "generate", "--out", "other-keys"]));
    ok(&slipway(
        d,
        &["apt", "sign", "repo", "--key", "keys/signing-key.asc"],
    ));
    ok(&slipway(
        d,
        &["publish", "repo", "--bucket", "apt", "--prefix", "74"],
    ));
    d.join("bucket/74")
}

/// An empty GnuPG home, so only the keyring a test names is trusted.
fn gnupg_home(d: &Path) -> PathBuf {
    let home = d.join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    home
}

fn text(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

fn debmirror(d: &Path, port: u16, keyring: &Path, into: &Path) -> Output {
    let dists: Vec<&str> = SUITES.iter().map(|(c, _)| *c).collect();
    Command::new("debmirror")
        .env("GNUPGHOME", gnupg_home(d))
        .arg("--method=http")
        .arg(format!("--host=127.0.0.1:{port}"))
        .arg("--root=74")
        .arg(format!("--dist={}", dists.join(",")))
        .args(["--section=main", "--arch=amd64", "--nosource"])
        .args(["--rsync-extra=none", "--diff=none", "--timeout=30"])
        .arg(format!("--keyring={}", keyring.display()))
        .arg(into)
        .stdin(Stdio::null())
        .output()
        .expect("debmirror is not installed (Debian package 'debmirror')")
}

/// Regular files under `root`'s `dists/` and `pool/`, by path relative to `root`.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.join("dists"), root.join("pool")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

#[test]
fn debmirror_mirrors_both_codenames_and_links_each_suite() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bucket = published(d);
    let server = HttpServer::serve(&d.join("bucket"));

    // Signed by a key the mirror does not trust: refused.
    let out = debmirror(
        d,
        server.port,
        &d.join("other-keys/keyring.gpg"),
        &d.join("untrusted"),
    );
    assert!(
        !out.status.success() && text(&out).contains("signature does not verify"),
        "debmirror accepted a repository signed by an unknown key:\n{}",
        text(&out)
    );

    let mirror = d.join("mirror");
    let out = debmirror(d, server.port, &d.join("keys/keyring.gpg"), &mirror);
    assert!(out.status.success(), "debmirror failed:\n{}", text(&out));
    for (codename, suite) in SUITES {
        let link = std::fs::read_link(mirror.join("dists").join(suite))
            .unwrap_or_else(|e| panic!("no dists/{suite} link: {e}"));
        assert_eq!(link, Path::new(codename));
    }

    // Every mirrored file is the published one, byte for byte; nothing a client needs is missing.
    let theirs = files(&mirror);
    let ours = files(&bucket);
    for (path, bytes) in &theirs {
        assert!(
            ours.get(path) == Some(bytes),
            "{path}: mirrored bytes differ from the published ones"
        );
    }
    let mut needed: Vec<String> = ours
        .keys()
        .filter(|p| p.starts_with("pool/"))
        .cloned()
        .collect();
    assert_eq!(needed.len(), 5, "{needed:?}");
    for (codename, _) in SUITES {
        for f in [
            "InRelease",
            "Release",
            "Release.gpg",
            "main/binary-amd64/Packages.xz",
        ] {
            needed.push(format!("dists/{codename}/{f}"));
        }
    }
    for path in needed {
        assert!(theirs.contains_key(&path), "{path} was not mirrored");
    }
}

fn aptly(d: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new("aptly")
        .env("GNUPGHOME", gnupg_home(d))
        .arg(format!("-config={}", config.display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("aptly is not installed (Debian package 'aptly')")
}

/// `Package_Version_Arch` of every stanza of a Packages index, as aptly names them.
fn package_keys(packages: &str) -> Vec<String> {
    let mut keys: Vec<String> = packages
        .split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .map(|stanza| {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                    .unwrap_or_else(|| panic!("no {name} in {stanza}"))
                    .to_string()
            };
            format!(
                "{}_{}_{}",
                field("Package"),
                field("Version"),
                field("Architecture")
            )
        })
        .collect();
    keys.sort();
    keys
}

#[test]
fn aptly_mirrors_each_codename_with_its_suite_and_checks_the_signature() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bucket = published(d);
    let server = HttpServer::serve(&d.join("bucket"));
    let config = d.join("aptly.conf");
    let root = d.join("aptly");
    std::fs::write(
        &config,
        serde_json::json!({
            "rootDir": root,
            "gpgProvider": "gpg",
            "architectures": ["amd64"],
            "downloadConcurrency": 2,
        })
        .to_string(),
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{}/74/", server.port);
    let keyring = format!("-keyring={}", d.join("keys/keyring.gpg").display());
    let other = format!("-keyring={}", d.join("other-keys/keyring.gpg").display());

    // Signed by a key the mirror does not trust: refused.
    let out = aptly(
        d,
        &config,
        &[
            "mirror",
            "create",
            &other,
            "untrusted",
            &url,
            "bookworm",
            "main",
        ],
    );
    assert!(
        !out.status.success() && text(&out).contains("verification of detached signature failed"),
        "aptly accepted a repository signed by an unknown key:\n{}",
        text(&out)
    );

    let published_pool = files(&bucket);
    for (codename, suite) in SUITES {
        let name = format!("cros-{codename}");
        let out = aptly(
            d,
            &config,
            &["mirror", "create", &keyring, &name, &url, codename, "main"],
        );
        assert!(out.status.success(), "{}", text(&out));
        let out = aptly(d, &config, &["mirror", "update", &keyring, &name]);
        assert!(out.status.success(), "{}", text(&out));

        let out = aptly(d, &config, &["mirror", "show", "-with-packages", &name]);
        assert!(out.status.success(), "{}", text(&out));
        let show = stdout(&out);
        assert!(show.contains(&format!("Suite: {suite}\n")), "{show}");
        assert!(show.contains(&format!("Codename: {codename}\n")), "{show}");
        let listed: Vec<String> = {
            let mut l: Vec<String> = show
                .split("Packages:\n")
                .nth(1)
                .unwrap_or("")
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect();
            l.sort();
            l
        };
        let index = std::fs::read_to_string(
            bucket.join(format!("dists/{codename}/main/binary-amd64/Packages")),
        )
        .unwrap();
        assert_eq!(listed, package_keys(&index));
    }

    // aptly's pool holds each published package file, byte for byte.
    let mut stored: Vec<(String, Vec<u8>)> = Vec::new();
    let mut stack = vec![root.join("pool")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let name = e.file_name().to_string_lossy().into_owned();
                stored.push((name, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    let pool: Vec<(&String, &Vec<u8>)> = published_pool
        .iter()
        .filter(|(p, _)| p.starts_with("pool/"))
        .collect();
    assert_eq!(stored.len(), pool.len(), "{stored:?}");
    for (path, bytes) in pool {
        let file = path.rsplit('/').next().unwrap();
        assert!(
            stored
                .iter()
                .any(|(name, b)| name.ends_with(&format!("_{file}")) && b == bytes),
            "{path} is not in aptly's pool as published"
        );
    }
}
