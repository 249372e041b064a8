//! Promotion: copy exactly one candidate's objects from each staging bucket to its production
//! bucket (`promote_to`), verify them there, switch top-level indices last, record a release.
//! Rollback re-promotes the release before the current one. A lease object created with a
//! conditional write serializes promotions of one milestone, on S3 as on local disks.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use slipway_config::Config;
use slipway_publish::{Bucket, ObjectEntry, PublishOptions, Source, join, upload};
use slipway_store::{Candidate, PublishedObject, Release, Store};

const LEASE: &str = ".slipway-lease";
/// A lease older than this is taken to be left by a crashed promoter.
const LEASE_TTL_SECS: i64 = 30 * 60;

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] slipway_store::StoreError),
    #[error(transparent)]
    Publish(#[from] slipway_publish::PublishError),
}

fn refused(msg: impl Into<String>) -> PromoteError {
    PromoteError::Refused(msg.into())
}

#[derive(Debug, Clone, Serialize)]
pub struct PromoteOutcome {
    pub release: Release,
    pub candidate: Candidate,
    /// (staging bucket, production bucket, prefix, objects, uploaded)
    pub copies: Vec<(String, String, String, usize, usize)>,
}

#[derive(Serialize, Deserialize)]
struct LeaseBody {
    holder: String,
    pid: u32,
    expires: i64,
}

/// Holds the promotion lease of one production prefix; released explicitly.
struct Lease {
    bucket: Bucket,
    key: String,
}

impl Lease {
    async fn acquire(bucket: &Bucket, prefix: &str, who: &str) -> Result<Lease, PromoteError> {
        let key = join(prefix, LEASE);
        let body = serde_json::to_vec(&LeaseBody {
            holder: who.to_string(),
            pid: std::process::id(),
            expires: chrono::Utc::now().timestamp() + LEASE_TTL_SECS,
        })
        .map_err(|e| refused(e.to_string()))?;
        for _ in 0..2 {
            if bucket.create(&key, Bytes::from(body.clone())).await? {
                return Ok(Lease {
                    bucket: bucket.clone(),
                    key,
                });
            }
            let held: Option<LeaseBody> = bucket
                .get(&key)
                .await?
                .and_then(|b| serde_json::from_slice(&b).ok());
            match held {
                Some(h) if h.expires > chrono::Utc::now().timestamp() => {
                    return Err(refused(format!(
                        "another promotion of {}/{prefix} is in progress (held by {}, pid {}); try again when it ends",
                        bucket.name, h.holder, h.pid
                    )));
                }
                // Expired or unreadable: a crashed promoter's; remove it and try once more.
                _ => bucket.delete(&key).await?,
            }
        }
        Err(refused(format!(
            "could not take the promotion lease of {}/{prefix}",
            bucket.name
        )))
    }

    async fn release(self) -> Result<(), PromoteError> {
        Ok(self.bucket.delete(&self.key).await?)
    }
}

fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    if host.is_empty() {
        user
    } else {
        format!("{user}@{host}")
    }
}

/// The apt identity fields clients pin: changing them on a URL breaks `apt update`.
fn apt_identity(release_text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in release_text.lines() {
        for field in ["Origin", "Label", "Codename"] {
            if let Some(v) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
                out.insert(field.to_string(), v.trim().to_string());
            }
        }
        if line.starts_with("-----BEGIN PGP SIGNATURE") {
            break;
        }
    }
    out
}

/// Refuses when a production suite's Origin, Label or Codename would change.
async fn check_apt_identity(
    files: &BTreeMap<String, std::path::PathBuf>,
    staging: &Bucket,
    prod: &Bucket,
    prefix: &str,
    objects: &[ObjectEntry],
) -> Result<(), PromoteError> {
    for o in objects
        .iter()
        .filter(|o| o.path.starts_with("dists/") && o.path.matches('/').count() == 2)
    {
        if !(o.path.ends_with("/InRelease") || o.path.ends_with("/Release")) {
            continue;
        }
        let key = join(prefix, &o.path);
        let Some(current) = prod.get(&key).await? else {
            continue;
        };
        let next = match files.get(&o.path).and_then(|p| std::fs::read(p).ok()) {
            Some(b) => Bytes::from(b),
            None => match staging.get(&key).await? {
                Some(b) => b,
                None => continue,
            },
        };
        let (cur, new) = (
            apt_identity(&String::from_utf8_lossy(&current)),
            apt_identity(&String::from_utf8_lossy(&next)),
        );
        for (field, value) in &cur {
            if new.get(field).is_some_and(|n| n != value) {
                return Err(refused(format!(
                    "{}/{key}: {field} would change from '{value}' to '{}'; apt clients of the production URL refuse that",
                    prod.name, new[field]
                )));
            }
        }
    }
    Ok(())
}

