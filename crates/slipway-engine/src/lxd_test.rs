//! `uses = "lxd-test"`: boots an image in a private LXD daemon and checks the guest.
//!
//! Slipway itself (trusted, in-process) does what a test script once did as root, so the code
//! under test never gets a root-equivalent power such as the daemon's socket; the image is data
//! and the unprivileged container is the isolation. The daemon:
//!
//! - lives in `/var/lib/slipway/lxd/r<run>-<build>-<random>` (0711, its parents too), so an
//!   unprivileged container can reach its root file system even when the project lies under a
//!   0700 folder, and LXD's socket paths stay short;
//! - runs in its own cgroup (`slipway/<owner>/r<run>-<build>-lxd-<random>`) and its containers in
//!   children of it (`lxc.cgroup.relative`), so removing the cgroup ends everything, and after
//!   a crash the next Slipway ends what is left ([`reap_leftovers`]);
//! - has no network: a `dir` pool and a default profile holding only the root disk.
//!
//! The results are a JUnit suite (`ContainerTest`) written to `<output>/sponge_log.xml` and
//! recorded like the reports of step builds.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use slipway_config::{LXD_BUILTIN_CASES, LxdCheck, LxdTestSpec, PlannedBuild};
use slipway_sandbox::cgroup::{self, Cgroup};
use slipway_store::BuildStatus;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::executor::{BuildResult, Ctx, fail};
use crate::logs::BuildLog;
use crate::workspace::Workspace;

/// Where the private daemons live. Short: LXD's unix sockets must fit in 108 bytes.
const ROOT: &str = "/var/lib/slipway/lxd";
const SUITE: &str = "ContainerTest";
/// The stream tag of the daemon's and LXD's own output in the build log.
const STREAM: &str = "lxd";
const REPORT: &str = "sponge_log.xml";
const IMAGE_ALIAS: &str = "guest-under-test";
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Output kept of each stream of a command, so a chatty check cannot fill memory.
const CAPTURE: usize = 64 * 1024;
/// Output of a failed check shown in the build log and in the report.
const SHOW_LOG: usize = 4000;
const SHOW_REPORT: usize = 2000;

enum Outcome {
    Passed,
    Failed(String),
    NotRun(String),
}

struct Case {
    name: String,
    outcome: Outcome,
    secs: f64,
}

/// What the session has done so far, kept outside it so a timeout or a cancel still reports.
#[derive(Default)]
struct Progress {
    cases: Vec<Case>,
    phase: String,
}

impl Progress {
    fn record(&mut self, name: &str, outcome: Outcome, started: Instant, log: &BuildLog) {
        let secs = started.elapsed().as_secs_f64();
        match &outcome {
            Outcome::Passed => log.info(&format!("ok: {name} ({secs:.1}s)")),
            Outcome::Failed(why) => {
                let mut lines = why.lines();
                log.info(&format!(
                    "FAILED: {name} ({secs:.1}s): {}",
                    lines.next().unwrap_or("")
                ));
                for line in lines {
                    log.line("out", line);
                }
            }
            Outcome::NotRun(why) => log.info(&format!("not run: {name}: {why}")),
        }
        self.cases.push(Case {
            name: name.to_string(),
            outcome,
            secs,
        });
    }
}

