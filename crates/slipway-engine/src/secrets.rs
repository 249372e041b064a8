//! Secrets for a trusted privileged build: files in a private folder outside the workspace, named
//! after the secret, readable by the build only while it runs, removed afterwards, and masked in
//! its log. Errors name the secret and its source, never its value.

use std::fs;
use std::io::ErrorKind;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use slipway_config::{Config, ConfigError, ConfigErrors, Secret, SecretSource};

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
    let value = read_secret(config, name)?;
    log.redact(&String::from_utf8_lossy(&value));
    Ok(value)
}

/// A secret's value, for the operator's own commands (no build log to mask).
pub fn read_secret(config: &Config, name: &str) -> Result<Vec<u8>, String> {
    let secret = config
        .secrets
        .get(name)
        .ok_or_else(|| format!("secret '{name}' is not defined in [secrets]"))?;
    value(config, secret)
}

/// Every secret of `config` present, readable and private, each problem at the secret's line:
/// found at `validate` rather than in the middle of a run.
pub fn check_secrets(config: &Config) -> Result<(), ConfigErrors> {
    let mut errors = ConfigErrors::default();
    for secret in config.secrets.values() {
        if let Err(message) = value(config, secret) {
            errors.push(ConfigError {
                loc: secret.loc.clone(),
                message,
            });
        }
    }
    errors.into_result()
}

fn value(config: &Config, secret: &Secret) -> Result<Vec<u8>, String> {
    let name = &secret.name;
    match &secret.source {
        SecretSource::File(path) => {
            let path = config.resolve(&path.to_string_lossy());
            read_private(&path).map_err(|e| format!("secret '{name}': {e}"))
        }
        SecretSource::Env(var) => std::env::var_os(var)
            .map(|v| v.into_encoded_bytes())
            .ok_or_else(|| format!("secret '{name}': environment variable {var} is not set")),
    }
}

/// A secret file only its owner may read: as ssh does for keys, one that others can read is
/// refused, since it is as good as leaked already.
fn read_private(path: &Path) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| match e.kind() {
        ErrorKind::NotFound => format!("{} does not exist", path.display()),
        kind => format!("cannot read {}: {kind}", path.display()),
    };
    let meta = fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is open to group or others (mode {mode:04o}); run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    fs::read(path).map_err(cannot)
}

#[cfg(test)]
mod tests {
    use slipway_config::SourceText;

    use super::*;

    fn config(dir: &Path, secrets: &str) -> Config {
        let text = format!("[project]\nname = \"p\"\nrepo = \"repo\"\n[secrets]\n{secrets}");
        Config::parse(SourceText::new("slipway.toml", text), dir.to_path_buf()).unwrap()
    }

    fn write(path: &Path, mode: u32) {
        fs::write(path, "value-never-shown\n").unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn secrets_must_exist_be_readable_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(&d.join("ok.key"), 0o600);
        write(&d.join("open.key"), 0o644);
        write(&d.join("group.key"), 0o640);
        fs::create_dir(d.join("folder.key")).unwrap();
        let c = config(
            d,
            "a-ok = { file = \"ok.key\" }\n\
             b-missing = { file = \"missing.key\" }\n\
             c-open = { file = \"open.key\" }\n\
             d-group = { file = \"group.key\" }\n\
             e-folder = { file = \"folder.key\" }\n\
             f-env = { env = \"SLIPWAY_TEST_SURELY_UNSET_VARIABLE\" }\n\
             g-path = { env = \"PATH\" }\n",
        );
        let errs: Vec<String> = check_secrets(&c)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect();
        let p = |f: &str| d.join(f).display().to_string();
        assert_eq!(
            errs,
            [
                format!("slipway.toml:6:1: secret 'b-missing': {} does not exist", p("missing.key")),
                format!(
                    "slipway.toml:7:1: secret 'c-open': {} is open to group or others (mode 0644); run `chmod 600 {}`",
                    p("open.key"),
                    p("open.key")
                ),
                format!(
                    "slipway.toml:8:1: secret 'd-group': {} is open to group or others (mode 0640); run `chmod 600 {}`",
                    p("group.key"),
                    p("group.key")
                ),
                format!("slipway.toml:9:1: secret 'e-folder': {} is not a file", p("folder.key")),
                "slipway.toml:10:1: secret 'f-env': environment variable SLIPWAY_TEST_SURELY_UNSET_VARIABLE is not set".to_string(),
            ]
        );
        assert!(errs.iter().all(|e| !e.contains("value-never-shown")));
        // What validate refuses, a build never reads either.
        assert!(read_secret(&c, "c-open").unwrap_err().contains("chmod 600"));
        assert_eq!(read_secret(&c, "a-ok").unwrap(), b"value-never-shown\n");
    }
}
