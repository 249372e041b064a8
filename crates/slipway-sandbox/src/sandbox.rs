//! The sandboxed runner: bubblewrap in new user, mount, pid, ipc, uts, cgroup and (unless the
//! build is allowed the network) network namespaces.
//!
//! How the identity is made safe: Slipway (root) starts `bwrap` as the first id of an
//! unprivileged range (never as root: a process that only unshares a user namespace keeps host
//! root's file access), with `--userns-block-fd`, and writes the child's `uid_map`/`gid_map`
//! itself (root inside = the range's first id, 65,536 ids mapped) before bwrap goes on. Folders
//! under a private parent (a project in `/root` or a `mktemp -d`) cannot be reached by that id,
//! so before dropping root the launcher enters a private mount namespace and bind-mounts each
//! folder the step may see under a tmpfs at `/run/slipway/sandbox`; bwrap binds them from there
//! to their real paths. Nothing else of the host is visible: system folders read-only (with
//! `/etc`'s secrets masked), a private `/proc`, a minimal `/dev`, a private `/tmp`.
//!
//! As a non-root user the same runs through `newuidmap`/`newgidmap` with the user's
//! `/etc/subuid` range (root inside is then the user), without the staging step.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::SandboxError;
use crate::cgroup::Cgroup;
use crate::ids::{DEFAULT_BASE, IdRange};
use crate::runner::{Access, LineSink, StepFuture, StepRunner, StepSpec, in_cgroup};

