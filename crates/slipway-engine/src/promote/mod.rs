//! Promotion: copy exactly one candidate's objects from each staging bucket to its production
//! bucket (`promote_to`), verify them there, switch top-level indices last, record a release.
//! Rollback re-promotes the release before the current one.
//!
//! The crash-safety protocol (ARCHITECTURE.md states it as an invariant):
//! 1. Every source object (artifact store, else staging) is hashed and checked against the
//!    candidate's manifest before anything is recorded or written; uploads check again as they
//!    read, so production never receives bytes the manifest does not name.
//! 2. The operation is recorded (`promotions`, one unfinished per milestone) before production
//!    changes; then each production prefix's lease is taken (see `lease`), renewed while copying.
//! 3. Objects are copied in safe order and read back; the release is recorded in the same
//!    transaction that marks the operation done; only then are the leases released.
//! 4. Whoever promotes or rolls back a milestone next first finishes an operation whose owner
//!    is gone (crashed, killed, failed), so every bucket serves one candidate and the record
//!    says which.

mod identity;
mod lease;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use slipway_config::Config;
use slipway_publish::{Bucket, ObjectEntry, PublishOptions, Source, join, upload};
use slipway_store::{Begin, Candidate, Promotion, PublishedObject, Release, Store};

pub use lease::LEASE;
use lease::{Holder, Leases};

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
pub struct Copied {
    pub from: String,
    pub to: String,
    pub prefix: String,
    pub objects: usize,
    pub uploaded: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PromoteOutcome {
    pub release: Release,
    pub candidate: Candidate,
    /// The recorded operation (`slipway_store::Promotion`).
    pub operation: i64,
    pub copies: Vec<Copied>,
    /// An interrupted operation of the milestone that this call finished first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_first: Option<Box<PromoteOutcome>>,
}

/// What one production prefix receives.
struct Target {
    staging: Bucket,
    prod: Bucket,
    prefix: String,
    entries: Vec<ObjectEntry>,
    /// Artifact-store copies of the objects, checked against their digests.
    files: Arc<BTreeMap<String, PathBuf>>,
}

/// The person running this process, `user@host`: who a CLI promotion is recorded as.
pub fn local_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(account_name)
        .unwrap_or_else(|| "unknown".into());
    let host = lease::hostname();
    if host.is_empty() {
        user
    } else {
        format!("{user}@{host}")
    }
}

/// The account name of this process's user (cron and systemd units have no `USER`).
fn account_name() -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: getpwuid_r writes into `pwd` and `buf`, which outlive the call; `result` is
    // either null or points at `pwd`.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(pwd.pw_name)
            .to_str()
            .ok()
            .map(str::to_string)
    }
}

/// Test hook: `SLIPWAY_FAULT_PROMOTE=<point>` SIGKILLs this process at that point of an
/// operation (`begun`, `leased`, `copied`, `recorded`), or `object:K` after K objects of a
/// prefix were written; `hold:<point>` pauses there for 5 s instead (to race a second promoter).
fn fault_point() -> Option<String> {
    std::env::var("SLIPWAY_FAULT_PROMOTE").ok()
}

async fn crash_at(point: &str) {
    let Some(fault) = fault_point() else {
        return;
    };
    if fault == point {
        // SAFETY: kill(2) on this process; the test wants a crash, not cleanup.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    } else if fault.strip_prefix("hold:") == Some(point) {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}

fn crash_after_objects() -> Option<usize> {
    fault_point()?.strip_prefix("object:")?.parse().ok()
}

/// Opens the buckets of `candidate` and checks every precondition, the exact bytes above all,
/// before anything is recorded or written.
async fn prepare(
    config: &Config,
    store: &Store,
    candidate: &Candidate,
) -> Result<Vec<Target>, PromoteError> {
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
    let mut targets = Vec::new();
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
        let files = check_sources(store, candidate, &staging, &prefix, &entries).await?;
        identity::check_apt_identity(&files, &staging, &prod, &prefix, &entries).await?;
        targets.push(Target {
            staging,
            prod,
            prefix,
            entries,
            files: Arc::new(files),
        });
    }
    // Leases are taken in this order: sorted, so two promoters never wait on each other.
    targets.sort_by(|a, b| (&a.prod.name, &a.prefix).cmp(&(&b.prod.name, &b.prefix)));
    Ok(targets)
}

/// Hashes every object's source: the artifact-store copy, else the staging object (which a
/// newer run may have replaced). Any mismatch refuses the promotion, naming each object.
async fn check_sources(
    store: &Store,
    candidate: &Candidate,
    staging: &Bucket,
    prefix: &str,
    entries: &[ObjectEntry],
) -> Result<BTreeMap<String, PathBuf>, PromoteError> {
    let cas = store.cas().clone();
    let list = entries.to_vec();
    let (files, mut bad, missing) = tokio::task::spawn_blocking(move || {
        let mut files = BTreeMap::new();
        let mut bad = Vec::new();
        let mut missing = Vec::new();
        for e in list {
            match cas.verified_path(&e.sha256) {
                Ok(p) => {
                    files.insert(e.path.clone(), p);
                }
                Err(slipway_store::CasError::Missing(_)) => missing.push(e),
                Err(err) => bad.push(format!("{}: {err}", e.path)),
            }
        }
        (files, bad, missing)
    })
    .await
    .map_err(|e| refused(format!("checking the candidate's objects stopped: {e}")))?;
    for e in missing {
        let key = join(prefix, &e.path);
        match staging.digest(&key).await? {
            Some((sha, size)) if sha == e.sha256 && size == e.size => {}
            Some((sha, size)) => bad.push(format!(
                "{}/{key}: holds sha256 {sha} ({size} bytes), not the candidate's {} and the artifact store has no copy",
                staging.name, e.sha256
            )),
            None => bad.push(format!(
                "{}/{key}: missing from staging and from the artifact store",
                staging.name
            )),
        }
    }
    if bad.is_empty() {
        return Ok(files);
    }
    let shown = bad.len().min(5);
    Err(refused(format!(
        "refusing to promote candidate {}: {} object(s) do not match its manifest, production was not touched: {}{}",
        candidate.id,
        bad.len(),
        bad[..shown].join("; "),
        if bad.len() > shown { "; ..." } else { "" }
    )))
}

/// What to do with an interrupted promotion of the milestone before the requested one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interrupted {
    /// Finish it first (the default): every bucket then serves its candidate.
    #[default]
    Finish,
    /// Give it up (when it cannot be finished, e.g. its sources are gone): the requested
    /// promotion then rewrites whatever it left half-changed.
    Abandon,
}

