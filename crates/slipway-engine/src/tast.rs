//! Reading Tast's `results.json`, what the original device lab wrote: a JSON list of tests, each
//! `{"name", "errors": null | [{"time", "reason", "file", "line", "stack"}], "skipReason",
//! "start", "end", ...}` (Tast's `EntityResult`; other fields are ignored). A test with errors
//! failed; one without errors but with a skip reason was skipped.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use slipway_store::SuiteResult;

#[derive(Deserialize)]
struct TastTest {
    name: String,
    #[serde(default)]
    errors: Option<Vec<TastError>>,
    #[serde(default, rename = "skipReason")]
    skip_reason: Option<String>,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

// Only whether there are errors counts; their fields are checked for shape, not kept.
#[derive(Deserialize)]
#[allow(dead_code)]
struct TastError {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    line: Option<i64>,
    #[serde(default)]
    stack: Option<String>,
}

/// A Tast report's verdict and the span its tests ran in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TastReport {
    pub result: SuiteResult,
    /// The earliest start and latest end of its tests (UTC), when they said.
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// Go's zero `time.Time` (0001-01-01T00:00:00Z), which Tast writes for a time it never set.
const GO_ZERO_TIME: i64 = -62_135_596_800;

fn is_unset(t: &DateTime<Utc>) -> bool {
    t.timestamp() <= GO_ZERO_TIME
}

fn time(test: &str, what: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let t = DateTime::parse_from_rfc3339(v)
        .map_err(|e| format!("test {test}: {what} '{v}' is not an RFC 3339 time: {e}"))?
        .with_timezone(&Utc);
    Ok((!is_unset(&t)).then_some(t))
}

/// Parses a `results.json` into one verdict named `suite`.
pub(crate) fn parse(text: &str, suite: &str, source: &str) -> Result<TastReport, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "not valid JSON (line {}, column {}): {e}",
            e.line(),
            e.column()
        )
    })?;
    if !value.is_array() {
        return Err("not a Tast results.json: expected a JSON list of tests".into());
    }
    let tests: Vec<TastTest> =
        serde_json::from_value(value).map_err(|e| format!("not a Tast results.json: {e}"))?;
    let mut result = SuiteResult::new(suite, source);
    let (mut started_at, mut ended_at): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
        (None, None);
    for (i, t) in tests.iter().enumerate() {
        if t.name.trim().is_empty() {
            return Err(format!("test {} of the list has no name", i + 1));
        }
        result.tests += 1;
        if t.errors.as_ref().is_some_and(|e| !e.is_empty()) {
            result.failures += 1;
            result.add_failed_case(t.name.clone());
        } else if t.skip_reason.as_ref().is_some_and(|r| !r.is_empty()) {
            result.skipped += 1;
        }
        if let Some(s) = time(&t.name, "start", t.start.as_deref())? {
            started_at = Some(started_at.map_or(s, |e| e.min(s)));
        }
        if let Some(e) = time(&t.name, "end", t.end.as_deref())? {
            ended_at = Some(ended_at.map_or(e, |x| x.max(e)));
        }
    }
    Ok(TastReport {
        result,
        started_at,
        ended_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"[
  {"name": "crostini.Basic", "pkg": "chromiumos/tast/local/bundles/cros/crostini",
   "errors": null, "start": "2019-03-01T10:00:00.5-08:00", "end": "2019-03-01T10:01:00-08:00",
   "skipReason": "", "outDir": "/tmp/tast/results/crostini.Basic"},
  {"name": "crostini.Sftp", "errors": [], "skipReason": "",
   "start": "2019-03-01T18:01:00Z", "end": "2019-03-01T18:03:30.25Z"}
]"#;

    #[test]
    fn passing_tests_and_their_span() {
        let r = parse(GOOD, "pfq", "external").unwrap();
        assert_eq!(
            (
                r.result.name.as_str(),
                r.result.tests,
                r.result.failures,
                r.result.skipped
            ),
            ("pfq", 2, 0, 0)
        );
        assert!(r.result.passed());
        assert!(r.result.failed_cases.is_empty());
        assert_eq!(
            r.started_at.unwrap().to_rfc3339(),
            "2019-03-01T18:00:00.500+00:00"
        );
        assert_eq!(
            r.ended_at.unwrap().to_rfc3339(),
            "2019-03-01T18:03:30.250+00:00"
        );
    }

    #[test]
    fn errors_fail_a_test_and_skip_reasons_skip_it() {
        let text = r#"[
  {"name": "crostini.Basic", "errors": null, "skipReason": ""},
  {"name": "crostini.Toolkit", "skipReason": "missing SoftwareDeps: vm_host"},
  {"name": "crostini.Sftp", "skipReason": "",
   "errors": [{"time": "2019-03-01T10:00:05Z", "reason": "cros-sftp inactive",
               "file": "sftp.go", "line": 42, "stack": "goroutine 1 [running]"}]},
  {"name": "crostini.Startup", "errors": [{"reason": "timed out"}], "skipReason": "also odd"},
  {"name": "crostini.Zero", "start": "0001-01-01T00:00:00Z", "end": "0001-01-01T00:00:00Z"}
]"#;
        let r = parse(text, "pfq", "external").unwrap();
        let s = &r.result;
        assert_eq!((s.tests, s.failures, s.errors, s.skipped), (5, 2, 0, 1));
        assert!(!s.passed());
        assert_eq!(s.failed_cases, ["crostini.Sftp", "crostini.Startup"]);
        // Go's zero time is "never set", not year 1.
        assert_eq!((r.started_at, r.ended_at), (None, None));
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let err = |t: &str| parse(t, "pfq", "external").unwrap_err();
        assert!(
            err("[{\"name\": \"a\",").contains("not valid JSON (line 1"),
            "{}",
            err("[")
        );
        assert!(err("{\"name\": \"a\"}").contains("expected a JSON list of tests"));
        assert!(err("[{\"errors\": null}]").contains("missing field `name`"));
        assert!(
            err("[{\"name\": \"a\", \"errors\": \"boom\"}]").contains("not a Tast results.json")
        );
        assert!(err("[{\"name\": \" \"}]").contains("test 1 of the list has no name"));
        assert!(
            err("[{\"name\": \"a\", \"start\": \"yesterday\"}]")
                .contains("test a: start 'yesterday' is not an RFC 3339 time")
        );
        // An empty list parses: whether nothing tested may count is the ingest's decision.
        assert_eq!(parse("[]", "pfq", "x").unwrap().result.tests, 0);
    }
}
