//! Build logs: one file per build, each line `<RFC 3339 UTC> <stream> | <text>`, flushed line by
//! line so `slipway logs --follow` sees output as it happens. Secret values are masked on the way
//! in, so they never reach the file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{EngineError, io_err};

const MASK: &str = "[secret]";

#[derive(Clone)]
pub(crate) struct BuildLog {
    inner: Arc<Mutex<Inner>>,
    path: PathBuf,
}

struct Inner {
    out: BufWriter<File>,
    redact: Vec<String>,
    lines: u64,
    bytes: u64,
    failed: bool,
}

impl BuildLog {
    pub fn create(path: &Path) -> Result<BuildLog, EngineError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let file = File::create(path).map_err(io_err(path))?;
        Ok(BuildLog {
            inner: Arc::new(Mutex::new(Inner {
                out: BufWriter::new(file),
                redact: Vec::new(),
                lines: 0,
                bytes: 0,
                failed: false,
            })),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Values to mask from now on. Each non-trivial line of a secret is masked on its own, so a
    /// multi-line key printed line by line is caught too.
    pub fn redact(&self, secret: &str) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        for part in std::iter::once(secret.trim()).chain(secret.lines().map(str::trim)) {
            if part.len() >= 6 && !inner.redact.iter().any(|r| r == part) {
                inner.redact.push(part.to_string());
            }
        }
        // Longest first, so a whole secret is masked before its parts.
        inner.redact.sort_by_key(|r| std::cmp::Reverse(r.len()));
    }

    /// Appends one line. Write errors are remembered (and reported at the end), never fatal to
    /// the build: a full disk should fail the run clearly, not hang a pipe.
    pub fn line(&self, stream: &str, text: &str) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let mut text = text.trim_end_matches(['\n', '\r']).to_string();
        for r in &inner.redact {
            if text.contains(r.as_str()) {
                text = text.replace(r.as_str(), MASK);
            }
        }
        let ts = slipway_store::now();
        let line = format!("{ts} {stream:<4}| {text}\n");
        let ok = inner
            .out
            .write_all(line.as_bytes())
            .and_then(|_| inner.out.flush())
            .is_ok();
        inner.failed |= !ok;
        inner.lines += 1;
        inner.bytes += line.len() as u64;
    }

    pub fn info(&self, text: &str) {
        self.line("--", text);
    }

    /// (lines, bytes, whether any write failed)
    pub fn totals(&self) -> (u64, u64, bool) {
        match self.inner.lock() {
            Ok(i) => (i.lines, i.bytes, i.failed),
            Err(_) => (0, 0, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_whole_and_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = BuildLog::create(&dir.path().join("b.log")).unwrap();
        log.redact("-----BEGIN KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END KEY-----\n");
        log.line("out", "key line c2VjcmV0LWtleS1ieXRlcw== here");
        log.line("err", "plain");
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(!text.contains("c2VjcmV0"), "{text}");
        assert!(text.contains("key line [secret] here"));
        assert!(text.lines().nth(1).unwrap().ends_with("err | plain"));
        assert_eq!(log.totals().0, 2);
    }
}
