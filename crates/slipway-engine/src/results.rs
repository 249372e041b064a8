//! Ingesting a lab's report about a candidate (staging) or a release (production): the report
//! (JUnit XML or Tast JSON) read into one verdict, checked, and recorded once per suite, target
//! digest and report digest. The CLI (`slipway suite record`) and the API (`POST
//! /api/v1/results`) both come through here.

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use slipway_store::{NewResult, Recorded, ResultTarget, Store, StoreError, SuiteResult};

use crate::junit::MAX_REPORT;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// JUnit XML (`<testsuites>`/`<testsuite>`/`<testcase>`).
    Junit,
    /// Tast's `results.json`: a list of tests with their errors.
    Tast,
}

impl ReportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Junit => "junit",
            ReportFormat::Tast => "tast",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{format} report: {message}")]
    BadReport {
        format: &'static str,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IngestError {
    /// The caller's fault (bad report, bad field), not the service's.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            IngestError::BadReport { .. } | IngestError::Invalid(_)
        )
    }
}

/// A report to record.
#[derive(Debug, Clone)]
pub struct Ingest<'a> {
    pub target: ResultTarget,
    /// The suite the result is for; without it (JUnit only, the earlier CLI form) each
    /// `<testsuite>` of the report is a result named by itself.
    pub suite: Option<&'a str>,
    pub format: ReportFormat,
    pub report: &'a [u8],
    pub link: Option<&'a str>,
    /// RFC 3339; default: what the report says (Tast), else none.
    pub started_at: Option<&'a str>,
    pub ended_at: Option<&'a str>,
    /// The token's name, or `cli`.
    pub reporter: &'a str,
}

/// Longest suite name and link accepted.
const MAX_SUITE: usize = 100;
const MAX_LINK: usize = 2048;

fn invalid(message: impl Into<String>) -> IngestError {
    IngestError::Invalid(message.into())
}

/// Suite names are matched against policy config and shown in URLs and pages.
fn check_suite(suite: &str) -> Result<(), IngestError> {
    let ok = !suite.is_empty()
        && suite.len() <= MAX_SUITE
        && suite
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "suite name {suite:?}: use 1 to {MAX_SUITE} letters, digits, '.', '_' or '-'"
        )))
    }
}

fn check_link(link: &str) -> Result<(), IngestError> {
    let scheme_ok = link.starts_with("https://") || link.starts_with("http://");
    if scheme_ok && link.len() <= MAX_LINK && !link.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(invalid(format!(
            "link: an http(s) URL of at most {MAX_LINK} characters"
        )))
    }
}

fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A caller's time, in the state's one format (RFC 3339 UTC with milliseconds).
fn given_time(what: &str, value: Option<&str>) -> Result<Option<String>, IngestError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| utc(t.with_timezone(&Utc)))
                .map_err(|e| invalid(format!("{what} '{v}' is not an RFC 3339 time: {e}")))
        })
        .transpose()
}

/// Reads a report file for ingest, refusing one too large to be a report.
pub fn read_report_file(path: &Path) -> Result<Vec<u8>, IngestError> {
    let unreadable = |e: std::io::Error| invalid(format!("report {}: {e}", path.display()));
    let size = std::fs::metadata(path).map_err(unreadable)?.len();
    if size > MAX_REPORT {
        return Err(invalid(format!(
            "report {}: {size} bytes; a report may have at most {MAX_REPORT}",
            path.display()
        )));
    }
    std::fs::read(path).map_err(unreadable)
}

/// A verdict to record under `suite`, and the span the report says its tests ran in.
struct Verdict {
    suite: String,
    result: SuiteResult,
    started_at: Option<String>,
    ended_at: Option<String>,
}

fn verdicts(req: &Ingest<'_>) -> Result<Vec<Verdict>, IngestError> {
    let format = req.format.as_str();
    let bad = |message: String| IngestError::BadReport { format, message };
    if req.report.len() as u64 > MAX_REPORT {
        return Err(bad(format!(
            "{} bytes; a report may have at most {MAX_REPORT}",
            req.report.len()
        )));
    }
    let text = std::str::from_utf8(req.report).map_err(|e| bad(format!("not UTF-8: {e}")))?;
    let source = "external";
    let verdicts = match (req.format, req.suite) {
        (ReportFormat::Junit, Some(suite)) => {
            let suites = crate::junit::parse(text, source).map_err(bad)?;
            vec![Verdict {
                suite: suite.to_string(),
                result: SuiteResult::merge(&suites, source),
                started_at: None,
                ended_at: None,
            }]
        }
        (ReportFormat::Junit, None) => crate::junit::parse(text, source)
            .map_err(bad)?
            .into_iter()
            .map(|s| Verdict {
                suite: s.name.clone(),
                result: s,
                started_at: None,
                ended_at: None,
            })
            .collect(),
        (ReportFormat::Tast, Some(suite)) => {
            let r = crate::tast::parse(text, suite, source).map_err(bad)?;
            vec![Verdict {
                suite: suite.to_string(),
                result: r.result,
                started_at: r.started_at.map(utc),
                ended_at: r.ended_at.map(utc),
            }]
        }
        (ReportFormat::Tast, None) => {
            return Err(invalid(
                "a Tast report names no suite: give the suite it ran",
            ));
        }
    };
    if verdicts.is_empty() || verdicts.iter().all(|v| v.result.tests == 0) {
        // A run that tested nothing must never count as a pass.
        return Err(bad("no test cases: nothing was tested".into()));
    }
    Ok(verdicts)
}