/// Read-only system folders every sandbox sees (symlinks, as in merged-/usr systems, are
/// recreated as symlinks).
const SYSTEM: [&str; 8] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];
/// Secrets of the host's `/etc`, masked even though the sandbox's ids could not read most.
const ETC_SECRETS: [&str; 10] = [
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh",
    "/etc/ssl/private",
    "/etc/security/opasswd",
    "/etc/machine-id",
];
/// Capabilities root keeps inside (within its own user namespace only), as rootless
/// container engines give: enough for package tools (chown, chroot, setuid), not mount,
/// ptrace, raw network or module loading.
const CAPS: [&str; 12] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_SETFCAP",
    "CAP_SYS_CHROOT",
    "CAP_NET_BIND_SERVICE",
];
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// The bubblewrap binary.
    pub bwrap: PathBuf,
    /// First id of the trusted range; the untrusted range follows it.
    pub id_base: u32,
    /// Extra host folders every sandboxed step sees read-only (from the service config).
    pub read_only: Vec<PathBuf>,
    /// Paths that must stay invisible even if they lie under a visible folder (the config
    /// folder, the data dir, secret files).
    pub hide: Vec<PathBuf>,
    /// Where the launcher stages bind mounts in its private mount namespace.
    pub staging: PathBuf,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        SandboxSettings {
            bwrap: PathBuf::from("bwrap"),
            id_base: DEFAULT_BASE,
            read_only: Vec::new(),
            hide: Vec::new(),
            staging: PathBuf::from("/run/slipway/sandbox"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SandboxRunner {
    settings: SandboxSettings,
    bwrap: PathBuf,
    root: bool,
}

impl SandboxRunner {
    /// Checks that bubblewrap is there and prepares the staging folder.
    pub fn new(settings: SandboxSettings) -> Result<SandboxRunner, SandboxError> {
        let bwrap = find_program(&settings.bwrap).ok_or_else(|| {
            SandboxError::Setup(format!(
                "the sandbox needs bubblewrap (`{}` not found; apt-get install bubblewrap), or set `sandbox = false` on trusted builds",
                settings.bwrap.display()
            ))
        })?;
        // SAFETY: geteuid(2) has no failure mode and touches no memory.
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            std::fs::create_dir_all(&settings.staging).map_err(|e| SandboxError::Io {
                what: "cannot create",
                path: settings.staging.clone(),
                source: e,
            })?;
        }
        Ok(SandboxRunner {
            settings,
            bwrap,
            root,
        })
    }

    pub fn ids(&self, untrusted: bool) -> IdRange {
        IdRange::for_trust(self.settings.id_base, untrusted)
    }

    fn args(&self, spec: &StepSpec<'_>, staged: &[(PathBuf, PathBuf, bool)]) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
        push(&["--unshare-user", "--uid", "0", "--gid", "0"]);
        push(&[
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup",
        ]);
        if !spec.network {
            push(&["--unshare-net"]);
        }
        push(&[
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "slipway-sandbox",
        ]);
        let mut visible: Vec<PathBuf> = Vec::new();
        for dir in SYSTEM {
            let p = Path::new(dir);
            match std::fs::symlink_metadata(p) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(p) {
                        a.extend([
                            "--symlink".into(),
                            target.display().to_string(),
                            dir.to_string(),
                        ]);
                    }
                }
                Ok(m) if m.is_dir() => {
                    a.extend(["--ro-bind".into(), dir.to_string(), dir.to_string()]);
                    visible.push(p.to_path_buf());
                }
                _ => {}
            }
        }
        a.extend(["--proc".into(), "/proc".into()]);
        a.extend(["--dev".into(), "/dev".into()]);
        for t in ["/tmp", "/var/tmp", "/run"] {
            a.extend(["--tmpfs".into(), t.into()]);
        }
        // Binds and masks in depth order: a folder is bound before what lies inside it, and a
        // mask (the data dir, a secret file) goes over the bind that made it visible but under
        // the step's own folders nested in it (its workspace lies in the data dir). At equal
        // depth a `[sandbox] read_only` folder is masked (it may be the config folder itself)
        // and a step's own folder is not.
        let shared: Vec<PathBuf> = self
            .settings
            .read_only
            .iter()
            .filter_map(|p| p.canonicalize().ok())
            .collect();
        let mut ops: Vec<(usize, u8, [String; 3])> = Vec::new();
        for (from, to, writable) in staged {
            let op = if *writable { "--bind" } else { "--ro-bind" };
            let own = *writable || !shared.contains(to);
            ops.push((
                to.components().count(),
                if own { 2 } else { 0 },
                [
                    op.into(),
                    from.display().to_string(),
                    to.display().to_string(),
                ],
            ));
            visible.push(to.clone());
        }
        let hide: BTreeSet<&Path> = ETC_SECRETS
            .iter()
            .map(Path::new)
            .chain(self.settings.hide.iter().map(PathBuf::as_path))
            .collect();
        for h in hide {
            if !visible.iter().any(|v| h.starts_with(v)) {
                continue;
            }
            let mask = match std::fs::symlink_metadata(h) {
                Ok(m) if m.is_dir() => ["--tmpfs".into(), h.display().to_string(), String::new()],
                Ok(_) => [
                    "--ro-bind".into(),
                    "/dev/null".into(),
                    h.display().to_string(),
                ],
                Err(_) => continue,
            };
            ops.push((h.components().count(), 1, mask));
        }
        ops.sort_by_key(|(depth, kind, _)| (*depth, *kind));
        for (_, _, op) in ops {
            a.extend(op.into_iter().filter(|x| !x.is_empty()));
        }
        // The sandbox's own root (a tmpfs holding the mount points) is not a place to write.
        a.extend(["--remount-ro".into(), "/".into()]);
        for cap in CAPS {
            a.extend(["--cap-add".into(), cap.into()]);
        }
        a.extend(["--chdir".into(), spec.cwd.display().to_string()]);
        a
    }
}

fn find_program(p: &Path) -> Option<PathBuf> {
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|d| d.join(p))
        .find(|c| c.is_file())
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2(2) writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn cstr(p: &Path) -> Result<CString, SandboxError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| SandboxError::Setup(format!("path {} holds a NUL byte", p.display())))
}

/// What the launcher does between fork and exec, as root: join nothing more (the cgroup is
/// joined by an earlier hook), enter a private mount namespace, stage the step's folders under
/// a tmpfs, let bwrap inherit the handshake descriptors, then become the range's first id.
struct Launch {
    staging: CString,
    mounts: Vec<(CString, CString)>,
    inherit: [i32; 2],
    id: Option<u32>,
}

