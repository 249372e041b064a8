//! Control groups for steps: one cgroup per step holds every process the step starts, so the
//! step can be limited (memory, pids, CPU) and ended as a whole (`cgroup.kill`), double-forked
//! daemons included.
//!
//! Hosts differ. A pure v2 host has the controllers in the unified hierarchy. A hybrid host
//! (this project's CI) mounts v1 controllers under `/sys/fs/cgroup/<controller>` plus a
//! controller-less v2 hierarchy at `/sys/fs/cgroup/unified`: there tracking and killing go
//! through v2 and the limits through v1. Cgroups are named
//! `slipway/<owner pid>.<owner start>/<step>`, so leftovers of a crashed Slipway are found and
//! ended at the next start ([`reap_orphans`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use slipway_config::Resources;

use crate::SandboxError;

const BASE: &str = "slipway";
const V1_LIMITS: [&str; 3] = ["memory", "pids", "cpu"];
/// CFS period of a CPU limit (µs).
const CPU_PERIOD: u64 = 100_000;

/// Where this host keeps its cgroups, found once per process.
#[derive(Debug, Clone)]
pub enum Layout {
    /// Controllers in the unified hierarchy at `root`.
    Unified { root: PathBuf },
    /// v2 (no controllers) at `v2` for tracking and kill; v1 controllers for limits, each
    /// `(controller, folder of this process's cgroup in that hierarchy)`.
    Hybrid {
        v2: PathBuf,
        v1: Vec<(String, PathBuf)>,
    },
    /// Only v1: tracking through the `pids` hierarchy, kill by signalling every member.
    Legacy { v1: Vec<(String, PathBuf)> },
    /// No usable cgroup file system: steps are held by their pid namespace only.
    Unavailable { why: String },
}

impl Layout {
    pub fn describe(&self) -> String {
        match self {
            Layout::Unified { root } => format!(
                "cgroup v2 at {} (limits and kill in the unified hierarchy)",
                root.display()
            ),
            Layout::Hybrid { v2, v1 } => format!(
                "hybrid cgroups: kill and tracking via v2 at {}, limits via v1 ({})",
                v2.display(),
                v1.iter()
                    .map(|(c, _)| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Layout::Legacy { v1 } => format!(
                "cgroup v1 only ({}): kill by signalling each member",
                v1.iter()
                    .map(|(c, _)| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Layout::Unavailable { why } => format!("no cgroups: {why}"),
        }
    }
}

pub fn layout() -> &'static Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    LAYOUT.get_or_init(detect)
}

fn detect() -> Layout {
    let mounts = match fs::read_to_string("/proc/self/mountinfo") {
        Ok(m) => m,
        Err(e) => {
            return Layout::Unavailable {
                why: format!("cannot read /proc/self/mountinfo: {e}"),
            };
        }
    };
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut v2: Option<PathBuf> = None;
    let mut v1: Vec<(String, PathBuf)> = Vec::new();
    for line in mounts.lines() {
        // mountinfo: id parent maj:min root mountpoint opts ... - fstype source superopts
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(mountpoint), Some(fstype)) = (left.get(4), right.first()) else {
            continue;
        };
        let mountpoint = PathBuf::from(mountpoint);
        match *fstype {
            "cgroup2" if v2.is_none() => v2 = Some(mountpoint),
            "cgroup" => {
                let opts = right.get(2).copied().unwrap_or("");
                for c in opts.split(',') {
                    if V1_LIMITS.contains(&c) && !v1.iter().any(|(x, _)| x == c) {
                        let rel = own_path(&own, |list| list.split(',').any(|x| x == c));
                        v1.push((c.to_string(), mountpoint.join(rel)));
                    }
                }
            }
            _ => {}
        }
    }
    match v2 {
        Some(root)
            if controllers(&root)
                .iter()
                .any(|c| c == "pids" || c == "memory") =>
        {
            Layout::Unified { root }
        }
        Some(root) if !v1.is_empty() => {
            if root.join("cgroup.kill").exists() || kill_supported(&root) {
                Layout::Hybrid { v2: root, v1 }
            } else {
                Layout::Legacy { v1 }
            }
        }
        Some(root) => Layout::Hybrid { v2: root, v1 },
        None if !v1.is_empty() => Layout::Legacy { v1 },
        None => Layout::Unavailable {
            why: "no cgroup file system is mounted".into(),
        },
    }
}

/// `cgroup.kill` exists in every non-root v2 cgroup on kernels >= 5.14.
fn kill_supported(root: &Path) -> bool {
    fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .any(|e| e.path().is_dir() && e.path().join("cgroup.kill").exists())
        })
        .unwrap_or(false)
}