/// Reads, checks and records a report; one recorded result per suite (one, unless an earlier
/// CLI form left the suite to the JUnit report).
pub async fn ingest(store: &Store, req: &Ingest<'_>) -> Result<Vec<Recorded>, IngestError> {
    if let Some(suite) = req.suite {
        check_suite(suite)?;
    }
    if let Some(link) = req.link {
        check_link(link)?;
    }
    let started_at = given_time("started_at", req.started_at)?;
    let ended_at = given_time("ended_at", req.ended_at)?;
    let verdicts = verdicts(req)?;
    for v in &verdicts {
        check_suite(&v.suite)?;
    }
    let report_digest = slipway_store::report_digest(req.report);
    let mut recorded = Vec::with_capacity(verdicts.len());
    for v in &verdicts {
        let r = store
            .record_result(&NewResult {
                target: req.target,
                suite: &v.suite,
                report: &v.result,
                report_digest: &report_digest,
                started_at: started_at.as_deref().or(v.started_at.as_deref()),
                ended_at: ended_at.as_deref().or(v.ended_at.as_deref()),
                link: req.link,
                reporter: req.reporter,
            })
            .await?;
        tracing::info!(
            id = r.result.id,
            suite = %r.result.suite,
            status = r.result.status.as_str(),
            environment = r.result.environment.as_str(),
            duplicate = r.duplicate,
            reporter = req.reporter,
            "suite result recorded"
        );
        recorded.push(r);
    }
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_names_and_links_are_checked() {
        assert!(check_suite("bvt-cq").is_ok());
        assert!(check_suite("crostini.pfq_2").is_ok());
        for bad in ["", "a b", "../x", "pfq\n", &"x".repeat(101)] {
            assert!(check_suite(bad).is_err(), "{bad:?}");
        }
        assert!(check_link("https://lab.example/runs/7").is_ok());
        assert!(check_link("javascript:alert(1)").is_err());
        assert!(check_link("http://x/\u{7}").is_err());
    }

    #[test]
    fn times_are_normalised_to_utc() {
        assert_eq!(
            given_time("started_at", Some("2026-01-02T03:04:05+02:00")).unwrap(),
            Some("2026-01-02T01:04:05.000Z".to_string())
        );
        let e = given_time("ended_at", Some("soon")).unwrap_err();
        assert!(
            e.to_string()
                .contains("ended_at 'soon' is not an RFC 3339 time")
        );
        assert!(e.is_bad_input());
    }

    fn req(
        format: ReportFormat,
        suite: Option<&'static str>,
        report: &'static str,
    ) -> Ingest<'static> {
        Ingest {
            target: ResultTarget::Candidate(1),
            suite,
            format,
            report: report.as_bytes(),
            link: None,
            started_at: None,
            ended_at: None,
            reporter: "cli",
        }
    }

    #[test]
    fn a_named_junit_report_is_one_verdict_and_nothing_tested_is_refused() {
        let xml = "<testsuites><testsuite name=\"a\"><testcase name=\"x\"/></testsuite>\
                   <testsuite name=\"b\"><testcase classname=\"vm\" name=\"y\"><error/></testcase></testsuite></testsuites>";
        let v = verdicts(&req(ReportFormat::Junit, Some("pfq"), xml)).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].suite, "pfq");
        assert_eq!((v[0].result.tests, v[0].result.errors), (2, 1));
        assert_eq!(v[0].result.failed_cases, ["vm.y"]);
        let per_suite = verdicts(&req(ReportFormat::Junit, None, xml)).unwrap();
        assert_eq!(
            per_suite
                .iter()
                .map(|v| v.suite.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        let empty = verdicts(&req(ReportFormat::Tast, Some("pfq"), "[]"))
            .err()
            .unwrap();
        assert!(
            empty.to_string().contains("tast report: no test cases"),
            "{empty}"
        );
        let unnamed = verdicts(&req(ReportFormat::Tast, None, "[]"))
            .err()
            .unwrap();
        assert!(unnamed.to_string().contains("names no suite"));
        let not_utf8 = Ingest {
            report: b"\xff\xfe",
            ..req(ReportFormat::Junit, Some("pfq"), "")
        };
        assert!(
            verdicts(&not_utf8)
                .err()
                .unwrap()
                .to_string()
                .contains("not UTF-8")
        );
    }
}