/// Promotes `candidate_id` (default: the newest candidate of `milestone`).
pub async fn promote(
    config: &Config,
    store: &Store,
    milestone: u32,
    candidate_id: Option<i64>,
    kind: &str,
) -> Result<PromoteOutcome, PromoteError> {
    let project = &config.project.name;
    let candidate = match candidate_id {
        Some(id) => store
            .candidate(id)
            .await?
            .ok_or_else(|| refused(format!("no candidate {id}")))?,
        None => store
            .candidates(project, milestone)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                refused(format!(
                    "milestone {milestone} has no candidate yet (run its continuous job first)"
                ))
            })?,
    };
    if candidate.project != *project || candidate.milestone != milestone {
        return Err(refused(format!(
            "candidate {} is for {} milestone {}, not milestone {milestone}",
            candidate.id, candidate.project, candidate.milestone
        )));
    }
    let objects = store.published(candidate.run_id).await?;
    let mut groups: BTreeMap<(String, String), Vec<ObjectEntry>> = BTreeMap::new();
    for PublishedObject {
        bucket,
        prefix,
        path,
        sha256,
        size,
    } in objects
    {
        groups
            .entry((bucket, prefix))
            .or_default()
            .push(ObjectEntry { path, sha256, size });
    }
    // Open everything and check every precondition before the first byte moves.
    let mut plan = Vec::new();
    for ((staging_name, prefix), entries) in groups {
        let staging_cfg = config.buckets.get(&staging_name).ok_or_else(|| {
            refused(format!(
                "bucket '{staging_name}' of candidate {} is no longer configured",
                candidate.id
            ))
        })?;
        // Buckets without promote_to (e.g. a testing bucket for device tests) are not staging:
        // their objects are part of the candidate but are not promoted.
        let Some(prod_name) = staging_cfg.promote_to.clone() else {
            tracing::info!(bucket = %staging_name, "not promoted: the bucket has no promote_to");
            continue;
        };
        let staging = crate::buckets::open(config, &staging_name, None).map_err(refused)?;
        let prod = crate::buckets::open(config, &prod_name, None).map_err(refused)?;
        // The exact bytes by sha256 from the artifact store (staging may hold newer ones at the
        // same keys by now), else from staging, checked against the candidate's sha256.
        let mut files = BTreeMap::new();
        for e in &entries {
            if let Ok(p) = store.cas().object_path(&e.sha256) {
                if p.is_file() {
                    files.insert(e.path.clone(), p);
                }
            }
        }
        check_apt_identity(&files, &staging, &prod, &prefix, &entries).await?;
        plan.push((staging, prod, prefix, entries, std::sync::Arc::new(files)));
    }
    let by = who();
    let mut leases = Vec::new();
    for (_, prod, prefix, _, _) in &plan {
        match Lease::acquire(prod, prefix, &by).await {
            Ok(l) => leases.push(l),
            Err(e) => {
                for l in leases {
                    let _ = l.release().await;
                }
                return Err(e);
            }
        }
    }
    let mut copies = Vec::new();
    let mut result = Ok(());
    for (staging, prod, prefix, entries, files) in &plan {
        let source = Source::Files {
            files: files.clone(),
            fallback: Some((staging.clone(), prefix.clone())),
        };
        match upload(
            prod,
            prefix,
            entries,
            &source,
            &PublishOptions {
                verify_all: true,
                ..Default::default()
            },
        )
        .await
        {
            Ok(report) => copies.push((
                staging.name.clone(),
                prod.name.clone(),
                prefix.clone(),
                report.objects.len(),
                report.uploaded,
            )),
            Err(e) => {
                result = Err(PromoteError::from(e));
                break;
            }
        }
    }
    for l in leases {
        l.release().await?;
    }
    result?;
    let release = store.record_release(&candidate, kind, &by).await?;
    Ok(PromoteOutcome {
        release,
        candidate,
        copies,
    })
}

/// Re-promotes the release before the current one of `milestone`.
pub async fn rollback(
    config: &Config,
    store: &Store,
    milestone: u32,
) -> Result<PromoteOutcome, PromoteError> {
    let releases = store.releases(&config.project.name, milestone).await?;
    let current = releases
        .first()
        .ok_or_else(|| refused(format!("milestone {milestone} has no release to roll back")))?;
    let previous = releases
        .iter()
        .find(|r| r.candidate_id != current.candidate_id)
        .ok_or_else(|| {
            refused(format!(
                "milestone {milestone} has no earlier release than candidate {}",
                current.candidate_id
            ))
        })?;
    promote(
        config,
        store,
        milestone,
        Some(previous.candidate_id),
        "rollback",
    )
    .await
}
