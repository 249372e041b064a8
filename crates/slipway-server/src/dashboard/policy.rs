//! CSS classes for the release policy's words: a candidate's promotion state, a required
//! suite's verdict and a timeline event's kind. Each maps onto a closed set the stylesheet
//! knows, so whatever a record holds can never become an arbitrary class (or attribute).

const STATES: &[&str] = &[
    "promoted",
    "eligible",
    "waiting",
    "blocked",
    "superseded",
    "held",
];
const VERDICTS: &[&str] = &["passed", "failed", "missing"];
const EVENTS: &[&str] = &["promote", "rollback", "hold", "unhold", "error"];

fn closed(prefix: &str, value: &str, known: &[&str]) -> String {
    let name = if known.contains(&value) {
        value
    } else {
        "unknown"
    };
    format!("{prefix}-{name}")
}

/// `{{ c.policy.state|state_class }}`: `ps-eligible`, ...
pub fn state_class(state: String) -> String {
    closed("ps", &state, STATES)
}

/// `{{ s.status|verdict_class }}`: `req-passed`, `req-failed`, `req-missing`.
pub fn verdict_class(status: String) -> String {
    closed("req", &status, VERDICTS)
}

/// `{{ e.kind|event_class }}`: `ev-promote`, ...
pub fn event_class(kind: String) -> String {
    closed("ev", &kind, EVENTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_come_from_closed_sets() {
        for s in STATES {
            assert_eq!(state_class(s.to_string()), format!("ps-{s}"));
        }
        assert_eq!(verdict_class("failed".into()), "req-failed");
        assert_eq!(event_class("error".into()), "ev-error");
        assert_eq!(state_class("Eligible".into()), "ps-unknown");
        assert_eq!(verdict_class("x\" onclick=\"y".into()), "req-unknown");
        assert_eq!(event_class(String::new()), "ev-unknown");
    }
}
