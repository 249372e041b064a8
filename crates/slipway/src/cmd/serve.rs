//! `slipway serve`: the service on this config (or on the example, prepared if missing).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use slipway_server::{ADMIN_TOKEN_ENV, ServeOptions};

use crate::context::{absolute, load_config_to_act, open_store};

pub async fn serve(
    config_path: &Path,
    data_dir: &Path,
    listen: Option<String>,
    example: Option<PathBuf>,
) -> Result<ExitCode> {
    let (config_path, data_dir) = match &example {
        Some(dir) => {
            if !dir.join("slipway.toml").exists() {
                crate::example::init(dir)?;
            }
            (dir.join("slipway.toml"), dir.join(".slipway"))
        }
        None => (config_path.to_path_buf(), data_dir.to_path_buf()),
    };
    let config_path = absolute(&config_path)?;
    let data_dir = absolute(&data_dir)?;
    let config = load_config_to_act(&config_path, &data_dir)?;
    let store = open_store(&data_dir).await?;
    let bootstrap = std::env::var(ADMIN_TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty());
    let token_files: Vec<String> = config
        .server
        .tokens
        .iter()
        .filter_map(|t| config.secrets.get(&t.secret))
        .filter_map(|s| match &s.source {
            slipway_config::SecretSource::File(p) => {
                Some(config.resolve(&p.to_string_lossy()).display().to_string())
            }
            slipway_config::SecretSource::Env(_) => None,
        })
        .collect();
    slipway_server::serve(
        ServeOptions {
            config_path,
            data_dir,
            config,
            store,
            listen,
            bootstrap_token: bootstrap,
        },
        |url| {
            println!("slipway serve: dashboard at {url}/");
            if example.is_some() {
                if let Some(file) = token_files.first() {
                    println!("  to trigger, promote or roll back, log in at {url}/login with the token in {file}");
                }
            }
        },
    )
    .await
    .context("slipway serve")?;
    Ok(ExitCode::SUCCESS)
}
