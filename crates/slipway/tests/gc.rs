//! `slipway gc` on the example: old runs, workspaces and objects go; what the live release,
//! its rollback chain and open candidates need stays, and promotion and rollback still work.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::*;

fn commit_version(repo: &Path, version: &str) {
    std::fs::write(repo.join("VERSION"), format!("{version}\n")).unwrap();
    git(
        repo,
        &["commit", "--quiet", "-am", &format!("Version {version}")],
    );
}

fn packages(ex: &Path) -> String {
    std::fs::read_to_string(
        ex.join("var/buckets/cros-packages/74/dists/bookworm/main/binary-amd64/Packages"),
    )
    .unwrap_or_default()
}

/// A successful run of the continuous job; returns (run id, candidate id).
fn run(ex: &Path, extra: &[&str]) -> (i64, i64) {
    let mut args = vec!["run", "guest_tools", "--milestone", "74", "--json"];
    args.extend_from_slice(extra);
    let out = slipway(ex, &args);
    ok(&out);
    let v = json(&out);
    (
        v["run_id"].as_i64().unwrap(),
        v["candidate"]["id"].as_i64().expect("a candidate"),
    )
}

/// sha256 of every artifact a run recorded.
fn artifacts(ex: &Path, run: i64) -> BTreeSet<String> {
    let v = json(&slipway(ex, &["show", &run.to_string(), "--json"]));
    v["builds"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["artifacts"].as_array().unwrap().clone())
        .map(|a| a["sha256"].as_str().unwrap().to_string())
        .collect()
}

fn object(ex: &Path, sha: &str) -> std::path::PathBuf {
    ex.join(".slipway/cas/sha256").join(&sha[..2]).join(sha)
}

/// Bytes of the files under `path`.
/// Bytes under `path`, leaving out the state database (every command's open writes to it:
/// marking interrupted runs, checkpoints).
fn du(path: &Path) -> u64 {
    if path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("state.db"))
    {
        return 0;
    }
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| du(&e.path())).sum())
        .unwrap_or(0)
}

