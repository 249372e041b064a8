//! Secrets for a trusted privileged build: files in a private folder outside the workspace, named
//! after the secret, readable by the build only while it runs, removed afterwards, and masked in
//! its log. Errors name the secret and its source, never its value.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use slipway_config::{Config, SecretSource};

use crate::logs::BuildLog;

/// The folder holding a build's secrets; removed when dropped.
pub(crate) struct SecretDir {
    pub path: PathBuf,
}

impl Drop for SecretDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

pub(crate) fn materialize(
    config: &Config,
    names: &[String],
    dir: &Path,
    log: &BuildLog,
) -> Result<SecretDir, String> {
    let _ = fs::remove_dir_all(dir);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create the secrets folder: {e}"))?;
    let guard = SecretDir {
        path: dir.to_path_buf(),
    };
    for name in names {
        let value = read(config, name, log)?;
        let path = dir.join(name);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                format!(
                    "secret '{name}': cannot write it for the build: {}",
                    e.kind()
                )
            })?;
        file.write_all(&value).map_err(|e| {
            format!(
                "secret '{name}': cannot write it for the build: {}",
                e.kind()
            )
        })?;
    }
    Ok(guard)
}

/// A secret's value, registered for masking in `log` before it is returned.
pub(crate) fn read(config: &Config, name: &str, log: &BuildLog) -> Result<Vec<u8>, String> {
    let value = read_quiet(config, name)?;
    log.redact(&String::from_utf8_lossy(&value));
    Ok(value)
}

/// A secret's value, for the operator's own commands (no build log to mask).
pub(crate) fn read_quiet(config: &Config, name: &str) -> Result<Vec<u8>, String> {
    let secret = config
        .secrets
        .get(name)
        .ok_or_else(|| format!("secret '{name}' is not defined in [secrets]"))?;
    let value = match &secret.source {
        SecretSource::File(path) => {
            let path = config.resolve(&path.to_string_lossy());
            fs::read(&path).map_err(|e| {
                format!(
                    "secret '{name}': cannot read {}: {}",
                    path.display(),
                    e.kind()
                )
            })?
        }
        SecretSource::Env(var) => std::env::var_os(var)
            .map(|v| v.into_encoded_bytes())
            .ok_or_else(|| format!("secret '{name}': environment variable {var} is not set"))?,
    };
    Ok(value)
}
