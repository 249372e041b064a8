//! `slipway doctor`: what this host offers Slipway's sandbox, tried for real.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use slipway_sandbox::{SandboxSettings, cgroup, probe};

pub async fn doctor(config_path: &Path) -> Result<ExitCode> {
    let mut settings = SandboxSettings::default();
    if config_path.exists() {
        let config = crate::context::load_config(config_path)?;
        settings.id_base = config.sandbox.id_base;
        settings.read_only = config.sandbox.read_only.clone();
        println!("config: {}", config_path.display());
        for p in &settings.read_only {
            let state = if p.is_dir() { "" } else { " (missing)" };
            println!(
                "  read-only for every sandboxed step: {}{state}",
                p.display()
            );
        }
    }
    println!("cgroups: {}", cgroup::layout().describe());
    let ok = match probe(settings.clone()).await {
        Ok(msg) => {
            println!("sandbox: {msg}");
            // SAFETY: geteuid(2) has no failure mode.
            if unsafe { libc::geteuid() } == 0 {
                println!(
                    "  trusted steps run as host uid/gid {}, untrusted ones as {} (root inside)",
                    settings.id_base,
                    settings.id_base + 65_536
                );
            } else {
                println!(
                    "  steps run as this user (root inside) with its /etc/subuid range mapped; without root, cgroup limits apply only where a cgroup is delegated to this user"
                );
            }
            true
        }
        Err(msg) => {
            println!("sandbox: NOT working: {msg}");
            println!(
                "  script steps cannot run until this is fixed (or set `sandbox = false` on trusted builds)"
            );
            false
        }
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
