//! The real LXD client reads the published image stream: served over HTTPS on 127.0.0.1 with a
//! self-signed certificate pinned in `$LXD_CONF/servercerts/<remote>.crt`, `lxc image list`
//! shows the aliases and `lxc image export` (which checks every sha256 and the combined
//! fingerprint) succeeds, and a daemon launches the image from the remote and boots it.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// An LXD daemon with a private LXD_DIR, shut down when dropped.
struct Daemon {
    child: Child,
    dir: std::path::PathBuf,
}

impl Daemon {
    fn start(dir: &std::path::Path) -> Daemon {
        let child = Command::new("lxd")
            .args(["--group", "root"])
            .env("LXD_DIR", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("lxd is not installed (Debian package lxd; scripts/setup-host.sh installs it)");
        let ready = Command::new("lxd")
            .args(["waitready", "--timeout", "60"])
            .env("LXD_DIR", dir)
            .status()
            .unwrap();
        assert!(ready.success(), "lxd did not start");
        Daemon {
            child,
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("lxd")
            .args(["shutdown", "--timeout", "60"])
            .env("LXD_DIR", &self.dir)
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn lxc_lists_and_exports_the_published_stream() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ex = d.join("ex");
    init_example(&ex);
    let run = json(&slipway(
        &ex,
        &["run", "guest_tools", "--milestone", "74", "--json"],
    ));
    assert_eq!(run["status"], "success", "{run}");
    let id = run["run_id"].as_i64().unwrap().to_string();
    let log = stdout(&slipway(&ex, &["logs", &id, "lxd_streams"]));
    let fingerprint = log
        .lines()
        .find_map(|l| l.split("fingerprint ").nth(1))
        .expect("the stream build logs the fingerprint")
        .trim()
        .to_string();

    let remote = StreamsRemote::serve(&ex.join("var/buckets/cros-containers-staging/74"), d);
    let lxc = |args: &[&str]| remote.lxc(args);
    let list = lxc(&["image", "list", "slipway:", "--format", "json"]);
    ok(&list);
    let images: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let image = &images[0];
    assert_eq!(image["fingerprint"], fingerprint.as_str());
    let aliases: Vec<&str> = image["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for alias in [
        "debian/bookworm",
        "debian/bookworm/default",
        "debian/bookworm/amd64",
    ] {
        assert!(aliases.contains(&alias), "{alias} missing from {aliases:?}");
    }
    let exported = remote.export("debian/bookworm", &d.join("export"));
    assert_eq!(exported.len(), 2, "metadata and rootfs: {exported:?}");

    // Through a daemon: LXD downloads the image from the remote (checking it) and boots it.
    let lxd_dir = d.join("lxd");
    let pool = d.join("pool");
    std::fs::create_dir_all(&lxd_dir).unwrap();
    std::fs::create_dir_all(&pool).unwrap();
    let _daemon = Daemon::start(&lxd_dir);
    let lxd = |args: &[&str]| {
        Command::new("lxc")
            .args(args)
            .env("LXD_CONF", remote.conf())
            .env("LXD_DIR", &lxd_dir)
            .env("HOME", d)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let preseed = format!(
        "storage_pools:\n- name: default\n  driver: dir\n  config:\n    source: {}\nprofiles:\n- name: default\n  devices:\n    root:\n      path: /\n      pool: default\n      type: disk\n",
        pool.display()
    );
    let mut init = Command::new("lxd")
        .args(["init", "--preseed"])
        .env("LXD_DIR", &lxd_dir)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut init.stdin.take().unwrap(), preseed.as_bytes()).unwrap();
    assert!(init.wait().unwrap().success(), "lxd init failed");
    ok(&lxd(&["launch", "slipway:debian/bookworm", "guest"]));
    let start = Instant::now();
    loop {
        let state = lxd(&["exec", "guest", "--", "systemctl", "is-system-running"]);
        let s = stdout(&state);
        if s.trim() == "running" || s.trim() == "degraded" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the container did not boot: {s}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let sftp = lxd(&[
        "exec",
        "guest",
        "--",
        "systemctl",
        "is-active",
        "cros-sftp.service",
    ]);
    assert_eq!(stdout(&sftp).trim(), "active");
    let _ = lxd(&["delete", "--force", "guest"]);
}

/// A process of the host: pid, kernel start time (so a reused pid is not mistaken for it),
/// command line and `LXD_DIR`.
#[derive(Debug, Clone)]
struct Proc {
    pid: i32,
    ppid: i32,
    start: u64,
    cmdline: String,
    lxd_dir: Option<String>,
}

fn procs() -> Vec<Proc> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        if fields.first() == Some(&"Z") {
            continue; // a zombie is dead; only its parent has not reaped it yet
        }
        let (Some(ppid), Some(start)) = (
            fields.get(1).and_then(|f| f.parse().ok()),
            fields.get(19).and_then(|f| f.parse().ok()),
        ) else {
            continue;
        };
        let read = |f: &str| {
            std::fs::read(format!("/proc/{pid}/{f}"))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let cmdline = read("cmdline").replace('\0', " ").trim().to_string();
        let lxd_dir = read("environ")
            .split('\0')
            .find_map(|v| v.strip_prefix("LXD_DIR=").map(str::to_string));
        out.push(Proc {
            pid,
            ppid,
            start,
            cmdline,
            lxd_dir,
        });
    }
    out
}

/// Processes of the private LXD in `folder`: the daemon and its helpers (their `LXD_DIR`), the
/// container's monitor (`[lxc monitor] <folder>/lxd/containers <name>`) and everything below it
/// (`lxc-start`, the container's systemd and its services).
fn lxd_processes(folder: &str) -> Vec<Proc> {
    let all = procs();
    let mut found: Vec<Proc> = all
        .iter()
        .filter(|p| {
            p.cmdline.contains(folder)
                || p.lxd_dir.as_deref().is_some_and(|d| d.starts_with(folder))
        })
        .cloned()
        .collect();
    loop {
        let more: Vec<Proc> = all
            .iter()
            .filter(|p| {
                found.iter().any(|f| f.pid == p.ppid) && !found.iter().any(|f| f.pid == p.pid)
            })
            .cloned()
            .collect();
        if more.is_empty() {
            break;
        }
        found.extend(more);
    }
    found
}

/// A Slipway killed with SIGKILL while `lxd_test` runs leaves its private LXD daemon and the
/// container running (nothing of Slipway's ran to stop them); the next command, whatever it is,
/// ends them through their cgroup, removes the daemon's folder, and marks the run interrupted.
#[test]
fn a_killed_slipway_leaves_no_lxd_daemon_or_container() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("ex");
    init_example(&ex);
    let err_file = dir.path().join("run.err");
    let mut run = Killed(
        slipway_cmd(&ex, &["run", "guest_tools", "--milestone", "74"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_file).unwrap())
            .spawn()
            .unwrap(),
    );
    let slipway_pid = run.0.id() as i32;

    // Wait until lxd_test's daemon (a child of this slipway) has its container up.
    let start = Instant::now();
    let (folder, before) = loop {
        if let Some(status) = run.0.try_wait().unwrap() {
            panic!(
                "slipway ended ({status}) before lxd_test's container was up:\n{}",
                std::fs::read_to_string(&err_file).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(20 * 60),
            "lxd_test's container did not come up within 20 minutes"
        );
        let daemon = procs()
            .into_iter()
            .find(|p| p.ppid == slipway_pid && p.cmdline.starts_with("lxd --group root"));
        if let Some(folder) = daemon
            .and_then(|d| d.lxd_dir)
            .and_then(|d| d.strip_suffix("/lxd").map(str::to_string))
        {
            let found = lxd_processes(&folder);
            let monitor = found
                .iter()
                .find(|p| p.cmdline.starts_with("[lxc monitor]"));
            // The container is up: its init runs under the monitor. (Not later: the checks
            // take only seconds once it has booted.)
            let up = monitor.is_some_and(|m| found.iter().any(|init| init.ppid == m.pid));
            if up {
                break (folder, found);
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        folder.starts_with("/var/lib/slipway/lxd/"),
        "private folder {folder}"
    );
    run.0.kill().unwrap(); // SIGKILL: no cleanup of Slipway's runs
    run.0.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // The daemon outlives a killed Slipway until the next start (unless another test's
    // slipway, starting meanwhile, has already ended it).
    let survivors = lxd_processes(&folder);
    if !survivors
        .iter()
        .any(|p| p.cmdline.starts_with("lxd --group root"))
    {
        eprintln!("note: the daemon was already ended before this test's next command");
    }

    // Any command starts by ending what killed Slipways left.
    let runs = json(&slipway(&ex, &["runs", "--json"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: Vec<Proc> = lxd_processes(&folder)
            .into_iter()
            .chain(
                procs()
                    .into_iter()
                    .filter(|p| before.iter().any(|b| b.pid == p.pid && b.start == p.start)),
            )
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processes of the killed run's LXD are still running: {left:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !std::path::Path::new(&folder).exists(),
        "{folder} was not removed"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&folder), "{folder} still has mounts");

    assert_eq!(runs[0]["status"], "interrupted", "{runs}");
    let id = runs[0]["id"]
        .as_i64()
        .or_else(|| runs[0]["run_id"].as_i64())
        .unwrap_or_else(|| panic!("no run id in {runs}"))
        .to_string();
    let shown = json(&slipway(&ex, &["show", &id, "--json"]));
    let lxd_test = shown["builds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "lxd_test")
        .unwrap_or_else(|| panic!("no lxd_test in {shown}"));
    assert_eq!(lxd_test["status"], "interrupted", "{shown}");
}
