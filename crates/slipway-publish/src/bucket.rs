//! Buckets: `file://`, `s3://`, `gs://` through the `object_store` crate. A bucket URL may carry a
//! path (`s3://name/some/prefix`); every key is relative to it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, ClientConfigKey, ObjectStore, PutMode, PutOptions, PutPayload,
    WriteMultipart,
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
    /// S3 or GCS: the URL of a server other than the provider's (e.g. `http://127.0.0.1:9000`).
    pub endpoint: Option<String>,
    /// S3 only.
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

/// What a bucket signs its requests with.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// The environment's credentials (S3) or Google's default chain (GCS).
    Ambient,
    S3(&'a Credentials),
    Gcs(&'a ServiceAccountKey),
}

/// A Google Cloud service-account key (the JSON file the console hands out).
#[derive(Clone)]
pub struct ServiceAccountKey {
    fields: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceAccountKey(..)")
    }
}

impl ServiceAccountKey {
    /// Checks the fields `object_store` reads, so its decoding errors (which may quote a value)
    /// never happen. Errors name fields, never values.
    pub fn parse(text: &str) -> Result<ServiceAccountKey, String> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|_| "a service-account key must be a JSON object".to_string())?;
        let serde_json::Value::Object(object) = value else {
            return Err("a service-account key must be a JSON object".into());
        };
        for field in ["private_key", "private_key_id", "client_email"] {
            if !object.get(field).is_some_and(serde_json::Value::is_string) {
                return Err(format!("the service-account key has no `{field}` string"));
            }
        }
        if object.get("disable_oauth").is_some_and(|v| !v.is_boolean()) {
            return Err("`disable_oauth` in the service-account key must be true or false".into());
        }
        if object.get("gcs_base_url").is_some_and(|v| !v.is_string()) {
            return Err("`gcs_base_url` in the service-account key must be a string".into());
        }
        Ok(ServiceAccountKey { fields: object })
    }

    /// The key with its requests sent to `endpoint` (when given) instead of Google.
    fn with_base_url(&self, endpoint: Option<&str>) -> ServiceAccountKey {
        let mut key = self.clone();
        if let Some(endpoint) = endpoint {
            key.fields
                .insert("gcs_base_url".into(), endpoint.trim_end_matches('/').into());
        }
        key
    }

    /// No key at all: requests to `endpoint` carry an empty token.
    fn unsigned(endpoint: &str) -> ServiceAccountKey {
        let mut fields = serde_json::Map::new();
        for field in ["private_key", "private_key_id", "client_email"] {
            fields.insert(field.into(), "".into());
        }
        fields.insert("disable_oauth".into(), true.into());
        ServiceAccountKey { fields }.with_base_url(Some(endpoint))
    }

    fn to_json(&self) -> String {
        serde_json::Value::Object(self.fields.clone()).to_string()
    }
}

#[derive(Debug, Clone)]
pub struct Bucket {
    pub name: String,
    pub url: String,
    store: Arc<dyn ObjectStore>,
    root: String,
    cache_control: Option<String>,
    /// The folder of a `file://` bucket.
    local: Option<PathBuf>,
}

impl Bucket {
    /// Opens a bucket. Relative `file://` paths are relative to `base_dir`; `creds` of `None`
    /// means the environment's (S3) or the default chain (GCS).
    pub fn open(
        spec: &BucketSpec,
        base_dir: &Path,
        creds: Option<&Credentials>,
    ) -> Result<Bucket, PublishError> {
        Bucket::open_with(spec, base_dir, creds.map_or(Auth::Ambient, Auth::S3))
    }

