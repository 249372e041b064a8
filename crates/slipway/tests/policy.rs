//! The release policy on the example, end to end with the real CLI: results in every order
//! and shape, a hold, soak, automatic promotion read by real apt and lxc, bvt-cq failing twice
//! on production (rollback, candidate marked bad, the webhook told once), and an evaluation
//! killed in the middle of its promotion (the next one finishes it, nothing half done).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::Value;

/// A webhook endpoint on 127.0.0.1: every POST body it received.
fn webhook() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let bodies = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            bodies
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into());
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        }
    });
    (url, got)
}

fn junit(dir: &Path, name: &str, failing: Option<&str>) -> String {
    let case = match failing {
        Some(c) => format!(
            "<testcase classname=\"crostini\" name=\"{c}\"><failure message=\"boom\"/></testcase>"
        ),
        None => "<testcase classname=\"crostini\" name=\"Basic\"/>".into(),
    };
    let path = dir.join(format!("{name}.xml"));
    std::fs::write(
        &path,
        format!(
            "<testsuites><testsuite name=\"{name}\" tests=\"1\">{case}</testsuite></testsuites>"
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// A Tast results.json: one test, failing with `reason` if given, that ended at `end`.
fn tast(dir: &Path, file: &str, reason: Option<&str>, end: &str) -> String {
    let errors = match reason {
        Some(r) => format!(
            "[{{\"time\":\"{end}\",\"reason\":\"{r}\",\"file\":\"basic.go\",\"line\":7,\"stack\":\"\"}}]"
        ),
        None => "null".into(),
    };
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!("[{{\"name\":\"crostini.Basic\",\"errors\":{errors},\"skipReason\":\"\",\"start\":\"{end}\",\"end\":\"{end}\"}}]"),
    )
    .unwrap();
    path.display().to_string()
}

/// Records a report about a target (`--candidate` or `--release` ID) under `suite`;
/// `report` is `--junit FILE` or `--tast FILE`.
fn record(ex: &Path, target: (&str, i64), suite: &str, report: (&str, &str)) -> Value {
    let id = target.1.to_string();
    let all = [
        "suite", "record", target.0, &id, "--suite", suite, report.0, report.1, "--json",
    ];
    let out = slipway(ex, &all);
    ok(&out);
    json(&out)
}

/// `slipway why` for one candidate: (state, reasons).
fn why(ex: &Path, candidate: i64) -> (String, Vec<String>) {
    let v = json(&slipway(
        ex,
        &[
            "why",
            "--milestone",
            "74",
            "--candidate",
            &candidate.to_string(),
            "--json",
        ],
    ));
    let c = &v[0];
    (
        c["state"].as_str().unwrap().to_string(),
        c["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect(),
    )
}

/// The release history: (kind, candidate, by), newest first.
fn history(ex: &Path) -> Vec<(String, i64, String)> {
    json(&slipway(ex, &["releases", "--milestone", "74", "--json"]))
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["candidate_id"].as_i64().unwrap(),
                r["promoted_by"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn run_candidate(ex: &Path) -> i64 {
    let out = json(&slipway(
        ex,
        &["run", "guest_tools", "--milestone", "74", "--json"],
    ));
    assert_eq!(out["status"], "success");
    out["candidate"]["id"].as_i64().unwrap()
}

fn set_policy(ex: &Path, from: &str, to: &str) {
    let cfg = ex.join("slipway.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains(from), "{from} not in the config");
    std::fs::write(&cfg, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn results_drive_promotion_hold_soak_and_bvt_cq_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("ex");
    init_example(&ex);
    let (hook, received) = webhook();
    set_policy(&ex, "auto = false", "auto = true");
    let cfg = ex.join("slipway.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!("\n[notify]\nurl = \"{hook}\"\n"));
    std::fs::write(&cfg, text).unwrap();
    let reports = dir.path();

    // Candidate 1: lxd_test passed in its run; pfq missing.
    let c1 = run_candidate(&ex);
    assert_eq!(
        why(&ex, c1),
        ("waiting".into(), vec!["missing suite pfq".to_string()])
    );
    assert!(history(&ex).is_empty());
    // A failing pfq (Tast JSON), then a passing one that ran EARLIER but arrives later: blocked.
    let fail = tast(
        reports,
        "pfq-fail.json",
        Some("container did not start"),
        "2026-11-26T10:10:00Z",
    );
    let v = record(&ex, ("--candidate", c1), "pfq", ("--tast", &fail));
    assert_eq!(v["status"], "failed");
    let early = tast(reports, "pfq-early.json", None, "2026-11-26T10:00:00Z");
    record(&ex, ("--candidate", c1), "pfq", ("--tast", &early));
    let (state, reasons) = why(&ex, c1);
    assert_eq!(state, "blocked");
    assert!(
        reasons[0].contains("suite pfq failed: crostini.Basic"),
        "{reasons:?}"
    );
    // The same failing report again is a duplicate: recorded once, nothing changes.
    let v = record(&ex, ("--candidate", c1), "pfq", ("--tast", &fail));
    assert_eq!(v["duplicate"], true);
    // A newer pass: promoted at once, by the policy, read by apt and lxc.
    let late = tast(reports, "pfq-late.json", None, "2026-11-26T10:20:00Z");
    record(&ex, ("--candidate", c1), "pfq", ("--tast", &late));
    assert_eq!(history(&ex), vec![("promote".into(), c1, "policy".into())]);
    assert_eq!(why(&ex, c1).0, "promoted");
    let remote = StreamsRemote::serve(&ex.join("var/buckets/cros-containers/74"), dir.path());
    production_verifies(&ex, "74.0.1", Some(&remote));

    // Held: candidate 2 passes everything but waits for the hold to be lifted.
    ok(&slipway(
        &ex,
        &["hold", "--milestone", "74", "--reason", "lab maintenance"],
    ));
    commit_version(&ex.join("repo"), "74.0.2");
    let c2 = run_candidate(&ex);
    record(
        &ex,
        ("--candidate", c2),
        "pfq",
        ("--junit", &junit(reports, "pfq", None)),
    );
    let (state, reasons) = why(&ex, c2);
    assert_eq!(state, "held");
    assert!(reasons[0].contains("lab maintenance"), "{reasons:?}");
    assert_eq!(history(&ex).len(), 1);
    // A result for the older candidate changes nothing for the newer one.
    record(
        &ex,
        ("--candidate", c1),
        "pfq",
        ("--junit", &junit(reports, "pfq-old", Some("Sftp"))),
    );
    ok(&slipway(&ex, &["unhold", "--milestone", "74"]));
    ok(&slipway(&ex, &["release", "evaluate", "--milestone", "74"]));
    assert_eq!(history(&ex)[0], ("promote".into(), c2, "policy".into()));
    production_verifies(&ex, "74.0.2", Some(&remote));
    // The candidates listing carries the promotion state.
    let list = json(&slipway(
        &ex,
        &["candidates", "--milestone", "74", "--json"],
    ));
    assert_eq!(list[0]["promotion"]["state"], "promoted");
    assert_eq!(list[1]["promotion"]["state"], "promoted", "released before");

    // bvt-cq on production: one failure is not enough, two in a row roll back, once.
    let release2 = json(&slipway(&ex, &["releases", "--milestone", "74", "--json"]))[0]["id"]
        .as_i64()
        .unwrap();
    record(
        &ex,
        ("--release", release2),
        "bvt-cq",
        (
            "--tast",
            &tast(
                reports,
                "bvt1.json",
                Some("sommelier crashed"),
                "2026-11-26T11:00:00Z",
            ),
        ),
    );
    assert_eq!(history(&ex)[0].1, c2);
    record(
        &ex,
        ("--release", release2),
        "bvt-cq",
        (
            "--tast",
            &tast(
                reports,
                "bvt2.json",
                Some("sommelier crashed"),
                "2026-11-26T11:05:00Z",
            ),
        ),
    );
    let h = history(&ex);
    assert_eq!(h[0], ("rollback".into(), c1, "policy".into()), "{h:?}");
    assert_eq!(h.len(), 3);
    let (state, reasons) = why(&ex, c2);
    assert_eq!(state, "blocked");
    assert!(reasons[0].starts_with("marked bad"), "{reasons:?}");
    production_verifies(&ex, "74.0.1", Some(&remote));
    // Evaluating again does nothing more: no second rollback, no second notification.
    ok(&slipway(&ex, &["release", "evaluate", "--milestone", "74"]));
    assert_eq!(history(&ex).len(), 3);
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let body: Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(body["event"], "rollback");
    assert_eq!(body["candidate_id"], c2);
    assert_eq!(body["to_candidate_id"], c1);

    // Soak: candidate 3 passes but must stay an hour in staging.
    set_policy(&ex, "soak = \"0s\"", "soak = \"1h\"");
    commit_version(&ex.join("repo"), "74.0.3");
    let c3 = run_candidate(&ex);
    record(
        &ex,
        ("--candidate", c3),
        "pfq",
        ("--junit", &junit(reports, "pfq3", None)),
    );
    let (state, reasons) = why(&ex, c3);
    assert_eq!(state, "waiting");
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("soak:") && r.ends_with("left of 1h")),
        "{reasons:?}"
    );
    assert_eq!(history(&ex).len(), 3);

    // An evaluation killed in the middle of its promotion: the next finishes it, and
    // production serves one candidate, the one the records name.
    set_policy(&ex, "soak = \"1h\"", "soak = \"0s\"");
    let killed = slipway_cmd(&ex, &["release", "evaluate", "--milestone", "74"])
        .env("SLIPWAY_FAULT_PROMOTE", "object:3")
        .output()
        .unwrap();
    assert_eq!(killed.status.signal(), Some(9), "{}", stderr(&killed));
    assert_eq!(
        history(&ex).len(),
        3,
        "no release recorded for a half promotion"
    );
    ok(&slipway(&ex, &["release", "evaluate", "--milestone", "74"]));
    assert_eq!(history(&ex)[0], ("promote".into(), c3, "policy".into()));
    production_verifies(&ex, "74.0.3", Some(&remote));
}

/// The service: a lab reports through `POST /api/v1/results` with a reporter token, and the
/// server promotes as the policy says; the policy endpoint explains; holds through the API.
#[test]
fn the_service_evaluates_after_a_lab_reports_and_holds_through_the_api() {
    use common::server::{Server, add_test_tokens, token};
    let project = Project {
        dir: tempfile::tempdir().unwrap(),
    };
    let ex = project.path().to_path_buf();
    init_example(&ex);
    set_policy(&ex, "auto = false", "auto = true");
    // One milestone's continuous run, not four: the server's first poll makes candidate 1.
    set_policy(&ex, "branches = \"active\"", "branches = [\"main\"]");
    add_test_tokens(&ex);
    let s = Server::start(&project);
    let start = std::time::Instant::now();
    let c1 = loop {
        let cands = s.json("/api/v1/milestones/74/candidates");
        if let Some(c) = cands.as_array().unwrap().first() {
            break c["id"].as_i64().unwrap();
        }
        assert!(
            start.elapsed().as_secs() < 300,
            "no candidate:\n{}",
            s.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    };

    let view = s.json("/api/v1/milestones/74/policy");
    assert_eq!(view["policy"]["auto_here"], true);
    assert_eq!(view["evaluation"]["candidates"][0]["state"], "waiting");
    // A viewer cannot report; a reporter can.
    let body = serde_json::json!({
        "candidate": c1, "suite": "pfq", "format": "junit",
        "report": "<testsuite name=\"pfq\" tests=\"1\"><testcase name=\"Basic\"/></testsuite>",
    });
    assert_eq!(
        s.post("/api/v1/results", Some(token("viewer")), Some(&body))
            .status()
            .as_u16(),
        403
    );
    // Hold first: the report is recorded, nothing is promoted.
    let held = s.post_json(
        "/api/v1/milestones/74/hold",
        "releaser",
        Some(&serde_json::json!({"reason": "waiting for the lab"})),
        200,
    );
    assert_eq!(held["hold"]["reason"], "waiting for the lab");
    s.post_json("/api/v1/results", "reporter", Some(&body), 201);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let cands = s.json("/api/v1/milestones/74/candidates");
    assert_eq!(cands[0]["promotion"]["state"], "held", "{cands}");
    assert!(
        s.json("/api/v1/milestones/74/releases")
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Unhold: the server evaluates and promotes as `policy`.
    s.post_json("/api/v1/milestones/74/unhold", "releaser", None, 200);
    let start = std::time::Instant::now();
    loop {
        let releases = s.json("/api/v1/milestones/74/releases");
        if let Some(r) = releases.as_array().unwrap().first() {
            assert_eq!(r["candidate_id"], c1);
            assert_eq!(r["promoted_by"], "policy");
            break;
        }
        assert!(
            start.elapsed().as_secs() < 120,
            "no promotion:\n{}",
            s.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let view = s.json("/api/v1/milestones/74/policy");
    assert_eq!(view["evaluation"]["candidates"][0]["state"], "promoted");
    let kinds: Vec<&str> = view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["promote", "unhold", "hold"]);
    // Releasers only.
    assert_eq!(
        s.post(
            "/api/v1/milestones/74/evaluate",
            Some(token("trigger")),
            None
        )
        .status()
        .as_u16(),
        403
    );
    let report = s.post_json("/api/v1/milestones/74/evaluate", "releaser", None, 200);
    assert!(report["promoted"].is_null());
}
