//! The fake Gerrit (`common/gerrit.rs`) behaves like Gerrit's REST API and stream events, as far
//! as Slipway's presubmit uses them: the XSSI guard, Basic auth, queries with paging, label
//! shapes, change messages, review posting with its refusals, fault injection, ref names.

mod common;

use std::time::{Duration, Instant};

use common::gerrit::{FailMode, FakeGerrit, change_ref};
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

const USER: &str = "slipway-bot";
const PASSWORD: &str = "http-password-5e1c";
const PROJECT: &str = "containers/guest-tools";
const SHA1: &str = "1111111111111111111111111111111111111111";
const SHA2: &str = "2222222222222222222222222222222222222222";

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

fn get(g: &FakeGerrit, path: &str) -> Response {
    client()
        .get(format!("{}{path}", g.url()))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .expect("GET")
}

fn review(g: &FakeGerrit, change: &str, revision: &str, body: &Value) -> Response {
    client()
        .post(format!(
            "{}/a/changes/{change}/revisions/{revision}/review",
            g.url()
        ))
        .basic_auth(USER, Some(PASSWORD))
        .json(body)
        .send()
        .expect("POST review")
}

/// The body of a 200 JSON answer, after Gerrit's XSSI guard line.
fn gerrit_json(r: Response) -> Value {
    let status = r.status();
    assert_eq!(status, StatusCode::OK, "{}", r.text().unwrap_or_default());
    let ct = r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(ct.starts_with("application/json"), "{ct}");
    let body = r.text().expect("body");
    let json = body
        .strip_prefix(")]}'\n")
        .unwrap_or_else(|| panic!("no XSSI guard: {body}"));
    serde_json::from_str(json).expect("JSON after the guard")
}

fn error(r: Response, status: StatusCode) -> String {
    assert_eq!(r.status(), status);
    let ct = r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    r.text().expect("body")
}

/// A server with one user account and one change of `PROJECT` on `main`.
fn with_change() -> (FakeGerrit, i64, u32) {
    let g = FakeGerrit::start(USER, PASSWORD);
    let dev = g.add_account("dev", "Dev Eloper", "dev@example.org");
    let c = g.create_change(PROJECT, "main", "Add guest agent", dev, SHA1);
    (g, dev, c)
}

fn messages(g: &FakeGerrit, c: u32) -> Vec<Value> {
    g.change_json(c)["messages"]
        .as_array()
        .expect("messages")
        .clone()
}

fn last_message(g: &FakeGerrit, c: u32) -> Value {
    messages(g, c).last().expect("a message").clone()
}

/// The `all` entry of `account` for `label`.
fn approval(change: &Value, label: &str, account: i64) -> Option<Value> {
    change["labels"][label]["all"]
        .as_array()
        .expect("all")
        .iter()
        .find(|a| a["_account_id"] == account)
        .cloned()
}

#[test]
fn xssi_guard_and_basic_auth() {
    let (g, _, c) = with_change();
    let v = gerrit_json(get(&g, &format!("/a/changes/{c}")));
    assert_eq!(v["_number"], c);

    let url = format!("{}/a/changes/{c}", g.url());
    let none = client().get(&url).send().expect("GET");
    assert!(
        none.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .starts_with("Basic")
    );
    assert_eq!(error(none, StatusCode::UNAUTHORIZED), "Unauthorized\n");
    let wrong = client()
        .get(&url)
        .basic_auth(USER, Some("nope"))
        .send()
        .expect("GET");
    error(wrong, StatusCode::UNAUTHORIZED);
    let other = client()
        .get(&url)
        .basic_auth("dev", Some(PASSWORD))
        .send()
        .expect("GET");
    error(other, StatusCode::UNAUTHORIZED);
    // Outside /a/ nothing is served, even with credentials.
    let anon = client()
        .get(format!("{}/changes/{c}", g.url()))
        .basic_auth(USER, Some(PASSWORD))
        .send();
    error(anon.expect("GET"), StatusCode::NOT_FOUND);

    let path = format!("/a/changes/{c}");
    let reqs = g.requests();
    assert_eq!(reqs.len(), 5);
    assert!(
        reqs[..4].iter().all(|(m, p)| m == "GET" && *p == path),
        "{reqs:?}"
    );
}

