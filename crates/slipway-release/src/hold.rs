//! A person's hold on a milestone, set or lifted from the CLI or the API alike: the hold and
//! its line in the policy timeline.

use slipway_store::{NewPolicyEvent, Store, StoreError};

/// Holds the milestone; the timeline's line (`held by <by>: <reason>`).
pub async fn hold(
    store: &Store,
    project: &str,
    milestone: u32,
    by: &str,
    reason: Option<&str>,
) -> Result<String, StoreError> {
    store.hold(project, milestone, by, reason).await?;
    let detail = match reason {
        Some(r) => format!("held by {by}: {r}"),
        None => format!("held by {by}"),
    };
    record(store, project, milestone, "hold", &detail).await?;
    Ok(detail)
}

/// Lifts the hold; `None` if the milestone was not held.
pub async fn unhold(
    store: &Store,
    project: &str,
    milestone: u32,
    by: &str,
) -> Result<Option<String>, StoreError> {
    if !store.unhold(project, milestone).await? {
        return Ok(None);
    }
    let detail = format!("hold lifted by {by}");
    record(store, project, milestone, "unhold", &detail).await?;
    Ok(Some(detail))
}

async fn record(
    store: &Store,
    project: &str,
    milestone: u32,
    kind: &str,
    detail: &str,
) -> Result<(), StoreError> {
    store
        .record_policy_event(&NewPolicyEvent {
            project,
            milestone,
            kind,
            detail,
            ..NewPolicyEvent::default()
        })
        .await
        .map(|_| ())
}
