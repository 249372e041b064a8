//! The service's queue: runs created `queued`, claimed by the dispatcher, continuous heads seen
//! once, and the read queries the API and dashboard list runs with. SQL here stays portable to
//! PostgreSQL (`ON CONFLICT`, no SQLite-only functions).

use sqlx::Row;

use crate::state::{NewRun, RUN_SELECT, RunOrigin, RunRow, insert_run, run_row};
use crate::{RunStatus, Store, StoreError, now, owner};

/// Which runs a listing wants; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub job: Option<String>,
    pub milestone: Option<u32>,
    pub status: Option<String>,
    /// Only runs with a smaller id (paging back through history).
    pub before: Option<i64>,
    pub limit: i64,
}

impl Store {
    /// Records a run `queued`, with its builds `pending`; a dispatcher claims it later.
    pub async fn enqueue_run(
        &self,
        run: &NewRun<'_>,
        builds: &[(String, Vec<String>)],
        origin: &RunOrigin,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool().begin().await.map_err(|e| self.db_err(e))?;
        let id = insert_run(&mut tx, run, builds, origin, false)
            .await
            .map_err(|e| self.db_err(e))?;
        tx.commit().await.map_err(|e| self.db_err(e))?;
        Ok(id)
    }

    /// Whether the continuous instance `(job, milestone)` has already seen `commit`.
    pub async fn head_seen(
        &self,
        job: &str,
        milestone: u32,
        commit: &str,
    ) -> Result<bool, StoreError> {
        let row =
            sqlx::query("SELECT 1 FROM heads WHERE job = ? AND milestone = ? AND commit_sha = ?")
                .bind(job)
                .bind(milestone as i64)
                .bind(commit)
                .fetch_optional(self.pool())
                .await
                .map_err(|e| self.db_err(e))?;
        Ok(row.is_some())
    }

    /// Queues the run for a head commit unless that head was seen before, in one transaction:
    /// two pollers (or one poller before and after a restart) start one run per head.
    /// `None` when the head was already seen.
    pub async fn enqueue_for_head(
        &self,
        run: &NewRun<'_>,
        builds: &[(String, Vec<String>)],
        origin: &RunOrigin,
        commit: &str,
    ) -> Result<Option<i64>, StoreError> {
        let db = |e| self.db_err(e);
        let mut tx = self.pool().begin().await.map_err(db)?;
        let inserted = sqlx::query(
            "INSERT INTO heads (job, milestone, commit_sha, seen_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(run.job)
        .bind(run.milestone as i64)
        .bind(commit)
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if inserted == 0 {
            return Ok(None);
        }
        let id = insert_run(&mut tx, run, builds, origin, false)
            .await
            .map_err(db)?;
        sqlx::query(
            "UPDATE heads SET run_id = ? WHERE job = ? AND milestone = ? AND commit_sha = ?",
        )
        .bind(id)
        .bind(run.job)
        .bind(run.milestone as i64)
        .bind(commit)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Some(id))
    }

    /// Marks a head seen without a run (a head whose plan failed, recorded so it is not retried
    /// at every poll). `false` if it was seen already.
    pub async fn mark_head_seen(
        &self,
        job: &str,
        milestone: u32,
        commit: &str,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO heads (job, milestone, commit_sha, seen_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(job)
        .bind(milestone as i64)
        .bind(commit)
        .bind(now())
        .execute(self.pool())
        .await
        .map_err(|e| self.db_err(e))?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Takes a queued run for this process: `false` if it is no longer queued (cancelled, or
    /// claimed by someone else).
    pub async fn claim_run(&self, run_id: i64) -> Result<bool, StoreError> {
        let (pid, start) = owner::current();
        let claimed = sqlx::query(
            "UPDATE runs SET status = 'running', owner_pid = ?, owner_start = ?, started_at = ? WHERE id = ? AND status = 'queued'",
        )
        .bind(pid)
        .bind(start)
        .bind(now())
        .bind(run_id)
        .execute(self.pool())
        .await
        .map_err(|e| self.db_err(e))?
        .rows_affected();
        Ok(claimed == 1)
    }

    /// Puts a run this process claimed but did not start back in the queue.
    pub async fn unclaim_run(&self, run_id: i64) -> Result<(), StoreError> {
        let (pid, _) = owner::current();
        sqlx::query(
            "UPDATE runs SET status = 'queued', owner_pid = NULL, owner_start = NULL, started_at = NULL WHERE id = ? AND status = 'running' AND owner_pid = ?",
        )
        .bind(run_id)
        .bind(pid)
        .execute(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Cancels a run that has not started. `false` if it is not queued (any more).
    pub async fn cancel_queued(&self, run_id: i64, why: &str) -> Result<bool, StoreError> {
        self.end_queued(run_id, RunStatus::Cancelled, why).await
    }

    /// Ends a run that has not started with `status` (`cancelled`, or `failure` for a run that
    /// cannot start); `false` if it is no longer queued.
    pub async fn end_queued(
        &self,
        run_id: i64,
        status: RunStatus,
        why: &str,
    ) -> Result<bool, StoreError> {
        let db = |e| self.db_err(e);
        let ts = now();
        let mut tx = self.pool().begin().await.map_err(db)?;
        let done = sqlx::query(
            "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ? AND status = 'queued'",
        )
        .bind(status.as_str())
        .bind(why)
        .bind(&ts)
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if done == 1 {
            let leftover = if status == RunStatus::Cancelled {
                "cancelled"
            } else {
                "skipped"
            };
            sqlx::query(
                "UPDATE builds SET status = ?, finished_at = ? WHERE run_id = ? AND status = 'pending'",
            )
            .bind(leftover)
            .bind(&ts)
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(done == 1)
    }

    /// Queued runs, oldest first.
    pub async fn queued_runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!("{RUN_SELECT} WHERE status = 'queued' ORDER BY id"))
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.db_err(e))?;
        rows.iter().map(run_row).collect()
    }

    /// Interrupted service runs to retry once: not a retry themselves, not retried yet, and
    /// still the newest run of their job instance (a newer run supersedes them).
    pub async fn runs_to_retry(&self) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "{RUN_SELECT} r WHERE r.status = 'interrupted' AND r.trigger IN ('continuous', 'manual') AND r.retry_of IS NULL
               AND NOT EXISTS (SELECT 1 FROM runs x WHERE x.retry_of = r.id)
               AND NOT EXISTS (SELECT 1 FROM runs n WHERE n.job = r.job AND n.milestone = r.milestone AND n.id > r.id)
             ORDER BY r.id"
        ))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        rows.iter().map(run_row).collect()
    }

