//! `slipway audit` on the example: clean after promotions and a rollback, and every kind of
//! tampering with what staging and production serve is reported, one line each.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use sha2::{Digest, Sha256};

/// `(run id, candidate id)` of a successful run of the example's continuous job.
fn run_example(ex: &Path) -> (i64, i64) {
    let out = slipway(ex, &["run", "guest_tools", "--milestone", "74", "--json"]);
    let run = json(&out);
    assert_eq!(run["status"], "success", "{}", stderr(&out));
    (
        run["run_id"].as_i64().unwrap(),
        run["candidate"]["id"].as_i64().expect("a candidate"),
    )
}

fn audit(ex: &Path) -> std::process::Output {
    slipway(ex, &["audit", "--milestone", "74"])
}

/// The digest part of a finding line: `sha256 <12 hex>, <size> bytes`.
fn described(bytes: &[u8]) -> String {
    let sha = hex::encode(Sha256::digest(bytes));
    format!("sha256 {}, {} bytes", &sha[..12], bytes.len())
}

/// A file of a bucket, restored to its bytes when dropped.
struct Tampered {
    path: PathBuf,
    before: Option<Vec<u8>>,
}

impl Tampered {
    fn new(ex: &Path, key: &str) -> Tampered {
        let path = ex.join("var/buckets").join(key);
        let before = std::fs::read(&path).ok();
        Tampered { path, before }
    }

    fn before(&self) -> &[u8] {
        self.before.as_deref().expect("the object exists")
    }

    fn write(&self, bytes: &[u8]) -> &Self {
        std::fs::create_dir_all(self.path.parent().unwrap()).unwrap();
        std::fs::write(&self.path, bytes).unwrap();
        self
    }

    fn now(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }
}

