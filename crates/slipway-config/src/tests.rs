use std::path::PathBuf;

use crate::*;

const SERVICE: &str = r#"
[project]
name = "crostini-guest"
repo = "./repo"
builds = ".slipway/builds.toml"

[[branches]]
channel = "stable"
milestone = 71
branch = "release-R71-11151.B"

[[branches]]
channel = "canary"
milestone = 74
branch = "main"

[buckets]
packages-staging = "file://var/buckets/packages-staging"

[secrets]
apt-signing-key = { file = "var/secrets/apt.asc" }

[jobs.guest_tools]
trigger = "continuous"
branches = "active"
builds = ["guest_tools", "apt_repo", "apt_signer", "lxd_container", "publish"]

[jobs.presubmit]
trigger = { review = { label = "Trybot-Ready", min = 1 } }
branches = ["main"]
untrusted = true
builds = ["guest_tools", "apt_repo", "apt_signer", "lxd_container", "publish"]
"#;

const BUILDS: &str = r#"
[builds.guest_tools]
steps = ["./build-debs.sh out/guest_debs"]
artifacts = [{ glob = "out/guest_debs/*.deb", strip_prefix = "out/" }]

[builds.apt_repo]
needs = ["guest_tools"]
steps = ["./apt-repo.sh"]

[builds.apt_signer]
needs = ["apt_repo"]
steps = ["./sign.sh"]
privileged = true
secrets = ["apt-signing-key"]

[builds.lxd_container]
needs = ["apt_signer"]
steps = ["./build-container.sh"]

[builds.publish]
needs = ["apt_signer", "lxd_container"]
uses = "publish"
privileged = true
with = { bucket = "packages-staging", prefix = "{milestone}" }
"#;

fn service(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(SourceText::new("slipway.toml", text), PathBuf::from("."))
}

fn builds(text: &str) -> Result<Builds, ConfigErrors> {
    Builds::parse(&SourceText::new("repo@abc:.slipway/builds.toml", text))
}

fn first_error(r: Result<impl std::fmt::Debug, ConfigErrors>) -> String {
    r.expect_err("expected an error").0[0].to_string()
}

#[test]
fn continuous_plan_keeps_every_build_in_order() {
    let c = service(SERVICE).unwrap();
    let b = builds(BUILDS).unwrap();
    let p = plan(&c, &b, "guest_tools", 71).unwrap();
    assert_eq!(p.instance, "crostini-guest/71/guest_tools");
    assert_eq!(p.branch, "release-R71-11151.B");
    assert_eq!(p.flow, Flow::Continuous);
    let names: Vec<_> = p.builds.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "guest_tools",
            "apt_repo",
            "apt_signer",
            "lxd_container",
            "publish"
        ]
    );
    assert!(p.bypassed.is_empty());
}

#[test]
fn untrusted_plan_bypasses_privileged_and_rewires() {
    let c = service(SERVICE).unwrap();
    let b = builds(BUILDS).unwrap();
    let p = plan(&c, &b, "presubmit", 74).unwrap();
    let names: Vec<_> = p.builds.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["guest_tools", "apt_repo", "lxd_container"]);
    let lxd = p.builds.iter().find(|b| b.name == "lxd_container").unwrap();
    assert_eq!(lxd.needs, ["apt_repo"]);
    let bypassed: Vec<_> = p.bypassed.iter().map(|b| b.build.as_str()).collect();
    assert_eq!(bypassed, ["apt_signer", "publish"]);
    assert_eq!(p.flow, Flow::Presubmit);
}

