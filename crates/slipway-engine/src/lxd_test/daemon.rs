//! The private LXD daemon: its folder, starting and initialising it, launching the container,
//! stopping it and tearing it all down.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use slipway_sandbox::cgroup::{self, Cgroup};
use tokio::process::{Child, Command};

use super::ROOT;
use super::capture::{bounded, output};
use super::cleanup::{remove_container_cgroups, remove_private_dir};
use super::guest::UserEnv;
use crate::logs::BuildLog;

/// The stream tag of the daemon's and LXD's own output in the build log.
const STREAM: &str = "lxd";
const IMAGE_ALIAS: &str = "guest-under-test";
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One private LXD daemon and its folder. Dropping it ends the daemon and everything in its
/// cgroup and removes the folder (blocking: drop it off the async threads, see [`finish`]).
pub(super) struct Daemon {
    pub(super) dir: PathBuf,
    /// The random part of the folder's name.
    pub(super) tag: String,
    pub(super) container: String,
    pub(super) cgroup: Option<Cgroup>,
    child: Option<Child>,
    launched: bool,
    /// Home, uid and gid of users in the container, looked up once.
    pub(super) users: Vec<(u32, UserEnv)>,
    pub(super) log: BuildLog,
}

impl Daemon {
    pub(super) fn create(run_id: i64, build: &str, log: BuildLog) -> Result<Daemon, String> {
        let root = Path::new(ROOT);
        traversable_dirs(root)?;
        let short: String = build.chars().take(24).collect();
        for _ in 0..16 {
            let tag = random_hex();
            let dir = root.join(format!("r{run_id}-{short}-{tag}"));
            match fs::DirBuilder::new().mode(0o711).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
            }
            let container = format!("guest-{tag}");
            let d = Daemon {
                dir,
                tag,
                container,
                cgroup: None,
                child: None,
                launched: false,
                users: Vec::new(),
                log,
            };
            let setup = fs::set_permissions(&d.dir, fs::Permissions::from_mode(0o711))
                // Who made it, so a later Slipway removes it once that process is gone.
                .and_then(|_| {
                    fs::write(
                        d.dir.join("owner"),
                        format!("{}\n{}\n", cgroup::owner_tag(), d.container),
                    )
                })
                .and_then(|_| {
                    for sub in ["lxd", "pool"] {
                        fs::DirBuilder::new().mode(0o711).create(d.dir.join(sub))?;
                    }
                    Ok(())
                });
            return match setup {
                Ok(()) => Ok(d),
                Err(e) => Err(format!("cannot prepare {}: {e}", d.dir.display())),
            };
        }
        Err(format!("cannot find a free folder name in {ROOT}"))
    }

    fn lxd_dir(&self) -> PathBuf {
        self.dir.join("lxd")
    }

    /// A command for this daemon: a cleared environment naming it, no stdin, its own process
    /// group (a terminal's ^C reaches Slipway, which then stops the daemon in order).
    pub(super) fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into()),
            )
            .env("LXD_DIR", self.lxd_dir())
            .env("LXD_CONF", self.dir.join("client"))
            .env("HOME", &self.dir)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        c
    }

    fn lxc(&self, args: &[&str]) -> Command {
        let mut c = self.command("lxc");
        c.args(args);
        c
    }

    /// The last lines of the daemon's log and output, into the build log.
    fn show_daemon_log(&self) {
        for file in ["lxd.log", "lxd.out"] {
            let path = self.dir.join(file);
            let text = fs::read(&path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            if lines.is_empty() {
                continue;
            }
            let from = lines.len().saturating_sub(30);
            self.log.info(&format!(
                "last {} lines of {}:",
                lines.len() - from,
                path.display()
            ));
            for line in &lines[from..] {
                self.log.line("lxd", &bounded(line, 1000));
            }
        }
    }

    pub(super) async fn start(&mut self) -> Result<(), String> {
        let out = fs::File::create(self.dir.join("lxd.out"))
            .and_then(|f| Ok((f.try_clone()?, f)))
            .map_err(|e| format!("cannot create the daemon's output file: {e}"))?;
        let mut cmd = self.command("lxd");
        cmd.arg("--group")
            .arg("root")
            .arg("--logfile")
            .arg(self.dir.join("lxd.log"))
            .stdout(out.0)
            .stderr(out.1);
        if let Some(cg) = &self.cgroup {
            cg.attach(&mut cmd)
                .map_err(|e| format!("cannot put the daemon in its cgroup: {e}"))?;
        }
        let child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start lxd: {e} (the Debian package lxd; scripts/setup-host.sh installs it)"
            )
        })?;
        self.log.info(&format!(
            "lxd started (pid {})",
            child.id().map(|p| p.to_string()).unwrap_or_default()
        ));
        self.child = Some(child);

        let mut wait = self.command("lxd");
        wait.args(["waitready", "--timeout", "60"]);
        let Some(child) = self.child.as_mut() else {
            return Err("the LXD daemon is gone".into());
        };
        let ready = tokio::select! {
            status = child.wait() => Err(format!(
                "the LXD daemon exited during startup ({})",
                status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string())
            )),
            r = output(wait, Some(Duration::from_secs(70)), None) => match r {
                Ok(o) if o.ok() => Ok(()),
                Ok(o) => {
                    o.log_to(&self.log, STREAM);
                    Err(format!("LXD did not become ready within 60s ({})", o.summary()))
                }
                Err(e) => Err(format!("LXD did not become ready: {e}")),
            },
        };
        if let Err(e) = ready {
            self.show_daemon_log();
            return Err(e);
        }
        self.log.info("lxd is ready");
        Ok(())
    }

    /// A `dir` pool in the private folder and a default profile with only the root disk: no
    /// network device, no bridge. Containers keep their cgroups under the daemon's.
    pub(super) async fn init(&mut self) -> Result<(), String> {
        let pool = self.dir.join("pool").display().to_string();
        let pool = serde_json::to_string(&pool).map_err(|e| e.to_string())?;
        let preseed = format!(
            "config:\n  images.auto_update_interval: \"0\"\nstorage_pools:\n- name: default\n  driver: dir\n  config:\n    source: {pool}\nprofiles:\n- name: default\n  config:\n    raw.lxc: \"lxc.cgroup.relative = 1\"\n  devices:\n    root:\n      path: /\n      pool: default\n      type: disk\n"
        );
        let mut cmd = self.command("lxd");
        cmd.args(["init", "--preseed"]).stdin(Stdio::piped());
        let out = output(
            cmd,
            Some(Duration::from_secs(120)),
            Some(preseed.as_bytes()),
        )
        .await
        .map_err(|e| format!("lxd init: {e}"))?;
        if !out.ok() {
            self.show_daemon_log();
            out.log_to(&self.log, STREAM);
            return Err(format!("lxd init failed: {}", out.summary()));
        }
        Ok(())
    }

    /// `test_container_starts`: import the image and launch it (unprivileged: LXD's default).
    pub(super) async fn launch(&mut self, image: &Path) -> Result<(), String> {
        let metadata = image.join("lxd.tar.xz").display().to_string();
        let rootfs = image.join("rootfs.squashfs").display().to_string();
        let out = output(
            self.lxc(&[
                "image",
                "import",
                &metadata,
                &rootfs,
                "--alias",
                IMAGE_ALIAS,
            ]),
            None,
            None,
        )
        .await?;
        if !out.ok() {
            self.show_daemon_log();
            return Err(format!("lxc image import failed: {}", out.describe()));
        }
        let imported = out.stdout.lines().next().unwrap_or("").trim();
        self.log.info(&format!("imported: {imported}"));
        self.launched = true;
        let out = output(
            self.lxc(&["launch", IMAGE_ALIAS, &self.container]),
            None,
            None,
        )
        .await?;
        if out.ok() {
            return Ok(());
        }
        // LXD's own error is terse (`forkstart ... exit status 1`); the container's log says why.
        if let Ok(info) = output(
            self.lxc(&["info", &self.container, "--show-log"]),
            Some(Duration::from_secs(30)),
            None,
        )
        .await
        {
            self.log.info("lxc info --show-log:");
            info.log_to(&self.log, STREAM);
        }
        self.show_daemon_log();
        Err(format!("lxc launch failed: {}", out.describe()))
    }

    /// Deletes the container and shuts the daemon down, each bounded in time.
    pub(super) async fn stop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        if let Ok(Some(status)) = child.try_wait() {
            self.log
                .info(&format!("the LXD daemon had already exited ({status})"));
            return;
        }
        if self.launched {
            match output(
                self.lxc(&["delete", "--force", &self.container]),
                Some(Duration::from_secs(30)),
                None,
            )
            .await
            {
                Ok(o) if o.ok() => {}
                Ok(o) => self
                    .log
                    .info(&format!("lxc delete --force: {}", o.summary())),
                Err(e) => self.log.info(&format!("lxc delete --force: {e}")),
            }
        }
        let mut shutdown = self.command("lxd");
        shutdown.args(["shutdown", "--timeout", "30"]);
        if let Err(e) = output(shutdown, Some(Duration::from_secs(40)), None).await {
            self.log.info(&format!("lxd shutdown: {e}"));
        }
        if let Some(child) = self.child.as_mut() {
            match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
                Ok(Ok(status)) => self.log.info(&format!("lxd stopped ({status})")),
                _ => self
                    .log
                    .info("lxd did not stop in time; its cgroup is killed"),
            }
        }
    }

    /// Ends whatever is left (the cgroup kills the daemon and its containers), unmounts what
    /// the daemon mounted in the folder and removes it. Blocking; idempotent.
    fn teardown(&mut self) {
        if let Some(cg) = self.cgroup.take() {
            cg.remove();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
        }
        remove_container_cgroups(&self.container);
        match remove_private_dir(&self.dir) {
            Ok(()) => {}
            Err(e) => self
                .log
                .info(&format!("cannot remove {}: {e}", self.dir.display())),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Drops the daemon (its teardown blocks) on a blocking thread.
pub(super) async fn finish(daemon: Daemon) {
    let _ = tokio::task::spawn_blocking(move || drop(daemon)).await;
}

/// Creates `root` and its missing parents 0711 and makes sure existing ones can be traversed
/// by others (an unprivileged container's root is "others" on the host).
fn traversable_dirs(root: &Path) -> Result<(), String> {
    let mut missing = Vec::new();
    let mut p = Some(root);
    while let Some(dir) = p {
        if dir.exists() {
            break;
        }
        missing.push(dir);
        p = dir.parent();
    }
    for dir in missing.iter().rev() {
        match fs::DirBuilder::new().mode(0o711).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    // Ours (`/var/lib/slipway` and below): exactly 0711. Above that: only checked.
    for dir in root.ancestors() {
        let meta = fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mode = meta.permissions().mode() & 0o7777;
        if dir.starts_with("/var/lib/slipway") {
            if mode != 0o711 {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o711))
                    .map_err(|e| format!("cannot make {} 0711: {e}", dir.display()))?;
            }
        } else if mode & 0o001 == 0 {
            return Err(format!(
                "{} (mode {mode:o}) cannot be traversed by an unprivileged container",
                dir.display()
            ));
        }
    }
    Ok(())
}

fn random_hex() -> String {
    let mut bytes = [0u8; 4];
    let read = fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if read.is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        bytes = (nanos ^ std::process::id().rotate_left(16)).to_le_bytes();
    }
    bytes[..3].iter().map(|b| format!("{b:02x}")).collect()
}