    /// Opens a bucket that signs its requests with `auth`. Named credentials never fall back
    /// to the environment's, and a `gs://` bucket with an `endpoint` never sends that server a
    /// token from Google's chain.
    pub fn open_with(
        spec: &BucketSpec,
        base_dir: &Path,
        auth: Auth<'_>,
    ) -> Result<Bucket, PublishError> {
        let err = |message: String| PublishError::Bucket {
            bucket: spec.name.clone(),
            message,
        };
        let (store, root, local) = if let Some(path) = spec.url.strip_prefix("file://") {
            if !matches!(auth, Auth::Ambient) {
                return Err(err("a file:// bucket takes no credentials".into()));
            }
            open_file(path, base_dir).map_err(err)?
        } else if let Some(rest) = spec.url.strip_prefix("s3://") {
            let (name, root) = bucket_and_root(rest).map_err(err)?;
            let creds = match auth {
                Auth::Ambient => None,
                Auth::S3(c) => Some(c),
                Auth::Gcs(_) => {
                    return Err(err(
                        "an s3:// bucket takes S3 credentials, not a GCS key".into()
                    ));
                }
            };
            (open_s3(spec, name, creds).map_err(err)?, root, None)
        } else if let Some(rest) = spec.url.strip_prefix("gs://") {
            let (name, root) = bucket_and_root(rest).map_err(err)?;
            let key = match auth {
                Auth::Ambient => None,
                Auth::Gcs(k) => Some(k),
                Auth::S3(_) => {
                    return Err(err(
                        "a gs:// bucket takes a service-account key, not S3 credentials".into(),
                    ));
                }
            };
            (open_gcs(spec, name, key).map_err(err)?, root, None)
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

    pub(crate) fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The file of `rel` in a `file://` bucket; `None` for remote buckets.
    pub(crate) fn local_file(&self, rel: &str) -> Result<Option<PathBuf>, PublishError> {
        let key = self.key(rel)?;
        Ok(self.local.as_ref().map(|dir| {
            key.parts()
                .fold(dir.clone(), |p, part| p.join(part.as_ref()))
        }))
    }

    pub(crate) fn err(&self, message: impl std::fmt::Display) -> PublishError {
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
        if let (Some(cc), None) = (&self.cache_control, &self.local) {
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

type Opened = (Arc<dyn ObjectStore>, String, Option<PathBuf>);

fn open_file(path: &str, base_dir: &Path) -> Result<Opened, String> {
    if path.trim().is_empty() {
        return Err("url 'file://' names no folder".into());
    }
    let p = Path::new(path);
    let dir = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let fs = LocalFileSystem::new_with_prefix(&dir).map_err(|e| e.to_string())?;
    Ok((Arc::new(fs), String::new(), Some(dir)))
}

/// `NAME/optional/root` of an `s3://` or `gs://` URL. An empty name would let the SDK pick a
/// bucket (and a credential source) of its own.
fn bucket_and_root(rest: &str) -> Result<(&str, String), String> {
    let (name, root) = rest.split_once('/').unwrap_or((rest, ""));
    if name.is_empty() {
        return Err("the url names no bucket".into());
    }
    Ok((name, root.trim_matches('/').to_string()))
}

// The error text of the builders names settings, never their values.
fn open_s3(
    spec: &BucketSpec,
    name: &str,
    creds: Option<&Credentials>,
) -> Result<Arc<dyn ObjectStore>, String> {
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
    Ok(Arc::new(b.build().map_err(|e| e.to_string())?))
}

/// GCS takes its endpoint only from a service-account key (`gcs_base_url`), so the endpoint is
/// written into the key; with an endpoint and no key, requests go unsigned rather than with a
/// token from Google's chain.
fn open_gcs(
    spec: &BucketSpec,
    name: &str,
    key: Option<&ServiceAccountKey>,
) -> Result<Arc<dyn ObjectStore>, String> {
    if spec.region.is_some() {
        return Err("gs:// buckets take no region".into());
    }
    let key = match (key, &spec.endpoint) {
        (Some(k), endpoint) => Some(k.with_base_url(endpoint.as_deref())),
        (None, Some(endpoint)) => Some(ServiceAccountKey::unsigned(endpoint)),
        (None, None) => None,
    };
    let b = match &key {
        Some(k) => GoogleCloudStorageBuilder::new().with_service_account_key(k.to_json()),
        None => GoogleCloudStorageBuilder::from_env(),
    }
    .with_bucket_name(name)
    .with_config(
        GoogleConfigKey::Client(ClientConfigKey::AllowHttp),
        spec.allow_http.to_string(),
    );
    Ok(Arc::new(b.build().map_err(|e| e.to_string())?))
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    use super::*;

    /// The request line and `Authorization` header of the one request a fake server saw.
    type Seen = Option<(String, Option<String>)>;

    /// A stand-in for a GCS server on 127.0.0.1 that answers one request with 404 (`None` if no
    /// request came within 20 s).
    fn one_request() -> (String, std::thread::JoinHandle<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let server = std::thread::spawn(move || {
            let start = Instant::now();
            let stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(_) if start.elapsed() < Duration::from_secs(20) => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(_) => return None,
                }
            };
            stream.set_nonblocking(false).ok()?;
            let mut reader = BufReader::new(stream.try_clone().ok()?);
            let mut request = String::new();
            reader.read_line(&mut request).ok()?;
            let mut auth = None;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).ok()?;
                let Some((k, v)) = line.trim_end().split_once(':') else {
                    break;
                };
                if k.eq_ignore_ascii_case("authorization") {
                    auth = Some(v.trim().to_string());
                }
            }
            let mut stream = stream;
            stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .ok()?;
            Some((request.trim_end().to_string(), auth))
        });
        (endpoint, server)
    }

    fn gcs_spec(endpoint: &str, allow_http: bool) -> BucketSpec {
        BucketSpec {
            name: "g".into(),
            url: "gs://slipway-test/pre".into(),
            endpoint: Some(endpoint.into()),
            allow_http,
            ..Default::default()
        }
    }

    fn base64url(text: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for c in text.bytes() {
            let v = ALPHABET.iter().position(|&a| a == c).expect("base64url") as u32;
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }

    /// A fresh RSA key as a service-account key file would hold it.
    fn rsa_key() -> String {
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("openssl");
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    #[tokio::test]
    async fn gcs_takes_endpoint_allow_http_and_the_named_key() {
        let (endpoint, server) = one_request();
        let key = serde_json::json!({
            "type": "service_account",
            "private_key": rsa_key(),
            "private_key_id": "slipway-test-kid",
            "client_email": "publisher@slipway-test.iam.gserviceaccount.com",
        });
        let key = ServiceAccountKey::parse(&key.to_string()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bucket =
            Bucket::open_with(&gcs_spec(&endpoint, true), dir.path(), Auth::Gcs(&key)).unwrap();
        assert_eq!(bucket.get("a/b").await.unwrap(), None);
        let (request, auth) = server.join().unwrap().expect("a request at the endpoint");
        assert_eq!(request, "GET /slipway%2Dtest/pre%2Fa%2Fb HTTP/1.1");
        // The token is signed with the named key, not fetched from Google's chain.
        let jwt = auth.and_then(|a| a.strip_prefix("Bearer ").map(String::from));
        let jwt = jwt.expect("a bearer token");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3, "{jwt}");
        let header = String::from_utf8(base64url(parts[0])).unwrap();
        let claims = String::from_utf8(base64url(parts[1])).unwrap();
        assert!(header.contains("\"kid\":\"slipway-test-kid\""), "{header}");
        assert!(
            claims.contains("\"iss\":\"publisher@slipway-test.iam.gserviceaccount.com\""),
            "{claims}"
        );
    }

    #[tokio::test]
    async fn gcs_endpoint_without_a_key_sends_no_token() {
        let (endpoint, server) = one_request();
        let dir = tempfile::tempdir().unwrap();
        let bucket =
            Bucket::open_with(&gcs_spec(&endpoint, true), dir.path(), Auth::Ambient).unwrap();
        assert_eq!(bucket.get("x").await.unwrap(), None);
        let (request, auth) = server.join().unwrap().expect("a request at the endpoint");
        assert_eq!(request, "GET /slipway%2Dtest/pre%2Fx HTTP/1.1");
        assert!(
            auth.as_deref()
                .unwrap_or("")
                .trim_start_matches("Bearer")
                .trim()
                .is_empty(),
            "{auth:?}"
        );
    }

    #[tokio::test]
    async fn gcs_plain_http_needs_allow_http() {
        let (endpoint, _server) = one_request();
        let dir = tempfile::tempdir().unwrap();
        let bucket =
            Bucket::open_with(&gcs_spec(&endpoint, false), dir.path(), Auth::Ambient).unwrap();
        let e = bucket.get("x").await.unwrap_err().to_string();
        // Refused before anything is sent (the server sees no request).
        assert!(
            e.contains("bucket 'g'") && e.contains("builder error"),
            "{e}"
        );
    }

    #[test]
    fn bad_service_account_keys_name_the_field_never_a_value() {
        for (text, want) in [
            ("not json at all", "must be a JSON object"),
            ("[1]", "must be a JSON object"),
            (
                r#"{"private_key": "-----SECRET-----", "client_email": "e"}"#,
                "no `private_key_id` string",
            ),
            (
                r#"{"private_key": "-----SECRET-----", "private_key_id": "k", "client_email": "e", "disable_oauth": "-----SECRET-----"}"#,
                "`disable_oauth`",
            ),
        ] {
            let e = ServiceAccountKey::parse(text).unwrap_err();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("SECRET"), "{e}");
        }
    }

    #[test]
    fn buckets_refuse_what_their_kind_cannot_use() {
        let dir = tempfile::tempdir().unwrap();
        let creds = Credentials {
            access_key_id: "a".into(),
            secret_access_key: "b".into(),
            session_token: None,
        };
        let open = |url: &str, auth| {
            let spec = BucketSpec {
                name: "x".into(),
                url: url.into(),
                ..Default::default()
            };
            Bucket::open_with(&spec, dir.path(), auth)
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        assert!(open("s3://", Auth::S3(&creds)).contains("names no bucket"));
        assert!(open("gs:///x", Auth::Ambient).contains("names no bucket"));
        assert!(open("file://", Auth::Ambient).contains("names no folder"));
        assert!(open("file://x", Auth::S3(&creds)).contains("takes no credentials"));
        assert!(open("gs://bucket", Auth::S3(&creds)).contains("not S3 credentials"));
    }
}