impl Drop for Tampered {
    fn drop(&mut self) {
        match &self.before {
            Some(b) => std::fs::write(&self.path, b).unwrap(),
            None => {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

fn lines(o: &std::process::Output) -> BTreeSet<String> {
    stdout(o).lines().map(str::to_string).collect()
}

#[test]
fn audit_passes_untouched_buckets_and_names_every_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("ex");
    init_example(&ex);
    let out = audit(&ex);
    ok(&out);
    assert!(
        stdout(&out).contains("published nothing yet"),
        "{}",
        stdout(&out)
    );

    let (_, c1) = run_example(&ex);
    ok(&slipway(&ex, &["promote", "--milestone", "74"]));
    let first_inrelease = Tampered::new(&ex, "cros-packages/74/dists/bookworm/InRelease")
        .before()
        .to_vec();
    commit_version(&ex.join("repo"), "74.0.2");
    let (r2, c2) = run_example(&ex);
    ok(&slipway(&ex, &["promote", "--milestone", "74"]));
    let second_manifest = Tampered::new(&ex, "cros-packages/74/.slipway-manifest.json")
        .before()
        .to_vec();

    // Untouched: every prefix serves what the records say.
    let out = audit(&ex);
    ok(&out);
    assert!(
        stdout(&out).contains("no drift in milestone 74"),
        "{}",
        stdout(&out)
    );
    let report = json(&slipway(&ex, &["audit", "--milestone", "74", "--json"]));
    assert_eq!(report["drift"], false);
    let serves = |bucket: &str| {
        report["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["bucket"] == bucket)
            .unwrap_or_else(|| panic!("no {bucket} in {report}"))["serves"]
            .clone()
    };
    assert_eq!(serves("packages-staging")["run"], r2);
    assert_eq!(serves("vm-testing")["run"], r2);
    assert_eq!(serves("packages")["candidate"], c2);
    assert_eq!(serves("containers")["candidate"], c2);

    // Every tampering at once; each is one line, and nothing else is reported.
    let mut expected = BTreeSet::new();
    let replayed = Tampered::new(&ex, "cros-packages/74/dists/bookworm/InRelease");
    replayed.write(&first_inrelease);
    expected.insert(format!(
        "packages/74/dists/bookworm/InRelease: replayed InRelease of candidate {c1} (candidate {c2} is served)"
    ));
    let packages = "74/dists/bookworm/main/binary-amd64/Packages";
    let edited = Tampered::new(&ex, &format!("cros-packages/{packages}"));
    let text = String::from_utf8(edited.before().to_vec())
        .unwrap()
        .replace("Version: 74.0.2", "Version: 74.0.3");
    edited.write(text.as_bytes());
    expected.insert(format!(
        "packages/{packages}: changed: {}; candidate {c2} recorded {}",
        described(&edited.now()),
        described(edited.before())
    ));
    let xz = Tampered::new(
        &ex,
        "cros-packages/74/dists/bookworm/main/binary-arm64/Packages.xz",
    );
    xz.write(&xz.before()[..xz.before().len() / 2]);
    expected.insert(format!(
        "packages/74/dists/bookworm/main/binary-arm64/Packages.xz: changed: {}; candidate {c2} recorded {}",
        described(&xz.now()),
        described(xz.before())
    ));
    let _extra = Tampered::new(&ex, "cros-packages/74/pool/main/e/evil/evil_1_all.deb");
    _extra.write(b"not from any release");
    expected.insert(
        "packages/74/pool/main/e/evil/evil_1_all.deb: extra object: listed by no released candidate"
            .to_string(),
    );
    // Listed by candidate 1 only: kept for clients that fetched 74.0.1's indices.
    let older_key = "74/pool/main/c/cros-garcon/cros-garcon_74.0.1_all.deb";
    let older = Tampered::new(&ex, &format!("cros-packages/{older_key}"));
    let mut bytes = older.before().to_vec();
    bytes.extend_from_slice(b"trailing");
    older.write(&bytes);
    expected.insert(format!(
        "packages/{older_key}: changed older object: {}; candidate {c1} recorded {}",
        described(&older.now()),
        described(older.before())
    ));
    let deleted = Tampered::new(&ex, "cros-containers/74/streams/v1/images.json");
    std::fs::remove_file(&deleted.path).unwrap();
    expected.insert(format!(
        "containers/74/streams/v1/images.json: missing (candidate {c2} serves it)"
    ));
    let staged = Tampered::new(&ex, &format!("cros-packages-staging/{packages}"));
    staged.write(text.as_bytes());
    expected.insert(format!(
        "packages-staging/{packages}: changed: {}; run {r2} recorded {}",
        described(&staged.now()),
        described(staged.before())
    ));

    let out = audit(&ex);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(lines(&out), expected);
    assert!(
        stderr(&out).contains("drift: 7 findings"),
        "{}",
        stderr(&out)
    );
    let report = json(&slipway(&ex, &["audit", "--milestone", "74", "--json"]));
    assert_eq!(report["drift"], true);
    let kinds: BTreeSet<String> = report["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["findings"].as_array().unwrap().clone())
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["changed", "extra", "missing", "replayed"]
            .map(String::from)
            .into()
    );

    // Restored, the state audits clean again; so does production after a rollback, where the
    // 74.0.2 files became older objects.
    drop((replayed, edited, xz, _extra, older, deleted, staged));
    ok(&audit(&ex));
    ok(&slipway(&ex, &["rollback", "--milestone", "74"]));
    ok(&audit(&ex));

    // A bucket whose own manifest names another candidate than the release record, and a
    // promotion lease left behind.
    let manifest = Tampered::new(&ex, "cros-packages/74/.slipway-manifest.json");
    manifest.write(&second_manifest);
    let lease = Tampered::new(&ex, "cros-packages/74/.slipway-lease");
    lease.write(b"{}");
    let out = audit(&ex);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        lines(&out),
        [
            format!(
                "packages/74/.slipway-manifest.json: the bucket's manifest says it serves candidate {c2}; the records say candidate {c1}"
            ),
            "packages/74/.slipway-lease: promotion lease present: a promotion is running or was interrupted".to_string(),
        ]
        .into()
    );
}
