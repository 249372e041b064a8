//! Slipway's own builds: `publish`, `apt-repo`, `apt-sign`, `simplestreams`, `lxd-test` (in
//! `lxd_test.rs`). They run in-process, read their inputs from the workspace and write their
//! output folder there, like step builds do.

use std::path::{Path, PathBuf};

use globset::GlobBuilder;
use slipway_apt::keys;
use slipway_apt::sign::{Digest, sign_repo};
use slipway_apt::{BuildOptions, Distribution, Input, build_repo, verify_repo, verify_signatures};
use slipway_config::{AptRepoSpec, AptSignSpec, DebSelection, NativeAction, StreamsSpec};
use slipway_publish::{PublishOptions, StreamsOptions, build_streams, publish_dir, version_for};
use slipway_store::{PublishSource, PublishedObject, publish_hash_cache};

use crate::executor::{BuildResult, Ctx, fail};
use crate::logs::BuildLog;
use crate::workspace::{Workspace, copy_tree};

/// The folder a native build writes (collected as its artifacts).
pub(crate) fn output_dir(action: &NativeAction) -> Option<&str> {
    match action {
        NativeAction::AptRepo(s) => Some(&s.output),
        NativeAction::AptSign(s) => Some(&s.output),
        NativeAction::Simplestreams(s) => Some(&s.output),
        NativeAction::LxdTest(s) => Some(&s.output),
        NativeAction::Publish { .. } => None,
    }
}

pub(crate) async fn run(
    ctx: &Ctx,
    build: &str,
    action: &NativeAction,
    ws: &Workspace,
    log: &BuildLog,
) -> BuildResult {
    match action {
        NativeAction::Publish {
            bucket,
            prefix,
            path,
        } => publish(ctx, bucket, prefix, path.as_deref(), ws, log, build).await,
        NativeAction::AptRepo(spec) => apt_repo(ctx, spec, ws, log).await,
        NativeAction::AptSign(spec) => apt_sign(ctx, spec, ws, log).await,
        NativeAction::Simplestreams(spec) => simplestreams(ctx, spec, ws, log).await,
        NativeAction::LxdTest(spec) => crate::lxd_test::run(ctx, build, spec, ws, log).await,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, (slipway_store::BuildStatus, String)> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| fail(format!("stopped: {e}")))?
        .map_err(fail)
}

/// Files under `root` whose path relative to it matches `pattern`.
fn matching(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let m = GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("glob '{pattern}': {e}"))?
        .compile_matcher();
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.map_err(|e| format!("cannot read inputs: {e}"))?;
        if entry.file_type().is_file()
            && entry
                .path()
                .strip_prefix(root)
                .is_ok_and(|rel| m.is_match(rel))
        {
            out.push(entry.path().to_path_buf());
        }
    }
    Ok(out)
}

async fn apt_repo(ctx: &Ctx, spec: &AptRepoSpec, ws: &Workspace, log: &BuildLog) -> BuildResult {
    let component = spec.components[0].clone();
    let mut inputs = Vec::new();
    let selections: Vec<(String, String)> = match &spec.debs {
        DebSelection::All(g) => spec
            .codenames
            .iter()
            .map(|c| (c.clone(), g.clone()))
            .collect(),
        DebSelection::PerCodename(map) => map.iter().map(|(c, g)| (c.clone(), g.clone())).collect(),
    };
    for (codename, pattern) in &selections {
        let files = matching(&ws.inputs, pattern).map_err(fail)?;
        log.info(&format!("{codename}: {} .debs from {pattern}", files.len()));
        inputs.extend(files.into_iter().map(|path| Input {
            codename: codename.clone(),
            component: component.clone(),
            path,
        }));
    }
    if inputs.is_empty() {
        log.info("no .deb matched: every suite is written empty");
    }
    let dist = Distribution {
        origin: spec.origin.clone(),
        label: spec.label.clone(),
        suites: spec.suites.clone(),
        version: spec.version.clone(),
        codenames: spec.codenames.clone(),
        components: spec.components.clone(),
        architectures: spec.architectures.clone(),
        description: spec.description.clone(),
        valid_for: spec.valid_for,
    };
    let cache = ctx.store.data_dir().join("cache/apt").join(format!(
        "{}-{}-{}.json",
        ctx.plan.project, ctx.plan.milestone, spec.output
    ));
    let out = ws.work.join(&spec.output);
    let opts = BuildOptions {
        date: ctx.commit_time,
        cache: Some(cache),
    };
    let report = blocking(move || {
        let report = build_repo(&dist, &inputs, &out, &opts).map_err(|e| e.to_string())?;
        verify_repo(&out, None, chrono::Utc::now().timestamp()).map_err(|e| e.to_string())?;
        Ok(report)
    })
    .await?;
    log.info(&format!(
        "apt repository {}: {} packages, {} pool files ({} .debs read, {} unchanged); verified",
        spec.output, report.packages, report.pool_files, report.debs_read, report.debs_cached
    ));
    Ok(())
}

