//! A fake Gerrit for presubmit tests: the REST endpoints Slipway uses (change queries, one change,
//! posting a review) in the JSON shapes Gerrit documents (rest-api-changes: ChangeInfo,
//! RevisionInfo, LabelInfo, ApprovalInfo, ChangeMessageInfo, AccountInfo, ReviewInput,
//! ReviewResult), and the stream-events JSON the webhooks plugin posts (`comment-added`,
//! `patchset-created`). It serves 127.0.0.1 from its own thread and runtime until dropped; tests
//! drive it with blocking methods. Anything a test can do to a real Gerrit (votes, new patch sets,
//! abandon) goes through the same state the REST answers are built from.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// How the next review POSTs fail (`fail_reviews`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// 503 before anything is applied.
    Before,
    /// The review is applied, then 503: the ambiguous failure a client must not turn into a
    /// second vote.
    After,
    /// The answer comes after this long (the review is applied then): a client with a shorter
    /// timeout cannot know whether its vote landed.
    Hang(Duration),
}

/// One review POST that was applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Review {
    pub change: u32,
    pub patchset: u32,
    pub revision: String,
    pub labels: BTreeMap<String, i32>,
    pub message: String,
    pub tag: Option<String>,
}

/// Gerrit's default label set for projects without their own: `(name, min, max)`.
pub const DEFAULT_LABELS: [(&str, i32, i32); 3] = [
    ("Code-Review", -2, 2),
    ("Verified", -1, 1),
    ("Trybot-Ready", 0, 1),
];

/// `refs/changes/NN/C/P`, NN the change number's last two digits (Gerrit's sharding).
pub fn change_ref(change: u32, patchset: u32) -> String {
    format!("refs/changes/{:02}/{change}/{patchset}", change % 100)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    New,
    Merged,
    Abandoned,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::New => "NEW",
            Status::Merged => "MERGED",
            Status::Abandoned => "ABANDONED",
        }
    }
}

struct Account {
    id: i64,
    username: String,
    name: String,
    email: String,
}

struct Approval {
    value: i32,
    date: i64,
    tag: Option<String>,
}

struct PatchSet {
    number: u32,
    sha: String,
    created: i64,
    uploader: i64,
    /// `(label, account)`; a vote reset to 0 is removed (its reviewer stays on the change).
    approvals: BTreeMap<(String, i64), Approval>,
}

/// A comment-added event's approvals: `(label, value, old value when it changed)`.
type EventApprovals = Vec<(String, i32, Option<i32>)>;

struct Message {
    id: String,
    author: i64,
    date: i64,
    text: String,
    tag: Option<String>,
    patchset: u32,
    accounts_in_message: Vec<i64>,
    /// Set for the messages Gerrit fires `comment-added` for (reviews and votes).
    comment_event: Option<EventApprovals>,
}

struct Change {
    number: u32,
    project: String,
    branch: String,
    subject: String,
    change_id: String,
    owner: i64,
    status: Status,
    created: i64,
    updated: i64,
    patchsets: Vec<PatchSet>,
    reviewers: BTreeSet<i64>,
    messages: Vec<Message>,
}

impl Change {
    fn current(&self) -> &PatchSet {
        self.patchsets.last().expect("a change has patch set 1")
    }
}

/// An error answer: Gerrit's are plain text.
struct HttpError(StatusCode, String);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let HttpError(status, mut body) = self;
        if !body.ends_with('\n') {
            body.push('\n');
        }
        let mut r = (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
            body,
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            let realm = HeaderValue::from_static("Basic realm=\"Gerrit Code Review\"");
            r.headers_mut().insert(header::WWW_AUTHENTICATE, realm);
        }
        r
    }
}

fn bad_request(msg: impl Into<String>) -> HttpError {
    HttpError(StatusCode::BAD_REQUEST, msg.into())
}

fn not_found(what: &str) -> HttpError {
    HttpError(StatusCode::NOT_FOUND, format!("Not found: {what}"))
}

fn conflict(msg: impl Into<String>) -> HttpError {
    HttpError(StatusCode::CONFLICT, msg.into())
}

/// What `o=` asks for.
#[derive(Clone, Copy, Default)]
struct Opts {
    labels: bool,
    detailed_labels: bool,
    current_revision: bool,
    all_revisions: bool,
    detailed_accounts: bool,
    messages: bool,
}

impl Opts {
    const ALL: Opts = Opts {
        labels: true,
        detailed_labels: true,
        current_revision: true,
        all_revisions: true,
        detailed_accounts: true,
        messages: true,
    };

