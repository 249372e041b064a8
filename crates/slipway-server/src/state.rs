//! What every handler and background task shares: the current config (replaced whole on
//! reload), the tokens, the store, the dispatcher, run events, the latest audits and polls.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use slipway_config::Config;
use slipway_engine::RunEvent;
use slipway_store::Store;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::auth::Tokens;
use crate::dashboard::Dashboard;
use crate::dispatch::Dispatcher;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
    config: RwLock<Arc<Config>>,
    tokens: RwLock<Arc<Tokens>>,
    /// The bootstrap admin token, kept to rebuild the token list on reload.
    bootstrap: Option<String>,
    pub store: Arc<Store>,
    /// Every run's events, for live views; lagging subscribers lose events, never block runs.
    pub events: broadcast::Sender<RunEvent>,
    pub dispatcher: Dispatcher,
    /// Wakes the poller at once (`POST /api/v1/poll`, a reload).
    pub poll_now: Notify,
    pub polls: Mutex<PollStatus>,
    pub audits: Mutex<BTreeMap<u32, AuditSnapshot>>,
    pub metrics: Metrics,
    pub dashboard: Dashboard,
    /// Cancelled when the server is asked to stop.
    pub shutdown: CancellationToken,
    /// The busiest read responses, for a second or until something changes.
    pub cache: crate::cache::ReadCache,
    /// The URL the dashboard links to (`[server] public_url`, else the listening address).
    pub base_url: RwLock<String>,
    /// Presubmit from code review: webhook requests, the reporter's wake-up, the last poll.
    pub review: crate::review::ReviewState,
    /// Release policy evaluations in this server, one at a time.
    pub policy_lock: tokio::sync::Mutex<()>,
}

/// The last poll of the branch table.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct PollStatus {
    pub last_poll: Option<String>,
    /// Heads seen per `job/milestone` at the last poll.
    pub heads: BTreeMap<String, String>,
    /// Problems of the last poll (an unreachable repository, a builds file that does not plan).
    pub errors: Vec<String>,
}

/// The latest audit of one milestone.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AuditSnapshot {
    pub milestone: u32,
    pub checked_at: String,
    pub drift: bool,
    /// Findings, one per line.
    pub lines: Vec<String>,
    /// Why the audit could not run, if it could not.
    pub error: Option<String>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

pub struct StateParts {
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
    pub config: Config,
    pub tokens: Tokens,
    pub bootstrap: Option<String>,
    pub store: Arc<Store>,
    pub base_url: String,
}

impl AppState {
    pub fn new(parts: StateParts) -> Result<AppState, crate::error::ServerError> {
        let (events, _) = broadcast::channel(4096);
        let dashboard =
            Dashboard::new().map_err(|e| crate::error::ServerError::Config(e.to_string()))?;
        Ok(AppState(Arc::new(Inner {
            config_path: parts.config_path,
            data_dir: parts.data_dir,
            config: RwLock::new(Arc::new(parts.config)),
            tokens: RwLock::new(Arc::new(parts.tokens)),
            bootstrap: parts.bootstrap,
            store: parts.store,
            events,
            dispatcher: Dispatcher::default(),
            poll_now: Notify::new(),
            polls: Mutex::new(PollStatus::default()),
            audits: Mutex::new(BTreeMap::new()),
            metrics: Metrics::default(),
            dashboard,
            shutdown: CancellationToken::new(),
            base_url: RwLock::new(parts.base_url),
            cache: crate::cache::ReadCache::default(),
            review: crate::review::ReviewState::default(),
            policy_lock: tokio::sync::Mutex::new(()),
        })))
    }

    /// The config in force now; a reload replaces it whole, so a caller keeps one consistent
    /// config for as long as it holds this.
    pub fn config(&self) -> Arc<Config> {
        match self.0.config.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn tokens(&self) -> Arc<Tokens> {
        match self.0.tokens.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn base_url(&self) -> String {
        match self.0.base_url.read() {
            Ok(u) => u.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Loads the config file again and, if it is valid (secrets and tokens included), puts it
    /// in force. An invalid file leaves the running config as it was.
    pub fn reload(&self) -> Result<(), String> {
        let config = Config::load(&self.config_path).map_err(|e| e.to_string())?;
        slipway_engine::check_secrets(&config).map_err(|e| e.to_string())?;
        let tokens = Tokens::load(&config, self.bootstrap.as_deref())?;
        if let Ok(mut t) = self.0.tokens.write() {
            *t = Arc::new(tokens);
        }
        if let Ok(mut c) = self.0.config.write() {
            *c = Arc::new(config);
        }
        self.cache.changed();
        self.poll_now.notify_one();
        self.dispatcher.wake();
        Ok(())
    }
}

/// Locks a mutex even if a panicking holder poisoned it: the data is plain values.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
