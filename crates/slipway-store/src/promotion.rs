//! Promotions as recorded operations. A promotion (or rollback) is begun before production
//! changes and marked done in the same transaction that records its release, so the record never
//! names a candidate production does not serve, and an operation that is not done tells the next
//! promoter exactly what to finish. At most one operation per milestone is unfinished (a unique
//! partial index): the database, not timing, decides which of two racing promoters goes on.

use serde::Serialize;
use sqlx::Row;

use crate::now;
use crate::owner;
use crate::release::{Candidate, Release, release_row};
use crate::state::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Promotion {
    pub id: i64,
    pub project: String,
    pub milestone: u32,
    pub candidate_id: i64,
    /// `promote` or `rollback`.
    pub kind: String,
    pub promoted_by: String,
    /// `started` or `failed` (unfinished), `done`, `cancelled` (ended before production changed).
    pub state: String,
    pub owner_pid: i64,
    pub owner_start: String,
    pub attempts: i64,
    pub error: Option<String>,
    pub release_id: Option<i64>,
    pub started_at: String,
    pub updated_at: String,
}

impl Promotion {
    /// True when a live process (on this host: the state is local) still runs it.
    pub fn owner_alive(&self) -> bool {
        self.state == "started" && owner::is_alive(self.owner_pid, &self.owner_start)
    }

    /// True when this process runs it.
    pub fn owned_by_me(&self) -> bool {
        let (pid, start) = owner::current();
        self.owner_pid == pid && self.owner_start == start
    }
}

/// What `begin_promotion` found.
#[derive(Debug, Clone)]
pub enum Begin {
    Started(Promotion),
    /// The milestone already has an unfinished operation.
    Busy(Promotion),
}

const SELECT: &str = "SELECT id, project, milestone, candidate_id, kind, promoted_by, state, owner_pid, owner_start, attempts, error, release_id, started_at, updated_at FROM promotions";

