//! Loading the config and opening the state, shared by the commands.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use slipway_config::Config;
use slipway_store::Store;

pub fn load_config(path: &Path) -> Result<Config> {
    if !path.exists() {
        anyhow::bail!(
            "no config at {} (pass --config FILE, or create one with `slipway example init DIR`)",
            path.display()
        );
    }
    Config::load(path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))
}

/// Loads the config for a command that acts (runs, promotes, rolls back): also what the service
/// file alone cannot tell, where the data dir is and whether each secret is there and private,
/// so a bad secret stops the command before a run or a promotion is recorded.
pub fn load_config_to_act(path: &Path, data_dir: &Path) -> Result<Config> {
    let config = load_config(path)?;
    let mut errors = Vec::new();
    for checked in [
        config.check_data_dir(data_dir),
        slipway_engine::check_secrets(&config),
    ] {
        if let Err(e) = checked {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        anyhow::bail!("invalid config:\n{}", errors.join("\n"))
    }
}

pub async fn open_store(data_dir: &Path) -> Result<Arc<Store>> {
    // Processes left by a Slipway that was killed (steps, a private LXD daemon and its
    // containers) are ended by their recorded cgroups before anything else runs.
    for cgroup in slipway_engine::reap_orphans() {
        tracing::warn!(%cgroup, "ended the processes a killed Slipway left running");
    }
    for dir in slipway_engine::reap_lxd_leftovers() {
        tracing::warn!(%dir, "removed the LXD folder a killed Slipway left");
    }
    let store = Store::open(data_dir)
        .await
        .with_context(|| format!("cannot open the data dir {}", data_dir.display()))?;
    Ok(Arc::new(store))
}

/// The data dir as an absolute path, so builds that change directory still find it.
pub fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))
}
