//! Promotion under kill -9: at every object and at each step of the protocol, then one
//! `promote` or `rollback` finishes the interrupted operation at once and production serves
//! exactly one candidate, the one the record names. Also: corrupt stored objects are refused
//! before production changes, and two racing promoters cannot both go on.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use common::*;

fn promote_killed_at(ex: &Path, point: &str) -> std::process::Output {
    slipway_cmd(ex, &["promote", "--milestone", "74"])
        .env("SLIPWAY_FAULT_PROMOTE", point)
        .output()
        .expect("cannot run slipway")
}

fn was_killed(o: &std::process::Output) -> bool {
    o.status.signal() == Some(9)
}

/// The candidate the newest release names.
fn released(ex: &Path) -> i64 {
    let history = json(&slipway(ex, &["releases", "--milestone", "74", "--json"]));
    history[0]["candidate_id"].as_i64().expect("a release")
}

fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out: Vec<_> = walk(dir)
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains(".slipway-"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

/// Changes a (read-only) artifact-store object in place, as an intruder or a bad disk would.
fn overwrite_stored(path: &Path, bytes: &[u8]) {
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(path, perms).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_killed_promotion_is_finished_by_the_next_promote_or_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("ex");
    init_example(&ex);
    let first = json(&slipway(
        &ex,
        &["run", "guest_tools", "--milestone", "74", "--json"],
    ));
    let c1 = first["candidate"]["id"].as_i64().unwrap();
    ok(&slipway(&ex, &["promote", "--milestone", "74"]));
    commit_version(&ex.join("repo"), "74.0.2");
    let second = json(&slipway(
        &ex,
        &["run", "guest_tools", "--milestone", "74", "--json"],
    ));
    let c2 = second["candidate"]["id"].as_i64().unwrap();
    let remote = StreamsRemote::serve(&ex.join("var/buckets/cros-containers/74"), dir.path());

    // Killed at each protocol step and after every object k, until a promotion gets through
    // with nothing left to kill it. Recovery alternates: `rollback` finishes the interrupted
    // promotion of c2 and goes back to c1; `promote` finishes it and stays on c2.
    let mut points: Vec<String> = ["begun", "leased", "copied", "recorded"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    points.extend((0..200).map(|k| format!("object:{k}")));
    let mut kills = 0;
    for (i, point) in points.iter().enumerate() {
        let audit = i < 6 || i % 5 == 0;
        let out = promote_killed_at(&ex, point);
        if !was_killed(&out) {
            ok(&out);
            assert!(point.starts_with("object:"), "{point} never reached");
            assert_eq!(released(&ex), c2);
            production_verifies(&ex, "74.0.2", Some(&remote));
            break;
        }
        kills += 1;
        if point == "copied" {
            // Until it is finished, audit reports the interrupted operation (and its lease).
            let out = slipway(&ex, &["audit", "--milestone", "74"]);
            assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
            assert!(
                stdout(&out).contains(
                    "is interrupted; the next `slipway promote` or `slipway rollback` finishes it"
                ),
                "{}",
                stdout(&out)
            );
        }
        if kills % 2 == 1 {
            let out = slipway(&ex, &["rollback", "--milestone", "74"]);
            ok(&out);
            if point != "recorded" {
                assert!(
                    stdout(&out).contains("finished interrupted promotion"),
                    "{point}: {}",
                    stdout(&out)
                );
            }
            assert_eq!(released(&ex), c1, "after a kill at {point}");
            production_verifies(&ex, "74.0.1", audit.then_some(&remote));
        } else {
            let out = slipway(&ex, &["promote", "--milestone", "74"]);
            ok(&out);
            assert_eq!(released(&ex), c2, "after a kill at {point}");
            production_verifies(&ex, "74.0.2", audit.then_some(&remote));
            ok(&slipway(&ex, &["rollback", "--milestone", "74"]));
            assert_eq!(released(&ex), c1);
        }
    }
    assert!(kills > 8, "only {kills} kill points were reached");
}

#[test]
fn corrupt_sources_are_refused_and_racing_promoters_do_not_both_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("ex");
    init_example(&ex);
    ok(&slipway(&ex, &["run", "guest_tools", "--milestone", "74"]));
    ok(&slipway(&ex, &["promote", "--milestone", "74"]));
    commit_version(&ex.join("repo"), "74.0.2");
    let second = json(&slipway(
        &ex,
        &["run", "guest_tools", "--milestone", "74", "--json"],
    ));
    let c2 = second["candidate"]["id"].as_i64().unwrap();
    let prod = ex.join("var/buckets");
    let before = snapshot(&prod.join("cros-packages"));
    let containers_before = snapshot(&prod.join("cros-containers"));

    // An artifact-store object of the candidate edited after the run (an images.json, as the
    // issue found): refused before anything is written, and nothing is left to finish.
    let show = json(&slipway(
        &ex,
        &["show", &second["run_id"].to_string(), "--json"],
    ));
    let objects = show.to_string();
    assert!(objects.contains("images.json"), "{objects}");
    let mut edited = Vec::new();
    for p in walk(&ex.join(".slipway/cas/sha256")) {
        let bytes = std::fs::read(&p).unwrap();
        if bytes.starts_with(b"{") && String::from_utf8_lossy(&bytes).contains("\"products\"") {
            let mut changed = bytes.clone();
            changed.extend_from_slice(b" ");
            overwrite_stored(&p, &changed);
            edited.push((p, bytes));
        }
    }
    assert!(!edited.is_empty(), "found the stored images.json");
    let out = slipway(
        &ex,
        &[
            "promote",
            "--milestone",
            "74",
            "--candidate",
            &c2.to_string(),
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("do not match its manifest, production was not touched")
            && err.contains("images.json"),
        "{err}"
    );
    assert_eq!(snapshot(&prod.join("cros-packages")), before);
    assert_eq!(snapshot(&prod.join("cros-containers")), containers_before);
    assert!(!prod.join("cros-packages/74/.slipway-lease").exists());

    for (p, bytes) in &edited {
        std::fs::write(p, bytes).unwrap();
    }

    // Two promoters at once: the second is refused while the first holds the operation (here
    // paused right after taking its leases); the first then finishes alone.
    let lease = prod.join("cros-packages/74/.slipway-lease");
    let first = slipway_cmd(&ex, &["promote", "--milestone", "74"])
        .env("SLIPWAY_FAULT_PROMOTE", "hold:leased")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for(&lease, std::time::Duration::from_secs(30)),
        "the first took its lease"
    );
    let second = slipway(&ex, &["promote", "--milestone", "74"]);
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("is running in pid"),
        "{}",
        stderr(&second)
    );
    let rollback = slipway(&ex, &["rollback", "--milestone", "74"]);
    assert!(!rollback.status.success(), "rollback waits too");
    let first = first.wait_with_output().unwrap();
    ok(&first);
    assert_eq!(released(&ex), c2);
    let history = json(&slipway(&ex, &["releases", "--milestone", "74", "--json"]));
    assert_eq!(
        history.as_array().unwrap().len(),
        2,
        "one release per promotion: {history}"
    );
    let remote = StreamsRemote::serve(&prod.join("cros-containers/74"), dir.path());
    production_verifies(&ex, "74.0.2", Some(&remote));

    // An interrupted promotion that cannot be finished (its sources changed since): promote and
    // rollback say why and how out; `--abandon-interrupted` gives it up and promotes anew.
    let c1 = c2 - 1;
    let out = slipway_cmd(
        &ex,
        &[
            "promote",
            "--milestone",
            "74",
            "--candidate",
            &c1.to_string(),
        ],
    )
    .env("SLIPWAY_FAULT_PROMOTE", "object:3")
    .output()
    .unwrap();
    assert!(was_killed(&out));
    let mut broken = Vec::new();
    for p in walk(&ex.join(".slipway/cas/sha256")) {
        let bytes = std::fs::read(&p).unwrap();
        if String::from_utf8_lossy(&bytes).contains("Version: 74.0.1") {
            overwrite_stored(&p, b"not what was recorded");
            broken.push(p);
        }
    }
    assert!(!broken.is_empty());
    for args in [
        &["promote", "--milestone", "74"][..],
        &["rollback", "--milestone", "74"][..],
    ] {
        let out = slipway(&ex, args);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("was interrupted and cannot be finished")
                && stderr(&out).contains("--abandon-interrupted"),
            "{}",
            stderr(&out)
        );
    }
    let out = slipway(
        &ex,
        &["promote", "--milestone", "74", "--abandon-interrupted"],
    );
    ok(&out);
    assert!(
        !stdout(&out).contains("finished interrupted"),
        "{}",
        stdout(&out)
    );
    assert_eq!(released(&ex), c2);
    production_verifies(&ex, "74.0.2", Some(&remote));
}