pub(crate) async fn run(
    ctx: &Ctx,
    build: &str,
    spec: &LxdTestSpec,
    ws: &Workspace,
    log: &BuildLog,
) -> BuildResult {
    let planned = ctx
        .plan
        .builds
        .iter()
        .find(|b| b.name == build)
        .ok_or_else(|| fail(format!("build '{build}' is not in the plan")))?;
    // The same limit the executor gives step builds, from (nearly) the same moment.
    let timeout = planned.build.timeout;
    let deadline = Instant::now() + timeout;
    let image = image_dir(ws, spec, planned).map_err(fail)?;
    // SAFETY: geteuid(2) has no failure mode.
    if unsafe { libc::geteuid() } != 0 {
        return Err(fail(
            "lxd-test starts a private LXD daemon, which needs root: run Slipway as root, or leave this build out of the job",
        ));
    }

    let swept = tokio::task::spawn_blocking(reap_leftovers)
        .await
        .unwrap_or_default();
    for dir in swept {
        log.info(&format!("removed {dir}, left by a Slipway that is gone"));
    }

    let mut daemon = Daemon::create(ctx.run_id, build, log.clone()).map_err(fail)?;
    log.info(&format!(
        "private LXD daemon in {} (container {}, no network, `dir` pool)",
        daemon.dir.display(),
        daemon.container
    ));
    let resources = planned.build.resources.over(&ctx.config.sandbox.defaults);
    // The folder's random part keeps two daemons of the same run id and build apart (two
    // projects' runs in one Slipway process).
    let name = format!("r{}-{build}-lxd-{}", ctx.run_id, daemon.tag);
    match Cgroup::create(&name, &resources) {
        Ok(Some(cg)) => {
            log.info(&format!("cgroup {} (daemon and container)", cg.name));
            daemon.cgroup = Some(cg);
        }
        Ok(None) => log.info("no cgroups on this host: the daemon is ended by its pid only"),
        Err(e) => {
            finish(daemon).await;
            return Err(fail(format!("cannot create the LXD daemon's cgroup: {e}")));
        }
    }

    let mut progress = Progress::default();
    enum End {
        Done(Result<(), String>),
        Cancelled,
        TimedOut,
    }
    let end = tokio::select! {
        r = session(&mut daemon, spec, &image, log, &mut progress) => End::Done(r),
        _ = ctx.cancel.cancelled() => End::Cancelled,
        _ = tokio::time::sleep_until(deadline) => End::TimedOut,
    };
    let (result, not_run) = match end {
        End::Done(r) => {
            let why = match &r {
                Ok(()) => "the container did not start".to_string(),
                Err(e) => e.clone(),
            };
            (r.map_err(fail), why)
        }
        End::Cancelled => (
            Err((BuildStatus::Cancelled, "cancelled".to_string())),
            "cancelled".to_string(),
        ),
        End::TimedOut => (
            Err(fail(format!(
                "timed out after {}s while {}; the LXD daemon and its container were stopped",
                timeout.as_secs(),
                progress.phase
            ))),
            format!("the build timed out after {}s", timeout.as_secs()),
        ),
    };
    daemon.stop().await;
    finish(daemon).await;

    let mut reported = Ok(());
    if !progress.cases.is_empty() {
        let names = LXD_BUILTIN_CASES
            .iter()
            .map(|n| n.to_string())
            .chain(spec.checks.iter().map(|c| c.name.clone()));
        for name in names {
            if !progress.cases.iter().any(|c| c.name == name) {
                progress.record(&name, Outcome::NotRun(not_run.clone()), Instant::now(), log);
            }
        }
        let dir = ws.work.join(&spec.output);
        let file = dir.join(REPORT);
        let xml = report_xml(&progress.cases);
        reported = match fs::create_dir_all(&dir).and_then(|_| fs::write(&file, xml)) {
            Ok(()) => crate::junit::record_report(ctx, build, &ws.work, &file, log).await,
            Err(e) => Err(fail(format!("cannot write {}: {e}", file.display()))),
        };
    }
    // How the session ended comes first; a report that could not be recorded next.
    result?;
    reported?;
    let failed: Vec<&str> = progress
        .cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
        .map(|c| c.name.as_str())
        .collect();
    let not_run_count = progress
        .cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::NotRun(_)))
        .count();
    if failed.is_empty() && not_run_count == 0 {
        log.info(&format!(
            "all {} container checks passed",
            progress.cases.len()
        ));
        Ok(())
    } else {
        let not_run = if not_run_count > 0 {
            format!("; {not_run_count} not run")
        } else {
            String::new()
        };
        Err(fail(format!(
            "{} of {} container checks failed: {}{not_run}",
            failed.len(),
            progress.cases.len(),
            failed.join(", ")
        )))
    }
}

