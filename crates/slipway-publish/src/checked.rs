//! Uploads that commit only the bytes a manifest names: a local file is hashed as it is read,
//! and a mismatch stops the upload before the object exists at the destination (small objects
//! are checked before the single put; large ones abort their multipart upload).

use std::path::Path;

use object_store::{PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::bucket::{Bucket, PublishError};
use crate::publish::ObjectEntry;

/// Objects above this size go up in parts.
const MULTIPART_ABOVE: u64 = 16 << 20;
const PART_SIZE: usize = 8 << 20;

fn mismatch(path: &Path, o: &ObjectEntry, sha: &str, size: u64) -> PublishError {
    PublishError::Verify(format!(
        "{}: holds sha256 {sha} ({size} bytes), not the recorded {} ({} bytes) of {}; nothing was written",
        path.display(),
        o.sha256,
        o.size,
        o.path
    ))
}

pub(crate) async fn put_file_checked(
    dest: &Bucket,
    key: &str,
    path: &Path,
    o: &ObjectEntry,
) -> Result<(), PublishError> {
    let read_err = |source| PublishError::Read {
        path: path.to_path_buf(),
        source,
    };
    if o.size <= MULTIPART_ABOVE {
        let bytes = tokio::fs::read(path).await.map_err(read_err)?;
        let sha = hex::encode(Sha256::digest(&bytes));
        if sha != o.sha256 || bytes.len() as u64 != o.size {
            return Err(mismatch(path, o, &sha, bytes.len() as u64));
        }
        return dest.put(key, bytes.into()).await;
    }
    let store_key = dest.key(key)?;
    let upload = dest
        .object_store()
        .put_multipart(&store_key)
        .await
        .map_err(|e| dest.err(format!("{key}: {e}")))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut file = tokio::fs::File::open(path).await.map_err(read_err)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; PART_SIZE];
    loop {
        let n = match file.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(read_err(e));
            }
        };
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
        if let Err(e) = writer.wait_for_capacity(4).await {
            return Err(dest.err(format!("{key}: {e}")));
        }
        writer.put(PutPayload::from(buf[..n].to_vec()).into());
    }
    let sha = hex::encode(hasher.finalize());
    if sha != o.sha256 || size != o.size {
        let _ = writer.abort().await;
        return Err(mismatch(path, o, &sha, size));
    }
    writer
        .finish()
        .await
        .map(|_| ())
        .map_err(|e| dest.err(format!("{key}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::BucketSpec;

    #[tokio::test]
    async fn a_file_that_does_not_match_its_entry_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let b = Bucket::open(
            &BucketSpec {
                name: "prod".into(),
                url: format!("file://{}", dir.path().join("prod").display()),
                ..Default::default()
            },
            dir.path(),
            None,
        )
        .unwrap();
        for size in [1000usize, (MULTIPART_ABOVE as usize) + 5] {
            let src = dir.path().join(format!("src-{size}"));
            let good = vec![7u8; size];
            std::fs::write(&src, &good).unwrap();
            let entry = ObjectEntry {
                path: format!("x-{size}"),
                sha256: hex::encode(Sha256::digest(&good)),
                size: size as u64,
            };
            let mut bad = good.clone();
            bad[size / 2] = 8;
            std::fs::write(&src, &bad).unwrap();
            let err = put_file_checked(&b, &entry.path, &src, &entry)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("nothing was written"), "{err}");
            assert!(b.get(&entry.path).await.unwrap().is_none());
            std::fs::write(&src, &good).unwrap();
            put_file_checked(&b, &entry.path, &src, &entry)
                .await
                .unwrap();
            assert_eq!(
                b.digest(&entry.path).await.unwrap().unwrap().0,
                entry.sha256
            );
        }
    }
}
