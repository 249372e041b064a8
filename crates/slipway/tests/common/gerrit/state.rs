//! The fake's state: accounts, changes with patch sets, votes and messages, and Gerrit's
//! PostReview rules over them. One lock guards all of it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::http::{HttpError, bad_request, conflict, not_found};
use super::{DEFAULT_LABELS, FailMode, Review};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Status {
    New,
    Merged,
    Abandoned,
}

impl Status {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Status::New => "NEW",
            Status::Merged => "MERGED",
            Status::Abandoned => "ABANDONED",
        }
    }
}

pub(super) struct Account {
    pub(super) id: i64,
    pub(super) username: String,
    pub(super) name: String,
    pub(super) email: String,
}

pub(super) struct Approval {
    pub(super) value: i32,
    pub(super) date: i64,
    pub(super) tag: Option<String>,
}

pub(super) struct PatchSet {
    pub(super) number: u32,
    pub(super) sha: String,
    pub(super) created: i64,
    pub(super) uploader: i64,
    /// `(label, account)`; a vote reset to 0 is removed (its reviewer stays on the change).
    pub(super) approvals: BTreeMap<(String, i64), Approval>,
}

/// A comment-added event's approvals: `(label, value, old value when it changed)`.
pub(super) type EventApprovals = Vec<(String, i32, Option<i32>)>;

pub(super) struct Message {
    pub(super) id: String,
    pub(super) author: i64,
    pub(super) date: i64,
    pub(super) text: String,
    pub(super) tag: Option<String>,
    pub(super) patchset: u32,
    pub(super) accounts_in_message: Vec<i64>,
    /// Set for the messages Gerrit fires `comment-added` for (reviews and votes).
    pub(super) comment_event: Option<EventApprovals>,
}

pub(super) struct Change {
    pub(super) number: u32,
    pub(super) project: String,
    pub(super) branch: String,
    pub(super) subject: String,
    pub(super) change_id: String,
    pub(super) owner: i64,
    pub(super) status: Status,
    pub(super) created: i64,
    pub(super) updated: i64,
    pub(super) patchsets: Vec<PatchSet>,
    pub(super) reviewers: BTreeSet<i64>,
    pub(super) messages: Vec<Message>,
}

impl Change {
    pub(super) fn current(&self) -> &PatchSet {
        self.patchsets.last().expect("a change has patch set 1")
    }
}

/// `Label+1`, `Label-2`, `-Label` (a reset), as Gerrit writes votes in messages.
pub(super) fn format_vote(label: &str, value: i32) -> String {
    match value {
        0 => format!("-{label}"),
        v if v > 0 => format!("{label}+{v}"),
        v => format!("{label}{v}"),
    }
}

pub(super) fn hex_id(parts: &str) -> String {
    hex::encode(Sha256::digest(parts.as_bytes()))[..40].to_string()
}

#[derive(Deserialize)]
pub(super) struct ReviewInput {
    #[serde(default)]
    pub(super) message: Option<String>,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, i32>,
    #[serde(default)]
    pub(super) tag: Option<String>,
}

pub(super) struct Gerrit {
    pub(super) url: String,
    pub(super) accounts: Vec<Account>,
    pub(super) changes: Vec<Change>,
    pub(super) labels: BTreeMap<String, Vec<(String, i32, i32)>>,
    pub(super) clock_ms: i64,
    pub(super) next_change: u32,
    pub(super) requests: Vec<(String, String)>,
    pub(super) failures: Option<(usize, FailMode)>,
    pub(super) reviews: Vec<Review>,
    pub(super) refuse_outdated: bool,
    pub(super) bot: i64,
}

impl Gerrit {
    /// Real UTC now, but strictly later than the previous mutation.
    pub(super) fn tick(&mut self) -> i64 {
        self.clock_ms = Utc::now().timestamp_millis().max(self.clock_ms + 1);
        self.clock_ms
    }

    pub(super) fn account(&self, id: i64) -> &Account {
        self.accounts
            .iter()
            .find(|a| a.id == id)
            .unwrap_or_else(|| panic!("fake Gerrit: no account {id}"))
    }

    pub(super) fn label_defs(&self, project: &str) -> Vec<(String, i32, i32)> {
        self.labels.get(project).cloned().unwrap_or_else(|| {
            DEFAULT_LABELS
                .iter()
                .map(|(n, lo, hi)| (n.to_string(), *lo, *hi))
                .collect()
        })
    }

    pub(super) fn change_mut(&mut self, number: u32) -> &mut Change {
        self.changes
            .iter_mut()
            .find(|c| c.number == number)
            .unwrap_or_else(|| panic!("fake Gerrit: no change {number}"))
    }

    pub(super) fn change(&self, number: u32) -> &Change {
        self.changes
            .iter()
            .find(|c| c.number == number)
            .unwrap_or_else(|| panic!("fake Gerrit: no change {number}"))
    }

    /// A change by number, `project~number` or `project~branch~Change-Id` (already URL-decoded).
    pub(super) fn find(&self, id: &str) -> Result<u32, HttpError> {
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

    pub(super) fn push_message(
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

    /// PostReview's refusals: labels the project does not have, values out of range, votes on
    /// a closed change (or, when configured, on an outdated patch set).
    fn check_review(
        &self,
        change: u32,
        patchset: u32,
        account: i64,
        labels: &BTreeMap<String, i32>,
    ) -> Result<(), HttpError> {
        let c = self.change(change);
        let defs = self.label_defs(&c.project);
        for (label, value) in labels {
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
        let outdated = patchset != c.current().number;
        if !labels.is_empty() {
            if c.status == Status::Abandoned {
                return Err(conflict("change is closed"));
            }
            if outdated && self.refuse_outdated {
                return Err(conflict("cannot vote on outdated patch set"));
            }
            let ps = &c.patchsets[patchset as usize - 1];
            let reduced: Vec<&str> = labels
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
        Ok(())
    }

    /// Gerrit's PostReview for one account on one patch set: the votes that change, and the
    /// "Patch Set N: ..." message (none when nothing changed and there is no text).
    pub(super) fn post_review(
        &mut self,
        change: u32,
        patchset: u32,
        account: i64,
        input: &ReviewInput,
    ) -> Result<(), HttpError> {
        self.check_review(change, patchset, account, &input.labels)?;
        let defs = self.label_defs(&self.change(change).project);
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

    /// A review POST by the bot. `revision` is `current`, a patch set number, or a commit sha
    /// (or a prefix of at least 4 hex digits).
    pub(super) fn bot_review(
        &mut self,
        id: &str,
        revision: &str,
        input: &ReviewInput,
    ) -> Result<(), HttpError> {
        let number = self.find(id)?;
        let c = self.change(number);
        let current = c.current().number;
        let is_sha = revision.len() >= 4 && revision.bytes().all(|b| b.is_ascii_hexdigit());
        let ps = c
            .patchsets
            .iter()
            .find(|p| match revision {
                "current" => p.number == current,
                r if is_sha && p.sha.starts_with(r) => true,
                r => r.parse() == Ok(p.number),
            })
            .ok_or_else(|| not_found(revision))?;
        let (patchset, sha) = (ps.number, ps.sha.clone());
        self.post_review(number, patchset, self.bot, input)?;
        self.reviews.push(Review {
            change: number,
            patchset,
            revision: sha,
            labels: input.labels.clone(),
            message: input.message.clone().unwrap_or_default(),
            tag: input.tag.clone(),
        });
        Ok(())
    }
}