#[test]
fn change_ids_number_project_and_triplet() {
    let (g, dev, c) = with_change();
    let other = g.create_change("other", "main", "Other", dev, SHA2);
    let change_id = g.change_json(c)["change_id"]
        .as_str()
        .expect("change_id")
        .to_string();
    assert!(
        change_id.starts_with('I') && change_id.len() == 41,
        "{change_id}"
    );
    let info = g.change_json(c);
    assert_eq!(info["id"], format!("containers%2Fguest-tools~{c}"));
    assert_eq!(
        info["triplet_id"],
        format!("containers%2Fguest-tools~main~{change_id}")
    );
    for id in [
        c.to_string(),
        format!("containers%2Fguest-tools~{c}"),
        format!("containers%2Fguest-tools~main~{change_id}"),
        format!("containers%2Fguest-tools~refs%2Fheads%2Fmain~{change_id}"),
    ] {
        assert_eq!(
            gerrit_json(get(&g, &format!("/a/changes/{id}")))["_number"],
            c,
            "{id}"
        );
        assert_eq!(
            gerrit_json(get(&g, &format!("/a/changes/{id}/detail")))["_number"],
            c,
            "{id}"
        );
    }
    assert_eq!(
        error(get(&g, "/a/changes/99"), StatusCode::NOT_FOUND),
        "Not found: 99\n"
    );
    // A number under the wrong project is another change's id, not this one's.
    let wrong = get(&g, &format!("/a/changes/containers%2Fguest-tools~{other}"));
    assert_eq!(
        error(wrong, StatusCode::NOT_FOUND),
        format!("Not found: containers/guest-tools~{other}\n")
    );
    let bad_option = get(&g, &format!("/a/changes/{c}?o=SUBMITTABLE"));
    assert!(error(bad_option, StatusCode::BAD_REQUEST).contains("SUBMITTABLE"));
}

#[test]
fn query_filters_sorts_and_pages() {
    let g = FakeGerrit::start(USER, PASSWORD);
    let dev = g.add_account("dev", "Dev", "dev@example.org");
    let numbers: Vec<u32> = (0..5)
        .map(|i| g.create_change(PROJECT, "main", &format!("c{i}"), dev, SHA1))
        .collect();
    let on_beta = g.create_change(PROJECT, "beta", "beta", dev, SHA1);
    let elsewhere = g.create_change("other", "main", "other", dev, SHA1);
    g.abandon(numbers[1]);
    // A vote makes numbers[0] the most recently updated change.
    g.vote(numbers[0], "Code-Review", dev, 1);

    let query = |q: &str, extra: &str| -> Value {
        let q: String = form_urlencoded::byte_serialize(q.as_bytes()).collect();
        gerrit_json(get(&g, &format!("/a/changes/?q={q}{extra}")))
    };
    let numbers_of = |v: &Value| -> Vec<u64> {
        v.as_array()
            .expect("list")
            .iter()
            .map(|c| c["_number"].as_u64().expect("number"))
            .collect()
    };
    let open_main = query(&format!("project:{PROJECT} status:open branch:main"), "");
    let n = |i: usize| numbers[i] as u64;
    assert_eq!(numbers_of(&open_main), vec![n(0), n(4), n(3), n(2)]);
    assert!(
        open_main
            .as_array()
            .expect("list")
            .iter()
            .all(|c| c.get("_more_changes").is_none())
    );

    let page1 = query(&format!("project:{PROJECT} status:open"), "&n=2");
    assert_eq!(numbers_of(&page1), vec![n(0), on_beta as u64]);
    assert_eq!(page1[1]["_more_changes"], true);
    assert!(page1[0].get("_more_changes").is_none());
    let page2 = query(&format!("project:{PROJECT} status:open"), "&n=2&S=2");
    assert_eq!(numbers_of(&page2), vec![n(4), n(3)]);
    assert_eq!(page2[1]["_more_changes"], true);
    let page3 = query(&format!("project:{PROJECT} status:open"), "&n=2&S=4");
    assert_eq!(numbers_of(&page3), vec![n(2)]);
    assert!(page3[0].get("_more_changes").is_none());
    assert_eq!(numbers_of(&query("status:abandoned", "")), vec![n(1)]);
    assert_eq!(
        numbers_of(&query("project:other", "")),
        vec![elsewhere as u64]
    );

    // after: is inclusive, with Gerrit's own timestamp as written in `updated`.
    let updated = g.change_json(numbers[3])["updated"]
        .as_str()
        .expect("updated")
        .to_string();
    let after = query(
        &format!("project:{PROJECT} status:open after:\"{updated}\""),
        "",
    );
    let beta = on_beta as u64;
    assert_eq!(numbers_of(&after), vec![n(0), beta, n(4), n(3)]);
    let since = query(&format!("project:{PROJECT} since:\"{updated}\""), "");
    assert_eq!(numbers_of(&since), vec![n(0), n(1), beta, n(4), n(3)]);
    let today = &updated[..10];
    assert_eq!(
        numbers_of(&query(&format!("project:other after:{today}"), "")),
        vec![elsewhere as u64]
    );
    assert_eq!(query("after:\"2999-01-01 00:00:00\"", ""), json!([]));

    for bad in [
        "message:foo",
        "owner:self",
        "(status:open OR status:merged)",
        "after:yesterday",
        "status:weird",
    ] {
        let q: String = form_urlencoded::byte_serialize(bad.as_bytes()).collect();
        let msg = error(
            get(&g, &format!("/a/changes/?q={q}")),
            StatusCode::BAD_REQUEST,
        );
        assert!(!msg.trim().is_empty(), "{bad}");
    }
    error(
        get(&g, "/a/changes/?q=status:open&n=many"),
        StatusCode::BAD_REQUEST,
    );
    error(
        get(&g, "/a/changes/?q=status:open&o=BOGUS"),
        StatusCode::BAD_REQUEST,
    );
}