/// The repository to sign: `with.input`, or the one folder among the inputs holding `dists/`.
fn find_repo(inputs: &Path, input: Option<&str>) -> Result<PathBuf, String> {
    if let Some(i) = input {
        let p = inputs.join(i);
        return if p.join("dists").is_dir() {
            Ok(p)
        } else {
            Err(format!("input '{i}' has no dists/ folder"))
        };
    }
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(inputs)
        .max_depth(3)
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if entry.file_type().is_dir() && entry.file_name() == "dists" {
            if let Some(parent) = entry.path().parent() {
                found.push(parent.to_path_buf());
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err("no apt repository (a folder with dists/) among the inputs".into()),
        _ => Err("several apt repositories among the inputs; choose one with `with.input`".into()),
    }
}

async fn apt_sign(ctx: &Ctx, spec: &AptSignSpec, ws: &Workspace, log: &BuildLog) -> BuildResult {
    let build_secrets: Vec<String> = ctx
        .plan
        .builds
        .iter()
        .find(|b| {
            b.build
                .action
                .as_ref()
                .is_some_and(|a| matches!(a, NativeAction::AptSign(s) if s == spec))
        })
        .map(|b| b.build.secrets.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    let names = if spec.keys.is_empty() {
        build_secrets
    } else {
        spec.keys.clone()
    };
    let mut secret_keys = Vec::new();
    for name in &names {
        let bytes = crate::secrets::read(&ctx.config, name, log).map_err(fail)?;
        let loaded = keys::load_secret_keys(&bytes, &format!("secret '{name}'"))
            .map_err(|e| fail(e.to_string()))?;
        secret_keys.extend(loaded);
    }
    if secret_keys.is_empty() {
        return Err(fail("no signing key"));
    }
    for k in &secret_keys {
        log.info(&format!("signing key {}", keys::fingerprint(k)));
    }
    let src = find_repo(&ws.inputs, spec.input.as_deref()).map_err(fail)?;
    let out = ws.work.join(&spec.output);
    let commit_time = ctx.commit_time;
    let digest = if spec.digest == "sha256" {
        Digest::Sha256
    } else {
        Digest::Sha512
    };
    let signed = blocking(move || {
        copy_tree(&src, &out).map_err(|e| e.to_string())?;
        let signed =
            sign_repo(&out, &secret_keys, digest, Some(commit_time)).map_err(|e| e.to_string())?;
        // The signatures just made; the indices and pool were verified by the build that made
        // the repository, so signing costs the Release files, not the pool.
        let public: Vec<_> = secret_keys.iter().map(|k| k.to_public_key()).collect();
        verify_signatures(&out, &public, chrono::Utc::now().timestamp())
            .map_err(|e| e.to_string())?;
        Ok(signed.len())
    })
    .await?;
    log.info(&format!(
        "signed {signed} suites into {} (InRelease, Release.gpg); verified",
        spec.output
    ));
    Ok(())
}

async fn publish(
    ctx: &Ctx,
    bucket: &str,
    prefix: &str,
    path: Option<&str>,
    ws: &Workspace,
    log: &BuildLog,
    build: &str,
) -> BuildResult {
    let target = crate::buckets::open(&ctx.config, bucket, Some(log)).map_err(fail)?;
    let plan = &ctx.plan;
    let prefix = prefix
        .replace("{milestone}", &plan.milestone.to_string())
        .replace("{channel}", &plan.channel)
        .replace("{project}", &plan.project)
        .replace("{job}", &plan.job);
    let src = match path {
        Some(p) => ws.inputs.join(p),
        None => ws.inputs.clone(),
    };
    log.info(&format!(
        "publishing {} to {}/{prefix}",
        src.display(),
        target.url
    ));
    // An apt repository is checked whole before any of it reaches the bucket.
    if src.join("dists").is_dir() {
        let check = src.clone();
        blocking(move || {
            verify_repo(&check, None, chrono::Utc::now().timestamp())
                .map(|_| ())
                .map_err(|e| format!("refusing to publish: {e}"))
        })
        .await?;
    }
    let opts = PublishOptions {
        hash_cache: publish_hash_cache(
            ctx.store.data_dir(),
            PublishSource::Build {
                instance: &plan.instance,
                build,
            },
            bucket,
            &prefix,
        ),
        ..Default::default()
    };
    let report = publish_dir(&src, &target, &prefix, &opts)
        .await
        .map_err(|e| fail(e.to_string()))?;
    for o in &report.objects {
        log.info(&format!("object {} {} {}", o.path, o.size, o.sha256));
    }
    let published: Vec<PublishedObject> = report
        .objects
        .iter()
        .map(|o| PublishedObject {
            bucket: bucket.to_string(),
            prefix: prefix.clone(),
            path: o.path.clone(),
            sha256: o.sha256.clone(),
            size: o.size,
        })
        .collect();
    ctx.store
        .record_published(ctx.run_id, build, &published)
        .await
        .map_err(|e| fail(e.to_string()))?;
    log.info(&format!(
        "published {} objects: {} written, {} unchanged; read back and verified",
        report.objects.len(),
        report.uploaded,
        report.unchanged
    ));
    Ok(())
}

/// The folder among the inputs holding image folders (`<distro>/<release>/<arch>/<variant>/lxd.tar.xz`).
fn find_images(inputs: &Path, input: Option<&str>) -> Result<PathBuf, String> {
    if let Some(i) = input {
        return Ok(inputs.join(i));
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    for entry in walkdir::WalkDir::new(inputs)
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if entry.file_name() == "lxd.tar.xz" {
            // <root>/<distro>/<release>/<arch>/<variant>/lxd.tar.xz
            if let Some(root) = entry.path().ancestors().nth(5) {
                if !roots.iter().any(|r| r == root) {
                    roots.push(root.to_path_buf());
                }
            }
        }
    }
    match roots.len() {
        1 => Ok(roots.remove(0)),
        0 => Err(
            "no LXD images (<distro>/<release>/<arch>/<variant>/lxd.tar.xz) among the inputs"
                .into(),
        ),
        _ => Err("images in several folders among the inputs; choose one with `with.input`".into()),
    }
}

/// The images.json of this milestone's newest candidate, so earlier versions stay listed. A
/// stored index that no longer matches its digest is an error, not a silently shorter stream.
async fn previous_images(ctx: &Ctx) -> Result<Option<serde_json::Value>, String> {
    let Some(candidate) = ctx
        .store
        .candidates(&ctx.plan.project, ctx.plan.milestone)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let objects = ctx
        .store
        .published(candidate.run_id)
        .await
        .map_err(|e| e.to_string())?;
    let Some(index) = objects
        .iter()
        .find(|o| o.path.ends_with("streams/v1/images.json"))
    else {
        return Ok(None);
    };
    let bytes = match ctx.store.cas().read_verified(&index.sha256) {
        Ok(b) => b,
        // Collected before the store kept published objects: start a fresh stream.
        Err(slipway_store::CasError::Missing(_)) => return Ok(None),
        Err(e) => return Err(format!("candidate {}: {e}", candidate.id)),
    };
    Ok(serde_json::from_slice(&bytes).ok())
}

async fn simplestreams(
    ctx: &Ctx,
    spec: &StreamsSpec,
    ws: &Workspace,
    log: &BuildLog,
) -> BuildResult {
    let images = find_images(&ws.inputs, spec.input.as_deref()).map_err(fail)?;
    let previous = previous_images(ctx).await.map_err(fail)?;
    if previous.is_some() {
        log.info("merging with the versions of the newest candidate");
    }
    let opts = StreamsOptions {
        version: version_for(ctx.commit_time),
        keep: spec.keep,
        updated: slipway_apt::repo::rfc2822(ctx.commit_time),
    };
    let out = ws.work.join(&spec.output);
    let version = opts.version.clone();
    let report = blocking(move || {
        build_streams(&images, &out, previous.as_ref(), &opts).map_err(|e| e.to_string())
    })
    .await?;
    for (product, fp) in &report.fingerprints {
        log.info(&format!("{product} {version}: fingerprint {fp}"));
    }
    log.info(&format!(
        "simplestreams: {} products, keeping {} versions each",
        report.products.len(),
        spec.keep
    ));
    Ok(())
}
