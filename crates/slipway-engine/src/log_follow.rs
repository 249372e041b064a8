//! Following a build's log while it grows: the CLI's `logs --follow` and the server's live
//! stream read it the same way.

use std::io::{Read, Seek, SeekFrom};

use slipway_store::{BuildStatus, Store, StoreError};

/// Reads a build's log from the start, chunk by chunk, until the build has ended.
pub struct LogFollower {
    run_id: i64,
    build: String,
    offset: u64,
}

/// New bytes of the log, and whether the build had ended before they were read (then they are
/// the last ones).
pub struct LogChunk {
    pub bytes: Vec<u8>,
    /// `Some(final status)` once the build has ended (`None` for a build never recorded).
    pub ended: Option<Option<BuildStatus>>,
    /// Whether the log file exists (a build that has not started has none).
    pub exists: bool,
}

impl LogFollower {
    pub fn new(run_id: i64, build: &str) -> LogFollower {
        LogFollower {
            run_id,
            build: build.to_string(),
            offset: 0,
        }
    }

    /// The bytes written since the last call.
    pub async fn next(&mut self, store: &Store) -> Result<LogChunk, StoreError> {
        // Status first, so the read after an end sees every line the build wrote.
        let status = store.build_status(self.run_id, &self.build).await?;
        let ended = match status {
            None => Some(None),
            Some(s) if s.is_finished() => Some(Some(s)),
            Some(_) => None,
        };
        let path = store.log_path(self.run_id, &self.build);
        let offset = self.offset;
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<Option<Vec<u8>>> {
            let mut f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            Ok(Some(buf))
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("log reader: {e}")))?
        .map_err(|e| StoreError::Corrupt(format!("cannot read the log: {e}")))?;
        let exists = read.is_some();
        let bytes = read.unwrap_or_default();
        self.offset += bytes.len() as u64;
        Ok(LogChunk {
            bytes,
            ended,
            exists,
        })
    }
}
