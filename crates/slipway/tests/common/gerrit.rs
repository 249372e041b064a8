//! A fake Gerrit for presubmit tests: the REST endpoints Slipway uses (change queries, one change,
//! posting a review) in the JSON shapes Gerrit documents (rest-api-changes: ChangeInfo,
//! RevisionInfo, LabelInfo, ApprovalInfo, ChangeMessageInfo, AccountInfo, ReviewInput,
//! ReviewResult), and the stream-events JSON the webhooks plugin posts (`comment-added`,
//! `patchset-created`). It serves 127.0.0.1 from its own thread and runtime until dropped; tests
//! drive it with blocking methods. Anything a test can do to a real Gerrit (votes, new patch sets,
//! abandon) goes through the same state the REST answers are built from.

mod http;
mod query;
mod render;
mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use http::{HttpError, Shared};
use render::Opts;
use state::{Account, Change, Gerrit, PatchSet, ReviewInput, Status, format_vote, hex_id};

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
        let app = http::router(shared.clone());
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
        self.lock().comment_added_json(change)
    }

    /// The `patchset-created` event for the change's current patch set.
    pub fn patchset_created_event(&self, change: u32) -> Value {
        self.lock().patchset_created_json(change)
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
