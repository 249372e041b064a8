//! The runner seam and what both runners share: output pumping, waiting with a deadline and
//! cancel, and ending the step's whole cgroup.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitStatus;
use std::time::Duration;

use slipway_config::Resources;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cgroup::Cgroup;

/// Time a step gets between SIGTERM and SIGKILL on timeout or cancel.
const TERM_GRACE: Duration = Duration::from_secs(3);
/// Time to drain output after the step's processes are gone.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// Longest line kept whole; longer output is split so one endless line cannot exhaust memory.
const MAX_LINE: usize = 64 * 1024;

/// Where a step's output goes, line by line (`stream` is `out` or `err`), and Slipway's notes.
pub trait LineSink: Send + Sync {
    fn line(&self, stream: &'static str, text: &str);
    fn info(&self, text: &str);
}

/// A sink that drops everything (probes, benchmarks).
pub struct Discard;

impl LineSink for Discard {
    fn line(&self, _: &'static str, _: &str) {}
    fn info(&self, _: &str) {}
}

/// A host folder the step sees, at the same path.
#[derive(Debug, Clone)]
pub struct Mount {
    pub path: PathBuf,
    pub access: Access,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    /// Read-write, handed to the sandbox's root.
    ReadWrite,
    /// Read-only but handed to the sandbox's root, for files only their owner may read (a
    /// trusted build's secrets folder, mode 0700/0600).
    Private,
}

/// Told right after the step's first process exists.
#[derive(Debug, Clone)]
pub struct Spawned {
    pub pid: i32,
    /// The cgroup holding the step (`slipway/<owner>/<step>`), when the host has cgroups.
    pub cgroup: Option<String>,
}

pub struct StepSpec<'a> {
    /// Run as `/bin/sh -c <command>`.
    pub command: &'a str,
    pub cwd: &'a std::path::Path,
    /// The whole environment (nothing else of the host's passes).
    pub env: &'a BTreeMap<String, String>,
    /// What the step may see besides the system folders (sandbox only; the plain runner sees
    /// the host).
    pub mounts: &'a [Mount],
    /// Host network (else only a private loopback).
    pub network: bool,
    pub resources: &'a Resources,
    pub deadline: Instant,
    /// Trusted or untrusted: picks the sandbox's host id range.
    pub untrusted: bool,
    pub on_spawn: &'a (dyn Fn(&Spawned) + Sync),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepEnd {
    Exited(i32),
    Signaled(i32),
    TimedOut,
    Cancelled,
    SpawnFailed(String),
}

#[derive(Debug, Clone)]
pub struct StepReport {
    pub end: StepEnd,
    /// Limits the step ran into (memory, processes), for the build's error.
    pub limits: Vec<String>,
}

pub type StepFuture<'a> = Pin<Box<dyn Future<Output = StepReport> + Send + 'a>>;

pub trait StepRunner: Send + Sync {
    /// `plain` or `sandbox`, for logs.
    fn kind(&self) -> &'static str;
    fn run<'a>(
        &'a self,
        spec: StepSpec<'a>,
        sink: &'a dyn LineSink,
        cancel: &'a CancellationToken,
    ) -> StepFuture<'a>;
}

/// Runs one step in its own cgroup: takes one (a new one or an emptied one of an earlier
/// step, [`Cgroup::for_step`]), lets `start` spawn the step's first process (which joins the
/// cgroup before exec), supervises it, then kills everything in the cgroup and gives it back.
/// `cgroup_optional`: a host where the cgroup cannot be made still runs the step (a user's
/// sandbox, held by its pid namespace), with a note in the log.
pub(crate) async fn in_cgroup(
    spec: &StepSpec<'_>,
    sink: &dyn LineSink,
    cancel: &CancellationToken,
    cgroup_optional: bool,
    start: impl AsyncFnOnce(Option<&Cgroup>) -> Result<Child, String>,
) -> StepReport {
    let cgroup = match Cgroup::for_step(spec.resources) {
        Ok(cg) => cg,
        Err(e) if !cgroup_optional => {
            return spawn_failed(format!("cannot create the step's cgroup: {e}"));
        }
        Err(e) => {
            sink.info(&format!(
                "no cgroup for this step ({e}); it is held by its pid namespace only"
            ));
            None
        }
    };
    let report = match start(cgroup.as_ref()).await {
        Ok(child) => {
            (spec.on_spawn)(&Spawned {
                pid: child.id().map(|p| p as i32).unwrap_or(0),
                cgroup: cgroup.as_ref().map(|c| c.name.clone()),
            });
            supervise(child, cgroup.as_ref(), spec.deadline, sink, cancel).await
        }
        Err(msg) => spawn_failed(msg),
    };
    if let Some(cg) = cgroup {
        cg.release(!report.limits.is_empty());
    }
    report
}

