//! The parts of Gerrit's REST JSON Slipway reads (`rest-api-changes.html`): `ChangeInfo` with
//! `o=CURRENT_REVISION`, `o=DETAILED_LABELS`, `o=DETAILED_ACCOUNTS`, `o=MESSAGES`. Every field
//! Gerrit may leave out is optional; unknown fields are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AccountInfo {
    #[serde(rename = "_account_id")]
    pub account_id: Option<i64>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub username: Option<String>,
}

impl AccountInfo {
    /// A name to show: username, name, email or the account id.
    pub fn display(&self) -> String {
        self.username
            .clone()
            .or_else(|| self.name.clone())
            .or_else(|| self.email.clone())
            .or_else(|| self.account_id.map(|id| format!("account {id}")))
            .unwrap_or_else(|| "unknown".into())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApprovalInfo {
    #[serde(flatten)]
    pub account: AccountInfo,
    pub value: Option<i32>,
    pub date: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LabelInfo {
    #[serde(default)]
    pub all: Vec<ApprovalInfo>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChangeMessageInfo {
    pub id: String,
    pub author: Option<AccountInfo>,
    pub date: String,
    #[serde(default)]
    pub message: String,
    pub tag: Option<String>,
    #[serde(rename = "_revision_number")]
    pub revision_number: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RevisionInfo {
    #[serde(rename = "_number")]
    pub number: u32,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChangeInfo {
    pub id: String,
    pub project: String,
    pub branch: String,
    pub change_id: Option<String>,
    #[serde(default)]
    pub subject: String,
    pub status: String,
    pub updated: String,
    #[serde(rename = "_number")]
    pub number: i64,
    #[serde(default)]
    pub owner: AccountInfo,
    pub current_revision: Option<String>,
    #[serde(default)]
    pub revisions: BTreeMap<String, RevisionInfo>,
    #[serde(default)]
    pub labels: BTreeMap<String, LabelInfo>,
    #[serde(default)]
    pub messages: Vec<ChangeMessageInfo>,
    #[serde(rename = "_more_changes", default)]
    pub more_changes: bool,
}

impl ChangeInfo {
    /// The current patch set: (number, commit sha, ref).
    pub fn current(&self) -> Option<(u32, &str, String)> {
        let sha = self.current_revision.as_deref()?;
        let rev = self.revisions.get(sha)?;
        let git_ref = rev
            .git_ref
            .clone()
            .unwrap_or_else(|| change_ref(self.number, rev.number));
        Some((rev.number, sha, git_ref))
    }

    pub fn is_open(&self) -> bool {
        self.status == "NEW"
    }
}

/// Gerrit's ref of a patch set: `refs/changes/<last two digits>/<change>/<patch set>`.
pub fn change_ref(change: i64, patchset: u32) -> String {
    format!("refs/changes/{:02}/{change}/{patchset}", change % 100)
}

/// `POST .../review` body.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewInput {
    pub message: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, i32>,
    pub tag: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_refs_follow_gerrits_sharding() {
        assert_eq!(change_ref(1, 1), "refs/changes/01/1/1");
        assert_eq!(change_ref(123, 4), "refs/changes/23/123/4");
        assert_eq!(change_ref(3900, 2), "refs/changes/00/3900/2");
    }

    #[test]
    fn a_documented_change_info_parses() {
        // The example of `GET /changes/?q=...&o=DETAILED_LABELS` in Gerrit's documentation,
        // trimmed, plus a current revision.
        let c: ChangeInfo = serde_json::from_str(
            r#"{"id":"demo~master~Idaf5e098d70898b7119f6f4af5a6c13343d64b57","project":"demo",
            "branch":"master","change_id":"Idaf5e098d70898b7119f6f4af5a6c13343d64b57",
            "subject":"One change","status":"NEW","created":"2012-07-17 07:18:30.854000000",
            "updated":"2012-07-17 07:18:30.854000000","mergeable":true,"insertions":26,
            "deletions":10,"_number":1756,"owner":{"_account_id":1000096,"name":"John Doe"},
            "labels":{"Verified":{"all":[{"value":0,"_account_id":1000096,"name":"John Doe"},
            {"value":1,"date":"2012-07-17 07:19:30.854000000","_account_id":1000097,"name":"Jane Roe"}],
            "values":{"-1":"Fails"," 0":"No score","+1":"Verified"}}},
            "current_revision":"184ebe53805e102605d11f6b143486d15c23a09c",
            "revisions":{"184ebe53805e102605d11f6b143486d15c23a09c":{"kind":"REWORK","_number":2,
            "ref":"refs/changes/56/1756/2"}}}"#,
        )
        .unwrap();
        assert_eq!(
            c.current(),
            Some((
                2,
                "184ebe53805e102605d11f6b143486d15c23a09c",
                "refs/changes/56/1756/2".into()
            ))
        );
        assert_eq!(c.labels["Verified"].all[1].value, Some(1));
        assert!(c.is_open() && !c.more_changes);
    }
}
