use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error(transparent)]
    Deb(#[from] crate::deb::DebError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("signing: {0}")]
    Sign(String),
    #[error("{path}: {reason}")]
    Verify { path: String, reason: String },
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AptError {
    let path = path.into();
    move |source| AptError::Io { path, source }
}