#[test]
fn bypass_is_transitive_through_chains_of_privileged_builds() {
    let svc = r#"
[project]
name = "p"
repo = "r"
[[branches]]
channel = "canary"
milestone = 1
branch = "main"
[jobs.j]
trigger = "manual"
branches = "active"
untrusted = true
builds = ["a", "b", "c", "d"]
"#;
    let bl = r#"
[builds.a]
steps = ["true"]
[builds.b]
needs = ["a"]
steps = ["true"]
privileged = true
[builds.c]
needs = ["b"]
steps = ["true"]
privileged = true
[builds.d]
needs = ["c", "a"]
steps = ["true"]
"#;
    let p = plan(&service(svc).unwrap(), &builds(bl).unwrap(), "j", 1).unwrap();
    let d = p.builds.iter().find(|b| b.name == "d").unwrap();
    assert_eq!(d.needs, ["a"]);
}

#[test]
fn errors_name_file_line_and_column() {
    let e = first_error(service(
        "[project]\nname = \"x\"\nrepo = \"r\"\nbogus = 1\n",
    ));
    assert!(e.starts_with("slipway.toml:4:1: "), "{e}");
    assert!(e.contains("bogus"), "{e}");

    let e = first_error(service("[project\nname = 1"));
    assert!(e.starts_with("slipway.toml:1:"), "{e}");

    let e = first_error(builds("[builds.a]\nsteps = [\"x\"]\nneeds = [\"nope\"]\n"));
    assert_eq!(
        e,
        "repo@abc:.slipway/builds.toml:3:10: build 'a' needs 'nope', which is not a defined build"
    );
}

#[test]
fn cycles_are_reported_with_the_path() {
    let e = first_error(builds(
        "[builds.a]\nsteps = [\"x\"]\nneeds = [\"b\"]\n[builds.b]\nsteps = [\"x\"]\nneeds = [\"a\"]\n",
    ));
    assert!(e.contains("dependency cycle: a -> b -> a"), "{e}");
    assert!(e.starts_with("repo@abc:.slipway/builds.toml:6:10"), "{e}");
}

#[test]
fn duplicate_milestones_are_rejected() {
    let svc = "[project]\nname = \"p\"\nrepo = \"r\"\n[[branches]]\nchannel = \"a\"\nmilestone = 7\nbranch = \"x\"\n[[branches]]\nchannel = \"b\"\nmilestone = 7\nbranch = \"y\"\n";
    let e = first_error(service(svc));
    assert!(
        e.starts_with("slipway.toml:10:13: duplicate milestone 7"),
        "{e}"
    );
}

#[test]
fn unknown_builds_secrets_buckets_are_errors() {
    let c = service(SERVICE).unwrap();
    let bad = BUILDS
        .replace("secrets = [\"apt-signing-key\"]", "secrets = [\"nope\"]")
        .replace("bucket = \"packages-staging\"", "bucket = \"nowhere\"");
    let errs = validate(&c, &builds(&bad).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("secret 'nope', which is not defined"),
        "{errs}"
    );
    assert!(
        errs.contains("bucket 'nowhere', which is not defined"),
        "{errs}"
    );

    let missing = BUILDS
        .replace("[builds.lxd_container]", "[builds.lxd_other]")
        .replace(
            "needs = [\"apt_signer\", \"lxd_container\"]",
            "needs = [\"apt_signer\"]",
        );
    let errs = validate(&c, &builds(&missing).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("lists build 'lxd_container', which is not defined"),
        "{errs}"
    );
    assert!(errs.contains("slipway.toml:26:52"), "{errs}");
}

#[test]
fn untrusted_job_may_not_keep_a_secret_reading_build() {
    let c = service(SERVICE).unwrap();
    let bad = BUILDS.replace(
        "steps = [\"./build-container.sh\"]",
        "steps = [\"./build-container.sh\"]\nsecrets = [\"apt-signing-key\"]",
    );
    let errs = validate(&c, &builds(&bad).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("untrusted job 'presubmit' would run build 'lxd_container' with secret"),
        "{errs}"
    );
}

