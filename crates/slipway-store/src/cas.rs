//! Content-addressed artifact store: `<root>/sha256/<2 hex>/<64 hex>`, written through a temp file
//! and a rename so a reader never sees a partial object and identical files are kept once.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum CasError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write to the artifact store at {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("artifact {0} is not in the store")]
    Missing(String),
    #[error("'{0}' is not a sha256 digest")]
    BadDigest(String),
    #[error(
        "artifact {sha256} in the store was changed after it was recorded (now sha256 {actual}, {size} bytes); restore it or rebuild"
    )]
    Corrupt {
        sha256: String,
        actual: String,
        size: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub sha256: String,
    pub size: u64,
    /// False when an identical object was already stored.
    pub new: bool,
}

#[derive(Debug, Clone)]
pub struct Cas {
    root: PathBuf,
}

impl Cas {
    /// Opens the store at `root`, creating it private (0700) if needed.
    pub fn open(root: &Path) -> Result<Cas, CasError> {
        crate::private::create_private_dir(root).map_err(|source| CasError::Write {
            path: root.to_path_buf(),
            source,
        })?;
        for dir in [root.join("sha256"), root.join("tmp")] {
            fs::create_dir_all(&dir).map_err(|source| CasError::Write { path: dir, source })?;
        }
        Ok(Cas {
            root: root.to_path_buf(),
        })
    }

    pub fn object_path(&self, sha256: &str) -> Result<PathBuf, CasError> {
        if sha256.len() != 64
            || !sha256
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(CasError::BadDigest(sha256.to_string()));
        }
        Ok(self.root.join("sha256").join(&sha256[..2]).join(sha256))
    }

    /// Copies `src` into the store, hashing as it copies.
    pub fn put_file(&self, src: &Path) -> Result<StoredFile, CasError> {
        let read_err = |source| CasError::Read {
            path: src.to_path_buf(),
            source,
        };
        let mut input = File::open(src).map_err(read_err)?;
        let tmp_dir = self.root.join("tmp");
        let mut tmp = tempfile_in(&tmp_dir)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = input.read(&mut buf).map_err(read_err)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            tmp.1
                .write_all(&buf[..n])
                .map_err(|source| CasError::Write {
                    path: tmp.0.clone(),
                    source,
                })?;
            size += n as u64;
        }
        let sha256 = hex::encode(hasher.finalize());
        let dest = self.object_path(&sha256)?;
        // Storing bytes that are already there marks them in use now, so a gc running meanwhile
        // keeps them; if a gc just took them, they are stored again below.
        if touch(&dest) {
            let _ = fs::remove_file(&tmp.0);
            return Ok(StoredFile {
                sha256,
                size,
                new: false,
            });
        }
        let write_err = |source| CasError::Write {
            path: dest.clone(),
            source,
        };
        tmp.1.sync_all().map_err(write_err)?;
        drop(tmp.1);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(write_err)?;
        }
        // Stored objects are immutable; read-only guards against a build editing one in place.
        fs::set_permissions(&tmp.0, fs::Permissions::from_mode(0o444)).map_err(write_err)?;
        fs::rename(&tmp.0, &dest).map_err(write_err)?;
        Ok(StoredFile {
            sha256,
            size,
            new: true,
        })
    }

    /// The path of a stored object after hashing it: an object edited in the store (it is
    /// read-only, but root can write anyway) is refused rather than used.
    pub fn verified_path(&self, sha256: &str) -> Result<PathBuf, CasError> {
        let src = self.object_path(sha256)?;
        let mut input = open_object(&src, sha256)?;
        copy_checked(&mut input, &src, sha256, &mut io::sink(), &src)?;
        Ok(src)
    }

    /// The bytes of a stored object, checked against its digest.
    pub fn read_verified(&self, sha256: &str) -> Result<Vec<u8>, CasError> {
        let src = self.object_path(sha256)?;
        let mut input = open_object(&src, sha256)?;
        let mut out = Vec::new();
        copy_checked(&mut input, &src, sha256, &mut out, &src)?;
        Ok(out)
    }

    /// Writes a stored object to `dest` (a new file; parents created), via a temp file + rename,
    /// checking its digest on the way: a changed object never reaches a build.
    pub fn export(&self, sha256: &str, dest: &Path) -> Result<(), CasError> {
        let src = self.object_path(sha256)?;
        let mut input = open_object(&src, sha256)?;
        let write_err = |source| CasError::Write {
            path: dest.to_path_buf(),
            source,
        };
        let parent = dest.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(write_err)?;
        let tmp = parent.join(format!(
            ".{}.slipway-tmp",
            dest.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("artifact")
        ));
        let mut out = File::create(&tmp).map_err(write_err)?;
        if let Err(e) = copy_checked(&mut input, &src, sha256, &mut out, &tmp) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        drop(out);
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).map_err(write_err)?;
        fs::rename(&tmp, dest).map_err(write_err)?;
        Ok(())
    }
}

