//! Presubmit state: the review changes Slipway watches, each label's vote history per patch
//! set, how many of its crossings each job has fired for, the runs they started and their
//! votes back, and the poll cursor. Portable SQL (`ON CONFLICT`, conditional updates).

use serde::Serialize;
use sqlx::Row;

use crate::state::{NewRun, RunOrigin, insert_run, parse_status};
use crate::{RunStatus, Store, StoreError, now};

/// A change as last seen.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReviewChange {
    pub change_number: i64,
    pub project: String,
    pub branch: String,
    pub change_id: String,
    pub subject: String,
    pub owner: String,
    /// Gerrit's status: NEW, MERGED, ABANDONED.
    pub status: String,
    pub current_patchset: u32,
    pub current_revision: String,
    /// The change's web page.
    pub url: String,
    /// Gerrit's `updated` timestamp.
    pub updated: String,
}

/// One reviewer's vote at a time (nanoseconds, Gerrit's clock).
pub type ReviewVote = (i64, String, i32);

/// The change side of a review-triggered run and its vote back.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReviewRun {
    pub run_id: i64,
    pub change_number: i64,
    pub patchset: u32,
    pub revision: String,
    pub job: String,
    /// The run's status.
    pub status: RunStatus,
    /// `pending`, `sending` (an attempt may have reached Gerrit), `posted`, `skipped`,
    /// `failed`, `none` (a cancelled run votes nothing).
    pub vote_state: String,
    pub vote_value: Option<i32>,
    pub vote_attempts: i64,
    /// When the next attempt may go (milliseconds since the epoch).
    pub vote_next_at: Option<i64>,
    pub vote_note: Option<String>,
}

/// Which patch set and job a run is for.
#[derive(Debug, Clone, Copy)]
pub struct ReviewRunKey<'a> {
    pub change_number: i64,
    pub patchset: u32,
    pub revision: &'a str,
    pub job: &'a str,
}

/// The vote outcome to record.
#[derive(Debug, Clone, Default)]
pub struct VoteUpdate<'a> {
    pub state: &'a str,
    pub value: Option<i32>,
    pub attempts: i64,
    pub next_at: Option<i64>,
    pub note: Option<&'a str>,
}

const REVIEW_RUN_SELECT: &str = "SELECT r.run_id, r.change_number, r.patchset, r.revision, r.job, runs.status, r.vote_state, r.vote_value, r.vote_attempts, r.vote_next_at, r.vote_note FROM review_runs r JOIN runs ON runs.id = r.run_id";

fn review_run(r: &sqlx::sqlite::SqliteRow) -> Result<ReviewRun, StoreError> {
    Ok(ReviewRun {
        run_id: r.get(0),
        change_number: r.get(1),
        patchset: r.get::<i64, _>(2) as u32,
        revision: r.get(3),
        job: r.get(4),
        status: parse_status(r.get::<String, _>(5))?,
        vote_state: r.get(6),
        vote_value: r.get::<Option<i64>, _>(7).map(|v| v as i32),
        vote_attempts: r.get(8),
        vote_next_at: r.get(9),
        vote_note: r.get(10),
    })
}

const CHANGE_SELECT: &str = "SELECT change_number, project, branch, change_id, subject, owner, status, current_patchset, current_revision, url, updated FROM review_changes";

fn review_change(r: &sqlx::sqlite::SqliteRow) -> ReviewChange {
    ReviewChange {
        change_number: r.get(0),
        project: r.get(1),
        branch: r.get(2),
        change_id: r.get(3),
        subject: r.get(4),
        owner: r.get(5),
        status: r.get(6),
        current_patchset: r.get::<i64, _>(7) as u32,
        current_revision: r.get(8),
        url: r.get(9),
        updated: r.get(10),
    }
}

