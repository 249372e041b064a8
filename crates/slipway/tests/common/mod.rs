//! Helpers for end-to-end tests: the real `slipway` binary on small real git projects.
#![allow(dead_code)]

pub mod gerrit;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_slipway")
}

pub fn slipway_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(dir)
        .args(args)
        .env_remove("SLIPWAY_HOME")
        .stdin(Stdio::null());
    c
}

pub fn slipway(dir: &Path, args: &[&str]) -> Output {
    slipway_cmd(dir, args).output().expect("cannot run slipway")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a command succeeded, showing its output otherwise.
pub fn ok(o: &Output) {
    assert!(o.status.success(), "{}\n{}", stdout(o), stderr(o));
}

/// `slipway example init DIR`, which must succeed.
pub fn init_example(dir: &Path) {
    ok(&Command::new(bin())
        .args(["example", "init"])
        .arg(dir)
        .output()
        .expect("cannot run slipway"));
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

pub fn git(repo: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("git");
    assert!(ok.success(), "git {args:?} failed");
}

/// A project: `slipway.toml` (service + inline builds) and a git repo `repo/` on `main`.
pub struct Project {
    pub dir: tempfile::TempDir,
}

pub const SERVICE_HEAD: &str = r#"
[project]
name = "t"
repo = "repo"

[[branches]]
channel = "canary"
milestone = 1
branch = "main"
"#;

impl Project {
    /// `body` is appended to a service head with project `t` and milestone 1 on `main`.
    pub fn new(body: &str, files: &[(&str, &str)]) -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join("README"), "test project\n").unwrap();
        for (path, text) in files {
            let p = repo.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
        }
        git(&repo, &["init", "--quiet", "--initial-branch=main"]);
        git(&repo, &["add", "--all"]);
        git(&repo, &["commit", "--quiet", "-m", "init"]);
        std::fs::write(
            dir.path().join("slipway.toml"),
            format!("{SERVICE_HEAD}\n{body}"),
        )
        .unwrap();
        Project { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        slipway(self.path(), args)
    }

    pub fn shared(&self) -> PathBuf {
        let p = self.path().join("shared");
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

pub fn wait_for(path: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if path.exists()
            && std::fs::metadata(path)
                .map(|m| m.len() > 0)
                .unwrap_or(false)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

pub fn pid_alive(pid: i32) -> bool {
    // A zombie still answers kill(0); read its state instead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

pub fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// `apt-get update` + `apt-get download` with apt's own signature checks, in a private apt
/// root; nothing is installed on the host.
pub fn apt_download(
    repo_url: &str,
    source_opts: &str,
    packages: &[&str],
    into: &Path,
) -> std::process::Output {
    apt_download_suite(repo_url, source_opts, "bookworm", packages, into)
}

/// As `apt_download` for another suite; with no packages, only `apt-get update` runs.
pub fn apt_download_suite(
    repo_url: &str,
    source_opts: &str,
    suite: &str,
    packages: &[&str],
    into: &Path,
) -> std::process::Output {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for d in [
        "etc/apt/sources.list.d",
        "etc/apt/preferences.d",
        "etc/apt/trusted.gpg.d",
        "state/lists/partial",
        "cache/archives/partial",
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(
        r.join("etc/apt/sources.list"),
        format!("deb [{source_opts}] {repo_url} {suite} main\n"),
    )
    .unwrap();
    let opts = [
        format!("Dir::Etc={}", r.join("etc/apt").display()),
        format!("Dir::State={}", r.join("state").display()),
        format!("Dir::Cache={}", r.join("cache").display()),
        "Dir::State::status=/dev/null".into(),
        "Debug::NoLocking=1".into(),
        "APT::Sandbox::User=root".into(),
        "APT::Architecture=amd64".into(),
        "APT::Get::List-Cleanup=0".into(),
    ];
    let with_opts = |c: &mut Command| {
        for o in &opts {
            c.arg("-o").arg(o);
        }
    };
    let mut update = Command::new("apt-get");
    with_opts(&mut update);
    let out = update.arg("update").output().expect("apt-get");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    if !out.status.success() || text.contains("W: ") || text.contains("E: ") || packages.is_empty()
    {
        return out;
    }
    let mut download = Command::new("apt-get");
    with_opts(&mut download);
    download
        .current_dir(into)
        .arg("download")
        .args(packages)
        .output()
        .expect("apt-get")
}

/// Real .debs made by dpkg-deb: two versions of one package, an arch-specific one, a metapackage.
/// `suffix` is appended to every version, so two corpora can hold the same packages at other versions.
pub fn corpus(dir: &Path, name: &str, suffix: &str) -> PathBuf {
    let debs = dir.join(name);
    std::fs::create_dir_all(&debs).unwrap();
    let packages = [
        ("cros-garcon", "1.0-1", "all", "Depends: systemd\n"),
        ("cros-garcon", "1.1-1", "all", "Depends: systemd\n"),
        ("cros-sftp", "2:0.5", "all", ""),
        ("libcros-wl0", "3.2", "amd64", "Multi-Arch: same\n"),
        (
            "cros-guest-tools",
            "1.1-1",
            "all",
            "Depends: cros-garcon (>= 1.1), cros-sftp\n",
        ),
    ];
    for (name, version, arch, extra) in packages {
        let version = format!("{version}{suffix}");
        let root = dir.join("build").join(format!("{name}-{version}"));
        std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(root.join("usr/share/doc").join(name)).unwrap();
        std::fs::write(
            root.join("usr/share/doc").join(name).join("README"),
            format!("{name} {version}\n"),
        )
        .unwrap();
        std::fs::write(
            root.join("DEBIAN/control"),
            format!(
                "Package: {name}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: Test <t@example.org>\n{extra}Section: misc\nPriority: optional\nDescription: {name} for tests\n A longer description\n .\n with a paragraph.\n"
            ),
        )
        .unwrap();
        let out = debs.join(format!("{name}_{}_{arch}.deb", version.replace(':', "%3a")));
        let st = std::process::Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&root)
            .arg(&out)
            .output()
            .unwrap();
        assert!(st.status.success(), "{}", stderr(&st));
    }
    debs
}

/// Writes a secret file readable by its owner only, as Slipway requires (like ssh for keys).
pub fn write_secret(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Commits a new product version, so the next run makes a new candidate.
pub fn commit_version(repo: &Path, version: &str) {
    std::fs::write(repo.join("VERSION"), format!("{version}\n")).unwrap();
    git(
        repo,
        &["commit", "--quiet", "-am", &format!("Version {version}")],
    );
}

/// The bookworm/amd64 `Packages` a bucket of the example serves for milestone 74.
pub fn packages(ex: &Path, bucket: &str) -> String {
    std::fs::read_to_string(ex.join(format!(
        "var/buckets/{bucket}/74/dists/bookworm/main/binary-amd64/Packages"
    )))
    .unwrap_or_default()
}

const HTTPS_SERVER: &str = r#"
import functools, http.server, ssl, sys
root, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

/// A child process (a server, a Slipway under test) killed when the test ends or fails.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A folder served over HTTPS on 127.0.0.1 (self-signed certificate) and an `lxc` client
/// configuration with it as the simplestreams remote `slipway:`, as LXD clients reach a
/// published image stream.
pub struct StreamsRemote {
    _server: Killed,
    conf: PathBuf,
    home: PathBuf,
}

impl StreamsRemote {
    pub fn serve(root: &Path, scratch: &Path) -> StreamsRemote {
        let cert = scratch.join("cert.pem");
        let key = scratch.join("key.pem");
        ok(&Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Killed(
            Command::new("python3")
                .args(["-c", HTTPS_SERVER])
                .arg(root)
                .arg(port.to_string())
                .arg(&cert)
                .arg(&key)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "HTTPS server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let conf = scratch.join("lxdconf");
        std::fs::create_dir_all(conf.join("servercerts")).unwrap();
        std::fs::copy(&cert, conf.join("servercerts/slipway.crt")).unwrap();
        let remote = StreamsRemote {
            _server: server,
            conf,
            home: scratch.to_path_buf(),
        };
        ok(&remote.lxc(&[
            "remote",
            "add",
            "slipway",
            &format!("https://127.0.0.1:{port}"),
            "--protocol",
            "simplestreams",
            "--public",
        ]));
        remote
    }

    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// Runs `lxc` with this configuration; the client's stream cache is dropped first, so it
    /// reads what the folder serves now.
    pub fn lxc(&self, args: &[&str]) -> Output {
        let _ = std::fs::remove_dir_all(self.conf.join("cache"));
        Command::new("lxc")
            .args(args)
            .env("LXD_CONF", &self.conf)
            .env("HOME", &self.home)
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .stdin(Stdio::null())
            .output()
            .expect("lxc is not installed (Debian package lxd-client; scripts/setup-host.sh installs it)")
    }

    /// `lxc image export` of `alias` into a new folder under `into` (it checks every sha256
    /// and the combined fingerprint); the exported file names.
    pub fn export(&self, alias: &str, into: &Path) -> Vec<String> {
        std::fs::create_dir_all(into).unwrap();
        ok(&self.lxc(&[
            "image",
            "export",
            &format!("slipway:{alias}"),
            into.to_str().unwrap(),
        ]));
        std::fs::read_dir(into)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

/// `slipway apt verify --published` of the example's production packages for milestone 74,
/// with the example's keyring: what apt clients of the production URL would accept.
pub fn verify_published(ex: &Path) {
    let keyring = ex.join("var/keys/cros-apt.gpg");
    ok(&slipway(
        ex,
        &[
            "apt",
            "verify",
            "var/buckets/cros-packages/74",
            "--keyring",
            keyring.to_str().unwrap(),
            "--published",
        ],
    ));
}

/// Production serves whole, signed, verified trees of one candidate; with an LXD remote, apt
/// (`apt-get update` + download) and `lxc image export` read it as clients do and every object
/// of every bucket is checked against the records (the costly part).
pub fn production_verifies(ex: &Path, version: &str, lxd: Option<&StreamsRemote>) {
    let audit = lxd.is_some();
    verify_published(ex);
    let keyring = ex.join("var/keys/cros-apt.gpg");
    assert!(
        packages(ex, "cros-packages").contains(&format!("Version: {version}")),
        "production serves {version}"
    );
    if audit {
        let got = tempfile::tempdir().unwrap();
        let prod = ex.join("var/buckets/cros-packages/74");
        ok(&apt_download(
            &format!("file:{}", prod.display()),
            &format!("signed-by={}", keyring.display()),
            &["cros-guest-tools"],
            got.path(),
        ));
        assert!(
            got.path()
                .join(format!("cros-guest-tools_{version}_all.deb"))
                .exists()
        );
        if let Some(remote) = lxd {
            let into = tempfile::tempdir().unwrap();
            let files = remote.export("debian/bookworm", &into.path().join("export"));
            assert_eq!(files.len(), 2, "metadata and rootfs: {files:?}");
        }
        let out = slipway(ex, &["audit", "--milestone", "74"]);
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    }
}