fn busy(p: &Promotion) -> PromoteError {
    refused(format!(
        "promotion {} of milestone {} (candidate {}, {} by {}) is running in pid {}; try again when it ends",
        p.id, p.milestone, p.candidate_id, p.kind, p.promoted_by, p.owner_pid
    ))
}

async fn choose_candidate(
    store: &Store,
    project: &str,
    milestone: u32,
    candidate_id: Option<i64>,
) -> Result<Candidate, PromoteError> {
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
    if candidate.project != project || candidate.milestone != milestone {
        return Err(refused(format!(
            "candidate {} is for {} milestone {}, not milestone {milestone}",
            candidate.id, candidate.project, candidate.milestone
        )));
    }
    Ok(candidate)
}

/// Promotes `candidate_id` (default: the newest candidate of `milestone`), after finishing an
/// interrupted operation of the milestone.
pub async fn promote(
    config: &Config,
    store: &Store,
    milestone: u32,
    candidate_id: Option<i64>,
    kind: &str,
    interrupted: Interrupted,
    by: &str,
) -> Result<PromoteOutcome, PromoteError> {
    let finished = finish_interrupted(config, store, milestone, interrupted, by).await?;
    let candidate = choose_candidate(store, &config.project.name, milestone, candidate_id).await?;
    start(config, store, candidate, kind, finished, by).await
}

/// Re-promotes the release before the current one of `milestone`, after finishing an
/// interrupted operation of the milestone.
pub async fn rollback(
    config: &Config,
    store: &Store,
    milestone: u32,
    interrupted: Interrupted,
    by: &str,
) -> Result<PromoteOutcome, PromoteError> {
    let finished = finish_interrupted(config, store, milestone, interrupted, by).await?;
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
    let candidate = choose_candidate(
        store,
        &config.project.name,
        milestone,
        Some(previous.candidate_id),
    )
    .await?;
    start(config, store, candidate, "rollback", finished, by).await
}

async fn start(
    config: &Config,
    store: &Store,
    candidate: Candidate,
    kind: &str,
    finished: Option<PromoteOutcome>,
    by: &str,
) -> Result<PromoteOutcome, PromoteError> {
    // Finishing the interrupted operation already made this candidate live.
    if let Some(f) = finished {
        if f.candidate.id == candidate.id {
            return Ok(f);
        }
        let mut outcome = start_new(config, store, candidate, kind, by).await?;
        outcome.finished_first = Some(Box::new(f));
        return Ok(outcome);
    }
    start_new(config, store, candidate, kind, by).await
}

async fn start_new(
    config: &Config,
    store: &Store,
    candidate: Candidate,
    kind: &str,
    by: &str,
) -> Result<PromoteOutcome, PromoteError> {
    let targets = prepare(config, store, &candidate).await?;
    let op = match store.begin_promotion(&candidate, kind, by).await? {
        Begin::Started(op) => op,
        Begin::Busy(p) => return Err(busy(&p)),
    };
    execute(store, op, candidate, targets).await
}

