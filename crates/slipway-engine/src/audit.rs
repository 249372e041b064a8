//! Audit: does every bucket of a milestone serve what the records say it serves?
//!
//! A staging prefix serves what the newest run that published there recorded; a production
//! prefix (the `promote_to` of a staging bucket) serves the candidate released last. Every
//! object a client can fetch under the prefix is read and hashed and compared with that
//! manifest. Objects only earlier manifests list (production keeps older pool files for clients
//! holding older indices) must still hold the bytes recorded for them last; an object no
//! manifest of the place lists is an extra; bytes equal to an earlier recorded version are
//! named as a replay (an older, validly signed `InRelease` is exactly that).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;
use slipway_config::Config;
use slipway_publish::{Bucket, MANIFEST, ObjectEntry, PublishError, join};
use slipway_store::{RecordedObject, Store, StoreError};

/// Keys under a prefix that are Slipway's bookkeeping, not something clients fetch.
const BOOKKEEPING: &str = ".slipway-";
use crate::promote::LEASE as PROMOTION_LEASE;
/// Objects read and hashed at once.
const CONCURRENCY: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("{0}")]
    Open(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub milestone: u32,
    pub buckets: Vec<BucketAudit>,
    /// A promotion of the milestone that is running or was interrupted: until it is finished,
    /// production may serve parts of two candidates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfinished_promotion: Option<slipway_store::Promotion>,
    pub drift: bool,
}

impl AuditReport {
    /// Every finding as one line: the unfinished promotion first, then each bucket's.
    pub fn finding_lines(&self) -> Vec<String> {
        self.promotion_line()
            .into_iter()
            .chain(self.buckets.iter().flat_map(|b| b.lines()))
            .collect()
    }

    /// The finding about an unfinished promotion, as one line.
    pub fn promotion_line(&self) -> Option<String> {
        self.unfinished_promotion.as_ref().map(|p| {
            format!(
                "milestone {}: promotion {} ({} of candidate {} by {}) is {}; the next `slipway promote` or `slipway rollback` finishes it",
                p.milestone,
                p.id,
                p.kind,
                p.candidate_id,
                p.promoted_by,
                if p.owner_alive() {
                    format!("running in pid {}", p.owner_pid)
                } else {
                    "interrupted".to_string()
                }
            )
        })
    }
}

/// One bucket prefix: what it should serve and what differs.
#[derive(Debug, Clone, Serialize)]
pub struct BucketAudit {
    pub bucket: String,
    pub prefix: String,
    /// `None` when nothing was recorded there yet (e.g. production before the first release).
    pub serves: Option<Serves>,
    /// Objects a client can fetch under the prefix.
    pub objects: usize,
    pub findings: Vec<Finding>,
}

/// Which record a prefix's objects come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Serves {
    /// A staging (or unpromoted) prefix: the newest run that published there.
    Run(i64),
    /// A production prefix: the candidate released last.
    Candidate(i64),
}

impl std::fmt::Display for Serves {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Serves::Run(id) => write!(f, "run {id}"),
            Serves::Candidate(id) => write!(f, "candidate {id}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The object's key in the bucket (prefix included).
    pub key: String,
    pub kind: FindingKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The served manifest lists it; the bucket does not have it.
    Missing,
    /// Bytes no manifest of the place recorded for this key.
    Changed,
    /// Bytes an earlier manifest recorded for this key, not the ones recorded last.
    Replayed,
    /// Production holds bytes of a run that was never released (e.g. a promotion that stopped
    /// midway).
    Unreleased,
    /// No manifest of the place lists it.
    Extra,
    /// The bucket's own `.slipway-manifest.json` disagrees with the records.
    Manifest,
    /// A promotion is running or was interrupted in this prefix.
    Promotion,
    /// The records name a bucket the config no longer defines.
    Unconfigured,
}

impl BucketAudit {
    /// One line per finding: `<bucket>/<key>: <what>`.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.findings
            .iter()
            .map(|f| format!("{}/{}: {}", self.bucket, f.key, f.detail))
    }
}

/// What one run (staging) or one released candidate (production) put at a prefix.
#[derive(Debug, Clone)]
struct Manifest {
    origin: Serves,
    objects: BTreeMap<String, (String, u64)>,
}

/// A prefix and its manifests, newest first: the first is what it serves.
struct Place {
    bucket: String,
    prefix: String,
    history: Vec<Manifest>,
    /// Production only: what staging runs that were never released put there, to name the
    /// bytes of a promotion that did not finish.
    unreleased: Vec<Manifest>,
    production: bool,
}

