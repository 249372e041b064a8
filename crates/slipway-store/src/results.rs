//! Suite results bound to what they tested: a target digest (a candidate's manifest digest) in
//! an environment (`staging` for a candidate, `production` for a release). A result recorded
//! for one candidate counts for every candidate with the same digest, and is `stale` once its
//! environment serves another digest.
//!
//! A build's result is recorded before its run's candidate exists, so its row is bound to the
//! run and reads resolve its digest (and candidate) through `candidates.run_id`; a run that made
//! no candidate leaves its build results without a target (always stale).

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;

use crate::now;
use crate::state::{Store, StoreError};
use crate::suites::SuiteResult;

/// Where the tested bytes were served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// A candidate, as staging serves it.
    Staging,
    /// A release, as production serves it.
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }

    fn parse(s: &str) -> Result<Environment, StoreError> {
        match s {
            "staging" => Ok(Environment::Staging),
            "production" => Ok(Environment::Production),
            other => Err(StoreError::Corrupt(format!(
                "suite result environment '{other}'"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResultStatus {
    /// No case failed or errored.
    Passed,
    Failed,
}

impl ResultStatus {
    pub fn of(s: &SuiteResult) -> ResultStatus {
        if s.passed() {
            ResultStatus::Passed
        } else {
            ResultStatus::Failed
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ResultStatus::Passed => "passed",
            ResultStatus::Failed => "failed",
        }
    }
}

/// What a lab tested: a candidate (staging) or a release (production).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultTarget {
    Candidate(i64),
    Release(i64),
}

/// A lab's result to record.
#[derive(Debug, Clone)]
pub struct NewResult<'a> {
    pub target: ResultTarget,
    /// The name policies require (`pfq`, `bvt-cq`).
    pub suite: &'a str,
    pub report: &'a SuiteResult,
    /// sha256 of the report's bytes: the same report about the same digest is recorded once.
    pub report_digest: &'a str,
    /// RFC 3339 UTC.
    pub started_at: Option<&'a str>,
    pub ended_at: Option<&'a str>,
    pub link: Option<&'a str>,
    /// The token's name, or `cli`.
    pub reporter: &'a str,
}

/// A recorded result, as the release policy reads it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordedResult {
    pub id: i64,
    /// What a policy requires: the build's name for a build's result, else the lab's suite.
    pub suite: String,
    pub environment: Environment,
    /// The candidate named at ingest, or the candidate its build's run made.
    pub candidate_id: Option<i64>,
    /// The release tested (production results).
    pub release_id: Option<i64>,
    pub run_id: Option<i64>,
    pub build: Option<String>,
    /// The manifest digest tested; none for a build of a run that made no candidate.
    pub target_digest: Option<String>,
    /// sha256 of the report's bytes; none for results recorded before digests were kept.
    pub report_digest: Option<String>,
    pub status: ResultStatus,
    /// Same as `status == passed` (kept for earlier readers).
    pub passed: bool,
    #[serde(flatten)]
    pub result: SuiteResult,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub link: Option<String>,
    pub reporter: Option<String>,
    pub recorded_at: String,
    /// The environment no longer serves `target_digest` (computed when read).
    pub stale: bool,
}

/// A result just ingested; `duplicate` when the same report about the same digest was there.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Recorded {
    #[serde(flatten)]
    pub result: RecordedResult,
    pub duplicate: bool,
}

/// The digests an environment of a milestone serves now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Served {
    /// The newest candidate's.
    pub staging: Option<String>,
    /// The live release's candidate's.
    pub production: Option<String>,
}

impl Served {
    fn of(&self, env: Environment) -> Option<&str> {
        match env {
            Environment::Staging => self.staging.as_deref(),
            Environment::Production => self.production.as_deref(),
        }
    }
}