#[test]
fn untrusted_jobs_stay_sandboxed_and_offline_unless_the_job_allows_the_network() {
    let c = service(SERVICE).unwrap();
    let with = |extra: &str| {
        BUILDS.replace(
            "steps = [\"./build-container.sh\"]",
            &format!("steps = [\"./build-container.sh\"]\n{extra}"),
        )
    };
    let errs = validate(&c, &builds(&with("sandbox = false")).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("builds.toml:19:11: build 'lxd_container' sets `sandbox = false`, but untrusted job 'presubmit' runs it"),
        "{errs}"
    );
    let errs = validate(&c, &builds(&with("network = true")).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("asks for `network = true`, but untrusted job 'presubmit' does not allow it"),
        "{errs}"
    );
    // The job can opt in to the network, never out of the sandbox.
    let open =
        service(&SERVICE.replace("untrusted = true", "untrusted = true\nallow_network = true"))
            .unwrap();
    assert!(validate(&open, &builds(&with("network = true")).unwrap()).is_ok());
    assert!(validate(&open, &builds(&with("sandbox = false")).unwrap()).is_err());
    // Trusted-only jobs may do both.
    let trusted = service(&SERVICE.replace("untrusted = true", "untrusted = false")).unwrap();
    let b = builds(&with(
        "sandbox = false\nnetwork = true\nresources = { memory = \"1G\", pids = 100, cpus = 0.5 }",
    ))
    .unwrap();
    assert!(validate(&trusted, &b).is_ok());
    let lxd = &b.map["lxd_container"];
    assert!(!lxd.sandbox && lxd.network);
    let r = lxd.resources.over(&c.sandbox.defaults);
    assert_eq!(
        (r.memory, r.pids, r.cpus),
        (Some(1 << 30), Some(100), Some(0.5))
    );
}

#[test]
fn sandbox_defaults_and_bad_values() {
    let c = service(SERVICE).unwrap();
    assert_eq!(c.sandbox.defaults, Resources::default());
    assert_eq!(c.sandbox.log_limit, DEFAULT_LOG_LIMIT);
    let c = service(&format!(
        "{SERVICE}\n[sandbox]\nread_only = [\"/var/cache/slipway\", \"cache\"]\nmemory = \"2G\"\ncpus = 2\nlog_limit = \"1M\"\n"
    ))
    .unwrap();
    assert_eq!(c.sandbox.defaults.memory, Some(2 << 30));
    assert_eq!(c.sandbox.defaults.pids, Some(DEFAULT_PIDS));
    assert_eq!(c.sandbox.defaults.cpus, Some(2.0));
    assert_eq!(c.sandbox.log_limit, 1 << 20);
    assert_eq!(c.sandbox.read_only[1], PathBuf::from("./cache"));
    let e = first_error(service(&format!(
        "{SERVICE}\n[sandbox]\nread_only = [\"/\"]\n"
    )));
    assert!(e.contains("not the whole file system"), "{e}");
    let e = first_error(service(&format!("{SERVICE}\n[sandbox]\nnetwork = true\n")));
    assert!(e.contains("unknown field `network`"), "{e}");
    let e = first_error(builds(
        "[builds.b]\nsteps = [\"true\"]\nresources = { memory = \"4X\" }\n",
    ));
    assert!(
        e.contains("builds.toml:3:13: build 'b': resources.memory"),
        "{e}"
    );
}

#[test]
fn artifact_paths_may_not_escape() {
    let e = first_error(builds(
        "[builds.a]\nsteps = [\"x\"]\nartifacts = [{ glob = \"../x/*\" }]\n",
    ));
    assert!(e.contains("must not contain '..'"), "{e}");
    let e = first_error(builds(
        "[builds.a]\nsteps = [\"x\"]\nartifacts = [{ glob = \"out/*\", strip_prefix = \"/etc\" }]\n",
    ));
    assert!(e.contains("must be relative"), "{e}");
}