    /// Options outside the ones modelled are refused, so Slipway asks only for what is proven.
    fn parse<'a>(names: impl Iterator<Item = &'a str>) -> Result<Opts, HttpError> {
        let mut o = Opts::default();
        for name in names {
            match name {
                "LABELS" => o.labels = true,
                "DETAILED_LABELS" => o.detailed_labels = true,
                "CURRENT_REVISION" => o.current_revision = true,
                "ALL_REVISIONS" => o.all_revisions = true,
                "DETAILED_ACCOUNTS" => o.detailed_accounts = true,
                "MESSAGES" => o.messages = true,
                _ => {
                    return Err(bad_request(format!(
                        "\"{name}\" is not a valid value for \"-o\""
                    )));
                }
            }
        }
        Ok(o)
    }
}

/// One term of a change query; the terms of a query are ANDed.
enum Term {
    Project(String),
    Branch(String),
    Status(Vec<Status>),
    /// Updated at or after.
    After(DateTime<Utc>),
}

fn parse_query(q: &str) -> Result<Vec<Term>, HttpError> {
    let mut terms = Vec::new();
    for token in split_terms(q)? {
        let Some((op, value)) = token.split_once(':') else {
            return Err(bad_request(format!(
                "fake Gerrit: unsupported query term {token:?}"
            )));
        };
        terms.push(match op {
            "project" => Term::Project(value.to_string()),
            "branch" => Term::Branch(value.trim_start_matches("refs/heads/").to_string()),
            "status" => Term::Status(match value {
                "open" | "new" | "pending" => vec![Status::New],
                "merged" => vec![Status::Merged],
                "abandoned" => vec![Status::Abandoned],
                "closed" => vec![Status::Merged, Status::Abandoned],
                _ => return Err(bad_request(format!("Unrecognized value: {value}"))),
            }),
            "after" | "since" => Term::After(
                parse_time(value)
                    .ok_or_else(|| bad_request(format!("Unrecognized date: {value}")))?,
            ),
            _ => return Err(bad_request(format!("Unsupported operator {op}:{value}"))),
        });
    }
    Ok(terms)
}

/// Splits on spaces outside double quotes and drops the quotes.
fn split_terms(q: &str) -> Result<Vec<String>, HttpError> {
    let (mut terms, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in q.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    terms.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(bad_request("fake Gerrit: unbalanced quote in query"));
    }
    if !cur.is_empty() {
        terms.push(cur);
    }
    Ok(terms)
}

/// `YYYY-MM-DD[ HH:MM[:SS[.fraction]]]`, UTC.
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let t = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()?
                .and_hms_opt(0, 0, 0)
        })?;
    Some(t.and_utc())
}

/// Gerrit's timestamp format: UTC, nanosecond digits.
fn timestamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .expect("clock in range")
        .format("%Y-%m-%d %H:%M:%S%.9f")
        .to_string()
}

/// `Label+1`, `Label-2`, `-Label` (a reset), as Gerrit writes votes in messages.
fn format_vote(label: &str, value: i32) -> String {
    match value {
        0 => format!("-{label}"),
        v if v > 0 => format!("{label}+{v}"),
        v => format!("{label}{v}"),
    }
}

fn hex_id(parts: &str) -> String {
    hex::encode(Sha256::digest(parts.as_bytes()))[..40].to_string()
}

fn url_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Deserialize)]
struct ReviewInput {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, i32>,
    #[serde(default)]
    tag: Option<String>,
}

struct Gerrit {
    url: String,
    accounts: Vec<Account>,
    changes: Vec<Change>,
    labels: BTreeMap<String, Vec<(String, i32, i32)>>,
    clock_ms: i64,
    next_change: u32,
    requests: Vec<(String, String)>,
    failures: Option<(usize, FailMode)>,
    reviews: Vec<Review>,
    refuse_outdated: bool,
    bot: i64,
}

impl Gerrit {
    /// Real UTC now, but strictly later than the previous mutation.
    fn tick(&mut self) -> i64 {
        self.clock_ms = Utc::now().timestamp_millis().max(self.clock_ms + 1);
        self.clock_ms
    }

    fn account(&self, id: i64) -> &Account {
        self.accounts
            .iter()
            .find(|a| a.id == id)
            .unwrap_or_else(|| panic!("fake Gerrit: no account {id}"))
    }

