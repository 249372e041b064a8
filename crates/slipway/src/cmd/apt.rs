use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use slipway_apt::keys::{self, KeyKind};
use slipway_apt::sign::{self, Digest};
use slipway_apt::{
    BuildOptions, Distribution, Input, VerifyOptions, build_repo, verify_repo_with,
    verify_signatures,
};

use crate::cli::{AptCommand, KeyCommand};

/// `SOURCE_DATE_EPOCH` if set (reproducible builds), else now.
pub fn source_date_epoch() -> Result<i64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH '{v}' is not a number of seconds")),
        Err(_) => Ok(chrono::Utc::now().timestamp()),
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn key(command: KeyCommand) -> Result<ExitCode> {
    let KeyCommand::Generate { out, uid, kind } = command;
    let kind: KeyKind = kind.parse().map_err(anyhow::Error::msg)?;
    if out.join("signing-key.asc").exists() {
        bail!(
            "{} already holds signing-key.asc; refusing to overwrite a key",
            out.display()
        );
    }
    let key = keys::generate(&uid, kind)?;
    keys::write_key_files(&out, &key)?;
    println!("{}", keys::fingerprint(&key));
    eprintln!(
        "wrote {0}/signing-key.asc (secret, 0600), {0}/keyring.gpg and {0}/keyring.asc",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn find_debs(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    let mut out = Vec::new();
    for entry in walkdir_files(dir)? {
        if entry.extension().is_some_and(|e| e == "deb") {
            out.push(entry);
        }
    }
    out.sort();
    Ok(out)
}

fn walkdir_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    Ok(out)
}

/// Default cache file for an output folder: one per output, under the data dir.
fn default_cache(data_dir: &Path, out: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(out)?;
    let digest = sha_hex(abs.to_string_lossy().as_bytes());
    Ok(data_dir
        .join("cache/apt")
        .join(format!("{}.json", &digest[..16])))
}

fn sha_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

/// `--suite` values: `CODENAME=SUITE` each, or one plain `SUITE` when there is one codename.
/// The library checks the pairs themselves (known codename, one suite per codename).
fn suites_by_codename(values: &[String], codenames: &[String]) -> Result<BTreeMap<String, String>> {
    if let ([plain], [only]) = (values, codenames) {
        if !plain.contains('=') {
            return Ok(BTreeMap::from([(only.clone(), plain.clone())]));
        }
    }
    let mut suites = BTreeMap::new();
    for v in values {
        let Some((codename, suite)) = v.split_once('=') else {
            bail!(
                "--suite {v}: say which codename it is for (--suite CODENAME={v}); a plain suite is for a single --codename"
            );
        };
        if suites
            .insert(codename.to_string(), suite.to_string())
            .is_some()
        {
            bail!("--suite gives codename '{codename}' two suites");
        }
    }
    Ok(suites)
}

pub fn apt(data_dir: &Path, command: AptCommand) -> Result<ExitCode> {
    match command {
        AptCommand::Build {
            debs,
            out,
            codenames,
            architectures,
            component,
            origin,
            label,
            suite,
            version,
            description,
            valid_for,
            cache,
        } => {
            let valid_for = valid_for
                .map(|v| slipway_config::parse_duration(&v).map_err(anyhow::Error::msg))
                .transpose()?;
            let dist = Distribution {
                suites: suites_by_codename(&suite, &codenames)?,
                origin,
                label,
                version,
                codenames: codenames.clone(),
                components: vec![component.clone()],
                architectures,
                description,
                valid_for,
            };
            let files = find_debs(&debs)?;
            let inputs: Vec<Input> = codenames
                .iter()
                .flat_map(|c| {
                    files.iter().map(|p| Input {
                        codename: c.clone(),
                        component: component.clone(),
                        path: p.clone(),
                    })
                })
                .collect();
            let cache = match cache {
                Some(c) => c,
                None => default_cache(data_dir, &out)?,
            };
            let report = build_repo(
                &dist,
                &inputs,
                &out,
                &BuildOptions {
                    date: source_date_epoch()?,
                    cache: Some(cache),
                },
            )?;
            eprintln!(
                "wrote {}: {} packages, {} pool files ({} .debs read, {} unchanged)",
                out.display(),
                report.packages,
                report.pool_files,
                report.debs_read,
                report.debs_cached
            );
            Ok(ExitCode::SUCCESS)
        }
        AptCommand::Sign {
            repo,
            keys: key_files,
            digest,
        } => {
            let digest = match digest.as_str() {
                "sha256" => Digest::Sha256,
                "sha512" => Digest::Sha512,
                other => bail!("unknown digest '{other}' (use sha256 or sha512)"),
            };
            let mut secret = Vec::new();
            for f in &key_files {
                let bytes =
                    std::fs::read(f).with_context(|| format!("cannot read key {}", f.display()))?;
                secret.extend(keys::load_secret_keys(&bytes, &f.display().to_string())?);
            }
            let at = std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|v| v.trim().parse().ok());
            let signed = sign::sign_repo(&repo, &secret, digest, at)?;
            let public: Vec<_> = secret.iter().map(|k| k.to_public_key()).collect();
            // The signatures just made, not the indices and pool (`apt verify` checks those).
            verify_signatures(&repo, &public, now())?;
            eprintln!(
                "signed {} suites of {}; verified InRelease and Release.gpg",
                signed.len(),
                repo.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        AptCommand::Verify {
            repo,
            keyring,
            published,
            json,
        } => {
            let keys = match &keyring {
                Some(k) => {
                    let bytes = std::fs::read(k)
                        .with_context(|| format!("cannot read keyring {}", k.display()))?;
                    Some(keys::load_public_keys(&bytes, &k.display().to_string())?)
                }
                None => None,
            };
            let opts = VerifyOptions { published };
            let report = verify_repo_with(&repo, keys.as_deref(), now(), opts)?;
            if json {
                super::print_json(&report)?;
            } else {
                for s in &report.suites {
                    let by = if s.signed_by.is_empty() {
                        "unsigned or not checked".to_string()
                    } else {
                        format!("signed by {}", s.signed_by.join(", "))
                    };
                    println!("{}: {by}", s.codename);
                }
                println!(
                    "ok: {} indices, {} packages, {} pool files",
                    report.indices, report.packages, report.pool_files
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn suites_are_given_per_codename() {
        let two = strings(&["bookworm", "bullseye"]);
        let got =
            suites_by_codename(&strings(&["bookworm=stable", "bullseye=oldstable"]), &two).unwrap();
        assert_eq!(got["bookworm"], "stable");
        assert_eq!(got["bullseye"], "oldstable");
        assert!(suites_by_codename(&[], &two).unwrap().is_empty());
        let one = suites_by_codename(&strings(&["stable"]), &strings(&["bookworm"])).unwrap();
        assert_eq!(one["bookworm"], "stable");

        let e = suites_by_codename(&strings(&["stable"]), &two).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--suite stable: say which codename it is for (--suite CODENAME=stable); a plain suite is for a single --codename"
        );
        let e = suites_by_codename(&strings(&["bookworm=a", "bookworm=b"]), &two).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--suite gives codename 'bookworm' two suites"
        );
    }
}