/// This process's cgroup path (relative) in the v1 hierarchy whose controller list matches.
fn own_path(proc_cgroup: &str, matches: impl Fn(&str) -> bool) -> String {
    proc_cgroup
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
            matches(list).then(|| path.trim_start_matches('/').to_string())
        })
        .next()
        .unwrap_or_default()
}

fn controllers(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// `<pid>.<start time>` of this process: the owner part of every cgroup it creates. Read once:
/// every step's cgroup needs it.
pub fn owner_tag() -> String {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let pid = std::process::id();
        format!("{pid}.{}", start_time(pid as i32).unwrap_or(0))
    })
    .clone()
}

/// Kernel start time of a process (clock ticks since boot), `None` when it is gone.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether the Slipway process named by an owner tag (`<pid>.<start time>`) still runs.
pub fn owner_alive(tag: &str) -> bool {
    let Some((pid, start)) = tag.trim().split_once('.') else {
        return false;
    };
    match (pid.parse::<i32>(), start.parse::<u64>()) {
        (Ok(pid), Ok(start)) => start_time(pid) == Some(start),
        _ => false,
    }
}

/// One step's cgroup, in every hierarchy the layout uses.
#[derive(Debug)]
pub struct Cgroup {
    /// `slipway/<owner>/<step>`, the same in every hierarchy.
    pub name: String,
    /// Where membership is tracked and `cgroup.kill` is written (v2), if any.
    track: Option<PathBuf>,
    /// v1 folders holding limits (hybrid and legacy hosts).
    limits: Vec<(String, PathBuf)>,
    /// The limits in force (a new cgroup has none), to explain a failure and to write only
    /// what changes when the cgroup is reused.
    applied: Resources,
    /// The v1 `memory.swappiness` found before a memory limit set it to 0, restored when a
    /// later step has no memory limit.
    swappiness: Option<String>,
}

/// No limit at all: what a new cgroup starts with.
const UNLIMITED: Resources = Resources {
    memory: None,
    pids: None,
    cpus: None,
};

/// A step cgroup still holding more memory than this when its step ended (files the step left
/// on a tmpfs, page cache) is removed rather than reused, so the next step's memory limit is
/// its own.
const REUSE_MAX_MEMORY: u64 = 8 * 1024 * 1024;

/// Emptied step cgroups of this process, ready for the next step: making and removing a
/// cgroup in every hierarchy is most of what a short step costs.
static IDLE: Mutex<Vec<Cgroup>> = Mutex::new(Vec::new());
static NEXT_SLOT: AtomicU64 = AtomicU64::new(1);

impl Cgroup {
    /// A cgroup for one step, with `res` as its limits: an idle one of this process's (empty,
    /// checked when its last step ended) or a new `slipway/<owner>/step-<n>`. On a host without
    /// cgroups, returns `Ok(None)`: the caller holds the step by other means. Give it back with
    /// [`Cgroup::release`].
    pub fn for_step(res: &Resources) -> Result<Option<Cgroup>, SandboxError> {
        if matches!(layout(), Layout::Unavailable { .. }) {
            return Ok(None);
        }
        let idle = IDLE.lock().ok().and_then(|mut idle| idle.pop());
        if let Some(mut cg) = idle {
            match cg.set_limits(res) {
                Ok(()) => return Ok(Some(cg)),
                // E.g. a memory limit below what the cgroup still holds: use a new one.
                Err(e) => {
                    tracing::debug!(cgroup = %cg.name, "not reusing a step cgroup: {e}");
                    cg.remove();
                }
            }
        }
        let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
        Cgroup::create(&format!("step-{slot}"), res)
    }

