//! Retention: which runs go, and the files nothing kept points at.
//!
//! Never removed: a running run; the candidates of a milestone's newest `keep_releases` releases
//! (the live one and those a rollback goes back to); its open candidates (newer than the live
//! one, or all of them before a first release); the candidate of an unfinished promotion; and the
//! rows and artifact-store objects of their runs. A removed run that published anything is
//! pruned rather than deleted: its builds, steps, artifacts, logs and folder go, the run, what it
//! published, its candidate and releases stay, because buckets keep serving older objects (pool
//! files, by-hash indices) and audits need to know who published them.
//!
//! Rows go first, in one transaction, then files: a crash in between leaves only files no row
//! names, which the next gc removes.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::owner;
use crate::state::{Store, StoreError};

/// What to keep beyond what releases and open candidates need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Runs younger than this are kept.
    pub keep_days: u32,
    /// The newest runs of each job instance are kept, however old.
    pub keep_last: u32,
    /// Distinct candidates of each milestone's newest releases kept (live + rollback chain).
    pub keep_releases: u32,
}

/// Files removed (or that would be) and the bytes that frees. Files with other hard links
/// free nothing and are counted without bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Freed {
    pub files: u64,
    pub bytes: u64,
}

impl std::ops::AddAssign for Freed {
    fn add_assign(&mut self, o: Freed) {
        self.files += o.files;
        self.bytes += o.bytes;
    }
}

/// What a gc removes from the state: decided once, from one read of the rows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcPlan {
    /// Runs whose builds, steps, artifacts, logs and folders go.
    pub runs: Vec<i64>,
    /// Those of `runs` that published: the run, its published objects, candidate and releases
    /// stay as the record of what the buckets got. The others are deleted whole.
    pub pruned: Vec<i64>,
    pub kept_runs: usize,
    /// Candidates whose runs stay whatever the policy: live, rollback chain, open, or being
    /// promoted.
    pub protected_candidates: Vec<i64>,
    /// Runs that ended (removed or kept): their workspaces can go.
    pub ended_runs: Vec<i64>,
    /// Run folders of no run or of a pruned one (left by a gc stopped between rows and files).
    pub orphan_dirs: Vec<i64>,
    /// Instances that still have runs after the gc.
    #[serde(skip)]
    instances: BTreeSet<String>,
    /// Objects and caches written since this time may belong to work in progress.
    #[serde(skip)]
    busy_since: Option<SystemTime>,
    #[serde(skip)]
    keep_days: u32,
}

/// The files a gc removed (or would).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SweptFiles {
    /// Log files of removed runs (their folders go with them).
    pub logs: Freed,
    /// Artifact-store objects no kept row names, and temp files of dead writers.
    pub objects: Freed,
    /// Publish hash caches of instances without runs, and of local folders not published for
    /// `keep_days`.
    pub caches: Freed,
}

struct RunInfo {
    id: i64,
    instance: String,
    running: bool,
    created_at: String,
    pruned: bool,
    published: bool,
}