impl Store {
    pub async fn review_cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT updated FROM review_cursor WHERE source = ?")
            .bind(source)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn set_review_cursor(&self, source: &str, updated: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO review_cursor (source, updated) VALUES (?, ?) ON CONFLICT (source) DO UPDATE SET updated = excluded.updated",
        )
        .bind(source)
        .bind(updated)
        .execute(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    pub async fn save_review_change(&self, c: &ReviewChange) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO review_changes (change_number, project, branch, change_id, subject, owner, status, current_patchset, current_revision, url, updated, seen_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (change_number) DO UPDATE SET project = excluded.project, branch = excluded.branch,
               change_id = excluded.change_id, subject = excluded.subject, owner = excluded.owner,
               status = excluded.status, current_patchset = excluded.current_patchset,
               current_revision = excluded.current_revision, url = excluded.url,
               updated = excluded.updated, seen_at = excluded.seen_at",
        )
        .bind(c.change_number)
        .bind(&c.project)
        .bind(&c.branch)
        .bind(&c.change_id)
        .bind(&c.subject)
        .bind(&c.owner)
        .bind(&c.status)
        .bind(c.current_patchset as i64)
        .bind(&c.current_revision)
        .bind(&c.url)
        .bind(&c.updated)
        .bind(now())
        .execute(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    pub async fn review_change(&self, number: i64) -> Result<Option<ReviewChange>, StoreError> {
        let row = sqlx::query(&format!("{CHANGE_SELECT} WHERE change_number = ?"))
            .bind(number)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(row.as_ref().map(review_change))
    }

    /// Changes seen, most recently updated first.
    pub async fn recent_review_changes(&self, limit: i64) -> Result<Vec<ReviewChange>, StoreError> {
        let rows = sqlx::query(&format!(
            "{CHANGE_SELECT} ORDER BY updated DESC, change_number DESC LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(rows.iter().map(review_change).collect())
    }

    pub async fn review_votes(
        &self,
        change: i64,
        patchset: u32,
        label: &str,
    ) -> Result<Vec<ReviewVote>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, account, value FROM review_votes WHERE change_number = ? AND patchset = ? AND label = ? ORDER BY at, account",
        )
        .bind(change)
        .bind(patchset as i64)
        .bind(label)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get::<i64, _>(2) as i32))
            .collect())
    }

    /// Adds vote events; ones already recorded are left as they are.
    pub async fn add_review_votes(
        &self,
        change: i64,
        patchset: u32,
        label: &str,
        votes: &[ReviewVote],
    ) -> Result<(), StoreError> {
        let db = |e| self.db_err(e);
        let mut tx = self.pool().begin().await.map_err(db)?;
        for (at, account, value) in votes {
            sqlx::query(
                "INSERT INTO review_votes (change_number, patchset, label, account, at, value) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(change)
            .bind(patchset as i64)
            .bind(label)
            .bind(account)
            .bind(at)
            .bind(*value as i64)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    /// Crossings of the job's label on the patch set that already started a run (or were
    /// consumed without one).
    pub async fn review_fired(
        &self,
        change: i64,
        patchset: u32,
        job: &str,
    ) -> Result<u32, StoreError> {
        let row = sqlx::query(
            "SELECT fired FROM review_triggers WHERE change_number = ? AND patchset = ? AND job = ?",
        )
        .bind(change)
        .bind(patchset as i64)
        .bind(job)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(row.map(|r| r.get::<i64, _>(0) as u32).unwrap_or(0))
    }

    /// Raises `fired` from `before` to `now` and queues the run in one transaction: `None`
    /// when another observation raised it first (the crossing already has its run).
    #[allow(clippy::too_many_arguments)]
    pub async fn enqueue_review_run(
        &self,
        run: &NewRun<'_>,
        builds: &[(String, Vec<String>)],
        origin: &RunOrigin,
        key: ReviewRunKey<'_>,
        before: u32,
        now_fired: u32,
    ) -> Result<Option<i64>, StoreError> {
        let db = |e| self.db_err(e);
        let mut tx = self.pool().begin().await.map_err(db)?;
        if !raise_fired(
            &mut tx,
            key.change_number,
            key.patchset,
            key.job,
            before,
            now_fired,
        )
        .await
        .map_err(db)?
        {
            return Ok(None);
        }
        let id = insert_run(&mut tx, run, builds, origin, false)
            .await
            .map_err(db)?;
        insert_review_run(&mut tx, id, key).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Some(id))
    }

    /// Raises `fired` without a run (a crossing whose run cannot be planned is reported once,
    /// not at every poll). `false` if another observation raised it first.
    pub async fn consume_review_crossing(
        &self,
        change: i64,
        patchset: u32,
        job: &str,
        before: u32,
        now_fired: u32,
    ) -> Result<bool, StoreError> {
        let db = |e| self.db_err(e);
        let mut tx = self.pool().begin().await.map_err(db)?;
        let raised = raise_fired(&mut tx, change, patchset, job, before, now_fired)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(raised)
    }

    /// Gives the retry of an interrupted review run the same change, patch set and vote duty.
    pub async fn copy_review_run(&self, from: i64, to: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO review_runs (run_id, change_number, patchset, revision, job)
             SELECT ?, change_number, patchset, revision, job FROM review_runs WHERE run_id = ?
             ON CONFLICT DO NOTHING",
        )
        .bind(to)
        .bind(from)
        .execute(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    pub async fn review_run(&self, run_id: i64) -> Result<Option<ReviewRun>, StoreError> {
        let row = sqlx::query(&format!("{REVIEW_RUN_SELECT} WHERE r.run_id = ?"))
            .bind(run_id)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| self.db_err(e))?;
        row.as_ref().map(review_run).transpose()
    }

    /// Runs of a change, newest first.
    pub async fn review_runs_of(&self, change: i64) -> Result<Vec<ReviewRun>, StoreError> {
        let rows = sqlx::query(&format!(
            "{REVIEW_RUN_SELECT} WHERE r.change_number = ? ORDER BY r.run_id DESC"
        ))
        .bind(change)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        rows.iter().map(review_run).collect()
    }

    /// Queued or running runs of a change's patch sets older than `patchset`.
    pub async fn review_runs_superseded(
        &self,
        change: i64,
        patchset: u32,
    ) -> Result<Vec<ReviewRun>, StoreError> {
        let rows = sqlx::query(&format!(
            "{REVIEW_RUN_SELECT} WHERE r.change_number = ? AND r.patchset < ? AND runs.status IN ('queued', 'running') ORDER BY r.run_id"
        ))
        .bind(change)
        .bind(patchset as i64)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        rows.iter().map(review_run).collect()
    }

    /// Finished runs whose vote is still to send (pending, or an attempt that may need
    /// repeating) and whose next attempt is due at `now_ms`.
    pub async fn votes_due(&self, now_ms: i64) -> Result<Vec<ReviewRun>, StoreError> {
        let rows = sqlx::query(&format!(
            "{REVIEW_RUN_SELECT} WHERE r.vote_state IN ('pending', 'sending') AND runs.status NOT IN ('queued', 'running') AND (r.vote_next_at IS NULL OR r.vote_next_at <= ?) ORDER BY r.run_id"
        ))
        .bind(now_ms)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        rows.iter().map(review_run).collect()
    }

    pub async fn set_review_vote(&self, run_id: i64, v: &VoteUpdate<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE review_runs SET vote_state = ?, vote_value = ?, vote_attempts = ?, vote_next_at = ?, vote_note = ? WHERE run_id = ?",
        )
        .bind(v.state)
        .bind(v.value.map(i64::from))
        .bind(v.attempts)
        .bind(v.next_at)
        .bind(v.note)
        .bind(run_id)
        .execute(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }
}

async fn raise_fired(
    tx: &mut sqlx::SqliteConnection,
    change: i64,
    patchset: u32,
    job: &str,
    before: u32,
    now_fired: u32,
) -> Result<bool, sqlx::Error> {
    let changed = if before == 0 {
        sqlx::query(
            "INSERT INTO review_triggers (change_number, patchset, job, fired) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(change)
        .bind(patchset as i64)
        .bind(job)
        .bind(now_fired as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    } else {
        sqlx::query(
            "UPDATE review_triggers SET fired = ? WHERE change_number = ? AND patchset = ? AND job = ? AND fired = ?",
        )
        .bind(now_fired as i64)
        .bind(change)
        .bind(patchset as i64)
        .bind(job)
        .bind(before as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    };
    Ok(changed == 1)
}

async fn insert_review_run(
    tx: &mut sqlx::SqliteConnection,
    run_id: i64,
    key: ReviewRunKey<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO review_runs (run_id, change_number, patchset, revision, job) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(run_id)
    .bind(key.change_number)
    .bind(key.patchset as i64)
    .bind(key.revision)
    .bind(key.job)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
