//! Reading JUnit XML (`<testsuites>`/`<testsuite>`/`<testcase>` with `<failure>`, `<error>`,
//! `<skipped>`): counts are taken from the test cases themselves, not from attributes a writer
//! may have got wrong.

use quick_xml::Reader;
use quick_xml::events::Event;
use slipway_store::SuiteResult;

/// Largest report read, so a runaway writer cannot exhaust memory.
pub(crate) const MAX_REPORT: u64 = 64 << 20;

/// One result per `<testsuite>`; `source` names where it came from.
pub(crate) fn parse(xml: &str, source: &str) -> Result<Vec<SuiteResult>, String> {
    let mut reader = Reader::from_str(xml);
    let mut suites: Vec<SuiteResult> = Vec::new();
    let mut current: Option<SuiteResult> = None;
    let mut in_case = false;
    let mut case_name = String::new();
    let mut case_outcome: Option<&'static str> = None;
    let mut saw_root = false;
    loop {
        let event = reader.read_event().map_err(|e| {
            format!(
                "not well-formed XML at byte {}: {e}",
                reader.buffer_position()
            )
        })?;
        let (name, empty) = match &event {
            Event::Start(e) => (e.name().as_ref().to_vec(), false),
            Event::Empty(e) => (e.name().as_ref().to_vec(), true),
            Event::End(e) => {
                match e.name().as_ref() {
                    b"testcase" => {
                        finish_case(&mut current, &mut in_case, &case_name, &mut case_outcome)
                    }
                    b"testsuite" => {
                        if let Some(s) = current.take() {
                            suites.push(s);
                        }
                    }
                    _ => {}
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        match name.as_slice() {
            b"testsuites" => saw_root = true,
            b"testsuite" => {
                saw_root = true;
                let suite_name = attribute(&event, "name").unwrap_or_else(|| "unnamed".into());
                let suite = SuiteResult::new(&suite_name, source);
                if empty {
                    suites.push(suite);
                } else {
                    current = Some(suite);
                }
            }
            b"testcase" => {
                in_case = true;
                case_outcome = None;
                case_name = case_label(&event);
                if empty {
                    finish_case(&mut current, &mut in_case, &case_name, &mut case_outcome);
                }
            }
            b"failure" if in_case => case_outcome = Some("failure"),
            b"error" if in_case => case_outcome = case_outcome.or(Some("error")),
            b"skipped" if in_case => case_outcome = case_outcome.or(Some("skipped")),
            _ => {}
        }
    }
    if !saw_root {
        return Err("no <testsuites> or <testsuite> element: not a JUnit report".into());
    }
    Ok(suites)
}

fn attribute(event: &Event, name: &str) -> Option<String> {
    match event {
        Event::Start(e) | Event::Empty(e) => e
            .try_get_attribute(name)
            .ok()
            .flatten()
            .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned())),
        _ => None,
    }
}

/// `classname.name` (JUnit writers put the class or module there), else the name.
fn case_label(event: &Event) -> String {
    let name = attribute(event, "name").unwrap_or_else(|| "unnamed".into());
    match attribute(event, "classname") {
        Some(class) if !class.is_empty() => format!("{class}.{name}"),
        _ => name,
    }
}

fn finish_case(
    current: &mut Option<SuiteResult>,
    in_case: &mut bool,
    case_name: &str,
    outcome: &mut Option<&'static str>,
) {
    if !*in_case {
        return;
    }
    if let Some(s) = current.as_mut() {
        s.tests += 1;
        let failed = match outcome.take() {
            Some("failure") => {
                s.failures += 1;
                true
            }
            Some("error") => {
                s.errors += 1;
                true
            }
            Some("skipped") => {
                s.skipped += 1;
                false
            }
            _ => false,
        };
        if failed {
            s.add_failed_case(case_name.to_string());
        }
    }
    *in_case = false;
}

/// Reads one JUnit report a build wrote in its workspace (`work`) and records it as one
/// result of the run named by the build (its suites together): step builds' declared reports
/// and native builds' own.
pub(crate) async fn record_report(
    ctx: &crate::executor::Ctx,
    build: &str,
    work: &std::path::Path,
    file: &std::path::Path,
    log: &crate::logs::BuildLog,
) -> crate::executor::BuildResult {
    use crate::executor::fail;
    let rel = file
        .strip_prefix(work)
        .unwrap_or(file)
        .display()
        .to_string();
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    if size > MAX_REPORT {
        return Err(fail(format!(
            "junit report {rel} is {size} bytes; too large"
        )));
    }
    let bytes = std::fs::read(file).map_err(|e| fail(format!("junit report {rel}: {e}")))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| fail(format!("junit report {rel}: not UTF-8: {e}")))?;
    let source = slipway_store::build_source(ctx.run_id, build);
    let suites = parse(text, &source).map_err(|e| fail(format!("junit report {rel}: {e}")))?;
    for s in &suites {
        log.info(&format!(
            "suite {}: {} tests, {} failures, {} errors, {} skipped ({rel})",
            s.name, s.tests, s.failures, s.errors, s.skipped
        ));
    }
    let verdict = SuiteResult::merge(&suites, &source);
    ctx.store
        .record_build_result(
            ctx.run_id,
            build,
            &verdict,
            &slipway_store::report_digest(&bytes),
        )
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cases_by_outcome() {
        let xml = r#"<?xml version="1.0"?>
<testsuites>
  <testsuite name="ContainerTest" tests="99">
    <testcase name="test_starts"/>
    <testcase name="test_sftp"><failure message="inactive">cros-sftp.service inactive</failure></testcase>
    <testcase name="test_garcon"><error message="boom"/></testcase>
    <testcase name="test_gpu"><skipped/></testcase>
  </testsuite>
  <testsuite name="Empty"/>
</testsuites>"#;
        let suites = parse(xml, "build:1/lxd_test").unwrap();
        assert_eq!(suites.len(), 2);
        let s = &suites[0];
        assert_eq!(
            (s.name.as_str(), s.tests, s.failures, s.errors, s.skipped),
            ("ContainerTest", 4, 1, 1, 1)
        );
        assert_eq!(s.failed_cases, ["test_sftp", "test_garcon"]);
        assert!(!s.passed());
        assert!(suites[1].passed());
        let all = SuiteResult::merge(&suites, "build:1/lxd_test");
        assert_eq!(
            (all.name.as_str(), all.tests, all.failures + all.errors),
            ("ContainerTest, Empty", 4, 2)
        );
    }

    #[test]
    fn malformed_reports_are_errors() {
        assert!(parse("<testsuite><testcase></testsuite>", "x").is_err());
        assert!(
            parse("<html></html>", "x")
                .unwrap_err()
                .contains("not a JUnit report")
        );
    }
}
