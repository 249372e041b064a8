//! The sandbox holds untrusted code: a malicious change's build script tries every attack the
//! issue lists (and more), in an untrusted presubmit run and in a trusted run, from a project
//! under a 0700 folder; runaway steps (a double-forked daemon, a fork bomb, a memory hog) end
//! with a clear error and nothing left running; a killed Slipway leaves nothing behind.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// Host ids of the sandbox ranges (trusted first, untrusted after): the defaults of
/// `[sandbox] id_base`.
const TRUSTED_ROOT: u32 = 2_100_000_000;
const UNTRUSTED_ROOT: u32 = TRUSTED_ROOT + 65_536;
const RANGE_END: u32 = TRUSTED_ROOT + 2 * 65_536;

const ATTACK: &str = include_str!("sandbox/attack.sh");

/// Every attack the script makes, and whether a step of that kind of run may do it.
const EXPECTED: &[(&str, bool, bool)] = &[
    // (name, allowed when untrusted, allowed when trusted with network = true)
    ("read_signing_key", false, false),
    ("find_keys", false, false),
    ("read_state_db", false, false),
    ("read_service_environ", false, false),
    ("write_production_bucket", false, false),
    ("write_staging_bucket", false, false),
    ("write_cas", false, false),
    ("create_cas_object", false, false),
    ("write_trusted_cache", false, false),
    ("write_repo_git", false, false),
    ("write_config", false, false),
    ("write_base_image", false, false),
    ("write_var_cache_slipway", false, false),
    ("write_other_workspace", false, false),
    ("hard_link_key", false, false),
    ("lxd_socket", false, false),
    ("proc_1_root", false, false),
    ("tcp_loopback", false, true),
    ("signal_outside", false, false),
    ("ptrace_outside", false, false),
    ("mount_tmpfs", false, false),
    ("chroot_escape", false, false),
    ("host_root", false, false),
    ("my_cache", true, true),
];

/// Processes whose host uid lies in the sandbox ranges and that belong to the project in
/// `dir` (their environment names it: tests run side by side).
fn sandbox_processes(dir: &Path) -> Vec<(i32, u32, String)> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let uid: u32 = status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|u| u.parse().ok())
            .unwrap_or(0);
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let ours = environ
            .windows(needle.len())
            .any(|w| w == needle.as_bytes());
        if (TRUSTED_ROOT..RANGE_END).contains(&uid) && ours {
            let cmd = std::fs::read_to_string(entry.path().join("cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            found.push((pid, uid, cmd));
        }
    }
    found
}

/// Host uids (real, effective, saved, fs) of processes whose command line holds `marker`.
fn host_uids_of(marker: &str) -> Option<Vec<u32>> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let cmd = std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
        if cmd.contains(marker) && !cmd.contains("attack.sh") {
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            return Some(
                line.split_whitespace()
                    .skip(1)
                    .filter_map(|u| u.parse().ok())
                    .collect(),
            );
        }
    }
    None
}

struct Attack {
    project: tempfile::TempDir,
    listener: TcpListener,
    _socket: UnixListener,
    socket_dir: PathBuf,
}

impl Drop for Attack {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.socket_dir);
    }
}

