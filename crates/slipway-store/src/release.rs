//! Candidates (what a continuous run published to staging) and releases (candidates promoted to
//! production).

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::now;
use crate::state::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedObject {
    pub bucket: String,
    pub prefix: String,
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Candidate {
    pub id: i64,
    pub project: String,
    pub milestone: u32,
    pub run_id: i64,
    pub commit: Option<String>,
    pub digest: String,
    pub objects: i64,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Release {
    pub id: i64,
    pub project: String,
    pub milestone: u32,
    pub candidate_id: i64,
    pub kind: String,
    pub promoted_by: String,
    pub promoted_at: String,
}

/// sha256 over `bucket prefix/path sha256 size` lines in sorted order: one value naming exactly
/// these bytes at exactly these places.
pub fn manifest_digest(objects: &[PublishedObject]) -> String {
    let mut lines: Vec<String> = objects
        .iter()
        .map(|o| {
            format!(
                "{} {}/{} {} {}\n",
                o.bucket, o.prefix, o.path, o.sha256, o.size
            )
        })
        .collect();
    lines.sort();
    let mut h = Sha256::new();
    for l in lines {
        h.update(l.as_bytes());
    }
    hex::encode(h.finalize())
}

const CANDIDATE_SELECT: &str = "SELECT id, project, milestone, run_id, commit_sha, digest, objects, created_at FROM candidates";
pub(crate) const RELEASE_SELECT: &str =
    "SELECT id, project, milestone, candidate_id, kind, promoted_by, promoted_at FROM releases";

fn candidate_row(r: &sqlx::sqlite::SqliteRow) -> Candidate {
    Candidate {
        id: r.get(0),
        project: r.get(1),
        milestone: r.get::<i64, _>(2) as u32,
        run_id: r.get(3),
        commit: r.get(4),
        digest: r.get(5),
        objects: r.get(6),
        created_at: r.get(7),
    }
}

pub(crate) fn release_row(r: &sqlx::sqlite::SqliteRow) -> Release {
    Release {
        id: r.get(0),
        project: r.get(1),
        milestone: r.get::<i64, _>(2) as u32,
        candidate_id: r.get(3),
        kind: r.get(4),
        promoted_by: r.get(5),
        promoted_at: r.get(6),
    }
}

impl Store {
    pub async fn record_published(
        &self,
        run_id: i64,
        build: &str,
        objects: &[PublishedObject],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await.map_err(|e| self.db_err(e))?;
        for o in objects {
            sqlx::query("INSERT OR REPLACE INTO published (run_id, build, bucket, prefix, path, sha256, size) VALUES (?, ?, ?, ?, ?, ?, ?)")
                .bind(run_id)
                .bind(build)
                .bind(&o.bucket)
                .bind(&o.prefix)
                .bind(&o.path)
                .bind(&o.sha256)
                .bind(o.size as i64)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db_err(e))?;
        }
        tx.commit().await.map_err(|e| self.db_err(e))
    }

    /// Makes a candidate of everything `run_id` published; `None` if it published nothing.
    pub async fn create_candidate(&self, run_id: i64) -> Result<Option<Candidate>, StoreError> {
        let run = self.run(run_id).await?;
        let objects = self.published(run_id).await?;
        if objects.is_empty() {
            return Ok(None);
        }
        let digest = manifest_digest(&objects);
        sqlx::query("INSERT OR IGNORE INTO candidates (project, milestone, run_id, commit_sha, digest, objects, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&run.project)
            .bind(run.milestone as i64)
            .bind(run_id)
            .bind(&run.commit)
            .bind(&digest)
            .bind(objects.len() as i64)
            .bind(now())
            .execute(self.pool())
            .await
            .map_err(|e| self.db_err(e))?;
        let row = sqlx::query(&format!("{CANDIDATE_SELECT} WHERE run_id = ?"))
            .bind(run_id)
            .fetch_one(self.pool())
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(Some(candidate_row(&row)))
    }

    pub async fn published(&self, run_id: i64) -> Result<Vec<PublishedObject>, StoreError> {
        let rows = sqlx::query("SELECT bucket, prefix, path, sha256, size FROM published WHERE run_id = ? ORDER BY bucket, prefix, path")
            .bind(run_id)
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(rows
            .iter()
            .map(|r| PublishedObject {
                bucket: r.get(0),
                prefix: r.get(1),
                path: r.get(2),
                sha256: r.get(3),
                size: r.get::<i64, _>(4).max(0) as u64,
            })
            .collect())
    }

    pub async fn candidate(&self, id: i64) -> Result<Option<Candidate>, StoreError> {
        let row = sqlx::query(&format!("{CANDIDATE_SELECT} WHERE id = ?"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(row.as_ref().map(candidate_row))
    }

    pub async fn candidates(
        &self,
        project: &str,
        milestone: u32,
    ) -> Result<Vec<Candidate>, StoreError> {
        let rows = sqlx::query(&format!(
            "{CANDIDATE_SELECT} WHERE project = ? AND milestone = ? ORDER BY id DESC"
        ))
        .bind(project)
        .bind(milestone as i64)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(rows.iter().map(candidate_row).collect())
    }

    /// The newest candidate of each milestone of `project` (for overviews: one query).
    pub async fn latest_candidates(&self, project: &str) -> Result<Vec<Candidate>, StoreError> {
        let rows = sqlx::query(&format!(
            "{CANDIDATE_SELECT} WHERE id IN (SELECT MAX(id) FROM candidates WHERE project = ? GROUP BY milestone)"
        ))
        .bind(project)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(rows.iter().map(candidate_row).collect())
    }

    /// The live release of each milestone of `project` (for overviews: one query).
    pub async fn latest_releases(&self, project: &str) -> Result<Vec<Release>, StoreError> {
        let rows = sqlx::query(&format!(
            "{RELEASE_SELECT} WHERE id IN (SELECT MAX(id) FROM releases WHERE project = ? GROUP BY milestone)"
        ))
        .bind(project)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(rows.iter().map(release_row).collect())
    }

    /// Releases of a milestone, newest first.
    pub async fn releases(
        &self,
        project: &str,
        milestone: u32,
    ) -> Result<Vec<Release>, StoreError> {
        let rows = sqlx::query(&format!(
            "{RELEASE_SELECT} WHERE project = ? AND milestone = ? ORDER BY id DESC"
        ))
        .bind(project)
        .bind(milestone as i64)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(rows.iter().map(release_row).collect())
    }
}
