//! Buckets: `file://`, `s3://`, `gs://` through the `object_store` crate. A bucket URL may carry a
//! path (`s3://name/some/prefix`); every key is relative to it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, ObjectStore, PutMode, PutOptions, PutPayload, WriteMultipart,
};
use sha2::{Digest, Sha256};

/// Objects above this size go up in parts.
const MULTIPART_ABOVE: u64 = 16 << 20;
const PART_SIZE: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("bucket '{bucket}': {message}")]
    Bucket { bucket: String, message: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refusing '{0}': object keys must be relative and stay inside the bucket")]
    BadPath(String),
    #[error("nothing to publish in {0}")]
    Empty(PathBuf),
    #[error("{0}")]
    Verify(String),
    #[error("{0}")]
    Refused(String),
}

/// How to reach a bucket (from the service config).
#[derive(Debug, Clone, Default)]
pub struct BucketSpec {
    pub name: String,
    pub url: String,
    /// S3: endpoint URL of a non-AWS server (e.g. `http://127.0.0.1:9000`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: bool,
    pub cache_control: Option<String>,
}

/// S3 credentials, from the secrets store (`KEY=value` lines) or the environment.
#[derive(Clone, Default)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

impl Credentials {
    /// Parses `AWS_ACCESS_KEY_ID=...`, `AWS_SECRET_ACCESS_KEY=...`, optional `AWS_SESSION_TOKEN=...`.
    /// The error never quotes the text.
    pub fn parse(text: &str) -> Result<Credentials, String> {
        let mut c = Credentials::default();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let Some((k, v)) = line.split_once('=') else {
                return Err("credentials must be KEY=value lines".into());
            };
            let v = v.trim().trim_matches('"').to_string();
            match k.trim() {
                "AWS_ACCESS_KEY_ID" | "access_key_id" => c.access_key_id = v,
                "AWS_SECRET_ACCESS_KEY" | "secret_access_key" => c.secret_access_key = v,
                "AWS_SESSION_TOKEN" | "session_token" => c.session_token = Some(v),
                other => return Err(format!("unknown credentials key '{other}'")),
            }
        }
        if c.access_key_id.is_empty() || c.secret_access_key.is_empty() {
            return Err("credentials need AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into());
        }
        Ok(c)
    }
}

#[derive(Debug, Clone)]
pub struct Bucket {
    pub name: String,
    pub url: String,
    store: Arc<dyn ObjectStore>,
    root: String,
    cache_control: Option<String>,
    local: bool,
}

