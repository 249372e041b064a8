//! The generic webhook (`[notify] url`): each owed notification is POSTed as JSON until the
//! endpoint answers 2xx, once per event (the store keys them).

use std::time::Duration;

use slipway_config::Config;
use slipway_store::Store;

/// Posts every notification not yet delivered; an error names what failed (never a secret).
pub async fn send_pending(config: &Config, store: &Store) -> Result<(), String> {
    let Some(notify) = &config.notify else {
        return Ok(());
    };
    let pending = store
        .pending_notifications()
        .await
        .map_err(|e| e.to_string())?;
    if pending.is_empty() {
        return Ok(());
    }
    let token = match &notify.secret {
        Some(name) => Some(
            slipway_engine::read_secret(config, name)
                .map(|v| String::from_utf8_lossy(&v).trim().to_string())?,
        ),
        None => None,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("notify: {e}"))?;
    let mut failed = None;
    for n in pending {
        let mut req = http
            .post(&notify.url)
            .header("content-type", "application/json")
            .body(n.body.clone());
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let error = match req.send().await {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("the notify webhook answered {}", r.status())),
            Err(e) => Some(format!(
                "cannot reach the notify webhook: {}",
                e.without_url()
            )),
        };
        store
            .notification_attempt(n.id, error.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        if let Some(e) = error {
            failed = Some(format!("notification {}: {e}", n.event_key));
        }
    }
    failed.map_or(Ok(()), Err)
}
