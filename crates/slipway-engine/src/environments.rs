//! What a milestone's staging and production serve now, for labs: the buckets, apt repositories
//! (URL and codenames), simplestreams indices and VM images, and the candidate (and release)
//! they serve, so a lab tests a digest and reports against it.
//!
//! Read from the records, not the buckets: staging serves the newest candidate's objects,
//! production the live release's candidate's objects copied to each `promote_to` bucket (at the
//! same prefix and path). A VM image is a `.img`, `.qcow2` or `.tar.xz` object of a bucket
//! prefix holding neither an apt repository nor a simplestreams tree (whose `.tar.xz` files are
//! LXD images).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use slipway_config::Config;
use slipway_store::{PublishedObject, Store, StoreError};

/// What one environment of a milestone serves.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct EnvironmentView {
    /// The candidate served; none before the first (staging) or before a release (production).
    pub candidate_id: Option<i64>,
    /// Its manifest digest: what a result about this environment is bound to.
    pub digest: Option<String>,
    /// The live release (production).
    pub release_id: Option<i64>,
    pub buckets: Vec<BucketPlace>,
    pub apt: Vec<AptRepo>,
    /// URLs of `streams/v1/index.json` (LXD simplestreams).
    pub streams: Vec<String>,
    pub vm_images: Vec<String>,
}

/// A bucket prefix the environment serves from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BucketPlace {
    pub bucket: String,
    pub prefix: String,
    /// The prefix's URL (`file://` for folder buckets); none for a bucket no longer configured.
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AptRepo {
    /// The repository root (what an apt source line names).
    pub url: String,
    /// Codenames with a signed `dists/<codename>/InRelease`.
    pub codenames: Vec<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Environments {
    pub milestone: u32,
    pub staging: EnvironmentView,
    pub production: EnvironmentView,
}

/// `<bucket URL>/<key>`: a `file://` bucket by its absolute folder.
fn object_url(config: &Config, bucket: &str, key: &str) -> Option<String> {
    let b = config.buckets.get(bucket)?;
    let base = match &b.folder {
        Some(folder) => format!("file://{}", folder.display()),
        None => b.url.clone(),
    };
    let base = base.trim_end_matches('/');
    let key = key.trim_matches('/');
    Some(if key.is_empty() {
        base.to_string()
    } else {
        format!("{base}/{key}")
    })
}

fn join(prefix: &str, path: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        path.to_string()
    } else {
        format!("{prefix}/{path}")
    }
}

/// `(repository root, codename)` of a `…dists/<codename>/InRelease` path.
fn apt_release(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_suffix("/InRelease")?;
    let (root, codename) = rest.rsplit_once('/')?;
    let root = root.strip_suffix("dists")?;
    if !(root.is_empty() || root.ends_with('/')) || codename.is_empty() {
        return None;
    }
    Some((root.trim_end_matches('/'), codename))
}

fn is_streams_index(path: &str) -> bool {
    path == "streams/v1/index.json" || path.ends_with("/streams/v1/index.json")
}

fn is_vm_image(path: &str) -> bool {
    [".img", ".qcow2", ".tar.xz"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

/// The view of objects served at `(bucket, prefix)` places.
fn view(config: &Config, objects: &[(String, PublishedObject)]) -> EnvironmentView {
    let mut places: BTreeMap<(String, String), Vec<&PublishedObject>> = BTreeMap::new();
    for (bucket, o) in objects {
        places
            .entry((bucket.clone(), o.prefix.clone()))
            .or_default()
            .push(o);
    }
    let mut v = EnvironmentView::default();
    for ((bucket, prefix), objects) in &places {
        v.buckets.push(BucketPlace {
            bucket: bucket.clone(),
            prefix: prefix.clone(),
            url: object_url(config, bucket, prefix),
        });
        let mut repos: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut has_streams = false;
        for o in objects {
            if let Some((root, codename)) = apt_release(&o.path) {
                repos.entry(root).or_default().insert(codename);
            }
            if is_streams_index(&o.path) {
                has_streams = true;
                v.streams
                    .extend(object_url(config, bucket, &join(prefix, &o.path)));
            }
        }
        for (root, codenames) in &repos {
            if let Some(url) = object_url(config, bucket, &join(prefix, root)) {
                v.apt.push(AptRepo {
                    url,
                    codenames: codenames.iter().map(|c| c.to_string()).collect(),
                });
            }
        }
        if repos.is_empty() && !has_streams {
            v.vm_images.extend(
                objects
                    .iter()
                    .filter(|o| is_vm_image(&o.path))
                    .filter_map(|o| object_url(config, bucket, &join(prefix, &o.path))),
            );
        }
    }
    v
}

/// What staging and production of `milestone` serve now.
pub async fn environments(
    config: &Config,
    store: &Store,
    milestone: u32,
) -> Result<Environments, StoreError> {
    let project = &config.project.name;
    let mut staging = EnvironmentView::default();
    if let Some(newest) = store
        .candidates(project, milestone)
        .await?
        .into_iter()
        .next()
    {
        let objects: Vec<_> = store
            .published(newest.run_id)
            .await?
            .into_iter()
            .map(|o| (o.bucket.clone(), o))
            .collect();
        staging = view(config, &objects);
        staging.candidate_id = Some(newest.id);
        staging.digest = Some(newest.digest);
    }
    let mut production = EnvironmentView::default();
    let live = store.releases(project, milestone).await?.into_iter().next();
    if let Some(release) = live {
        let candidate = store
            .candidate(release.candidate_id)
            .await?
            .ok_or(StoreError::NoCandidate(release.candidate_id))?;
        // Promotion copies each staging bucket's objects to its promote_to, nothing else.
        let objects: Vec<_> = store
            .published(candidate.run_id)
            .await?
            .into_iter()
            .filter_map(|o| {
                let to = config.buckets.get(&o.bucket)?.promote_to.clone()?;
                Some((to, o))
            })
            .collect();
        production = view(config, &objects);
        production.candidate_id = Some(candidate.id);
        production.digest = Some(candidate.digest);
        production.release_id = Some(release.id);
    }
    Ok(Environments {
        milestone,
        staging,
        production,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_roots_and_codenames_come_from_inrelease_paths() {
        assert_eq!(
            apt_release("dists/bookworm/InRelease"),
            Some(("", "bookworm"))
        );
        assert_eq!(
            apt_release("debian/dists/bullseye/InRelease"),
            Some(("debian", "bullseye"))
        );
        assert_eq!(apt_release("dists/bookworm/Release"), None);
        assert_eq!(apt_release("nodists/x/InRelease"), None);
        assert_eq!(apt_release("dists/bookworm/main/InRelease"), None);
        assert!(is_streams_index("streams/v1/index.json"));
        assert!(!is_streams_index("streams/v1/images.json"));
        assert!(is_vm_image("debian/bookworm/amd64/guest-rootfs.qcow2"));
        assert!(!is_vm_image("guest-rootfs.qcow2.sha256"));
    }
}
