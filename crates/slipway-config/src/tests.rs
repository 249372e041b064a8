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
