//! Ordered publishing: objects go up rank by rank (see `order`), in parallel within a rank,
//! unchanged objects are skipped, what was written is read back, and the prefix's manifest
//! (what Slipway last published there) is written last.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bucket::{Bucket, PublishError};
use crate::order::publish_rank;

/// Where Slipway records what it published under a prefix; clients never need it.
pub const MANIFEST: &str = ".slipway-manifest.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    /// Key relative to the prefix.
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, Default)]
pub struct PublishReport {
    /// Every object of the tree, in publish order, keys relative to the prefix.
    pub objects: Vec<ObjectEntry>,
    pub uploaded: usize,
    pub unchanged: usize,
}

/// Where the bytes of the objects come from.
#[derive(Debug, Clone)]
pub enum Source {
    Dir(PathBuf),
    Bucket {
        bucket: Bucket,
        prefix: String,
    },
    /// Local files by object path (e.g. content-addressed copies of exactly these bytes), and a
    /// bucket for the objects not among them.
    Files {
        files: std::sync::Arc<BTreeMap<String, PathBuf>>,
        fallback: Option<(Bucket, String)>,
    },
}

#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Uploads in flight at once.
    pub concurrency: usize,
    /// Fault injection for tests: stop with an error once this many objects were written.
    pub abort_after: Option<usize>,
    /// Fault injection for tests: SIGKILL this process once this many objects were written.
    pub kill_after: Option<usize>,
    /// Set by someone else to stop before the next object is written (e.g. a promotion that
    /// lost its lease must not write on).
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Read every object back and check its sha256 (promotion does); otherwise indices are read
    /// back fully and other objects checked by size.
    pub verify_all: bool,
    /// Remembers the sha256 of local files by identity (device, inode, size, mtime), so a
    /// republish does not hash unchanged files again.
    pub hash_cache: Option<PathBuf>,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            concurrency: 16,
            abort_after: None,
            kill_after: None,
            stop: None,
            verify_all: false,
            hash_cache: None,
        }
    }
}

pub fn join(prefix: &str, rel: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        rel.to_string()
    } else {
        format!("{prefix}/{rel}")
    }
}

/// What Slipway last published under `prefix` (empty if nothing or unreadable).
pub async fn read_manifest(bucket: &Bucket, prefix: &str) -> BTreeMap<String, ObjectEntry> {
    let Ok(Some(bytes)) = bucket.get(&join(prefix, MANIFEST)).await else {
        return BTreeMap::new();
    };
    serde_json::from_slice::<Vec<ObjectEntry>>(&bytes)
        .map(|v| v.into_iter().map(|o| (o.path.clone(), o)).collect())
        .unwrap_or_default()
}