#[test]
fn plan_rejects_milestones_a_job_does_not_run_on() {
    let c = service(SERVICE).unwrap();
    let b = builds(BUILDS).unwrap();
    let e = plan(&c, &b, "presubmit", 71).unwrap_err().to_string();
    assert!(e.contains("does not run on milestone 71"), "{e}");
    let e = plan(&c, &b, "guest_tools", 99).unwrap_err().to_string();
    assert!(e.contains("milestone 99 is not in the branch table"), "{e}");
}

const LXD_TEST: &str = r#"
[builds.lxd_container]
steps = ["true"]

[builds.lxd_test]
needs = ["lxd_container"]
uses = "lxd-test"

[builds.lxd_test.with]
image = "lxd_container/lxd/debian/bookworm/amd64/default"
checks = [
  { name = "test_cros_sftp_active", run = ["systemctl", "is-active", "cros-sftp.service"] },
  { name = "test_user_units_active", user = 1000, run = ["systemctl", "--user", "is-active", "cros-garcon.service"], retry_for = "60s" },
]
"#;

fn lxd_spec(text: &str) -> LxdTestSpec {
    match builds(text)
        .unwrap()
        .get("lxd_test")
        .unwrap()
        .action
        .clone()
    {
        Some(NativeAction::LxdTest(spec)) => spec,
        other => panic!("not an lxd-test: {other:?}"),
    }
}

#[test]
fn lxd_test_parses_with_defaults() {
    let spec = lxd_spec(LXD_TEST);
    assert_eq!(
        spec.image,
        "lxd_container/lxd/debian/bookworm/amd64/default"
    );
    assert_eq!(spec.boot_timeout, std::time::Duration::from_secs(90));
    assert_eq!(spec.output, "lxd_test");
    assert_eq!(spec.checks.len(), 2);
    assert_eq!(
        spec.checks[0],
        LxdCheck {
            name: "test_cros_sftp_active".into(),
            user: None,
            run: vec![
                "systemctl".into(),
                "is-active".into(),
                "cros-sftp.service".into()
            ],
            retry_for: None,
        }
    );
    assert_eq!(spec.checks[1].user, Some(1000));
    assert_eq!(
        spec.checks[1].retry_for,
        Some(std::time::Duration::from_secs(60))
    );

    let spec = lxd_spec(&LXD_TEST.replace(
        "checks = [",
        "boot_timeout = \"2m\"\noutput = \"boot\"\nchecks = [",
    ));
    assert_eq!(spec.boot_timeout, std::time::Duration::from_secs(120));
    assert_eq!(spec.output, "boot");
    let b = builds(LXD_TEST).unwrap();
    assert_eq!(
        b.get("lxd_test").unwrap().action.as_ref().unwrap().kind(),
        "lxd-test"
    );
}