    fn label_defs(&self, project: &str) -> Vec<(String, i32, i32)> {
        self.labels.get(project).cloned().unwrap_or_else(|| {
            DEFAULT_LABELS
                .iter()
                .map(|(n, lo, hi)| (n.to_string(), *lo, *hi))
                .collect()
        })
    }

    fn change_mut(&mut self, number: u32) -> &mut Change {
        self.changes
            .iter_mut()
            .find(|c| c.number == number)
            .unwrap_or_else(|| panic!("fake Gerrit: no change {number}"))
    }

    fn change(&self, number: u32) -> &Change {
        self.changes
            .iter()
            .find(|c| c.number == number)
            .unwrap_or_else(|| panic!("fake Gerrit: no change {number}"))
    }

    /// A change by number, `project~number` or `project~branch~Change-Id` (already URL-decoded).
    fn find(&self, id: &str) -> Result<u32, HttpError> {
        let parts: Vec<&str> = id.split('~').collect();
        let found = self.changes.iter().find(|c| match parts.as_slice() {
            [n] => n.parse() == Ok(c.number) || *n == c.change_id,
            [p, n] => *p == c.project && n.parse() == Ok(c.number),
            [p, b, i] => {
                *p == c.project
                    && b.trim_start_matches("refs/heads/") == c.branch
                    && *i == c.change_id
            }
            _ => false,
        });
        found.map(|c| c.number).ok_or_else(|| not_found(id))
    }

    fn push_message(
        &mut self,
        change: u32,
        author: i64,
        text: String,
        tag: Option<&str>,
    ) -> &mut Message {
        let date = self.tick();
        let c = self.change_mut(change);
        c.updated = date;
        let patchset = c.current().number;
        let id = hex_id(&format!("{change}/{}", c.messages.len()));
        c.messages.push(Message {
            id,
            author,
            date,
            text,
            tag: tag.map(str::to_string),
            patchset,
            accounts_in_message: Vec::new(),
            comment_event: None,
        });
        c.messages.last_mut().expect("just pushed")
    }

    /// Gerrit's PostReview for one account on one patch set: label checks, the votes that
    /// change, and the "Patch Set N: ..." message (none when nothing changed and no text).
    fn post_review(
        &mut self,
        change: u32,
        patchset: u32,
        account: i64,
        input: &ReviewInput,
    ) -> Result<(), HttpError> {
        let defs = self.label_defs(&self.change(change).project);
        for (label, value) in &input.labels {
            let (_, lo, hi) = defs.iter().find(|(n, ..)| n == label).ok_or_else(|| {
                bad_request(format!("label \"{label}\" is not a configured label"))
            })?;
            // Gerrit always permits 0: it resets the vote.
            if *value != 0 && !(lo..=hi).contains(&value) {
                return Err(bad_request(format!(
                    "label \"{label}\": {value} is not a valid value"
                )));
            }
        }
        let c = self.change(change);
        let outdated = patchset != c.current().number;
        if !input.labels.is_empty() {
            if c.status == Status::Abandoned {
                return Err(conflict("change is closed"));
            }
            if outdated && self.refuse_outdated {
                return Err(conflict("cannot vote on outdated patch set"));
            }
            let ps = &c.patchsets[patchset as usize - 1];
            let reduced: Vec<&str> = input
                .labels
                .iter()
                .filter(|(l, v)| {
                    ps.approvals
                        .get(&(l.to_string(), account))
                        .is_some_and(|a| a.value > **v)
                })
                .map(|(l, _)| l.as_str())
                .collect();
            if c.status == Status::Merged && !reduced.is_empty() {
                return Err(conflict(format!(
                    "Cannot reduce vote on labels for closed change: {}",
                    reduced.join(", ")
                )));
            }
        }
        let date = self.tick();
        let c = self.change_mut(change);
        let ps = &mut c.patchsets[patchset as usize - 1];
        let mut deltas = Vec::new();
        for (label, value) in &input.labels {
            let key = (label.clone(), account);
            let old = ps.approvals.get(&key).map_or(0, |a| a.value);
            if old == *value {
                continue;
            }
            deltas.push((label.clone(), *value, old));
            if *value == 0 {
                ps.approvals.remove(&key);
            } else {
                let tag = input.tag.clone();
                ps.approvals.insert(
                    key,
                    Approval {
                        value: *value,
                        date,
                        tag,
                    },
                );
                c.reviewers.insert(account);
            }
        }
        let mut votes: Vec<String> = deltas.iter().map(|(l, v, _)| format_vote(l, *v)).collect();
        votes.sort();
        let message = input.message.as_deref().unwrap_or("").trim();
        if votes.is_empty() && message.is_empty() {
            return Ok(());
        }
        let mut text = format!("Patch Set {patchset}:");
        for v in &votes {
            text.push(' ');
            text.push_str(v);
        }
        if !message.is_empty() {
            text.push_str("\n\n");
            text.push_str(message);
        }
        // comment-added carries every label with the author's value, oldValue only where changed.
        let ps = &c.patchsets[patchset as usize - 1];
        let event = defs
            .iter()
            .map(|(l, ..)| {
                let value = ps
                    .approvals
                    .get(&(l.clone(), account))
                    .map_or(0, |a| a.value);
                let old = deltas.iter().find(|d| &d.0 == l).map(|d| d.2);
                (l.clone(), value, old)
            })
            .collect();
        let m = self.push_message(change, account, text, input.tag.as_deref());
        m.patchset = patchset;
        m.comment_event = Some(event);
        Ok(())
    }

