//! Publishing and promotion against a real S3 server (moto, started here on 127.0.0.1), read
//! back by apt-get over HTTP.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let args = [
        "-H".to_string(),
        "127.0.0.1".to_string(),
        "-p".to_string(),
        port.to_string(),
    ];
    let child = Command::new("moto_server")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .or_else(|_| {
            Command::new("python3")
                .args(["-m", "moto.server"])
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .expect("moto is not installed (pip install 'moto[server]'; .ci/run installs it)");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "moto_server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto { child, port }
}

fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "--noproxy", "*"])
        .args(args)
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap()
}

fn s3_config(ex: &Path, port: u16) {
    let endpoint = format!("http://127.0.0.1:{port}");
    let text = std::fs::read_to_string(ex.join("slipway.toml")).unwrap();
    let bucket = |url: &str, promote: &str| {
        format!(
            "{{ url = \"{url}\", endpoint = \"{endpoint}\", allow_http = true, credentials = \"s3\", cache_control = \"public, max-age=30\"{promote} }}"
        )
    };
    let text = text
        .replace(
            "packages-staging   = { url = \"file://var/buckets/cros-packages-staging\", promote_to = \"packages\" }",
            &format!("packages-staging   = {}", bucket("s3://staging/cros-packages", ", promote_to = \"packages\"")),
        )
        .replace(
            "packages           = \"file://var/buckets/cros-packages\"",
            &format!("packages           = {}", bucket("s3://production/cros-packages", "")),
        )
        .replace("[secrets]\n", "[secrets]\ns3 = { file = \"var/secrets/s3.env\" }\n");
    assert!(
        text.contains("s3://staging") && text.contains("s3://production"),
        "example config changed shape"
    );
    std::fs::write(ex.join("slipway.toml"), text).unwrap();
    write_secret(
        &ex.join("var/secrets/s3.env"),
        "AWS_ACCESS_KEY_ID=testing\nAWS_SECRET_ACCESS_KEY=testing-secret-value\n",
    );
}