impl Launch {
    fn run(&self) -> std::io::Result<()> {
        let fail = || Err(std::io::Error::last_os_error());
        // SAFETY: only async-signal-safe system calls on memory prepared before the fork.
        unsafe {
            if !self.mounts.is_empty() {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return fail();
                }
                if libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                {
                    return fail();
                }
                if libc::mount(
                    c"tmpfs".as_ptr(),
                    self.staging.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    c"mode=0755".as_ptr().cast(),
                ) != 0
                {
                    return fail();
                }
                for (src, dst) in &self.mounts {
                    if libc::mkdir(dst.as_ptr(), 0o755) != 0 {
                        return fail();
                    }
                    if libc::mount(
                        src.as_ptr(),
                        dst.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    ) != 0
                    {
                        return fail();
                    }
                }
            }
            for fd in self.inherit {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return fail();
                }
            }
            if let Some(id) = self.id {
                if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0
                    || libc::syscall(libc::SYS_setresgid, id, id, id) != 0
                    || libc::syscall(libc::SYS_setresuid, id, id, id) != 0
                {
                    return fail();
                }
            }
        }
        Ok(())
    }
}

impl StepRunner for SandboxRunner {
    fn kind(&self) -> &'static str {
        "sandbox"
    }

    fn run<'a>(
        &'a self,
        spec: StepSpec<'a>,
        sink: &'a dyn LineSink,
        cancel: &'a CancellationToken,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            // Without root, cgroups are only there where one was delegated to the user.
            in_cgroup(&spec, sink, cancel, !self.root, async |cgroup| {
                self.start(&spec, cgroup).await
            })
            .await
        })
    }
}

impl SandboxRunner {
    /// Starts bwrap and completes the id-map handshake. On failure everything started is gone.
    async fn start(
        &self,
        spec: &StepSpec<'_>,
        cgroup: Option<&Cgroup>,
    ) -> Result<tokio::process::Child, String> {
        let ids = self.ids(spec.untrusted);
        let mut folders: Vec<(PathBuf, bool)> = Vec::new();
        for m in spec.mounts {
            let real = m
                .path
                .canonicalize()
                .map_err(|e| format!("sandbox folder {}: {e}", m.path.display()))?;
            if !real.is_dir() {
                return Err(format!("sandbox folder {} is not a folder", real.display()));
            }
            if m.access != Access::ReadOnly && self.root {
                ids.give(&real).map_err(|e| e.to_string())?;
            }
            folders.push((real, m.access == Access::ReadWrite));
        }
        for p in &self.settings.read_only {
            if let Ok(real) = p.canonicalize() {
                if real.is_dir() {
                    folders.push((real, false));
                }
            }
        }
        // Root stages every folder (its parents may be private); a user binds them directly.
        let staged: Vec<(PathBuf, PathBuf, bool)> = folders
            .iter()
            .enumerate()
            .map(|(i, (real, w))| {
                let from = if self.root {
                    self.settings.staging.join(i.to_string())
                } else {
                    real.clone()
                };
                (from, real.clone(), *w)
            })
            .collect();

        let (info_r, info_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
        let (block_r, block_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
        let mut args = vec![
            "--userns-block-fd".to_string(),
            block_r.as_raw_fd().to_string(),
            "--info-fd".to_string(),
            info_w.as_raw_fd().to_string(),
        ];
        args.extend(self.args(spec, &staged));
        args.extend([
            "--".into(),
            "/bin/sh".into(),
            "-c".into(),
            spec.command.into(),
        ]);

        let launch = Launch {
            staging: cstr(&self.settings.staging).map_err(|e| e.to_string())?,
            mounts: if self.root {
                folders
                    .iter()
                    .zip(&staged)
                    .map(|((real, _), (from, _, _))| Ok((cstr(real)?, cstr(from)?)))
                    .collect::<Result<_, SandboxError>>()
                    .map_err(|e| e.to_string())?
            } else {
                Vec::new()
            },
            inherit: [info_w.as_raw_fd(), block_r.as_raw_fd()],
            id: self.root.then_some(ids.base),
        };
        let mut cmd = Command::new(&self.bwrap);
        cmd.args(&args)
            .current_dir("/")
            .env_clear()
            .envs(spec.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cg) = cgroup {
            cg.attach(&mut cmd).map_err(|e| e.to_string())?;
        }
        // SAFETY: Launch::run makes only async-signal-safe calls on memory made before fork.
        unsafe {
            cmd.pre_exec(move || launch.run());
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start bwrap: {e}"))?;
        drop(info_w);
        drop(block_r);

        let handshake = async {
            let info = tokio::task::spawn_blocking(move || {
                let mut text = String::new();
                std::fs::File::from(info_r)
                    .read_to_string(&mut text)
                    .map(|_| text)
            });
            let text = tokio::time::timeout(HANDSHAKE_LIMIT, info)
                .await
                .map_err(|_| "bwrap did not report its sandbox in time".to_string())?
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("reading bwrap's report: {e}"))?;
            let pid = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("child-pid")?.as_i64())
                .ok_or_else(|| "bwrap stopped before creating the sandbox".to_string())?;
            self.write_maps(pid as i32, ids)?;
            std::fs::File::from(block_w)
                .write_all(b"1")
                .map_err(|e| format!("releasing the sandbox: {e}"))
        };
        match handshake.await {
            Ok(()) => Ok(child),
            Err(msg) => {
                let _ = child.start_kill();
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    use tokio::io::AsyncReadExt;
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        stderr.read_to_string(&mut err),
                    )
                    .await;
                }
                let _ = child.wait().await;
                let detail = err.trim();
                Err(if detail.is_empty() {
                    msg
                } else {
                    format!("{msg}: {detail}")
                })
            }
        }
    }

    fn write_maps(&self, pid: i32, ids: IdRange) -> Result<(), String> {
        if self.root {
            for file in ["uid_map", "gid_map"] {
                std::fs::write(format!("/proc/{pid}/{file}"), ids.map_line())
                    .map_err(|e| format!("writing the sandbox's {file}: {e}"))?;
            }
            return Ok(());
        }
        user_maps(pid)
    }
}

