//! Helpers for `slipway serve` tests: a small service project with one token per role, the
//! real binary on an ephemeral port of 127.0.0.1, and a blocking HTTP client for its API.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Project, bin, git, write_secret};

/// One token per role: `(role, value)`. Test values, written to 0600 secret files.
pub const TOKENS: [(&str, &str); 5] = [
    ("viewer", "viewer-token-7f3a9c1e5b"),
    ("reporter", "reporter-token-6a2c8e0f4d"),
    ("trigger", "trigger-token-2d8e4f6a0c"),
    ("releaser", "releaser-token-9b1d3e5f7a"),
    ("admin", "admin-token-4c6e8a0b2d"),
];

pub fn token(role: &str) -> &'static str {
    TOKENS
        .iter()
        .find(|(r, _)| *r == role)
        .map(|(_, t)| *t)
        .unwrap_or_else(|| panic!("no test token for role {role}"))
}

/// Rows added to the project's milestone 1 (`canary`, `main`): 2 and 3 active, 4 inactive.
const MORE_BRANCHES: &str = r#"
[[branches]]
channel = "beta"
milestone = 2
branch = "beta"

[[branches]]
channel = "stable"
milestone = 3
branch = "stable"

[[branches]]
channel = "old"
milestone = 4
branch = "old"
active = false
"#;

/// The active milestones of every service project.
pub const ACTIVE: [u32; 3] = [1, 2, 3];

/// A build printing `tick 1` .. `tick N`, one line every 200 ms.
pub fn tick_build(name: &str, ticks: u32) -> String {
    format!(
        "[builds.{name}]\nsandbox = false\nsteps = [\"for i in $(seq 1 {ticks}); do echo tick $i; sleep 0.2; done\"]\n"
    )
}

/// A build that prints one line.
pub fn echo_build(name: &str) -> String {
    format!("[builds.{name}]\nsandbox = false\nsteps = [\"echo hello from {name}\"]\n")
}

pub fn job(name: &str, trigger: &str, branches: &str, builds: &[&str], extra: &str) -> String {
    format!(
        "[jobs.{name}]\ntrigger = \"{trigger}\"\nbranches = {branches}\nbuilds = {builds:?}\n{extra}\n"
    )
}

/// A service project: milestones 1-3 active on `main`, `beta`, `stable`, milestone 4 inactive
/// on `old`; `[server]` polls hourly (tests poll with `POST /api/v1/poll`) plus `server`;
/// one token per role; then `body` (jobs and builds).
pub fn service_project(server: &str, body: &str) -> Project {
    let mut tokens = String::from("[server.tokens]\n");
    let mut secrets = String::from("[secrets]\n");
    for (role, _) in TOKENS {
        tokens.push_str(&format!(
            "{role} = {{ secret = \"{role}-token\", role = \"{role}\" }}\n"
        ));
        secrets.push_str(&format!("{role}-token = {{ file = \"tokens/{role}\" }}\n"));
    }
    let p = Project::new(
        &format!(
            "{MORE_BRANCHES}\n{secrets}\n[server]\npoll_interval = \"1h\"\n{server}\n{tokens}\n{body}"
        ),
        &[],
    );
    let repo = p.path().join("repo");
    for branch in ["beta", "stable", "old"] {
        git(&repo, &["branch", branch]);
    }
    std::fs::create_dir_all(p.path().join("tokens")).unwrap();
    for (role, value) in TOKENS {
        write_secret(&p.path().join("tokens").join(role), &format!("{value}\n"));
    }
    p
}

