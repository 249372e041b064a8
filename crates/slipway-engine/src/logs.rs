//! Build logs: one file per build, each line `<RFC 3339 UTC> <stream> | <text>`, flushed line by
//! line so `slipway logs --follow` sees output as it happens. Secret values are masked on the way
//! in, so they never reach the file.
//!
//! Logs are private (the file 0600, its folder 0700) and capped: once a build's output would take
//! the file past its limit (64 MiB by default) one last line says so and further output is dropped
//! (only counted). Slipway's own lines (`--`) are still written after that, so how the build ended
//! stays visible; they have at most [`INFO_SLACK`] bytes past the limit.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{EngineError, io_err};

const MASK: &str = "[secret]";

/// The stream tag of Slipway's own lines.
const INFO: &str = "--";

/// The text of the last `n` lines of a build log (without time and stream), reading at most
/// its last 256 KiB; empty if there is no log.
pub fn log_tail(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(256 * 1024);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if f.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // cut in the middle
    }
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.split_once("| ").map(|(_, t)| t).unwrap_or(l).to_string())
        .collect()
}

#[cfg(test)]
use slipway_config::DEFAULT_LOG_LIMIT;

/// How far past the limit Slipway's own lines may still take a truncated log.
pub const INFO_SLACK: u64 = 1024 * 1024;

#[derive(Clone)]
pub(crate) struct BuildLog {
    inner: Arc<Mutex<Inner>>,
    path: PathBuf,
}

struct Inner {
    out: BufWriter<File>,
    redact: Vec<String>,
    /// Lines and bytes in the file.
    lines: u64,
    bytes: u64,
    failed: bool,
    limit: u64,
    truncated: bool,
    /// Lines dropped after the limit was reached, and their bytes (text + newline, without the
    /// timestamp and stream prefix).
    dropped_lines: u64,
    dropped_bytes: u64,
}

impl Inner {
    fn write(&mut self, line: &str) {
        let ok = self
            .out
            .write_all(line.as_bytes())
            .and_then(|_| self.out.flush())
            .is_ok();
        self.failed |= !ok;
        self.lines += 1;
        self.bytes += line.len() as u64;
    }

    fn drop_line(&mut self, text: &str) {
        self.dropped_lines += 1;
        self.dropped_bytes += text.len() as u64 + 1;
    }
}

