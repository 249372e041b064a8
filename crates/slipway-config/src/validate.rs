//! Checks that span the service file and a builds file: jobs against builds, secrets and buckets.

use std::collections::BTreeSet;

use crate::builds::Builds;
use crate::diag::{ConfigError, ConfigErrors};
use crate::native::NativeAction;
use crate::plan::bypass_needs;
use crate::service::Config;

/// Checks every job of `config` against `builds` (the builds of one commit).
pub fn validate(config: &Config, builds: &Builds) -> Result<(), ConfigErrors> {
    let mut errors = ConfigErrors::default();

    for bucket in config.buckets.values() {
        if let Some(secret) = &bucket.credentials {
            if !config.secrets.contains_key(secret) {
                errors.push(ConfigError {
                    loc: bucket.credentials_loc.as_ref().unwrap_or(&bucket.loc).clone(),
                    message: format!("bucket '{}' takes credentials from secret '{secret}', which is not defined in [secrets]", bucket.name),
                });
            }
        }
    }

    for b in builds.map.values() {
        for (secret, loc) in &b.secrets {
            if !config.secrets.contains_key(secret) {
                errors.push(ConfigError {
                    loc: loc.clone(),
                    message: format!(
                        "build '{}' reads secret '{secret}', which is not defined in [secrets] of {}",
                        b.name, config.source.name
                    ),
                });
            }
        }
        if let Some(bucket) = b.bucket() {
            if !config.buckets.contains_key(bucket) {
                errors.push(ConfigError {
                    loc: b.with_loc.clone(),
                    message: format!(
                        "build '{}' publishes to bucket '{bucket}', which is not defined in [buckets] of {}",
                        b.name, config.source.name
                    ),
                });
            }
            // Production changes only through promotion of a candidate, never by a run.
            if let Some(staging) = config
                .buckets
                .values()
                .find(|s| s.promote_to.as_deref() == Some(bucket))
            {
                errors.push(ConfigError {
                    loc: b.with_loc.clone(),
                    message: format!(
                        "build '{}' publishes to '{bucket}', the production bucket of '{}'; publish to '{}' and promote",
                        b.name, staging.name, staging.name
                    ),
                });
            }
            if !b.privileged {
                errors.push(ConfigError {
                    loc: b.loc.clone(),
                    message: format!(
                        "build '{}' publishes to a bucket and must say `privileged = true`",
                        b.name
                    ),
                });
            }
        }

        if let Some(NativeAction::AptSign(spec)) = &b.action {
            if !b.privileged {
                errors.push(ConfigError {
                    loc: b.loc.clone(),
                    message: format!("build '{}' signs and must say `privileged = true`", b.name),
                });
            }
            if b.secrets.is_empty() {
                errors.push(ConfigError {
                    loc: b.loc.clone(),
                    message: format!(
                        "build '{}' (apt-sign) needs its signing key in `secrets`",
                        b.name
                    ),
                });
            }
            for key in &spec.keys {
                if !b.secrets.iter().any(|(s, _)| s == key) {
                    errors.push(ConfigError {
                        loc: b.with_loc.clone(),
                        message: format!(
                            "build '{}' signs with '{key}', which is not in its `secrets`",
                            b.name
                        ),
                    });
                }
            }
        }
    }

    for job in config.jobs.values() {
        let mut listed = BTreeSet::new();
        for (name, loc) in &job.builds {
            if !listed.insert(name.as_str()) {
                errors.push(ConfigError {
                    loc: loc.clone(),
                    message: format!("job '{}' lists build '{name}' twice", job.name),
                });
            }
            let Some(build) = builds.get(name) else {
                errors.push(ConfigError {
                    loc: loc.clone(),
                    message: format!(
                        "job '{}' lists build '{name}', which is not defined in {}",
                        job.name, builds.source_name
                    ),
                });
                continue;
            };
            for (need, need_loc) in &build.needs {
                if builds.get(need).is_some() && !job.builds.iter().any(|(n, _)| n == need) {
                    errors.push(ConfigError {
                        loc: job.loc.clone(),
                        message: format!(
                            "job '{}' lists build '{name}', which needs '{need}' ({need_loc}), but the job does not list '{need}'",
                            job.name
                        ),
                    });
                }
            }
        }
        if job.untrusted {
            let (kept, _) = bypass_needs(job, builds);
            for (name, _) in kept {
                if let Some(b) = builds.get(&name) {
                    if let Some(loc) = &b.sandbox_loc {
                        errors.push(ConfigError {
                            loc: loc.clone(),
                            message: format!(
                                "build '{name}' sets `sandbox = false`, but untrusted job '{}' runs it: untrusted code always runs sandboxed",
                                job.name
                            ),
                        });
                    }
                    if let (Some(loc), false) = (&b.network_loc, job.allow_network) {
                        errors.push(ConfigError {
                            loc: loc.clone(),
                            message: format!(
                                "build '{name}' asks for `network = true`, but untrusted job '{}' does not allow it (set `allow_network = true` on the job to opt in)",
                                job.name
                            ),
                        });
                    }
                    if let Some((secret, loc)) = b.secrets.first() {
                        errors.push(ConfigError {
                            loc: job.loc.clone(),
                            message: format!(
                                "untrusted job '{}' would run build '{name}' with secret '{secret}' ({loc}); mark the build `privileged = true` so presubmit bypasses it",
                                job.name
                            ),
                        });
                    }
                }
            }
        }
    }
    errors.into_result()
}
