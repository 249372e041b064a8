//! Writes that apply only if an object is as the writer last saw it (compare-and-swap), for
//! leases. Remote buckets use the store's conditional requests (S3 `If-None-Match`/`If-Match`,
//! GCS generations); a `file://` bucket holds an exclusive `flock` on the object's folder for the
//! read-compare-write, so every Slipway on the host sees one order. Never delete-then-create.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use object_store::{PutMode, PutOptions, PutPayload, UpdateVersion};
use sha2::{Digest, Sha256};

use crate::bucket::{Bucket, PublishError};

/// What an object was when read: a write conditional on it fails if anyone wrote since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    e_tag: Option<String>,
    version: Option<String>,
}

impl ObjectVersion {
    fn local(bytes: &[u8]) -> ObjectVersion {
        ObjectVersion {
            e_tag: Some(hex::encode(Sha256::digest(bytes))),
            version: None,
        }
    }
}

/// Holds `flock(LOCK_EX)` on a folder until dropped: one holder at a time across threads and
/// processes of this host. Blocks until it has the lock.
pub struct FolderLock(std::fs::File);

impl FolderLock {
    pub fn take(dir: &Path) -> std::io::Result<FolderLock> {
        std::fs::create_dir_all(dir)?;
        let f = std::fs::File::open(dir)?;
        loop {
            // SAFETY: flock(2) on a descriptor this struct owns; no memory is shared.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(FolderLock(f));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl FolderLock {
    /// The lock if it is free now, `None` if someone holds it.
    pub fn try_take(dir: &Path) -> std::io::Result<Option<FolderLock>> {
        std::fs::create_dir_all(dir)?;
        let f = std::fs::File::open(dir)?;
        // SAFETY: flock(2) on a descriptor this function owns; no memory is shared.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Some(FolderLock(f)));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        }
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // SAFETY: as above; closing the file would release it too.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

enum Local {
    Create(Bytes),
    Get,
    Replace(ObjectVersion, Bytes),
    Delete(ObjectVersion),
}

enum LocalResult {
    Version(Option<ObjectVersion>),
    Read(Option<(Bytes, ObjectVersion)>),
    Deleted(bool),
}

/// One compare-and-swap step on a `file://` object, under the folder lock.
fn local_op(path: &Path, op: Local) -> std::io::Result<LocalResult> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let _lock = FolderLock::take(dir)?;
    let current = match std::fs::read(path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let current_version = current.as_deref().map(ObjectVersion::local);
    Ok(match op {
        Local::Get => LocalResult::Read(current.map(|b| {
            (
                Bytes::from(b),
                current_version.unwrap_or_else(|| ObjectVersion::local(&[])),
            )
        })),
        Local::Create(bytes) => {
            if current.is_some() {
                LocalResult::Version(None)
            } else {
                write_replacing(path, &bytes)?;
                LocalResult::Version(Some(ObjectVersion::local(&bytes)))
            }
        }
        Local::Replace(expected, bytes) => {
            if current_version.as_ref() == Some(&expected) {
                write_replacing(path, &bytes)?;
                LocalResult::Version(Some(ObjectVersion::local(&bytes)))
            } else {
                LocalResult::Version(None)
            }
        }
        Local::Delete(expected) => {
            if current_version.as_ref() == Some(&expected) {
                std::fs::remove_file(path)?;
                LocalResult::Deleted(true)
            } else {
                LocalResult::Deleted(false)
            }
        }
    })
}

fn write_replacing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp: PathBuf = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object"),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Bucket {
    async fn local_cas(&self, rel: &str, op: Local) -> Result<Option<LocalResult>, PublishError> {
        let Some(path) = self.local_file(rel)? else {
            return Ok(None);
        };
        let name = self.name.clone();
        let rel = rel.to_string();
        tokio::task::spawn_blocking(move || local_op(&path, op))
            .await
            .map_err(|e| PublishError::Bucket {
                bucket: name.clone(),
                message: format!("{rel}: {e}"),
            })?
            .map(Some)
            .map_err(|e| PublishError::Bucket {
                bucket: name,
                message: format!("{rel}: {e}"),
            })
    }

    /// Writes `bytes` only if no object is at `rel`; its version, or `None` if one exists.
    pub async fn create_if_absent(
        &self,
        rel: &str,
        bytes: Bytes,
    ) -> Result<Option<ObjectVersion>, PublishError> {
        if let Some(LocalResult::Version(v)) =
            self.local_cas(rel, Local::Create(bytes.clone())).await?
        {
            return Ok(v);
        }
        self.put_conditional(rel, bytes, PutMode::Create).await
    }

    /// The object at `rel` and its version, or `None`.
    pub async fn get_versioned(
        &self,
        rel: &str,
    ) -> Result<Option<(Bytes, ObjectVersion)>, PublishError> {
        if let Some(LocalResult::Read(r)) = self.local_cas(rel, Local::Get).await? {
            return Ok(r);
        }
        let key = self.key(rel)?;
        let got = match self.object_store().get(&key).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.err(format!("{rel}: {e}"))),
        };
        let version = ObjectVersion {
            e_tag: got.meta.e_tag.clone(),
            version: got.meta.version.clone(),
        };
        let bytes = got
            .bytes()
            .await
            .map_err(|e| self.err(format!("{rel}: {e}")))?;
        Ok(Some((bytes, version)))
    }

    /// Replaces the object at `rel` only if it is still at `expected`; the new version, or
    /// `None` if someone else wrote (or deleted) it since.
    pub async fn replace_if(
        &self,
        rel: &str,
        expected: &ObjectVersion,
        bytes: Bytes,
    ) -> Result<Option<ObjectVersion>, PublishError> {
        if let Some(LocalResult::Version(v)) = self
            .local_cas(rel, Local::Replace(expected.clone(), bytes.clone()))
            .await?
        {
            return Ok(v);
        }
        let mode = PutMode::Update(UpdateVersion {
            e_tag: expected.e_tag.clone(),
            version: expected.version.clone(),
        });
        self.put_conditional(rel, bytes, mode).await
    }

    /// A remote put in `mode` (create or update-if-version): the new version, or `None` when
    /// its condition does not hold (the object exists, changed, or is gone).
    async fn put_conditional(
        &self,
        rel: &str,
        bytes: Bytes,
        mode: PutMode,
    ) -> Result<Option<ObjectVersion>, PublishError> {
        let key = self.key(rel)?;
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .object_store()
            .put_opts(&key, PutPayload::from_bytes(bytes), opts)
            .await
        {
            Ok(r) => Ok(Some(ObjectVersion {
                e_tag: r.e_tag,
                version: r.version,
            })),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. }
                | object_store::Error::NotFound { .. },
            ) => Ok(None),
            Err(object_store::Error::NotImplemented) => Err(self.err(format!(
                "{rel}: this store cannot do conditional writes, which promotion leases need"
            ))),
            Err(e) => Err(self.err(format!("{rel}: {e}"))),
        }
    }

    /// Deletes the object at `rel` if it is still at `expected`. Remote stores have no
    /// conditional delete through `object_store`: the version is checked just before deleting,
    /// so a writer in that window loses its write (leases are only deleted by their holder).
    pub async fn delete_if(
        &self,
        rel: &str,
        expected: &ObjectVersion,
    ) -> Result<bool, PublishError> {
        if let Some(LocalResult::Deleted(d)) =
            self.local_cas(rel, Local::Delete(expected.clone())).await?
        {
            return Ok(d);
        }
        match self.get_versioned(rel).await? {
            Some((_, v)) if &v == expected => {
                self.delete(rel).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::BucketSpec;

    fn local(dir: &Path) -> Bucket {
        Bucket::open(
            &BucketSpec {
                name: "prod".into(),
                url: format!("file://{}", dir.display()),
                ..Default::default()
            },
            dir,
            None,
        )
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_many_racing_replacers_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let b = local(dir.path());
        let v0 = b
            .create_if_absent("74/.slipway-lease", Bytes::from_static(b"stale"))
            .await
            .unwrap()
            .expect("created");
        assert!(
            b.create_if_absent("74/.slipway-lease", Bytes::from_static(b"again"))
                .await
                .unwrap()
                .is_none()
        );
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..16 {
            let (b, v0) = (b.clone(), v0.clone());
            tasks.spawn(async move {
                b.replace_if("74/.slipway-lease", &v0, Bytes::from(format!("taker {i}")))
                    .await
                    .unwrap()
                    .is_some()
            });
        }
        let mut winners = 0;
        while let Some(won) = tasks.join_next().await {
            winners += usize::from(won.unwrap());
        }
        assert_eq!(winners, 1);
        let (bytes, v1) = b.get_versioned("74/.slipway-lease").await.unwrap().unwrap();
        assert!(bytes.starts_with(b"taker "));
        // A stale version can neither replace nor delete.
        assert!(!b.delete_if("74/.slipway-lease", &v0).await.unwrap());
        assert!(b.delete_if("74/.slipway-lease", &v1).await.unwrap());
        assert!(
            b.get_versioned("74/.slipway-lease")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            b.replace_if("74/.slipway-lease", &v1, Bytes::from_static(b"x"))
                .await
                .unwrap()
                .is_none()
        );
        // No temp files left beside the lease.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("74")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