/// `64 MiB` for whole MiB, else `N bytes`.
fn size_text(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

impl BuildLog {
    /// A new log at `path` (replacing one there), capped at [`DEFAULT_LOG_LIMIT`].
    #[cfg(test)]
    pub fn create(path: &Path) -> Result<BuildLog, EngineError> {
        BuildLog::create_with_limit(path, DEFAULT_LOG_LIMIT)
    }

    /// A new log at `path` (replacing one there) whose build output stops at `limit_bytes`. The
    /// file is 0600 and its folder 0700 (created so if missing, tightened if not).
    pub fn create_with_limit(path: &Path, limit_bytes: u64) -> Result<BuildLog, EngineError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            slipway_store::create_private_dir(parent).map_err(io_err(parent))?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(slipway_store::PRIVATE_FILE_MODE)
            .open(path)
            .map_err(io_err(path))?;
        // The mode above only applies to a new file.
        file.set_permissions(std::fs::Permissions::from_mode(
            slipway_store::PRIVATE_FILE_MODE,
        ))
        .map_err(io_err(path))?;
        Ok(BuildLog {
            inner: Arc::new(Mutex::new(Inner {
                out: BufWriter::new(file),
                redact: Vec::new(),
                lines: 0,
                bytes: 0,
                failed: false,
                limit: limit_bytes,
                truncated: false,
                dropped_lines: 0,
                dropped_bytes: 0,
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
    ///
    /// A line that would take the file past the limit is dropped, and the first such line makes
    /// the log truncated: one notice line is written and every later output line is dropped.
    /// Slipway's own lines (stream `--`) are kept up to [`INFO_SLACK`] past the limit.
    pub fn line(&self, stream: &str, text: &str) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let own = stream == INFO;
        let text = text.trim_end_matches(['\n', '\r']);
        if inner.truncated && !own {
            // Not even masked: it is only counted.
            inner.drop_line(text);
            return;
        }
        let mut text = text.to_string();
        for r in &inner.redact {
            if text.contains(r.as_str()) {
                text = text.replace(r.as_str(), MASK);
            }
        }
        let ts = slipway_store::now();
        let line = format!("{ts} {stream:<4}| {text}\n");
        let cap = if own {
            inner.limit.saturating_add(INFO_SLACK)
        } else {
            inner.limit
        };
        if inner.bytes.saturating_add(line.len() as u64) <= cap {
            inner.write(&line);
            return;
        }
        inner.drop_line(&text);
        if !inner.truncated {
            inner.truncated = true;
            let notice = format!(
                "{ts} {INFO:<4}| log truncated: the build wrote more than {}; further output is dropped\n",
                size_text(inner.limit)
            );
            inner.write(&notice);
        }
    }

    pub fn info(&self, text: &str) {
        self.line(INFO, text);
    }

    /// (lines, bytes, whether any write failed), of what is in the file.
    pub fn totals(&self) -> (u64, u64, bool) {
        match self.inner.lock() {
            Ok(i) => (i.lines, i.bytes, i.failed),
            Err(_) => (0, 0, true),
        }
    }

    /// Whether the log reached its limit and output was dropped.
    pub fn truncated(&self) -> bool {
        self.inner.lock().map(|i| i.truncated).unwrap_or(false)
    }

    /// (lines, bytes) dropped once the limit was reached; bytes count each line's text and
    /// newline, without the timestamp and stream prefix.
    pub fn dropped(&self) -> (u64, u64) {
        self.inner
            .lock()
            .map(|i| (i.dropped_lines, i.dropped_bytes))
            .unwrap_or((0, 0))
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

    #[test]
    fn the_log_stops_at_its_limit_with_one_notice() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs/1/logs/b.log");
        let log = BuildLog::create_with_limit(&path, 200).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);

        log.info("step 1/1: make");
        for i in 0..1000 {
            log.line("out", &format!("output line {i}"));
        }
        assert!(log.truncated());
        log.info("build failure: step 1 exited with 2");
        log.line("err", "late output");

        let text = std::fs::read_to_string(&path).unwrap();
        let notices = text.matches("log truncated").count();
        assert_eq!(notices, 1, "{text}");
        assert!(text.contains(
            "--  | log truncated: the build wrote more than 200 bytes; further output is dropped"
        ));
        // Output stays within the limit; the notice and the final info line come on top.
        let before_notice = &text[..text.find("log truncated").unwrap()];
        let before_notice = &before_notice[..before_notice.rfind('\n').unwrap() + 1];
        assert!(before_notice.len() <= 200, "{before_notice}");
        assert!(text.len() < 200 + 300, "{}", text.len());
        assert!(
            text.lines()
                .last()
                .unwrap()
                .ends_with("--  | build failure: step 1 exited with 2")
        );
        assert!(!text.contains("late output"));

        let (lines, bytes, failed) = log.totals();
        assert!(!failed);
        assert_eq!(bytes, text.len() as u64);
        assert_eq!(lines, text.lines().count() as u64);
        let (dropped_lines, dropped_bytes) = log.dropped();
        let written = text.matches("output line").count() as u64;
        assert_eq!(dropped_lines, 1000 - written + 1);
        assert!(dropped_bytes > 10 * dropped_lines, "{dropped_bytes}");
    }

    #[test]
    fn a_log_under_its_limit_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let log = BuildLog::create(&dir.path().join("b.log")).unwrap();
        for i in 0..100 {
            log.line("out", &format!("line {i}"));
        }
        assert!(!log.truncated());
        assert_eq!(log.dropped(), (0, 0));
        assert_eq!(log.totals().0, 100);
        assert_eq!(size_text(DEFAULT_LOG_LIMIT), "64 MiB");
        assert_eq!(size_text(200), "200 bytes");
    }

    #[test]
    fn own_lines_after_truncation_are_bounded_too() {
        let dir = tempfile::tempdir().unwrap();
        let log = BuildLog::create_with_limit(&dir.path().join("b.log"), 100).unwrap();
        let long = "x".repeat(1000);
        for _ in 0..2 * INFO_SLACK / 1000 {
            log.info(&long);
        }
        assert!(log.truncated());
        let size = std::fs::metadata(log.path()).unwrap().len();
        assert!(size <= 100 + INFO_SLACK + 200, "{size}");
        assert_eq!(
            std::fs::read_to_string(log.path())
                .unwrap()
                .matches("log truncated")
                .count(),
            1
        );
    }
}