pub(crate) fn spawn_failed(msg: impl Into<String>) -> StepReport {
    StepReport {
        end: StepEnd::SpawnFailed(msg.into()),
        limits: Vec::new(),
    }
}

/// Waits for a spawned step, pumping its output; on deadline or cancel sends SIGTERM to
/// everything in the step, then SIGKILL. When the first process ends, whatever it left behind
/// (in its cgroup and process group) is killed, so no daemon outlives its step.
pub(crate) async fn supervise(
    mut child: Child,
    cgroup: Option<&Cgroup>,
    deadline: Instant,
    sink: &dyn LineSink,
    cancel: &CancellationToken,
) -> StepReport {
    let pgid = child.id().map(|p| p as i32);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(&'static str, String)>();
    let mut tasks = Vec::new();
    if let Some(out) = child.stdout.take() {
        tasks.push(tokio::spawn(pump(out, "out", tx.clone())));
    }
    if let Some(err) = child.stderr.take() {
        tasks.push(tokio::spawn(pump(err, "err", tx.clone())));
    }
    drop(tx);

    let end = {
        let waited = async {
            tokio::select! {
                status = child.wait() => match status {
                    Ok(s) => exit_of(s),
                    Err(e) => StepEnd::SpawnFailed(e.to_string()),
                },
                _ = tokio::time::sleep_until(deadline) => StepEnd::TimedOut,
                _ = cancel.cancelled() => StepEnd::Cancelled,
            }
        };
        tokio::pin!(waited);
        loop {
            tokio::select! {
                end = &mut waited => break end,
                Some((tag, line)) = rx.recv() => sink.line(tag, &line),
            }
        }
    };
    let signal_group = |signal: i32| {
        if let Some(pgid) = pgid {
            // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
            unsafe {
                libc::kill(-pgid, signal);
            }
        }
    };
    if matches!(end, StepEnd::TimedOut | StepEnd::Cancelled) {
        if let Some(cg) = cgroup {
            cg.signal_all(libc::SIGTERM);
        }
        signal_group(libc::SIGTERM);
        let _ = tokio::time::timeout(TERM_GRACE, child.wait()).await;
    }
    // The cgroup's own kill below SIGKILLs every member left in it.
    signal_group(libc::SIGKILL);
    if let Some(cg) = cgroup {
        if !cg.kill() {
            sink.info("some processes of the step could not be ended");
        }
    }
    let _ = child.wait().await;
    let drain = async {
        while let Some((tag, line)) = rx.recv().await {
            sink.line(tag, &line);
        }
    };
    if tokio::time::timeout(DRAIN_LIMIT, drain).await.is_err() {
        sink.info("output still open after the step ended; stopped reading it");
    }
    for t in tasks {
        t.abort();
    }
    let limits = cgroup.map(|c| c.limit_events()).unwrap_or_default();
    StepReport { end, limits }
}

fn exit_of(status: ExitStatus) -> StepEnd {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => StepEnd::Exited(code),
        (None, Some(sig)) => StepEnd::Signaled(sig),
        (None, None) => StepEnd::Exited(-1),
    }
}

type Tx = tokio::sync::mpsc::UnboundedSender<(&'static str, String)>;

async fn pump(stream: impl AsyncRead + Unpin, tag: &'static str, tx: Tx) {
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
            if tx
                .send((tag, String::from_utf8_lossy(&line).into_owned()))
                .is_err()
            {
                return;
            }
            line.clear();
        }
    }
    if !line.is_empty() {
        let _ = tx.send((tag, String::from_utf8_lossy(&line).into_owned()));
    }
}