/// A user's own sandbox: root inside is the user, then the user's `/etc/subuid` and
/// `/etc/subgid` ranges (through the setuid helpers, as rootless podman does).
fn user_maps(pid: i32) -> Result<(), String> {
    // SAFETY: getuid/getgid have no failure mode.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let name = std::env::var("USER").unwrap_or_default();
    for (helper, file, own) in [
        ("newuidmap", "/etc/subuid", uid),
        ("newgidmap", "/etc/subgid", gid),
    ] {
        let range = std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.split(':');
                let (who, start, count) = (f.next()?, f.next()?, f.next()?);
                (who == name || who == own.to_string())
                    .then(|| Some((start.parse::<u64>().ok()?, count.parse::<u64>().ok()?)))?
            })
            .next()
            .ok_or_else(|| {
                format!("the sandbox needs a subordinate id range for this user in {file} (as for rootless containers)")
            })?;
        let count = range.1.min(65_535);
        let status = std::process::Command::new(helper)
            .args([
                pid.to_string(),
                "0".into(),
                own.to_string(),
                "1".into(),
                "1".into(),
                range.0.to_string(),
                count.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {helper}: {e}"))?;
        if !status.success() {
            return Err(format!("{helper} refused to map ids ({status})"));
        }
    }
    Ok(())
}