fn row(r: &sqlx::sqlite::SqliteRow) -> Promotion {
    Promotion {
        id: r.get(0),
        project: r.get(1),
        milestone: r.get::<i64, _>(2) as u32,
        candidate_id: r.get(3),
        kind: r.get(4),
        promoted_by: r.get(5),
        state: r.get(6),
        owner_pid: r.get(7),
        owner_start: r.get(8),
        attempts: r.get(9),
        error: r.get(10),
        release_id: r.get(11),
        started_at: r.get(12),
        updated_at: r.get(13),
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Store {
    pub async fn promotion(&self, id: i64) -> Result<Option<Promotion>, StoreError> {
        let r = sqlx::query(&format!("{SELECT} WHERE id = ?"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(r.as_ref().map(row))
    }

    /// The milestone's operation that is not done, if any.
    pub async fn unfinished_promotion(
        &self,
        project: &str,
        milestone: u32,
    ) -> Result<Option<Promotion>, StoreError> {
        let r = sqlx::query(&format!(
            "{SELECT} WHERE project = ? AND milestone = ? AND state IN ('started', 'failed')"
        ))
        .bind(project)
        .bind(milestone as i64)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(r.as_ref().map(row))
    }

    /// Operations of a milestone, newest first.
    pub async fn promotions(
        &self,
        project: &str,
        milestone: u32,
    ) -> Result<Vec<Promotion>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE project = ? AND milestone = ? ORDER BY id DESC"
        ))
        .bind(project)
        .bind(milestone as i64)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(rows.iter().map(row).collect())
    }

    /// Records a new operation owned by this process, unless the milestone has an unfinished one.
    pub async fn begin_promotion(
        &self,
        candidate: &Candidate,
        kind: &str,
        by: &str,
    ) -> Result<Begin, StoreError> {
        let (pid, start) = owner::current();
        let at = now();
        let inserted = sqlx::query("INSERT INTO promotions (project, milestone, candidate_id, kind, promoted_by, state, owner_pid, owner_start, started_at, updated_at) VALUES (?, ?, ?, ?, ?, 'started', ?, ?, ?, ?) RETURNING id")
            .bind(&candidate.project)
            .bind(candidate.milestone as i64)
            .bind(candidate.id)
            .bind(kind)
            .bind(by)
            .bind(pid)
            .bind(&start)
            .bind(&at)
            .bind(&at)
            .fetch_one(self.pool())
            .await;
        match inserted {
            Ok(r) => {
                let id: i64 = r.get(0);
                let p = self.promotion(id).await?;
                Ok(Begin::Started(
                    p.ok_or_else(|| self.db_err(sqlx::Error::RowNotFound))?,
                ))
            }
            Err(e) if is_unique_violation(&e) => {
                match self
                    .unfinished_promotion(&candidate.project, candidate.milestone)
                    .await?
                {
                    Some(p) => Ok(Begin::Busy(p)),
                    // Finished between the insert and the read: the caller may try again.
                    None => Err(self.db_err(e)),
                }
            }
            Err(e) => Err(self.db_err(e)),
        }
    }

    /// Makes this process the owner of `p`, an unfinished operation whose owner is gone (dead or
    /// failed). Conditional on the owner still being the one `p` names: of two processes taking
    /// it over at once, exactly one gets `Some`.
    pub async fn take_over_promotion(
        &self,
        p: &Promotion,
    ) -> Result<Option<Promotion>, StoreError> {
        let (pid, start) = owner::current();
        let done = sqlx::query("UPDATE promotions SET owner_pid = ?, owner_start = ?, state = 'started', attempts = attempts + 1, updated_at = ? WHERE id = ? AND state IN ('started', 'failed') AND owner_pid = ? AND owner_start = ?")
            .bind(pid)
            .bind(&start)
            .bind(now())
            .bind(p.id)
            .bind(p.owner_pid)
            .bind(&p.owner_start)
            .execute(self.pool())
            .await
            .map_err(|e| self.db_err(e))?;
        if done.rows_affected() == 1 {
            self.promotion(p.id).await
        } else {
            Ok(None)
        }
    }

    /// Leaves `p` unfinished and ownerless after an error: the next promoter of the milestone
    /// finishes it.
    pub async fn fail_promotion(&self, p: &Promotion, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE promotions SET state = 'failed', owner_pid = 0, owner_start = '', error = ?, updated_at = ? WHERE id = ? AND state = 'started'")
            .bind(error)
            .bind(now())
            .bind(p.id)
            .execute(self.pool())
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Ends `p`, which this process owns, before it wrote anything to production (e.g. a lease
    /// held by another Slipway): nothing is left to finish.
    pub async fn cancel_promotion(&self, p: &Promotion, why: &str) -> Result<(), StoreError> {
        let (pid, start) = owner::current();
        sqlx::query("UPDATE promotions SET state = 'cancelled', error = ?, updated_at = ? WHERE id = ? AND state = 'started' AND owner_pid = ? AND owner_start = ?")
            .bind(why)
            .bind(now())
            .bind(p.id)
            .bind(pid)
            .bind(&start)
            .execute(self.pool())
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Records the release of `p` and marks it done, in one transaction, only while this
    /// process owns it.
    pub async fn finish_promotion(&self, p: &Promotion) -> Result<Release, StoreError> {
        let (pid, start) = owner::current();
        let mut tx = self.pool().begin().await.map_err(|e| self.db_err(e))?;
        let at = now();
        let id: i64 = sqlx::query("INSERT INTO releases (project, milestone, candidate_id, kind, promoted_by, promoted_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id")
            .bind(&p.project)
            .bind(p.milestone as i64)
            .bind(p.candidate_id)
            .bind(&p.kind)
            .bind(&p.promoted_by)
            .bind(&at)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.db_err(e))?
            .get(0);
        let marked = sqlx::query("UPDATE promotions SET state = 'done', release_id = ?, error = NULL, updated_at = ? WHERE id = ? AND state = 'started' AND owner_pid = ? AND owner_start = ?")
            .bind(id)
            .bind(&at)
            .bind(p.id)
            .bind(pid)
            .bind(&start)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_err(e))?;
        if marked.rows_affected() != 1 {
            // Dropping the transaction rolls the release back.
            return Err(StoreError::Conflict(format!(
                "promotion {} is no longer owned by this process",
                p.id
            )));
        }
        let release = sqlx::query(&format!("{} WHERE id = ?", crate::release::RELEASE_SELECT))
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.db_err(e))?;
        let release = release_row(&release);
        tx.commit().await.map_err(|e| self.db_err(e))?;
        Ok(release)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewRun, PublishedObject};

    async fn candidate(store: &Store) -> Candidate {
        let run = store
            .create_run(
                &NewRun {
                    instance: "p/74/j",
                    project: "p",
                    job: "j",
                    milestone: 74,
                    channel: "canary",
                    branch: "main",
                    commit: None,
                    flow: "continuous",
                },
                &[],
            )
            .await
            .unwrap();
        store
            .record_published(
                run,
                "publish",
                &[PublishedObject {
                    bucket: "b".into(),
                    prefix: "74".into(),
                    path: "x".into(),
                    sha256: "0".repeat(64),
                    size: 1,
                }],
            )
            .await
            .unwrap();
        store.create_candidate(run).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn one_unfinished_operation_per_milestone_and_exactly_one_taker() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let c = candidate(&store).await;
        let Begin::Started(first) = store.begin_promotion(&c, "promote", "me").await.unwrap()
        else {
            panic!("the first operation starts");
        };
        assert!(first.owned_by_me() && first.owner_alive());
        let Begin::Busy(busy) = store.begin_promotion(&c, "promote", "me").await.unwrap() else {
            panic!("a second operation waits for the first");
        };
        assert_eq!(busy.id, first.id);

        // The owner dies: simulate with an owner that never existed.
        sqlx::query("UPDATE promotions SET owner_pid = ?, owner_start = '1' WHERE id = ?")
            .bind(i32::MAX as i64)
            .bind(first.id)
            .execute(store.pool())
            .await
            .unwrap();
        let orphan = store.promotion(first.id).await.unwrap().unwrap();
        assert!(!orphan.owner_alive());
        // Two takers read the same orphan; only the first conditional update wins.
        let won = store.take_over_promotion(&orphan).await.unwrap();
        let lost = store.take_over_promotion(&orphan).await.unwrap();
        let won = won.expect("one taker wins");
        assert!(lost.is_none());
        assert_eq!(won.attempts, 2);

        let release = store.finish_promotion(&won).await.unwrap();
        assert_eq!(release.candidate_id, c.id);
        let done = store.promotion(first.id).await.unwrap().unwrap();
        assert_eq!(
            (done.state.as_str(), done.release_id),
            ("done", Some(release.id))
        );
        assert!(store.unfinished_promotion("p", 74).await.unwrap().is_none());
        // Finishing twice records nothing more.
        assert!(store.finish_promotion(&won).await.is_err());
        assert_eq!(store.releases("p", 74).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_failed_operation_is_left_for_the_next_promoter() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let c = candidate(&store).await;
        let Begin::Started(p) = store.begin_promotion(&c, "promote", "me").await.unwrap() else {
            panic!("starts");
        };
        store.fail_promotion(&p, "bucket down").await.unwrap();
        let failed = store.unfinished_promotion("p", 74).await.unwrap().unwrap();
        assert_eq!(failed.state, "failed");
        assert!(!failed.owner_alive());
        assert_eq!(failed.error.as_deref(), Some("bucket down"));
        // Not owned: finishing needs a takeover first.
        assert!(store.finish_promotion(&failed).await.is_err());
        let mine = store.take_over_promotion(&failed).await.unwrap().unwrap();
        store.finish_promotion(&mine).await.unwrap();
    }
}