#[test]
fn lxd_test_errors_name_the_with_table_and_the_key() {
    // Errors about `with` point at the table (the file's convention) and name the exact key.
    let at = "repo@abc:.slipway/builds.toml:9:1: build 'lxd_test': ";
    let cases = [
        (
            "image = \"lxd_container/lxd/debian/bookworm/amd64/default\"\n",
            "",
            "needs `with.image`",
        ),
        (
            "image = \"lxd_container/lxd",
            "image = \"/abs/lxd",
            "must be relative",
        ),
        (
            "image = \"lxd_container/lxd",
            "image = \"../lxd",
            "must not contain '..'",
        ),
        (
            "image = \"lxd_container/lxd/debian/bookworm/amd64/default\"",
            "image = \"lxd_container\"",
            "must be \"<build>/<folder>\"",
        ),
        (
            "checks = [",
            "bogus = 1\nchecks = [",
            "unknown key `with.bogus`",
        ),
        (
            "checks = [",
            "boot_timeout = \"5x\"\nchecks = [",
            "`with.boot_timeout`: unknown unit",
        ),
        (
            "checks = [",
            "boot_timeout = \"0s\"\nchecks = [",
            "`with.boot_timeout` must be more than zero",
        ),
        (
            "checks = [",
            "output = \"../x\"\nchecks = [",
            "with.output '../x' must be",
        ),
        (
            "name = \"test_cros_sftp_active\"",
            "name = \"test cros\"",
            "`with.checks[0].name` 'test cros' must start",
        ),
        (
            "name = \"test_cros_sftp_active\"",
            "name = \"test_system_boots\"",
            "`with.checks[0].name` 'test_system_boots' is used twice",
        ),
        (
            "name = \"test_user_units_active\"",
            "name = \"test_cros_sftp_active\"",
            "`with.checks[1].name` 'test_cros_sftp_active' is used twice",
        ),
        (
            "run = [\"systemctl\", \"is-active\", \"cros-sftp.service\"]",
            "run = []",
            "`with.checks[0].run` must start with a command",
        ),
        (
            "run = [\"systemctl\", \"is-active\", \"cros-sftp.service\"]",
            "run = \"systemctl is-active\"",
            "`with.checks[0].run` must be a list",
        ),
        (
            "run = [\"systemctl\", \"is-active\", \"cros-sftp.service\"]",
            "run = [\"systemctl\", 1]",
            "`with.checks[0].run` must hold strings",
        ),
        (
            ", run = [\"systemctl\", \"is-active\", \"cros-sftp.service\"] }",
            " }",
            "`with.checks[0]` needs `run`",
        ),
        (
            "run = [\"systemctl\", \"is-active\", \"cros-sftp.service\"] }",
            "cmd = [\"x\"] }",
            "unknown key `with.checks[0].cmd`",
        ),
        (
            "user = 1000",
            "user = -1",
            "`with.checks[1].user` must be a uid",
        ),
        (
            "user = 1000",
            "user = \"me\"",
            "`with.checks[1].user` must be a uid",
        ),
        (
            "retry_for = \"60s\"",
            "retry_for = \"soon\"",
            "`with.checks[1].retry_for`",
        ),
        (
            "retry_for = \"60s\"",
            "retry = \"60s\"",
            "unknown key `with.checks[1].retry`",
        ),
        (
            "checks = [",
            "checks = 3\nold = [",
            "unknown key `with.old`",
        ),
    ];
    for (from, to, want) in cases {
        assert!(LXD_TEST.contains(from), "{from}");
        let e = first_error(builds(&LXD_TEST.replacen(from, to, 1)));
        assert!(e.starts_with(at), "{e}");
        assert!(e.contains(want), "want {want:?} in {e}");
    }
    let e = first_error(builds(
        "[builds.t]\nuses = \"lxd-test\"\nwith = { image = \"a/b\", checks = 3 }\n",
    ));
    assert_eq!(
        e,
        "repo@abc:.slipway/builds.toml:3:8: build 't': `with.checks` must be a list of tables like { name = \"...\", run = [\"...\"] }"
    );
    let e = first_error(builds(
        "[builds.t]\nuses = \"lxd-test\"\nwith = { image = \"a/b\", checks = [\"ls\"] }\n",
    ));
    assert!(e.contains("`with.checks[0]` must be a table"), "{e}");
    let e = first_error(builds("[builds.t]\nuses = \"lxd-tests\"\n"));
    assert!(e.starts_with("repo@abc:.slipway/builds.toml:2:8: "), "{e}");
    assert!(e.contains("lxd-test)"), "{e}");
}

const BUCKET_HEAD: &str = "[project]\nname = \"p\"\nrepo = \"repo\"\n[secrets]\nkey = { file = \"var/secrets/key\" }\n[buckets]\n";

/// Parses a service file with `buckets` under `[buckets]`, its folder at /srv/cfg.
fn with_buckets(buckets: &str) -> Result<Config, ConfigErrors> {
    Config::parse(
        SourceText::new("slipway.toml", format!("{BUCKET_HEAD}{buckets}")),
        PathBuf::from("/srv/cfg"),
    )
}