/// Every result with its digest and candidate resolved (a build's through its run's candidate)
/// and the project/milestone of that candidate.
const RESOLVED: &str = "WITH resolved AS (
    SELECT sr.id, sr.suite, sr.environment, COALESCE(sr.candidate_id, rc.id) AS candidate_id,
           sr.release_id, sr.run_id, sr.build, COALESCE(sr.target_digest, rc.digest) AS target_digest,
           sr.report_digest, sr.status, sr.name, sr.tests, sr.failures, sr.errors, sr.skipped,
           sr.source, sr.failed_cases, sr.started_at, sr.ended_at, sr.link, sr.reporter,
           sr.recorded_at, COALESCE(nc.project, rc.project) AS project,
           COALESCE(nc.milestone, rc.milestone) AS milestone
      FROM suite_results sr
      LEFT JOIN candidates rc ON sr.candidate_id IS NULL AND rc.run_id = sr.run_id
      LEFT JOIN candidates nc ON nc.id = sr.candidate_id
)
SELECT id, suite, environment, candidate_id, release_id, run_id, build, target_digest,
       report_digest, status, name, tests, failures, errors, skipped, source, failed_cases,
       started_at, ended_at, link, reporter, recorded_at, project, milestone
  FROM resolved";

/// A row, and the project/milestone its staleness is judged in.
type ResolvedRow = (RecordedResult, Option<(String, u32)>);

fn count(r: &sqlx::sqlite::SqliteRow, i: usize) -> u64 {
    r.get::<i64, _>(i).max(0) as u64
}

fn resolved_row(r: &sqlx::sqlite::SqliteRow) -> Result<ResolvedRow, StoreError> {
    let failed_cases: String = r.get(16);
    let failed_cases: Vec<String> = serde_json::from_str(&failed_cases)
        .map_err(|e| StoreError::Corrupt(format!("failed cases of suite result: {e}")))?;
    let result = SuiteResult {
        name: r.get(10),
        tests: count(r, 11),
        failures: count(r, 12),
        errors: count(r, 13),
        skipped: count(r, 14),
        source: r.get(15),
        failed_cases,
    };
    let status = match r.get::<String, _>(9).as_str() {
        "passed" => ResultStatus::Passed,
        "failed" => ResultStatus::Failed,
        other => {
            return Err(StoreError::Corrupt(format!(
                "suite result status '{other}'"
            )));
        }
    };
    let place = r
        .get::<Option<String>, _>(22)
        .zip(r.get::<Option<i64>, _>(23))
        .map(|(p, m)| (p, m as u32));
    Ok((
        RecordedResult {
            id: r.get(0),
            suite: r.get(1),
            environment: Environment::parse(&r.get::<String, _>(2))?,
            candidate_id: r.get(3),
            release_id: r.get(4),
            run_id: r.get(5),
            build: r.get(6),
            target_digest: r.get(7),
            report_digest: r.get(8),
            status,
            passed: status == ResultStatus::Passed,
            result,
            started_at: r.get(17),
            ended_at: r.get(18),
            link: r.get(19),
            reporter: r.get(20),
            recorded_at: r.get(21),
            stale: true,
        },
        place,
    ))
}

