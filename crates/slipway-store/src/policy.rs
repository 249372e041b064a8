//! Release policy state: holds, candidates marked bad, the policy's timeline of actions, and
//! the webhook notifications it owes. Portable SQL.

use serde::Serialize;
use sqlx::Row;

use crate::{Store, StoreError, now};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HoldRow {
    pub milestone: u32,
    pub held_by: String,
    pub reason: Option<String>,
    pub held_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyEvent {
    pub id: i64,
    pub milestone: u32,
    /// `promote`, `rollback`, `hold`, `unhold`, `error`.
    pub kind: String,
    pub candidate_id: Option<i64>,
    pub release_id: Option<i64>,
    pub detail: String,
    /// Suite result ids that justified the action.
    pub results: Vec<i64>,
    pub at: String,
}

/// A policy action to record.
#[derive(Debug, Clone, Default)]
pub struct NewPolicyEvent<'a> {
    pub project: &'a str,
    pub milestone: u32,
    pub kind: &'a str,
    /// Makes the event (and what it stands for) exactly once; `None`: always recorded.
    pub key: Option<&'a str>,
    pub candidate_id: Option<i64>,
    pub release_id: Option<i64>,
    pub detail: &'a str,
    pub results: &'a [i64],
}

#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub id: i64,
    pub event_key: String,
    pub body: String,
    pub attempts: i64,
}