/// `slipway.toml:L:C` of the first `needle` in the `[buckets]` lines.
fn at(buckets: &str, needle: &str) -> String {
    let text = format!("{BUCKET_HEAD}{buckets}");
    let offset = BUCKET_HEAD.len() + buckets.find(needle).expect("needle in the text");
    SourceText::new("slipway.toml", text)
        .loc(offset)
        .to_string()
}

fn all_errors(r: Result<Config, ConfigErrors>) -> Vec<String> {
    r.expect_err("expected errors")
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Each case is one bad `[buckets]` text, where its one error must point, and what it must say.
fn assert_one_error(cases: &[(&str, &str, &str)]) {
    for (buckets, needle, want) in cases {
        let errs = all_errors(with_buckets(buckets));
        assert_eq!(errs.len(), 1, "{buckets}: {errs:?}");
        let pos = at(buckets, needle);
        assert!(
            errs[0].starts_with(&format!("{pos}: ")),
            "{buckets}: want {pos}: {errs:?}"
        );
        assert!(
            errs[0].contains(want),
            "{buckets}: want {want:?} in {errs:?}"
        );
    }
}

#[test]
fn file_buckets_stay_out_of_what_slipway_reads() {
    assert_one_error(&[
        (
            "a = \"file://\"\n",
            "\"file://\"",
            "bucket 'a': url 'file://' names no folder",
        ),
        (
            "a = { url = \"file://  \" }\n",
            "\"file://",
            "names no folder",
        ),
        (
            "a = \"file://../../../etc\"\n",
            "\"file://",
            "leaves its folder through '..'; write the folder as an absolute path",
        ),
        ("a = \"file://var/../../x\"\n", "\"file://", "through '..'"),
        (
            "a = \"file://.\"\n",
            "\"file://",
            "folder /srv/cfg is the config folder",
        ),
        (
            "a = \"file:///srv\"\n",
            "\"file://",
            "folder /srv holds the config folder",
        ),
        ("a = \"file:///\"\n", "\"file://", "the whole file system"),
        (
            "a = \"file://repo\"\n",
            "\"file://",
            "folder /srv/cfg/repo is the product repository",
        ),
        (
            "a = \"file://./repo/out\"\n",
            "\"file://",
            "is inside the product repository",
        ),
        (
            "a = \"file:///etc/apt\"\n",
            "\"file://",
            "inside the system folder /etc",
        ),
        (
            "a = \"file://var\"\n",
            "\"file://",
            "holds the file of secret 'key', which publishing would expose",
        ),
        (
            "a = \"file://var/b\"\nb = \"file:///srv/cfg/var/b/inner\"\n",
            "\"file:///srv",
            "bucket 'b': folder /srv/cfg/var/b/inner overlaps the folder of bucket 'a' (slipway.toml:7:5)",
        ),
    ]);
    // Inside the config folder and absolute folders elsewhere are the usual layouts.
    let c = with_buckets("a = \"file://var/buckets/a\"\nb = \"file:///srv/www/b\"\n").unwrap();
    assert_eq!(
        c.buckets["a"].folder.as_deref(),
        Some(std::path::Path::new("/srv/cfg/var/buckets/a"))
    );
    assert_eq!(
        c.buckets["b"].folder.as_deref(),
        Some(std::path::Path::new("/srv/www/b"))
    );
}

#[test]
fn a_remote_product_repo_is_no_folder() {
    let c = Config::parse(
        SourceText::new(
            "slipway.toml",
            "[project]\nname = \"p\"\nrepo = \"https://example.org/r.git\"\n[buckets]\na = \"file://https:\"\n",
        ),
        PathBuf::from("/srv/cfg"),
    )
    .unwrap();
    assert!(c.project.is_remote());
    assert!(!service(SERVICE).unwrap().project.is_remote());
}

#[test]
fn the_data_dir_is_no_bucket_folder() {
    let buckets = "a = \"file://var/a\"\nb = \"file://state/b\"\n";
    let c = with_buckets(buckets).unwrap();
    assert!(
        c.check_data_dir(std::path::Path::new("/srv/cfg/.slipway"))
            .is_ok()
    );
    let errs = c
        .check_data_dir(std::path::Path::new("/srv/cfg/state"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        errs,
        format!(
            "{}: bucket 'b': folder /srv/cfg/state/b overlaps the data dir /srv/cfg/state; publish outside it",
            at(buckets, "\"file://state")
        )
    );
    let errs = c
        .check_data_dir(std::path::Path::new("/srv/cfg/var/a/x/.."))
        .unwrap_err();
    assert!(errs.to_string().contains("bucket 'a'"), "{errs}");
}

#[test]
fn cloud_buckets_need_a_valid_bucket_name() {
    assert_one_error(&[
        (
            "a = \"s3://\"\n",
            "\"s3://",
            "url 's3://' names no bucket (write s3://BUCKET/optional/prefix)",
        ),
        ("a = \"s3:///x\"\n", "\"s3://", "names no bucket"),
        (
            "a = { url = \"gs://\" }\n",
            "\"gs://",
            "url 'gs://' names no bucket",
        ),
        (
            "a = \"s3://My_Bucket/x\"\n",
            "\"s3://",
            "'My_Bucket' is not a valid bucket name (lowercase letters",
        ),
        ("a = \"s3://ab\"\n", "\"s3://", "(3 to 63 characters)"),
        (
            "a = \"s3://-abc\"\n",
            "\"s3://",
            "start and end with a letter or digit",
        ),
        ("a = \"s3://a..b\"\n", "\"s3://", "no two dots"),
        ("a = \"s3://10.0.0.1\"\n", "\"s3://", "IP address"),
        ("a = \"s3://xn--abc\"\n", "\"s3://", "reserved"),
        ("a = \"gs://google-stuff\"\n", "\"gs://", "'goog'"),
        ("a = \"gs://Ab\"\n", "\"gs://", "not a valid bucket name"),
        (
            "a = \"s3://bucket/a//b\"\n",
            "\"s3://",
            "the prefix after the bucket name may not have empty",
        ),
        ("a = \"gs://bucket/../b\"\n", "\"gs://", "'..' parts"),
        (
            "a = \"ftp://x\"\n",
            "\"ftp://",
            "url 'ftp://x' must start with file://, s3:// or gs://",
        ),
    ]);
    let c = with_buckets("a = \"s3://my-bucket.example/some/prefix/\"\nb = \"gs://my_bucket\"\n");
    assert!(c.is_ok(), "{:?}", c.err());
}

#[test]
fn options_a_bucket_kind_ignores_are_errors() {
    for (key, value) in [
        ("endpoint", "\"http://127.0.0.1:9000\""),
        ("region", "\"eu-west-1\""),
        ("allow_http", "true"),
        ("credentials", "\"key\""),
        ("cache_control", "\"max-age=30\""),
    ] {
        let text = format!("a = {{ url = \"file://var/a\", {key} = {value} }}\n");
        let errs = all_errors(with_buckets(&text));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0],
            format!(
                "{}: bucket 'a': `{key}` does nothing for a file:// bucket (it applies to s3:// and gs:// buckets); remove it",
                at(&text, value)
            )
        );
    }
    assert_one_error(&[
        (
            "a = { url = \"gs://bucket\", region = \"eu\" }\n",
            "\"eu\"",
            "`region` does nothing for a gs:// bucket",
        ),
        (
            "a = { url = \"gs://bucket\", endpoint = \"http://127.0.0.1:4443\" }\n",
            "\"http://",
            "endpoint 'http://127.0.0.1:4443' is plain http; set `allow_http = true`",
        ),
        (
            "a = { url = \"s3://bucket\", endpoint = \"127.0.0.1:9000\" }\n",
            "\"127",
            "must be an http:// or https:// URL",
        ),
        (
            "a = { url = \"s3://bucket\", endpoint = \"https://\" }\n",
            "\"https",
            "names no host",
        ),
    ]);
    let ok = "a = { url = \"gs://bucket\", endpoint = \"http://127.0.0.1:4443\", allow_http = true, credentials = \"key\", cache_control = \"no-cache\" }\n\
              b = { url = \"s3://bucket\", endpoint = \"http://127.0.0.1:9000\", allow_http = true, region = \"eu-west-1\", credentials = \"key\" }\n";
    assert!(with_buckets(ok).is_ok());
}

