//! The executor through the real binary: failures, parallelism, timeouts, cancel, crash
//! recovery, artifacts, and bad input.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn job(builds: &[&str]) -> String {
    format!("[jobs.j]\ntrigger = \"manual\"\nbranches = \"active\"\nbuilds = {builds:?}\n")
}

#[test]
fn failing_step_fails_the_run_and_skips_dependents_only() {
    let p = Project::new(
        &format!(
            "{}\n[builds.ok]\nsteps = [\"true\"]\n[builds.bad]\nsteps = [\"echo about to fail\", \"exit 3\", \"echo never\"]\n[builds.after_bad]\nneeds = [\"bad\"]\nsteps = [\"true\"]\n[builds.after_ok]\nneeds = [\"ok\"]\nsteps = [\"true\"]\n",
            job(&["ok", "bad", "after_bad", "after_ok"])
        ),
        &[],
    );
    let out = p.run(&["run", "j", "--milestone", "1", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["status"], "failure");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("build 'bad' failed: step 2 (`exit 3`) exited with status 3"),
        "{v}"
    );
    let status = |name: &str| {
        v["builds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status("ok"), "success");
    assert_eq!(status("bad"), "failure");
    assert_eq!(status("after_bad"), "skipped");
    assert_eq!(status("after_ok"), "success");

    let run_id = v["run_id"].as_i64().unwrap().to_string();
    let logs = stdout(&p.run(&["logs", &run_id, "bad"]));
    assert!(logs.contains("out | about to fail"), "{logs}");
    assert!(!logs.contains("never"), "{logs}");
    let shown = json(&p.run(&["show", &run_id, "--json"]));
    let bad = shown["builds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "bad")
        .unwrap()
        .clone();
    assert_eq!(bad["steps"][1]["exit_code"], 3);
    let runs = json(&p.run(&["runs", "--json"]));
    assert_eq!(runs[0]["status"], "failure");
}

#[test]
fn independent_builds_run_in_parallel() {
    // Each build waits for the other's marker: this only finishes if both run at once.
    let p = Project::new("", &[]);
    let shared = p.shared();
    let step = |me: &str, other: &str| {
        format!(
            "touch $SHARED/{me}; i=0; while [ ! -e $SHARED/{other} ]; do i=$((i+1)); [ $i -gt 100 ] && exit 9; sleep 0.05; done"
        )
    };
    let body = format!(
        "{}\n[builds.a]\nsteps = [\"{}\"]\nsandbox = false\nenv = {{ SHARED = \"{s}\" }}\n[builds.b]\nsteps = [\"{}\"]\nsandbox = false\nenv = {{ SHARED = \"{s}\" }}\n",
        job(&["a", "b"]),
        step("a", "b"),
        step("b", "a"),
        s = shared.display()
    );
    std::fs::write(
        p.path().join("slipway.toml"),
        format!("{SERVICE_HEAD}\n{body}"),
    )
    .unwrap();
    let out = p.run(&["run", "j", "--milestone", "1", "--jobs", "2", "--json"]);
    assert_eq!(json(&out)["status"], "success", "{}", stderr(&out));

    // With one slot the same DAG cannot finish: the first build gives up waiting.
    std::fs::remove_dir_all(&shared).unwrap();
    p.shared();
    let out = p.run(&["run", "j", "--milestone", "1", "--jobs", "1", "--json"]);
    assert_eq!(json(&out)["status"], "failure");
}

fn background_sleeper(p: &Project, timeout: &str) -> std::path::PathBuf {
    let shared = p.shared();
    let body = format!(
        "{}\n[builds.hang]\nsteps = [\"sleep 300 & echo $! > $SHARED/pid; wait\"]\ntimeout = \"{timeout}\"\nsandbox = false\nenv = {{ SHARED = \"{}\" }}\n",
        job(&["hang"]),
        shared.display()
    );
    std::fs::write(
        p.path().join("slipway.toml"),
        format!("{SERVICE_HEAD}\n{body}"),
    )
    .unwrap();
    shared.join("pid")
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let p = Project::new("", &[]);
    let pid_file = background_sleeper(&p, "1s");
    let start = Instant::now();
    let out = p.run(&["run", "j", "--milestone", "1", "--json"]);
    assert!(start.elapsed() < Duration::from_secs(20));
    let v = json(&out);
    assert_eq!(v["status"], "failure");
    assert!(
        v["error"].as_str().unwrap().contains("timed out after 1s"),
        "{v}"
    );
    let pid = read_pid(&pid_file);
    assert!(
        !pid_alive(pid),
        "background child {pid} survived the timeout"
    );
}

#[test]
fn ctrl_c_cancels_the_run_and_kills_children() {
    let p = Project::new("", &[]);
    let pid_file = background_sleeper(&p, "10m");
    let child = slipway_cmd(p.path(), &["run", "j", "--milestone", "1", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for(&pid_file, Duration::from_secs(20)),
        "step never started"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["status"], "cancelled");
    assert_eq!(v["builds"][0]["status"], "cancelled");
    assert!(
        !pid_alive(read_pid(&pid_file)),
        "background child survived cancel"
    );
}

#[test]
fn a_crashed_run_is_marked_interrupted_and_its_processes_ended() {
    let p = Project::new("", &[]);
    let pid_file = background_sleeper(&p, "10m");
    let mut child = slipway_cmd(p.path(), &["run", "j", "--milestone", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(&pid_file, Duration::from_secs(20)),
        "step never started"
    );
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL: no cleanup runs
    child.wait().unwrap();
    let orphan = read_pid(&pid_file);

    let runs = json(&p.run(&["runs", "--json"]));
    assert_eq!(runs[0]["status"], "interrupted", "{runs}");
    let shown = json(&p.run(&["show", "1", "--json"]));
    assert_eq!(shown["builds"][0]["status"], "interrupted");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !pid_alive(orphan),
        "the crashed run's step {orphan} is still running"
    );
}

#[test]
fn artifacts_are_collected_stripped_deduplicated_and_exported() {
    let p = Project::new(
        &format!(
            "{}\n[builds.make]\nsteps = [\"mkdir -p out/x && echo same > out/x/a.txt && echo same > out/x/b.txt && echo other > out/x/c.bin\"]\nartifacts = [{{ glob = \"out/x/*.txt\", strip_prefix = \"out/\" }}]\n[builds.use]\nneeds = [\"make\"]\nsteps = [\"cat $SLIPWAY_INPUTS/make/x/a.txt $SLIPWAY_INPUTS/make/x/b.txt > both\", \"test ! -e $SLIPWAY_INPUTS/make/x/c.bin\"]\nartifacts = [{{ glob = \"both\" }}]\n",
            job(&["make", "use"])
        ),
        &[],
    );
    let v = json(&p.run(&["run", "j", "--milestone", "1", "--json"]));
    assert_eq!(v["status"], "success", "{v}");
    let arts = v["builds"][0]["artifacts"].as_array().unwrap();
    let paths: Vec<_> = arts.iter().map(|a| a["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["x/a.txt", "x/b.txt"]);
    assert_eq!(arts[0]["sha256"], arts[1]["sha256"]);
    assert_eq!(arts[0]["size"], 5);
    // Identical content is stored once.
    let sha = arts[0]["sha256"].as_str().unwrap();
    let objects: Vec<_> = walk(&p.path().join(".slipway/cas/sha256"))
        .into_iter()
        .filter(|f| f.ends_with(sha))
        .collect();
    assert_eq!(objects.len(), 1);

    let export = p.path().join("exported");
    let out = p.run(&[
        "artifacts",
        "1",
        "use",
        "--export",
        export.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(export.join("both")).unwrap(),
        "same\nsame\n"
    );
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn an_empty_artifact_glob_fails_unless_allowed() {
    let p = Project::new(
        &format!(
            "{}\n[builds.a]\nsteps = [\"true\"]\nartifacts = [{{ glob = \"out/*.deb\" }}]\n[builds.b]\nsteps = [\"true\"]\nallow_empty = true\nartifacts = [{{ glob = \"out/*.deb\" }}]\n",
            job(&["a", "b"])
        ),
        &[],
    );
    let v = json(&p.run(&["run", "j", "--milestone", "1", "--json"]));
    assert_eq!(v["builds"][0]["status"], "failure");
    assert!(
        v["builds"][0]["error"]
            .as_str()
            .unwrap()
            .contains("matched no files"),
        "{v}"
    );
    assert_eq!(v["builds"][1]["status"], "success");
}

#[test]
fn builds_cannot_collect_files_from_outside_their_workspace() {
    let p = Project::new(
        &format!(
            "{}\n[builds.a]\nsteps = [\"ln -s /etc/passwd leak.txt\"]\nartifacts = [{{ glob = \"*.txt\" }}]\n",
            job(&["a"])
        ),
        &[],
    );
    let v = json(&p.run(&["run", "j", "--milestone", "1", "--json"]));
    assert_eq!(v["status"], "failure");
    assert!(
        v["builds"][0]["error"]
            .as_str()
            .unwrap()
            .contains("outside the workspace"),
        "{v}"
    );

    for bad in [
        "{ glob = \"../*\" }",
        "{ glob = \"out/*\", strip_prefix = \"../..\" }",
    ] {
        let p = Project::new(
            &format!(
                "{}\n[builds.a]\nsteps = [\"true\"]\nartifacts = [{bad}]\n",
                job(&["a"])
            ),
            &[],
        );
        let out = p.run(&["run", "j", "--milestone", "1"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("must not contain '..'"),
            "{}",
            stderr(&out)
        );
        // Nothing was recorded for a config that does not load.
        assert!(stdout(&p.run(&["runs"])).contains("no runs yet"));
    }
}

#[test]
fn bad_config_and_sources_give_clear_errors() {
    let p = Project::new(&job(&["a"]), &[]);
    std::fs::write(
        p.path().join("slipway.toml"),
        "[project]\nname = \"t\"\nrepo = \"repo\"\n[jobs.j\n",
    )
    .unwrap();
    let out = p.run(&["validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("slipway.toml:4:"), "{}", stderr(&out));

    // A job listing an unknown build: the position of the name in the job.
    std::fs::write(
        p.path().join("slipway.toml"),
        format!("{SERVICE_HEAD}\n{}", job(&["a", "ghost"])) + "[builds.a]\nsteps = [\"true\"]\n",
    )
    .unwrap();
    let out = p.run(&["validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("slipway.toml:14:16: job 'j' lists build 'ghost', which is not defined"),
        "{}",
        stderr(&out)
    );

    // Missing repo.
    std::fs::write(
        p.path().join("slipway.toml"),
        format!(
            "{}\n{}[builds.a]\nsteps = [\"true\"]\n",
            SERVICE_HEAD.replace("repo = \"repo\"", "repo = \"nowhere\""),
            job(&["a"])
        ),
    )
    .unwrap();
    let out = p.run(&["run", "j", "--milestone", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nowhere: does not exist"),
        "{}",
        stderr(&out)
    );

    // A branch that does not exist in the repo.
    std::fs::write(
        p.path().join("slipway.toml"),
        format!(
            "{}\n{}[builds.a]\nsteps = [\"true\"]\n",
            SERVICE_HEAD.replace("branch = \"main\"", "branch = \"release-R1\""),
            job(&["a"])
        ),
    )
    .unwrap();
    let out = p.run(&["run", "j", "--milestone", "1"]);
    assert!(
        stderr(&out).contains("branch 'release-R1' does not exist"),
        "{}",
        stderr(&out)
    );

    // An unknown commit.
    std::fs::write(
        p.path().join("slipway.toml"),
        format!(
            "{SERVICE_HEAD}\n{}[builds.a]\nsteps = [\"true\"]\n",
            job(&["a"])
        ),
    )
    .unwrap();
    let out = p.run(&["run", "j", "--milestone", "1", "--commit", "deadbeef"]);
    assert!(
        stderr(&out).contains("no commit 'deadbeef'"),
        "{}",
        stderr(&out)
    );
    let out = p.run(&["run", "j", "--milestone", "9"]);
    assert!(
        stderr(&out).contains("milestone 9 is not in the branch table"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn secrets_reach_only_declaring_builds_and_never_the_log() {
    let p = Project::new("", &[]);
    let secret = p.path().join("key.txt");
    write_secret(&secret, "s3cr3t-value-123\n");
    let body = format!(
        "[secrets]\nkey = {{ file = \"key.txt\" }}\n{}\n[builds.signer]\nprivileged = true\nsecrets = [\"key\"]\nsteps = [\"cat $SLIPWAY_SECRETS/key\", \"test \\\"$(stat -c %a $SLIPWAY_SECRETS/key)\\\" = 600\"]\n[builds.plain]\nsteps = [\"test -z \\\"$SLIPWAY_SECRETS\\\"\", \"env\"]\n",
        job(&["signer", "plain"])
    );
    std::fs::write(
        p.path().join("slipway.toml"),
        format!("{SERVICE_HEAD}\n{body}"),
    )
    .unwrap();
    let v = json(&p.run(&["run", "j", "--milestone", "1", "--json"]));
    assert_eq!(v["status"], "success", "{v}");
    let log = stdout(&p.run(&["logs", "1", "signer"]));
    assert!(!log.contains("s3cr3t-value-123"), "{log}");
    assert!(log.contains("[secret]"), "{log}");
    let env = stdout(&p.run(&["logs", "1", "plain"]));
    assert!(
        env.contains("SLIPWAY_MILESTONE=1")
            && env.contains("SLIPWAY_FLOW=manual")
            && env.contains("/cache/builds/t/trusted/plain"),
        "{env}"
    );
    // The secrets folder is gone after the build.
    assert!(
        !walk(&p.path().join(".slipway/runs"))
            .iter()
            .any(|f| f.contains("/secrets/"))
    );
}

#[test]
fn logs_follow_streams_until_the_build_ends() {
    let p = Project::new("", &[]);
    let shared = p.shared();
    let body = format!(
        "{}\n[builds.slow]\nsteps = [\"echo first; echo 1 > $SHARED/started; sleep 1; echo second; sleep 1; echo third\"]\nsandbox = false\nenv = {{ SHARED = \"{}\" }}\n",
        job(&["slow"]),
        shared.display()
    );
    std::fs::write(
        p.path().join("slipway.toml"),
        format!("{SERVICE_HEAD}\n{body}"),
    )
    .unwrap();
    let run = slipway_cmd(p.path(), &["run", "j", "--milestone", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(&shared.join("started"), Duration::from_secs(20)));
    let follow = p.run(&["logs", "1", "slow", "--follow"]);
    let text = stdout(&follow);
    assert!(follow.status.success(), "{}", stderr(&follow));
    let first = text.find("out | first").expect("first line");
    let third = text
        .find("out | third")
        .expect("third line: --follow stopped early");
    assert!(first < third);
    assert!(text.contains("step 1 ended: success"), "{text}");
    let mut run = run;
    assert!(run.wait().unwrap().success());
}

#[test]
fn junit_reports_are_recorded_as_suite_results() {
    let report = "<testsuites><testsuite name=\\\"ContainerTest\\\"><testcase name=\\\"a\\\"/><testcase name=\\\"b\\\"><failure>inactive</failure></testcase></testsuite></testsuites>";
    let p = Project::new(
        &format!(
            "{}\n[builds.test]\nsteps = [\"mkdir -p out && printf '%s' '{report}' > out/sponge_log.xml\"]\njunit = [\"out/*.xml\"]\n[builds.forgot]\nsteps = [\"true\"]\njunit = [\"out/*.xml\"]\n",
            job(&["test", "forgot"])
        ),
        &[],
    );
    let v = json(&p.run(&["run", "j", "--milestone", "1", "--json"]));
    // The step decides the build's status; the report is recorded either way.
    assert_eq!(v["builds"][0]["status"], "success", "{v}");
    assert_eq!(v["builds"][1]["status"], "failure");
    assert!(
        v["builds"][1]["error"]
            .as_str()
            .unwrap()
            .contains("junit report 'out/*.xml' was not written"),
        "{v}"
    );
    let shown = json(&p.run(&["show", "1", "--json"]));
    let suite = &shown["suites"][0];
    assert_eq!(suite["name"], "ContainerTest");
    assert_eq!(
        (suite["tests"].as_u64(), suite["failures"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(suite["passed"], false);
    assert_eq!(suite["build"], "test");
}

#[test]
fn a_build_log_stops_at_its_limit_and_the_run_says_so() {
    let p = Project::new(
        &format!(
            "[sandbox]\nlog_limit = \"8K\"\n{}\n[builds.noisy]\nsteps = [\"i=0; while [ $i -lt 2000 ]; do echo line $i of noise; i=$((i+1)); done\"]\n",
            job(&["noisy"])
        ),
        &[],
    );
    let v = json(&p.run(&["run", "j", "--milestone", "1", "--json"]));
    assert_eq!(v["status"], "success", "{v}");
    let log_path = p.path().join(".slipway/runs/1/logs/noisy.log");
    let size = std::fs::metadata(&log_path).unwrap().len();
    assert!(size < 8 * 1024 + 4096, "log of {size} bytes");
    let log = stdout(&p.run(&["logs", "1", "noisy"]));
    assert_eq!(log.matches("log truncated").count(), 1, "{log}");
    assert!(!log.contains("line 1999 of noise"));
    let shown = stdout(&p.run(&["show", "1"]));
    assert!(shown.contains("log truncated at its limit"), "{shown}");
    let shown = json(&p.run(&["show", "1", "--json"]));
    assert!(shown["builds"][0]["log_dropped_bytes"].as_i64().unwrap() > 10_000);
}