/// The image folder among the inputs, with both files LXD imports.
fn image_dir(ws: &Workspace, spec: &LxdTestSpec, build: &PlannedBuild) -> Result<PathBuf, String> {
    let from = spec.image.split('/').next().unwrap_or("");
    if !build.needs.iter().any(|n| n == from) {
        return Err(format!(
            "`with.image` '{}' is not among the inputs: this build needs {}",
            spec.image,
            if build.needs.is_empty() {
                "nothing".to_string()
            } else {
                build.needs.join(", ")
            }
        ));
    }
    let dir = ws.inputs.join(&spec.image);
    let inputs = ws.inputs.canonicalize().map_err(|e| e.to_string())?;
    let real = dir
        .canonicalize()
        .map_err(|e| format!("image folder {}: {e}", spec.image))?;
    if !real.starts_with(&inputs) {
        return Err(format!("image folder {} is outside the inputs", spec.image));
    }
    for f in ["lxd.tar.xz", "rootfs.squashfs"] {
        if !real.join(f).is_file() {
            return Err(format!(
                "image folder {} has no {f} (an LXD image is lxd.tar.xz + rootfs.squashfs)",
                spec.image
            ));
        }
    }
    Ok(real)
}

async fn session(
    d: &mut Daemon,
    spec: &LxdTestSpec,
    image: &Path,
    log: &BuildLog,
    p: &mut Progress,
) -> Result<(), String> {
    p.phase = "starting the LXD daemon".into();
    d.start().await?;
    p.phase = "initialising LXD".into();
    d.init().await?;

    p.phase = "launching the container".into();
    let started = Instant::now();
    match d.launch(image).await {
        Ok(()) => p.record(LXD_BUILTIN_CASES[0], Outcome::Passed, started, log),
        Err(why) => {
            p.record(LXD_BUILTIN_CASES[0], Outcome::Failed(why), started, log);
            return Ok(());
        }
    }

    p.phase = "waiting for the system to boot".into();
    let started = Instant::now();
    let boot = d.wait_boot(spec.boot_timeout).await;
    p.record(LXD_BUILTIN_CASES[1], boot, started, log);

    for check in &spec.checks {
        p.phase = format!("checking {}", check.name);
        let started = Instant::now();
        let outcome = d.check(check).await;
        p.record(&check.name, outcome, started, log);
    }
    Ok(())
}

/// One private LXD daemon and its folder. Dropping it ends the daemon and everything in its
/// cgroup and removes the folder (blocking: drop it off the async threads, see [`finish`]).
struct Daemon {
    dir: PathBuf,
    /// The random part of the folder's name.
    tag: String,
    container: String,
    cgroup: Option<Cgroup>,
    child: Option<Child>,
    launched: bool,
    /// Home, uid and gid of users in the container, looked up once.
    users: Vec<(u32, UserEnv)>,
    log: BuildLog,
}

#[derive(Clone)]
struct UserEnv {
    name: Option<String>,
    gid: u32,
    home: String,
}