/// The example with a malicious change: `scripts/build-debs.sh` runs the attack script first
/// (and then fails, so the run stops there); a trusted manual job runs the same script in a
/// build that may use the network.
fn malicious_example() -> Attack {
    // A 0700 folder under the home folder (/root in CI), not under /tmp: a sandbox has its own
    // /tmp, where a write would land harmlessly and look like success to the script.
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let project = tempfile::Builder::new()
        .prefix("slipway-attack")
        .tempdir_in(home)
        .unwrap();
    let dir = project.path();
    init_example(dir);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    // A daemon socket as a concurrent run's private LXD would have it.
    let socket_dir = PathBuf::from(format!(
        "/var/lib/slipway/lxd/attack-test-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&socket_dir).unwrap();
    let socket_path = socket_dir.join("unix.socket");
    let _ = std::fs::remove_file(&socket_path);
    let socket = UnixListener::bind(&socket_path).unwrap();
    // Another run's workspace with an artifact in it.
    let other = dir.join(".slipway/runs/999/builds/other/work");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("artifact.txt"), "ORIGINAL\n").unwrap();

    let script = ATTACK
        .replace("@PROJECT@", &dir.display().to_string())
        .replace("@PORT@", &port.to_string())
        .replace("@SOCKET@", &socket_path.display().to_string())
        .replace("@TESTPID@", &std::process::id().to_string());
    let repo = dir.join("repo");
    std::fs::write(repo.join("scripts/attack.sh"), &script).unwrap();
    // Untrusted: the presubmit's guest_tools build runs the attack, then fails.
    let debs = repo.join("scripts/build-debs.sh");
    let original = std::fs::read_to_string(&debs).unwrap();
    std::fs::write(
        &debs,
        original.replacen(
            "set -eu\n",
            "set -eu\nsh scripts/attack.sh\npython3 -c 'import time; time.sleep(3)' uid-probe-untrusted\nexit 1\n",
            1,
        ),
    )
    .unwrap();
    // Trusted: a manual job whose build may use the network.
    let builds = repo.join(".slipway/builds.toml");
    let mut text = std::fs::read_to_string(&builds).unwrap();
    text.push_str(
        "\n[builds.net_attack]\nnetwork = true\nsteps = [\"sh scripts/attack.sh\", \"python3 -c 'import time; time.sleep(3)' uid-probe-trusted\"]\n",
    );
    std::fs::write(&builds, text).unwrap();
    git(&repo, &["add", "--all"]);
    git(
        &repo,
        &["commit", "--quiet", "-m", "an innocent-looking change"],
    );
    let mut service = std::fs::read_to_string(dir.join("slipway.toml")).unwrap();
    service.push_str(
        "\n[jobs.trusted-attack]\ntrigger = \"manual\"\nbranches = [\"main\"]\nbuilds = [\"net_attack\"]\n",
    );
    std::fs::write(dir.join("slipway.toml"), service).unwrap();
    Attack {
        project,
        listener,
        _socket: socket,
        socket_dir,
    }
}

/// Runs the job with a canary in Slipway's own environment; returns (run id, uids seen from
/// outside while the step ran, the guest_tools log).
fn run_attack(a: &Attack, job: &str, build: &str, probe: &str) -> (String, Vec<u32>, String) {
    let dir = a.project.path();
    let mut child = slipway_cmd(dir, &["run", job, "--milestone", "74", "--json"])
        .env("SLIPWAY_TEST_CANARY", "canary-in-the-service-environment")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut uids = None;
    while start.elapsed() < Duration::from_secs(120) && uids.is_none() {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        uids = host_uids_of(probe);
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    child.wait().unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{err}"));
    let run_id = v["run_id"].to_string();
    let log = stdout(&slipway(dir, &["logs", &run_id, build]));
    (run_id, uids.unwrap_or_default(), log)
}

fn attack_results(log: &str) -> BTreeMap<String, String> {
    log.lines()
        .filter_map(|l| l.split_once("ATTACK "))
        .filter_map(|(_, rest)| rest.split_once(": "))
        .map(|(name, verdict)| (name.to_string(), verdict.to_string()))
        .collect()
}

fn assert_untouched(dir: &Path) {
    for p in [
        "var/buckets/cros-packages/pwned",
        "var/buckets/cros-packages-staging/74/pwned",
        ".slipway/cas/sha256/00/pwned",
        ".slipway/cache/builds/crostini-guest/trusted/lxd_container/pwned",
        "repo/.git/pwned",
    ] {
        assert!(!dir.join(p).exists(), "{p} was written");
    }
    assert!(
        !std::fs::read_to_string(dir.join("slipway.toml"))
            .unwrap()
            .contains("pwned")
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(".slipway/runs/999/builds/other/work/artifact.txt"))
            .unwrap(),
        "ORIGINAL\n"
    );
    assert!(!Path::new("/var/cache/slipway/pwned").exists());
    // Every stored artifact still has the bytes its name says.
    for entry in walk(&dir.join(".slipway/cas")) {
        let bytes = std::fs::read(&entry).unwrap();
        let name = entry.file_name().unwrap().to_string_lossy().to_string();
        if name.len() == 64 {
            use sha2::Digest;
            assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), name, "{entry:?}");
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                files.push(e.path());
            }
        }
    }
    files
}

