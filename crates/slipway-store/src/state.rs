//! Run state in SQLite. Every write is a single statement or a transaction, so a crash leaves
//! the database consistent; runs whose owner died are marked `interrupted` at the next open.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::cas::{Cas, CasError};
use crate::status::{BuildStatus, RunStatus};
use crate::{now, owner, private};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database {path}: {source}")]
    Db { path: PathBuf, source: sqlx::Error },
    #[error("state database {path}: migration failed: {source}")]
    Migrate {
        path: PathBuf,
        source: sqlx::migrate::MigrateError,
    },
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cas(#[from] CasError),
    #[error("no run {0}")]
    NoRun(i64),
    #[error("no candidate {0}")]
    NoCandidate(i64),
    #[error("no release {0}")]
    NoRelease(i64),
    #[error("corrupt state: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Conflict(String),
    #[error("cannot clean up {path}: {source}")]
    Cleanup {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct NewRun<'a> {
    pub instance: &'a str,
    pub project: &'a str,
    pub job: &'a str,
    pub milestone: u32,
    pub channel: &'a str,
    pub branch: &'a str,
    pub commit: Option<&'a str>,
    pub flow: &'a str,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunRow {
    pub run_id: i64,
    pub instance: String,
    pub project: String,
    pub job: String,
    pub milestone: u32,
    pub channel: String,
    pub branch: String,
    pub commit: Option<String>,
    pub flow: String,
    pub status: RunStatus,
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// What asked for the run: `continuous`, `manual`, `retry`, `cli` (older runs: none).
    pub trigger: Option<String>,
    pub requested_by: Option<String>,
    /// The interrupted run this one repeats.
    pub retry_of: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BuildRow {
    pub name: String,
    pub needs: Vec<String>,
    pub status: BuildStatus,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Bytes of output dropped past the build's log limit (absent when the log is whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_dropped_bytes: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepRow {
    pub idx: i64,
    pub command: String,
    pub status: String,
    pub exit_code: Option<i64>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ArtifactRow {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// A step as it starts: its row is written once its first process exists (or could not be
/// started), so the process group and cgroup to end after a crash come with it.
pub struct StepStart<'a> {
    /// 1-based position in the build.
    pub idx: usize,
    pub command: &'a str,
    /// When the step began ([`crate::now`]), before its process was spawned.
    pub started_at: &'a str,
    /// The step's process group, when it was spawned.
    pub pgid: Option<i32>,
    /// The cgroup holding the step (`slipway/<owner>/<name>`), when the host has cgroups.
    pub cgroup: Option<&'a str>,
}

/// What a build's log holds, recorded when the build ends.
pub struct LogTotals<'a> {
    pub path: &'a Path,
    pub lines: u64,
    pub bytes: u64,
    /// Bytes dropped past the log limit; `None` when the log is whole.
    pub dropped_bytes: Option<u64>,
}

/// `state.db` + `-wal` -> `state.db-wal`.
fn sidecar(db_path: &Path, suffix: &str) -> PathBuf {
    let mut name = db_path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

pub struct Store {
    pool: SqlitePool,
    db_path: PathBuf,
    data_dir: PathBuf,
    cas: Cas,
}

impl Store {
    /// Opens (creating if needed) the data dir, migrates the schema, and marks runs whose owning
    /// process is gone as `interrupted`.
    ///
    /// The data dir is private: made (or set to) 0700, and `state.db` with its `-wal` and `-shm`
    /// files 0600 (SQLite gives the `-wal`/`-shm` files the mode of the database).
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let data_dir_err = |source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        };
        private::create_private_dir(data_dir).map_err(data_dir_err)?;
        let db_path = data_dir.join("state.db");
        // Made here, empty and 0600, so SQLite never creates it with the umask's mode.
        private::create_private_file(&db_path).map_err(|e| StoreError::Db {
            path: db_path.clone(),
            source: sqlx::Error::Io(e),
        })?;
        for suffix in ["-wal", "-shm"] {
            private::tighten(&sidecar(&db_path, suffix), private::PRIVATE_FILE_MODE);
        }
        let db_err = |source| StoreError::Db {
            path: db_path.clone(),
            source,
        };
        let options = SqliteConnectOptions::new()
            .filename(&db_path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        // An in-process SQLite connection cannot go stale: a ping before every acquire would
        // only add a round trip to the database thread to each statement.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(db_err)?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                path: db_path.clone(),
                source,
            })?;
        let cas = Cas::open(&data_dir.join("cas"))?;
        let store = Store {
            pool,
            db_path,
            data_dir: data_dir.to_path_buf(),
            cas,
        };
        store.recover_interrupted().await?;
        Ok(store)
    }

    pub fn cas(&self) -> &Cas {
        &self.cas
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Folder for one run's logs and scratch space.
    pub fn run_dir(&self, run_id: i64) -> PathBuf {
        self.data_dir.join("runs").join(run_id.to_string())
    }

    pub fn log_path(&self, run_id: i64, build: &str) -> PathBuf {
        self.run_dir(run_id)
            .join("logs")
            .join(format!("{build}.log"))
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(crate) fn db_err(&self, source: sqlx::Error) -> StoreError {
        self.err(source)
    }

    fn err(&self, source: sqlx::Error) -> StoreError {
        StoreError::Db {
            path: self.db_path.clone(),
            source,
        }
    }

    /// Marks runs left `running` by a process that no longer exists.
    pub async fn recover_interrupted(&self) -> Result<Vec<i64>, StoreError> {
        let rows =
            sqlx::query("SELECT id, owner_pid, owner_start FROM runs WHERE status = 'running'")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        let mut recovered = Vec::new();
        for row in rows {
            let id: i64 = row.get(0);
            let pid: Option<i64> = row.get(1);
            let start: Option<String> = row.get(2);
            if owner::is_alive(pid.unwrap_or(0), start.as_deref().unwrap_or("")) {
                continue;
            }
            // Steps of a crashed run may still be running in their own process groups.
            let groups = sqlx::query("SELECT pgid, pgid_start FROM steps WHERE run_id = ? AND status = 'running' AND pgid IS NOT NULL")
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
            for g in groups {
                let pgid: i64 = g.get(0);
                let start: Option<String> = g.get(1);
                if owner::kill_group_if_alive(pgid, start.as_deref().unwrap_or("")) {
                    tracing::warn!(
                        run = id,
                        pgid,
                        "killed a process group left by a crashed run"
                    );
                }
            }
            self.finish_run(
                id,
                RunStatus::Interrupted,
                Some("the process running it stopped unexpectedly"),
            )
            .await?;
            tracing::warn!(run = id, "marked run interrupted: its process is gone");
            recovered.push(id);
        }
        Ok(recovered)
    }

    /// Creates a run owned by this process, with its builds `pending` (the one-shot CLI).
    pub async fn create_run(
        &self,
        run: &NewRun<'_>,
        builds: &[(String, Vec<String>)],
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        let id = insert_run(&mut tx, run, builds, &RunOrigin::cli(), true)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(id)
    }

    pub async fn set_commit(&self, run_id: i64, commit: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET commit_sha = ? WHERE id = ?")
            .bind(commit)
            .bind(run_id)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Sets the run's final status; builds still pending or running get a matching final status.
    pub async fn finish_run(
        &self,
        run_id: i64,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let leftover = match status {
            RunStatus::Cancelled => BuildStatus::Cancelled,
            RunStatus::Interrupted => BuildStatus::Interrupted,
            _ => BuildStatus::Skipped,
        };
        let ts = now();
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        sqlx::query("UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(error)
            .bind(&ts)
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        sqlx::query("UPDATE builds SET status = ?, finished_at = ? WHERE run_id = ? AND status IN ('pending', 'running')")
            .bind(leftover.as_str())
            .bind(&ts)
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        sqlx::query(
            "UPDATE steps SET status = ?, finished_at = ? WHERE run_id = ? AND status = 'running'",
        )
        .bind(leftover.as_str())
        .bind(&ts)
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(())
    }

    pub async fn set_build_status(
        &self,
        run_id: i64,
        build: &str,
        status: BuildStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        build_status_query(run_id, build, status, error)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A build's final status and its log's totals.
    pub async fn finish_build(
        &self,
        run_id: i64,
        build: &str,
        status: BuildStatus,
        error: Option<&str>,
        log: &LogTotals<'_>,
    ) -> Result<(), StoreError> {
        // Two statements, not a transaction (which costs twice the round trips to SQLite's
        // thread): the log's totals first, so a crash between them leaves a build that is still
        // `running` (then marked interrupted) with its log recorded, never a final status
        // without it.
        log_query(run_id, build, log)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        build_status_query(run_id, build, status, error)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records a started step, with its first process and cgroup when it has one: one write,
    /// made once the process exists, so a crash of this process can still end the step.
    pub async fn step_started(
        &self,
        run_id: i64,
        build: &str,
        step: &StepStart<'_>,
    ) -> Result<(), StoreError> {
        let pgid_start = step.pgid.and_then(|p| owner::start_time(p as i64));
        sqlx::query("INSERT OR REPLACE INTO steps (run_id, build, idx, command, status, started_at, pgid, pgid_start, cgroup) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?)")
            .bind(run_id)
            .bind(build)
            .bind(step.idx as i64)
            .bind(step.command)
            .bind(step.started_at)
            .bind(step.pgid)
            .bind(pgid_start)
            .bind(step.cgroup)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub async fn step_finished(
        &self,
        run_id: i64,
        build: &str,
        idx: usize,
        status: &str,
        exit_code: Option<i32>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE steps SET status = ?, exit_code = ?, finished_at = ? WHERE run_id = ? AND build = ? AND idx = ?")
            .bind(status)
            .bind(exit_code)
            .bind(now())
            .bind(run_id)
            .bind(build)
            .bind(idx as i64)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub async fn record_artifacts(
        &self,
        run_id: i64,
        build: &str,
        artifacts: &[ArtifactRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        for a in artifacts {
            sqlx::query("INSERT OR REPLACE INTO artifacts (run_id, build, path, sha256, size) VALUES (?, ?, ?, ?, ?)")
                .bind(run_id)
                .bind(build)
                .bind(&a.path)
                .bind(&a.sha256)
                .bind(a.size as i64)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(())
    }

    pub async fn record_log(
        &self,
        run_id: i64,
        build: &str,
        path: &Path,
        lines: u64,
        bytes: u64,
        dropped_bytes: Option<u64>,
    ) -> Result<(), StoreError> {
        let log = LogTotals {
            path,
            lines,
            bytes,
            dropped_bytes,
        };
        log_query(run_id, build, &log)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub async fn list_runs(&self, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!("{RUN_SELECT} ORDER BY id DESC LIMIT ?"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        rows.iter().map(run_row).collect()
    }

    pub async fn run(&self, run_id: i64) -> Result<RunRow, StoreError> {
        let row = sqlx::query(&format!("{RUN_SELECT} WHERE id = ?"))
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::NoRun(run_id))?;
        run_row(&row)
    }

    pub async fn builds(&self, run_id: i64) -> Result<Vec<BuildRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT b.name, b.needs, b.status, b.error, b.started_at, b.finished_at, l.dropped_bytes FROM builds b LEFT JOIN logs l ON l.run_id = b.run_id AND l.build = b.name WHERE b.run_id = ? ORDER BY b.position",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| {
                let needs: String = r.get(1);
                Ok(BuildRow {
                    name: r.get(0),
                    needs: serde_json::from_str(&needs)
                        .map_err(|e| StoreError::Corrupt(format!("build needs: {e}")))?,
                    status: parse_status(r.get::<String, _>(2))?,
                    error: r.get(3),
                    started_at: r.get(4),
                    finished_at: r.get(5),
                    log_dropped_bytes: r.get(6),
                })
            })
            .collect()
    }

    pub async fn build_status(
        &self,
        run_id: i64,
        build: &str,
    ) -> Result<Option<BuildStatus>, StoreError> {
        let row = sqlx::query("SELECT status FROM builds WHERE run_id = ? AND name = ?")
            .bind(run_id)
            .bind(build)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| parse_status(r.get::<String, _>(0))).transpose()
    }

    pub async fn steps(&self, run_id: i64, build: &str) -> Result<Vec<StepRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, command, status, exit_code, started_at, finished_at FROM steps WHERE run_id = ? AND build = ? ORDER BY idx",
        )
        .bind(run_id)
        .bind(build)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| StepRow {
                idx: r.get(0),
                command: r.get(1),
                status: r.get(2),
                exit_code: r.get(3),
                started_at: r.get(4),
                finished_at: r.get(5),
            })
            .collect())
    }

    pub async fn artifacts(
        &self,
        run_id: i64,
        build: &str,
    ) -> Result<Vec<ArtifactRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT path, sha256, size FROM artifacts WHERE run_id = ? AND build = ? ORDER BY path",
        )
        .bind(run_id)
        .bind(build)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(|r| artifact_row(r, 0)).collect())
    }

    /// Every artifact of a run, by build (builds without artifacts are absent): one query for
    /// a whole run's outcome rather than one per build.
    pub async fn run_artifacts(
        &self,
        run_id: i64,
    ) -> Result<BTreeMap<String, Vec<ArtifactRow>>, StoreError> {
        let rows = sqlx::query(
            "SELECT build, path, sha256, size FROM artifacts WHERE run_id = ? ORDER BY build, path",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let mut by_build: BTreeMap<String, Vec<ArtifactRow>> = BTreeMap::new();
        for r in &rows {
            by_build
                .entry(r.get(0))
                .or_default()
                .push(artifact_row(r, 1));
        }
        Ok(by_build)
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

fn build_status_query<'q>(
    run_id: i64,
    build: &'q str,
    status: BuildStatus,
    error: Option<&'q str>,
) -> Query<'q> {
    let query = if status == BuildStatus::Running {
        "UPDATE builds SET status = ?, error = ?, started_at = ? WHERE run_id = ? AND name = ?"
    } else {
        "UPDATE builds SET status = ?, error = ?, finished_at = ? WHERE run_id = ? AND name = ?"
    };
    sqlx::query(query)
        .bind(status.as_str())
        .bind(error)
        .bind(now())
        .bind(run_id)
        .bind(build)
}

fn log_query<'q>(run_id: i64, build: &'q str, log: &LogTotals<'_>) -> Query<'q> {
    sqlx::query("INSERT OR REPLACE INTO logs (run_id, build, path, lines, bytes, dropped_bytes) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(run_id)
        .bind(build)
        .bind(log.path.display().to_string())
        .bind(log.lines as i64)
        .bind(log.bytes as i64)
        .bind(log.dropped_bytes.map(|b| b as i64))
}

/// An artifact from `path, sha256, size` at column `first` on.
fn artifact_row(r: &sqlx::sqlite::SqliteRow, first: usize) -> ArtifactRow {
    ArtifactRow {
        path: r.get(first),
        sha256: r.get(first + 1),
        size: r.get::<i64, _>(first + 2).max(0) as u64,
    }
}

pub(crate) const RUN_SELECT: &str = "SELECT id, instance, project, job, milestone, channel, branch, commit_sha, flow, status, error, created_at, finished_at, started_at, trigger, requested_by, retry_of FROM runs";

pub(crate) fn run_row(r: &sqlx::sqlite::SqliteRow) -> Result<RunRow, StoreError> {
    Ok(RunRow {
        run_id: r.get(0),
        instance: r.get(1),
        project: r.get(2),
        job: r.get(3),
        milestone: r.get::<i64, _>(4) as u32,
        channel: r.get(5),
        branch: r.get(6),
        commit: r.get(7),
        flow: r.get(8),
        status: parse_status(r.get::<String, _>(9))?,
        error: r.get(10),
        created_at: r.get(11),
        finished_at: r.get(12),
        started_at: r.get(13),
        trigger: r.get(14),
        requested_by: r.get(15),
        retry_of: r.get(16),
    })
}

pub(crate) fn parse_status<T: FromStr<Err = String>>(s: String) -> Result<T, StoreError> {
    T::from_str(&s).map_err(StoreError::Corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_run() -> NewRun<'static> {
        NewRun {
            instance: "p/74/job",
            project: "p",
            job: "job",
            milestone: 74,
            channel: "canary",
            branch: "main",
            commit: None,
            flow: "manual",
        }
    }

    #[tokio::test]
    async fn data_dir_and_state_db_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let tmp = tempfile::tempdir().unwrap();

        // Made by Slipway.
        let data = tmp.path().join("parent/data");
        let store = Store::open(&data).await.unwrap();
        store.create_run(&new_run(), &[]).await.unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("cas")), 0o700);
        let db = data.join("state.db");
        assert_eq!(mode(&db), 0o600);
        for sidecar in ["state.db-wal", "state.db-shm"] {
            let p = data.join(sidecar);
            assert!(p.exists(), "{sidecar} exists while the store is open");
            assert_eq!(mode(&p), 0o600, "{sidecar}");
        }
        store.pool.close().await;
        drop(store);

        // Already there with open modes (as made by an older Slipway): tightened at open, the
        // runs kept.
        let loose = std::fs::Permissions::from_mode;
        std::fs::set_permissions(&data, loose(0o755)).unwrap();
        std::fs::set_permissions(&db, loose(0o644)).unwrap();
        std::fs::set_permissions(data.join("cas"), loose(0o755)).unwrap();
        let store = Store::open(&data).await.unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&data.join("cas")), 0o700);
        assert_eq!(store.list_runs(10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn runs_of_a_dead_owner_are_marked_interrupted_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let id = store
            .create_run(&new_run(), &[("a".into(), vec![])])
            .await
            .unwrap();
        store
            .set_build_status(id, "a", BuildStatus::Running, None)
            .await
            .unwrap();
        // A live owner's run is left alone.
        assert!(store.recover_interrupted().await.unwrap().is_empty());
        // Pretend the owner crashed: a pid that cannot exist.
        sqlx::query("UPDATE runs SET owner_pid = ? WHERE id = ?")
            .bind(i32::MAX as i64)
            .bind(id)
            .execute(&store.pool)
            .await
            .unwrap();
        drop(store);
        let store = Store::open(dir.path()).await.unwrap();
        let run = store.run(id).await.unwrap();
        assert_eq!(run.status, RunStatus::Interrupted);
        assert!(run.finished_at.is_some());
        assert_eq!(
            store.builds(id).await.unwrap()[0].status,
            BuildStatus::Interrupted
        );
    }

    #[tokio::test]
    async fn finish_build_records_the_status_and_the_log_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let id = store
            .create_run(&new_run(), &[("a".into(), vec![])])
            .await
            .unwrap();
        let log = dir.path().join("a.log");
        let totals = LogTotals {
            path: &log,
            lines: 3,
            bytes: 70,
            dropped_bytes: Some(5),
        };
        store
            .finish_build(id, "a", BuildStatus::Failure, Some("boom"), &totals)
            .await
            .unwrap();
        let build = &store.builds(id).await.unwrap()[0];
        assert_eq!(build.status, BuildStatus::Failure);
        assert_eq!(build.error.as_deref(), Some("boom"));
        assert!(build.finished_at.is_some() && build.started_at.is_none());
        assert_eq!(build.log_dropped_bytes, Some(5));
        let (lines, bytes): (i64, i64) =
            sqlx::query_as("SELECT lines, bytes FROM logs WHERE run_id = ? AND build = 'a'")
                .bind(id)
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert_eq!((lines, bytes), (3, 70));
    }

    #[tokio::test]
    async fn artifacts_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let id = store
            .create_run(&new_run(), &[("a".into(), vec![])])
            .await
            .unwrap();
        let rows = vec![ArtifactRow {
            path: "x/y.deb".into(),
            sha256: "ab".repeat(32),
            size: 3,
        }];
        store.record_artifacts(id, "a", &rows).await.unwrap();
        assert_eq!(store.artifacts(id, "a").await.unwrap(), rows);
        let by_build = store.run_artifacts(id).await.unwrap();
        assert_eq!(by_build.len(), 1);
        assert_eq!(by_build["a"], rows);
        store
            .finish_run(id, RunStatus::Success, None)
            .await
            .unwrap();
        assert_eq!(
            store.list_runs(10).await.unwrap()[0].status,
            RunStatus::Success
        );
    }
}