fn open_object(path: &Path, sha256: &str) -> Result<File, CasError> {
    File::open(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => CasError::Missing(sha256.to_string()),
        _ => CasError::Read {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// Copies `input` to `out` while hashing it; an error unless the bytes hash to `sha256`.
fn copy_checked(
    input: &mut File,
    src: &Path,
    sha256: &str,
    out: &mut dyn Write,
    out_path: &Path,
) -> Result<(), CasError> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = input.read(&mut buf).map_err(|source| CasError::Read {
            path: src.to_path_buf(),
            source,
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|source| CasError::Write {
            path: out_path.to_path_buf(),
            source,
        })?;
        size += n as u64;
    }
    let actual = hex::encode(hasher.finalize());
    if actual != sha256 {
        return Err(CasError::Corrupt {
            sha256: sha256.to_string(),
            actual,
            size,
        });
    }
    Ok(())
}

/// Sets the modification time of an existing object to now; false when it is not there (or
/// cannot be touched: then it is stored again, the same bytes).
fn touch(path: &Path) -> bool {
    File::open(path)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        .is_ok()
}

fn tempfile_in(dir: &Path) -> Result<(PathBuf, File), CasError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{}-{n}", std::process::id()));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(CasError::Write { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_files_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let cas = Cas::open(&dir.path().join("cas")).unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::write(&a, b"same bytes").unwrap();
        fs::write(&b, b"same bytes").unwrap();
        let first = cas.put_file(&a).unwrap();
        let second = cas.put_file(&b).unwrap();
        assert!(first.new);
        assert!(!second.new);
        assert_eq!(first.sha256, second.sha256);
        assert_eq!(first.size, 10);
        let objects: Vec<_> = walk(&dir.path().join("cas/sha256"));
        assert_eq!(objects.len(), 1);
        assert!(
            fs::read_dir(dir.path().join("cas/tmp"))
                .unwrap()
                .next()
                .is_none()
        );

        let out = dir.path().join("out/x/y");
        cas.export(&first.sha256, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"same bytes");
    }

    #[test]
    fn bad_digests_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let cas = Cas::open(dir.path()).unwrap();
        assert!(matches!(
            cas.object_path("../../etc/passwd"),
            Err(CasError::BadDigest(_))
        ));
        assert!(matches!(
            cas.export(&"0".repeat(64), &dir.path().join("x")),
            Err(CasError::Missing(_))
        ));
    }

    #[test]
    fn a_changed_object_is_refused_when_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let cas = Cas::open(&dir.path().join("cas")).unwrap();
        let a = dir.path().join("a");
        fs::write(&a, b"recorded bytes").unwrap();
        let stored = cas.put_file(&a).unwrap();
        assert_eq!(
            cas.read_verified(&stored.sha256).unwrap(),
            b"recorded bytes"
        );
        let path = cas.object_path(&stored.sha256).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, b"edited bytes!!").unwrap();
        for err in [
            cas.read_verified(&stored.sha256).unwrap_err(),
            cas.verified_path(&stored.sha256).unwrap_err(),
            cas.export(&stored.sha256, &dir.path().join("out/x"))
                .unwrap_err(),
        ] {
            assert!(matches!(err, CasError::Corrupt { .. }), "{err}");
        }
        assert!(!dir.path().join("out/x").exists());
        assert!(
            fs::read_dir(dir.path().join("out"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p))
            } else {
                out.push(p)
            }
        }
        out
    }
}