#[test]
fn options_shape_labels_revisions_accounts() {
    let (g, dev, c) = with_change();
    let reviewer = g.add_account("rev", "Re Viewer", "rev@example.org");
    g.vote(c, "Trybot-Ready", reviewer, 1);
    g.vote(c, "Code-Review", dev, -1);

    let plain = gerrit_json(get(&g, &format!("/a/changes/{c}")));
    assert_eq!(plain["owner"], json!({"_account_id": dev}));
    for absent in ["labels", "revisions", "current_revision", "messages"] {
        assert!(plain.get(absent).is_none(), "{absent}");
    }
    let summary = gerrit_json(get(&g, &format!("/a/changes/{c}?o=LABELS")));
    assert_eq!(
        summary["labels"]["Trybot-Ready"]["approved"],
        json!({"_account_id": reviewer})
    );
    assert_eq!(
        summary["labels"]["Code-Review"]["disliked"],
        json!({"_account_id": dev})
    );
    assert!(summary["labels"]["Trybot-Ready"].get("all").is_none());

    let q = "?o=DETAILED_LABELS&o=DETAILED_ACCOUNTS&o=CURRENT_REVISION&o=MESSAGES";
    let v = gerrit_json(get(&g, &format!("/a/changes/{c}{q}")));
    assert_eq!(v["owner"]["username"], "dev");
    assert_eq!(v["owner"]["email"], "dev@example.org");
    let tr = approval(&v, "Trybot-Ready", reviewer).expect("reviewer in all");
    assert_eq!(tr["value"], 1);
    assert_eq!(tr["name"], "Re Viewer");
    assert_eq!(tr["permitted_voting_range"], json!({"min": 0, "max": 1}));
    assert!(tr["date"].is_string());
    // Every reviewer is listed for every label; without a vote, value 0 and no date.
    let none = approval(&v, "Verified", reviewer).expect("reviewer in Verified.all");
    assert_eq!(none["value"], 0);
    assert!(none.get("date").is_none());
    assert_eq!(approval(&v, "Code-Review", dev).expect("dev")["value"], -1);
    assert_eq!(v["labels"]["Code-Review"]["values"]["-2"], "Code-Review-2");
    assert_eq!(v["labels"]["Code-Review"]["values"][" 0"], "No score");
    assert_eq!(v["labels"]["Verified"]["default_value"], 0);
    assert_eq!(v["current_revision"], SHA1);
    let rev = &v["revisions"][SHA1];
    assert_eq!(rev["_number"], 1);
    assert_eq!(rev["ref"], format!("refs/changes/0{c}/{c}/1"));
    assert_eq!(rev["uploader"]["_account_id"], dev);

    g.new_patchset(c, SHA2);
    let current = gerrit_json(get(&g, &format!("/a/changes/{c}?o=CURRENT_REVISION")));
    assert_eq!(current["current_revision"], SHA2);
    assert_eq!(current["revisions"].as_object().expect("map").len(), 1);
    let all = gerrit_json(get(&g, &format!("/a/changes/{c}?o=ALL_REVISIONS")));
    assert_eq!(all["revisions"].as_object().expect("map").len(), 2);
    assert_eq!(all["revisions"][SHA1]["_number"], 1);
    // The detail view implies labels, accounts and messages.
    let detail = gerrit_json(get(&g, &format!("/a/changes/{c}/detail")));
    assert!(detail["labels"]["Verified"]["all"].is_array());
    assert!(detail["messages"].is_array());
    assert_eq!(detail["owner"]["username"], "dev");
}