/// Who or what asked for a run.
#[derive(Debug, Clone, Default)]
pub struct RunOrigin {
    /// `continuous`, `manual`, `retry`, `cli`.
    pub trigger: String,
    pub requested_by: Option<String>,
    pub retry_of: Option<i64>,
}

impl RunOrigin {
    pub fn cli() -> RunOrigin {
        RunOrigin {
            trigger: "cli".into(),
            requested_by: None,
            retry_of: None,
        }
    }
}

/// Inserts a run with its builds `pending`: `running` and owned by this process when `claim`,
/// else `queued` with no owner (a dispatcher claims it later).
pub(crate) async fn insert_run(
    tx: &mut sqlx::SqliteConnection,
    run: &NewRun<'_>,
    builds: &[(String, Vec<String>)],
    origin: &RunOrigin,
    claim: bool,
) -> Result<i64, sqlx::Error> {
    let (pid, start) = owner::current();
    let ts = now();
    let id: i64 = sqlx::query(
        "INSERT INTO runs (instance, project, job, milestone, channel, branch, commit_sha, flow, status, owner_pid, owner_start, created_at, started_at, trigger, requested_by, retry_of)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(run.instance)
    .bind(run.project)
    .bind(run.job)
    .bind(run.milestone as i64)
    .bind(run.channel)
    .bind(run.branch)
    .bind(run.commit)
    .bind(run.flow)
    .bind(if claim { "running" } else { "queued" })
    .bind(claim.then_some(pid))
    .bind(claim.then_some(start))
    .bind(&ts)
    .bind(claim.then_some(&ts))
    .bind(&origin.trigger)
    .bind(origin.requested_by.as_deref())
    .bind(origin.retry_of)
    .fetch_one(&mut *tx)
    .await?
    .get(0);
    for (position, (name, needs)) in builds.iter().enumerate() {
        let needs = serde_json::to_string(needs).unwrap_or_else(|_| "[]".into());
        sqlx::query("INSERT INTO builds (run_id, name, position, needs, status) VALUES (?, ?, ?, ?, 'pending')")
            .bind(id)
            .bind(name)
            .bind(position as i64)
            .bind(needs)
            .execute(&mut *tx)
            .await?;
    }
    Ok(id)
}
