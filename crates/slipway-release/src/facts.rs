//! What the policy is evaluated on: one milestone's candidates, suite results, releases and
//! hold, gathered from the store by the caller. Times are unix seconds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a suite ran: against a candidate in staging, or against a release in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Staging,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "staging" => Ok(Environment::Staging),
            "production" => Ok(Environment::Production),
            other => Err(format!(
                "unknown environment '{other}' (use staging or production)"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateFacts {
    /// Candidate ids grow with creation: a higher id is a newer candidate.
    pub id: i64,
    /// The manifest digest: what results are bound to.
    pub digest: String,
    pub created_at: i64,
    /// Why it was marked bad; a bad candidate is never promoted by the policy.
    pub bad: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultFacts {
    pub id: i64,
    pub suite: String,
    pub environment: Environment,
    /// The digest tested: the candidate's (staging) or the release's candidate's (production).
    pub digest: String,
    pub release_id: Option<i64>,
    pub passed: bool,
    /// Failed or errored cases.
    pub failed_cases: Vec<String>,
    /// When it was recorded (order of arrival).
    pub recorded_at: i64,
    /// When the suite finished, if the report says.
    pub ended_at: Option<i64>,
}

impl ResultFacts {
    /// Orders results by when the verdict was reached, so a result that arrives late but ran
    /// earlier never overrides a newer one; arrival, then id, break ties.
    pub(crate) fn order_key(&self) -> (i64, i64, i64) {
        (
            self.ended_at.unwrap_or(self.recorded_at),
            self.recorded_at,
            self.id,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseFacts {
    pub id: i64,
    pub candidate_id: i64,
    pub promoted_at: i64,
    /// `promote` or `rollback`.
    pub kind: String,
}

/// A person's stop on automatic promotion of a milestone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hold {
    pub by: String,
    pub reason: Option<String>,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MilestoneFacts {
    pub milestone: u32,
    pub channel: String,
    /// Oldest first.
    pub candidates: Vec<CandidateFacts>,
    pub results: Vec<ResultFacts>,
    /// Oldest first; the last one is live.
    pub releases: Vec<ReleaseFacts>,
    pub hold: Option<Hold>,
    pub now: i64,
}

impl MilestoneFacts {
    /// The release production serves now.
    pub fn live(&self) -> Option<&ReleaseFacts> {
        self.releases.last()
    }

    pub fn candidate(&self, id: i64) -> Option<&CandidateFacts> {
        self.candidates.iter().find(|c| c.id == id)
    }

    /// The newest release of a candidate, if it was ever released.
    pub(crate) fn last_release_of(&self, candidate_id: i64) -> Option<&ReleaseFacts> {
        self.releases
            .iter()
            .rev()
            .find(|r| r.candidate_id == candidate_id)
    }
}

/// Failed case names shown in a sentence; the full list stays in the facts.
const CASES_SHOWN: usize = 5;

/// `boot, sftp` or `a, b, c, d, e and 3 more`.
pub(crate) fn case_list(cases: &[String]) -> String {
    let shown = cases[..cases.len().min(CASES_SHOWN)].join(", ");
    match cases.len().saturating_sub(CASES_SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// `1h5m`, `30m`, `45s`: the units config durations are written in.
pub(crate) fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, 'h'), (m, 'm'), (s, 's')] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_config() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(-5), "0s");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(1800), "30m");
        assert_eq!(human_duration(719), "11m59s");
        assert_eq!(human_duration(3900), "1h5m");
    }

    #[test]
    fn long_case_lists_are_cut() {
        let cases: Vec<String> = (1..=8).map(|i| format!("c{i}")).collect();
        assert_eq!(case_list(&cases[..2]), "c1, c2");
        assert_eq!(case_list(&cases), "c1, c2, c3, c4, c5 and 3 more");
    }

    #[test]
    fn environments_round_trip() {
        for e in [Environment::Staging, Environment::Production] {
            assert_eq!(e.as_str().parse::<Environment>(), Ok(e));
            assert_eq!(
                serde_json::to_string(&e).unwrap(),
                format!("\"{}\"", e.as_str())
            );
        }
        assert!(
            "prod"
                .parse::<Environment>()
                .unwrap_err()
                .contains("unknown environment")
        );
    }
}