#[test]
fn messages_for_votes_removals_and_patch_sets() {
    let (g, dev, c) = with_change();
    let rev = g.add_account("rev", "Re Viewer", "rev@example.org");
    let first = &messages(&g, c)[0];
    assert_eq!(first["message"], "Uploaded patch set 1.");
    assert_eq!(first["_revision_number"], 1);

    g.vote(c, "Trybot-Ready", dev, 1);
    let m = last_message(&g, c);
    assert_eq!(m["message"], "Patch Set 1: Trybot-Ready+1");
    assert_eq!(m["author"]["_account_id"], dev);
    assert!(m.get("tag").is_none());

    // A reset to 0 keeps the reviewer, with value 0.
    g.vote(c, "Trybot-Ready", dev, 0);
    assert_eq!(last_message(&g, c)["message"], "Patch Set 1: -Trybot-Ready");
    let tr = approval(&g.change_json(c), "Trybot-Ready", dev).expect("still a reviewer");
    assert_eq!(tr["value"], 0);
    assert!(tr.get("date").is_none());

    // DeleteVote by someone else: an account template, listed in accounts_in_message.
    g.vote(c, "Trybot-Ready", dev, 1);
    g.delete_vote(c, "Trybot-Ready", dev, rev);
    let m = last_message(&g, c);
    assert_eq!(
        m["message"],
        format!("Removed Trybot-Ready+1 by <GERRIT_ACCOUNT_{dev}>\n")
    );
    assert_eq!(m["author"]["_account_id"], rev);
    assert_eq!(m["accounts_in_message"][0]["_account_id"], dev);
    assert_eq!(m["tag"], "autogenerated:gerrit:deleteVote");
    assert_eq!(
        approval(&g.change_json(c), "Trybot-Ready", dev).expect("reviewer")["value"],
        0
    );

    g.vote(c, "Code-Review", rev, -2);
    assert_eq!(last_message(&g, c)["message"], "Patch Set 1: Code-Review-2");
    // The same value again changes nothing and writes nothing.
    let before = messages(&g, c).len();
    g.vote(c, "Code-Review", rev, -2);
    assert_eq!(messages(&g, c).len(), before);

    g.vote(c, "Trybot-Ready", dev, 1);
    assert_eq!(g.new_patchset(c, SHA2), 2);
    assert_eq!(g.current_patchset(c), 2);
    let m = last_message(&g, c);
    assert_eq!(m["message"], "Uploaded patch set 2.");
    assert_eq!(m["_revision_number"], 2);
    let v = g.change_json(c);
    for (label, who) in [("Trybot-Ready", dev), ("Code-Review", rev)] {
        let a = approval(&v, label, who).expect("reviewers stay");
        assert_eq!(a["value"], 0, "{label} did not carry over");
    }
    g.vote(c, "Verified", rev, 1);
    assert_eq!(last_message(&g, c)["message"], "Patch Set 2: Verified+1");
}