#[test]
fn promote_to_names_one_other_bucket_one_way() {
    assert_one_error(&[
        (
            "a = { url = \"s3://aaa\", promote_to = \"a\" }\n",
            "\"a\" }",
            "bucket 'a' promotes to itself",
        ),
        (
            "a = { url = \"s3://aaa\", promote_to = \"nope\" }\n",
            "\"nope\"",
            "bucket 'a' promotes to 'nope', which is not defined in [buckets]",
        ),
        (
            "a = { url = \"s3://aaa\", promote_to = \"b\" }\nb = { url = \"s3://bbb\", promote_to = \"a\" }\n",
            "\"b\" }",
            "promote_to forms a cycle: a -> b -> a",
        ),
        (
            "c = { url = \"s3://ccc\", promote_to = \"a\" }\nb = { url = \"s3://bbb\", promote_to = \"c\" }\na = { url = \"s3://aaa\", promote_to = \"b\" }\n",
            "\"b\" }",
            "promote_to forms a cycle: a -> b -> c -> a",
        ),
        (
            "a = { url = \"s3://aaa\", promote_to = \"b\" }\nb = { url = \"s3://bbb\", promote_to = \"c\" }\nc = \"s3://ccc\"\n",
            "\"c\" }",
            "bucket 'b' is the production bucket of 'a' and cannot promote to 'c' too",
        ),
        (
            "a = { url = \"s3://aaa\", promote_to = \"p\" }\nb = { url = \"s3://bbb\", promote_to = \"p\" }\np = \"s3://ppp\"\n",
            "\"p\" }\np",
            "buckets 'a' and 'b' both promote to 'p'",
        ),
    ]);
}