/// A production prefix, gathered from the staging prefixes that feed it.
#[derive(Default)]
struct Production {
    history: Vec<Manifest>,
    unreleased: Vec<Manifest>,
}

/// Audits every bucket prefix the milestone's runs published to, and the production prefixes
/// they are promoted to.
pub async fn audit(
    config: &Config,
    store: &Store,
    milestone: u32,
) -> Result<AuditReport, AuditError> {
    let project = &config.project.name;
    let released = store.released_candidates(project).await?;
    let mut buckets = Vec::new();
    let mut production: BTreeMap<(String, String), Production> = BTreeMap::new();
    for (name, prefix) in store.published_places(project, milestone).await? {
        let recorded = store.recorded_at(&name, &prefix).await?;
        let Some(bucket_config) = config.buckets.get(&name) else {
            buckets.push(unconfigured(&name, &prefix, &recorded));
            continue;
        };
        if let Some(to) = &bucket_config.promote_to {
            let p = production.entry((to.clone(), prefix.clone())).or_default();
            for c in &released {
                let objects = recorded.iter().filter(|o| o.run_id == c.run_id);
                merge(&mut p.history, Serves::Candidate(c.candidate_id), objects);
            }
            for o in recorded
                .iter()
                .filter(|o| !released.iter().any(|c| c.run_id == o.run_id))
            {
                merge(&mut p.unreleased, Serves::Run(o.run_id), std::iter::once(o));
            }
        }
        let mut history = Vec::new();
        for o in &recorded {
            merge(&mut history, Serves::Run(o.run_id), std::iter::once(o));
        }
        let place = Place {
            bucket: name,
            prefix,
            history,
            unreleased: Vec::new(),
            production: false,
        };
        buckets.push(audit_place(config, &place).await?);
    }
    for (
        (bucket, prefix),
        Production {
            mut history,
            unreleased,
        },
    ) in production
    {
        // Several staging buckets may feed one production prefix: order by release again.
        history.sort_by_key(|m| {
            released
                .iter()
                .position(|c| m.origin == Serves::Candidate(c.candidate_id))
        });
        let place = Place {
            bucket,
            prefix,
            history,
            unreleased,
            production: true,
        };
        buckets.push(audit_place(config, &place).await?);
    }
    let unfinished_promotion = store.unfinished_promotion(project, milestone).await?;
    let drift = unfinished_promotion.is_some() || buckets.iter().any(|b| !b.findings.is_empty());
    Ok(AuditReport {
        milestone,
        buckets,
        unfinished_promotion,
        drift,
    })
}

/// Adds `objects` to the manifest of `origin`, creating it after the existing ones.
fn merge<'a>(
    history: &mut Vec<Manifest>,
    origin: Serves,
    objects: impl Iterator<Item = &'a RecordedObject>,
) {
    let mut objects = objects.peekable();
    if objects.peek().is_none() {
        return;
    }
    let index = match history.iter().position(|m| m.origin == origin) {
        Some(i) => i,
        None => {
            history.push(Manifest {
                origin,
                objects: BTreeMap::new(),
            });
            history.len() - 1
        }
    };
    for o in objects {
        history[index]
            .objects
            .insert(o.path.clone(), (o.sha256.clone(), o.size));
    }
}

fn unconfigured(bucket: &str, prefix: &str, recorded: &[RecordedObject]) -> BucketAudit {
    let newest = recorded.first().map(|o| Serves::Run(o.run_id));
    BucketAudit {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
        serves: newest,
        objects: 0,
        findings: vec![Finding {
            key: prefix.to_string(),
            kind: FindingKind::Unconfigured,
            detail:
                "the bucket is no longer in [buckets]; what was published there cannot be checked"
                    .into(),
        }],
    }
}