/// Bounded output of a finished command.
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(&self) -> bool {
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
    fn summary(&self) -> String {
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
    fn log_to(&self, log: &BuildLog, stream: &str) {
        for line in bounded(&self.text(), SHOW_LOG).lines() {
            log.line(stream, line);
        }
    }

    fn describe(&self) -> String {
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

impl Daemon {
    fn create(run_id: i64, build: &str, log: BuildLog) -> Result<Daemon, String> {
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
    fn command(&self, program: &str) -> Command {
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

    async fn start(&mut self) -> Result<(), String> {
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
    async fn init(&mut self) -> Result<(), String> {
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
    async fn launch(&mut self, image: &Path) -> Result<(), String> {
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

    /// `lxc exec` of `argv` in the container, as root or as a user with its session variables.
    async fn exec(
        &self,
        argv: &[String],
        user: Option<(u32, &UserEnv)>,
        limit: Option<Duration>,
    ) -> Result<Out, String> {
        let mut args: Vec<String> = vec!["exec".into(), self.container.clone(), "-T".into()];
        if let Some((uid, u)) = user {
            args.extend([
                "--user".into(),
                uid.to_string(),
                "--group".into(),
                u.gid.to_string(),
                "--cwd".into(),
                u.home.clone(),
                "--env".into(),
                format!("HOME={}", u.home),
                "--env".into(),
                format!("XDG_RUNTIME_DIR=/run/user/{uid}"),
            ]);
            if let Some(name) = &u.name {
                args.extend([
                    "--env".into(),
                    format!("USER={name}"),
                    "--env".into(),
                    format!("LOGNAME={name}"),
                ]);
            }
        }
        args.push("--".into());
        args.extend(argv.iter().cloned());
        let mut cmd = self.command("lxc");
        cmd.args(&args);
        output(cmd, limit, None).await
    }

    /// The passwd entry of `uid` in the container (home `/` and gid = uid when there is none).
    async fn user_env(&mut self, uid: u32) -> UserEnv {
        if let Some((_, u)) = self.users.iter().find(|(id, _)| *id == uid) {
            return u.clone();
        }
        let argv = ["getent".to_string(), "passwd".into(), uid.to_string()];
        let found = match self.exec(&argv, None, Some(Duration::from_secs(30))).await {
            Ok(o) if o.ok() => parse_passwd(&o.stdout),
            _ => None,
        };
        let u = found.unwrap_or(UserEnv {
            name: None,
            gid: uid,
            home: "/".into(),
        });
        self.users.push((uid, u.clone()));
        u
    }

    /// `test_system_boots`: `systemctl is-system-running` says running or degraded in time.
    async fn wait_boot(&self, boot_timeout: Duration) -> Outcome {
        let end = Instant::now() + boot_timeout;
        let argv = ["systemctl".to_string(), "is-system-running".into()];
        let last = loop {
            let left = end.saturating_duration_since(Instant::now());
            let answer = match self
                .exec(&argv, None, Some(left.max(Duration::from_secs(5))))
                .await
            {
                Ok(o) => {
                    let state = o.stdout.trim().to_string();
                    if state == "running" || state == "degraded" {
                        if state == "degraded" {
                            self.log.info("the system is degraded; failed units:");
                            self.show(&["systemctl", "--failed", "--no-legend", "--plain"])
                                .await;
                        }
                        return Outcome::Passed;
                    }
                    if state.is_empty() {
                        o.describe()
                    } else {
                        state
                    }
                }
                Err(e) => e,
            };
            if Instant::now() + Duration::from_secs(1) >= end {
                break answer;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        self.log.info("jobs still queued and failed units:");
        self.show(&["systemctl", "list-jobs", "--no-legend"]).await;
        self.show(&["systemctl", "--failed", "--no-legend", "--plain"])
            .await;
        Outcome::Failed(format!(
            "the system was not running or degraded within {}s (last state: {last})",
            boot_timeout.as_secs()
        ))
    }

    /// Runs a diagnostic command in the container into the build log.
    async fn show(&self, argv: &[&str]) {
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        if let Ok(o) = self.exec(&argv, None, Some(Duration::from_secs(30))).await {
            o.log_to(&self.log, "out");
        }
    }

    async fn check(&mut self, check: &LxdCheck) -> Outcome {
        let user = match check.user {
            Some(uid) => Some((uid, self.user_env(uid).await)),
            None => None,
        };
        let retry_end = check.retry_for.map(|r| Instant::now() + r);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            // An attempt that hangs must not eat the retry window; without retries only the
            // build's timeout bounds it.
            let limit = retry_end.map(|end| {
                end.saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(5))
            });
            let as_user = user.as_ref().map(|(uid, u)| (*uid, u));
            let why = match self.exec(&check.run, as_user, limit).await {
                Ok(o) if o.ok() => return Outcome::Passed,
                Ok(o) => o.describe(),
                Err(e) => e,
            };
            match retry_end {
                Some(end) if Instant::now() + Duration::from_secs(1) < end => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                _ => {
                    let tries = if attempts > 1 {
                        format!(" (after {attempts} attempts)")
                    } else {
                        String::new()
                    };
                    return Outcome::Failed(format!("`{}`{tries}: {why}", check.run.join(" ")));
                }
            }
        }
    }

    /// Deletes the container and shuts the daemon down, each bounded in time.
    async fn stop(&mut self) {
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
async fn finish(daemon: Daemon) {
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

fn parse_passwd(line: &str) -> Option<UserEnv> {
    let fields: Vec<&str> = line.trim().split(':').collect();
    if fields.len() < 7 {
        return None;
    }
    let home = fields[5];
    Some(UserEnv {
        name: Some(fields[0].to_string()).filter(|n| !n.is_empty()),
        gid: fields[3].parse().ok()?,
        home: if home.starts_with('/') { home } else { "/" }.to_string(),
    })
}

/// Runs `cmd` to its end (or `limit`), keeping at most [`CAPTURE`] bytes of each stream.
async fn output(
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
fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... [{} more bytes]", &text[..end], text.len() - end)
}

fn report_xml(cases: &[Case]) -> String {
    let failures = cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
        .count();
    let skipped = cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::NotRun(_)))
        .count();
    let total: f64 = cases.iter().map(|c| c.secs).sum();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"{SUITE}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{total:.3}\">\n",
        cases.len()
    );
    for c in cases {
        let head = format!(
            "<testcase classname=\"{SUITE}\" name=\"{}\" time=\"{:.3}\"",
            xml_escape(&c.name),
            c.secs
        );
        match &c.outcome {
            Outcome::Passed => xml.push_str(&format!("{head}/>\n")),
            Outcome::Failed(why) => {
                let first = why.lines().next().unwrap_or("");
                xml.push_str(&format!(
                    "{head}><failure message=\"{}\">{}</failure></testcase>\n",
                    xml_escape(&bounded(first, 500)),
                    xml_escape(&bounded(why, SHOW_REPORT)).replace("&#10;", "\n")
                ));
            }
            Outcome::NotRun(why) => xml.push_str(&format!(
                "{head}><skipped message=\"{}\"/></testcase>\n",
                xml_escape(&bounded(why, 500))
            )),
        }
    }
    xml.push_str("</testsuite>\n</testsuites>\n");
    xml
}

/// Escapes text for XML attributes (and content); characters XML 1.0 cannot hold become
/// U+FFFD.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Mount points at or under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found.dedup();
    found
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c));
        if b[i] == b'\\' && octal {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts what the daemon left in its folder (its pool, `shmounts`, `devlxd`), then removes
/// the folder; never while something is still mounted in it (removal would cross into it).
fn remove_private_dir(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    for _ in 0..5 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            break;
        }
        for m in mounts {
            if let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) {
                // SAFETY: umount2(2) on a NUL-terminated path; touches no memory of ours.
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
    }
    let left = mounts_under(dir);
    if !left.is_empty() {
        return Err(format!("still mounted: {}", left[0].display()));
    }
    fs::remove_dir_all(dir).map_err(|e| e.to_string())
}

/// Removes the (empty) cgroups LXC made for `container` outside the daemon's cgroup: in the
/// hierarchies Slipway sets no limits in, LXC creates them beside Slipway's own. rmdir only
/// removes empty cgroups, so nothing in use is touched.
fn remove_container_cgroups(container: &str) {
    if container.is_empty() || container.contains('/') || container.contains("..") {
        return;
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let own_paths: Vec<&str> = own
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .map(|p| p.trim_start_matches('/'))
        .collect();
    for line in mounts.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = right.split(' ').next().unwrap_or("");
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let Some(mountpoint) = left.split(' ').nth(4) else {
            continue;
        };
        let mountpoint = PathBuf::from(unescape_mount(mountpoint));
        let bases =
            std::iter::once(mountpoint.clone()).chain(own_paths.iter().map(|p| mountpoint.join(p)));
        for base in bases {
            for kind in ["payload", "monitor"] {
                let dir = base.join(format!("lxc.{kind}.{container}"));
                if dir.is_dir() {
                    rmdir_tree(&dir);
                }
            }
        }
    }
}

fn rmdir_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Ends and removes what `lxd-test` builds of Slipway processes that are gone left behind:
/// their cgroups (the daemon and its containers, via [`cgroup::reap_orphans`]), the cgroups
/// LXC made beside them, the daemon's mounts and its folder. Returns the folders removed.
/// Called at every start (with the other orphans) and before each `lxd-test`.
pub fn reap_leftovers() -> Vec<String> {
    let Ok(entries) = fs::read_dir(ROOT) else {
        return Vec::new();
    };
    let mut stale = Vec::new();
    for e in entries.flatten() {
        let dir = e.path();
        if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        // A folder without an owner file is being created right now, or is not ours.
        let Ok(owner) = fs::read_to_string(dir.join("owner")) else {
            continue;
        };
        let mut lines = owner.lines();
        let tag = lines.next().unwrap_or("");
        if cgroup::owner_alive(tag) {
            continue;
        }
        stale.push((dir, lines.next().unwrap_or("").trim().to_string()));
    }
    if stale.is_empty() {
        return Vec::new();
    }
    // The processes first: nothing may still use the folder when it is unmounted and removed.
    cgroup::reap_orphans();
    let mut removed = Vec::new();
    for (dir, container) in stale {
        remove_container_cgroups(&container);
        match remove_private_dir(&dir) {
            Ok(()) => removed.push(dir.display().to_string()),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "cannot remove an LXD folder left behind: {e}")
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, outcome: Outcome) -> Case {
        Case {
            name: name.into(),
            outcome,
            secs: 1.5,
        }
    }

    #[test]
    fn report_counts_and_escapes() {
        let xml = report_xml(&[
            case("test_container_starts", Outcome::Passed),
            case(
                "test_system_boots",
                Outcome::Failed("state <starting> & \"x\"\nline 2\u{1}".into()),
            ),
            case(
                "test_sftp",
                Outcome::NotRun("the container did not start".into()),
            ),
        ]);
        let suites = crate::junit::parse(&xml, "t").unwrap();
        assert_eq!(suites.len(), 1);
        let s = &suites[0];
        assert_eq!(
            (s.name.as_str(), s.tests, s.failures, s.errors, s.skipped),
            ("ContainerTest", 3, 1, 0, 1)
        );
        assert!(xml.contains("message=\"state &lt;starting&gt; &amp; &quot;x&quot;\""));
        assert!(xml.contains("line 2\u{FFFD}"));
        assert!(xml.contains(
            "<testcase classname=\"ContainerTest\" name=\"test_container_starts\" time=\"1.500\"/>"
        ));
    }

    #[test]
    fn passwd_lines() {
        let u = parse_passwd("guest:x:1000:1001:,,,:/home/guest:/bin/bash\n").unwrap();
        assert_eq!(
            (u.name.as_deref(), u.gid, u.home.as_str()),
            (Some("guest"), 1001, "/home/guest")
        );
        assert!(parse_passwd("").is_none());
        assert!(parse_passwd("a:x:1:zz:::/bin/sh").is_none());
        assert_eq!(parse_passwd("a:x:1:2::home:/bin/sh").unwrap().home, "/");
    }

    #[test]
    fn bounded_cuts_on_char_boundaries() {
        assert_eq!(bounded("abc", 5), "abc");
        assert_eq!(bounded("ééé", 3), "é... [4 more bytes]");
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
        assert_eq!(unescape_mount("/end\\04"), "/end\\04");
    }
}