/// Gives an existing service config (one with `[secrets]` and `[server.tokens]` tables, like
/// the example's) the test tokens, one per role.
pub fn add_test_tokens(dir: &std::path::Path) {
    let cfg = dir.join("slipway.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    let mut tokens = String::new();
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    for (role, value) in TOKENS {
        write_secret(&dir.join("tokens").join(role), &format!("{value}\n"));
        tokens.push_str(&format!(
            "{role} = {{ secret = \"{role}-token\", role = \"{role}\" }}\n"
        ));
        text = text.replacen(
            "[secrets]\n",
            &format!("[secrets]\n{role}-token = {{ file = \"tokens/{role}\" }}\n"),
            1,
        );
    }
    text = text.replacen(
        "[server.tokens]\n",
        &format!("[server.tokens]\n{tokens}"),
        1,
    );
    std::fs::write(&cfg, text).unwrap();
}

/// Commits a change on `branch` of the project's repo; the new head.
pub fn commit_on(p: &Project, branch: &str, file: &str) -> String {
    let repo = p.path().join("repo");
    git(&repo, &["checkout", "--quiet", branch]);
    std::fs::write(repo.join(file), format!("{file}\n")).unwrap();
    git(&repo, &["add", file]);
    git(&repo, &["commit", "--quiet", "-m", file]);
    let out = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    git(&repo, &["checkout", "--quiet", "main"]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

static STARTS: AtomicUsize = AtomicUsize::new(0);

/// `slipway serve` running on a project, until dropped (killed then) or stopped.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    /// The server's stderr (its log).
    pub log: PathBuf,
    http: reqwest::blocking::Client,
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

impl Server {
    /// Starts `slipway serve --listen 127.0.0.1:0` on the project and waits until it listens
    /// (the line with the dashboard URL on stdout).
    pub fn start(p: &Project) -> Server {
        Server::start_with(p, &[])
    }

    pub fn start_with(p: &Project, env: &[(&str, &str)]) -> Server {
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let log = p.path().join(format!("serve-{n}.log"));
        let mut cmd = Command::new(bin());
        cmd.current_dir(p.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(p.path().join("slipway.toml"))
            .arg("--data-dir")
            .arg(p.path().join(".slipway"))
            .env_remove("SLIPWAY_HOME")
            .env_remove("SLIPWAY_ADMIN_TOKEN")
            .env_remove("SLIPWAY_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("cannot start slipway serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                if let Some(url) = line
                    .strip_prefix("slipway serve: dashboard at ")
                    .map(|u| u.trim_end_matches('/').to_string())
                {
                    let _ = tx.send(url);
                }
            }
        });
        let mut server = Server {
            child: Some(child),
            url: String::new(),
            log,
            http: client(),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => server.url = url,
            Err(_) => panic!("slipway serve did not start:\n{}", server.log_text()),
        }
        server
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::blocking::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> reqwest::blocking::Response {
        self.request(reqwest::Method::GET, path, token)
            .send()
            .unwrap()
    }

    pub fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::blocking::Response {
        let mut r = self.request(reqwest::Method::POST, path, token);
        if let Some(b) = body {
            r = r.json(b);
        }
        r.send().unwrap()
    }

    /// A GET that must answer 200 with JSON (public reads, or the viewer token).
    pub fn json(&self, path: &str) -> Value {
        expect_json(self.get(path, Some(token("viewer"))), 200)
    }

    /// A POST that must answer `status` with JSON, made with the token of `role`.
    pub fn post_json(&self, path: &str, role: &str, body: Option<&Value>, status: u16) -> Value {
        expect_json(self.post(path, Some(token(role)), body), status)
    }

    /// Queues `job` on `milestone` (trigger token); the run id.
    pub fn trigger(&self, job: &str, milestone: u32) -> i64 {
        let v = self.post_json(
            &format!("/api/v1/jobs/{job}/runs"),
            "trigger",
            Some(&serde_json::json!({ "milestone": milestone })),
            201,
        );
        assert_eq!(v["status"], "queued", "{v}");
        v["run_id"].as_i64().unwrap()
    }

    /// Polls the branch table now; the ids it queued.
    pub fn poll(&self) -> Vec<i64> {
        let v = self.post_json("/api/v1/poll", "trigger", None, 200);
        assert_eq!(v["errors"], serde_json::json!([]), "{v}");
        ids(&v["queued"])
    }

    pub fn run(&self, id: i64) -> Value {
        self.json(&format!("/api/v1/runs/{id}"))["run"].clone()
    }

    /// Waits until run `id` has one of `statuses`; the run.
    pub fn wait_status(&self, id: i64, statuses: &[&str], limit: Duration) -> Value {
        let start = Instant::now();
        loop {
            let run = self.run(id);
            if statuses.iter().any(|s| run["status"] == *s) {
                return run;
            }
            assert!(
                start.elapsed() < limit,
                "run {id} is {} after {limit:?}, not {statuses:?}:\n{run}\n{}",
                run["status"],
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until run `id` has ended; the run.
    pub fn wait_end(&self, id: i64) -> Value {
        self.wait_status(
            id,
            &["success", "failure", "cancelled", "interrupted"],
            Duration::from_secs(60),
        )
    }

    /// Waits until the server's first poll (made at start) is done.
    pub fn wait_first_poll(&self) {
        let start = Instant::now();
        while self.json("/healthz")["poll"]["last_poll"].is_null() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no poll at start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs, newest first, with a query string (`job=ci&milestone=1`); up to 1000 unless
    /// the query sets a limit.
    pub fn runs(&self, query: &str) -> Vec<Value> {
        let limit = if query.contains("limit=") {
            ""
        } else {
            "limit=1000&"
        };
        self.json(&format!("/api/v1/runs?{limit}{query}"))
            .as_array()
            .unwrap()
            .clone()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: a plain kill(2) of our own child.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return (status, start.elapsed());
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                panic!(
                    "slipway serve did not exit within {limit:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM: how it exited, and how long it took.
    pub fn terminate(mut self) -> (ExitStatus, Duration, String) {
        self.signal(libc::SIGTERM);
        let (status, took) = self.wait_exit(Duration::from_secs(30));
        (status, took, self.log_text())
    }

    /// SIGTERM, which must end the server with status 0 within 10 s; its log.
    pub fn stop(self) -> String {
        let (status, took, log) = self.terminate();
        assert!(status.success(), "slipway serve exited {status}:\n{log}");
        assert!(took < Duration::from_secs(10), "stopping took {took:?}");
        log
    }

    /// SIGKILL, as a crash would.
    pub fn crash(mut self) {
        self.signal(libc::SIGKILL);
        self.wait_exit(Duration::from_secs(10));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Asserts a response's status and that it is JSON; the JSON.
pub fn expect_json(r: reqwest::blocking::Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    assert_eq!(got, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The integers of a JSON array.
pub fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// Milliseconds since the epoch of an RFC 3339 timestamp (as the store writes them).
pub fn millis(ts: &Value) -> i64 {
    let text = ts.as_str().unwrap_or_else(|| panic!("no timestamp: {ts}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("bad timestamp {text}: {e}"))
        .timestamp_millis()
}

/// The most intervals `[start, end)` open at one moment.
pub fn max_overlap(intervals: &[(i64, i64)]) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for &(s, e) in intervals {
        edges.push((s, 1));
        edges.push((e, -1));
    }
    // An end and a start at the same millisecond do not overlap: ends first.
    edges.sort();
    let (mut open, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        open += d;
        most = most.max(open);
    }
    most as usize
}