/// Hashes every file under `dir` (on the blocking pool, in parallel).
pub async fn scan_dir(
    dir: &Path,
    cache: Option<&Path>,
) -> Result<Vec<(ObjectEntry, PathBuf)>, PublishError> {
    let dir = dir.to_path_buf();
    let cache_path = cache.map(Path::to_path_buf);
    let known: std::collections::HashMap<String, String> = cache_path
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    tokio::task::spawn_blocking(move || {
        let mut files = Vec::new();
        for entry in walkdir::WalkDir::new(&dir).sort_by_file_name() {
            let entry = entry.map_err(|e| PublishError::Read {
                path: dir.clone(),
                source: e.into(),
            })?;
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(&dir)
                .ok()
                .and_then(|p| p.to_str())
                .ok_or_else(|| PublishError::BadPath(entry.path().display().to_string()))?
                .to_string();
            files.push((rel, entry.path().to_path_buf()));
        }
        if files.is_empty() {
            return Err(PublishError::Empty(dir.clone()));
        }
        let known = &known;
        let scanned: Result<Vec<(ObjectEntry, PathBuf)>, PublishError> = std::thread::scope(|s| {
            let chunks: Vec<_> = files.chunks(files.len().div_ceil(4).max(1)).collect();
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|(rel, path)| {
                                let id = identity(path);
                                let (sha256, size) = match id
                                    .as_ref()
                                    .and_then(|i| known.get(i).map(|sha| (i, sha)))
                                {
                                    Some((i, sha)) => (
                                        sha.clone(),
                                        i.rsplit(':')
                                            .nth(1)
                                            .and_then(|s| s.parse().ok())
                                            .unwrap_or(0),
                                    ),
                                    None => hash_file(path)?,
                                };
                                Ok((
                                    ObjectEntry {
                                        path: rel.clone(),
                                        sha256,
                                        size,
                                    },
                                    path.clone(),
                                ))
                            })
                            .collect::<Result<Vec<_>, PublishError>>()
                    })
                })
                .collect();
            let mut out = Vec::new();
            for h in handles {
                out.extend(
                    h.join()
                        .map_err(|_| PublishError::Verify("hashing thread failed".into()))??,
                );
            }
            Ok(out)
        });
        let scanned = scanned?;
        if let Some(cache) = &cache_path {
            let map: std::collections::HashMap<String, String> = scanned
                .iter()
                .filter_map(|(o, p)| identity(p).map(|id| (id, o.sha256.clone())))
                .collect();
            if let Ok(bytes) = serde_json::to_vec(&map) {
                let tmp = cache.with_extension("tmp");
                if std::fs::write(&tmp, bytes).is_ok() {
                    let _ = std::fs::rename(&tmp, cache);
                }
            }
        }
        Ok(scanned)
    })
    .await
    .map_err(|e| PublishError::Verify(format!("hashing stopped: {e}")))?
}