async fn audit_place(config: &Config, place: &Place) -> Result<BucketAudit, AuditError> {
    let bucket = crate::buckets::open(config, &place.bucket, None).map_err(AuditError::Open)?;
    let listed: BTreeSet<String> = bucket
        .list_sizes(&place.prefix)
        .await?
        .into_keys()
        .filter(|k| !k.starts_with(BOOKKEEPING))
        .collect();
    let known: Vec<String> = listed
        .iter()
        .filter(|k| place.history.iter().any(|m| m.objects.contains_key(*k)))
        .cloned()
        .collect();
    let digests = digest_all(&bucket, &place.prefix, known).await?;
    let mut findings = compare(place, &listed, &digests);
    let manifest = bucket.get(&join(&place.prefix, MANIFEST)).await?;
    findings.extend(check_manifest(
        &place.prefix,
        &place.history,
        manifest.as_deref(),
    ));
    if place.production {
        promotion_findings(&bucket, &place.prefix, &mut findings).await?;
    }
    Ok(BucketAudit {
        bucket: place.bucket.clone(),
        prefix: place.prefix.clone(),
        serves: place.history.first().map(|m| m.origin),
        objects: listed.len(),
        findings,
    })
}

/// Findings about promotion itself rather than about bytes: a promotion lease left in the prefix
/// means a promotion is running or was interrupted, so production may be half-changed (the
/// unfinished operation recorded in the store is reported once, in `AuditReport`).
async fn promotion_findings(
    bucket: &Bucket,
    prefix: &str,
    findings: &mut Vec<Finding>,
) -> Result<(), AuditError> {
    let key = join(prefix, PROMOTION_LEASE);
    if bucket.size(&key).await?.is_some() {
        findings.push(Finding {
            key,
            kind: FindingKind::Promotion,
            detail: "promotion lease present: a promotion is running or was interrupted".into(),
        });
    }
    Ok(())
}

/// sha256 and size of each key that can still be read (one deleted meanwhile is left out).
async fn digest_all(
    bucket: &Bucket,
    prefix: &str,
    keys: Vec<String>,
) -> Result<BTreeMap<String, (String, u64)>, AuditError> {
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for rel in keys {
        let (bucket, key, permits) = (bucket.clone(), join(prefix, &rel), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            bucket.digest(&key).await.map(|d| (rel, d))
        });
    }
    let mut out = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (rel, digest) = joined
            .map_err(|e| AuditError::Open(format!("{}: hashing stopped: {e}", bucket.name)))??;
        if let Some(d) = digest {
            out.insert(rel, d);
        }
    }
    Ok(out)
}