impl Bucket {
    /// Opens a bucket. Relative `file://` paths are relative to `base_dir`; `creds` of `None`
    /// means the environment's (S3) or the default chain (GCS).
    pub fn open(
        spec: &BucketSpec,
        base_dir: &Path,
        creds: Option<&Credentials>,
    ) -> Result<Bucket, PublishError> {
        let err = |message: String| PublishError::Bucket {
            bucket: spec.name.clone(),
            message,
        };
        let (store, root, local): (Arc<dyn ObjectStore>, String, bool) =
            if let Some(path) = spec.url.strip_prefix("file://") {
                let p = Path::new(path);
                let dir = if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    base_dir.join(p)
                };
                std::fs::create_dir_all(&dir)
                    .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
                let fs = LocalFileSystem::new_with_prefix(&dir).map_err(|e| err(e.to_string()))?;
                (Arc::new(fs), String::new(), true)
            } else if let Some(rest) = spec.url.strip_prefix("s3://") {
                let (name, root) = rest.split_once('/').unwrap_or((rest, ""));
                let mut b = match creds {
                    Some(_) => AmazonS3Builder::new(),
                    None => AmazonS3Builder::from_env(),
                }
                .with_bucket_name(name)
                .with_region(spec.region.clone().unwrap_or_else(|| "us-east-1".into()))
                .with_allow_http(spec.allow_http)
                .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch);
                if let Some(e) = &spec.endpoint {
                    b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
                }
                if let Some(c) = creds {
                    b = b
                        .with_access_key_id(&c.access_key_id)
                        .with_secret_access_key(&c.secret_access_key);
                    if let Some(t) = &c.session_token {
                        b = b.with_token(t);
                    }
                }
                // The error text of the builder names settings, never their values.
                (
                    Arc::new(b.build().map_err(|e| err(e.to_string()))?),
                    root.trim_matches('/').to_string(),
                    false,
                )
            } else if let Some(rest) = spec.url.strip_prefix("gs://") {
                let (name, root) = rest.split_once('/').unwrap_or((rest, ""));
                let b = GoogleCloudStorageBuilder::from_env().with_bucket_name(name);
                (
                    Arc::new(b.build().map_err(|e| err(e.to_string()))?),
                    root.trim_matches('/').to_string(),
                    false,
                )
            } else {
                return Err(err(format!(
                    "url '{}' must start with file://, s3:// or gs://",
                    spec.url
                )));
            };
        Ok(Bucket {
            name: spec.name.clone(),
            url: spec.url.clone(),
            store,
            root,
            cache_control: spec.cache_control.clone(),
            local,
        })
    }

    fn err(&self, message: impl std::fmt::Display) -> PublishError {
        PublishError::Bucket {
            bucket: self.name.clone(),
            message: message.to_string(),
        }
    }

    /// The store key for a bucket-relative key, refusing anything that could escape.
    pub fn key(&self, rel: &str) -> Result<Key, PublishError> {
        if rel.is_empty()
            || rel.starts_with('/')
            || rel
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(PublishError::BadPath(rel.to_string()));
        }
        let full = if self.root.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.root)
        };
        Key::parse(&full).map_err(|_| PublishError::BadPath(rel.to_string()))
    }

    fn options(&self, mode: PutMode) -> PutOptions {
        let mut attributes = Attributes::new();
        // The local store has no object attributes; remote ones serve Cache-Control to clients.
        if let (Some(cc), false) = (&self.cache_control, self.local) {
            attributes.insert(Attribute::CacheControl, cc.clone().into());
        }
        PutOptions {
            mode,
            attributes,
            ..Default::default()
        }
    }

    pub async fn get(&self, rel: &str) -> Result<Option<Bytes>, PublishError> {
        match self.store.get(&self.key(rel)?).await {
            Ok(r) => r.bytes().await.map(Some).map_err(|e| self.err(e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Every object under `prefix` with its size, keys relative to the prefix: one listing
    /// instead of a request per object.
    pub async fn list_sizes(
        &self,
        prefix: &str,
    ) -> Result<std::collections::HashMap<String, u64>, PublishError> {
        let prefix = prefix.trim_matches('/');
        let full = match (self.root.is_empty(), prefix.is_empty()) {
            (true, true) => String::new(),
            (true, false) => prefix.to_string(),
            (false, true) => self.root.clone(),
            (false, false) => format!("{}/{prefix}", self.root),
        };
        let key = if full.is_empty() {
            None
        } else {
            Some(Key::parse(&full).map_err(|_| PublishError::BadPath(full.clone()))?)
        };
        let mut stream = self.store.list(key.as_ref());
        let mut out = std::collections::HashMap::new();
        while let Some(meta) = stream.next().await {
            let meta = match meta {
                Ok(m) => m,
                // A prefix that does not exist yet (local store) lists as empty.
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(self.err(e)),
            };
            let path = meta.location.to_string();
            let rel = if full.is_empty() {
                path.as_str()
            } else {
                path.strip_prefix(&format!("{full}/")).unwrap_or(&path)
            };
            out.insert(rel.to_string(), meta.size);
        }
        Ok(out)
    }

    /// Size of an object, or `None` when absent.
    pub async fn size(&self, rel: &str) -> Result<Option<u64>, PublishError> {
        match self.store.head(&self.key(rel)?).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    pub async fn put(&self, rel: &str, bytes: Bytes) -> Result<(), PublishError> {
        let key = self.key(rel)?;
        self.store
            .put_opts(
                &key,
                PutPayload::from_bytes(bytes),
                self.options(PutMode::Overwrite),
            )
            .await
            .map(|_| ())
            .map_err(|e| self.err(format!("{rel}: {e}")))
    }

    /// Writes an object only if none exists. `Ok(false)` when one does (a held lease).
    pub async fn create(&self, rel: &str, bytes: Bytes) -> Result<bool, PublishError> {
        let key = self.key(rel)?;
        match self
            .store
            .put_opts(
                &key,
                PutPayload::from_bytes(bytes),
                self.options(PutMode::Create),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(self.err(format!("{rel}: {e}"))),
        }
    }

    pub async fn delete(&self, rel: &str) -> Result<(), PublishError> {
        match self.store.delete(&self.key(rel)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Uploads a local file, in parts when it is large.
    pub async fn put_file(&self, rel: &str, path: &Path, size: u64) -> Result<(), PublishError> {
        if size <= MULTIPART_ABOVE {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|source| PublishError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
            return self.put(rel, bytes.into()).await;
        }
        let key = self.key(rel)?;
        let opts = object_store::PutMultipartOptions {
            attributes: self.options(PutMode::Overwrite).attributes,
            ..Default::default()
        };
        let upload = self
            .store
            .put_multipart_opts(&key, opts)
            .await
            .map_err(|e| self.err(format!("{rel}: {e}")))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|source| PublishError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        let mut buf = vec![0u8; PART_SIZE];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut file, &mut buf)
                .await
                .map_err(|source| PublishError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            writer
                .wait_for_capacity(4)
                .await
                .map_err(|e| self.err(format!("{rel}: {e}")))?;
            writer.write(&buf[..n]);
        }
        writer
            .finish()
            .await
            .map(|_| ())
            .map_err(|e| self.err(format!("{rel}: {e}")))
    }

    /// Reads an object back and returns its sha256 and size.
    pub async fn digest(&self, rel: &str) -> Result<Option<(String, u64)>, PublishError> {
        let key = self.key(rel)?;
        let result = match self.store.get(&key).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let mut stream = result.into_stream();
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.err(format!("{rel}: {e}")))?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok(Some((hex::encode(hasher.finalize()), size)))
    }
}