    fn account_json(&self, id: i64, detailed: bool) -> Value {
        let a = self.account(id);
        if detailed {
            json!({"_account_id": a.id, "name": a.name, "email": a.email, "username": a.username})
        } else {
            json!({"_account_id": a.id})
        }
    }

    fn change_info(&self, c: &Change, o: Opts) -> Value {
        let acct = |id| self.account_json(id, o.detailed_accounts);
        let mut info = json!({
            "id": format!("{}~{}", url_encode(&c.project), c.number),
            "triplet_id": format!("{}~{}~{}", url_encode(&c.project), url_encode(&c.branch), c.change_id),
            "project": c.project, "branch": c.branch, "change_id": c.change_id,
            "subject": c.subject, "status": c.status.as_str(),
            "created": timestamp(c.created), "updated": timestamp(c.updated),
            "insertions": 0, "deletions": 0, "_number": c.number, "owner": acct(c.owner),
        });
        if o.labels || o.detailed_labels {
            info["labels"] = self.labels_json(c, o);
        }
        if o.current_revision || o.all_revisions {
            info["current_revision"] = json!(c.current().sha);
            let shown = if o.all_revisions {
                &c.patchsets[..]
            } else {
                &c.patchsets[c.patchsets.len() - 1..]
            };
            let revisions: Map<String, Value> = shown
                .iter()
                .map(|ps| {
                    let r = change_ref(c.number, ps.number);
                    let fetch = json!({"http": {"url": format!("{}/{}", self.url, c.project), "ref": r}});
                    let rev = json!({"kind": "REWORK", "_number": ps.number, "created": timestamp(ps.created),
                        "uploader": acct(ps.uploader), "ref": r, "fetch": fetch});
                    (ps.sha.clone(), rev)
                })
                .collect();
            info["revisions"] = Value::Object(revisions);
        }
        if o.messages {
            let msgs: Vec<Value> = c
                .messages
                .iter()
                .map(|m| {
                    let mut v = json!({"id": m.id, "author": acct(m.author), "date": timestamp(m.date),
                        "message": m.text, "_revision_number": m.patchset});
                    if let Some(tag) = &m.tag {
                        v["tag"] = json!(tag);
                    }
                    if !m.accounts_in_message.is_empty() {
                        v["accounts_in_message"] = m.accounts_in_message.iter().map(|a| acct(*a)).collect();
                    }
                    v
                })
                .collect();
            info["messages"] = json!(msgs);
        }
        info
    }

