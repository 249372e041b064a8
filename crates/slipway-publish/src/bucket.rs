//! Buckets. This version writes `file://` buckets; object-store backends plug in behind the same
//! `Bucket` type.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::order::sort_for_publish;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("bucket url '{0}' is not supported by this version (use file://)")]
    Unsupported(String),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("refusing to publish '{0}': object paths must be relative and stay inside the bucket")]
    BadPath(String),
    #[error("nothing to publish in {0}")]
    Empty(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, Default)]
pub struct PublishReport {
    /// Every object of the tree, in the order it was published.
    pub objects: Vec<ObjectEntry>,
    pub uploaded: usize,
    pub unchanged: usize,
}

#[derive(Debug, Clone)]
pub enum Bucket {
    Local(PathBuf),
}

impl Bucket {
    /// Resolves a bucket URL; relative `file://` paths are relative to `base_dir`.
    pub fn from_url(url: &str, base_dir: &Path) -> Result<Bucket, PublishError> {
        let Some(path) = url.strip_prefix("file://") else {
            return Err(PublishError::Unsupported(url.to_string()));
        };
        let p = Path::new(path);
        Ok(Bucket::Local(if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        }))
    }

    fn object_path(&self, key: &str) -> Result<PathBuf, PublishError> {
        if key.is_empty()
            || key.starts_with('/')
            || key
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(PublishError::BadPath(key.to_string()));
        }
        let Bucket::Local(root) = self;
        Ok(root.join(key))
    }

    fn sha256_of(&self, key: &str) -> Result<Option<String>, PublishError> {
        let path = self.object_path(key)?;
        match File::open(&path) {
            Ok(f) => hash_reader(f)
                .map(|(h, _)| Some(h))
                .map_err(|source| PublishError::Read { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(PublishError::Read { path, source }),
        }
    }

    /// Writes one object atomically: a temp file beside it, then a rename over the old one.
    fn put(&self, key: &str, src: &Path) -> Result<(), PublishError> {
        let dest = self.object_path(key)?;
        let write_err = |source| PublishError::Write {
            path: dest.clone(),
            source,
        };
        let parent = dest
            .parent()
            .ok_or_else(|| PublishError::BadPath(key.to_string()))?;
        fs::create_dir_all(parent).map_err(write_err)?;
        let name = dest
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object");
        let tmp = parent.join(format!(".{name}.{}.partial", std::process::id()));
        fs::copy(src, &tmp).map_err(write_err)?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(write_err)?;
        fs::rename(&tmp, &dest).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            write_err(e)
        })
    }
}

fn hash_reader(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Publishes every file under `src` to `bucket` under `prefix`, in safe order, skipping objects
/// already present with the same sha256.
pub fn publish_tree(
    src: &Path,
    bucket: &Bucket,
    prefix: &str,
) -> Result<PublishReport, PublishError> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for entry in walkdir::WalkDir::new(src).follow_links(false) {
        let entry = entry.map_err(|e| PublishError::Read {
            path: src.to_path_buf(),
            source: e.into(),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(src)
            .ok()
            .and_then(|p| p.to_str())
            .ok_or_else(|| PublishError::BadPath(entry.path().display().to_string()))?;
        files.push((rel.to_string(), entry.path().to_path_buf()));
    }
    if files.is_empty() {
        return Err(PublishError::Empty(src.to_path_buf()));
    }
    let mut keys: Vec<String> = files.iter().map(|(k, _)| k.clone()).collect();
    sort_for_publish(&mut keys);
    let by_key: std::collections::HashMap<&str, &PathBuf> =
        files.iter().map(|(k, p)| (k.as_str(), p)).collect();

    let prefix = prefix.trim_matches('/');
    let mut report = PublishReport::default();
    for key in &keys {
        let local = by_key[key.as_str()];
        let (sha256, size) =
            File::open(local)
                .and_then(hash_reader)
                .map_err(|source| PublishError::Read {
                    path: local.clone(),
                    source,
                })?;
        let object = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}/{key}")
        };
        if bucket.sha256_of(&object)?.as_deref() == Some(sha256.as_str()) {
            report.unchanged += 1;
        } else {
            bucket.put(&object, local)?;
            report.uploaded += 1;
        }
        report.objects.push(ObjectEntry {
            path: object,
            sha256,
            size,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_in_order_and_skips_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("dists/x/main/binary-all")).unwrap();
        fs::create_dir_all(src.join("pool/main/a")).unwrap();
        fs::write(src.join("dists/x/InRelease"), "signed").unwrap();
        fs::write(src.join("dists/x/Release"), "release").unwrap();
        fs::write(src.join("dists/x/main/binary-all/Packages"), "pkgs").unwrap();
        fs::write(src.join("pool/main/a/a.deb"), "deb").unwrap();
        let bucket = Bucket::from_url("file://bucket", dir.path()).unwrap();

        let first = publish_tree(&src, &bucket, "74").unwrap();
        let order: Vec<_> = first.objects.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(
            order,
            [
                "74/pool/main/a/a.deb",
                "74/dists/x/main/binary-all/Packages",
                "74/dists/x/Release",
                "74/dists/x/InRelease"
            ]
        );
        assert_eq!(first.uploaded, 4);
        assert_eq!(
            fs::read_to_string(dir.path().join("bucket/74/dists/x/InRelease")).unwrap(),
            "signed"
        );

        fs::write(src.join("dists/x/InRelease"), "signed again").unwrap();
        let second = publish_tree(&src, &bucket, "74").unwrap();
        assert_eq!((second.uploaded, second.unchanged), (1, 3));
    }

    #[test]
    fn rejects_keys_that_escape() {
        let bucket = Bucket::Local(PathBuf::from("/tmp/b"));
        assert!(bucket.object_path("../x").is_err());
        assert!(bucket.object_path("/x").is_err());
        assert!(Bucket::from_url("s3://b", Path::new(".")).is_err());
    }
}