/// Ids in SQL statements are bound as one JSON array (`json_each`).
fn ids_json(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// Decides what a gc removes under `policy`, as of `now`.
    pub async fn plan_gc(
        &self,
        policy: &RetentionPolicy,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<GcPlan, StoreError> {
        let db = |e| self.db_err(e);
        let runs: Vec<RunInfo> = sqlx::query(
            "SELECT id, instance, status, created_at, pruned_at IS NOT NULL,
                    EXISTS (SELECT 1 FROM published p WHERE p.run_id = runs.id)
             FROM runs ORDER BY id DESC",
        )
        .fetch_all(self.pool())
        .await
        .map_err(db)?
        .iter()
        .map(|r| RunInfo {
            id: r.get(0),
            instance: r.get(1),
            running: matches!(r.get::<String, _>(2).as_str(), "running" | "queued"),
            created_at: r.get(3),
            pruned: r.get(4),
            published: r.get(5),
        })
        .collect();
        let candidates: Vec<(i64, String, i64, i64)> =
            sqlx::query("SELECT id, project, milestone, run_id FROM candidates ORDER BY id")
                .fetch_all(self.pool())
                .await
                .map_err(db)?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect();
        let releases: Vec<(String, i64, i64)> =
            sqlx::query("SELECT project, milestone, candidate_id FROM releases ORDER BY id DESC")
                .fetch_all(self.pool())
                .await
                .map_err(db)?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
        let unfinished: Vec<i64> =
            sqlx::query("SELECT candidate_id FROM promotions WHERE state IN ('started', 'failed')")
                .fetch_all(self.pool())
                .await
                .map_err(db)?
                .iter()
                .map(|r| r.get(0))
                .collect();

        // Per milestone: the rollback chain (newest releases' distinct candidates), live first.
        let mut chains: BTreeMap<(&str, i64), Vec<i64>> = BTreeMap::new();
        for (project, milestone, candidate) in &releases {
            let chain = chains.entry((project, *milestone)).or_default();
            if !chain.contains(candidate) && chain.len() < policy.keep_releases as usize {
                chain.push(*candidate);
            }
        }
        let mut protected: BTreeSet<i64> = chains.values().flatten().copied().collect();
        for (id, project, milestone, _) in &candidates {
            let live = chains
                .get(&(project.as_str(), *milestone))
                .and_then(|c| c.first());
            if live.is_none_or(|live| id > live) {
                protected.insert(*id);
            }
        }
        protected.extend(unfinished);
        let protected_runs: HashSet<i64> = candidates
            .iter()
            .filter(|(id, ..)| protected.contains(id))
            .map(|(_, _, _, run)| *run)
            .collect();

        let young = (now - chrono::Duration::days(policy.keep_days as i64))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut per_instance: BTreeMap<&str, u32> = BTreeMap::new();
        let mut plan = GcPlan {
            keep_days: policy.keep_days,
            ..GcPlan::default()
        };
        // Work in progress may be storing objects no row names yet: those written since the
        // oldest running run started (or since now) stay.
        let mut busy_since = SystemTime::from(now);
        for run in runs.iter().filter(|r| !r.pruned) {
            let rank = per_instance.entry(&run.instance).or_default();
            *rank += 1;
            let keep = run.running
                || run.created_at >= young
                || *rank <= policy.keep_last
                || protected_runs.contains(&run.id);
            if run.running {
                let started = chrono::DateTime::parse_from_rfc3339(&run.created_at)
                    .map(SystemTime::from)
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                busy_since = busy_since.min(started);
            } else {
                plan.ended_runs.push(run.id);
            }
            if keep {
                plan.kept_runs += 1;
                plan.instances.insert(run.instance.clone());
            } else {
                plan.runs.push(run.id);
                if run.published {
                    plan.pruned.push(run.id);
                }
            }
        }
        plan.busy_since = Some(busy_since);
        plan.protected_candidates = protected.into_iter().collect();
        plan.runs.sort_unstable();
        plan.pruned.sort_unstable();
        plan.ended_runs.sort_unstable();
        plan.orphan_dirs = self.orphan_run_dirs(&runs)?;
        plan.orphan_dirs.sort_unstable();
        Ok(plan)
    }

    /// Run folders of no run, or of a pruned one (left by a gc that stopped between rows and
    /// files). Only ids already handed out count: a folder of a run being created right now is
    /// not one.
    fn orphan_run_dirs(&self, runs: &[RunInfo]) -> Result<Vec<i64>, StoreError> {
        let Some(newest) = runs.first().map(|r| r.id) else {
            return Ok(Vec::new());
        };
        let whole: HashSet<i64> = runs.iter().filter(|r| !r.pruned).map(|r| r.id).collect();
        let dir = self.data_dir().join("runs");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(io_err(&dir)(source)),
        };
        Ok(entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
            .filter(|id| *id < newest && !whole.contains(id))
            .collect())
    }

    /// Deletes the plan's rows in one transaction (pruned runs are marked, not deleted).
    pub async fn delete_gc_rows(&self, plan: &GcPlan) -> Result<(), StoreError> {
        let db = |e| self.db_err(e);
        let runs = ids_json(&plan.runs);
        let pruned = ids_json(&plan.pruned);
        let deleted: Vec<i64> = plan
            .runs
            .iter()
            .filter(|r| plan.pruned.binary_search(r).is_err())
            .copied()
            .collect();
        let deleted = ids_json(&deleted);
        let now = crate::now();
        let mut tx = self.pool().begin().await.map_err(db)?;
        for table in ["artifacts", "logs", "steps", "builds"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE run_id IN (SELECT value FROM json_each(?))"
            ))
            .bind(&runs)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        sqlx::query("UPDATE runs SET pruned_at = ? WHERE id IN (SELECT value FROM json_each(?)) AND status NOT IN ('running', 'queued')")
            .bind(&now)
            .bind(&pruned)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM review_runs WHERE run_id IN (SELECT value FROM json_each(?))")
            .bind(&deleted)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM suite_results WHERE run_id IN (SELECT value FROM json_each(?))")
            .bind(&deleted)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(
            "DELETE FROM runs WHERE id IN (SELECT value FROM json_each(?)) AND status NOT IN ('running', 'queued')",
        )
        .bind(&deleted)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    /// Removes (or with `dry_run` only counts) the files of the plan: removed runs' folders,
    /// objects no remaining row names, temp files of dead writers, stale publish caches. Call it
    /// after [`Store::delete_gc_rows`] (and after the workspaces of ended runs are gone, so
    /// the bytes of hard-linked objects are counted once).
    pub async fn sweep_gc_files(
        &self,
        plan: &GcPlan,
        dry_run: bool,
    ) -> Result<SweptFiles, StoreError> {
        // What pruned runs published is a record only; their bytes are not kept for it.
        let referenced: HashSet<String> = sqlx::query(
            "SELECT sha256 FROM artifacts WHERE run_id NOT IN (SELECT value FROM json_each(?1))
             UNION SELECT p.sha256 FROM published p JOIN runs r ON r.id = p.run_id
                   WHERE r.pruned_at IS NULL AND p.run_id NOT IN (SELECT value FROM json_each(?1))",
        )
        .bind(ids_json(&plan.runs))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_err(e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
        let data_dir = self.data_dir().to_path_buf();
        let run_dirs: Vec<PathBuf> = plan
            .runs
            .iter()
            .chain(&plan.orphan_dirs)
            .map(|id| self.run_dir(*id))
            .collect();
        let plan = plan.clone();
        tokio::task::spawn_blocking(move || {
            let busy_since = plan.busy_since.unwrap_or(SystemTime::UNIX_EPOCH);
            let mut swept = SweptFiles::default();
            for dir in run_dirs {
                swept.logs += remove_tree(&dir.join("logs"), dry_run)?;
                remove_tree(&dir, dry_run)?;
            }
            swept.objects = sweep_objects(&data_dir.join("cas"), &referenced, busy_since, dry_run)?;
            let stale_after = SystemTime::now()
                .checked_sub(Duration::from_secs(plan.keep_days as u64 * 86_400))
                .unwrap_or(SystemTime::UNIX_EPOCH)
                .min(busy_since);
            swept.caches = sweep_caches(
                &data_dir.join(PUBLISH_CACHE_DIR),
                &plan.instances,
                stale_after,
                dry_run,
            )?;
            Ok(swept)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("the gc file sweep stopped: {e}")))?
    }
}

impl GcPlan {
    /// Runs (and run folders without a run) whose workspaces can be removed: none is running.
    pub fn ended_run_dirs(&self) -> impl Iterator<Item = i64> + '_ {
        self.ended_runs.iter().chain(&self.orphan_dirs).copied()
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Cleanup {
        path: path.to_path_buf(),
        source,
    }
}

/// Files under `path` and the bytes their removal frees (files with one link only).
fn usage(path: &Path) -> io::Result<Freed> {
    let mut freed = Freed::default();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.is_dir() {
            for entry in fs::read_dir(&p)? {
                stack.push(entry?.path());
            }
        } else {
            freed.files += 1;
            if meta.nlink() <= 1 {
                freed.bytes += meta.size();
            }
        }
    }
    Ok(freed)
}

