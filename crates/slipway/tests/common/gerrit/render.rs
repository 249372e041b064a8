//! Gerrit's JSON: ChangeInfo with its options (LabelInfo, ApprovalInfo, RevisionInfo,
//! ChangeMessageInfo, AccountInfo) and the stream-events attributes.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::change_ref;
use super::http::{HttpError, bad_request};
use super::state::{Approval, Change, Gerrit, PatchSet, Status, format_vote};

/// What `o=` asks for.
#[derive(Clone, Copy, Default)]
pub(super) struct Opts {
    pub(super) labels: bool,
    pub(super) detailed_labels: bool,
    pub(super) current_revision: bool,
    pub(super) all_revisions: bool,
    pub(super) detailed_accounts: bool,
    pub(super) messages: bool,
}

impl Opts {
    pub(super) const ALL: Opts = Opts {
        labels: true,
        detailed_labels: true,
        current_revision: true,
        all_revisions: true,
        detailed_accounts: true,
        messages: true,
    };

    /// The `o=` options among a request's query parameters. Options outside the ones modelled
    /// are refused, so Slipway asks only for what is proven.
    pub(super) fn from_params(params: &[(String, String)]) -> Result<Opts, HttpError> {
        let names = params.iter().filter(|(k, _)| k == "o").map(|(_, v)| v);
        let mut o = Opts::default();
        for name in names {
            match name.as_str() {
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

/// Gerrit's timestamp format: UTC, nanosecond digits.
fn timestamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .expect("clock in range")
        .format("%Y-%m-%d %H:%M:%S%.9f")
        .to_string()
}

fn url_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Gerrit {
    fn account_json(&self, id: i64, detailed: bool) -> Value {
        let a = self.account(id);
        if detailed {
            json!({"_account_id": a.id, "name": a.name, "email": a.email, "username": a.username})
        } else {
            json!({"_account_id": a.id})
        }
    }

    pub(super) fn change_info(&self, c: &Change, o: Opts) -> Value {
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
                "createdOn": c.created / 1000, "lastUpdated": c.updated / 1000,
                "open": c.status == Status::New, "status": c.status.as_str(),
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

    /// The `comment-added` event for the change's last review or vote.
    pub(super) fn comment_added_json(&self, change: u32) -> Value {
        let c = self.change(change);
        let (m, approvals) = c
            .messages
            .iter()
            .rev()
            .find_map(|m| Some((m, m.comment_event.as_ref()?)))
            .unwrap_or_else(|| panic!("fake Gerrit: change {change} has no comment"));
        let mut e = self.event(
            "comment-added",
            c,
            &c.patchsets[m.patchset as usize - 1],
            m.date,
        );
        let a = self.account(m.author);
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
    pub(super) fn patchset_created_json(&self, change: u32) -> Value {
        let c = self.change(change);
        let ps = c.current();
        let mut e = self.event("patchset-created", c, ps, ps.created);
        e["uploader"] = e["patchSet"]["uploader"].clone();
        e
    }
}
