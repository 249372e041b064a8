//! The message a presubmit run posts on its change.

/// What a finished presubmit run tells its change.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    pub job: &'a str,
    pub run_id: i64,
    pub success: bool,
    /// Link to the run page (`[server] public_url` + `/runs/<id>`).
    pub run_url: &'a str,
    /// The first failed build: name, reason, and the last lines of its log.
    pub failed: Option<(&'a str, &'a str, Vec<String>)>,
    /// Why the run failed when no build did (it could not start: a builds file that does
    /// not plan, a patch set ref that is not the revision).
    pub run_error: Option<&'a str>,
}

/// Lines and characters of a failed build's log a message carries at most.
const MAX_LINES: usize = 20;
const MAX_LINE: usize = 300;

pub fn report_message(r: &ReportInput) -> String {
    let verdict = if r.success { "SUCCESS" } else { "FAILURE" };
    let mut msg = format!(
        "Slipway {job} run {id}: {verdict}\n{url}\n",
        job = r.job,
        id = r.run_id,
        url = r.run_url
    );
    if let (None, false, Some(e)) = (&r.failed, r.success, r.run_error) {
        msg.push_str(&format!("\nThe run failed: {}\n", clean(e)));
    }
    if let Some((build, reason, lines)) = &r.failed {
        msg.push_str(&format!("\nBuild {build} failed: {}\n", clean(reason)));
        let tail = &lines[lines.len().saturating_sub(MAX_LINES)..];
        if !tail.is_empty() {
            msg.push_str("Last lines of its log:\n");
            for line in tail {
                // Gerrit renders lines indented by a space as preformatted text.
                msg.push_str(&format!("  {}\n", clean(line)));
            }
        }
    }
    msg
}

/// One line of at most `MAX_LINE` characters without control characters (a log is the
/// change's own output: it must not forge the message's layout).
fn clean(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_LINE)
        .collect();
    if text.chars().count() > MAX_LINE {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_carries_the_last_lines_cleaned_and_capped() {
        let lines: Vec<String> = (1..=30).map(|i| format!("line {i}\r\x1b[31m")).collect();
        let m = report_message(&ReportInput {
            job: "presubmit",
            run_id: 7,
            success: false,
            run_url: "https://ci.example.org/runs/7",
            failed: Some(("guest_tools", "step 1 exited with status 2", lines)),
            run_error: Some("not shown: a build failed"),
        });
        assert!(!m.contains("not shown"));
        assert!(m.starts_with("Slipway presubmit run 7: FAILURE\nhttps://ci.example.org/runs/7\n"));
        assert!(m.contains("Build guest_tools failed: step 1 exited with status 2"));
        assert!(!m.contains("line 10\r") && !m.contains('\x1b'));
        assert!(m.contains("  line 11") && m.contains("  line 30"));
        assert!(!m.contains("line 10 "));
        let long = "x".repeat(1000);
        let m = report_message(&ReportInput {
            job: "p",
            run_id: 1,
            success: false,
            run_url: "u",
            failed: Some(("b", &long, vec![])),
            run_error: None,
        });
        assert!(m.len() < 400 && !m.contains("Last lines"));
    }

    #[test]
    fn a_run_that_could_not_start_says_why() {
        let m = report_message(&ReportInput {
            job: "presubmit",
            run_id: 4,
            success: false,
            run_url: "u",
            failed: None,
            run_error: Some("cannot start: builds.toml:3:1: unknown key\nmore"),
        });
        assert!(
            m.ends_with("The run failed: cannot start: builds.toml:3:1: unknown key more\n"),
            "{m}"
        );
    }

    #[test]
    fn a_success_is_two_lines() {
        let m = report_message(&ReportInput {
            job: "presubmit-cr",
            run_id: 3,
            success: true,
            run_url: "http://127.0.0.1:8080/runs/3",
            failed: None,
            run_error: None,
        });
        assert_eq!(
            m,
            "Slipway presubmit-cr run 3: SUCCESS\nhttp://127.0.0.1:8080/runs/3\n"
        );
    }
}