    /// LabelInfo per label on the current patch set. `all` lists every reviewer of the change,
    /// with value 0 and no date when they have no vote on this label.
    fn labels_json(&self, c: &Change, o: Opts) -> Value {
        let ps = c.current();
        let mut labels = Map::new();
        for (name, lo, hi) in self.label_defs(&c.project) {
            let votes: Vec<(i64, &Approval)> = ps
                .approvals
                .iter()
                .filter(|((l, _), _)| *l == name)
                .map(|((_, a), ap)| (*a, ap))
                .collect();
            let mut info = Map::new();
            let pick =
                |f: &dyn Fn(i32) -> bool| votes.iter().find(|(_, a)| f(a.value)).map(|(id, _)| *id);
            let summary = [
                ("approved", pick(&|v| v == hi && v > 0)),
                ("rejected", pick(&|v| v == lo && v < 0)),
                ("recommended", pick(&|v| v > 0 && v < hi)),
                ("disliked", pick(&|v| v < 0 && v > lo)),
            ];
            for (key, who) in summary {
                if let Some(id) = who {
                    info.insert(key.into(), self.account_json(id, o.detailed_accounts));
                }
            }
            if o.detailed_labels {
                let all: Vec<Value> = c
                    .reviewers
                    .iter()
                    .map(|id| {
                        let mut a = self.account_json(*id, o.detailed_accounts);
                        a["value"] = json!(0);
                        if let Some((_, ap)) = votes.iter().find(|(v, _)| v == id) {
                            a["value"] = json!(ap.value);
                            a["date"] = json!(timestamp(ap.date));
                            if let Some(tag) = &ap.tag {
                                a["tag"] = json!(tag);
                            }
                        }
                        a["permitted_voting_range"] = json!({"min": lo, "max": hi});
                        a
                    })
                    .collect();
                let values: Map<String, Value> = (lo..=hi)
                    .map(|v| {
                        let key = if v > 0 {
                            format!("+{v}")
                        } else if v == 0 {
                            " 0".into()
                        } else {
                            v.to_string()
                        };
                        let text = if v == 0 {
                            "No score".into()
                        } else {
                            format_vote(&name, v)
                        };
                        (key, json!(text))
                    })
                    .collect();
                info.insert("all".into(), json!(all));
                info.insert("values".into(), Value::Object(values));
                info.insert("default_value".into(), json!(0));
            }
            labels.insert(name, Value::Object(info));
        }
        Value::Object(labels)
    }

    fn query(&self, params: &[(String, String)]) -> Result<Value, HttpError> {
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let number = |k: &str, default: usize| -> Result<usize, HttpError> {
            param(k).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| bad_request(format!("invalid {k}: {v}")))
            })
        };
        let terms = parse_query(param("q").unwrap_or("status:open"))?;
        let opts = Opts::parse(
            params
                .iter()
                .filter(|(k, _)| k == "o")
                .map(|(_, v)| v.as_str()),
        )?;
        let (limit, skip) = (number("n", 500)?, number("S", 0)?);
        let mut hits: Vec<&Change> = self
            .changes
            .iter()
            .filter(|c| {
                terms.iter().all(|t| match t {
                    Term::Project(p) => *p == c.project,
                    Term::Branch(b) => *b == c.branch,
                    Term::Status(s) => s.contains(&c.status),
                    Term::After(t) => {
                        DateTime::from_timestamp_millis(c.updated).is_some_and(|u| u >= *t)
                    }
                })
            })
            .collect();
        hits.sort_by_key(|c| std::cmp::Reverse((c.updated, c.number)));
        let more = hits.len() > skip.saturating_add(limit);
        let mut page: Vec<Value> = hits
            .iter()
            .skip(skip)
            .take(limit)
            .map(|c| self.change_info(c, opts))
            .collect();
        if let (true, Some(last)) = (more, page.last_mut()) {
            last["_more_changes"] = json!(true);
        }
        Ok(json!(page))
    }

    /// The stream-events `change` attribute, plus the fields every change event carries.
    fn event(&self, kind: &str, c: &Change, ps: &PatchSet, at: i64) -> Value {
        let attr = |id| {
            let a = self.account(id);
            json!({"name": a.name, "email": a.email, "username": a.username})
        };
        json!({
            "type": kind,
            "change": {
                "project": c.project, "branch": c.branch, "id": c.change_id, "number": c.number,
                "subject": c.subject, "owner": attr(c.owner),
                "url": format!("{}/c/{}/+/{}", self.url, c.project, c.number),
                "commitMessage": format!("{}\n\nChange-Id: {}\n", c.subject, c.change_id),
                "createdOn": c.created / 1000, "status": c.status.as_str(),
            },
            "patchSet": {
                "number": ps.number, "revision": ps.sha, "parents": [], "ref": change_ref(c.number, ps.number),
                "uploader": attr(ps.uploader), "author": attr(ps.uploader), "createdOn": ps.created / 1000,
                "kind": "REWORK", "sizeInsertions": 0, "sizeDeletions": 0,
            },
            "project": c.project,
            "refName": format!("refs/heads/{}", c.branch),
            "changeKey": {"id": c.change_id},
            "eventCreatedOn": at / 1000,
        })
    }
}