#[test]
fn review_post_applies_votes_message_and_tag() {
    let (g, _, c) = with_change();
    let bot = g.bot_account();
    let updated_before = g.change_json(c)["updated"]
        .as_str()
        .expect("updated")
        .to_string();
    let body = json!({"message": "Build passed: http://slipway/runs/7", "labels": {"Verified": 1},
        "tag": "autogenerated:slipway", "notify": "OWNER", "omit_duplicate_comments": true});
    let result = gerrit_json(review(&g, &c.to_string(), "current", &body));
    assert_eq!(result, json!({"labels": {"Verified": 1}}));

    let v = g.change_json(c);
    let a = approval(&v, "Verified", bot).expect("bot voted");
    assert_eq!(a["value"], 1);
    assert_eq!(a["tag"], "autogenerated:slipway");
    assert_eq!(a["username"], USER);
    assert!(v["updated"].as_str().expect("updated") > updated_before.as_str());
    let m = last_message(&g, c);
    assert_eq!(
        m["message"],
        "Patch Set 1: Verified+1\n\nBuild passed: http://slipway/runs/7"
    );
    assert_eq!(m["tag"], "autogenerated:slipway");
    assert_eq!(m["_revision_number"], 1);
    assert_eq!(m["author"]["_account_id"], bot);

    let reviews = g.reviews();
    assert_eq!(reviews.len(), 1);
    assert_eq!(
        (
            reviews[0].change,
            reviews[0].patchset,
            reviews[0].revision.as_str()
        ),
        (c, 1, SHA1)
    );
    assert_eq!(reviews[0].labels.get("Verified"), Some(&1));
    assert_eq!(reviews[0].tag.as_deref(), Some("autogenerated:slipway"));

    // By sha, patch set number and project~number; two labels in one message, sorted.
    let two = json!({"labels": {"Verified": -1, "Code-Review": 1}});
    gerrit_json(review(
        &g,
        &format!("containers%2Fguest-tools~{c}"),
        SHA1,
        &two,
    ));
    assert_eq!(
        last_message(&g, c)["message"],
        "Patch Set 1: Code-Review+1 Verified-1"
    );
    gerrit_json(review(
        &g,
        &c.to_string(),
        "1",
        &json!({"message": "  just a note \n"}),
    ));
    assert_eq!(
        last_message(&g, c)["message"],
        "Patch Set 1:\n\njust a note"
    );
    assert_eq!(g.reviews().len(), 3);
    let req = g.requests().last().expect("request").clone();
    assert_eq!(
        req,
        (
            "POST".to_string(),
            format!("/a/changes/{c}/revisions/1/review")
        )
    );
}