#[test]
fn gc_frees_old_runs_and_workspaces_and_keeps_what_releases_need() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("ex");
    init_example(&ex);
    let config = ex.join("slipway.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[retention]\nkeep_days = 0\nkeep_last = 1\nkeep_releases = 2\n");
    std::fs::write(&config, text).unwrap();
    let repo = ex.join("repo");

    // Three releases: 74.0.1, 74.0.2 (its workspaces kept), 74.0.3 (live).
    let (r1, c1) = run(&ex, &[]);
    ok(&slipway(&ex, &["promote", "--milestone", "74"]));
    commit_version(&repo, "74.0.2");
    let (r2, c2) = run(&ex, &["--keep-workspaces"]);
    ok(&slipway(&ex, &["promote", "--milestone", "74"]));
    commit_version(&repo, "74.0.3");
    let (r3, c3) = run(&ex, &[]);
    ok(&slipway(&ex, &["promote", "--milestone", "74"]));
    assert!(packages(&ex).contains("Version: 74.0.3"));

    // A run killed mid-build leaves its workspace behind.
    commit_version(&repo, "74.0.4");
    let mut child = slipway_cmd(&ex, &["run", "guest_tools", "--milestone", "74"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let killed = r3 + 1;
    let killed_ws = ex.join(format!(".slipway/runs/{killed}/builds"));
    assert!(
        wait_for(&killed_ws, Duration::from_secs(60)),
        "the run never started a build"
    );
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap(); // SIGKILL: nothing cleans up
    child.wait().unwrap();
    let kept_ws = ex.join(format!(".slipway/runs/{r2}/builds"));
    assert!(kept_ws.is_dir() && killed_ws.is_dir());
    // Any command ends what the killed run left running and records it as interrupted.
    ok(&slipway(&ex, &["runs"]));

    let only_r1: BTreeSet<String> = {
        let later: BTreeSet<String> = artifacts(&ex, r2)
            .union(&artifacts(&ex, r3))
            .cloned()
            .collect();
        artifacts(&ex, r1).difference(&later).cloned().collect()
    };
    assert!(!only_r1.is_empty(), "74.0.1 has bytes of its own");
    let data = ex.join(".slipway");
    let before = du(&data);
    let dry_artifacts = artifacts(&ex, r1).len();

    // A dry run reports and removes nothing.
    let dry = json(&slipway(&ex, &["gc", "--dry-run", "--json"]));
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["runs_removed"], serde_json::json!([r1]));
    assert_eq!(dry["runs_pruned"], serde_json::json!([r1]), "it published");
    assert_eq!(dry["candidates_protected"], serde_json::json!([c2, c3]));
    assert!(dry["workspaces"]["files"].as_u64().unwrap() >= 2, "{dry}");
    assert!(
        dry["objects"]["files"].as_u64().unwrap() >= only_r1.len() as u64,
        "{dry}"
    );
    assert!(dry["bytes_freed"].as_u64().unwrap() > 0);
    assert_eq!(du(&data), before, "a dry run removes nothing");
    assert_eq!(artifacts(&ex, r1).len(), dry_artifacts);
    assert!(kept_ws.is_dir() && killed_ws.is_dir());

    let out = slipway(&ex, &["gc"]);
    ok(&out);
    assert!(stdout(&out).contains("removed 1 runs"), "{}", stdout(&out));
    let real = json(&slipway(&ex, &["gc", "--json"]));
    assert_eq!(
        real["runs_removed"],
        serde_json::json!([]),
        "a second gc finds nothing"
    );
    assert_eq!(real["bytes_freed"], 0);
    let freed = before - du(&data);
    assert!(
        freed >= dry["bytes_freed"].as_u64().unwrap() / 2 && freed > 0,
        "dry run said {}, {freed} freed",
        dry["bytes_freed"]
    );

    // Run 1 is a record (no builds, no artifacts) and its own bytes are gone; the workspaces
    // too; kept runs are whole.
    assert!(artifacts(&ex, r1).is_empty());
    assert!(!data.join(format!("runs/{r1}")).exists());
    for sha in &only_r1 {
        assert!(!object(&ex, sha).exists(), "{sha} of run {r1} is freed");
    }
    assert!(!kept_ws.exists() && !killed_ws.exists());
    for r in [r2, r3] {
        for sha in artifacts(&ex, r) {
            assert!(object(&ex, &sha).exists(), "{sha} of run {r} is kept");
        }
    }
    ok(&slipway(&ex, &["logs", &r2.to_string(), "guest_tools"]));

    // The rollback chain and the live release still work, from the artifact store.
    let out = slipway(&ex, &["rollback", "--milestone", "74", "--json"]);
    ok(&out);
    assert_eq!(json(&out)["candidate"]["id"], c2);
    assert!(packages(&ex).contains("Version: 74.0.2"));
    let out = slipway(
        &ex,
        &[
            "promote",
            "--milestone",
            "74",
            "--candidate",
            &c3.to_string(),
        ],
    );
    ok(&out);
    assert!(packages(&ex).contains("Version: 74.0.3"));
    verify_published(&ex);
    ok(&slipway(&ex, &["audit", "--milestone", "74"]));

    // The pruned candidate's bytes are gone: promoting it is refused, production unchanged.
    let out = slipway(
        &ex,
        &[
            "promote",
            "--milestone",
            "74",
            "--candidate",
            &c1.to_string(),
        ],
    );
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(packages(&ex).contains("Version: 74.0.3"));
    ok(&slipway(&ex, &["audit", "--milestone", "74"]));
}

#[test]
fn publish_hashes_only_changed_files_and_gc_drops_its_stale_cache() {
    let p = Project::new(
        "[buckets]\nout = \"file://bucket\"\n\n[retention]\nkeep_days = 0\n",
        &[],
    );
    let tree = p.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a.txt"), "first").unwrap();
    std::fs::write(tree.join("sub/b.txt"), "other").unwrap();
    ok(&p.run(&["publish", "tree", "--bucket", "out", "--prefix", "x"]));
    let caches = p.path().join(".slipway/cache/publish/dirs");
    assert_eq!(std::fs::read_dir(&caches).unwrap().count(), 1);

    // Same size, new bytes: the cache knows files by identity (inode, size, mtime), not by name.
    std::fs::write(tree.join("a.txt"), "FIRST").unwrap();
    let out = p.run(&["publish", "tree", "--bucket", "out", "--prefix", "x"]);
    ok(&out);
    assert!(
        stdout(&out).contains("1 written, 1 unchanged"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read_to_string(p.path().join("bucket/x/a.txt")).unwrap(),
        "FIRST"
    );

    // Not used for keep_days (0 here): gc removes it.
    let gc = json(&p.run(&["gc", "--json"]));
    assert_eq!(gc["caches"]["files"], 1, "{gc}");
    assert_eq!(std::fs::read_dir(&caches).unwrap().count(), 0);
}
