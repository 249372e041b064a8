//! Runs a command to its end and keeps its output bounded.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::logs::BuildLog;

/// Output kept of each stream of a command, so a chatty check cannot fill memory.
const CAPTURE: usize = 64 * 1024;
/// Output of a failed check shown in the build log.
const SHOW_LOG: usize = 4000;

/// Bounded output of a finished command.
pub(super) struct Out {
    pub(super) code: Option<i32>,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

impl Out {
    pub(super) fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout and stderr, trimmed.
    fn text(&self) -> String {
        let (o, e) = (self.stdout.trim(), self.stderr.trim());
        match (o.is_empty(), e.is_empty()) {
            (true, true) => String::new(),
            (false, true) => o.to_string(),
            (true, false) => e.to_string(),
            (false, false) => format!("{o}\n{e}"),
        }
    }

    /// One line for an error message: the status and the first line of stderr (else stdout).
    pub(super) fn summary(&self) -> String {
        let status = match self.code {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_string(),
        };
        let first = [&self.stderr, &self.stdout]
            .iter()
            .flat_map(|t| t.lines())
            .map(str::trim)
            .find(|l| !l.is_empty());
        match first {
            Some(line) => format!("{status}: {}", bounded(line, 300)),
            None => status,
        }
    }

    /// Its output, bounded, into the build log.
    pub(super) fn log_to(&self, log: &BuildLog, stream: &str) {
        for line in bounded(&self.text(), SHOW_LOG).lines() {
            log.line(stream, line);
        }
    }

    pub(super) fn describe(&self) -> String {
        let status = match self.code {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_string(),
        };
        let text = self.text();
        if text.is_empty() {
            status
        } else {
            format!("{status}: {}", bounded(&text, SHOW_LOG))
        }
    }
}

/// Runs `cmd` to its end (or `limit`), keeping at most [`CAPTURE`] bytes of each stream.
pub(super) async fn output(
    mut cmd: Command,
    limit: Option<Duration>,
    input: Option<&[u8]>,
) -> Result<Out, String> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let run = async {
        let feed = async {
            if let (Some(mut w), Some(data)) = (stdin, input) {
                let _ = w.write_all(data).await;
            }
        };
        let ((), out, err) = tokio::join!(feed, capped(stdout), capped(stderr));
        let status = child.wait().await;
        (out, err, status)
    };
    let (out, err, status) = match limit {
        None => run.await,
        Some(l) => match tokio::time::timeout(l, run).await {
            Ok(r) => r,
            Err(_) => {
                // kill_on_drop ends it when `child` goes out of scope.
                return Err(format!("{program} timed out after {}s", l.as_secs()));
            }
        },
    };
    let status = status.map_err(|e| format!("{program}: {e}"))?;
    Ok(Out {
        code: status.code(),
        stdout: out,
        stderr: err,
    })
}

async fn capped(r: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut r) = r else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut dropped = 0usize;
    let mut chunk = [0u8; 8192];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = CAPTURE.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&chunk[..room]);
                dropped += n - room;
            }
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        text.push_str(&format!("\n[{dropped} more bytes not kept]"));
    }
    text
}

/// At most `max` bytes of `text` (on a char boundary), marked when cut.
pub(super) fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... [{} more bytes]", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_cuts_on_char_boundaries() {
        assert_eq!(bounded("abc", 5), "abc");
        assert_eq!(bounded("ééé", 3), "é... [4 more bytes]");
    }
}
