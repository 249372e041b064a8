//! Presubmit from Gerrit, end to end: the real `slipway serve` against a fake Gerrit that speaks
//! Gerrit's documented REST shapes (tests/common/gerrit.rs). Each scenario asserts the exact
//! number of runs Slipway queued and of reviews it posted.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::gerrit::{FailMode, FakeGerrit};
use common::server::{Server, service_project, token};
use common::{Project, git};
use serde_json::{Value, json};

const PROJECT: &str = "containers/guest-tools";
const BOT: &str = "slipway-bot";
const PASSWORD: &str = "gerrit-http-password-5e1f9a";
const WEBHOOK: &str = "gerrit-webhook-secret-77c2d0";

/// A sandboxed check: prints `msg.txt`, fails when the change adds `fail`, waits when it adds
/// `slow`.
const CHECK: &str = r#"
[builds.check]
steps = ["cat msg.txt 2>/dev/null || true; if [ -f attack.sh ]; then sh attack.sh; fi; if [ -f slow ]; then sleep 30; fi; if [ -f fail ]; then echo 'unit tests: 3 failed'; exit 3; fi; mkdir -p out; cp msg.txt out/ 2>/dev/null || true; echo all good"]
artifacts = [{ glob = "out/*", strip_prefix = "out/" }]
"#;

fn review_jobs() -> String {
    let mut s = String::new();
    for (job, label, min) in [("pre", "Trybot-Ready", 1), ("pre-cr", "Code-Review", 2)] {
        s.push_str(&format!(
            "[jobs.{job}]\ntrigger = {{ review = {{ label = \"{label}\", min = {min} }} }}\nbranches = [\"main\"]\nuntrusted = true\nbuilds = [\"check\"]\n\n"
        ));
    }
    s
}

/// `[review]` pointing at the fake, with its secrets.
fn review_section(gerrit: &FakeGerrit) -> String {
    format!(
        "[review]\nkind = \"gerrit\"\nurl = \"{}\"\nproject = \"{PROJECT}\"\npoll_interval = \"1h\"\nuser = \"{BOT}\"\npassword_secret = \"gerrit-password\"\nreport_label = \"Verified\"\nwebhook_secret = \"gerrit-webhook\"\n",
        gerrit.url()
    )
}

/// Adds a secret (file under `tokens/`) to the project's `[secrets]` table.
fn add_secret(p: &Project, name: &str, value: &str) {
    let file = p.path().join("tokens").join(name);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    common::write_secret(&file, &format!("{value}\n"));
    let cfg = p.path().join("slipway.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replacen(
        "[secrets]\n",
        &format!("[secrets]\n{name} = {{ file = \"tokens/{name}\" }}\n"),
        1,
    );
    std::fs::write(cfg, text).unwrap();
}

fn presubmit_project(gerrit: &FakeGerrit, extra: &str) -> Project {
    let p = service_project(
        "",
        &format!(
            "{CHECK}\n{}\n{extra}\n{}",
            review_jobs(),
            review_section(gerrit)
        ),
    );
    add_secret(&p, "gerrit-password", PASSWORD);
    add_secret(&p, "gerrit-webhook", WEBHOOK);
    p
}

/// A commit on top of `base` with `files`, published as the change's patch set ref (as Gerrit
/// stores it); its sha.
fn patchset_commit(p: &Project, base: &str, files: &[(&str, &str)], git_ref: &str) -> String {
    let repo = p.path().join("repo");
    git(&repo, &["checkout", "--quiet", "--detach", base]);
    for (name, text) in files {
        std::fs::write(repo.join(name), text).unwrap();
        git(&repo, &["add", name]);
    }
    git(&repo, &["commit", "--quiet", "-m", "a change"]);
    let sha = rev_parse(&repo, "HEAD");
    git(&repo, &["update-ref", git_ref, &sha]);
    git(&repo, &["checkout", "--quiet", "main"]);
    sha
}