/// Finishes (or abandons) the milestone's unfinished operation if its owner is gone; refuses
/// while it runs.
async fn finish_interrupted(
    config: &Config,
    store: &Store,
    milestone: u32,
    interrupted: Interrupted,
    by: &str,
) -> Result<Option<PromoteOutcome>, PromoteError> {
    let Some(p) = store
        .unfinished_promotion(&config.project.name, milestone)
        .await?
    else {
        return Ok(None);
    };
    if p.owner_alive() {
        return Err(busy(&p));
    }
    let Some(mine) = store.take_over_promotion(&p).await? else {
        // Another promoter took it over first.
        return match store.promotion(p.id).await? {
            Some(now) if now.owner_alive() => Err(busy(&now)),
            _ => Err(refused(format!(
                "promotion {} of milestone {milestone} changed hands; try again",
                p.id
            ))),
        };
    };
    if interrupted == Interrupted::Abandon {
        tracing::warn!(
            operation = mine.id,
            candidate = mine.candidate_id,
            "abandoning an interrupted promotion"
        );
        store
            .cancel_promotion(&mine, &format!("abandoned by {by}"))
            .await?;
        return Ok(None);
    }
    tracing::warn!(
        operation = mine.id,
        candidate = mine.candidate_id,
        kind = %mine.kind,
        "finishing an interrupted promotion first"
    );
    let candidate = store.candidate(mine.candidate_id).await?;
    let prepared = match candidate {
        Some(c) => prepare(config, store, &c).await.map(|t| (c, t)),
        None => Err(refused(format!("candidate {} is gone", mine.candidate_id))),
    };
    let (candidate, targets) = match prepared {
        Ok(ct) => ct,
        Err(e) => {
            let msg = format!(
                "promotion {} of candidate {} (milestone {milestone}) was interrupted and cannot be finished: {e} (restore what is named, or promote another candidate with --abandon-interrupted)",
                mine.id, mine.candidate_id
            );
            store.fail_promotion(&mine, &msg).await?;
            return Err(refused(msg));
        }
    };
    execute(store, mine, candidate, targets).await.map(Some)
}

/// Runs a recorded operation that this process owns: leases, copy, record, release.
async fn execute(
    store: &Store,
    op: Promotion,
    candidate: Candidate,
    targets: Vec<Target>,
) -> Result<PromoteOutcome, PromoteError> {
    crash_at("begun").await;
    let me = Holder::me(op.id, &op.promoted_by);
    let lease_targets: Vec<(Bucket, String)> = targets
        .iter()
        .map(|t| (t.prod.clone(), t.prefix.clone()))
        .collect();
    let leases = match Leases::acquire(&lease_targets, &me).await {
        Ok(l) => l,
        Err(e) => {
            // A new operation wrote nothing yet: it ends here. A resumed one may have written
            // part of its candidate: it stays unfinished for the next promoter.
            if op.attempts == 1 {
                store.cancel_promotion(&op, &e.to_string()).await?;
            } else {
                store.fail_promotion(&op, &e.to_string()).await?;
            }
            return Err(e);
        }
    };
    crash_at("leased").await;
    let copied = match copy_all(&targets, &leases).await {
        Ok(c) => c,
        Err(e) => {
            let msg = format!(
                "promotion {} of candidate {} stopped: {e}; production may serve part of it until the next `slipway promote` or `slipway rollback` of milestone {} finishes it",
                op.id, op.candidate_id, op.milestone
            );
            store.fail_promotion(&op, &msg).await?;
            let _ = leases.release().await;
            return Err(refused(msg));
        }
    };
    crash_at("copied").await;
    let recorded = match leases.check() {
        Ok(()) => store
            .finish_promotion(&op)
            .await
            .map_err(PromoteError::from),
        Err(e) => Err(e),
    };
    let release = match recorded {
        Ok(r) => r,
        Err(e) => {
            let _ = store.fail_promotion(&op, &e.to_string()).await;
            let _ = leases.release().await;
            return Err(e);
        }
    };
    crash_at("recorded").await;
    // The release is recorded: a lease left behind is taken over by the next promoter.
    if let Err(e) = leases.release().await {
        tracing::warn!("releasing the promotion leases: {e}");
    }
    Ok(PromoteOutcome {
        release,
        candidate,
        operation: op.id,
        copies: copied,
        finished_first: None,
    })
}

async fn copy_all(targets: &[Target], leases: &Leases) -> Result<Vec<Copied>, PromoteError> {
    let mut copies = Vec::new();
    for t in targets {
        leases.check()?;
        let source = Source::Files {
            files: t.files.clone(),
            fallback: Some((t.staging.clone(), t.prefix.clone())),
        };
        let report = upload(
            &t.prod,
            &t.prefix,
            &t.entries,
            &source,
            &PublishOptions {
                verify_all: true,
                kill_after: crash_after_objects(),
                stop: Some(leases.lost_flag()),
                ..Default::default()
            },
        )
        .await?;
        copies.push(Copied {
            from: t.staging.name.clone(),
            to: t.prod.name.clone(),
            prefix: t.prefix.clone(),
            objects: report.objects.len(),
            uploaded: report.uploaded,
        });
    }
    Ok(copies)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_account_name_is_known_without_user_variables() {
        let name = super::account_name().expect("this process's user has an account");
        assert!(!name.is_empty() && !name.contains('\0'));
    }
}
