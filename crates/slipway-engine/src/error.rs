use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Config(#[from] slipway_config::ConfigErrors),
    #[error("{0}")]
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
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.into();
    move |source| EngineError::Io { path, source }
}
