//! What was published where over time, read back for checks of what buckets serve (`audit`):
//! every object a run recorded at a bucket prefix, and which candidates production got.

use serde::Serialize;
use sqlx::Row;

use crate::state::{Store, StoreError};

/// One object as one run recorded it at a bucket prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedObject {
    pub run_id: i64,
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// A candidate that was made live at least once; `last_release` orders them by when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleasedCandidate {
    pub candidate_id: i64,
    pub run_id: i64,
    pub last_release: i64,
}

impl Store {
    /// The bucket prefixes the runs of a milestone published to.
    pub async fn published_places(
        &self,
        project: &str,
        milestone: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT p.bucket, p.prefix FROM published p JOIN runs r ON r.id = p.run_id WHERE r.project = ? AND r.milestone = ? ORDER BY p.bucket, p.prefix",
        )
        .bind(project)
        .bind(milestone as i64)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Every object any run recorded at `bucket`/`prefix`, newest run first.
    pub async fn recorded_at(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<RecordedObject>, StoreError> {
        let rows = sqlx::query(
            "SELECT run_id, path, sha256, size FROM published WHERE bucket = ? AND prefix = ? ORDER BY run_id DESC, path",
        )
        .bind(bucket)
        .bind(prefix)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(rows
            .iter()
            .map(|r| RecordedObject {
                run_id: r.get(0),
                path: r.get(1),
                sha256: r.get(2),
                size: r.get::<i64, _>(3).max(0) as u64,
            })
            .collect())
    }

    /// The candidates of a project ever released, the one released last first (a rollback makes
    /// an older candidate the last again).
    pub async fn released_candidates(
        &self,
        project: &str,
    ) -> Result<Vec<ReleasedCandidate>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.id, c.run_id, MAX(r.id) AS last FROM releases r JOIN candidates c ON c.id = r.candidate_id WHERE r.project = ? GROUP BY c.id ORDER BY last DESC",
        )
        .bind(project)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(rows
            .iter()
            .map(|r| ReleasedCandidate {
                candidate_id: r.get(0),
                run_id: r.get(1),
                last_release: r.get(2),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;
    use crate::test_support::{release, run_publishing};

    #[tokio::test]
    async fn places_history_and_released_candidates() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).await.unwrap();
        let r1 = run_publishing(&store, 74, &[("s", "a", "1"), ("t", "x", "9")]).await;
        let r2 = run_publishing(&store, 74, &[("s", "a", "2"), ("s", "b", "3")]).await;
        run_publishing(&store, 75, &[("s", "a", "4")]).await;

        assert_eq!(
            store.published_places("p", 74).await.unwrap(),
            [
                ("s".to_string(), "74".to_string()),
                ("t".into(), "74".into())
            ]
        );
        let at: Vec<_> = store
            .recorded_at("s", "74")
            .await
            .unwrap()
            .into_iter()
            .map(|o| (o.run_id, o.path, o.sha256))
            .collect();
        assert_eq!(
            at,
            [
                (r2, "a".to_string(), "2".to_string()),
                (r2, "b".into(), "3".into()),
                (r1, "a".into(), "1".into())
            ]
        );

        let c1 = store.create_candidate(r1).await.unwrap().unwrap().id;
        let c2 = store.create_candidate(r2).await.unwrap().unwrap().id;
        assert!(store.released_candidates("p").await.unwrap().is_empty());
        // Promote 1, promote 2, roll back to 1: candidate 1 is the one released last.
        release(&store, c1).await;
        release(&store, c2).await;
        release(&store, c1).await;
        let released: Vec<_> = store
            .released_candidates("p")
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.candidate_id, c.run_id))
            .collect();
        assert_eq!(released, [(c1, r1), (c2, r2)]);
    }
}
