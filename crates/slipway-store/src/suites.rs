//! Suite results: test verdicts recorded against a run's build or a candidate.

use serde::Serialize;
use sqlx::Row;

use crate::now;
use crate::state::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SuiteResult {
    pub name: String,
    pub tests: u64,
    pub failures: u64,
    pub errors: u64,
    pub skipped: u64,
    /// `junit:<file>` for a build's report, `external` for a lab's.
    pub source: String,
}

impl SuiteResult {
    pub fn passed(&self) -> bool {
        self.failures == 0 && self.errors == 0
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordedSuite {
    pub id: i64,
    pub run_id: Option<i64>,
    pub build: Option<String>,
    pub candidate_id: Option<i64>,
    #[serde(flatten)]
    pub result: SuiteResult,
    pub passed: bool,
    pub recorded_at: String,
}

const SELECT: &str = "SELECT id, run_id, build, candidate_id, name, tests, failures, errors, skipped, source, recorded_at FROM suite_results";

fn row(r: &sqlx::sqlite::SqliteRow) -> RecordedSuite {
    let result = SuiteResult {
        name: r.get(4),
        tests: r.get::<i64, _>(5).max(0) as u64,
        failures: r.get::<i64, _>(6).max(0) as u64,
        errors: r.get::<i64, _>(7).max(0) as u64,
        skipped: r.get::<i64, _>(8).max(0) as u64,
        source: r.get(9),
    };
    RecordedSuite {
        id: r.get(0),
        run_id: r.get(1),
        build: r.get(2),
        candidate_id: r.get(3),
        passed: result.passed(),
        result,
        recorded_at: r.get(10),
    }
}

impl Store {
    /// Records a suite result of a run's build, or (with `candidate_id` only) a lab's verdict.
    pub async fn record_suite(
        &self,
        run_id: Option<i64>,
        build: Option<&str>,
        candidate_id: Option<i64>,
        s: &SuiteResult,
    ) -> Result<i64, StoreError> {
        let id: i64 = sqlx::query(
            "INSERT INTO suite_results (run_id, build, candidate_id, name, tests, failures, errors, skipped, source, recorded_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(run_id)
        .bind(build)
        .bind(candidate_id)
        .bind(&s.name)
        .bind(s.tests as i64)
        .bind(s.failures as i64)
        .bind(s.errors as i64)
        .bind(s.skipped as i64)
        .bind(&s.source)
        .bind(now())
        .fetch_one(self.pool())
        .await
        .map_err(|e| self.db_err(e))?
        .get(0);
        Ok(id)
    }

    pub async fn suites_of_run(&self, run_id: i64) -> Result<Vec<RecordedSuite>, StoreError> {
        let rows = sqlx::query(&format!("{SELECT} WHERE run_id = ? ORDER BY id"))
            .bind(run_id)
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(rows.iter().map(row).collect())
    }

    /// Verdicts about a candidate: its own run's suites and the labs' ones.
    pub async fn suites_of_candidate(
        &self,
        candidate_id: i64,
    ) -> Result<Vec<RecordedSuite>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE candidate_id = ? OR run_id = (SELECT run_id FROM candidates WHERE id = ?) ORDER BY id"
        ))
        .bind(candidate_id)
        .bind(candidate_id)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(rows.iter().map(row).collect())
    }
}