fn short(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Compares what a prefix holds (`listed`, hashed into `digests`) with its manifests.
fn compare(
    place: &Place,
    listed: &BTreeSet<String>,
    digests: &BTreeMap<String, (String, u64)>,
) -> Vec<Finding> {
    let history = &place.history;
    let mut findings = Vec::new();
    let finding = |rel: &str, kind, detail: String| Finding {
        key: join(&place.prefix, rel),
        kind,
        detail,
    };
    if let Some(served) = history.first() {
        for (rel, _) in served
            .objects
            .iter()
            .filter(|(r, _)| !digests.contains_key(*r))
        {
            findings.push(finding(
                rel,
                FindingKind::Missing,
                format!("missing ({} serves it)", served.origin),
            ));
        }
    }
    for rel in listed {
        // Listings are newest first, so the first manifest naming a key wrote it last.
        let Some(last) = history.iter().find(|m| m.objects.contains_key(rel)) else {
            let detail = match place
                .unreleased
                .iter()
                .find(|m| m.objects.contains_key(rel))
            {
                Some(run) => format!(
                    "extra object: listed only by {}, never released",
                    run.origin
                ),
                None if place.production => "extra object: listed by no released candidate".into(),
                None => "extra object: listed by no run that published here".into(),
            };
            findings.push(finding(rel, FindingKind::Extra, detail));
            continue;
        };
        let Some((sha256, size)) = digests.get(rel) else {
            continue;
        };
        let (want_sha, want_size) = &last.objects[rel];
        if sha256 == want_sha && size == want_size {
            continue;
        }
        let holding = |m: &&Manifest| m.objects.get(rel) == Some(&(sha256.clone(), *size));
        let name = file_name(rel);
        let recorded = match history.first() {
            Some(served) if served.origin == last.origin => format!("{} is served", last.origin),
            _ => format!("{} recorded it last", last.origin),
        };
        let (kind, detail) = if let Some(old) = history.iter().find(holding) {
            (
                FindingKind::Replayed,
                format!("replayed {name} of {} ({recorded})", old.origin),
            )
        } else if let Some(run) = place.unreleased.iter().find(holding) {
            (
                FindingKind::Unreleased,
                format!(
                    "holds the {name} of {}, never released ({recorded})",
                    run.origin
                ),
            )
        } else {
            let older = if history.first().is_some_and(|m| m.origin == last.origin) {
                ""
            } else {
                " older object"
            };
            (
                FindingKind::Changed,
                format!(
                    "changed{older}: sha256 {}, {size} bytes; {} recorded sha256 {}, {want_size} bytes",
                    short(sha256),
                    last.origin,
                    short(want_sha)
                ),
            )
        };
        findings.push(finding(rel, kind, detail));
    }
    findings.sort_by(|a, b| a.key.cmp(&b.key));
    findings
}

/// The prefix's `.slipway-manifest.json` (what the last writer says it wrote) must agree with
/// the served manifest; when it does not, name the record it does agree with, if any.
fn check_manifest(prefix: &str, history: &[Manifest], bytes: Option<&[u8]>) -> Option<Finding> {
    let (served, bytes) = (history.first()?, bytes?);
    let finding = |detail: String| Finding {
        key: join(prefix, MANIFEST),
        kind: FindingKind::Manifest,
        detail,
    };
    let entries: BTreeMap<String, (String, u64)> =
        match serde_json::from_slice::<Vec<ObjectEntry>>(bytes) {
            Ok(v) => v
                .into_iter()
                .map(|o| (o.path, (o.sha256, o.size)))
                .collect(),
            Err(e) => return Some(finding(format!("unreadable manifest: {e}"))),
        };
    let differing = |m: &Manifest| {
        m.objects
            .iter()
            .filter(|(path, want)| entries.get(*path) != Some(*want))
            .map(|(path, _)| path.clone())
            .collect::<Vec<_>>()
    };
    let differ = differing(served);
    let first = differ.first()?;
    let detail = match history[1..].iter().find(|m| differing(m).is_empty()) {
        Some(other) => format!(
            "the bucket's manifest says it serves {}; the records say {}",
            other.origin, served.origin
        ),
        None => format!(
            "the bucket's manifest disagrees with {} on {} objects (first: {first})",
            served.origin,
            differ.len()
        ),
    };
    Some(finding(detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(origin: Serves, objects: &[(&str, &str, u64)]) -> Manifest {
        Manifest {
            origin,
            objects: objects
                .iter()
                .map(|(p, s, n)| (p.to_string(), (s.to_string(), *n)))
                .collect(),
        }
    }

    fn present(
        objects: &[(&str, &str, u64)],
    ) -> (BTreeSet<String>, BTreeMap<String, (String, u64)>) {
        let listed = objects.iter().map(|(p, _, _)| p.to_string()).collect();
        let digests = objects
            .iter()
            .map(|(p, s, n)| (p.to_string(), (s.to_string(), *n)))
            .collect();
        (listed, digests)
    }

    fn lines(findings: &[Finding]) -> Vec<String> {
        findings
            .iter()
            .map(|f| format!("{}: {}", f.key, f.detail))
            .collect()
    }

    fn history() -> Vec<Manifest> {
        vec![
            manifest(
                Serves::Candidate(2),
                &[
                    ("InRelease", "bbbbbbbbbbbbbbbb", 20),
                    ("pool/b.deb", "b2", 5),
                ],
            ),
            manifest(
                Serves::Candidate(1),
                &[
                    ("InRelease", "aaaaaaaaaaaaaaaa", 10),
                    ("pool/a.deb", "a1", 4),
                ],
            ),
        ]
    }

    fn production(history: Vec<Manifest>, unreleased: Vec<Manifest>) -> Place {
        Place {
            bucket: "prod".into(),
            prefix: "74".into(),
            history,
            unreleased,
            production: true,
        }
    }

    #[test]
    fn untouched_prefix_has_no_findings() {
        let (listed, digests) = present(&[
            ("InRelease", "bbbbbbbbbbbbbbbb", 20),
            ("pool/b.deb", "b2", 5),
            ("pool/a.deb", "a1", 4),
        ]);
        assert!(compare(&production(history(), vec![]), &listed, &digests).is_empty());
    }

    #[test]
    fn each_kind_of_drift_is_named() {
        let (mut listed, digests) = present(&[
            ("InRelease", "aaaaaaaaaaaaaaaa", 10),
            ("pool/a.deb", "a1-edited-bytes", 4),
            ("pool/x.deb", "x", 1),
        ]);
        // Listed, then deleted before it was read: missing all the same.
        listed.insert("pool/b.deb".into());
        assert_eq!(
            lines(&compare(&production(history(), vec![]), &listed, &digests)),
            [
                "74/InRelease: replayed InRelease of candidate 1 (candidate 2 is served)",
                "74/pool/a.deb: changed older object: sha256 a1-edited-by, 4 bytes; candidate 1 recorded sha256 a1, 4 bytes",
                "74/pool/b.deb: missing (candidate 2 serves it)",
                "74/pool/x.deb: extra object: listed by no released candidate",
            ]
        );
        let staging = Place {
            production: false,
            ..production(
                vec![manifest(
                    Serves::Run(5),
                    &[("InRelease", "cccccccccccccccc", 3)],
                )],
                vec![],
            )
        };
        let (listed, digests) = present(&[("InRelease", "dddddddddddddddd", 3), ("x", "x", 1)]);
        assert_eq!(
            lines(&compare(&staging, &listed, &digests)),
            [
                "74/InRelease: changed: sha256 dddddddddddd, 3 bytes; run 5 recorded sha256 cccccccccccc, 3 bytes",
                "74/x: extra object: listed by no run that published here",
            ]
        );
    }

    #[test]
    fn bytes_of_a_run_never_released_are_named() {
        // A promotion of run 7 stopped after its new pool file and Packages went up.
        let unreleased = vec![manifest(
            Serves::Run(7),
            &[("Packages", "p7", 3), ("pool/c.deb", "c7", 2)],
        )];
        let mut history = history();
        history[0]
            .objects
            .insert("Packages".into(), ("p2".into(), 3));
        let (listed, digests) = present(&[
            ("InRelease", "bbbbbbbbbbbbbbbb", 20),
            ("Packages", "p7", 3),
            ("pool/a.deb", "a1", 4),
            ("pool/b.deb", "b2", 5),
            ("pool/c.deb", "c7", 2),
        ]);
        let found = compare(&production(history, unreleased), &listed, &digests);
        assert_eq!(
            lines(&found),
            [
                "74/Packages: holds the Packages of run 7, never released (candidate 2 is served)",
                "74/pool/c.deb: extra object: listed only by run 7, never released",
            ]
        );
        assert_eq!(found[0].kind, FindingKind::Unreleased);
    }

    #[test]
    fn the_bucket_manifest_is_checked_against_the_record() {
        let entries = |objects: &[(&str, &str, u64)]| {
            serde_json::to_vec(
                &objects
                    .iter()
                    .map(|(p, s, n)| ObjectEntry {
                        path: p.to_string(),
                        sha256: s.to_string(),
                        size: *n,
                    })
                    .collect::<Vec<_>>(),
            )
            .unwrap()
        };
        let agreeing = entries(&[
            ("InRelease", "bbbbbbbbbbbbbbbb", 20),
            ("pool/b.deb", "b2", 5),
            ("pool/a.deb", "a1", 4),
        ]);
        assert_eq!(check_manifest("74", &history(), Some(&agreeing)), None);
        assert_eq!(check_manifest("74", &history(), None), None);
        let older = entries(&[
            ("InRelease", "aaaaaaaaaaaaaaaa", 10),
            ("pool/b.deb", "b2", 5),
            ("pool/a.deb", "a1", 4),
        ]);
        assert_eq!(
            check_manifest("74", &history(), Some(&older))
                .unwrap()
                .detail,
            "the bucket's manifest says it serves candidate 1; the records say candidate 2"
        );
        let neither = entries(&[("pool/b.deb", "b2", 5)]);
        assert_eq!(
            check_manifest("74", &history(), Some(&neither))
                .unwrap()
                .detail,
            "the bucket's manifest disagrees with candidate 2 on 1 objects (first: InRelease)"
        );
        assert_eq!(
            check_manifest("74", &history(), Some(b"{")).unwrap().kind,
            FindingKind::Manifest
        );
    }

    #[test]
    fn merge_keeps_one_manifest_per_origin_in_order() {
        let o = |run_id, path: &str| RecordedObject {
            run_id,
            path: path.into(),
            sha256: "s".into(),
            size: 1,
        };
        let mut history = Vec::new();
        for r in [o(3, "a"), o(3, "b"), o(1, "a")] {
            merge(&mut history, Serves::Run(r.run_id), std::iter::once(&r));
        }
        merge(&mut history, Serves::Run(9), std::iter::empty());
        let shape: Vec<_> = history
            .iter()
            .map(|m| (m.origin, m.objects.len()))
            .collect();
        assert_eq!(shape, [(Serves::Run(3), 2), (Serves::Run(1), 1)]);
    }
}