struct Shared {
    user: String,
    password: String,
    state: Mutex<Gerrit>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Gerrit> {
        // A test helper that panicked mid-update must not hide the state from the next assertion.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn gerrit_json(v: &Value) -> Response {
    let body = format!(")]}}'\n{v}\n");
    (
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body,
    )
        .into_response()
}

fn authorized(s: &Shared, headers: &HeaderMap) -> bool {
    let Some(b64) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    raw == format!("{}:{}", s.user, s.password).as_bytes()
}

/// Records every request, then lets only authenticated `/a/` requests through.
async fn guard(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    s.lock().requests.push((req.method().to_string(), target));
    if !req.uri().path().starts_with("/a/") {
        return not_found(req.uri().path()).into_response();
    }
    if !authorized(&s, req.headers()) {
        return HttpError(StatusCode::UNAUTHORIZED, "Unauthorized".into()).into_response();
    }
    next.run(req).await
}

fn query_pairs(raw: Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

async fn query_changes(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    match s.lock().query(&query_pairs(q)) {
        Ok(v) => gerrit_json(&v),
        Err(e) => e.into_response(),
    }
}

fn one_change(s: &Shared, id: &str, q: Option<String>, base: Opts) -> Result<Value, HttpError> {
    let params = query_pairs(q);
    let mut o = Opts::parse(
        params
            .iter()
            .filter(|(k, _)| k == "o")
            .map(|(_, v)| v.as_str()),
    )?;
    o.labels |= base.labels;
    o.detailed_labels |= base.detailed_labels;
    o.detailed_accounts |= base.detailed_accounts;
    o.messages |= base.messages;
    let g = s.lock();
    let number = g.find(id)?;
    Ok(g.change_info(g.change(number), o))
}

async fn get_change(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    one_change(&s, &id, q, Opts::default())
        .map_or_else(IntoResponse::into_response, |v| gerrit_json(&v))
}

/// `/detail` implies labels, detailed labels and accounts, and messages.
async fn get_detail(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let base = Opts {
        current_revision: false,
        all_revisions: false,
        ..Opts::ALL
    };
    one_change(&s, &id, q, base).map_or_else(IntoResponse::into_response, |v| gerrit_json(&v))
}

async fn post_review(
    State(s): State<Arc<Shared>>,
    Path((id, revision)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    // Like a servlet, the review goes on when the client hangs up (a timeout during Hang).
    let work = tokio::spawn(review_task(s, id, revision, body));
    work.await.unwrap_or_else(|e| {
        HttpError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("review task failed: {e}"),
        )
        .into_response()
    })
}

async fn review_task(s: Arc<Shared>, id: String, revision: String, body: Bytes) -> Response {
    let failure = {
        let mut g = s.lock();
        match g.failures {
            Some((n, mode)) if n > 0 => {
                g.failures = (n > 1).then_some((n - 1, mode));
                Some(mode)
            }
            _ => None,
        }
    };
    let unavailable = || {
        HttpError(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable".into(),
        )
    };
    match failure {
        Some(FailMode::Before) => return unavailable().into_response(),
        Some(FailMode::Hang(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    let input: ReviewInput = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => return bad_request(format!("Invalid ReviewInput: {e}")).into_response(),
    };
    let applied = (|| {
        let mut g = s.lock();
        let number = g.find(&id)?;
        let c = g.change(number);
        let ps = c
            .patchsets
            .iter()
            .find(|p| match revision.as_str() {
                "current" => p.number == c.current().number,
                r if r.len() >= 4
                    && r.chars().all(|ch| ch.is_ascii_hexdigit())
                    && p.sha.starts_with(r) =>
                {
                    true
                }
                r => r.parse() == Ok(p.number),
            })
            .ok_or_else(|| not_found(&revision))?;
        let (patchset, sha, bot) = (ps.number, ps.sha.clone(), g.bot);
        g.post_review(number, patchset, bot, &input)?;
        g.reviews.push(Review {
            change: number,
            patchset,
            revision: sha,
            labels: input.labels.clone(),
            message: input.message.clone().unwrap_or_default(),
            tag: input.tag.clone(),
        });
        Ok::<_, HttpError>(())
    })();
    match (applied, failure) {
        (Err(e), _) => e.into_response(),
        (Ok(()), Some(FailMode::After)) => unavailable().into_response(),
        (Ok(()), _) => gerrit_json(&json!({"labels": input.labels})),
    }
}

async fn fallback(req: Request) -> Response {
    not_found(req.uri().path()).into_response()
}

/// The fake server. Dropping it stops the server.
pub struct FakeGerrit {
    shared: Arc<Shared>,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeGerrit {
    /// Serves on an ephemeral port of 127.0.0.1; `user`/`password` are the bot's HTTP credentials,
    /// and the bot is account 1000000.
    pub fn start(user: &str, password: &str) -> FakeGerrit {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let bot = Account {
            id: 1_000_000,
            username: user.into(),
            name: format!("{user} (bot)"),
            email: format!("{user}@example.org"),
        };
        let state = Gerrit {
            url: url.clone(),
            accounts: vec![bot],
            changes: Vec::new(),
            labels: BTreeMap::new(),
            clock_ms: 0,
            next_change: 1,
            requests: Vec::new(),
            failures: None,
            reviews: Vec::new(),
            refuse_outdated: false,
            bot: 1_000_000,
        };
        let shared = Arc::new(Shared {
            user: user.into(),
            password: password.into(),
            state: Mutex::new(state),
        });
        let app = Router::new()
            .route("/a/changes/", get(query_changes))
            .route("/a/changes/{id}", get(get_change))
            .route("/a/changes/{id}/detail", get(get_detail))
            .route(
                "/a/changes/{id}/revisions/{revision}/review",
                post(post_review),
            )
            .fallback(fallback)
            .layer(middleware::from_fn_with_state(shared.clone(), guard))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-gerrit".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    tokio::select! {
                        r = axum::serve(listener, app) => r.expect("fake Gerrit server"),
                        _ = stopped => {}
                    }
                });
            })
            .expect("spawn fake Gerrit thread");
        FakeGerrit {
            shared,
            url,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Gerrit> {
        self.shared.lock()
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn bot_account(&self) -> i64 {
        self.lock().bot
    }

    pub fn add_account(&self, username: &str, name: &str, email: &str) -> i64 {
        let mut g = self.lock();
        let id = 1_000_000 + g.accounts.len() as i64;
        g.accounts.push(Account {
            id,
            username: username.into(),
            name: name.into(),
            email: email.into(),
        });
        id
    }

    /// Replaces a project's label set: `(name, min, max)`.
    pub fn set_labels(&self, project: &str, labels: &[(&str, i32, i32)]) {
        let defs = labels
            .iter()
            .map(|(n, lo, hi)| (n.to_string(), *lo, *hi))
            .collect();
        self.lock().labels.insert(project.into(), defs);
    }

    /// The number the next `create_change` gets.
    pub fn set_next_change_number(&self, number: u32) {
        self.lock().next_change = number;
    }

    /// Gerrit 3.7+ records a vote on an outdated patch set on that patch set (default here);
    /// `true` refuses it with 409 instead, as a stricter server would.
    pub fn refuse_outdated_votes(&self, refuse: bool) {
        self.lock().refuse_outdated = refuse;
    }

    pub fn create_change(
        &self,
        project: &str,
        branch: &str,
        subject: &str,
        owner: i64,
        sha: &str,
    ) -> u32 {
        let mut g = self.lock();
        g.account(owner);
        let number = g.next_change;
        g.next_change += 1;
        let now = g.tick();
        let change_id = format!(
            "I{}",
            hex_id(&format!("{project}/{branch}/{number}/{subject}"))
        );
        let first = PatchSet {
            number: 1,
            sha: sha.into(),
            created: now,
            uploader: owner,
            approvals: BTreeMap::new(),
        };
        g.changes.push(Change {
            number,
            project: project.into(),
            branch: branch.trim_start_matches("refs/heads/").into(),
            subject: subject.into(),
            change_id,
            owner,
            status: Status::New,
            created: now,
            updated: now,
            patchsets: vec![first],
            reviewers: BTreeSet::new(),
            messages: Vec::new(),
        });
        g.push_message(
            number,
            owner,
            "Uploaded patch set 1.".into(),
            Some("autogenerated:gerrit:newPatchSet"),
        );
        number
    }

    pub fn ref_name(&self, change: u32, patchset: u32) -> String {
        change_ref(change, patchset)
    }

    /// A new current patch set by the owner; no vote carries over (no copy rules configured).
    pub fn new_patchset(&self, change: u32, sha: &str) -> u32 {
        let mut g = self.lock();
        let now = g.tick();
        let c = g.change_mut(change);
        assert_eq!(
            c.status,
            Status::New,
            "fake Gerrit: change {change} is closed"
        );
        let number = c.patchsets.len() as u32 + 1;
        let owner = c.owner;
        c.patchsets.push(PatchSet {
            number,
            sha: sha.into(),
            created: now,
            uploader: owner,
            approvals: BTreeMap::new(),
        });
        let text = format!("Uploaded patch set {number}.");
        g.push_message(
            change,
            owner,
            text,
            Some("autogenerated:gerrit:newPatchSet"),
        );
        number
    }

    pub fn current_patchset(&self, change: u32) -> u32 {
        self.lock().change(change).current().number
    }

    /// `account` votes on the current patch set, as from the web UI (0 resets the vote).
    pub fn vote(&self, change: u32, label: &str, account: i64, value: i32) {
        let mut g = self.lock();
        g.account(account);
        let patchset = g.change(change).current().number;
        let input = ReviewInput {
            message: None,
            labels: BTreeMap::from([(label.into(), value)]),
            tag: None,
        };
        if let Err(HttpError(status, msg)) = g.post_review(change, patchset, account, &input) {
            panic!("fake Gerrit: vote refused ({status}): {msg}");
        }
    }

    /// Gerrit's DeleteVote: `by` removes `account`'s vote on the current patch set.
    pub fn delete_vote(&self, change: u32, label: &str, account: i64, by: i64) {
        let mut g = self.lock();
        g.account(by);
        let c = g.change_mut(change);
        let ps = c.patchsets.last_mut().expect("a change has patch set 1");
        let Some(old) = ps.approvals.remove(&(label.to_string(), account)) else {
            panic!("fake Gerrit: no {label} vote by {account} on change {change}");
        };
        let text = format!(
            "Removed {} by <GERRIT_ACCOUNT_{account}>\n",
            format_vote(label, old.value)
        );
        let m = g.push_message(change, by, text, Some("autogenerated:gerrit:deleteVote"));
        m.accounts_in_message = vec![account];
    }

    fn close(&self, change: u32, status: Status, text: &str, tag: &str) {
        let mut g = self.lock();
        let c = g.change_mut(change);
        assert_eq!(
            c.status,
            Status::New,
            "fake Gerrit: change {change} is already closed"
        );
        c.status = status;
        let owner = c.owner;
        g.push_message(change, owner, text.into(), Some(tag));
    }

    pub fn abandon(&self, change: u32) {
        self.close(
            change,
            Status::Abandoned,
            "Abandoned",
            "autogenerated:gerrit:abandon",
        );
    }

    pub fn merge(&self, change: u32) {
        self.close(
            change,
            Status::Merged,
            "Change has been successfully merged",
            "autogenerated:gerrit:merged",
        );
    }

    /// What `GET /a/changes/<id>` answers with every modelled option.
    pub fn change_json(&self, change: u32) -> Value {
        let g = self.lock();
        g.change_info(g.change(change), Opts::ALL)
    }

    /// The `comment-added` event for the change's last review or vote.
    pub fn comment_added_event(&self, change: u32) -> Value {
        let g = self.lock();
        let c = g.change(change);
        let (m, approvals) = c
            .messages
            .iter()
            .rev()
            .find_map(|m| Some((m, m.comment_event.as_ref()?)))
            .unwrap_or_else(|| panic!("fake Gerrit: change {change} has no comment"));
        let mut e = g.event(
            "comment-added",
            c,
            &c.patchsets[m.patchset as usize - 1],
            m.date,
        );
        let a = g.account(m.author);
        e["author"] = json!({"name": a.name, "email": a.email, "username": a.username});
        let approvals: Vec<Value> = approvals
            .iter()
            .map(|(label, value, old)| {
                let mut v =
                    json!({"type": label, "description": label, "value": value.to_string()});
                if let Some(old) = old {
                    v["oldValue"] = json!(old.to_string());
                }
                v
            })
            .collect();
        e["approvals"] = json!(approvals);
        e["comment"] = json!(m.text);
        e
    }

    /// The `patchset-created` event for the change's current patch set.
    pub fn patchset_created_event(&self, change: u32) -> Value {
        let g = self.lock();
        let c = g.change(change);
        let ps = c.current();
        let mut e = g.event("patchset-created", c, ps, ps.created);
        e["uploader"] = e["patchSet"]["uploader"].clone();
        e
    }

    /// The next `n` review POSTs fail as `mode` says.
    pub fn fail_reviews(&self, n: usize, mode: FailMode) {
        self.lock().failures = (n > 0).then_some((n, mode));
    }

    /// Every review POST that was applied, in order.
    pub fn reviews(&self) -> Vec<Review> {
        self.lock().reviews.clone()
    }

    /// Every request: (method, path and query as sent).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.lock().requests.clone()
    }
}

impl Drop for FakeGerrit {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
