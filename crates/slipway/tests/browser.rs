//! The dashboard in a real browser: Debian's Chromium (headless) driven through chromedriver
//! with fantoccini, against `slipway serve --example` (the README's main command). The matrix
//! shows the example's four milestones, a run page's log grows while its build runs, and a
//! release engineer logs in and promotes from the release page. Screenshots of each page are
//! written under `$CARGO_TARGET_TMPDIR/browser/`.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// Kills a child process when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `slipway serve --example DIR`, and the URL it prints once it listens.
fn serve_example(dir: &Path) -> (Reaped, String) {
    let mut child = Command::new(common::bin())
        .current_dir(dir)
        .args(["serve", "--example", "demo", "--listen", "127.0.0.1:0"])
        .env_remove("SLIPWAY_HOME")
        .env_remove("SLIPWAY_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("serve.log")).expect("log file"))
        .spawn()
        .expect("cannot start slipway serve");
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    let url = loop {
        let line = lines
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("slipway serve ended early: {}", log_of(dir)));
        if let Some(rest) = line.strip_prefix("slipway serve: dashboard at ") {
            break rest.trim_end_matches('/').to_string();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Reaped(child), url)
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
}

fn chromedriver(port: u16) -> Reaped {
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian package chromium-driver; scripts/setup-host.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Reaped(child)
}

async fn browser(port: u16, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--window-size=1440,900", format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    // chromedriver listens on loopback: plain HTTP, no TLS stack needed.
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("cannot start Chromium through chromedriver")
}

fn get(url: &str) -> Value {
    let out = Command::new("curl")
        .args(["-sf", url])
        .output()
        .expect("curl");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn shots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(shots_dir().join(format!("{name}.png")), png).expect("write screenshot");
}

/// Polls `f` every 250 ms until it returns `Some`, or fails after `limit`.
async fn until<T, F: AsyncFnMut() -> Option<T>>(what: &str, limit: Duration, mut f: F) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_matrix_live_log_and_promotion_in_chromium() {
    let dir = tempfile::Builder::new()
        .prefix("slipway-browser")
        .tempdir()
        .expect("tempdir");
    let (_server, url) = serve_example(dir.path());
    let driver_port = free_port();
    let _driver = chromedriver(driver_port);
    let profile = dir.path().join("chromium-profile");
    let c = browser(driver_port, &profile).await;

    // The matrix: one row per milestone of the example's branch table, runs queued at once.
    c.goto(&format!("{url}/")).await.expect("home");
    for m in [71, 72, 73, 74] {
        c.find(Locator::Id(&format!("row-{m}")))
            .await
            .unwrap_or_else(|_| panic!("no matrix row for milestone {m}"));
    }
    let header = c
        .find(Locator::Css("#matrix thead"))
        .await
        .expect("matrix header")
        .text()
        .await
        .expect("header text");
    assert!(header.to_lowercase().contains("guest_tools"), "{header}");
    shot(&c, "home").await;

    // A run page follows a running build's log as it grows.
    let (run_id, build) = until("a running build", Duration::from_secs(120), async || {
        let runs = get(&format!("{url}/api/v1/runs?status=running"));
        for r in runs.as_array()? {
            let id = r["run_id"].as_i64()?;
            let detail = get(&format!("{url}/api/v1/runs/{id}"));
            let running = detail["builds"].as_array()?.iter().find(|b| {
                b["status"] == "running"
                    && ["lxd_container", "lxd_test", "vm_image"]
                        .contains(&b["name"].as_str().unwrap_or(""))
            });
            if let Some(b) = running {
                return Some((id, b["name"].as_str()?.to_string()));
            }
        }
        None
    })
    .await;
    c.goto(&format!("{url}/runs/{run_id}"))
        .await
        .expect("run page");
    c.find(Locator::Id(&format!("log-toggle-{build}")))
        .await
        .expect("log toggle")
        .click()
        .await
        .expect("open the log");
    let log_lines = async || -> usize {
        match c.find(Locator::Id(&format!("log-{build}"))).await {
            Ok(e) => e.text().await.map(|t| t.lines().count()).unwrap_or(0),
            Err(_) => 0,
        }
    };
    let build_running = || {
        let detail = get(&format!("{url}/api/v1/runs/{run_id}"));
        detail["builds"]
            .as_array()
            .and_then(|bs| bs.iter().find(|b| b["name"] == build.as_str()).cloned())
            .is_some_and(|b| b["status"] == "running")
    };
    let mut seen: Vec<usize> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while build_running() && Instant::now() < deadline {
        let n = log_lines().await;
        if seen.last() != Some(&n) {
            seen.push(n);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let grew_while_running = seen.windows(2).any(|w| w[0] > 0 && w[1] > w[0]);
    assert!(
        grew_while_running,
        "the log of {build} in run {run_id} did not grow on the page while the build ran: line counts {seen:?}"
    );
    // The shot shows the log panel, not only the DAG above it.
    let _ = c
        .execute(
            "document.getElementById(arguments[0]).scrollIntoView({block: 'center'})",
            vec![json!(format!("logpanel-{build}"))],
        )
        .await;
    shot(&c, "run").await;

    // A release engineer logs in and promotes milestone 74's candidate from its release page.
    let candidate = until(
        "a candidate of milestone 74",
        Duration::from_secs(420),
        async || {
            get(&format!("{url}/api/v1/milestones/74/candidates"))
                .as_array()?
                .first()?["id"]
                .as_i64()
        },
    )
    .await;
    let token = std::fs::read_to_string(dir.path().join("demo/var/secrets/dashboard-token"))
        .expect("the example's dashboard token");
    c.goto(&format!("{url}/login?next=/milestones/74"))
        .await
        .expect("login page");
    c.form(Locator::Css("#login form"))
        .await
        .expect("login form")
        .set_by_name("token", token.trim())
        .await
        .expect("type the token")
        .submit()
        .await
        .expect("log in");
    until(
        "the release page after login",
        Duration::from_secs(10),
        async || {
            let path = c.current_url().await.ok()?.path().to_string();
            (path == "/milestones/74").then_some(())
        },
    )
    .await;
    c.find(Locator::Css(&format!(
        ".promote[data-candidate=\"{candidate}\"]"
    )))
    .await
    .expect("a promote button for the candidate (shown to releasers)")
    .click()
    .await
    .expect("click promote");
    c.accept_alert().await.expect("confirm the promotion");
    let release = until("the release", Duration::from_secs(120), async || {
        let releases = get(&format!("{url}/api/v1/milestones/74/releases"));
        releases.as_array()?.first().cloned()
    })
    .await;
    assert_eq!(release["candidate_id"], candidate);
    assert_eq!(release["promoted_by"], "release-engineer (slipway serve)");
    until(
        "the page to show the live candidate",
        Duration::from_secs(30),
        async || {
            c.goto(&format!("{url}/milestones/74")).await.ok()?;
            let row = c
                .find(Locator::Id(&format!("candidate-{candidate}")))
                .await
                .ok()?;
            let text = row.text().await.ok()?;
            text.contains("in production").then_some(())
        },
    )
    .await;
    shot(&c, "release").await;

    // The release policy panel's buttons, through the session cookie and JSON like promote:
    // hold with a reason, see who held it and why, lift the hold, evaluate now.
    let policy_url = format!("{url}/api/v1/milestones/74/policy");
    let reason = "browser test: <lab> outage";
    c.find(Locator::Id("hold-reason"))
        .await
        .expect("the hold reason field (shown to releasers)")
        .send_keys(reason)
        .await
        .expect("type a reason");
    c.find(Locator::Id("policy-hold"))
        .await
        .expect("the hold button")
        .click()
        .await
        .expect("click hold");
    c.accept_alert().await.expect("confirm the hold");
    let hold = until("the hold", Duration::from_secs(30), async || {
        get(&policy_url)
            .get("hold")
            .filter(|h| !h.is_null())
            .cloned()
    })
    .await;
    assert_eq!(hold["reason"], reason);
    assert_eq!(hold["held_by"], "release-engineer (slipway serve)");
    let note = until(
        "the page to show the hold",
        Duration::from_secs(30),
        async || {
            c.find(Locator::Id("policy-hold-note"))
                .await
                .ok()?
                .text()
                .await
                .ok()
        },
    )
    .await;
    assert!(
        note.contains(reason) && note.contains("release-engineer"),
        "{note}"
    );
    shot(&c, "release-held").await;
    c.find(Locator::Id("policy-unhold"))
        .await
        .expect("the unhold button (shown while held)")
        .click()
        .await
        .expect("click unhold");
    c.accept_alert().await.expect("confirm lifting the hold");
    until("the hold lifted", Duration::from_secs(30), async || {
        get(&policy_url)["hold"].is_null().then_some(())
    })
    .await;
    let evaluate = until(
        "the page without the hold",
        Duration::from_secs(30),
        async || {
            c.find(Locator::Id("policy-hold")).await.ok()?;
            c.find(Locator::Id("policy-evaluate")).await.ok()
        },
    )
    .await;
    // A marker the reload that follows a successful POST wipes out.
    c.execute("window.slipwayBeforeEvaluate = true", vec![])
        .await
        .expect("set a marker");
    evaluate.click().await.expect("click evaluate now");
    c.accept_alert().await.expect("confirm the evaluation");
    until(
        "the page reloaded after the evaluation",
        Duration::from_secs(60),
        async || {
            let marker = c
                .execute("return window.slipwayBeforeEvaluate === true", vec![])
                .await
                .ok()?;
            (marker == Value::Bool(false)).then_some(())
        },
    )
    .await;
    let timeline = c
        .find(Locator::Id("policy-timeline"))
        .await
        .expect("the policy timeline")
        .text()
        .await
        .expect("its text");
    assert!(
        timeline.contains("hold lifted by release-engineer") && timeline.contains(reason),
        "{timeline}"
    );
    c.close().await.expect("close the browser");
    let log = log_of(dir.path());
    assert!(
        !log.contains(token.trim()),
        "the token reached the server log"
    );
}
