//! The cases of a session, their outcomes and the JUnit report they make.

use tokio::time::Instant;

use super::capture::bounded;
use crate::logs::BuildLog;

const SUITE: &str = "ContainerTest";
/// Output of a failed check shown in the report.
const SHOW_REPORT: usize = 2000;

pub(super) enum Outcome {
    Passed,
    Failed(String),
    NotRun(String),
}

pub(super) struct Case {
    pub(super) name: String,
    pub(super) outcome: Outcome,
    pub(super) secs: f64,
}

/// What the session has done so far, kept outside it so a timeout or a cancel still reports.
#[derive(Default)]
pub(super) struct Progress {
    pub(super) cases: Vec<Case>,
    pub(super) phase: String,
}

impl Progress {
    pub(super) fn record(
        &mut self,
        name: &str,
        outcome: Outcome,
        started: Instant,
        log: &BuildLog,
    ) {
        let secs = started.elapsed().as_secs_f64();
        match &outcome {
            Outcome::Passed => log.info(&format!("ok: {name} ({secs:.1}s)")),
            Outcome::Failed(why) => {
                let mut lines = why.lines();
                log.info(&format!(
                    "FAILED: {name} ({secs:.1}s): {}",
                    lines.next().unwrap_or("")
                ));
                for line in lines {
                    log.line("out", line);
                }
            }
            Outcome::NotRun(why) => log.info(&format!("not run: {name}: {why}")),
        }
        self.cases.push(Case {
            name: name.to_string(),
            outcome,
            secs,
        });
    }
}

pub(super) fn report_xml(cases: &[Case]) -> String {
    let failures = cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
        .count();
    let skipped = cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::NotRun(_)))
        .count();
    let total: f64 = cases.iter().map(|c| c.secs).sum();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"{SUITE}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{total:.3}\">\n",
        cases.len()
    );
    for c in cases {
        let head = format!(
            "<testcase classname=\"{SUITE}\" name=\"{}\" time=\"{:.3}\"",
            xml_escape(&c.name),
            c.secs
        );
        match &c.outcome {
            Outcome::Passed => xml.push_str(&format!("{head}/>\n")),
            Outcome::Failed(why) => {
                let first = why.lines().next().unwrap_or("");
                xml.push_str(&format!(
                    "{head}><failure message=\"{}\">{}</failure></testcase>\n",
                    xml_escape(&bounded(first, 500)),
                    xml_escape(&bounded(why, SHOW_REPORT)).replace("&#10;", "\n")
                ));
            }
            Outcome::NotRun(why) => xml.push_str(&format!(
                "{head}><skipped message=\"{}\"/></testcase>\n",
                xml_escape(&bounded(why, 500))
            )),
        }
    }
    xml.push_str("</testsuite>\n</testsuites>\n");
    xml
}

/// Escapes text for XML attributes (and content); characters XML 1.0 cannot hold become
/// U+FFFD.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, outcome: Outcome) -> Case {
        Case {
            name: name.into(),
            outcome,
            secs: 1.5,
        }
    }

    #[test]
    fn report_counts_and_escapes() {
        let xml = report_xml(&[
            case("test_container_starts", Outcome::Passed),
            case(
                "test_system_boots",
                Outcome::Failed("state <starting> & \"x\"\nline 2\u{1}".into()),
            ),
            case(
                "test_sftp",
                Outcome::NotRun("the container did not start".into()),
            ),
        ]);
        let suites = crate::junit::parse(&xml, "t").unwrap();
        assert_eq!(suites.len(), 1);
        let s = &suites[0];
        assert_eq!(
            (s.name.as_str(), s.tests, s.failures, s.errors, s.skipped),
            ("ContainerTest", 3, 1, 0, 1)
        );
        assert!(xml.contains("message=\"state &lt;starting&gt; &amp; &quot;x&quot;\""));
        assert!(xml.contains("line 2\u{FFFD}"));
        assert!(xml.contains(
            "<testcase classname=\"ContainerTest\" name=\"test_container_starts\" time=\"1.500\"/>"
        ));
    }
}
