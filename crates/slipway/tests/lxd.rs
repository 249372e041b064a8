//! The real LXD client reads the published image stream: served over HTTPS on 127.0.0.1 with a
//! self-signed certificate pinned in `$LXD_CONF/servercerts/<remote>.crt`, `lxc image list`
//! shows the aliases and `lxc image export` (which checks every sha256 and the combined
//! fingerprint) succeeds, and a daemon launches the image from the remote and boots it.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SERVER: &str = r#"
import functools, http.server, ssl, sys
root, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

/// An LXD daemon with a private LXD_DIR, shut down when dropped.
struct Daemon {
    child: Child,
    dir: std::path::PathBuf,
}

impl Daemon {
    fn start(dir: &std::path::Path) -> Daemon {
        let child = Command::new("lxd")
            .args(["--group", "root"])
            .env("LXD_DIR", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("lxd is not installed (Debian package lxd; scripts/setup-host.sh installs it)");
        let ready = Command::new("lxd")
            .args(["waitready", "--timeout", "60"])
            .env("LXD_DIR", dir)
            .status()
            .unwrap();
        assert!(ready.success(), "lxd did not start");
        Daemon {
            child,
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("lxd")
            .args(["shutdown", "--timeout", "60"])
            .env("LXD_DIR", &self.dir)
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn lxc_lists_and_exports_the_published_stream() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ex = d.join("ex");
    init_example(&ex);
    let run = json(&slipway(
        &ex,
        &["run", "guest_tools", "--milestone", "74", "--json"],
    ));
    assert_eq!(run["status"], "success", "{run}");
    let id = run["run_id"].as_i64().unwrap().to_string();
    let log = stdout(&slipway(&ex, &["logs", &id, "lxd_streams"]));
    let fingerprint = log
        .lines()
        .find_map(|l| l.split("fingerprint ").nth(1))
        .expect("the stream build logs the fingerprint")
        .trim()
        .to_string();

    let cert = d.join("cert.pem");
    let key = d.join("key.pem");
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
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Server(
        Command::new("python3")
            .args(["-c", SERVER])
            .arg(ex.join("var/buckets/cros-containers-staging/74"))
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

    let conf = d.join("lxdconf");
    std::fs::create_dir_all(conf.join("servercerts")).unwrap();
    std::fs::copy(&cert, conf.join("servercerts/slipway.crt")).unwrap();
    let lxc = |args: &[&str]| {
        Command::new("lxc")
            .args(args)
            .env("LXD_CONF", &conf)
            .env("HOME", d)
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .stdin(Stdio::null())
            .output()
            .expect("lxc is not installed (Debian package lxd-client; .ci/run installs it)")
    };
    ok(&lxc(&[
        "remote",
        "add",
        "slipway",
        &format!("https://127.0.0.1:{port}"),
        "--protocol",
        "simplestreams",
        "--public",
    ]));
    let list = lxc(&["image", "list", "slipway:", "--format", "json"]);
    ok(&list);
    let images: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let image = &images[0];
    assert_eq!(image["fingerprint"], fingerprint.as_str());
    let aliases: Vec<&str> = image["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for alias in [
        "debian/bookworm",
        "debian/bookworm/default",
        "debian/bookworm/amd64",
    ] {
        assert!(aliases.contains(&alias), "{alias} missing from {aliases:?}");
    }
    let out = d.join("export");
    std::fs::create_dir_all(&out).unwrap();
    let export = lxc(&[
        "image",
        "export",
        "slipway:debian/bookworm",
        out.to_str().unwrap(),
    ]);
    ok(&export);
    let exported: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(exported.len(), 2, "metadata and rootfs: {exported:?}");

    // Through a daemon: LXD downloads the image from the remote (checking it) and boots it.
    let lxd_dir = d.join("lxd");
    let pool = d.join("pool");
    std::fs::create_dir_all(&lxd_dir).unwrap();
    std::fs::create_dir_all(&pool).unwrap();
    let _daemon = Daemon::start(&lxd_dir);
    let lxd = |args: &[&str]| {
        Command::new("lxc")
            .args(args)
            .env("LXD_CONF", &conf)
            .env("LXD_DIR", &lxd_dir)
            .env("HOME", d)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let preseed = format!(
        "storage_pools:\n- name: default\n  driver: dir\n  config:\n    source: {}\nprofiles:\n- name: default\n  devices:\n    root:\n      path: /\n      pool: default\n      type: disk\n",
        pool.display()
    );
    let mut init = Command::new("lxd")
        .args(["init", "--preseed"])
        .env("LXD_DIR", &lxd_dir)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut init.stdin.take().unwrap(), preseed.as_bytes()).unwrap();
    assert!(init.wait().unwrap().success(), "lxd init failed");
    ok(&lxd(&["launch", "slipway:debian/bookworm", "guest"]));
    let start = Instant::now();
    loop {
        let state = lxd(&["exec", "guest", "--", "systemctl", "is-system-running"]);
        let s = stdout(&state);
        if s.trim() == "running" || s.trim() == "degraded" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the container did not boot: {s}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let sftp = lxd(&[
        "exec",
        "guest",
        "--",
        "systemctl",
        "is-active",
        "cros-sftp.service",
    ]);
    assert_eq!(stdout(&sftp).trim(), "active");
    let _ = lxd(&["delete", "--force", "guest"]);
}