impl Store {
    /// Holds the milestone (replacing an earlier hold's author and reason).
    pub async fn hold(
        &self,
        project: &str,
        milestone: u32,
        by: &str,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO holds (project, milestone, held_by, reason, held_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (project, milestone) DO UPDATE SET held_by = excluded.held_by, reason = excluded.reason, held_at = excluded.held_at",
        )
        .bind(project)
        .bind(milestone as i64)
        .bind(by)
        .bind(reason)
        .bind(now())
        .execute(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Lifts the hold; `false` if there was none.
    pub async fn unhold(&self, project: &str, milestone: u32) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM holds WHERE project = ? AND milestone = ?")
            .bind(project)
            .bind(milestone as i64)
            .execute(self.pool())
            .await
            .map_err(|e| self.db_err(e))?
            .rows_affected();
        Ok(n == 1)
    }

    pub async fn hold_of(
        &self,
        project: &str,
        milestone: u32,
    ) -> Result<Option<HoldRow>, StoreError> {
        let row = sqlx::query(
            "SELECT milestone, held_by, reason, held_at FROM holds WHERE project = ? AND milestone = ?",
        )
        .bind(project)
        .bind(milestone as i64)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(row.map(|r| HoldRow {
            milestone: r.get::<i64, _>(0) as u32,
            held_by: r.get(1),
            reason: r.get(2),
            held_at: r.get(3),
        }))
    }

    /// Marks a candidate bad (kept: the first reason stands).
    pub async fn mark_bad(&self, candidate_id: i64, reason: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO bad_candidates (candidate_id, reason, marked_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(candidate_id)
        .bind(reason)
        .bind(now())
        .execute(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Bad candidates of a milestone: (candidate id, reason).
    pub async fn bad_candidates(
        &self,
        project: &str,
        milestone: u32,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT b.candidate_id, b.reason FROM bad_candidates b JOIN candidates c ON c.id = b.candidate_id WHERE c.project = ? AND c.milestone = ? ORDER BY b.candidate_id",
        )
        .bind(project)
        .bind(milestone as i64)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Records a policy action; `false` if an event with the same key exists (the action was
    /// taken before).
    pub async fn record_policy_event(&self, e: &NewPolicyEvent<'_>) -> Result<bool, StoreError> {
        let results = serde_json::to_string(e.results).unwrap_or_else(|_| "[]".into());
        let n = sqlx::query(
            "INSERT INTO policy_events (project, milestone, kind, event_key, candidate_id, release_id, detail, results, at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(e.project)
        .bind(e.milestone as i64)
        .bind(e.kind)
        .bind(e.key)
        .bind(e.candidate_id)
        .bind(e.release_id)
        .bind(e.detail)
        .bind(results)
        .bind(now())
        .execute(self.pool())
        .await
        .map_err(|e| self.db_err(e))?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn policy_event_exists(&self, key: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM policy_events WHERE event_key = ?")
            .bind(key)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(row.is_some())
    }

    /// The milestone's policy timeline, newest first.
    pub async fn policy_events(
        &self,
        project: &str,
        milestone: u32,
        limit: i64,
    ) -> Result<Vec<PolicyEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, milestone, kind, candidate_id, release_id, detail, results, at FROM policy_events WHERE project = ? AND milestone = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(project)
        .bind(milestone as i64)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(rows
            .iter()
            .map(|r| PolicyEvent {
                id: r.get(0),
                milestone: r.get::<i64, _>(1) as u32,
                kind: r.get(2),
                candidate_id: r.get(3),
                release_id: r.get(4),
                detail: r.get(5),
                results: serde_json::from_str(&r.get::<String, _>(6)).unwrap_or_default(),
                at: r.get(7),
            })
            .collect())
    }

    /// Queues a notification once per key; `false` if it was queued before.
    pub async fn queue_notification(&self, key: &str, body: &str) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "INSERT INTO notifications (event_key, body, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(key)
        .bind(body)
        .bind(now())
        .execute(self.pool())
        .await
        .map_err(|e| self.db_err(e))?
        .rows_affected();
        Ok(n == 1)
    }

    /// Notifications not yet delivered, oldest first.
    pub async fn pending_notifications(&self) -> Result<Vec<Notification>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event_key, body, attempts FROM notifications WHERE sent_at IS NULL ORDER BY id",
        )
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(rows
            .iter()
            .map(|r| Notification {
                id: r.get(0),
                event_key: r.get(1),
                body: r.get(2),
                attempts: r.get(3),
            })
            .collect())
    }

    /// Records a delivery attempt: sent, or the error.
    pub async fn notification_attempt(
        &self,
        id: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let sent = error.is_none().then(now);
        sqlx::query(
            "UPDATE notifications SET attempts = attempts + 1, sent_at = ?, last_error = ? WHERE id = ?",
        )
        .bind(sent)
        .bind(error)
        .bind(id)
        .execute(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    use super::NewPolicyEvent;

    #[tokio::test]
    async fn holds_events_and_notifications_are_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        assert!(store.hold_of("p", 74).await.unwrap().is_none());
        store
            .hold("p", 74, "alice", Some("lab down"))
            .await
            .unwrap();
        store.hold("p", 74, "bob", None).await.unwrap();
        let h = store.hold_of("p", 74).await.unwrap().unwrap();
        assert_eq!((h.held_by.as_str(), h.reason), ("bob", None));
        assert!(store.unhold("p", 74).await.unwrap());
        assert!(!store.unhold("p", 74).await.unwrap());

        let e = NewPolicyEvent {
            project: "p",
            milestone: 74,
            kind: "rollback",
            key: Some("rollback:3"),
            release_id: Some(3),
            detail: "bvt-cq failed twice",
            results: &[7, 8],
            ..NewPolicyEvent::default()
        };
        assert!(store.record_policy_event(&e).await.unwrap());
        assert!(!store.record_policy_event(&e).await.unwrap());
        assert!(store.policy_event_exists("rollback:3").await.unwrap());
        let events = store.policy_events("p", 74, 10).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].results, vec![7, 8]);

        assert!(store.queue_notification("rollback:3", "{}").await.unwrap());
        assert!(!store.queue_notification("rollback:3", "{}").await.unwrap());
        let pending = store.pending_notifications().await.unwrap();
        assert_eq!(pending.len(), 1);
        store
            .notification_attempt(pending[0].id, Some("503"))
            .await
            .unwrap();
        assert_eq!(store.pending_notifications().await.unwrap()[0].attempts, 1);
        store
            .notification_attempt(pending[0].id, None)
            .await
            .unwrap();
        assert!(store.pending_notifications().await.unwrap().is_empty());
    }
}