/// Removes a tree (if there), returning what it held; with `dry_run` only counts.
pub fn remove_tree(path: &Path, dry_run: bool) -> Result<Freed, StoreError> {
    let freed = usage(path).map_err(io_err(path))?;
    if !dry_run {
        let removed = match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(path),
            Ok(_) => fs::remove_file(path),
            Err(e) => Err(e),
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_err(path)(source)),
        }
    }
    Ok(freed)
}

fn modified(meta: &fs::Metadata) -> SystemTime {
    meta.modified().unwrap_or(SystemTime::now())
}

/// Objects under `cas/sha256` no name in `referenced` points at and written before
/// `busy_since`, plus temp files in `cas/tmp` whose writer is gone.
fn sweep_objects(
    cas: &Path,
    referenced: &HashSet<String>,
    busy_since: SystemTime,
    dry_run: bool,
) -> Result<Freed, StoreError> {
    let mut freed = Freed::default();
    let objects = cas.join("sha256");
    let tmp = cas.join("tmp");
    for shard in read_dir_or_empty(&objects)? {
        if !shard.is_dir() {
            continue;
        }
        for path in read_dir_or_empty(&shard)? {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let is_object = name.len() == 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                && shard.file_name().and_then(|s| s.to_str()) == Some(&name[..2]);
            if !is_object || referenced.contains(name) {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_file() || modified(&meta) >= busy_since {
                continue;
            }
            if dry_run || remove_object(&path, &tmp.join(format!("gc-{name}")), busy_since)? {
                freed.files += 1;
                freed.bytes += meta.size();
            }
        }
    }
    for path in read_dir_or_empty(&tmp)? {
        // `<pid>-<n>`: a write that died with its process.
        let pid = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<i64>().ok());
        let dead = pid.is_some_and(|pid| !owner::is_alive(pid, ""));
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if dead && meta.is_file() && modified(&meta) < busy_since {
            if !dry_run {
                fs::remove_file(&path).map_err(io_err(&path))?;
            }
            freed += Freed {
                files: 1,
                bytes: meta.size(),
            };
        }
    }
    Ok(freed)
}

