//! Opening configured buckets, with credentials from the secrets store. Only trusted code paths
//! call this: privileged builds of trusted runs (publish) and the operator's own commands.

use slipway_config::{Bucket as BucketConfig, Config};
use slipway_publish::{Auth, Bucket, BucketSpec, Credentials, ServiceAccountKey};

use crate::logs::BuildLog;

pub fn spec(b: &BucketConfig) -> BucketSpec {
    BucketSpec {
        name: b.name.clone(),
        url: b.url.clone(),
        endpoint: b.endpoint.clone(),
        region: b.region.clone(),
        allow_http: b.allow_http,
        cache_control: b.cache_control.clone(),
    }
}

/// Opens bucket `name`. With `log`, the credentials are masked in that build's log.
pub(crate) fn open(config: &Config, name: &str, log: Option<&BuildLog>) -> Result<Bucket, String> {
    let b = config
        .buckets
        .get(name)
        .ok_or_else(|| format!("bucket '{name}' is not defined in [buckets]"))?;
    let Some(secret) = &b.credentials else {
        return Bucket::open_with(&spec(b), &config.base_dir, Auth::Ambient)
            .map_err(|e| e.to_string());
    };
    let bytes = match log {
        Some(log) => crate::secrets::read(config, secret, log)?,
        None => crate::secrets::read_secret(config, secret)?,
    };
    let text = String::from_utf8(bytes).map_err(|_| format!("secret '{secret}' is not text"))?;
    let bad = |e: String| format!("secret '{secret}': {e}");
    // The bucket's kind says what its secret holds; named credentials never fall back to the
    // environment's.
    if b.url.starts_with("gs://") {
        let key = ServiceAccountKey::parse(&text).map_err(bad)?;
        Bucket::open_with(&spec(b), &config.base_dir, Auth::Gcs(&key))
    } else {
        let creds = Credentials::parse(&text).map_err(bad)?;
        Bucket::open_with(&spec(b), &config.base_dir, Auth::S3(&creds))
    }
    .map_err(|e| e.to_string())
}

/// Opens bucket `name` for the operator's own commands.
pub fn open_bucket(config: &Config, name: &str) -> Result<Bucket, slipway_publish::PublishError> {
    open(config, name, None).map_err(slipway_publish::PublishError::Refused)
}
