//! Config reload: on SIGHUP, and when the config file changes (checked every two seconds).
//! A file that does not load keeps the running config, with the reason logged once per change.

use std::time::{Duration, SystemTime};

use crate::state::AppState;

fn modified(state: &AppState) -> Option<SystemTime> {
    std::fs::metadata(&state.config_path)
        .and_then(|m| m.modified())
        .ok()
}

pub async fn run_loop(state: AppState) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).ok();
    let mut seen = modified(&state);
    loop {
        let hangup = async {
            match hup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let asked = tokio::select! {
            _ = hangup => true,
            _ = tokio::time::sleep(Duration::from_secs(2)) => false,
            _ = state.shutdown.cancelled() => return,
        };
        let now = modified(&state);
        if !asked && now == seen {
            continue;
        }
        seen = now;
        match state.reload() {
            Ok(()) => tracing::info!(config = %state.config_path.display(), "config reloaded"),
            Err(e) => tracing::error!(
                config = %state.config_path.display(),
                "config not reloaded, the running one stays: {e}"
            ),
        }
    }
}
