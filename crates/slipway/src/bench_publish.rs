//! `slipway bench publish`: publish a generated tree to a local S3 server, then republish it
//! after changing one object, with Slipway and with `rclone sync` on the same tree and server,
//! in one run; then `slipway publish` (the command, with its hash cache under the data dir, and
//! without it as before) republishing after a change. Starts `moto_server` on 127.0.0.1 unless
//! `--endpoint` names a running server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use slipway_publish::{Bucket, BucketSpec, Credentials, PublishOptions, publish_dir};

struct Server(Option<Child>);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_moto() -> Result<(Server, String)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let args = [
        "-H".to_string(),
        "127.0.0.1".into(),
        "-p".into(),
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
        .context("cannot start moto_server (pip install 'moto[server]') ; or pass --endpoint")?;
    let server = Server(Some(child));
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("moto_server did not start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((server, format!("http://127.0.0.1:{port}")))
}

/// Creates a bucket with a plain HTTP PUT (local test servers accept it unsigned).
fn create_bucket(endpoint: &str, name: &str) -> Result<()> {
    let hostport = endpoint
        .strip_prefix("http://")
        .context("--endpoint must be http://host:port")?;
    let mut s = TcpStream::connect(hostport)?;
    write!(
        s,
        "PUT /{name} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    if !(reply.starts_with("HTTP/1.1 200") || reply.contains("BucketAlreadyOwnedByYou")) {
        bail!(
            "cannot create bucket {name}: {}",
            reply.lines().next().unwrap_or("")
        );
    }
    Ok(())
}

fn write_tree(dir: &Path, objects: usize, total: u64) -> Result<()> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mean = (total / objects as u64).max(1);
    let mut written = 0u64;
    for i in 0..objects {
        // Sizes between half and one and a half of the mean; the last one takes the rest.
        let size = if i + 1 == objects {
            total.saturating_sub(written).max(1)
        } else {
            mean / 2 + next() % mean.max(1)
        };
        let mut buf = vec![0u8; size as usize];
        for chunk in buf.chunks_mut(8) {
            let v = next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        let path = dir.join(format!("d{:02}/object-{i:05}.bin", i % 20));
        std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
        std::fs::write(path, buf)?;
        written += size;
    }
    Ok(())
}

/// Changes one byte of the object `n` of the tree.
fn touch_object(tree: &Path, n: usize) -> Result<()> {
    let changed = tree.join(format!("d{:02}/object-{n:05}.bin", n % 20));
    let mut bytes = std::fs::read(&changed)?;
    if let Some(b) = bytes.first_mut() {
        *b = b.wrapping_add(1);
    }
    std::fs::write(&changed, bytes)?;
    Ok(())
}

/// `slipway publish` of `tree` (this binary, as a user runs it) to the server: once cold, then
/// after a change with the data dir's hash cache, then after another change with an empty data
/// dir (every file hashed again, as the command did before it had the cache).
fn publish_cli(dir: &Path, endpoint: &str, tree: &Path, objects: usize) -> Result<[Duration; 3]> {
    let config = dir.join("slipway.toml");
    std::fs::write(
        &config,
        format!(
            "[project]\nname = \"bench\"\nrepo = \"repo\"\n\n[buckets]\nbench = {{ url = \"s3://slipway-bench/cli\", endpoint = \"{endpoint}\", allow_http = true, credentials = \"s3\" }}\n\n[secrets]\ns3 = {{ file = \"s3.env\" }}\n"
        ),
    )?;
    let secret = dir.join("s3.env");
    std::fs::write(
        &secret,
        "AWS_ACCESS_KEY_ID=bench\nAWS_SECRET_ACCESS_KEY=bench-secret\n",
    )?;
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let exe = std::env::current_exe().context("cannot find the slipway binary")?;
    let publish = |data_dir: &str| -> Result<Duration> {
        let start = Instant::now();
        let out = Command::new(&exe)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.join(data_dir))
            .arg("publish")
            .arg(tree)
            .args(["--bucket", "bench"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .context("cannot run slipway publish")?;
        if !out.status.success() {
            bail!(
                "slipway publish failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(start.elapsed())
    };
    let cold = publish("data")?;
    touch_object(tree, 1 % objects)?;
    let cached = publish("data")?;
    touch_object(tree, 2 % objects)?;
    let uncached = publish("data-empty")?;
    Ok([cold, cached, uncached])
}

fn rclone(endpoint: &str, src: &Path) -> Result<Duration> {
    let start = Instant::now();
    let out = Command::new("rclone")
        .args([
            "sync",
            "--transfers",
            "16",
            "--checkers",
            "16",
            "--s3-upload-concurrency",
            "4",
        ])
        .arg(src)
        .arg("bench:rclone-bench/tree")
        .env("RCLONE_CONFIG_BENCH_TYPE", "s3")
        .env("RCLONE_CONFIG_BENCH_PROVIDER", "Other")
        .env("RCLONE_CONFIG_BENCH_ENDPOINT", endpoint)
        .env("RCLONE_CONFIG_BENCH_ACCESS_KEY_ID", "bench")
        .env("RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY", "bench-secret")
        .env("RCLONE_CONFIG_BENCH_REGION", "us-east-1")
        .env_remove("AWS_CA_BUNDLE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("cannot run rclone (Debian package rclone)")?;
    if !out.status.success() {
        bail!(
            "rclone failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(start.elapsed())
}

pub async fn run(objects: usize, mib: u64, endpoint: Option<String>) -> Result<ExitCode> {
    if objects == 0 || mib == 0 {
        bail!("need --objects >= 1 and --mib >= 1");
    }
    let tmp = tempfile::Builder::new()
        .prefix("slipway-bench-publish")
        .tempdir()?;
    let tree = tmp.path().join("tree");
    eprintln!("generating {objects} objects, {mib} MiB ...");
    write_tree(&tree, objects, mib << 20)?;
    let (_server, endpoint) = match endpoint {
        Some(e) => (Server(None), e),
        None => start_moto()?,
    };
    create_bucket(&endpoint, "slipway-bench")?;
    create_bucket(&endpoint, "rclone-bench")?;
    let spec = BucketSpec {
        name: "bench".into(),
        url: "s3://slipway-bench/tree".into(),
        endpoint: Some(endpoint.clone()),
        allow_http: true,
        ..Default::default()
    };
    let creds = Credentials {
        access_key_id: "bench".into(),
        secret_access_key: "bench-secret".into(),
        session_token: None,
    };
    let bucket = Bucket::open(&spec, tmp.path(), Some(&creds))?;
    let opts = PublishOptions {
        hash_cache: Some(tmp.path().join("hashes.json")),
        ..Default::default()
    };

    let start = Instant::now();
    let cold = publish_dir(&tree, &bucket, "", &opts).await?;
    let slipway_cold = start.elapsed();
    let rclone_cold = rclone(&endpoint, &tree)?;

    // Change one object, then republish with both.
    touch_object(&tree, 0)?;
    let start = Instant::now();
    let again = publish_dir(&tree, &bucket, "", &opts).await?;
    let slipway_re = start.elapsed();
    let rclone_re = rclone(&endpoint, &tree)?;
    let [cli_cold, cli_cached, cli_uncached] = publish_cli(tmp.path(), &endpoint, &tree, objects)?;

    let s = |d: Duration| d.as_secs_f64();
    println!("publish benchmark: {objects} objects, {mib} MiB, S3 server {endpoint}");
    println!("  {:<34} {:>9}", "", "seconds");
    println!(
        "  {:<34} {:>9.3}  ({} uploaded)",
        "slipway publish (cold)",
        s(slipway_cold),
        cold.uploaded
    );
    println!("  {:<34} {:>9.3}", "rclone sync (cold)", s(rclone_cold));
    println!(
        "  {:<34} {:>9.3}  ({} uploaded, {} unchanged)",
        "slipway publish (1 object changed)",
        s(slipway_re),
        again.uploaded,
        again.unchanged
    );
    println!(
        "  {:<34} {:>9.3}",
        "rclone sync (1 object changed)",
        s(rclone_re)
    );
    println!(
        "  {:<34} {:>9.3}",
        "slipway publish CLI (cold)",
        s(cli_cold)
    );
    println!(
        "  {:<34} {:>9.3}  (hash cache in the data dir)",
        "slipway publish CLI (1 changed)",
        s(cli_cached)
    );
    println!(
        "  {:<34} {:>9.3}  (empty data dir: every file hashed, as before the cache)",
        "slipway publish CLI (1 changed)",
        s(cli_uncached)
    );
    println!("targets:");
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "  cold at least as fast as rclone:   {:.2}x rclone's speed  {}",
        s(rclone_cold) / s(slipway_cold).max(1e-9),
        verdict(slipway_cold <= rclone_cold)
    );
    println!(
        "  republish uploads only the change: {} object(s)  {}",
        again.uploaded,
        verdict(again.uploaded == 1)
    );
    let share = s(slipway_re) / s(slipway_cold).max(1e-9) * 100.0;
    println!(
        "  republish under 5% of cold:        {share:.1}%  {}",
        verdict(share < 5.0)
    );
    println!(
        "  CLI republish uses the hash cache:  {:.3}s vs {:.3}s without  {}",
        s(cli_cached),
        s(cli_uncached),
        verdict(cli_cached < cli_uncached)
    );
    Ok(ExitCode::SUCCESS)
}