#[test]
fn review_post_refusals() {
    let (g, _, c) = with_change();
    let id = c.to_string();
    let msg = error(
        review(&g, &id, "current", &json!({"labels": {"Lint": 1}})),
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(msg, "label \"Lint\" is not a configured label\n");
    let msg = error(
        review(&g, &id, "current", &json!({"labels": {"Verified": 2}})),
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(msg, "label \"Verified\": 2 is not a valid value\n");
    let msg = error(
        review(&g, &id, "current", &json!({"labels": {"Trybot-Ready": -1}})),
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(msg, "label \"Trybot-Ready\": -1 is not a valid value\n");
    error(
        review(&g, &id, "9", &json!({"message": "x"})),
        StatusCode::NOT_FOUND,
    );
    error(
        review(&g, &id, "deadbeef", &json!({"message": "x"})),
        StatusCode::NOT_FOUND,
    );
    error(
        review(&g, "42", "current", &json!({"message": "x"})),
        StatusCode::NOT_FOUND,
    );
    let raw = client()
        .post(format!(
            "{}/a/changes/{c}/revisions/current/review",
            g.url()
        ))
        .basic_auth(USER, Some(PASSWORD))
        .body("{not json")
        .send()
        .expect("POST");
    error(raw, StatusCode::BAD_REQUEST);

    // A project with its own label set.
    g.set_labels(PROJECT, &[("Verified", -1, 1), ("Presubmit", -1, 1)]);
    error(
        review(&g, &id, "current", &json!({"labels": {"Code-Review": 1}})),
        StatusCode::BAD_REQUEST,
    );
    gerrit_json(review(
        &g,
        &id,
        "current",
        &json!({"labels": {"Presubmit": -1}}),
    ));

    g.abandon(c);
    let msg = error(
        review(&g, &id, "current", &json!({"labels": {"Verified": 1}})),
        StatusCode::CONFLICT,
    );
    assert_eq!(msg, "change is closed\n");
    assert_eq!(g.reviews().len(), 1);
    assert_eq!(last_message(&g, c)["message"], "Abandoned");
}

#[test]
fn review_on_outdated_patch_set() {
    let (g, _, c) = with_change();
    let bot = g.bot_account();
    g.new_patchset(c, SHA2);
    // Gerrit 3.7+: the vote lands on patch set 1 and, with no copy rule, not on the current one.
    gerrit_json(review(
        &g,
        &c.to_string(),
        SHA1,
        &json!({"labels": {"Verified": 1}, "message": "late"}),
    ));
    let m = last_message(&g, c);
    assert_eq!(m["message"], "Patch Set 1: Verified+1\n\nlate");
    assert_eq!(m["_revision_number"], 1);
    let current = approval(&g.change_json(c), "Verified", bot).expect("bot is a reviewer");
    assert_eq!(current["value"], 0);
    assert_eq!(g.reviews()[0].patchset, 1);

    g.refuse_outdated_votes(true);
    let r = review(
        &g,
        &c.to_string(),
        "1",
        &json!({"labels": {"Verified": -1}}),
    );
    assert_eq!(
        error(r, StatusCode::CONFLICT),
        "cannot vote on outdated patch set\n"
    );
    // A message alone is fine on any patch set.
    gerrit_json(review(
        &g,
        &c.to_string(),
        "1",
        &json!({"message": "superseded"}),
    ));
    assert_eq!(last_message(&g, c)["message"], "Patch Set 1:\n\nsuperseded");
    assert_eq!(g.reviews().len(), 2);
}

#[test]
fn failed_review_posts() {
    let (g, _, c) = with_change();
    let id = c.to_string();
    let vote = json!({"labels": {"Verified": 1}, "message": "ok", "tag": "autogenerated:slipway"});
    let messages_before = messages(&g, c).len();

    g.fail_reviews(2, FailMode::Before);
    for _ in 0..2 {
        error(
            review(&g, &id, "current", &vote),
            StatusCode::SERVICE_UNAVAILABLE,
        );
    }
    assert!(g.reviews().is_empty());
    assert_eq!(messages(&g, c).len(), messages_before);
    assert!(approval(&g.change_json(c), "Verified", g.bot_account()).is_none());

    g.fail_reviews(1, FailMode::After);
    error(
        review(&g, &id, "current", &vote),
        StatusCode::SERVICE_UNAVAILABLE,
    );
    assert_eq!(g.reviews().len(), 1, "applied although the answer was 503");
    assert_eq!(
        approval(&g.change_json(c), "Verified", g.bot_account()).expect("vote")["value"],
        1
    );
    assert_eq!(
        last_message(&g, c)["message"],
        "Patch Set 1: Verified+1\n\nok"
    );

    // Failures are used up: the next post succeeds, and a blind retry shows as a second message.
    gerrit_json(review(&g, &id, "current", &vote));
    assert_eq!(g.reviews().len(), 2);
    assert_eq!(last_message(&g, c)["message"], "Patch Set 1:\n\nok");

    let hang = Duration::from_millis(1000);
    g.fail_reviews(1, FailMode::Hang(hang));
    let quick = Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    let started = Instant::now();
    let r = quick
        .post(format!(
            "{}/a/changes/{c}/revisions/current/review",
            g.url()
        ))
        .basic_auth(USER, Some(PASSWORD))
        .json(&json!({"labels": {"Code-Review": 1}}))
        .send();
    assert!(r.expect_err("timed out").is_timeout());
    // The client gave up before the server answered, yet the vote lands.
    assert!(started.elapsed() < hang);
    assert_eq!(g.reviews().len(), 2, "not applied before the hang ends");
    while g.reviews().len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the hung review never landed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stream_events() {
    let (g, dev, c) = with_change();
    let created = g.patchset_created_event(c);
    assert_eq!(created["type"], "patchset-created");
    assert_eq!(created["change"]["number"], c);
    assert_eq!(created["change"]["project"], PROJECT);
    assert_eq!(created["change"]["branch"], "main");
    assert_eq!(created["change"]["status"], "NEW");
    assert_eq!(created["change"]["open"], true);
    assert_eq!(created["change"]["owner"]["username"], "dev");
    assert_eq!(
        created["change"]["url"],
        format!("{}/c/{PROJECT}/+/{c}", g.url())
    );
    assert_eq!(created["patchSet"]["number"], 1);
    assert_eq!(created["patchSet"]["revision"], SHA1);
    assert_eq!(created["patchSet"]["ref"], change_ref(c, 1));
    assert_eq!(created["uploader"]["email"], "dev@example.org");
    assert_eq!(created["refName"], "refs/heads/main");
    assert!(created["eventCreatedOn"].as_i64().expect("seconds") > 1_700_000_000);

    g.vote(c, "Trybot-Ready", dev, 1);
    let e = g.comment_added_event(c);
    assert_eq!(e["type"], "comment-added");
    assert_eq!(e["author"]["username"], "dev");
    assert_eq!(e["comment"], "Patch Set 1: Trybot-Ready+1");
    let approvals = e["approvals"].as_array().expect("approvals");
    let tr = approvals
        .iter()
        .find(|a| a["type"] == "Trybot-Ready")
        .expect("Trybot-Ready");
    assert_eq!(
        tr,
        &json!({"type": "Trybot-Ready", "description": "Trybot-Ready", "value": "1", "oldValue": "0"})
    );
    let cr = approvals
        .iter()
        .find(|a| a["type"] == "Code-Review")
        .expect("every label");
    assert_eq!(
        cr,
        &json!({"type": "Code-Review", "description": "Code-Review", "value": "0"})
    );

    g.new_patchset(c, SHA2);
    let created = g.patchset_created_event(c);
    assert_eq!(created["patchSet"]["number"], 2);
    assert_eq!(created["patchSet"]["ref"], change_ref(c, 2));
    gerrit_json(review(
        &g,
        &c.to_string(),
        "current",
        &json!({"labels": {"Verified": -1}, "message": "failed"}),
    ));
    let e = g.comment_added_event(c);
    assert_eq!(e["author"]["username"], USER);
    assert_eq!(e["patchSet"]["number"], 2);
    assert_eq!(e["comment"], "Patch Set 2: Verified-1\n\nfailed");
    let v = e["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .find(|a| a["type"] == "Verified")
        .cloned();
    assert_eq!(v.expect("Verified")["value"], "-1");
    // A removal is not a comment: the last comment-added stays the review.
    g.vote(c, "Trybot-Ready", dev, 1);
    g.delete_vote(c, "Trybot-Ready", dev, dev);
    assert_eq!(
        g.comment_added_event(c)["comment"],
        "Patch Set 2: Trybot-Ready+1"
    );
}

#[test]
fn ref_names_and_timestamps() {
    assert_eq!(change_ref(1, 1), "refs/changes/01/1/1");
    assert_eq!(change_ref(123, 1), "refs/changes/23/123/1");
    assert_eq!(change_ref(100, 3), "refs/changes/00/100/3");
    let g = FakeGerrit::start(USER, PASSWORD);
    let dev = g.add_account("dev", "Dev", "dev@example.org");
    assert_eq!(dev, 1_000_001);
    g.set_next_change_number(123);
    let c = g.create_change(PROJECT, "main", "s", dev, SHA1);
    assert_eq!(c, 123);
    assert_eq!(g.ref_name(c, 1), "refs/changes/23/123/1");
    assert_eq!(
        g.change_json(c)["revisions"][SHA1]["ref"],
        "refs/changes/23/123/1"
    );

    // Strictly increasing, in Gerrit's format, however fast the mutations come.
    let mut last = g.change_json(c)["updated"]
        .as_str()
        .expect("updated")
        .to_string();
    for i in 0..20 {
        g.vote(c, "Code-Review", dev, if i % 2 == 0 { 1 } else { -1 });
        let now = g.change_json(c)["updated"]
            .as_str()
            .expect("updated")
            .to_string();
        assert!(now > last, "{now} after {last}");
        assert_eq!(now.len(), "2026-11-26 09:59:32.126000000".len(), "{now}");
        assert_eq!(&now[10..11], " ");
        last = now;
    }
}