fn rev_parse(repo: &Path, rev: &str) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", rev])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A new change on `branch` of the fake whose patch set 1 adds `files`.
fn new_change(
    p: &Project,
    g: &FakeGerrit,
    branch: &str,
    owner: i64,
    files: &[(&str, &str)],
) -> u32 {
    // The number is known before the commit: Gerrit's ref names it.
    let probe = g.create_change(PROJECT, branch, "probe", owner, &"0".repeat(40));
    g.abandon(probe);
    let number = probe + 1;
    let sha = patchset_commit(p, branch, files, &g.ref_name(number, 1));
    let created = g.create_change(PROJECT, branch, "Add the guest tools check", owner, &sha);
    assert_eq!(created, number);
    number
}

fn new_patchset(p: &Project, g: &FakeGerrit, change: u32, files: &[(&str, &str)]) -> u32 {
    let next = g.current_patchset(change) + 1;
    let sha = patchset_commit(p, "main", files, &g.ref_name(change, next));
    assert_eq!(g.new_patchset(change, &sha), next);
    next
}

/// Polls the fake now (`POST /api/v1/review/poll`); the runs it queued.
fn review_poll(s: &Server) -> Vec<i64> {
    let v = s.post_json("/api/v1/review/poll", "trigger", None, 200);
    assert_eq!(v["errors"], json!([]), "{v}");
    v["queued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// Starts the server and waits for its first review poll (made at start), so the scenario's
/// own polls see exactly what it changed.
fn start(p: &Project) -> Server {
    let s = Server::start(p);
    let begin = Instant::now();
    while s.json("/api/v1/reviews")["status"]["last_poll"].is_null() {
        assert!(
            begin.elapsed() < Duration::from_secs(30),
            "no review poll at start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

/// Presubmit runs of `job`, oldest first.
fn runs_of(s: &Server, job: &str) -> Vec<Value> {
    let mut runs = s.runs(&format!("job={job}"));
    runs.reverse();
    runs
}

/// Waits until the run's vote is no longer pending/sending; the run's review record.
fn wait_vote(s: &Server, run: i64) -> Value {
    let start = Instant::now();
    loop {
        let v = s.json(&format!("/api/v1/runs/{run}"));
        let state = v["review"]["run"]["vote_state"].clone();
        if state != "pending" && state != "sending" {
            return v["review"].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "run {run}'s vote is still {state}: {v}\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Posts a webhook delivery with the shared secret; the JSON answer.
fn deliver(s: &Server, event: &Value) -> Value {
    let r = s
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/gerrit/events?secret={WEBHOOK}"),
            None,
        )
        .json(event)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    r.json().unwrap()
}

/// Waits until `job` has `n` runs (a webhook's read happens in the background).
fn wait_runs(s: &Server, job: &str, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let runs = runs_of(s, job);
        if runs.len() >= n {
            assert_eq!(runs.len(), n, "more runs than expected: {runs:?}");
            return runs;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{job} has {} runs, not {n}\n{}",
            runs.len(),
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn label_crossings_start_exactly_one_run_each_and_each_run_votes_once() {
    let g = FakeGerrit::start(BOT, PASSWORD);
    let alice = g.add_account("alice", "Alice Doe", "alice@example.org");
    let bob = g.add_account("bob", "Bob Roe", "bob@example.org");
    let p = presubmit_project(&g, "");
    let change = new_change(&p, &g, "main", alice, &[("msg.txt", "hello from change\n")]);
    let s = start(&p);

    // No vote yet: nothing runs.
    assert!(review_poll(&s).is_empty());
    g.vote(change, "Trybot-Ready", alice, 1);
    let first = review_poll(&s);
    assert_eq!(first.len(), 1);
    // The same state seen again (an overlapping poll, a duplicated webhook): nothing new.
    assert!(review_poll(&s).is_empty());
    let event = g.comment_added_event(change);
    deliver(&s, &event);
    deliver(&s, &event);
    // A comment and a vote on another label, with the Trybot-Ready vote still there.
    g.vote(change, "Code-Review", bob, 1);
    deliver(&s, &g.comment_added_event(change));
    assert!(review_poll(&s).is_empty());
    assert_eq!(runs_of(&s, "pre").len(), 1);

    let run = s.wait_end(first[0]);
    assert_eq!(run["status"], "success", "{}", s.log_text());
    assert_eq!(run["flow"], "presubmit");
    let review = wait_vote(&s, first[0]);
    assert_eq!(review["run"]["vote_state"], "posted", "{review}");
    assert_eq!(review["change"]["owner"], "alice");
    let posted = g.reviews();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0].labels.get("Verified"), Some(&1));
    assert_eq!(
        posted[0].tag.as_deref(),
        Some(format!("autogenerated:slipway:run-{}", first[0]).as_str())
    );
    assert!(
        posted[0]
            .message
            .contains(&format!("{}/runs/{}", s.url, first[0]))
    );

    // Code-Review -2 never matches min 2; +2 does, once.
    g.vote(change, "Code-Review", bob, -2);
    assert!(review_poll(&s).is_empty());
    g.vote(change, "Code-Review", bob, 2);
    assert_eq!(review_poll(&s).len(), 1);
    assert!(review_poll(&s).is_empty());

    // Removing and setting the vote again is a deliberate retry: one more run.
    g.vote(change, "Trybot-Ready", alice, 0);
    g.vote(change, "Trybot-Ready", alice, 1);
    assert_eq!(review_poll(&s).len(), 1);
    // Removed by someone else (Gerrit's DeleteVote) and set again: one more.
    g.delete_vote(change, "Trybot-Ready", alice, bob);
    deliver(&s, &g.comment_added_event(change));
    g.vote(change, "Trybot-Ready", alice, 1);
    deliver(&s, &g.comment_added_event(change));
    let pre = wait_runs(&s, "pre", 3);
    assert!(review_poll(&s).is_empty());

    // A vote on a change of a branch the job does not run on.
    let beta = new_change(&p, &g, "beta", alice, &[("msg.txt", "beta\n")]);
    g.vote(beta, "Trybot-Ready", alice, 1);
    assert!(review_poll(&s).is_empty());

    // Every run ends and votes exactly once.
    for r in &pre {
        let id = r["run_id"].as_i64().unwrap();
        s.wait_end(id);
        wait_vote(&s, id);
    }
    let cr = runs_of(&s, "pre-cr");
    assert_eq!(cr.len(), 1);
    s.wait_end(cr[0]["run_id"].as_i64().unwrap());
    wait_vote(&s, cr[0]["run_id"].as_i64().unwrap());
    assert_eq!(g.reviews().len(), 4);

    // A restart in the middle of nothing changes nothing: no run, no vote repeated.
    s.stop();
    let s = start(&p);
    assert!(review_poll(&s).is_empty());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(runs_of(&s, "pre").len(), 3);
    assert_eq!(g.reviews().len(), 4);

    // The presubmit view lists the change with its runs and votes.
    let view = s.json("/api/v1/reviews");
    let listed = view["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["change"]["change_number"] == change)
        .cloned()
        .unwrap();
    assert_eq!(listed["runs"].as_array().unwrap().len(), 4);
    // The dashboard's presubmit page and a run page show the change and the votes.
    let page = s.get("/presubmit", None).text().unwrap();
    assert!(page.contains("Add the guest tools check") && page.contains("Verified +1 posted"));
    let run_page = s.get(&format!("/runs/{}", first[0]), None).text().unwrap();
    assert!(
        run_page.contains(&format!("title=\"change {change} on the review server\""))
            && run_page.contains("Verified +1 posted"),
        "{run_page}"
    );
}

#[test]
fn webhooks_are_checked_and_out_of_order_deliveries_start_nothing_twice() {
    let g = FakeGerrit::start(BOT, PASSWORD);
    let alice = g.add_account("alice", "Alice Doe", "alice@example.org");
    let p = presubmit_project(&g, "");
    let change = new_change(&p, &g, "main", alice, &[("msg.txt", "x\n")]);
    let s = start(&p);

    g.vote(change, "Trybot-Ready", alice, 1);
    let vote_event = g.comment_added_event(change);
    g.vote(change, "Trybot-Ready", alice, 0);
    let reset_event = g.comment_added_event(change);
    // Delivered newest first, then the older one, then the newest again: the vote is gone now,
    // so the history holds one crossing, run once.
    for e in [&reset_event, &vote_event, &reset_event] {
        let v = deliver(&s, e);
        assert_eq!(v["accepted"], true, "{v}");
    }
    wait_runs(&s, "pre", 1);
    assert!(review_poll(&s).is_empty());

    // Wrong or missing secret, bad bodies, other projects.
    let post = |query: &str, body: &str| {
        s.request(
            reqwest::Method::POST,
            &format!("/api/v1/gerrit/events{query}"),
            None,
        )
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap()
    };
    let ok = serde_json::to_string(&vote_event).unwrap();
    assert_eq!(post("", &ok).status().as_u16(), 401);
    assert_eq!(post("?secret=wrong", &ok).status().as_u16(), 401);
    let r = s
        .request(reqwest::Method::POST, "/api/v1/gerrit/events", None)
        .header("x-slipway-webhook-secret", WEBHOOK)
        .json(&vote_event)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let q = format!("?secret={WEBHOOK}");
    assert_eq!(post(&q, "{not json").status().as_u16(), 400);
    let other =
        json!({"type": "comment-added", "change": {"project": "other/project", "number": change}});
    let v: Value = post(&q, &other.to_string()).json().unwrap();
    assert_eq!(v["accepted"], false);
    assert!(
        !s.log_text().contains(WEBHOOK),
        "the secret reached the log"
    );
    assert!(
        !s.log_text().contains(PASSWORD),
        "the password reached the log"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(runs_of(&s, "pre").len(), 1);
}

#[test]
fn a_new_patchset_cancels_older_runs_and_an_outdated_patchset_gets_no_vote() {
    let g = FakeGerrit::start(BOT, PASSWORD);
    let alice = g.add_account("alice", "Alice Doe", "alice@example.org");
    let p = presubmit_project(&g, "");
    let change = new_change(&p, &g, "main", alice, &[("slow", "")]);
    let s = start(&p);

    g.vote(change, "Trybot-Ready", alice, 1);
    let old = review_poll(&s);
    assert_eq!(old.len(), 1);
    s.wait_status(old[0], &["running"], Duration::from_secs(30));
    // Patch set 2 arrives (webhook): patch set 1's run is cancelled, and votes nothing.
    let ps2 = new_patchset(&p, &g, change, &[("msg.txt", "v2\n")]);
    deliver(&s, &g.patchset_created_event(change));
    let run = s.wait_end(old[0]);
    assert_eq!(run["status"], "cancelled");
    assert_eq!(wait_vote(&s, old[0])["run"]["vote_state"], "none");
    // Votes do not carry over: no run for patch set 2 until someone votes on it.
    assert!(review_poll(&s).is_empty());
    g.vote(change, "Trybot-Ready", alice, 1);
    let new = review_poll(&s);
    assert_eq!(new.len(), 1);
    let review = wait_vote(&s, s.wait_end(new[0])["run_id"].as_i64().unwrap());
    assert_eq!(review["run"]["patchset"], ps2);
    assert_eq!(review["run"]["vote_state"], "posted");

    // A run whose vote cannot go yet (Gerrit answers 503) while patch set 3 arrives: the vote
    // is never posted on the outdated patch set.
    g.fail_reviews(1, FailMode::Before);
    g.vote(change, "Code-Review", alice, 2);
    let cr = review_poll(&s);
    assert_eq!(cr.len(), 1);
    s.wait_end(cr[0]);
    let start = Instant::now();
    while s.json(&format!("/api/v1/runs/{}", cr[0]))["review"]["run"]["vote_attempts"] == 0 {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(50));
    }
    new_patchset(&p, &g, change, &[("msg.txt", "v3\n")]);
    let review = wait_vote(&s, cr[0]);
    assert_eq!(review["run"]["vote_state"], "skipped", "{review}");
    let posted = g.reviews();
    assert_eq!(posted.len(), 1, "only patch set 2's vote: {posted:?}");
    assert_eq!(posted[0].patchset, ps2);
}

#[test]
fn a_failed_run_votes_minus_one_with_its_log_and_5xx_never_makes_a_second_vote() {
    let g = FakeGerrit::start(BOT, PASSWORD);
    let alice = g.add_account("alice", "Alice Doe", "alice@example.org");
    let p = presubmit_project(&g, "");
    let failing = new_change(&p, &g, "main", alice, &[("fail", "")]);
    let s = start(&p);

    // Twice 503 before Gerrit applies anything: retried with backoff, one vote.
    g.fail_reviews(2, FailMode::Before);
    g.vote(failing, "Trybot-Ready", alice, 1);
    let id = review_poll(&s)[0];
    assert_eq!(s.wait_end(id)["status"], "failure");
    let review = wait_vote(&s, id);
    assert_eq!(review["run"]["vote_state"], "posted");
    assert_eq!(review["run"]["vote_attempts"], 3);
    let posted = g.reviews();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].labels.get("Verified"), Some(&-1));
    assert!(
        posted[0].message.contains("FAILURE"),
        "{}",
        posted[0].message
    );
    assert!(posted[0].message.contains("Build check failed"));
    assert!(posted[0].message.contains("unit tests: 3 failed"));

    // Gerrit applies the vote, then answers 503: the retry finds it and does not vote again.
    let passing = new_change(&p, &g, "main", alice, &[("msg.txt", "ok\n")]);
    g.fail_reviews(1, FailMode::After);
    g.vote(passing, "Trybot-Ready", alice, 1);
    let id = review_poll(&s)[0];
    assert_eq!(s.wait_end(id)["status"], "success");
    let review = wait_vote(&s, id);
    assert_eq!(review["run"]["vote_state"], "posted", "{review}");
    let posted: Vec<_> = g
        .reviews()
        .into_iter()
        .filter(|r| r.change == passing)
        .collect();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0].labels.get("Verified"), Some(&1));

    // A patch set whose ref is not in the repository cannot start: a failed run that says
    // why, voted -1 once, and reported once however often it is polled.
    let ghost = g.create_change(PROJECT, "main", "ghost", alice, &"ab".repeat(20));
    g.vote(ghost, "Trybot-Ready", alice, 1);
    let v = s.post_json("/api/v1/review/poll", "trigger", None, 200);
    assert_eq!(v["errors"].as_array().unwrap().len(), 1, "{v}");
    assert!(review_poll(&s).is_empty());
    let runs = s.json("/api/v1/reviews")["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["change"]["change_number"] == ghost)
        .unwrap()["runs"]
        .clone();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    let id = runs[0]["run_id"].as_i64().unwrap();
    let run = s.wait_end(id);
    assert_eq!(run["status"], "failure");
    assert!(
        run["error"].as_str().unwrap().contains("cannot start"),
        "{run}"
    );
    assert_eq!(wait_vote(&s, id)["run"]["vote_state"], "posted");
    let posted: Vec<_> = g
        .reviews()
        .into_iter()
        .filter(|r| r.change == ghost)
        .collect();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0].labels.get("Verified"), Some(&-1));
    assert!(
        posted[0].message.contains("The run failed: cannot start"),
        "{}",
        posted[0].message
    );
}

/// A change whose build script tries to reach every secret and the network. Each attempt
/// prints `ATTACK <name>: blocked` or `ATTACK <name>: ESCAPED ...`.
const ATTACK: &str = r#"#!/bin/sh
P=@PROJECT@
try() {
  name=$1; shift
  if out=$("$@" 2>&1); then echo "ATTACK $name: ESCAPED $(printf '%s' "$out" | head -c 100 | tr '\n' ' ')"; else echo "ATTACK $name: blocked"; fi
}
try gerrit_password cat "$P/tokens/gerrit-password"
try webhook_secret cat "$P/tokens/gerrit-webhook"
try admin_token cat "$P/tokens/admin"
try signing_key cat "$P/tokens/signing-key"
try bucket_credentials cat "$P/tokens/bucket-key"
try state_db cat "$P/.slipway/state.db"
try config cat "$P/slipway.toml"
try env_secrets sh -c 'env | grep -iE "password|secret|token|aws_|gerrit"'
try proc_environ sh -c 'cat /proc/[0-9]*/environ 2>/dev/null | tr "\0" "\n" | grep -iE "password|secret|token"'
try gerrit_http python3 -c "import socket; socket.create_connection(('127.0.0.1', @GERRIT_PORT@), timeout=3)"
try server_http python3 -c "import socket; socket.create_connection(('127.0.0.1', @SERVER_PORT@), timeout=3)"
try control_own_workspace cat msg.txt
try control_visible_folder cat "@VISIBLE@"
echo "attacks done"
"#;

#[test]
fn a_malicious_change_reaches_no_secret_and_no_network() {
    let g = FakeGerrit::start(BOT, PASSWORD);
    let mallory = g.add_account("mallory", "Mallory", "mallory@example.org");
    let p = presubmit_project(&g, "");
    // Secrets a trusted build would use: a signing key and bucket credentials.
    let signing = "-----BEGIN PGP PRIVATE KEY BLOCK-----\nsigning-key-material-4f1c";
    let bucket = "aws-secret-access-key-9d3e27";
    add_secret(&p, "signing-key", signing);
    add_secret(&p, "bucket-key", bucket);
    // The folder holding the project is even shown to sandboxes (read-only): the project's
    // secrets, state and config stay hidden inside it anyway, a file beside it does not.
    let parent = p.path().parent().unwrap().to_path_buf();
    let beside = tempfile::tempdir_in(&parent).unwrap();
    let note = beside.path().join("note.txt");
    std::fs::write(&note, "visible\n").unwrap();
    let cfg = p.path().join("slipway.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[sandbox]\nread_only = [\"{}\"]\n",
        parent.display()
    ));
    std::fs::write(&cfg, text).unwrap();
    let s = start(&p);
    let port = |url: &str| url.rsplit(':').next().unwrap().to_string();
    let script = ATTACK
        .replace("@PROJECT@", &p.path().display().to_string())
        .replace("@VISIBLE@", &note.display().to_string())
        .replace("@GERRIT_PORT@", &port(&g.url()))
        .replace("@SERVER_PORT@", &port(&s.url));
    let change = new_change(
        &p,
        &g,
        "main",
        mallory,
        &[
            ("attack.sh", &script),
            ("msg.txt", "innocent\n"),
            ("fail", ""),
        ],
    );
    g.vote(change, "Trybot-Ready", mallory, 1);
    let id = review_poll(&s)[0];
    assert_eq!(s.wait_end(id)["status"], "failure");
    let log = s
        .get(
            &format!("/api/v1/runs/{id}/builds/check/log"),
            Some(token("viewer")),
        )
        .text()
        .unwrap();
    assert!(log.contains("attacks done"), "{log}");
    let attacks: Vec<&str> = log.lines().filter(|l| l.contains("ATTACK ")).collect();
    assert_eq!(attacks.len(), 13, "{log}");
    for line in &attacks {
        if line.contains("control_") {
            assert!(
                line.contains(": ESCAPED "),
                "the controls must read their files: {line}"
            );
        } else {
            assert!(line.ends_with(": blocked"), "{line}\n{log}");
        }
    }
    wait_vote(&s, id);
    let secrets = [
        PASSWORD,
        WEBHOOK,
        token("admin"),
        "signing-key-material-4f1c",
        bucket,
    ];
    let detail = s.json(&format!("/api/v1/runs/{id}"));
    let mut artifacts = String::new();
    for a in detail["builds"][0]["artifacts"].as_array().unwrap() {
        let sha = a["sha256"].as_str().unwrap();
        artifacts.push_str(
            &s.get(&format!("/api/v1/artifacts/{sha}"), None)
                .text()
                .unwrap(),
        );
    }
    let messages: String = g.reviews().iter().map(|r| r.message.clone()).collect();
    assert!(messages.contains("FAILURE"), "{messages}");
    for secret in secrets {
        for (what, text) in [
            ("log", &log),
            ("artifacts", &artifacts),
            ("Gerrit message", &messages),
            ("server log", &s.log_text()),
        ] {
            assert!(!text.contains(secret), "a secret reached the {what}");
        }
    }
}

/// The example's `presubmit` (Trybot-Ready +1) and `presubmit-cr` (Code-Review +2) jobs, end to
/// end from a change in the fake Gerrit: untrusted, sandboxed, signing and publishing bypassed,
/// the image booted by the LXD test, Verified +1 voted on the change by each.
#[test]
fn the_examples_presubmit_jobs_run_end_to_end_from_a_gerrit_change() {
    let g = FakeGerrit::start(BOT, PASSWORD);
    let alice = g.add_account("alice", "Alice Doe", "alice@example.org");
    let bob = g.add_account("bob", "Bob Roe", "bob@example.org");
    let p = Project {
        dir: tempfile::tempdir().unwrap(),
    };
    common::init_example(p.path());
    common::server::add_test_tokens(p.path());
    let cfg = p.path().join("slipway.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    // No continuous runs in the way (four image builds): guest_tools is not the subject here.
    text = text.replace("trigger = \"continuous\"", "trigger = \"manual\"");
    text.push_str(&format!("\n{}", review_section(&g)));
    std::fs::write(&cfg, text).unwrap();
    add_secret(&p, "gerrit-password", PASSWORD);
    add_secret(&p, "gerrit-webhook", WEBHOOK);

    let repo = p.path().join("repo");
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap_or_default();
    let change = {
        let probe = g.create_change(PROJECT, "main", "probe", alice, &"0".repeat(40));
        g.abandon(probe);
        let number = probe + 1;
        let sha = patchset_commit(
            &p,
            "main",
            &[("README.md", &format!("{readme}\nA presubmit change.\n"))],
            &g.ref_name(number, 1),
        );
        assert_eq!(
            g.create_change(PROJECT, "main", "Document presubmit", alice, &sha),
            number
        );
        number
    };
    let s = start(&p);
    g.vote(change, "Trybot-Ready", alice, 1);
    g.vote(change, "Code-Review", bob, 2);
    let queued = review_poll(&s);
    assert_eq!(queued.len(), 2, "{queued:?}");
    for id in queued {
        let run = s.wait_status(
            id,
            &["success", "failure", "cancelled", "interrupted"],
            Duration::from_secs(600),
        );
        assert_eq!(run["status"], "success", "run {id}: {}", s.log_text());
        assert_eq!(run["flow"], "presubmit");
        let detail = s.json(&format!("/api/v1/runs/{id}"));
        let builds: Vec<&str> = detail["builds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap())
            .collect();
        assert!(
            builds.contains(&"lxd_test") && !builds.contains(&"apt_signer"),
            "{builds:?}"
        );
        assert_eq!(wait_vote(&s, id)["run"]["vote_state"], "posted");
    }
    let posted = g.reviews();
    assert_eq!(posted.len(), 2, "{posted:?}");
    assert!(posted.iter().all(|r| r.labels.get("Verified") == Some(&1)));
}