#[test]
fn bucket_errors_are_reported_together() {
    let buckets = "a = \"file://\"\nb = { url = \"s3://\", promote_to = \"b\" }\nc = { url = \"gs://ccc\", region = \"x\" }\n";
    let errs = all_errors(with_buckets(buckets));
    assert_eq!(errs.len(), 4, "{errs:?}");
}

#[test]
fn builds_publish_to_staging_and_credentials_name_a_secret() {
    let svc = SERVICE.replace(
        "packages-staging = \"file://var/buckets/packages-staging\"\n",
        "packages-staging = { url = \"file://var/buckets/packages-staging\", promote_to = \"packages\" }\npackages = { url = \"s3://packages\", credentials = \"nope\" }\n",
    );
    let c = service(&svc).unwrap();
    let bl = BUILDS.replace("bucket = \"packages-staging\"", "bucket = \"packages\"");
    let errs = validate(&c, &builds(&bl).unwrap()).unwrap_err().0;
    let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let line = svc
        .lines()
        .position(|l| l.contains("credentials = \"nope\""))
        .unwrap()
        + 1;
    let col = svc.lines().nth(line - 1).unwrap().find("\"nope\"").unwrap() + 1;
    assert_eq!(
        msgs[0],
        format!(
            "slipway.toml:{line}:{col}: bucket 'packages' takes credentials from secret 'nope', which is not defined in [secrets]"
        )
    );
    assert!(
        msgs[1].starts_with("repo@abc:.slipway/builds.toml:"),
        "{msgs:?}"
    );
    assert!(
        msgs[1].ends_with("build 'publish' publishes to 'packages', the production bucket of 'packages-staging'; publish to 'packages-staging' and promote"),
        "{msgs:?}"
    );
}