    /// Runs matching `filter`, newest first.
    pub async fn find_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "{RUN_SELECT} WHERE (? IS NULL OR job = ?) AND (? IS NULL OR milestone = ?)
               AND (? IS NULL OR status = ?) AND (? IS NULL OR id < ?)
             ORDER BY id DESC LIMIT ?"
        ))
        .bind(filter.job.as_deref())
        .bind(filter.job.as_deref())
        .bind(filter.milestone.map(i64::from))
        .bind(filter.milestone.map(i64::from))
        .bind(filter.status.as_deref())
        .bind(filter.status.as_deref())
        .bind(filter.before)
        .bind(filter.before)
        .bind(filter.limit.clamp(1, 1000))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        rows.iter().map(run_row).collect()
    }

    /// The newest run of every (job, milestone) that has one.
    pub async fn latest_runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "{RUN_SELECT} WHERE id IN (SELECT MAX(id) FROM runs GROUP BY job, milestone) ORDER BY milestone DESC, job"
        ))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        rows.iter().map(run_row).collect()
    }

    /// The newest run of each given `(job, milestone)` that has one, in no particular order.
    /// One index seek per pair (`runs_job_milestone`), so the cost follows the branch table,
    /// not the length of the history as `latest_runs` does.
    pub async fn latest_runs_of(
        &self,
        instances: &[(String, u32)],
    ) -> Result<Vec<RunRow>, StoreError> {
        let mut found = Vec::new();
        // SQLite takes at most 500 terms in one compound SELECT.
        for chunk in instances.chunks(200) {
            let seeks =
                vec!["SELECT MAX(id) FROM runs WHERE job = ? AND milestone = ?"; chunk.len()]
                    .join(" UNION ALL ");
            let sql = format!("{RUN_SELECT} WHERE id IN ({seeks})");
            let mut query = sqlx::query(&sql);
            for (job, milestone) in chunk {
                query = query.bind(job).bind(i64::from(*milestone));
            }
            let rows = query
                .fetch_all(self.pool())
                .await
                .map_err(|e| self.db_err(e))?;
            for row in &rows {
                found.push(run_row(row)?);
            }
        }
        Ok(found)
    }

    /// A path an artifact with this sha256 was collected under, if any run has one.
    pub async fn artifact_name(&self, sha256: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT path FROM artifacts WHERE sha256 = ? LIMIT 1")
            .bind(sha256)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// How many runs are in each status, for metrics.
    pub async fn run_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status")
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::RunFilter;
    use crate::state::{NewRun, RunOrigin};
    use crate::{RunStatus, Store};

    fn new_run<'a>(job: &'a str, milestone: u32, commit: &'a str) -> NewRun<'a> {
        NewRun {
            instance: "p/74/j",
            project: "p",
            job,
            milestone,
            channel: "canary",
            branch: "main",
            commit: Some(commit),
            flow: "continuous",
        }
    }

    fn origin(trigger: &str) -> RunOrigin {
        RunOrigin {
            trigger: trigger.into(),
            ..RunOrigin::default()
        }
    }

    #[tokio::test]
    async fn a_head_starts_one_run_and_a_claim_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let builds = vec![("a".to_string(), vec![])];
        let first = store
            .enqueue_for_head(
                &new_run("j", 74, "c1"),
                &builds,
                &origin("continuous"),
                "c1",
            )
            .await
            .unwrap();
        let again = store
            .enqueue_for_head(
                &new_run("j", 74, "c1"),
                &builds,
                &origin("continuous"),
                "c1",
            )
            .await
            .unwrap();
        assert!(first.is_some());
        assert_eq!(again, None);
        assert!(store.head_seen("j", 74, "c1").await.unwrap());
        assert!(!store.head_seen("j", 73, "c1").await.unwrap());
        let id = first.unwrap();
        assert_eq!(store.run(id).await.unwrap().status, RunStatus::Queued);
        assert_eq!(store.queued_runs().await.unwrap().len(), 1);
        assert!(store.claim_run(id).await.unwrap());
        assert!(!store.claim_run(id).await.unwrap());
        assert!(!store.cancel_queued(id, "late").await.unwrap());
        assert_eq!(store.run(id).await.unwrap().status, RunStatus::Running);
    }

    #[tokio::test]
    async fn cancelling_a_queued_run_cancels_its_builds_and_filters_find_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let builds = vec![
            ("a".to_string(), vec![]),
            ("b".to_string(), vec!["a".to_string()]),
        ];
        let a = store
            .enqueue_run(&new_run("j", 74, "c1"), &builds, &origin("manual"))
            .await
            .unwrap();
        let b = store
            .enqueue_run(&new_run("k", 73, "c2"), &builds, &origin("manual"))
            .await
            .unwrap();
        assert!(store.cancel_queued(a, "superseded").await.unwrap());
        let run = store.run(a).await.unwrap();
        assert_eq!(run.status, RunStatus::Cancelled);
        assert_eq!(run.trigger.as_deref(), Some("manual"));
        assert!(
            store
                .builds(a)
                .await
                .unwrap()
                .iter()
                .all(|b| b.status.as_str() == "cancelled")
        );
        let all = |f: RunFilter| {
            let store = &store;
            async move {
                store
                    .find_runs(&f)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.run_id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            all(RunFilter {
                limit: 10,
                ..Default::default()
            })
            .await,
            vec![b, a]
        );
        assert_eq!(
            all(RunFilter {
                job: Some("k".into()),
                limit: 10,
                ..Default::default()
            })
            .await,
            vec![b]
        );
        assert_eq!(
            all(RunFilter {
                milestone: Some(74),
                limit: 10,
                ..Default::default()
            })
            .await,
            vec![a]
        );
        assert_eq!(
            all(RunFilter {
                status: Some("queued".into()),
                limit: 10,
                ..Default::default()
            })
            .await,
            vec![b]
        );
        assert_eq!(
            all(RunFilter {
                before: Some(b),
                limit: 10,
                ..Default::default()
            })
            .await,
            vec![a]
        );
        let latest: Vec<i64> = store
            .latest_runs()
            .await
            .unwrap()
            .iter()
            .map(|r| r.run_id)
            .collect();
        assert_eq!(latest, vec![a, b]);
        let pairs = [
            ("j".to_string(), 74),
            ("k".to_string(), 73),
            ("k".to_string(), 74),
        ];
        let mut seeks: Vec<i64> = store
            .latest_runs_of(&pairs)
            .await
            .unwrap()
            .iter()
            .map(|r| r.run_id)
            .collect();
        seeks.sort();
        assert_eq!(seeks, vec![a, b], "one per pair that has a run");
        assert!(store.latest_runs_of(&[]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn interrupted_service_runs_are_retried_once_unless_superseded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let builds = vec![("a".to_string(), vec![])];
        let cli = store
            .create_run(&new_run("j", 72, "c0"), &builds)
            .await
            .unwrap();
        let old = store
            .enqueue_run(&new_run("j", 73, "c1"), &builds, &origin("continuous"))
            .await
            .unwrap();
        let newer = store
            .enqueue_run(&new_run("j", 73, "c2"), &builds, &origin("continuous"))
            .await
            .unwrap();
        let lone = store
            .enqueue_run(&new_run("j", 74, "c3"), &builds, &origin("manual"))
            .await
            .unwrap();
        for id in [cli, old, lone] {
            store
                .finish_run(id, RunStatus::Interrupted, Some("gone"))
                .await
                .unwrap();
        }
        let retry: Vec<i64> = store
            .runs_to_retry()
            .await
            .unwrap()
            .iter()
            .map(|r| r.run_id)
            .collect();
        assert_eq!(
            retry,
            vec![lone],
            "cli runs and superseded runs are not retried"
        );
        let again = RunOrigin {
            trigger: "retry".into(),
            retry_of: Some(lone),
            ..Default::default()
        };
        store
            .enqueue_run(&new_run("j", 74, "c3"), &builds, &again)
            .await
            .unwrap();
        assert!(store.runs_to_retry().await.unwrap().is_empty());
        let _ = newer;
    }
}