#[test]
fn publish_republish_promote_rollback_on_s3() {
    let moto = start_moto();
    for bucket in ["staging", "production"] {
        ok(&curl(&[
            "-f",
            "-X",
            "PUT",
            "-H",
            "x-amz-acl: public-read",
            &format!("http://127.0.0.1:{}/{bucket}", moto.port),
        ]));
    }
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("ex");
    init_example(&ex);
    s3_config(&ex, moto.port);
    ok(&slipway(&ex, &["validate"]));

    let run = json(&slipway(
        &ex,
        &["run", "guest_tools", "--milestone", "74", "--json"],
    ));
    assert_eq!(run["status"], "success", "{run}");
    let id = run["run_id"].as_i64().unwrap().to_string();
    let log = stdout(&slipway(&ex, &["logs", &id, "publish_apt_staging"]));
    assert!(log.contains("read back and verified"), "{log}");
    assert!(
        !log.contains("testing-secret-value"),
        "credentials leaked into the log"
    );

    // The object is in S3 with the configured Cache-Control, and signed with the project key.
    let url = format!(
        "http://127.0.0.1:{}/staging/cros-packages/74/dists/bookworm/InRelease",
        moto.port
    );
    let head = curl(&["-f", "-I", &url]);
    ok(&head);
    assert!(
        stdout(&head)
            .to_lowercase()
            .contains("cache-control: public, max-age=30"),
        "{}",
        stdout(&head)
    );
    let inrelease = dir.path().join("InRelease");
    ok(&curl(&["-f", "-o", inrelease.to_str().unwrap(), &url]));
    let keyring = ex.join("var/keys/cros-apt.gpg");
    let gpgv = Command::new("gpgv")
        .arg("--keyring")
        .arg(&keyring)
        .arg(&inrelease)
        .output()
        .unwrap();
    assert!(gpgv.status.success(), "{}", stderr(&gpgv));

    // Republishing the same commit uploads nothing (signatures are reproducible too).
    let again = json(&slipway(
        &ex,
        &["run", "guest_tools", "--milestone", "74", "--json"],
    ));
    let id2 = again["run_id"].as_i64().unwrap().to_string();
    let log = stdout(&slipway(&ex, &["logs", &id2, "publish_apt_staging"]));
    assert!(log.contains(" 0 written, "), "{log}");

    // Promotion makes production serve exactly the candidate; apt reads it over HTTP.
    ok(&slipway(&ex, &["promote", "--milestone", "74"]));
    let prod = format!("http://127.0.0.1:{}/production/cros-packages/74", moto.port);
    let got = tempfile::tempdir().unwrap();
    let out = apt_download(
        &prod,
        &format!("signed-by={}", keyring.display()),
        &["cros-guest-tools"],
        got.path(),
    );
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success() && !text.contains("E: ") && !text.contains("W: "),
        "{text}"
    );
    assert!(got.path().join("cros-guest-tools_74.0.1_all.deb").exists());

    // A second candidate, promoted, then rolled back.
    let repo = ex.join("repo");
    std::fs::write(repo.join("VERSION"), "74.0.2\n").unwrap();
    git(&repo, &["commit", "--quiet", "-am", "74.0.2"]);
    ok(&slipway(&ex, &["run", "guest_tools", "--milestone", "74"]));
    ok(&slipway(&ex, &["promote", "--milestone", "74"]));
    let packages = |base: &str| {
        stdout(&curl(&[
            "-f",
            &format!("{base}/dists/bookworm/main/binary-amd64/Packages"),
        ]))
    };
    assert!(packages(&prod).contains("Version: 74.0.2"));
    ok(&slipway(&ex, &["rollback", "--milestone", "74"]));
    assert!(packages(&prod).contains("Version: 74.0.1"));
    let got = tempfile::tempdir().unwrap();
    let out = apt_download(
        &prod,
        &format!("signed-by={}", keyring.display()),
        &["cros-guest-tools"],
        got.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(got.path().join("cros-guest-tools_74.0.1_all.deb").exists());
}

#[test]
fn the_s3_lease_is_exclusive() {
    let moto = start_moto();
    ok(&curl(&[
        "-f",
        "-X",
        "PUT",
        "-H",
        "x-amz-acl: public-read",
        &format!("http://127.0.0.1:{}/production", moto.port),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("ex");
    init_example(&ex);
    ok(&curl(&[
        "-f",
        "-X",
        "PUT",
        "-H",
        "x-amz-acl: public-read",
        &format!("http://127.0.0.1:{}/staging", moto.port),
    ]));
    s3_config(&ex, moto.port);
    ok(&slipway(&ex, &["run", "guest_tools", "--milestone", "74"]));
    // Someone else holds the lease on the S3 production prefix: a conditional write refuses us.
    let far = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let lease = |expires: u64| {
        format!(
            "{{\"host\":\"other-host\",\"pid\":7,\"start\":\"1\",\"operation\":99,\"by\":\"other@host\",\"expires\":{expires}}}"
        )
    };
    let put_lease = |body: &str| {
        ok(&curl(&[
            "-f",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
            &format!(
                "http://127.0.0.1:{}/production/cros-packages/74/.slipway-lease",
                moto.port
            ),
        ]))
    };
    put_lease(&lease(far));
    let out = slipway(&ex, &["promote", "--milestone", "74"]);
    assert!(!out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("promotion 99 is running (pid 7 on other-host, by other@host"),
        "{}",
        stderr(&out)
    );
    // Expired: taken over with a write conditional on the lease's ETag (If-Match), promoted,
    // and released.
    put_lease(&lease(1));
    ok(&slipway(&ex, &["promote", "--milestone", "74"]));
    let gone = curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!(
            "http://127.0.0.1:{}/production/cros-packages/74/.slipway-lease",
            moto.port
        ),
    ]);
    assert_eq!(stdout(&gone).trim(), "404", "the lease is released");
}
