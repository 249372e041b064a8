//! Gerrit's REST API as Slipway uses it: authenticated (`/a/`, HTTP basic with the bot's HTTP
//! password), responses behind the `)]}'` guard, change queries paged with `S`/`n`.

use std::time::Duration;

use reqwest::StatusCode;

use super::types::{ChangeInfo, ReviewInput};

/// The options every change read asks for: what the vote history and the run need.
pub const CHANGE_OPTIONS: [&str; 4] = [
    "CURRENT_REVISION",
    "DETAILED_LABELS",
    "DETAILED_ACCOUNTS",
    "MESSAGES",
];

/// Changes per query page, and pages per poll (a poll sees at most 5,000 updated changes).
const PAGE: usize = 100;
const MAX_PAGES: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum GerritError {
    #[error("cannot reach Gerrit at {url}: {message}")]
    Network { url: String, message: String },
    #[error("Gerrit answered {status} to {what}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    #[error("Gerrit's answer to {what} is not the JSON expected: {message}")]
    Parse { what: String, message: String },
}

impl GerritError {
    /// Whether trying again later may succeed (network trouble, 5xx, 429), as opposed to a
    /// refusal that will not change (bad credentials, no permission, closed change).
    pub fn retryable(&self) -> bool {
        match self {
            GerritError::Network { .. } => true,
            GerritError::Status { status, .. } => *status >= 500 || *status == 429,
            GerritError::Parse { .. } => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            GerritError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A Gerrit server and the bot account Slipway reads and votes as.
#[derive(Clone)]
pub struct Gerrit {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

impl std::fmt::Debug for Gerrit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("Gerrit")
            .field("base", &self.base)
            .field("user", &self.user)
            .finish()
    }
}

/// Removes Gerrit's anti-XSSI prefix line `)]}'` from a JSON answer.
pub fn strip_xssi(body: &str) -> &str {
    body.strip_prefix(")]}'").unwrap_or(body).trim_start()
}

/// `project~number`, the change id form that is unique on every Gerrit, percent-encoded for a
/// path segment.
pub fn change_path_id(project: &str, number: i64) -> String {
    format!("{}~{number}", encode_segment(project))
}

fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Gerrit {
    pub fn new(base: &str, user: &str, password: &str) -> Result<Gerrit, GerritError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("slipway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GerritError::Network {
                url: base.to_string(),
                message: e.to_string(),
            })?;
        Ok(Gerrit {
            http,
            base: base.trim_end_matches('/').to_string(),
            user: user.to_string(),
            password: password.to_string(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The web page of a change.
    pub fn change_url(&self, number: i64) -> String {
        format!("{}/c/{number}", self.base)
    }

    /// Open changes of `project` updated at or after `after` (a Gerrit timestamp), all pages.
    pub async fn open_changes(
        &self,
        project: &str,
        after: Option<&str>,
    ) -> Result<Vec<ChangeInfo>, GerritError> {
        let mut q = format!("project:{project} status:open");
        if let Some(after) = after {
            q.push_str(&format!(" after:\"{after}\""));
        }
        let mut all = Vec::new();
        for page in 0..MAX_PAGES {
            let mut query: Vec<(&str, String)> = vec![
                ("q", q.clone()),
                ("n", PAGE.to_string()),
                ("S", (page * PAGE).to_string()),
            ];
            query.extend(CHANGE_OPTIONS.iter().map(|o| ("o", o.to_string())));
            let url = format!("{}/a/changes/", self.base);
            let changes: Vec<ChangeInfo> = self.get(&url, &query, "the change query").await?;
            let more = changes.last().is_some_and(|c| c.more_changes);
            all.extend(changes);
            if !more {
                return Ok(all);
            }
        }
        tracing::warn!(
            "the Gerrit query returned more than {} changes; the rest is read at the next poll",
            PAGE * MAX_PAGES
        );
        Ok(all)
    }

    /// One change with every option the trigger needs; `None` if Gerrit does not know it (or
    /// the bot may not see it).
    pub async fn change(
        &self,
        project: &str,
        number: i64,
    ) -> Result<Option<ChangeInfo>, GerritError> {
        let url = format!(
            "{}/a/changes/{}",
            self.base,
            change_path_id(project, number)
        );
        let query: Vec<(&str, String)> = CHANGE_OPTIONS
            .iter()
            .map(|o| ("o", o.to_string()))
            .collect();
        match self.get(&url, &query, &format!("change {number}")).await {
            Ok(c) => Ok(Some(c)),
            Err(GerritError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Posts a review (message and votes) on a revision of a change.
    pub async fn post_review(
        &self,
        project: &str,
        number: i64,
        revision: &str,
        review: &ReviewInput,
    ) -> Result<(), GerritError> {
        let url = format!(
            "{}/a/changes/{}/revisions/{}/review",
            self.base,
            change_path_id(project, number),
            encode_segment(revision)
        );
        let what = format!("the review of change {number}");
        let resp = self
            .http
            .post(&url)
            .basic_auth(&self.user, Some(&self.password))
            .json(review)
            .send()
            .await
            .map_err(|e| self.network(e))?;
        self.body(resp, &what).await.map(|_| ())
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&str, String)],
        what: &str,
    ) -> Result<T, GerritError> {
        let resp = self
            .http
            .get(url)
            .query(query)
            .basic_auth(&self.user, Some(&self.password))
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| self.network(e))?;
        let body = self.body(resp, what).await?;
        serde_json::from_str(strip_xssi(&body)).map_err(|e| GerritError::Parse {
            what: what.to_string(),
            message: e.to_string(),
        })
    }

    async fn body(&self, resp: reqwest::Response, what: &str) -> Result<String, GerritError> {
        let status = resp.status();
        let body = resp.text().await.map_err(|e| self.network(e))?;
        if status.is_success() {
            return Ok(body);
        }
        let hint = if status == StatusCode::UNAUTHORIZED {
            " (check review.user and the HTTP password in the secrets store)"
        } else {
            ""
        };
        Err(GerritError::Status {
            what: what.to_string(),
            status: status.as_u16(),
            body: format!("{}{hint}", first_line(&body)),
        })
    }

    fn network(&self, e: reqwest::Error) -> GerritError {
        // The first and the deepest cause ("error sending request: Connection refused"); the
        // URL is named once by the error, and credentials never appear (they go in a header).
        let mut deepest: Option<String> = None;
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            deepest = Some(s.to_string());
            source = s.source();
        }
        let first = e.without_url().to_string();
        GerritError::Network {
            url: self.base.clone(),
            message: match deepest {
                Some(d) if d != first => format!("{first}: {d}"),
                _ => first,
            },
        }
    }
}

fn first_line(body: &str) -> String {
    let line = body.trim().lines().next().unwrap_or("").trim();
    let mut s: String = line.chars().take(200).collect();
    if s.is_empty() {
        s = "(empty body)".into();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_is_stripped_and_ids_encoded() {
        assert_eq!(strip_xssi(")]}'\n[1]"), "[1]");
        assert_eq!(strip_xssi("[1]"), "[1]");
        assert_eq!(
            change_path_id("containers/guest-tools", 12),
            "containers%2Fguest-tools~12"
        );
    }

    #[test]
    fn errors_know_what_is_worth_retrying() {
        let s = |status| GerritError::Status {
            what: "x".into(),
            status,
            body: String::new(),
        };
        assert!(s(503).retryable() && s(429).retryable());
        assert!(!s(409).retryable() && !s(401).retryable() && !s(400).retryable());
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_retryable_network_error_without_the_password() {
        let g = Gerrit::new("http://127.0.0.1:9", "bot", "s3cret-pw").unwrap();
        let e = g.change("p", 1).await.unwrap_err();
        assert!(e.retryable());
        let text = e.to_string();
        assert!(
            text.contains("refused") && text.matches("127.0.0.1:9").count() == 1,
            "{text}"
        );
        assert!(!text.contains("s3cret-pw"));
        assert!(!format!("{g:?}").contains("s3cret-pw"));
    }
}