impl Store {
    /// The digests staging and production of a milestone serve now.
    pub async fn served_digests(
        &self,
        project: &str,
        milestone: u32,
    ) -> Result<Served, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT digest FROM candidates WHERE project = ?1 AND milestone = ?2 ORDER BY id DESC LIMIT 1),
                    (SELECT c.digest FROM releases r JOIN candidates c ON c.id = r.candidate_id
                      WHERE r.project = ?1 AND r.milestone = ?2 ORDER BY r.id DESC LIMIT 1)",
        )
        .bind(project)
        .bind(milestone as i64)
        .fetch_one(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(Served {
            staging: row.get(0),
            production: row.get(1),
        })
    }

    pub async fn release(&self, id: i64) -> Result<Option<crate::Release>, StoreError> {
        let row = sqlx::query(&format!("{} WHERE id = ?", crate::release::RELEASE_SELECT))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(row.as_ref().map(crate::release::release_row))
    }

    /// Records a lab's result about a candidate or a release, once: the same suite, target
    /// digest and report digest again returns the recorded result with `duplicate`.
    pub async fn record_result(&self, new: &NewResult<'_>) -> Result<Recorded, StoreError> {
        let (environment, candidate_id, release_id) = match new.target {
            ResultTarget::Candidate(id) => (Environment::Staging, id, None),
            ResultTarget::Release(id) => {
                let release = self.release(id).await?.ok_or(StoreError::NoRelease(id))?;
                (Environment::Production, release.candidate_id, Some(id))
            }
        };
        let candidate = self
            .candidate(candidate_id)
            .await?
            .ok_or(StoreError::NoCandidate(candidate_id))?;
        let failed_cases = serde_json::to_string(&new.report.failed_cases)
            .map_err(|e| StoreError::Corrupt(format!("failed cases: {e}")))?;
        let s = new.report;
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO suite_results (candidate_id, name, tests, failures, errors, skipped, source, recorded_at,
                                        suite, environment, release_id, target_digest, report_digest, status,
                                        failed_cases, started_at, ended_at, link, reporter)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (suite, target_digest, report_digest) DO NOTHING RETURNING id",
        )
        .bind(candidate.id)
        .bind(&s.name)
        .bind(s.tests as i64)
        .bind(s.failures as i64)
        .bind(s.errors as i64)
        .bind(s.skipped as i64)
        .bind(&s.source)
        .bind(now())
        .bind(new.suite)
        .bind(environment.as_str())
        .bind(release_id)
        .bind(&candidate.digest)
        .bind(new.report_digest)
        .bind(ResultStatus::of(s).as_str())
        .bind(failed_cases)
        .bind(new.started_at)
        .bind(new.ended_at)
        .bind(new.link)
        .bind(new.reporter)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        let (id, duplicate) = match inserted {
            Some(id) => (id, false),
            None => {
                let id: i64 = sqlx::query_scalar(
                    "SELECT id FROM suite_results WHERE suite = ? AND target_digest = ? AND report_digest = ?",
                )
                .bind(new.suite)
                .bind(&candidate.digest)
                .bind(new.report_digest)
                .fetch_one(self.pool())
                .await
                .map_err(|e| self.db_err(e))?;
                (id, true)
            }
        };
        let result = self
            .resolved(sqlx::query(&format!("{RESOLVED} WHERE id = ?")).bind(id))
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt(format!("suite result {id} vanished")))?;
        Ok(Recorded { result, duplicate })
    }

    /// Every result about a digest any candidate of the milestone has, oldest first.
    pub async fn results_for_milestone(
        &self,
        project: &str,
        milestone: u32,
    ) -> Result<Vec<RecordedResult>, StoreError> {
        let sql = format!(
            "{RESOLVED} WHERE target_digest IN (SELECT digest FROM candidates WHERE project = ? AND milestone = ?) ORDER BY id"
        );
        self.resolved(sqlx::query(&sql).bind(project).bind(milestone as i64))
            .await
    }

    /// Every result about one digest, oldest first.
    pub async fn results_for_digest(
        &self,
        digest: &str,
    ) -> Result<Vec<RecordedResult>, StoreError> {
        let sql = format!("{RESOLVED} WHERE target_digest = ? ORDER BY id");
        self.resolved(sqlx::query(&sql).bind(digest)).await
    }

    /// Results of a run's builds.
    pub async fn suites_of_run(&self, run_id: i64) -> Result<Vec<RecordedResult>, StoreError> {
        let sql = format!("{RESOLVED} WHERE run_id = ? ORDER BY id");
        self.resolved(sqlx::query(&sql).bind(run_id)).await
    }

    /// Results about a candidate's digest: its run's builds', labs', and those of any candidate
    /// with the same digest.
    pub async fn suites_of_candidate(
        &self,
        candidate_id: i64,
    ) -> Result<Vec<RecordedResult>, StoreError> {
        match self.candidate(candidate_id).await? {
            Some(c) => self.results_for_digest(&c.digest).await,
            None => Ok(Vec::new()),
        }
    }

    /// Runs a [`RESOLVED`] query and judges each row's staleness against what its milestone's
    /// environments serve now.
    async fn resolved<'q>(
        &self,
        q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> Result<Vec<RecordedResult>, StoreError> {
        let rows = q.fetch_all(self.pool()).await.map_err(|e| self.db_err(e))?;
        let mut served: HashMap<(String, u32), Served> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let (mut result, place) = resolved_row(r)?;
            if let (Some(place), Some(digest)) = (place, result.target_digest.as_deref()) {
                if !served.contains_key(&place) {
                    let now_served = self.served_digests(&place.0, place.1).await?;
                    served.insert(place.clone(), now_served);
                }
                result.stale = served[&place].of(result.environment) != Some(digest);
            }
            out.push(result);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{release, run_publishing};

    fn verdict(name: &str, failed: &[&str]) -> SuiteResult {
        let mut s = SuiteResult::new(name, "external");
        s.tests = 3;
        s.failures = failed.len() as u64;
        s.failed_cases = failed.iter().map(|c| c.to_string()).collect();
        s
    }

    fn new<'a>(
        target: ResultTarget,
        suite: &'a str,
        s: &'a SuiteResult,
        digest: &'a str,
    ) -> NewResult<'a> {
        NewResult {
            target,
            suite,
            report: s,
            report_digest: digest,
            started_at: Some("2026-01-01T00:00:00.000Z"),
            ended_at: None,
            link: Some("https://lab.example/7"),
            reporter: "lab-token",
        }
    }

    #[tokio::test]
    async fn a_report_about_a_digest_is_recorded_once() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).await.unwrap();
        let r1 = run_publishing(&store, 74, &[("s", "a", "1")]).await;
        let c1 = store.create_candidate(r1).await.unwrap().unwrap();
        let red = verdict("pfq", &["crostini.Sftp"]);
        let first = store
            .record_result(&new(ResultTarget::Candidate(c1.id), "pfq", &red, "r1"))
            .await
            .unwrap();
        assert!(!first.duplicate);
        let r = &first.result;
        assert_eq!(r.suite, "pfq");
        assert_eq!(r.environment, Environment::Staging);
        assert_eq!(r.status, ResultStatus::Failed);
        assert_eq!(r.result.failed_cases, ["crostini.Sftp"]);
        assert_eq!(r.target_digest.as_deref(), Some(c1.digest.as_str()));
        assert_eq!(r.report_digest.as_deref(), Some("r1"));
        assert_eq!(r.candidate_id, Some(c1.id));
        assert_eq!(r.reporter.as_deref(), Some("lab-token"));
        assert_eq!(r.link.as_deref(), Some("https://lab.example/7"));
        assert!(!r.stale);

        let again = store
            .record_result(&new(ResultTarget::Candidate(c1.id), "pfq", &red, "r1"))
            .await
            .unwrap();
        assert!(again.duplicate);
        assert_eq!(again.result.id, r.id);
        // Another report, or another suite with the same report: new results.
        let green = verdict("pfq", &[]);
        let other = store
            .record_result(&new(ResultTarget::Candidate(c1.id), "pfq", &green, "r2"))
            .await
            .unwrap();
        assert!(!other.duplicate && other.result.passed);
        let renamed = store
            .record_result(&new(ResultTarget::Candidate(c1.id), "pfq-2", &red, "r1"))
            .await
            .unwrap();
        assert!(!renamed.duplicate);
        // The same bytes rebuilt make a candidate with the same digest: the result counts for it,
        // and the same report about it is the same result.
        let r2 = run_publishing(&store, 74, &[("s", "a", "1")]).await;
        let c2 = store.create_candidate(r2).await.unwrap().unwrap();
        assert_eq!(c2.digest, c1.digest);
        let via_c2 = store
            .record_result(&new(ResultTarget::Candidate(c2.id), "pfq", &red, "r1"))
            .await
            .unwrap();
        assert!(via_c2.duplicate);
        assert_eq!(store.suites_of_candidate(c2.id).await.unwrap().len(), 3);
        assert_eq!(store.results_for_milestone("p", 74).await.unwrap().len(), 3);
        assert!(
            store
                .results_for_milestone("p", 75)
                .await
                .unwrap()
                .is_empty()
        );

        assert!(matches!(
            store
                .record_result(&new(ResultTarget::Candidate(99), "pfq", &red, "r9"))
                .await,
            Err(StoreError::NoCandidate(99))
        ));
        assert!(matches!(
            store
                .record_result(&new(ResultTarget::Release(98), "pfq", &red, "r9"))
                .await,
            Err(StoreError::NoRelease(98))
        ));
    }

    #[tokio::test]
    async fn results_go_stale_when_their_environment_serves_another_digest() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).await.unwrap();
        let r1 = run_publishing(&store, 74, &[("s", "a", "1")]).await;
        let green = verdict("lxd_test", &[]);
        // A build's result, recorded before its run's candidate exists: no target yet.
        store
            .record_build_result(r1, "lxd_test", &green, "b1")
            .await
            .unwrap();
        let before = store.suites_of_run(r1).await.unwrap();
        assert_eq!(before[0].target_digest, None);
        assert_eq!(before[0].candidate_id, None);
        assert!(before[0].stale);
        assert_eq!(before[0].result.source, format!("build:{r1}/lxd_test"));

        let c1 = store.create_candidate(r1).await.unwrap().unwrap();
        let built = &store.results_for_milestone("p", 74).await.unwrap()[0];
        assert_eq!(built.suite, "lxd_test");
        assert_eq!(built.build.as_deref(), Some("lxd_test"));
        assert_eq!(built.candidate_id, Some(c1.id));
        assert_eq!(built.target_digest.as_deref(), Some(c1.digest.as_str()));
        assert_eq!(built.environment, Environment::Staging);
        assert!(!built.stale);

        let rel1 = release(&store, c1.id).await;
        let bvt = verdict("bvt-cq", &["crostini.Basic"]);
        let prod = store
            .record_result(&new(ResultTarget::Release(rel1), "bvt-cq", &bvt, "p1"))
            .await
            .unwrap()
            .result;
        assert_eq!(prod.environment, Environment::Production);
        assert_eq!(prod.release_id, Some(rel1));
        assert_eq!(prod.candidate_id, Some(c1.id));
        assert!(!prod.stale);

        // A newer candidate: staging serves it, production still serves candidate 1.
        let r2 = run_publishing(&store, 74, &[("s", "a", "2")]).await;
        let c2 = store.create_candidate(r2).await.unwrap().unwrap();
        let stale = |all: &[RecordedResult]| -> Vec<(String, bool)> {
            all.iter().map(|r| (r.suite.clone(), r.stale)).collect()
        };
        assert_eq!(
            stale(&store.results_for_milestone("p", 74).await.unwrap()),
            [("lxd_test".to_string(), true), ("bvt-cq".into(), false)]
        );
        assert_eq!(
            store.served_digests("p", 74).await.unwrap(),
            Served {
                staging: Some(c2.digest.clone()),
                production: Some(c1.digest.clone())
            }
        );
        // Candidate 2 goes live: production's result about candidate 1 is stale too.
        release(&store, c2.id).await;
        assert_eq!(
            stale(&store.results_for_digest(&c1.digest).await.unwrap()),
            [("lxd_test".to_string(), true), ("bvt-cq".into(), true)]
        );
    }

    #[tokio::test]
    async fn earlier_rows_are_bound_to_their_digest_by_the_migration() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).await.unwrap();
        let r1 = run_publishing(&store, 74, &[("s", "a", "1")]).await;
        let c1 = store.create_candidate(r1).await.unwrap().unwrap();
        store.pool().close().await;

        // The state as 0009 left it: the table as 0003 made it, 0010 not applied.
        let db = tmp.path().join("state.db");
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 10")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::raw_sql(
            "DROP TABLE suite_results;
             CREATE TABLE suite_results (
                 id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER REFERENCES runs (id),
                 build TEXT, candidate_id INTEGER REFERENCES candidates (id), name TEXT NOT NULL,
                 tests INTEGER NOT NULL, failures INTEGER NOT NULL, errors INTEGER NOT NULL,
                 skipped INTEGER NOT NULL, source TEXT NOT NULL, recorded_at TEXT NOT NULL);",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO suite_results (run_id, build, candidate_id, name, tests, failures, errors, skipped, source, recorded_at)
             VALUES (?, 'lxd_test', NULL, 'ContainerTest', 4, 1, 0, 0, 'junit:sponge_log.xml', 't1'),
                    (NULL, NULL, ?, 'pfq', 2, 0, 0, 1, 'external', 't2')",
        )
        .bind(r1)
        .bind(c1.id)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store = Store::open(tmp.path()).await.unwrap();
        let all = store.results_for_milestone("p", 74).await.unwrap();
        let rows: Vec<_> = all
            .iter()
            .map(|r| {
                (
                    r.suite.as_str(),
                    r.status,
                    r.environment,
                    r.target_digest.clone(),
                    r.candidate_id,
                    r.result.source.clone(),
                    r.reporter.clone(),
                    r.stale,
                )
            })
            .collect();
        let d = Some(c1.digest.clone());
        assert_eq!(
            rows,
            [
                (
                    "lxd_test",
                    ResultStatus::Failed,
                    Environment::Staging,
                    d.clone(),
                    Some(c1.id),
                    format!("build:{r1}/lxd_test"),
                    None,
                    false
                ),
                (
                    "pfq",
                    ResultStatus::Passed,
                    Environment::Staging,
                    d,
                    Some(c1.id),
                    "external".to_string(),
                    Some("cli".to_string()),
                    false
                ),
            ]
        );
        assert_eq!(all[0].result.name, "ContainerTest");
        assert_eq!(all[0].report_digest, None);
        assert!(all[0].result.failed_cases.is_empty());
    }
}