    /// Gives a step's cgroup back once its step is over and [`Cgroup::kill`] has run: it is
    /// kept for the next step only when it is empty in every hierarchy (no process, no cgroup
    /// below it), no limit was hit in it (`limits_hit`, the counters stay) and it holds little
    /// memory; otherwise it is removed.
    pub fn release(self, limits_hit: bool) {
        if !limits_hit && self.reusable() {
            if let Ok(mut idle) = IDLE.lock() {
                idle.push(self);
                return;
            }
        }
        self.remove();
    }

    fn reusable(&self) -> bool {
        let dirs = self.track.iter().chain(self.limits.iter().map(|(_, d)| d));
        let settled = |dir: &PathBuf| {
            let no_children = fs::read_dir(dir).is_ok_and(|entries| {
                !entries
                    .flatten()
                    .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            });
            no_children && read_pids(&dir.join("cgroup.procs")).is_empty()
        };
        let memory = match layout() {
            Layout::Unified { .. } => self.track.as_ref().map(|d| d.join("memory.current")),
            _ => self
                .limits
                .iter()
                .find(|(c, _)| c == "memory")
                .map(|(_, d)| d.join("memory.usage_in_bytes")),
        };
        let held = memory
            .and_then(|f| fs::read_to_string(f).ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        held <= REUSE_MAX_MEMORY && dirs.into_iter().all(settled)
    }

    /// Removes the idle step cgroups of this process (at the end of a run: an idle Slipway
    /// leaves none behind).
    pub fn remove_idle() {
        let idle = IDLE
            .lock()
            .map(|mut idle| std::mem::take(&mut *idle))
            .unwrap_or_default();
        for cg in idle {
            cg.remove();
        }
    }

    /// Creates the cgroup `slipway/<owner>/<name>` and sets the limits. On a host without
    /// cgroups, returns `Ok(None)`: the caller holds the step by other means.
    pub fn create(name: &str, res: &Resources) -> Result<Option<Cgroup>, SandboxError> {
        let Some(mut cg) = Cgroup::make(name)? else {
            return Ok(None);
        };
        if let Err(e) = cg.set_limits(res) {
            cg.remove();
            return Err(e);
        }
        Ok(Some(cg))
    }

    /// The cgroup's folders, without limits.
    fn make(step: &str) -> Result<Option<Cgroup>, SandboxError> {
        let name = format!("{BASE}/{}/{step}", owner_tag());
        let mut cg = Cgroup {
            name: name.clone(),
            track: None,
            limits: Vec::new(),
            applied: UNLIMITED,
            swappiness: None,
        };
        let mkdir = |dir: &PathBuf| fs::create_dir_all(dir).map_err(|e| cg_err(dir, e));
        match layout() {
            Layout::Unavailable { .. } => return Ok(None),
            Layout::Unified { root } => {
                // Controllers must be enabled on the way down; the root is exempt from the
                // no-internal-processes rule and `slipway/<owner>` never holds processes.
                let base = root.join(BASE);
                let owner = base.join(owner_tag());
                for (dir, parent) in [(&base, root), (&owner, &base)] {
                    if !dir.exists() {
                        mkdir(dir)?;
                    }
                    let wanted: Vec<String> = controllers(parent)
                        .into_iter()
                        .filter(|c| ["memory", "pids", "cpu"].contains(&c.as_str()))
                        .collect();
                    let ctl = parent.join("cgroup.subtree_control");
                    for c in wanted {
                        // Already enabled, or not delegated to us: limits then simply do not apply.
                        let _ = write(&ctl, &format!("+{c}"));
                    }
                }
                let dir = root.join(&name);
                mkdir(&dir)?;
                cg.track = Some(dir);
            }
            Layout::Hybrid { .. } | Layout::Legacy { .. } => {
                let (v2, v1) = match layout() {
                    Layout::Hybrid { v2, v1 } => (Some(v2), v1),
                    Layout::Legacy { v1 } => (None, v1),
                    _ => return Ok(None),
                };
                for (controller, own) in v1 {
                    let dir = own.join(&name);
                    if let Err(e) = mkdir(&dir) {
                        cg.remove();
                        return Err(e);
                    }
                    cg.limits.push((controller.clone(), dir));
                }
                if let Some(v2) = v2 {
                    let dir = v2.join(&name);
                    if let Err(e) = mkdir(&dir) {
                        cg.remove();
                        return Err(e);
                    }
                    cg.track = Some(dir);
                }
            }
        }
        Ok(Some(cg))
    }

    /// Makes `res` the cgroup's limits, an unset one unlimited; writes only what differs from
    /// the limits in force.
    fn set_limits(&mut self, res: &Resources) -> Result<(), SandboxError> {
        let old = self.applied;
        // Until every write succeeded, the limits in force are unknown: force a rewrite.
        self.applied = Resources {
            memory: Some(u64::MAX),
            pids: Some(u64::MAX),
            cpus: Some(f64::NAN),
        };
        let quota = |c: f64| ((c * CPU_PERIOD as f64) as u64).max(1000);
        match layout() {
            Layout::Unified { .. } => {
                let Some(dir) = &self.track else {
                    return Ok(());
                };
                let set = |file: &str, value: &str| write(&dir.join(file), value);
                if res.memory != old.memory {
                    set("memory.max", &limit_text(res.memory, "max"))
                        .map_err(|e| cg_err(dir, e))?;
                    let _ = set(
                        "memory.swap.max",
                        if res.memory.is_some() { "0" } else { "max" },
                    );
                }
                if res.pids != old.pids {
                    set("pids.max", &limit_text(res.pids, "max")).map_err(|e| cg_err(dir, e))?;
                }
                if res.cpus != old.cpus {
                    let max = res.cpus.map(|c| quota(c).to_string());
                    set(
                        "cpu.max",
                        &format!("{} {CPU_PERIOD}", max.as_deref().unwrap_or("max")),
                    )
                    .map_err(|e| cg_err(dir, e))?;
                }
            }
            _ => {
                for (controller, dir) in &self.limits {
                    let set = |file: &str, value: &str| {
                        write(&dir.join(file), value).map_err(|e| cg_err(dir, e))
                    };
                    match controller.as_str() {
                        "memory" if res.memory != old.memory => {
                            set("memory.limit_in_bytes", &limit_text(res.memory, "-1"))?;
                            let swappiness = dir.join("memory.swappiness");
                            match (res.memory, &self.swappiness) {
                                (Some(_), None) => {
                                    self.swappiness = fs::read_to_string(&swappiness)
                                        .ok()
                                        .map(|v| v.trim().to_string());
                                    let _ = write(&swappiness, "0");
                                }
                                (None, Some(before)) => {
                                    let _ = write(&swappiness, before);
                                    self.swappiness = None;
                                }
                                _ => {}
                            }
                        }
                        "pids" if res.pids != old.pids => {
                            set("pids.max", &limit_text(res.pids, "max"))?;
                        }
                        "cpu" if res.cpus != old.cpus => match res.cpus {
                            Some(c) => {
                                set("cpu.cfs_period_us", &CPU_PERIOD.to_string())?;
                                set("cpu.cfs_quota_us", &quota(c).to_string())?;
                            }
                            None => set("cpu.cfs_quota_us", "-1")?,
                        },
                        _ => {}
                    }
                }
            }
        }
        self.applied = *res;
        Ok(())
    }

    /// The `cgroup.procs` files a new process writes itself (`0`) into, v2 first.
    pub fn procs_paths(&self) -> Vec<PathBuf> {
        self.track
            .iter()
            .chain(self.limits.iter().map(|(_, d)| d))
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// The `cgroup.procs` files a new process writes itself into (v2 first), opened now so a
    /// child can join between fork and exec without allocating.
    pub fn procs_files(&self) -> Result<Vec<fs::File>, SandboxError> {
        let mut files = Vec::new();
        for path in self.procs_paths() {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| SandboxError::Cgroup {
                    path: path.clone(),
                    source: e,
                })?;
            files.push(f);
        }
        Ok(files)
    }

    /// Makes `cmd`'s process join this cgroup between fork and exec, before it can start
    /// anything else: nothing the step starts is ever outside it.
    pub fn attach(&self, cmd: &mut tokio::process::Command) -> Result<(), SandboxError> {
        let files = self.procs_files()?;
        let fds: Vec<i32> = files.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
        // The files stay open in the parent until the command is spawned (kept by the closure).
        // SAFETY: the closure only calls write(2) on descriptors opened above, which is
        // async-signal-safe; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                let _keep = &files;
                for fd in &fds {
                    if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        Ok(())
    }

    fn member_file(&self) -> Option<PathBuf> {
        self.track
            .clone()
            .or_else(|| {
                self.limits
                    .iter()
                    .find(|(c, _)| c == "pids")
                    .map(|(_, d)| d.clone())
            })
            .or_else(|| self.limits.first().map(|(_, d)| d.clone()))
            .map(|d| d.join("cgroup.procs"))
    }

    /// Processes in the cgroup now.
    pub fn pids(&self) -> Vec<i32> {
        self.member_file()
            .map(|f| subtree_pids(&f))
            .unwrap_or_default()
    }

    pub fn signal_all(&self, signal: i32) {
        for pid in self.pids() {
            // SAFETY: kill(2) on a pid read from the cgroup; touches no memory.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// Ends every process in the cgroup (`cgroup.kill`, else SIGKILL to each member until none
    /// is left) and waits until it is empty. Returns false if members remain after the wait.
    pub fn kill(&self) -> bool {
        kill_dir(self.track.as_deref(), self.member_file().as_deref())
    }

    /// Why the step may have failed: limits it ran into.
    pub fn limit_events(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mib = |b: u64| b / (1024 * 1024);
        match layout() {
            Layout::Unified { .. } => {
                let Some(dir) = &self.track else {
                    return found;
                };
                if counter(&dir.join("memory.events"), "oom_kill") > 0 {
                    found.push(format!(
                        "the memory limit ({} MiB) was reached and the kernel killed a process",
                        mib(self.applied.memory.unwrap_or(0))
                    ));
                }
                let max = counter(&dir.join("pids.events"), "max");
                if max > 0 {
                    found.push(format!(
                        "the process limit ({}) was reached {max} times",
                        self.applied.pids.unwrap_or(0)
                    ));
                }
            }
            _ => {
                for (c, dir) in &self.limits {
                    match c.as_str() {
                        "memory" => {
                            let oom = counter(&dir.join("memory.oom_control"), "oom_kill");
                            if oom > 0 {
                                found.push(format!(
                                    "the memory limit ({} MiB) was reached and the kernel killed a process",
                                    mib(self.applied.memory.unwrap_or(0))
                                ));
                            }
                        }
                        "pids" => {
                            let max = counter(&dir.join("pids.events"), "max");
                            if max > 0 {
                                found.push(format!(
                                    "the process limit ({}) was reached {max} times",
                                    self.applied.pids.unwrap_or(0)
                                ));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        found
    }

    /// Kills what is left and removes the cgroup folders.
    pub fn remove(&self) {
        self.kill();
        for dir in self.limits.iter().map(|(_, d)| d).chain(self.track.iter()) {
            remove_dir(dir);
        }
    }
}

fn counter(file: &Path, key: &str) -> u64 {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

fn read_pids(procs: &Path) -> Vec<i32> {
    fs::read_to_string(procs)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn cg_err(path: &Path, source: std::io::Error) -> SandboxError {
    SandboxError::Cgroup {
        path: path.to_path_buf(),
        source,
    }
}

/// A limit as its file takes it, `unlimited` when unset.
fn limit_text(limit: Option<u64>, unlimited: &str) -> String {
    limit.map_or_else(|| unlimited.to_string(), |v| v.to_string())
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

fn kill_dir(track: Option<&Path>, members: Option<&Path>) -> bool {
    let Some(members) = members else {
        return true;
    };
    if let Some(track) = track {
        let _ = write(&track.join("cgroup.kill"), "1");
    }
    // Members are gone quickly; poll often at first, then back off (about 2 s in all).
    // Nested cgroups (an LXD container under its daemon's) count: their members go too.
    for attempt in 0..60u32 {
        let pids = subtree_pids(members);
        if pids.is_empty() {
            return true;
        }
        for pid in pids {
            // SAFETY: kill(2) on a member of the cgroup.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(backoff(attempt));
    }
    subtree_pids(members).is_empty()
}

/// Members of the cgroup whose `cgroup.procs` is `procs`, and of every cgroup below it.
fn subtree_pids(procs: &Path) -> Vec<i32> {
    let mut pids = read_pids(procs);
    let Some(dir) = procs.parent() else {
        return pids;
    };
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                pids.extend(read_pids(&e.path().join("cgroup.procs")));
                stack.push(e.path());
            }
        }
    }
    pids
}

/// 0.1 ms doubling up to 50 ms.
fn backoff(attempt: u32) -> Duration {
    Duration::from_micros((100u64 << attempt.min(9)).min(50_000))
}

/// rmdir, retried briefly: a cgroup is busy until its last member has been reaped.
fn remove_dir(dir: &Path) {
    // Nested cgroups (a step may create none, but be thorough) go first.
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_dir(&e.path());
            }
        }
    }
    for attempt in 0..60u32 {
        match fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(backoff(attempt)),
        }
    }
    tracing::warn!(cgroup = %dir.display(), "cannot remove a step's cgroup");
}

fn hierarchy_roots() -> Vec<PathBuf> {
    match layout() {
        Layout::Unified { root } => vec![root.join(BASE)],
        Layout::Hybrid { v2, v1 } => std::iter::once(v2.join(BASE))
            .chain(v1.iter().map(|(_, d)| d.join(BASE)))
            .collect(),
        Layout::Legacy { v1 } => v1.iter().map(|(_, d)| d.join(BASE)).collect(),
        Layout::Unavailable { .. } => Vec::new(),
    }
}

/// Ends and removes the cgroups of Slipway processes that are gone (killed, crashed): every
/// process a step left behind, a private LXD daemon and its containers included. Returns the
/// names of the cgroups it ended.
pub fn reap_orphans() -> Vec<String> {
    let mut reaped = Vec::new();
    let roots = hierarchy_roots();
    let track_root = match layout() {
        Layout::Unified { root } => Some(root.join(BASE)),
        Layout::Hybrid { v2, .. } => Some(v2.join(BASE)),
        _ => None,
    };
    for root in &roots {
        let Ok(owners) = fs::read_dir(root) else {
            continue;
        };
        for owner in owners.flatten() {
            let tag = owner.file_name().to_string_lossy().to_string();
            if !owner.path().is_dir() || owner_alive(&tag) {
                continue;
            }
            if let Ok(steps) = fs::read_dir(owner.path()) {
                for step in steps.flatten().filter(|s| s.path().is_dir()) {
                    let rel = format!("{BASE}/{tag}/{}", step.file_name().to_string_lossy());
                    let track = track_root
                        .as_ref()
                        .map(|t| t.join(&tag).join(step.file_name()));
                    let members = step.path().join("cgroup.procs");
                    if !subtree_pids(&members).is_empty() {
                        tracing::warn!(cgroup = %rel, "ending processes left by a Slipway that is gone");
                        kill_dir(track.as_deref().filter(|t| t.exists()), Some(&members));
                        if !reaped.contains(&rel) {
                            reaped.push(rel);
                        }
                    }
                    remove_dir(&step.path());
                }
            }
            remove_dir(&owner.path());
        }
    }
    reaped
}

/// Kills and removes one cgroup by name (`slipway/<owner>/<step>`), in every hierarchy.
pub fn kill_by_name(name: &str) -> bool {
    if !name.starts_with(&format!("{BASE}/")) || name.contains("..") {
        return false;
    }
    let track = match layout() {
        Layout::Unified { root } => Some(root.join(name)),
        Layout::Hybrid { v2, .. } => Some(v2.join(name)),
        _ => None,
    };
    let mut found = false;
    let dirs: Vec<PathBuf> = hierarchy_roots()
        .iter()
        .filter_map(|r| r.parent().map(|p| p.join(name)))
        .filter(|d| d.exists())
        .collect();
    for dir in &dirs {
        if !subtree_pids(&dir.join("cgroup.procs")).is_empty() {
            found = true;
            kill_dir(
                track.as_deref().filter(|t| t.exists()),
                Some(&dir.join("cgroup.procs")),
            );
        }
        remove_dir(dir);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_path_picks_the_matching_hierarchy() {
        let text = "4:memory:/process_api/abc\n8:pids:/\n0::/\n";
        assert_eq!(
            own_path(text, |l| l.split(',').any(|x| x == "memory")),
            "process_api/abc"
        );
        assert_eq!(own_path(text, |l| l == "pids"), "");
    }

    /// The folder holding `pids.max` (v1 pids, or the unified cgroup).
    fn pids_max(cg: &Cgroup) -> String {
        let dir = cg
            .limits
            .iter()
            .find(|(c, _)| c == "pids")
            .map(|(_, d)| d.clone())
            .or_else(|| cg.track.clone())
            .expect("a cgroup folder");
        fs::read_to_string(dir.join("pids.max"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn folders(cg: &Cgroup) -> Vec<PathBuf> {
        cg.track
            .iter()
            .chain(cg.limits.iter().map(|(_, d)| d))
            .cloned()
            .collect()
    }

    #[test]
    fn step_cgroups_are_reused_only_empty_and_with_the_next_steps_limits() {
        let limited = Resources {
            memory: Some(256 << 20),
            pids: Some(64),
            cpus: Some(0.5),
        };
        let first = match Cgroup::for_step(&limited) {
            Ok(Some(cg)) => cg,
            other => {
                eprintln!("skipped: no writable cgroups on this host ({other:?})");
                return;
            }
        };
        let name = first.name.clone();
        assert!(name.starts_with(&format!("{BASE}/{}/step-", owner_tag())));
        assert_eq!(pids_max(&first), "64");
        first.release(false);

        // The same cgroup, its limits now those of a step without any.
        let second = Cgroup::for_step(&UNLIMITED).unwrap().unwrap();
        assert_eq!(second.name, name, "an emptied cgroup is reused");
        assert_eq!(pids_max(&second), "max");
        second.release(false);

        // A process left in it: not reused, killed and removed.
        let third = Cgroup::for_step(&limited).unwrap().unwrap();
        assert_eq!(third.name, name);
        assert_eq!(pids_max(&third), "64");
        let mut joined = std::process::Command::new("/bin/sh");
        joined
            .arg("-c")
            .arg(crate::plain::JOIN_THEN_RUN)
            .arg("sh")
            .args(third.procs_paths())
            .args(["--", "echo ready; exec sleep 60"])
            .stdout(std::process::Stdio::piped());
        let mut child = joined.spawn().unwrap();
        let mut ready = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut ready,
        )
        .unwrap();
        assert_eq!(ready.trim(), "ready");
        assert!(!third.pids().is_empty());
        let dirs = folders(&third);
        third.release(false);
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "the process left in the cgroup was killed"
        );
        assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?} removed");

        // A cgroup whose step hit a limit keeps its counters: never reused.
        let fourth = Cgroup::for_step(&limited).unwrap().unwrap();
        assert_ne!(fourth.name, name);
        let dirs = folders(&fourth);
        fourth.release(true);
        assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?} removed");

        let idle = Cgroup::for_step(&limited).unwrap().unwrap();
        let dirs = folders(&idle);
        idle.release(false);
        Cgroup::remove_idle();
        assert!(dirs.iter().all(|d| !d.exists()), "idle cgroups removed");
    }

    #[test]
    fn start_time_of_self_and_of_nothing() {
        assert!(start_time(std::process::id() as i32).is_some());
        assert!(start_time(i32::MAX).is_none());
        assert!(owner_alive(&owner_tag()));
        assert!(!owner_alive("1.1"));
        assert!(!owner_alive("junk"));
        assert!(!owner_alive(""));
    }
}
