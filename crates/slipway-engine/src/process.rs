//! One step as a child process: `/bin/sh -c <step>` in its own process group, output captured
//! line by line, and the whole group ended on timeout, cancel, or when the step exits (so a
//! background child cannot outlive its build or hold its pipes open).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::logs::BuildLog;

/// Time a group gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);
/// Time to drain output after the group is gone (a process that escaped the group may hold a pipe).
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StepEnd {
    Exited(i32),
    Signaled(i32),
    TimedOut,
    Cancelled,
    SpawnFailed(String),
}

pub(crate) struct StepSpec<'a> {
    pub command: &'a str,
    pub dir: &'a Path,
    pub env: &'a BTreeMap<String, String>,
    pub deadline: Instant,
    /// Told the process group id right after the spawn.
    pub on_spawn: &'a (dyn Fn(i32) + Sync),
}

pub(crate) async fn run_step(
    spec: StepSpec<'_>,
    log: &BuildLog,
    cancel: &CancellationToken,
) -> StepEnd {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(spec.command)
        .current_dir(spec.dir)
        .env_clear()
        .envs(spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return StepEnd::SpawnFailed(e.to_string()),
    };
    let pgid = child.id().map(|p| p as i32);
    if let Some(pgid) = pgid {
        (spec.on_spawn)(pgid);
    }
    let readers = [
        child
            .stdout
            .take()
            .map(|s| tokio::spawn(pump(s, log.clone(), "out"))),
        child
            .stderr
            .take()
            .map(|s| tokio::spawn(pump(s, log.clone(), "err"))),
    ];

    let end = tokio::select! {
        status = child.wait() => match status {
            Ok(s) => exit_of(s),
            Err(e) => StepEnd::SpawnFailed(e.to_string()),
        },
        _ = tokio::time::sleep_until(spec.deadline) => StepEnd::TimedOut,
        _ = cancel.cancelled() => StepEnd::Cancelled,
    };
    if let Some(pgid) = pgid {
        if matches!(end, StepEnd::TimedOut | StepEnd::Cancelled) {
            signal_group(pgid, libc::SIGTERM);
            if tokio::time::timeout(TERM_GRACE, child.wait())
                .await
                .is_err()
            {
                signal_group(pgid, libc::SIGKILL);
            }
        }
        // Whatever the step left behind in its group goes too.
        signal_group(pgid, libc::SIGKILL);
    }
    let _ = child.wait().await;
    for reader in readers.into_iter().flatten() {
        let abort = reader.abort_handle();
        if tokio::time::timeout(DRAIN_LIMIT, reader).await.is_err() {
            abort.abort();
            log.info("output still open after the step ended; stopped reading it");
        }
    }
    end
}

fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

fn exit_of(status: std::process::ExitStatus) -> StepEnd {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => StepEnd::Exited(code),
        (None, Some(sig)) => StepEnd::Signaled(sig),
        (None, None) => StepEnd::Exited(-1),
    }
}

/// Longest line kept whole; longer output is split so one endless line cannot exhaust memory.
const MAX_LINE: usize = 64 * 1024;

async fn pump(stream: impl AsyncRead + Unpin, log: BuildLog, tag: &'static str) {
    let mut reader = BufReader::new(stream);
    let mut line: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let (consumed, complete) = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(chunk) => {
                let room = MAX_LINE - line.len();
                match chunk.iter().take(room).position(|&b| b == b'\n') {
                    Some(i) => {
                        line.extend_from_slice(&chunk[..i]);
                        (i + 1, true)
                    }
                    None => {
                        let n = chunk.len().min(room);
                        line.extend_from_slice(&chunk[..n]);
                        (n, line.len() >= MAX_LINE)
                    }
                }
            }
        };
        reader.consume(consumed);
        if complete {
            log.line(tag, &String::from_utf8_lossy(&line));
            line.clear();
        }
    }
    if !line.is_empty() {
        log.line(tag, &String::from_utf8_lossy(&line));
    }
}