/// Moves the object aside first, then looks at it again: a writer that re-stored the same bytes
/// meanwhile touched it (it stays, linked back) or found it gone (and stored it again).
fn remove_object(path: &Path, aside: &Path, busy_since: SystemTime) -> Result<bool, StoreError> {
    match fs::rename(path, aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(io_err(path)(source)),
    }
    let touched = fs::metadata(aside).map(|m| modified(&m) >= busy_since);
    if matches!(touched, Ok(true)) {
        match fs::hard_link(aside, path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(io_err(path)(source)),
        }
    }
    fs::remove_file(aside).map_err(io_err(aside))?;
    Ok(!matches!(touched, Ok(true)))
}

fn read_dir_or_empty(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()).map_err(io_err(dir)))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(io_err(dir)(source)),
    }
}

/// Where publish hash caches live under the data dir.
const PUBLISH_CACHE_DIR: &str = "cache/publish";

/// What a publish hash cache is for: a publish build of a job instance, or a local folder
/// published with `slipway publish`.
#[derive(Debug, Clone, Copy)]
pub enum PublishSource<'a> {
    Build { instance: &'a str, build: &'a str },
    Dir(&'a Path),
}

/// The hash cache file of publishing `source` to `bucket`/`prefix` (the sha256 of files by
/// identity, so a republish hashes only what changed), its folder made private. `None` when the
/// folder cannot be made: publishing then hashes everything.
///
/// Caches of builds live under `runs/<instance>/` (gone when the instance has no runs left),
/// those of folders under `dirs/` (gone when not used for the retention time).
pub fn publish_hash_cache(
    data_dir: &Path,
    source: PublishSource<'_>,
    bucket: &str,
    prefix: &str,
) -> Option<PathBuf> {
    let key = |what: &str| {
        let mut h = Sha256::new();
        for part in [bucket, prefix, what] {
            h.update(part.as_bytes());
            h.update(b"\0");
        }
        format!("{}.json", &hex::encode(h.finalize())[..32])
    };
    let root = data_dir.join(PUBLISH_CACHE_DIR);
    let path = match source {
        PublishSource::Build { instance, build } => {
            root.join("runs").join(instance).join(key(build))
        }
        PublishSource::Dir(dir) => {
            let dir = std::path::absolute(dir).ok()?;
            root.join("dirs").join(key(&dir.to_string_lossy()))
        }
    };
    crate::private::create_private_dir(data_dir).ok()?;
    crate::private::create_private_dir(path.parent()?).ok()?;
    Some(path)
}

