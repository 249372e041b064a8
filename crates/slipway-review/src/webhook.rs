//! Gerrit webhook deliveries (the webhooks plugin posts stream-events JSON). A delivery only
//! says which change to look at: Slipway reads the change from the REST API and feeds the same
//! trigger logic as a poll, so a forged, duplicated or reordered delivery cannot fake a vote.

use serde::Deserialize;

/// What a delivery names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// `comment-added`, `patchset-created`, ...
    pub kind: String,
    pub project: String,
    pub change: i64,
}

/// Event kinds that can change what a presubmit should do.
pub const RELEVANT: [&str; 5] = [
    "comment-added",
    "patchset-created",
    "vote-deleted",
    "change-abandoned",
    "change-restored",
];

impl WebhookEvent {
    pub fn relevant(&self) -> bool {
        RELEVANT.contains(&self.kind.as_str())
    }
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    change: Option<RawChange>,
}

#[derive(Deserialize)]
struct RawChange {
    project: String,
    // A number in current Gerrit, a string in old versions.
    number: serde_json::Value,
}

/// Reads a delivery; an error says what is wrong with it.
pub fn parse_webhook(body: &[u8]) -> Result<WebhookEvent, String> {
    let raw: Raw = serde_json::from_slice(body).map_err(|e| format!("not a Gerrit event: {e}"))?;
    let Some(change) = raw.change else {
        return Err(format!("event '{}' names no change", raw.kind));
    };
    let number = match &change.number {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|n| *n > 0)
    .ok_or_else(|| format!("change number {} is not a positive number", change.number))?;
    Ok(WebhookEvent {
        kind: raw.kind,
        project: change.project,
        change: number,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_event_shapes_parse() {
        let e = parse_webhook(br#"{"type":"comment-added","change":{"project":"containers/guest-tools","branch":"main","id":"I1","number":12,"subject":"s"},"patchSet":{"number":2,"revision":"abc"},"author":{"username":"alice"},"approvals":[{"type":"Trybot-Ready","value":"1","oldValue":"0"}],"comment":"Patch Set 2: Trybot-Ready+1","eventCreatedOn":1764150000}"#).unwrap();
        assert_eq!(e.change, 12);
        assert_eq!(e.project, "containers/guest-tools");
        assert!(e.relevant());
        let old =
            parse_webhook(br#"{"type":"patchset-created","change":{"project":"p","number":"7"}}"#)
                .unwrap();
        assert_eq!(old.change, 7);
        let ref_updated =
            parse_webhook(br#"{"type":"ref-updated","change":{"project":"p","number":1}}"#)
                .unwrap();
        assert!(!ref_updated.relevant());
    }

    #[test]
    fn bad_deliveries_are_clear_errors() {
        for (body, want) in [
            (&b"not json"[..], "not a Gerrit event"),
            (br#"{"type":"ref-updated"}"#, "names no change"),
            (
                br#"{"type":"x","change":{"project":"p","number":-3}}"#,
                "not a positive number",
            ),
            (
                br#"{"type":"x","change":{"project":"p","number":"12a"}}"#,
                "not a positive number",
            ),
            (
                br#"{"change":{"project":"p","number":1}}"#,
                "not a Gerrit event",
            ),
        ] {
            let e = parse_webhook(body).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