/// What `slipway doctor` reports about sandboxing on this host: tries one sandboxed `true`.
pub async fn probe(settings: SandboxSettings) -> Result<String, String> {
    let runner = SandboxRunner::new(settings).map_err(|e| e.to_string())?;
    let env = [(
        "PATH".to_string(),
        "/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
    )]
    .into_iter()
    .collect();
    let res = slipway_config::Resources::default();
    let spec = StepSpec {
        command: "true",
        cwd: Path::new("/"),
        env: &env,
        mounts: &[],
        network: false,
        resources: &res,
        deadline: tokio::time::Instant::now() + Duration::from_secs(30),
        untrusted: true,
        on_spawn: &|_| {},
    };
    let report = runner
        .run(spec, &crate::Discard, &CancellationToken::new())
        .await;
    match report.end {
        crate::StepEnd::Exited(0) => Ok(format!(
            "works ({}, ids {}+{})",
            runner.bwrap.display(),
            runner.settings.id_base,
            crate::ids::SPAN * 2
        )),
        other => Err(format!("a sandboxed `true` ended with {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_args(network: bool, hide: Vec<PathBuf>) -> Vec<String> {
        let runner = SandboxRunner {
            settings: SandboxSettings {
                hide,
                ..SandboxSettings::default()
            },
            bwrap: PathBuf::from("/usr/bin/bwrap"),
            root: true,
        };
        let env = std::collections::BTreeMap::new();
        let res = slipway_config::Resources::default();
        let spec = StepSpec {
            command: "true",
            cwd: Path::new("/w/work"),
            env: &env,
            mounts: &[],
            network,
            resources: &res,
            deadline: tokio::time::Instant::now(),
            untrusted: true,
            on_spawn: &|_| {},
        };
        let staged = vec![
            (
                PathBuf::from("/run/slipway/sandbox/0"),
                PathBuf::from("/w/work"),
                true,
            ),
            (
                PathBuf::from("/run/slipway/sandbox/1"),
                PathBuf::from("/w/inputs"),
                false,
            ),
        ];
        runner.args(&spec, &staged)
    }

    fn has(args: &[String], seq: &[&str]) -> bool {
        args.windows(seq.len())
            .any(|w| w.iter().zip(seq).all(|(a, b)| a == b))
    }

    #[test]
    fn namespaces_binds_masks_and_no_network_by_default() {
        let a = spec_args(
            false,
            vec![PathBuf::from("/etc/passwd"), PathBuf::from("/w")],
        );
        for ns in [
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup",
            "--unshare-net",
        ] {
            assert!(a.iter().any(|x| x == ns), "{ns} missing: {a:?}");
        }
        assert!(has(&a, &["--bind", "/run/slipway/sandbox/0", "/w/work"]));
        assert!(has(
            &a,
            &["--ro-bind", "/run/slipway/sandbox/1", "/w/inputs"]
        ));
        assert!(has(&a, &["--ro-bind", "/etc", "/etc"]));
        // A hidden file under a visible folder is masked; /w holds the step's own folders and
        // is not visible as such, so nothing is mounted over them.
        assert!(has(&a, &["--ro-bind", "/dev/null", "/etc/passwd"]));
        assert!(!a.iter().any(|x| x == "/w"));
        assert!(has(&a, &["--remount-ro", "/"]));
        assert!(
            !a.iter()
                .any(|x| x == "CAP_SYS_ADMIN" || x == "CAP_SYS_PTRACE" || x == "CAP_NET_RAW")
        );
        assert!(has(&a, &["--chdir", "/w/work"]));
        let open = spec_args(true, Vec::new());
        assert!(!open.iter().any(|x| x == "--unshare-net"));
    }

    #[test]
    fn a_visible_folder_holding_the_data_dir_is_bound_then_masked_then_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let data = root.join(".slipway");
        let work = data.join("runs/1/builds/b/work");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(root.join("secret.txt"), "s").unwrap();
        let runner = SandboxRunner {
            settings: SandboxSettings {
                hide: vec![data.clone(), root.join("secret.txt")],
                ..SandboxSettings::default()
            },
            bwrap: PathBuf::from("/usr/bin/bwrap"),
            root: true,
        };
        let env = std::collections::BTreeMap::new();
        let res = slipway_config::Resources::default();
        let spec = StepSpec {
            command: "true",
            cwd: &work,
            env: &env,
            mounts: &[],
            network: false,
            resources: &res,
            deadline: tokio::time::Instant::now(),
            untrusted: true,
            on_spawn: &|_| {},
        };
        let staged = vec![
            (work.clone(), work.clone(), true),
            (root.clone(), root.clone(), false),
        ];
        let a = runner.args(&spec, &staged);
        let at = |seq: &[&str]| {
            a.windows(seq.len())
                .position(|w| w.iter().zip(seq).all(|(x, y)| x == y))
                .unwrap_or_else(|| panic!("{seq:?} missing: {a:?}"))
        };
        let (r, d, w) = (
            root.display().to_string(),
            data.display().to_string(),
            work.display().to_string(),
        );
        let bind_root = at(&["--ro-bind", &r, &r]);
        let mask_data = at(&["--tmpfs", &d]);
        let bind_work = at(&["--bind", &w, &w]);
        let secret = root.join("secret.txt").display().to_string();
        let mask_secret = at(&["--ro-bind", "/dev/null", &secret]);
        assert!(bind_root < mask_data && mask_data < bind_work, "{a:?}");
        assert!(bind_root < mask_secret);
    }
}
