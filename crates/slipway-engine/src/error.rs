use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] slipway_config::ConfigErrors),
    #[error(transparent)]
    Plan(#[from] slipway_config::PlanError),
    #[error(transparent)]
    Store(#[from] slipway_store::StoreError),
    #[error("repository {repo}: {message}")]
    Git { repo: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A background task of the engine died (a bug); reported, never a crash of the service.
    #[error("internal error: {0}")]
    Internal(String),
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.into();
    move |source| EngineError::Io { path, source }
}