/// The key's bytes in any form (armored lines, the whole file as base64 or hex) appear in no
/// log, artifact, bucket object or workspace Slipway kept.
fn assert_secret_nowhere(dir: &Path) {
    use base64_like::encode as b64;
    let key = std::fs::read(dir.join("var/secrets/apt-signing.asc")).unwrap();
    let text = String::from_utf8_lossy(&key).to_string();
    let mut needles: Vec<Vec<u8>> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.len() >= 24 && !l.starts_with("-----"))
        .map(|l| l.as_bytes().to_vec())
        .collect();
    needles.push(hex::encode(&key).into_bytes()[..64].to_vec());
    needles.push(b64(&key).into_bytes()[..64].to_vec());
    assert!(needles.len() >= 3);
    for root in [dir.join(".slipway"), dir.join("var/buckets")] {
        for file in walk(&root) {
            if file.ends_with("state.db") {
                continue;
            }
            let bytes = std::fs::read(&file).unwrap_or_default();
            for n in &needles {
                assert!(
                    !bytes.windows(n.len()).any(|w| w == n.as_slice()),
                    "secret material found in {}",
                    file.display()
                );
            }
        }
    }
}

/// A tiny standard base64 encoder, so the test needs no extra crate.
mod base64_like {
    pub fn encode(data: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

#[test]
fn a_malicious_change_reaches_nothing() {
    let a = malicious_example();
    let dir = a.project.path().to_path_buf();

    // Untrusted: presubmit on main.
    let (_, uids, log) = run_attack(&a, "presubmit", "guest_tools", "uid-probe-untrusted");
    assert!(log.contains("attacks done"), "{log}");
    assert_eq!(
        uids,
        vec![UNTRUSTED_ROOT; 4],
        "the untrusted step's host uids (real, effective, saved, fs) seen from outside"
    );
    assert!(
        log.contains("host uid check: 0"),
        "root inside the sandbox: {log}"
    );
    let results = attack_results(&log);
    for (name, allowed_untrusted, _) in EXPECTED {
        let verdict = results
            .get(*name)
            .unwrap_or_else(|| panic!("attack {name} did not run:\n{log}"));
        assert_eq!(
            !verdict.starts_with("blocked"),
            *allowed_untrusted,
            "untrusted attack {name}: {verdict}"
        );
    }
    assert!(
        a.listener.accept().is_err(),
        "an untrusted step connected to a listener on the host's loopback"
    );

    // Trusted, with the network allowed by its builds file: only the network and its own
    // cache are reachable.
    let (_, uids, log) = run_attack(&a, "trusted-attack", "net_attack", "uid-probe-trusted");
    assert_eq!(uids, vec![TRUSTED_ROOT; 4], "{log}");
    let results = attack_results(&log);
    for (name, _, allowed_trusted) in EXPECTED {
        let verdict = results
            .get(*name)
            .unwrap_or_else(|| panic!("attack {name} did not run:\n{log}"));
        assert_eq!(
            !verdict.starts_with("blocked"),
            *allowed_trusted,
            "trusted attack {name}: {verdict}"
        );
    }

    // The daemons each run left tried to write 4 s later: nothing of them is left.
    std::thread::sleep(Duration::from_secs(6));
    for (trust, build) in [("trusted", "net_attack"), ("untrusted", "guest_tools")] {
        let late = dir.join(format!(
            ".slipway/cache/builds/crostini-guest/{trust}/{build}/late-write"
        ));
        assert!(!late.exists(), "a {trust} step's daemon outlived it");
    }
    let left = sandbox_processes(&dir);
    assert!(
        left.is_empty(),
        "sandboxed processes left running: {left:?}"
    );

    assert_untouched(&dir);
    assert_secret_nowhere(&dir);
    // An untrusted job cannot switch the sandbox or the network on by editing its builds file.
    let repo = dir.join("repo");
    let builds = repo.join(".slipway/builds.toml");
    let text = std::fs::read_to_string(&builds).unwrap();
    for (edit, expect) in [
        ("sandbox = false", "untrusted code always runs sandboxed"),
        ("network = true", "does not allow it"),
    ] {
        std::fs::write(
            &builds,
            text.replacen(
                "[builds.guest_tools]\n",
                &format!("[builds.guest_tools]\n{edit}\n"),
                1,
            ),
        )
        .unwrap();
        git(&repo, &["commit", "--quiet", "-am", edit]);
        let out = slipway(&dir, &["run", "presubmit", "--milestone", "74"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains(expect), "{}", stderr(&out));
        git(&repo, &["reset", "--quiet", "--hard", "HEAD~1"]);
    }
}

fn runaway_project(body: &str) -> Project {
    Project::new(
        &format!("[jobs.j]\ntrigger = \"manual\"\nbranches = \"active\"\nbuilds = [\"b\"]\n{body}"),
        &[],
    )
}

#[test]
fn runaway_steps_end_cleanly_and_leave_nothing() {
    // A double-forked daemon: the step succeeds, the daemon dies with it.
    let p = runaway_project(
        "[builds.b]\nsteps = [\"setsid sh -c 'sleep 3; echo late > $SLIPWAY_CACHE/late' > /dev/null 2>&1 & echo started\"]\n",
    );
    let out = p.run(&["run", "j", "--milestone", "1", "--json"]);
    assert_eq!(json(&out)["status"], "success", "{}", stderr(&out));
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !p.path()
            .join(".slipway/cache/builds/t/trusted/b/late")
            .exists()
    );
    assert!(sandbox_processes(p.path()).is_empty());

    // A fork bomb meets the pids limit and then the timeout; nothing is left.
    let p = runaway_project(
        "[builds.b]\ntimeout = \"6s\"\nresources = { pids = 64 }\nsteps = ['''python3 -c \"\nimport os\nwhile True:\n    try: os.fork()\n    except OSError: pass\n\"''']\n",
    );
    let start = Instant::now();
    let out = p.run(&["run", "j", "--milestone", "1", "--json"]);
    assert!(start.elapsed() < Duration::from_secs(40));
    let v = json(&out);
    assert_eq!(v["status"], "failure");
    let err = v["error"].as_str().unwrap();
    assert!(err.contains("timed out after 6s"), "{err}");
    assert!(err.contains("process limit (64) was reached"), "{err}");
    assert!(
        sandbox_processes(p.path()).is_empty(),
        "{:?}",
        sandbox_processes(p.path())
    );

    // A memory hog is killed at its limit, and the error says why.
    let p = runaway_project(
        "[builds.b]\nresources = { memory = \"64M\" }\nsteps = [\"python3 -c 'x = b\\\"x\\\" * (1 << 30)'\"]\n",
    );
    let v = json(&p.run(&["run", "j", "--milestone", "1", "--json"]));
    assert_eq!(v["status"], "failure");
    let err = v["error"].as_str().unwrap();
    assert!(err.contains("memory limit (64 MiB) was reached"), "{err}");
    assert!(sandbox_processes(p.path()).is_empty());
}

#[test]
fn a_killed_slipway_leaves_no_sandboxed_process() {
    let p = runaway_project("[builds.b]\nsteps = [\"setsid sleep 300 & sleep 300\"]\n");
    let mut child = slipway_cmd(p.path(), &["run", "j", "--milestone", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while sandbox_processes(p.path())
        .iter()
        .filter(|(_, _, c)| c.contains("sleep 300"))
        .count()
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the step never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup in Slipway runs
    child.wait().unwrap();
    let runs = json(&p.run(&["runs", "--json"]));
    assert_eq!(runs[0]["status"], "interrupted", "{runs}");
    let left = sandbox_processes(p.path());
    assert!(left.is_empty(), "left after recovery: {left:?}");
}

#[test]
fn doctor_reports_the_cgroup_layout_and_a_working_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let out = slipway(dir.path(), &["doctor"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("hybrid cgroups") || text.contains("cgroup v2 at"),
        "{text}"
    );
    assert!(text.contains("sandbox: works"), "{text}");
}
