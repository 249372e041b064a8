//! `slipway serve` through its HTTP API, the real binary on an ephemeral port of 127.0.0.1:
//! polling (one run per head, across restarts), crash and stop semantics, cancel (API and
//! CLI), concurrency limits, superseded runs, the auth matrix, live logs (SSE), the OpenAPI
//! document and metrics, and bad input.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use common::server::*;
use common::*;
use serde_json::{Value, json};

/// `(job, milestone)` of each run.
fn instances(runs: &[Value]) -> BTreeSet<(String, i64)> {
    runs.iter()
        .map(|r| {
            (
                r["job"].as_str().unwrap().to_string(),
                r["milestone"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn run_ids(runs: &[Value]) -> Vec<i64> {
    runs.iter().map(|r| r["run_id"].as_i64().unwrap()).collect()
}

/// A metric's value in the exposition text (`name` with its labels, e.g. `x{status="y"}`).
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn log_of(server: &Server, run: i64, build: &str) -> String {
    let r = server.get(
        &format!("/api/v1/runs/{run}/builds/{build}/log"),
        Some(token("viewer")),
    );
    assert_eq!(r.status().as_u16(), 200);
    r.text().unwrap()
}

/// Waits until a build's log has `text` (the build is past its start).
fn wait_log(server: &Server, run: i64, build: &str, text: &str) {
    let start = Instant::now();
    while !log_of(server, run, build).contains(text) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "run {run} never logged {text:?}:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn continuous_project() -> Project {
    service_project(
        "",
        &format!(
            "{}{}{}{}",
            job("ci", "continuous", "\"active\"", &["hello"], ""),
            job("lint", "continuous", "[\"main\"]", &["hello"], ""),
            job("by_hand", "manual", "\"active\"", &["hello"], ""),
            echo_build("hello"),
        ),
    )
}

#[test]
fn polling_queues_one_run_per_head_exactly_once_across_restarts() {
    let p = continuous_project();
    let server = Server::start(&p);
    // The server polls once at start: one run per continuous job and active milestone.
    server.wait_first_poll();
    let first = server.runs("");
    let expected: BTreeSet<(String, i64)> = [("ci", 1), ("ci", 2), ("ci", 3), ("lint", 1)]
        .iter()
        .map(|(j, m)| (j.to_string(), *m))
        .collect();
    assert_eq!(instances(&first), expected, "{first:?}");
    assert_eq!(first.len(), 4);
    assert!(
        first.iter().all(|r| r["trigger"] == "continuous"),
        "{first:?}"
    );
    assert_eq!(
        server.poll(),
        Vec::<i64>::new(),
        "a second poll queues nothing"
    );
    for id in run_ids(&first) {
        assert_eq!(server.wait_end(id)["status"], "success");
    }

    // A new commit on one branch: exactly one more run, of the job on that branch.
    let head = commit_on(&p, "beta", "beta-1");
    let queued = server.poll();
    assert_eq!(queued.len(), 1, "{queued:?}");
    let new = server.wait_end(queued[0]);
    assert_eq!(new["status"], "success", "{new}");
    assert_eq!(
        (new["job"].as_str(), new["milestone"].as_i64()),
        (Some("ci"), Some(2))
    );
    assert_eq!(new["commit"], head.as_str());
    assert_eq!(server.poll(), Vec::<i64>::new());

    // Filters.
    assert_eq!(server.runs("").len(), 5);
    assert_eq!(server.runs("job=ci").len(), 4);
    let ci2 = server.runs("job=ci&milestone=2");
    assert_eq!(ci2.len(), 2);
    assert_eq!(run_ids(&ci2)[0], queued[0], "newest first");
    assert_eq!(server.runs("milestone=1").len(), 2);
    assert_eq!(server.runs("job=lint&milestone=2").len(), 0);
    assert_eq!(server.runs("status=success").len(), 5);
    assert_eq!(server.runs("status=queued").len(), 0);
    assert_eq!(server.runs("job=ci&limit=1").len(), 1);

    // Branches: every row, newest milestone first, with its latest run per job.
    let branches = server.json("/api/v1/branches");
    let rows = branches.as_array().unwrap();
    let milestones: Vec<i64> = rows
        .iter()
        .map(|r| r["milestone"].as_i64().unwrap())
        .collect();
    assert_eq!(milestones, vec![4, 3, 2, 1]);
    let latest =
        |job: &str, m: i64| server.runs(&format!("job={job}&milestone={m}"))[0]["run_id"].clone();
    assert_eq!(rows[0]["branch"], "old");
    assert_eq!(rows[0]["active"], false);
    assert_eq!(rows[0]["jobs"], json!({}), "an inactive row runs no job");
    assert_eq!(rows[2]["channel"], "beta");
    assert_eq!(rows[2]["jobs"]["ci"]["run_id"], queued[0]);
    assert_eq!(rows[2]["jobs"]["by_hand"], Value::Null);
    let jobs_of_1: Vec<&String> = rows[3]["jobs"].as_object().unwrap().keys().collect();
    assert_eq!(jobs_of_1, ["by_hand", "ci", "lint"]);
    assert_eq!(rows[3]["jobs"]["ci"]["run_id"], latest("ci", 1));
    assert_eq!(rows[3]["jobs"]["lint"]["run_id"], latest("lint", 1));
    assert_eq!(rows[1]["jobs"]["ci"]["run_id"], latest("ci", 3));

    // Metrics count what happened.
    let text = server.get("/metrics", None).text().unwrap();
    assert_eq!(
        metric(&text, "slipway_runs_started_total"),
        Some(5),
        "{text}"
    );
    assert_eq!(
        metric(&text, "slipway_runs_finished_total{status=\"success\"}"),
        Some(5)
    );
    assert_eq!(metric(&text, "slipway_runs{status=\"success\"}"), Some(5));
    assert_eq!(metric(&text, "slipway_runs_executing"), Some(0));
    assert!(metric(&text, "slipway_polls_total").unwrap() >= 4, "{text}");
    assert_eq!(metric(&text, "slipway_poll_errors_total"), Some(0));
    server.stop();

    // A commit while the server is down: the start's poll queues it once, and only it.
    let head3 = commit_on(&p, "stable", "stable-1");
    let server = Server::start(&p);
    server.wait_first_poll();
    let after = server.runs("");
    assert_eq!(after.len(), 6, "{after:?}");
    assert_eq!(after[0]["commit"], head3.as_str());
    assert_eq!(
        (after[0]["job"].as_str(), after[0]["milestone"].as_i64()),
        (Some("ci"), Some(3))
    );
    assert_eq!(server.poll(), Vec::<i64>::new());
    assert_eq!(server.wait_end(run_ids(&after)[0])["status"], "success");
    let heads = server.json("/healthz")["poll"]["heads"].clone();
    assert_eq!(heads.as_object().unwrap().len(), 4, "{heads}");
    assert_eq!(heads["ci/2"], head.as_str());
    server.stop();

    // And once more: nothing new.
    let server = Server::start(&p);
    server.wait_first_poll();
    assert_eq!(server.poll(), Vec::<i64>::new());
    assert_eq!(server.runs("").len(), 6);
    server.stop();
}

#[test]
fn a_crash_interrupts_the_running_run_retries_it_once_and_keeps_the_queue() {
    let p = service_project(
        "max_runs = 1",
        &format!(
            "{}{}",
            job("slow", "manual", "\"active\"", &["tick"], ""),
            tick_build("tick", 8)
        ),
    );
    let server = Server::start(&p);
    let a = server.trigger("slow", 1);
    let b = server.trigger("slow", 2);
    wait_log(&server, a, "tick", "tick 1");
    assert_eq!(server.run(a)["status"], "running");
    assert_eq!(server.run(b)["status"], "queued", "max_runs = 1");
    server.crash();

    let server = Server::start(&p);
    let run_a = server.run(a);
    assert_eq!(run_a["status"], "interrupted", "{run_a}");
    let retries: Vec<Value> = server
        .runs("")
        .into_iter()
        .filter(|r| r["trigger"] == "retry")
        .collect();
    assert_eq!(retries.len(), 1, "{retries:?}");
    let retry = retries[0]["run_id"].as_i64().unwrap();
    assert_eq!(retries[0]["retry_of"], a);
    assert_eq!(
        (retries[0]["job"].as_str(), retries[0]["milestone"].as_i64()),
        (Some("slow"), Some(1))
    );
    // The queued run kept its place: it runs first (oldest first), then the retry.
    let run_b = server.wait_end(b);
    assert_eq!(run_b["status"], "success", "{run_b}");
    let run_retry = server.wait_end(retry);
    assert_eq!(run_retry["status"], "success", "{run_retry}");
    assert!(millis(&run_b["finished_at"]) <= millis(&run_retry["started_at"]));
    assert!(log_of(&server, retry, "tick").contains("tick 8"));

    // SIGTERM with on_shutdown = "cancel" (the default): the running run ends cancelled.
    let c = server.trigger("slow", 3);
    wait_log(&server, c, "tick", "tick 1");
    server.stop();
    let server = Server::start(&p);
    let run_c = server.run(c);
    assert_eq!(run_c["status"], "cancelled", "{run_c}");
    std::thread::sleep(Duration::from_millis(300));
    let all = server.runs("");
    assert_eq!(all.len(), 4, "a cancelled run is not retried: {all:?}");
    assert!(
        all.iter()
            .all(|r| r["status"] != "queued" && r["status"] != "running")
    );
    server.stop();
}

#[test]
fn cancel_queued_and_running_runs_through_the_api_and_the_cli() {
    let p = service_project("max_runs = 1", "");
    let shared = p.shared();
    let body = format!(
        "{}{}{}[builds.hang]\nsandbox = false\nsteps = [\"sleep 300 & echo $! > $SHARED/pid; wait\"]\nenv = {{ SHARED = \"{}\" }}\n",
        job("hang", "manual", "\"active\"", &["hang"], ""),
        job("quick", "manual", "\"active\"", &["hello"], ""),
        echo_build("hello"),
        shared.display()
    );
    let toml = std::fs::read_to_string(p.path().join("slipway.toml")).unwrap();
    std::fs::write(p.path().join("slipway.toml"), format!("{toml}\n{body}")).unwrap();
    let server = Server::start(&p);

    let a = server.trigger("hang", 1);
    assert!(
        wait_for(&shared.join("pid"), Duration::from_secs(30)),
        "{}",
        server.log_text()
    );
    let pid = read_pid(&shared.join("pid"));
    let b = server.trigger("quick", 2);
    assert_eq!(server.run(b)["status"], "queued");

    // A queued run: cancelled at once, never started.
    let v = server.post_json(&format!("/api/v1/runs/{b}/cancel"), "trigger", None, 200);
    assert_eq!(v, json!({ "run_id": b, "status": "cancelled" }));
    let detail = server.json(&format!("/api/v1/runs/{b}"));
    assert_eq!(detail["run"]["status"], "cancelled");
    assert_eq!(detail["run"]["started_at"], Value::Null, "{detail}");
    assert_eq!(detail["run"]["error"], "cancelled by trigger");
    assert_eq!(detail["builds"][0]["status"], "cancelled");

    // The CLI needs a token...
    let cli = |args: &[&str], token: Option<&str>| {
        let mut c = slipway_cmd(p.path(), args);
        c.env("SLIPWAY_SERVER", &server.url)
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("SLIPWAY_TOKEN");
        if let Some(t) = token {
            c.env("SLIPWAY_TOKEN", t);
        }
        c.output().unwrap()
    };
    let a_arg = a.to_string();
    let refused = cli(&["cancel", &a_arg], None);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("401") && stderr(&refused).contains("set SLIPWAY_TOKEN"),
        "{}",
        stderr(&refused)
    );
    let refused = cli(&["cancel", &a_arg], Some(token("viewer")));
    assert!(stderr(&refused).contains("403"), "{}", stderr(&refused));
    assert_eq!(server.run(a)["status"], "running");

    // ...and cancels a running run: its processes are gone.
    let out = cli(&["cancel", &a_arg], Some(token("trigger")));
    ok(&out);
    assert_eq!(stdout(&out).trim(), format!("run {a}: cancelling"));
    let run_a = server.wait_end(a);
    assert_eq!(run_a["status"], "cancelled", "{run_a}");
    assert!(run_a["started_at"].is_string());
    let start = Instant::now();
    while pid_alive(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "step process {pid} survived the cancel"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Cancelling an ended run says how it ended.
    let out = cli(&["cancel", &a_arg], Some(token("trigger")));
    ok(&out);
    assert_eq!(stdout(&out).trim(), format!("run {a}: cancelled"));

    // `slipway trigger --wait` queues a run and follows it to its end.
    let out = cli(
        &["trigger", "quick", "--milestone", "3", "--wait"],
        Some(token("trigger")),
    );
    ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains(": success") && text.contains("hello"),
        "{text}"
    );
    let last = &server.runs("job=quick&milestone=3")[0];
    assert_eq!(last["status"], "success");
    assert_eq!(last["trigger"], "manual");
    assert_eq!(last["requested_by"], "trigger");
    let refused = cli(
        &["trigger", "quick", "--milestone", "3"],
        Some(token("viewer")),
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("403"), "{}", stderr(&refused));
    assert_eq!(server.runs("job=quick").len(), 2);
    server.stop();
}

#[test]
fn concurrency_limits_hold_globally_and_per_job() {
    let p = service_project(
        "max_runs = 2",
        &format!(
            "{}{}{}",
            job("a", "manual", "\"active\"", &["tick"], "max_concurrent = 1"),
            job("b", "manual", "\"active\"", &["tick"], ""),
            tick_build("tick", 4)
        ),
    );
    let server = Server::start(&p);
    let mut all = Vec::new();
    for m in ACTIVE {
        all.push(server.trigger("a", m));
        all.push(server.trigger("b", m));
    }
    let mut intervals = Vec::new();
    let mut of_a = Vec::new();
    for id in &all {
        let run = server.wait_end(*id);
        assert_eq!(run["status"], "success", "{run}");
        let span = (millis(&run["started_at"]), millis(&run["finished_at"]));
        if run["job"] == "a" {
            of_a.push(span);
        }
        intervals.push(span);
    }
    assert_eq!(max_overlap(&intervals), 2, "max_runs = 2: {intervals:?}");
    assert_eq!(max_overlap(&of_a), 1, "job a: max_concurrent = 1: {of_a:?}");
    server.stop();
}

#[test]
fn a_newer_head_cancels_the_queued_older_run() {
    let p = service_project(
        "max_runs = 1",
        &format!(
            "{}{}{}{}",
            job("slow", "manual", "\"active\"", &["tick"], ""),
            job("ci", "continuous", "[\"beta\"]", &["hello"], ""),
            tick_build("tick", 50),
            echo_build("hello")
        ),
    );
    let server = Server::start(&p);
    server.wait_first_poll();
    let first = server.runs("job=ci");
    assert_eq!(first.len(), 1);
    server.wait_end(run_ids(&first)[0]);

    // The one slot is busy, so the run of the next head waits in the queue...
    let busy = server.trigger("slow", 1);
    wait_log(&server, busy, "tick", "tick 1");
    commit_on(&p, "beta", "b1");
    let older = server.poll();
    assert_eq!(older.len(), 1);
    assert_eq!(server.run(older[0])["status"], "queued");
    // ...until a newer head replaces it.
    let newest = commit_on(&p, "beta", "b2");
    let report = server.post_json("/api/v1/poll", "trigger", None, 200);
    let newer = ids(&report["queued"]);
    assert_eq!(newer.len(), 1, "{report}");
    assert_eq!(ids(&report["superseded"]), older, "{report}");
    let old = server.run(older[0]);
    assert_eq!(old["status"], "cancelled");
    assert_eq!(old["started_at"], Value::Null);
    assert_eq!(
        old["error"],
        format!("superseded by run {} (a newer head)", newer[0])
    );

    server.post_json(&format!("/api/v1/runs/{busy}/cancel"), "trigger", None, 200);
    let run = server.wait_end(newer[0]);
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(run["commit"], newest.as_str());
    assert_eq!(server.runs("job=ci").len(), 3);
    server.stop();
}

/// Mutating endpoints: `(path, body, role needed, status when allowed)`.
fn mutating(run: i64) -> Vec<(String, Option<Value>, &'static str, u16)> {
    vec![
        (
            "/api/v1/jobs/quick/runs".into(),
            Some(json!({ "milestone": 1 })),
            "trigger",
            201,
        ),
        (format!("/api/v1/runs/{run}/cancel"), None, "trigger", 200),
        ("/api/v1/poll".into(), None, "trigger", 200),
        // No candidate to promote, no release to roll back to: refused, but past the auth.
        ("/api/v1/milestones/1/promote".into(), None, "releaser", 409),
        (
            "/api/v1/milestones/1/rollback".into(),
            None,
            "releaser",
            409,
        ),
        ("/api/v1/reload".into(), None, "admin", 200),
        // No candidate 1 here: refused, but past the auth.
        (
            "/api/v1/results".into(),
            Some(json!({
                "candidate": 1,
                "suite": "pfq",
                "format": "junit",
                "report": "<testsuite name=\"pfq\"><testcase name=\"a\"/></testsuite>"
            })),
            "reporter",
            404,
        ),
    ]
}

const BAD_TOKEN: &str = "not-a-known-token-5e7f9a";

#[test]
fn auth_matrix_every_role_against_every_endpoint() {
    let p = service_project(
        "public_reads = false",
        &format!(
            "{}{}",
            job("quick", "manual", "\"active\"", &["hello"], ""),
            echo_build("hello")
        ),
    );
    let server = Server::start_with(&p, &[("SLIPWAY_LOG", "debug")]);
    let done = server.trigger("quick", 1);
    server.wait_end(done);

    let rank = |role: &str| {
        ["viewer", "reporter", "trigger", "releaser", "admin"]
            .iter()
            .position(|r| *r == role)
    };
    for (path, body, needs, allowed) in mutating(done) {
        for caller in [
            None,
            Some("bad"),
            Some("viewer"),
            Some("reporter"),
            Some("trigger"),
            Some("releaser"),
            Some("admin"),
        ] {
            let presented = match caller {
                None => None,
                Some("bad") => Some(BAD_TOKEN),
                Some(role) => Some(token(role)),
            };
            let expected = match caller {
                None | Some("bad") => 401,
                Some(role) if rank(role) < rank(needs) => 403,
                Some(_) => allowed,
            };
            let r = server.post(&path, presented, body.as_ref());
            let got = r.status().as_u16();
            let www = r.headers().get("www-authenticate").cloned();
            let text = r.text().unwrap();
            assert_eq!(got, expected, "POST {path} as {caller:?}: {text}");
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            if expected >= 400 {
                assert!(v["error"].is_string(), "{text}");
            }
            if expected == 401 {
                assert!(www.is_some(), "401 without WWW-Authenticate");
            }
        }
    }

    // Reads are private here: a viewer token (or better) or nothing.
    let reads = [
        "/api/v1/runs".to_string(),
        "/api/v1/branches".into(),
        "/metrics".into(),
        format!("/api/v1/runs/{done}"),
        format!("/api/v1/runs/{done}/builds/hello/log"),
        format!("/api/v1/runs/{done}/builds/hello/log/stream"),
        "/api/v1/milestones/1/releases".into(),
        "/api/v1/milestones/1/candidates".into(),
        "/api/v1/milestones/1/results".into(),
        "/api/v1/milestones/1/environments".into(),
    ];
    for path in &reads {
        assert_eq!(server.get(path, None).status().as_u16(), 401, "GET {path}");
        assert_eq!(
            server.get(path, Some(BAD_TOKEN)).status().as_u16(),
            401,
            "GET {path}"
        );
        for role in ["viewer", "admin"] {
            let r = server.get(path, Some(token(role)));
            assert_eq!(r.status().as_u16(), 200, "GET {path} as {role}");
            r.text().unwrap();
        }
    }
    assert_eq!(server.get("/healthz", None).status().as_u16(), 200);
    let hello = server.get(
        &format!("/api/v1/runs/{done}/builds/hello/log"),
        Some(token("viewer")),
    );
    assert!(hello.text().unwrap().contains("hello from hello"));

    // Queued by the matrix: trigger, releaser, admin each queued one run.
    let queued_by: Vec<String> = server
        .runs("job=quick")
        .iter()
        .map(|r| r["requested_by"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(queued_by, ["admin", "releaser", "trigger", "trigger"]);

    let log = server.stop();
    // Callers are logged by their token's name, never by its value.
    assert!(
        log.contains("listening") && log.contains("by=\"releaser\""),
        "{log}"
    );
    for (role, value) in TOKENS {
        assert!(
            !log.contains(value),
            "the {role} token is in the server's log"
        );
    }
    assert!(
        !log.contains(BAD_TOKEN),
        "a presented bad token is in the server's log"
    );
}

/// One SSE event: `(event, data)`, or `None` at the end of the stream.
fn next_event(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
) -> Option<(String, String)> {
    let (mut event, mut data) = (String::new(), Vec::new());
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.is_empty() {
            if event.is_empty() && data.is_empty() {
                continue;
            }
            return Some((event, data.join("\n")));
        }
        if let Some(e) = line.strip_prefix("event:") {
            event = e.trim_start().to_string();
        } else if let Some(d) = line.strip_prefix("data:") {
            data.push(d.strip_prefix(' ').unwrap_or(d).to_string());
        }
    }
    None
}

/// The events of a stream until `end` (included); each with whether the run was still
/// running when it arrived.
fn read_stream(server: &Server, run: i64, build: &str) -> Vec<(String, String, bool)> {
    let r = client()
        .get(format!(
            "{}/api/v1/runs/{run}/builds/{build}/log/stream",
            server.url
        ))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "{:?}",
        r.headers()
    );
    let mut lines = BufReader::new(r).lines();
    let mut events = Vec::new();
    while let Some((event, data)) = next_event(&mut lines) {
        let running = server.run(run)["status"] == "running";
        let end = event == "end";
        events.push((event, data, running));
        if end {
            break;
        }
    }
    events
}

#[test]
fn log_stream_delivers_lines_while_the_build_runs() {
    let p = service_project(
        "",
        &format!(
            "{}{}",
            job("slow", "manual", "\"active\"", &["tick"], ""),
            tick_build("tick", 10)
        ),
    );
    let server = Server::start(&p);
    let run = server.trigger("slow", 1);
    let events = read_stream(&server, run, "tick");
    let (last, lines) = events.split_last().unwrap();
    assert_eq!(
        (last.0.as_str(), last.1.as_str()),
        ("end", "success"),
        "{events:?}"
    );
    assert!(lines.iter().all(|(e, _, _)| e == "line"), "{events:?}");
    let ticks: Vec<&str> = lines
        .iter()
        .filter_map(|(_, d, _)| d.split(" | ").nth(1))
        .filter(|t| t.starts_with("tick "))
        .collect();
    let expected: Vec<String> = (1..=10).map(|i| format!("tick {i}")).collect();
    assert_eq!(ticks, expected, "{events:?}");
    // Live: the first tick arrived while the run was still running, and so did most others.
    let first_tick = lines
        .iter()
        .find(|(_, d, _)| d.ends_with("| tick 1"))
        .unwrap();
    assert!(
        first_tick.2,
        "tick 1 arrived after the run ended: {events:?}"
    );
    let live = lines.iter().filter(|(_, _, running)| *running).count();
    assert!(
        live >= 5,
        "only {live} lines arrived while the build ran: {events:?}"
    );
    assert_eq!(server.run(run)["status"], "success");

    // The text log is the same lines; a stream of an ended build replays them and ends.
    let text = log_of(&server, run, "tick");
    let text_lines: Vec<&str> = text.lines().collect();
    let streamed: Vec<&str> = lines.iter().map(|(_, d, _)| d.as_str()).collect();
    assert_eq!(streamed, text_lines);
    let replay = read_stream(&server, run, "tick");
    let replayed: Vec<&str> = replay
        .iter()
        .filter(|e| e.0 == "line")
        .map(|e| e.1.as_str())
        .collect();
    assert_eq!(replayed, text_lines);
    assert_eq!(replay.last().unwrap().1, "success");
    server.stop();
}

#[test]
fn openapi_document_lists_every_endpoint() {
    let p = service_project(
        "",
        &format!(
            "{}{}",
            job("quick", "manual", "\"active\"", &["hello"], ""),
            echo_build("hello")
        ),
    );
    let server = Server::start(&p);
    let doc = expect_json(server.get("/api/v1/openapi.json", None), 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in [
        ("get", "/healthz"),
        ("get", "/metrics"),
        ("get", "/api/v1/branches"),
        ("get", "/api/v1/runs"),
        ("post", "/api/v1/jobs/{job}/runs"),
        ("get", "/api/v1/runs/{id}"),
        ("post", "/api/v1/runs/{id}/cancel"),
        ("get", "/api/v1/runs/{id}/builds/{build}/log"),
        ("get", "/api/v1/runs/{id}/builds/{build}/log/stream"),
        ("get", "/api/v1/artifacts/{sha256}"),
        ("post", "/api/v1/poll"),
        ("get", "/api/v1/milestones/{m}/candidates"),
        ("get", "/api/v1/milestones/{m}/releases"),
        ("post", "/api/v1/milestones/{m}/promote"),
        ("post", "/api/v1/milestones/{m}/rollback"),
        ("post", "/api/v1/reload"),
        ("post", "/api/v1/results"),
        ("get", "/api/v1/milestones/{m}/results"),
        ("get", "/api/v1/milestones/{m}/environments"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not in the OpenAPI document"
        );
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "RunRow",
        "TriggerRequest",
        "ErrorBody",
        "BranchRowView",
        "ResultRequest",
        "RecordedResult",
        "Environments",
    ] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
    // Every documented GET without parameters answers.
    for (path, item) in paths {
        if item.get("get").is_some() && !path.contains('{') {
            let r = server.get(path, None);
            assert_eq!(r.status().as_u16(), 200, "GET {path}");
        }
    }
    server.stop();
}

#[test]
fn bad_input_gets_a_json_error_and_the_server_stays_up() {
    let p = service_project(
        "",
        &format!(
            "{}{}",
            job("quick", "manual", "\"active\"", &["hello"], ""),
            echo_build("hello")
        ),
    );
    let server = Server::start(&p);
    let run = server.trigger("quick", 1);
    server.wait_end(run);
    let t = Some(token("admin"));
    let raw = |path: &str, body: &str| {
        server
            .request(reqwest::Method::POST, path, t)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
    };
    let cases: Vec<(&str, reqwest::blocking::Response, u16, &str)> = vec![
        (
            "malformed JSON",
            raw("/api/v1/jobs/quick/runs", "{\"milestone\": "),
            400,
            "",
        ),
        (
            "wrong type",
            raw("/api/v1/jobs/quick/runs", "{\"milestone\": \"one\"}"),
            400,
            "",
        ),
        (
            "unknown field",
            raw("/api/v1/jobs/quick/runs", "{\"milestone\": 1, \"x\": 1}"),
            400,
            "unknown field",
        ),
        (
            "no body",
            server.post("/api/v1/jobs/quick/runs", t, None),
            400,
            "",
        ),
        (
            "unknown job",
            server.post("/api/v1/jobs/nope/runs", t, Some(&json!({"milestone": 1}))),
            404,
            "no job named 'nope'",
        ),
        (
            "unknown milestone",
            server.post(
                "/api/v1/jobs/quick/runs",
                t,
                Some(&json!({"milestone": 99})),
            ),
            404,
            "milestone 99 is not in the branch table",
        ),
        (
            "inactive milestone",
            server.post("/api/v1/jobs/quick/runs", t, Some(&json!({"milestone": 4}))),
            400,
            "does not run on milestone 4",
        ),
        (
            "unknown commit",
            server.post(
                "/api/v1/jobs/quick/runs",
                t,
                Some(&json!({"milestone": 1, "commit": "no-such-rev"})),
            ),
            400,
            "no-such-rev",
        ),
        (
            "promote, malformed",
            raw("/api/v1/milestones/1/promote", "{"),
            400,
            "",
        ),
        (
            "promote, unknown field",
            raw("/api/v1/milestones/1/promote", "{\"candidat\": 1}"),
            400,
            "unknown field",
        ),
        (
            "promote, unknown milestone",
            server.post("/api/v1/milestones/99/promote", t, None),
            404,
            "milestone 99",
        ),
        (
            "rollback, unknown milestone",
            server.post("/api/v1/milestones/99/rollback", t, None),
            404,
            "milestone 99",
        ),
        (
            "releases, unknown milestone",
            server.get("/api/v1/milestones/99/releases", t),
            404,
            "milestone 99",
        ),
        (
            "releases, milestone not a number",
            server.get("/api/v1/milestones/abc/releases", t),
            400,
            "",
        ),
        (
            "run id not a number",
            server.get("/api/v1/runs/abc", t),
            400,
            "",
        ),
        (
            "cancel, run id not a number",
            server.post("/api/v1/runs/abc/cancel", t, None),
            400,
            "",
        ),
        (
            "log, run id not a number",
            server.get("/api/v1/runs/x1/builds/hello/log", t),
            400,
            "",
        ),
        (
            "runs, milestone not a number",
            server.get("/api/v1/runs?milestone=abc", t),
            400,
            "",
        ),
        (
            "runs, unknown status",
            server.get("/api/v1/runs?status=bogus", t),
            400,
            "bogus",
        ),
        (
            "unknown run",
            server.get("/api/v1/runs/999999", t),
            404,
            "no run 999999",
        ),
        (
            "cancel, unknown run",
            server.post("/api/v1/runs/999999/cancel", t, None),
            404,
            "no run 999999",
        ),
        (
            "log, unknown run",
            server.get("/api/v1/runs/999999/builds/hello/log", t),
            404,
            "no run 999999",
        ),
        (
            "log, unknown build",
            server.get(&format!("/api/v1/runs/{run}/builds/nope/log"), t),
            404,
            "no build 'nope'",
        ),
        (
            "stream, unknown build",
            server.get(&format!("/api/v1/runs/{run}/builds/nope/log/stream"), t),
            404,
            "no build 'nope'",
        ),
        (
            "artifact, bad sha256",
            server.get("/api/v1/artifacts/xyz", t),
            400,
            "sha256",
        ),
        (
            "artifact, uppercase sha256",
            server.get(&format!("/api/v1/artifacts/{}", "A".repeat(64)), t),
            400,
            "sha256",
        ),
        (
            "artifact, unknown",
            server.get(&format!("/api/v1/artifacts/{}", "0".repeat(64)), t),
            404,
            "no artifact",
        ),
    ];
    for (what, response, status, says) in cases {
        let got = response.status().as_u16();
        let text = response.text().unwrap();
        assert_eq!(got, status, "{what}: {text}");
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
        let error = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no error: {text}"));
        assert!(error.contains(says), "{what}: {error}");
    }
    assert_eq!(
        expect_json(server.get("/healthz", None), 200)["status"],
        "ok"
    );
    let again = server.trigger("quick", 2);
    assert_eq!(server.wait_end(again)["status"], "success");
    assert_eq!(server.runs("").len(), 2, "no bad request queued a run");
    server.stop();
}

/// A service project whose continuous job `ci` publishes a small tree (with a VM disk image) to
/// a staging bucket on milestone 1's branch.
fn publishing_project() -> Project {
    service_project(
        "",
        &format!(
            "[buckets]\nstaging = {{ url = \"file://buckets/staging\", promote_to = \"prod\" }}\nprod = \"file://buckets/prod\"\n\n{}{}",
            job("ci", "continuous", "[\"main\"]", &["make", "pub"], ""),
            "[builds.make]\nsandbox = false\nsteps = [\"mkdir -p out/tree/vm && echo hello > out/tree/a.txt && echo disk > out/tree/vm/disk.qcow2\"]\nartifacts = [{ glob = \"out/tree/**\", strip_prefix = \"out/\" }]\n\n[builds.pub]\nneeds = [\"make\"]\nuses = \"publish\"\nprivileged = true\nwith = { bucket = \"staging\", prefix = \"{milestone}\", path = \"make/tree\" }\n",
        ),
    )
}

#[test]
fn labs_report_results_with_a_reporter_token_and_read_environments() {
    let p = publishing_project();
    let server = Server::start(&p);
    server.wait_first_poll();
    let runs = server.runs("job=ci");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = server.wait_end(runs[0]["run_id"].as_i64().unwrap());
    assert_eq!(run["status"], "success", "{run}");
    let candidates = server.json("/api/v1/milestones/1/candidates");
    let c = candidates[0]["id"].as_i64().unwrap();
    let digest = candidates[0]["digest"].as_str().unwrap().to_string();

    let junit = "<testsuites><testsuite name=\"pfq\"><testcase name=\"a\"/><testcase classname=\"crostini\" name=\"Sftp\"><failure>inactive</failure></testcase></testsuite></testsuites>";
    let body = json!({
        "candidate": c,
        "suite": "pfq",
        "format": "junit",
        "report": junit,
        "link": "https://lab.example/run/1",
        "started_at": "2026-01-01T10:00:00+01:00"
    });
    let first = server.post_json("/api/v1/results", "reporter", Some(&body), 201);
    assert_eq!(first["duplicate"], false);
    assert_eq!(first["suite"], "pfq");
    assert_eq!(first["status"], "failed");
    assert_eq!(first["failed_cases"], json!(["crostini.Sftp"]));
    assert_eq!(first["environment"], "staging");
    assert_eq!(first["candidate_id"], c);
    assert_eq!(first["target_digest"], digest.as_str());
    assert_eq!(first["reporter"], "reporter");
    assert_eq!(first["started_at"], "2026-01-01T09:00:00.000Z");
    assert_eq!(first["stale"], false);
    // The same report about the same digest: recorded once.
    let again = server.post_json("/api/v1/results", "admin", Some(&body), 200);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["id"], first["id"]);
    // Viewers read but report nothing; no token is no caller.
    let refused = expect_json(
        server.post("/api/v1/results", Some(token("viewer")), Some(&body)),
        403,
    );
    assert!(
        refused["error"].as_str().unwrap().contains("reporter"),
        "{refused}"
    );
    expect_json(server.post("/api/v1/results", None, Some(&body)), 401);

    let tast = json!([
        {"name": "crostini.Basic", "errors": null, "skipReason": "", "start": "2026-01-01T10:00:00Z", "end": "2026-01-01T10:05:00Z"},
        {"name": "crostini.Gpu", "errors": null, "skipReason": "no GPU"}
    ]);
    let tast_body =
        json!({ "candidate": c, "suite": "pfq", "format": "tast", "report": tast.to_string() });
    let green = server.post_json("/api/v1/results", "reporter", Some(&tast_body), 201);
    assert_eq!(
        (&green["status"], &green["tests"], &green["skipped"]),
        (&json!("passed"), &json!(2), &json!(1))
    );
    assert_eq!(green["ended_at"], "2026-01-01T10:05:00.000Z");

    // Bad bodies: 400 with the reason, nothing recorded.
    let with = |patch: Value| {
        let mut b = body.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    for (bad, says) in [
        (
            with(json!({"release": 1})),
            "exactly one of `candidate` and `release`",
        ),
        (
            with(json!({"candidate": null})),
            "exactly one of `candidate` and `release`",
        ),
        (with(json!({"format": "xml"})), "unknown variant `xml`"),
        (with(json!({"report": "<html/>"})), "not a JUnit report"),
        (
            with(json!({"report": "<testsuite name=\"x\"/>"})),
            "no test cases",
        ),
        (
            with(json!({"format": "tast", "report": "{\"name\": 1}"})),
            "expected a JSON list of tests",
        ),
        (with(json!({"suite": "p f q"})), "suite name"),
        (
            with(json!({"link": "javascript:alert(1)"})),
            "link: an http(s) URL",
        ),
        (
            with(json!({"ended_at": "tomorrow"})),
            "ended_at 'tomorrow' is not an RFC 3339 time",
        ),
        (with(json!({"color": "red"})), "unknown field `color`"),
        (with(json!({"suite": null})), "missing field `suite`"),
    ] {
        let r = expect_json(
            server.post("/api/v1/results", Some(token("reporter")), Some(&bad)),
            400,
        );
        assert!(r["error"].as_str().unwrap().contains(says), "{bad}: {r}");
    }
    let not_json = server
        .request(
            reqwest::Method::POST,
            "/api/v1/results",
            Some(token("reporter")),
        )
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    expect_json(not_json, 400);
    let missing = expect_json(
        server.post(
            "/api/v1/results",
            Some(token("reporter")),
            Some(&with(json!({"candidate": null, "release": 7}))),
        ),
        404,
    );
    assert!(
        missing["error"].as_str().unwrap().contains("no release 7"),
        "{missing}"
    );
    // The server answers before reading all of it, then drops the connection: not one to reuse.
    let huge = with(json!({"report": "x".repeat(9 << 20)}));
    let too_large = server
        .request(
            reqwest::Method::POST,
            "/api/v1/results",
            Some(token("reporter")),
        )
        .header("connection", "close")
        .json(&huge)
        .send()
        .unwrap();
    expect_json(too_large, 413);

    let results = server.json("/api/v1/milestones/1/results");
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| r["stale"] == false && r["target_digest"] == digest.as_str())
    );

    let envs = server.json("/api/v1/milestones/1/environments");
    let staging = &envs["staging"];
    assert_eq!(staging["candidate_id"], c);
    assert_eq!(staging["digest"], digest.as_str());
    let bucket = p.path().join("buckets/staging");
    assert_eq!(
        staging["buckets"],
        json!([{"bucket": "staging", "prefix": "1", "url": format!("file://{}/1", bucket.display())}])
    );
    assert_eq!(
        staging["vm_images"],
        json!([format!("file://{}/1/vm/disk.qcow2", bucket.display())])
    );
    assert_eq!(staging["apt"], json!([]));
    assert_eq!(envs["production"]["candidate_id"], Value::Null);
    let unknown = expect_json(server.get("/api/v1/milestones/99/environments", None), 404);
    assert!(
        unknown["error"]
            .as_str()
            .unwrap()
            .contains("not in the branch table")
    );

    let log = server.stop();
    assert!(
        !log.contains(token("reporter")),
        "the reporter token is in the log"
    );
}