/// Caches of instances with no runs, caches of folders (and leftovers of older layouts or of
/// interrupted writes) not written since `stale_after`.
fn sweep_caches(
    root: &Path,
    instances: &BTreeSet<String>,
    stale_after: SystemTime,
    dry_run: bool,
) -> Result<Freed, StoreError> {
    let mut freed = Freed::default();
    let runs = root.join("runs");
    // runs/<project>/<milestone>/<job>/<key>.json
    for project in read_dir_or_empty(&runs)? {
        for milestone in read_dir_or_empty(&project)? {
            for job in read_dir_or_empty(&milestone)? {
                let instance = job
                    .strip_prefix(&runs)
                    .ok()
                    .and_then(|p| p.to_str())
                    .map(str::to_string);
                if instance.is_some_and(|i| !instances.contains(&i)) {
                    freed += remove_tree(&job, dry_run)?;
                }
            }
        }
    }
    let dirs = root.join("dirs");
    for dir in [root, dirs.as_path()] {
        for path in read_dir_or_empty(dir)? {
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_file() && modified(&meta) < stale_after {
                freed += remove_tree(&path, dry_run)?;
            }
        }
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ArtifactRow, Begin, NewRun, PublishedObject, RunStatus};

    struct Fixture {
        dir: tempfile::TempDir,
        store: Store,
    }

    impl Fixture {
        async fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("data")).await.unwrap();
            Fixture { dir, store }
        }

        /// A finished run of `job` on milestone 74 that stored and published `files`
        /// (name, bytes), `age_days` old; a continuous run's publishing makes a candidate.
        async fn run(
            &self,
            job: &str,
            files: &[(&str, &str)],
            age_days: i64,
        ) -> (i64, Option<i64>) {
            let instance = format!("p/74/{job}");
            let id = self
                .store
                .create_run(
                    &NewRun {
                        instance: &instance,
                        project: "p",
                        job,
                        milestone: 74,
                        channel: "canary",
                        branch: "main",
                        commit: None,
                        flow: if job == "ci" { "continuous" } else { "manual" },
                    },
                    &[("b".into(), vec![])],
                )
                .await
                .unwrap();
            let mut rows = Vec::new();
            let mut published = Vec::new();
            for (name, text) in files {
                let src = self
                    .dir
                    .path()
                    .join(format!("src-{id}-{}", name.replace('/', "_")));
                fs::write(&src, text).unwrap();
                let stored = self.store.cas().put_file(&src).unwrap();
                rows.push(ArtifactRow {
                    path: name.to_string(),
                    sha256: stored.sha256.clone(),
                    size: stored.size,
                });
                published.push(PublishedObject {
                    bucket: "staging".into(),
                    prefix: "74".into(),
                    path: name.to_string(),
                    sha256: stored.sha256,
                    size: stored.size,
                });
            }
            self.store.record_artifacts(id, "b", &rows).await.unwrap();
            let log = self.store.log_path(id, "b");
            fs::create_dir_all(log.parent().unwrap()).unwrap();
            fs::write(&log, format!("log of run {id}\n")).unwrap();
            self.store
                .record_log(id, "b", &log, 1, 12, None)
                .await
                .unwrap();
            self.store
                .finish_run(id, RunStatus::Success, None)
                .await
                .unwrap();
            let candidate = if job == "ci" {
                self.store
                    .record_published(id, "b", &published)
                    .await
                    .unwrap();
                self.store.create_candidate(id).await.unwrap().map(|c| c.id)
            } else {
                None
            };
            self.age_run(id, age_days).await;
            (id, candidate)
        }

        async fn age_run(&self, id: i64, days: i64) {
            let at = (chrono::Utc::now() - chrono::Duration::days(days))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            sqlx::query("UPDATE runs SET created_at = ? WHERE id = ?")
                .bind(at)
                .bind(id)
                .execute(self.store.pool())
                .await
                .unwrap();
        }

        async fn release(&self, candidate: i64) {
            let c = self.store.candidate(candidate).await.unwrap().unwrap();
            let Begin::Started(p) = self
                .store
                .begin_promotion(&c, "promote", "t")
                .await
                .unwrap()
            else {
                panic!("a promotion is unfinished");
            };
            self.store.finish_promotion(&p).await.unwrap();
        }

        fn object(&self, text: &str) -> PathBuf {
            let sha = hex::encode(Sha256::digest(text.as_bytes()));
            self.store.cas().object_path(&sha).unwrap()
        }

        /// Every object and temp file as if written `hours` ago.
        fn age_files(&self, hours: u64) {
            let then = SystemTime::now() - Duration::from_secs(hours * 3600);
            let cas = self.store.data_dir().join("cas");
            let mut stack = vec![cas];
            while let Some(p) = stack.pop() {
                if p.is_dir() {
                    stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
                } else {
                    set_mtime(&p, then);
                }
            }
        }
    }

    fn set_mtime(path: &Path, t: SystemTime) {
        let f = fs::File::open(path).unwrap();
        f.set_modified(t).unwrap();
    }

    const POLICY: RetentionPolicy = RetentionPolicy {
        keep_days: 30,
        keep_last: 2,
        keep_releases: 2,
    };

    #[tokio::test]
    async fn gc_keeps_releases_rollbacks_open_candidates_and_recent_runs_and_frees_the_rest() {
        let f = Fixture::new().await;
        let shared = "shared bytes: in every candidate";
        // Continuous runs of p/74/ci, all old: c1..c6.
        let mut ci = Vec::new();
        for n in 1..=6 {
            let own = format!("package {n}");
            ci.push(
                f.run(
                    "ci",
                    &[("pool/shared.deb", shared), ("pool/own.deb", own.as_str())],
                    90,
                )
                .await,
            );
        }
        let cand = |n: usize| ci[n - 1].1.unwrap();
        let run = |n: usize| ci[n - 1].0;
        // History: c1, c2, c3, then a rollback to c2, then c4 (live). Chain of 2: c4, c2.
        for n in [1, 2, 3, 2, 4] {
            f.release(cand(n)).await;
        }
        // A manual job: two old runs and a recent one.
        let (m1, _) = f.run("manual", &[("m.txt", "manual 1")], 60).await;
        let (m2, _) = f.run("manual", &[("m.txt", "manual 2")], 10).await;
        let (m3, _) = f.run("manual", &[("m.txt", "manual 3")], 1).await;
        // Someone's run is still going (this process owns it): it and its folder stay.
        let running = f
            .store
            .create_run(
                &NewRun {
                    instance: "p/74/manual",
                    project: "p",
                    job: "manual",
                    milestone: 74,
                    channel: "canary",
                    branch: "main",
                    commit: None,
                    flow: "manual",
                },
                &[],
            )
            .await
            .unwrap();
        f.age_run(running, 100).await;
        let running_ws = f.store.run_dir(running).join("builds/b/work/file");
        fs::create_dir_all(running_ws.parent().unwrap()).unwrap();
        fs::write(&running_ws, "in progress").unwrap();
        // A suite verdict about a candidate that goes.
        sqlx::query("INSERT INTO suite_results (candidate_id, name, tests, failures, errors, skipped, source, recorded_at) VALUES (?, 'lab', 1, 0, 0, 0, 'external', 'x')")
            .bind(cand(1))
            .execute(f.store.pool())
            .await
            .unwrap();
        // A folder of a run whose row an interrupted gc already deleted.
        let orphan_dir = f.store.data_dir().join("runs/0");
        fs::create_dir_all(orphan_dir.join("logs")).unwrap();
        fs::write(orphan_dir.join("logs/b.log"), "orphan log").unwrap();
        // An object nothing names, and a temp file of a writer that died.
        let stray = f.dir.path().join("stray");
        fs::write(&stray, "stray object").unwrap();
        let stray = f.store.cas().put_file(&stray).unwrap();
        let dead_tmp = f.store.data_dir().join(format!("cas/tmp/{}-0", i32::MAX));
        fs::write(&dead_tmp, "half").unwrap();
        f.age_files(2);
        // The running run started an hour ago: what it stores from then on is not touched.
        f.age_run(running, 0).await;
        sqlx::query("UPDATE runs SET created_at = ? WHERE id = ?")
            .bind(
                (chrono::Utc::now() - chrono::Duration::hours(1))
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            )
            .bind(running)
            .execute(f.store.pool())
            .await
            .unwrap();
        let in_flight = f.dir.path().join("in-flight");
        fs::write(&in_flight, "stored by the running run, not yet recorded").unwrap();
        let in_flight = f.store.cas().put_file(&in_flight).unwrap();
        // Publish caches: of a live instance, of an instance without runs, of an old layout.
        let cache_of = |instance| {
            let p = publish_hash_cache(
                f.store.data_dir(),
                PublishSource::Build {
                    instance,
                    build: "publish",
                },
                "staging",
                "74",
            )
            .unwrap();
            fs::write(&p, "{}").unwrap();
            p
        };
        let live_cache = cache_of("p/74/ci");
        let gone_cache = cache_of("p/73/ci");
        let legacy_cache = f.store.data_dir().join("cache/publish/p-74-publish.json");
        fs::write(&legacy_cache, "{}").unwrap();
        set_mtime(
            &legacy_cache,
            SystemTime::now() - Duration::from_secs(40 * 86_400),
        );

        let plan = f.store.plan_gc(&POLICY, chrono::Utc::now()).await.unwrap();
        // Kept: c4 (live), c2 (rollback), c5 and c6 (open; c6 and c5 are also the last two).
        assert_eq!(
            plan.protected_candidates,
            vec![cand(2), cand(4), cand(5), cand(6)]
        );
        assert_eq!(plan.runs, vec![run(1), run(3), m1]);
        assert_eq!(
            plan.pruned,
            vec![run(1), run(3)],
            "they published: pruned, not deleted"
        );
        assert_eq!(plan.kept_runs, 4 + 2 + 1);
        assert_eq!(plan.orphan_dirs, vec![0]);
        assert!(!plan.ended_runs.contains(&running));

        let size = |p: &Path| fs::metadata(p).unwrap().len();
        let freed_objects = size(&f.object("package 1"))
            + size(&f.object("package 3"))
            + size(&f.object("manual 1"))
            + stray.size
            + size(&dead_tmp);

        // A dry run reports exactly what the real one removes, and removes nothing.
        let dry = f.store.sweep_gc_files(&plan, true).await.unwrap();
        assert_eq!(
            dry.objects,
            Freed {
                files: 5,
                bytes: freed_objects
            }
        );
        assert_eq!(
            dry.logs.files, 4,
            "logs of the removed runs and of the orphan folder"
        );
        assert_eq!(dry.caches.files, 2);
        assert!(f.object("package 1").exists() && legacy_cache.exists() && orphan_dir.exists());
        assert_eq!(f.store.candidates("p", 74).await.unwrap().len(), 6);

        f.store.delete_gc_rows(&plan).await.unwrap();
        let real = f.store.sweep_gc_files(&plan, false).await.unwrap();
        assert_eq!(real.objects, dry.objects);
        assert_eq!(real.logs, dry.logs);
        assert_eq!(real.caches, dry.caches);

        // The manual run is gone whole; the runs that published keep their record (run,
        // published objects, candidate, releases, suite verdicts) and lose everything else.
        assert!(matches!(f.store.run(m1).await, Err(StoreError::NoRun(_))));
        for gone in [run(1), run(3), m1] {
            assert!(!f.store.run_dir(gone).exists());
            assert!(f.store.artifacts(gone, "b").await.unwrap().is_empty());
            assert!(f.store.builds(gone).await.unwrap().is_empty());
        }
        for pruned in [run(1), run(3)] {
            assert!(f.store.run(pruned).await.is_ok());
            assert_eq!(f.store.published(pruned).await.unwrap().len(), 2);
        }
        assert_eq!(f.store.candidates("p", 74).await.unwrap().len(), 6);
        assert_eq!(f.store.releases("p", 74).await.unwrap().len(), 5);
        let suites: i64 = sqlx::query("SELECT COUNT(*) FROM suite_results")
            .fetch_one(f.store.pool())
            .await
            .unwrap()
            .get(0);
        assert_eq!(suites, 1);
        // Every object a kept candidate published (and so promotion and rollback need) is there.
        for n in [2, 4, 5, 6] {
            for o in f.store.published(run(n)).await.unwrap() {
                f.store.cas().verified_path(&o.sha256).unwrap();
            }
            assert!(f.store.log_path(run(n), "b").exists());
        }
        for m in [m2, m3] {
            assert_eq!(f.store.artifacts(m, "b").await.unwrap().len(), 1);
        }
        assert!(f.object(shared).exists());
        assert!(!f.object("package 1").exists() && !f.object("manual 1").exists());
        assert!(!f.store.cas().object_path(&stray.sha256).unwrap().exists());
        assert!(
            f.store
                .cas()
                .object_path(&in_flight.sha256)
                .unwrap()
                .exists()
        );
        assert!(!dead_tmp.exists());
        assert!(running_ws.exists() && f.store.run(running).await.is_ok());
        assert!(!orphan_dir.exists());
        assert!(live_cache.exists() && !gone_cache.exists() && !legacy_cache.exists());

        // Nothing left to do: a second gc removes nothing.
        let again = f.store.plan_gc(&POLICY, chrono::Utc::now()).await.unwrap();
        assert!(again.runs.is_empty() && again.orphan_dirs.is_empty());
        let swept = f.store.sweep_gc_files(&again, false).await.unwrap();
        assert_eq!(
            swept.objects.files + swept.logs.files + swept.caches.files,
            0
        );
    }

    #[tokio::test]
    async fn before_a_first_release_every_candidate_is_open_and_kept() {
        let f = Fixture::new().await;
        let mut runs = Vec::new();
        for n in 0..4 {
            runs.push(f.run("ci", &[("x", &format!("v{n}"))], 100).await.0);
        }
        let plan = f
            .store
            .plan_gc(
                &RetentionPolicy {
                    keep_days: 0,
                    keep_last: 0,
                    keep_releases: 1,
                },
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        assert!(plan.runs.is_empty());
        assert_eq!(plan.protected_candidates.len(), 4);
    }

    #[tokio::test]
    async fn bytes_stored_again_by_a_running_run_are_kept() {
        let f = Fixture::new().await;
        let (old, _) = f.run("manual", &[("x", "same bytes")], 100).await;
        let running = f
            .store
            .create_run(
                &NewRun {
                    instance: "p/74/other",
                    project: "p",
                    job: "other",
                    milestone: 74,
                    channel: "canary",
                    branch: "main",
                    commit: None,
                    flow: "manual",
                },
                &[],
            )
            .await
            .unwrap();
        f.age_files(2);
        // The running run stores the same bytes; its artifact row comes later.
        let again = f.dir.path().join("again");
        fs::write(&again, "same bytes").unwrap();
        assert!(!f.store.cas().put_file(&again).unwrap().new);
        let policy = RetentionPolicy {
            keep_days: 0,
            keep_last: 0,
            keep_releases: 1,
        };
        let plan = f.store.plan_gc(&policy, chrono::Utc::now()).await.unwrap();
        assert_eq!(plan.runs, vec![old]);
        assert!(!plan.ended_runs.contains(&running));
        f.store.delete_gc_rows(&plan).await.unwrap();
        let swept = f.store.sweep_gc_files(&plan, false).await.unwrap();
        assert_eq!(swept.objects.files, 0);
        assert!(f.object("same bytes").exists());
    }

    #[tokio::test]
    async fn a_gc_stopped_after_its_rows_leaves_files_the_next_gc_removes() {
        let f = Fixture::new().await;
        let (published, _) = f.run("ci", &[("a", "first bytes")], 100).await;
        let (manual, _) = f.run("manual", &[("b", "manual bytes")], 100).await;
        let (_newest, _) = f.run("ci", &[("a", "second bytes")], 100).await;
        f.age_files(2);
        let policy = RetentionPolicy {
            keep_days: 0,
            keep_last: 0,
            keep_releases: 1,
        };
        // The two ci candidates are open (no release yet): only the manual run goes.
        let plan = f.store.plan_gc(&policy, chrono::Utc::now()).await.unwrap();
        assert_eq!(plan.runs, vec![manual]);
        f.store.delete_gc_rows(&plan).await.unwrap();
        // Stopped here: the folder and object of the deleted run are still there.
        assert!(f.store.run_dir(manual).exists() && f.object("manual bytes").exists());
        let next = f.store.plan_gc(&policy, chrono::Utc::now()).await.unwrap();
        assert!(next.runs.is_empty());
        assert_eq!(next.orphan_dirs, vec![manual]);
        let swept = f.store.sweep_gc_files(&next, false).await.unwrap();
        assert_eq!(swept.objects.files, 1);
        assert_eq!(swept.logs.files, 1);
        assert!(!f.store.run_dir(manual).exists() && !f.object("manual bytes").exists());
        assert!(f.object("first bytes").exists() && f.store.run_dir(published).exists());
    }
}