/// `device:inode:size:mtime`; the size is the third field.
fn identity(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(format!(
        "{}:{}:{}:{}.{}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

fn hash_file(path: &Path) -> Result<(String, u64), PublishError> {
    use std::io::Read;
    let err = |source| PublishError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

/// Publishes every file under `dir` to `dest` under `prefix`.
pub async fn publish_dir(
    dir: &Path,
    dest: &Bucket,
    prefix: &str,
    opts: &PublishOptions,
) -> Result<PublishReport, PublishError> {
    let scanned = scan_dir(dir, opts.hash_cache.as_deref()).await?;
    let objects: Vec<ObjectEntry> = scanned.iter().map(|(o, _)| o.clone()).collect();
    upload(
        dest,
        prefix,
        &objects,
        &Source::Dir(dir.to_path_buf()),
        opts,
    )
    .await
}

/// Runs `f` over `items`, at most `limit` at a time, on tasks that own their data (so callers'
/// futures stay `Send`). The first error wins.
async fn bounded<T, R, F, Fut>(items: Vec<T>, limit: usize, f: F) -> Result<Vec<R>, PublishError>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<R, PublishError>> + Send + 'static,
{
    let f = std::sync::Arc::new(f);
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(limit.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for item in items {
        let (f, permits) = (f.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .map_err(|e| PublishError::Verify(e.to_string()))?;
            f(item).await
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(r)) => out.push(r),
            Ok(Err(e)) => {
                tasks.abort_all();
                return Err(e);
            }
            Err(e) => {
                tasks.abort_all();
                return Err(PublishError::Verify(format!("upload task failed: {e}")));
            }
        }
    }
    Ok(out)
}

/// Writes `objects` to `dest` under `prefix` in safe order, taking their bytes from `source`,
/// then reads back and checks them, then writes the manifest.
pub async fn upload(
    dest: &Bucket,
    prefix: &str,
    objects: &[ObjectEntry],
    source: &Source,
    opts: &PublishOptions,
) -> Result<PublishReport, PublishError> {
    let known = std::sync::Arc::new(read_manifest(dest, prefix).await);
    let mut ordered: Vec<ObjectEntry> = objects.to_vec();
    ordered.sort_by(|a, b| {
        publish_rank(&a.path)
            .cmp(&publish_rank(&b.path))
            .then_with(|| a.path.cmp(&b.path))
    });
    let mut report = PublishReport {
        objects: ordered.clone(),
        ..Default::default()
    };
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let present = std::sync::Arc::new(dest.list_sizes(prefix).await?);
    forget_rewritten(dest, prefix, &known, &ordered, &present).await?;
    let mut written_paths: std::collections::HashSet<String> = std::collections::HashSet::new();

    let mut i = 0;
    while i < ordered.len() {
        let rank = publish_rank(&ordered[i].path);
        let end = ordered[i..]
            .iter()
            .position(|o| publish_rank(&o.path) != rank)
            .map(|n| i + n)
            .unwrap_or(ordered.len());
        let (dest, prefix, source, known, written, abort, present) = (
            dest.clone(),
            prefix.to_string(),
            source.clone(),
            known.clone(),
            written.clone(),
            (opts.abort_after, opts.kill_after, opts.stop.clone()),
            present.clone(),
        );
        let results = bounded(
            ordered[i..end].to_vec(),
            opts.concurrency,
            move |o: ObjectEntry| {
                let (dest, prefix, source, known, written, present, abort) = (
                    dest.clone(),
                    prefix.clone(),
                    source.clone(),
                    known.clone(),
                    written.clone(),
                    present.clone(),
                    abort.clone(),
                );
                async move {
                    let key = join(&prefix, &o.path);
                    let same = known.get(&o.path).is_some_and(|k| k.sha256 == o.sha256)
                        && present.get(&o.path) == Some(&o.size);
                    if same {
                        return Ok(None);
                    }
                    if abort
                        .2
                        .as_ref()
                        .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
                    {
                        return Err(PublishError::Refused(
                            "stopped before writing more objects".into(),
                        ));
                    }
                    let n = written.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if abort.0.is_some_and(|limit| n >= limit) {
                        return Err(PublishError::Refused(format!(
                            "aborted after {n} objects (fault injection)"
                        )));
                    }
                    if abort.1.is_some_and(|limit| n >= limit) {
                        // SAFETY: kill(2) on this process: the test wants a crash, not cleanup.
                        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
                    }
                    copy_one(&dest, &key, &o, &source).await?;
                    Ok(Some(o.path.clone()))
                }
            },
        )
        .await?;
        report.uploaded += results.iter().filter(|w| w.is_some()).count();
        report.unchanged += results.iter().filter(|w| w.is_none()).count();
        written_paths.extend(results.into_iter().flatten());
        i = end;
    }

    // Read back: indices fully (they are small, and what clients trust: they carry the hashes
    // of everything else), leaves by size.
    // Unchanged leaves were checked against the listing above; written ones are checked now.
    let (d, p) = (dest.clone(), prefix.to_string());
    let written_leaves: Vec<ObjectEntry> = report
        .objects
        .iter()
        .filter(|o| {
            publish_rank(&o.path) == 0 && !opts.verify_all && written_paths.contains(&o.path)
        })
        .cloned()
        .collect();
    bounded(written_leaves, opts.concurrency, move |o: ObjectEntry| {
        let (dest, prefix) = (d.clone(), p.clone());
        async move {
            let key = join(&prefix, &o.path);
            if dest.size(&key).await? == Some(o.size) {
                Ok(())
            } else {
                Err(PublishError::Verify(format!(
                    "{}: {key} does not hold what was published",
                    dest.name
                )))
            }
        }
    })
    .await?;
    let (d, p) = (dest.clone(), prefix.to_string());
    bounded(
        report
            .objects
            .iter()
            .filter(|o| publish_rank(&o.path) > 0 || opts.verify_all)
            .cloned()
            .collect(),
        opts.concurrency,
        move |o: ObjectEntry| {
            let (dest, prefix) = (d.clone(), p.clone());
            async move {
                let key = join(&prefix, &o.path);
                let ok = dest.digest(&key).await? == Some((o.sha256.clone(), o.size));
                if ok {
                    Ok(())
                } else {
                    Err(PublishError::Verify(format!(
                        "{}: {key} does not hold what was published",
                        dest.name
                    )))
                }
            }
        },
    )
    .await?;

    let mut manifest = (*known).clone();
    for o in &report.objects {
        manifest.insert(o.path.clone(), o.clone());
    }
    let bytes = serde_json::to_vec(&manifest.into_values().collect::<Vec<_>>())
        .map_err(|e| PublishError::Verify(e.to_string()))?;
    dest.put(&join(prefix, MANIFEST), bytes.into()).await?;
    Ok(report)
}

/// Drops from the prefix's manifest the objects about to be rewritten, before the first write.
/// The manifest is what later publishes trust to skip unchanged objects; after a crash it must
/// not claim an object holds bytes that a half-done publish may have replaced.
async fn forget_rewritten(
    dest: &Bucket,
    prefix: &str,
    known: &BTreeMap<String, ObjectEntry>,
    ordered: &[ObjectEntry],
    present: &std::collections::HashMap<String, u64>,
) -> Result<(), PublishError> {
    let rewritten: std::collections::HashSet<&str> = ordered
        .iter()
        .filter(|o| {
            known
                .get(&o.path)
                .is_some_and(|k| k.sha256 != o.sha256 || present.get(&o.path) != Some(&o.size))
        })
        .map(|o| o.path.as_str())
        .collect();
    if rewritten.is_empty() {
        return Ok(());
    }
    let kept: Vec<&ObjectEntry> = known
        .values()
        .filter(|k| !rewritten.contains(k.path.as_str()))
        .collect();
    let bytes = serde_json::to_vec(&kept).map_err(|e| PublishError::Verify(e.to_string()))?;
    dest.put(&join(prefix, MANIFEST), bytes.into()).await
}

async fn copy_one(
    dest: &Bucket,
    key: &str,
    o: &ObjectEntry,
    source: &Source,
) -> Result<(), PublishError> {
    match source {
        Source::Dir(dir) => dest.put_file(key, &dir.join(&o.path), o.size).await,
        Source::Files { files, fallback } => match (files.get(&o.path), fallback) {
            // The exact bytes or nothing: checked as they are read, before they are committed.
            (Some(path), _) => crate::checked::put_file_checked(dest, key, path, o).await,
            (None, Some((bucket, prefix))) => {
                let from = Source::Bucket {
                    bucket: bucket.clone(),
                    prefix: prefix.clone(),
                };
                Box::pin(copy_one(dest, key, o, &from)).await
            }
            (None, None) => Err(PublishError::Verify(format!("no source for {}", o.path))),
        },
        Source::Bucket { bucket, prefix } => {
            let from = join(prefix, &o.path);
            let bytes = bucket.get(&from).await?.ok_or_else(|| {
                PublishError::Verify(format!("{}: {from} is missing", bucket.name))
            })?;
            let sha = hex::encode(Sha256::digest(&bytes));
            if sha != o.sha256 || bytes.len() as u64 != o.size {
                return Err(PublishError::Verify(format!(
                    "{}: {from} changed since it was published (sha256 {sha})",
                    bucket.name
                )));
            }
            dest.put(key, bytes).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::BucketSpec;

    fn local(dir: &Path, name: &str) -> Bucket {
        Bucket::open(
            &BucketSpec {
                name: name.into(),
                url: format!("file://{name}"),
                ..Default::default()
            },
            dir,
            None,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn publishes_in_order_skips_unchanged_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("dists/x/main/binary-all")).unwrap();
        std::fs::create_dir_all(src.join("pool/main/a")).unwrap();
        std::fs::write(src.join("dists/x/InRelease"), "signed").unwrap();
        std::fs::write(src.join("dists/x/Release"), "release").unwrap();
        std::fs::write(src.join("dists/x/main/binary-all/Packages"), "pkgs").unwrap();
        std::fs::write(src.join("pool/main/a/a.deb"), "deb").unwrap();
        let bucket = local(dir.path(), "bucket");
        let opts = PublishOptions::default();

        let first = publish_dir(&src, &bucket, "74", &opts).await.unwrap();
        let order: Vec<_> = first.objects.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(
            order,
            [
                "pool/main/a/a.deb",
                "dists/x/main/binary-all/Packages",
                "dists/x/Release",
                "dists/x/InRelease"
            ]
        );
        assert_eq!(first.uploaded, 4);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("bucket/74/dists/x/InRelease")).unwrap(),
            "signed"
        );

        std::fs::write(src.join("dists/x/InRelease"), "signed again").unwrap();
        let second = publish_dir(&src, &bucket, "74", &opts).await.unwrap();
        assert_eq!((second.uploaded, second.unchanged), (1, 3));

        // Aborted midway: the objects before the abort are there, the manifest is not updated.
        // (Same sizes as before: only the digests tell the trees apart.)
        std::fs::write(src.join("dists/x/InRelease"), "signed-third").unwrap();
        std::fs::write(src.join("dists/x/Release"), "third!!").unwrap();
        let e = publish_dir(
            &src,
            &bucket,
            "74",
            &PublishOptions {
                concurrency: 1,
                abort_after: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("fault injection"));
        let served =
            |p: &str| std::fs::read_to_string(dir.path().join("bucket/74").join(p)).unwrap();
        assert_eq!(served("dists/x/Release"), "third!!");
        assert_eq!(served("dists/x/InRelease"), "signed again");

        // Publishing the previous tree again (a rollback) must rewrite the Release the aborted
        // publish replaced, although the old manifest listed its previous bytes and size.
        std::fs::write(src.join("dists/x/InRelease"), "signed again").unwrap();
        std::fs::write(src.join("dists/x/Release"), "release").unwrap();
        let again = publish_dir(&src, &bucket, "74", &opts).await.unwrap();
        // Both objects the aborted publish meant to rewrite are written again: the manifest
        // stopped vouching for them before its first write.
        assert_eq!((again.uploaded, again.unchanged), (2, 2));
        assert_eq!(served("dists/x/Release"), "release");
        assert_eq!(served("dists/x/InRelease"), "signed again");
    }

    #[tokio::test]
    async fn a_raised_stop_flag_writes_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("a"), "one").unwrap();
        let bucket = local(dir.path(), "bucket");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let e = publish_dir(
            &src,
            &bucket,
            "74",
            &PublishOptions {
                stop: Some(stop),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("stopped"), "{e}");
        assert!(bucket.get("74/a").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_hash_cache_skips_unchanged_files_and_sees_changed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("a"), "one").unwrap();
        std::fs::write(src.join("b"), "two").unwrap();
        let bucket = local(dir.path(), "bucket");
        let opts = PublishOptions {
            hash_cache: Some(dir.path().join("hashes.json")),
            ..Default::default()
        };
        assert_eq!(
            publish_dir(&src, &bucket, "", &opts)
                .await
                .unwrap()
                .uploaded,
            2
        );
        assert!(dir.path().join("hashes.json").exists());
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(src.join("b"), "changed").unwrap();
        let again = publish_dir(&src, &bucket, "", &opts).await.unwrap();
        assert_eq!((again.uploaded, again.unchanged), (1, 1));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("bucket/b")).unwrap(),
            "changed"
        );
    }

    #[tokio::test]
    async fn keys_cannot_escape() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = local(dir.path(), "b");
        assert!(bucket.key("../x").is_err());
        assert!(bucket.key("/x").is_err());
        assert!(bucket.key("a//b").is_err());
        assert!(
            Bucket::open(
                &BucketSpec {
                    name: "x".into(),
                    url: "ftp://x".into(),
                    ..Default::default()
                },
                dir.path(),
                None
            )
            .is_err()
        );
    }
}
