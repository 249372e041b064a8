//! How a presubmit run's vote reads on a page: "Verified +1 posted", "sending (attempt 2)",
//! "skipped: patch set 1 is no longer current", "none (cancelled)". The store keeps the vote as
//! state, value, attempts and note (`slipway_store::ReviewRun`); the wording lives here so the
//! presubmit page and the run page say the same thing.

use minijinja::value::ViaDeserialize;

use super::views::ReviewRunRow;

/// `{{ run|vote_text(label) }}`.
pub fn vote_text(run: ViaDeserialize<ReviewRunRow>, label: Option<String>) -> String {
    describe(&run, label.as_deref())
}

pub fn describe(run: &ReviewRunRow, label: Option<&str>) -> String {
    let v = &run.vote;
    let with_note = |what: &str| match v.note.as_deref().filter(|n| !n.is_empty()) {
        Some(note) => format!("{what}: {note}"),
        None => what.to_string(),
    };
    match v.state.as_str() {
        "pending" if matches!(run.status.as_str(), "queued" | "running") => {
            "waits for the run".to_string()
        }
        "pending" if v.attempts > 0 => format!("pending (attempt {} failed)", v.attempts),
        "pending" => "pending".to_string(),
        "sending" => format!("sending (attempt {})", v.attempts.max(1)),
        "posted" => match (v.value, label) {
            (Some(value), Some(label)) => format!("{label} {value:+} posted"),
            (Some(value), None) => format!("{value:+} posted"),
            (None, _) => "comment posted".to_string(),
        },
        "skipped" => with_note("skipped"),
        "failed" => with_note("failed"),
        "none" => format!("none ({})", run.status),
        other => other.to_string(),
    }
}

/// `{{ run|vote_class }}`: one of the classes the stylesheet knows, whatever the store holds.
pub fn vote_class(run: ViaDeserialize<ReviewRunRow>) -> &'static str {
    let v = &run.vote;
    match (v.state.as_str(), v.value) {
        ("posted", Some(value)) if value > 0 => "vote-plus",
        ("posted", Some(value)) if value < 0 => "vote-minus",
        ("posted", _) => "vote-posted",
        ("pending" | "sending", _) => "vote-waiting",
        ("failed", _) => "vote-failed",
        _ => "vote-quiet",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::views::VoteFacts;

    fn run(
        status: &str,
        state: &str,
        value: Option<i32>,
        attempts: i64,
        note: Option<&str>,
    ) -> ReviewRunRow {
        ReviewRunRow {
            run_id: 7,
            job: "presubmit".into(),
            patchset: 2,
            status: status.into(),
            vote: VoteFacts {
                state: state.into(),
                value,
                attempts,
                note: note.map(str::to_string),
            },
        }
    }

    #[test]
    fn every_vote_state_reads_as_a_phrase() {
        let label = Some("Verified");
        let cases = [
            (
                run(
                    "success",
                    "posted",
                    Some(1),
                    1,
                    Some("Verified+1 on patch set 2"),
                ),
                "Verified +1 posted",
            ),
            (
                run("failure", "posted", Some(-1), 1, None),
                "Verified -1 posted",
            ),
            (
                run("success", "posted", None, 1, Some("comment on patch set 2")),
                "comment posted",
            ),
            (
                run("failure", "sending", Some(-1), 2, None),
                "sending (attempt 2)",
            ),
            (
                run("failure", "sending", None, 0, None),
                "sending (attempt 1)",
            ),
            (
                run("running", "pending", None, 0, None),
                "waits for the run",
            ),
            (run("success", "pending", None, 0, None), "pending"),
            (
                run(
                    "success",
                    "pending",
                    None,
                    3,
                    Some("attempt 3 failed, trying again: 503"),
                ),
                "pending (attempt 3 failed)",
            ),
            (
                run(
                    "success",
                    "skipped",
                    None,
                    0,
                    Some("patch set 1 is no longer current"),
                ),
                "skipped: patch set 1 is no longer current",
            ),
            (
                run(
                    "success",
                    "failed",
                    None,
                    5,
                    Some("gave up after 5 attempts: 500"),
                ),
                "failed: gave up after 5 attempts: 500",
            ),
            (run("success", "failed", None, 1, None), "failed"),
            (
                run(
                    "cancelled",
                    "none",
                    None,
                    0,
                    Some("the run ended cancelled: no vote"),
                ),
                "none (cancelled)",
            ),
            (run("success", "mystery", None, 0, None), "mystery"),
        ];
        for (r, want) in cases {
            assert_eq!(describe(&r, label), want, "{r:?}");
        }
        let r = run("success", "posted", Some(1), 1, None);
        assert_eq!(describe(&r, None), "+1 posted");
    }

    #[test]
    fn vote_classes_are_a_closed_set() {
        let class = |r: ReviewRunRow| vote_class(ViaDeserialize(r));
        assert_eq!(
            class(run("success", "posted", Some(1), 1, None)),
            "vote-plus"
        );
        assert_eq!(
            class(run("failure", "posted", Some(-1), 1, None)),
            "vote-minus"
        );
        assert_eq!(
            class(run("success", "posted", None, 1, None)),
            "vote-posted"
        );
        assert_eq!(
            class(run("failure", "sending", Some(-1), 1, None)),
            "vote-waiting"
        );
        assert_eq!(
            class(run("success", "failed", None, 5, None)),
            "vote-failed"
        );
        assert_eq!(
            class(run("success", "\" onclick=\"x", None, 0, None)),
            "vote-quiet"
        );
    }
}
