//! Suite verdicts as read from a report (JUnit, Tast JSON), and the results a run's builds
//! record while the run goes on.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::now;
use crate::state::{Store, StoreError};

/// One suite's verdict as a report states it: counts taken from its cases, and the names of the
/// cases that failed or errored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SuiteResult {
    /// The report's own name for the suite (JUnit `<testsuite name>`, joined when a report has
    /// several); what a result gates on is its `suite`.
    pub name: String,
    pub tests: u64,
    pub failures: u64,
    pub errors: u64,
    pub skipped: u64,
    /// `build:<run>/<build>` for a build's report, `external` for a lab's.
    pub source: String,
    /// Failed or errored cases, in report order (at most [`MAX_FAILED_CASES`] names).
    pub failed_cases: Vec<String>,
}

/// Names of failed cases kept per result; the counts stay exact beyond it.
pub const MAX_FAILED_CASES: usize = 200;

impl SuiteResult {
    pub fn new(name: &str, source: &str) -> SuiteResult {
        SuiteResult {
            name: name.to_string(),
            tests: 0,
            failures: 0,
            errors: 0,
            skipped: 0,
            source: source.to_string(),
            failed_cases: Vec::new(),
        }
    }

    /// Passed iff no case failed or errored (skipped cases do not fail a suite).
    pub fn passed(&self) -> bool {
        self.failures == 0 && self.errors == 0
    }

    pub fn add_failed_case(&mut self, case: String) {
        if self.failed_cases.len() < MAX_FAILED_CASES {
            self.failed_cases.push(case);
        }
    }

    /// One verdict over the suites of one report: counts added, failed cases in order.
    pub fn merge(parts: &[SuiteResult], source: &str) -> SuiteResult {
        let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        let mut all = SuiteResult::new(&names.join(", "), source);
        for p in parts {
            all.tests += p.tests;
            all.failures += p.failures;
            all.errors += p.errors;
            all.skipped += p.skipped;
            for case in &p.failed_cases {
                all.add_failed_case(case.clone());
            }
        }
        all
    }
}

/// The report digest of a result: sha256 of the report file's bytes.
pub fn report_digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where a build's result came from.
pub fn build_source(run_id: i64, build: &str) -> String {
    format!("build:{run_id}/{build}")
}

impl Store {
    /// Records the verdict of a report a build of `run_id` wrote, as a staging result named by
    /// the build. Its target digest is left to reads (the run's candidate does not exist yet).
    pub async fn record_build_result(
        &self,
        run_id: i64,
        build: &str,
        s: &SuiteResult,
        report_digest: &str,
    ) -> Result<i64, StoreError> {
        let failed_cases = serde_json::to_string(&s.failed_cases)
            .map_err(|e| StoreError::Corrupt(format!("failed cases: {e}")))?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO suite_results (run_id, build, name, tests, failures, errors, skipped, source, recorded_at,
                                        suite, environment, report_digest, status, failed_cases)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'staging', ?, ?, ?) RETURNING id",
        )
        .bind(run_id)
        .bind(build)
        .bind(&s.name)
        .bind(s.tests as i64)
        .bind(s.failures as i64)
        .bind(s.errors as i64)
        .bind(s.skipped as i64)
        .bind(build_source(run_id, build))
        .bind(now())
        .bind(build)
        .bind(report_digest)
        .bind(crate::ResultStatus::of(s).as_str())
        .bind(failed_cases)
        .fetch_one(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(id)
    }
}
